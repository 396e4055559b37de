"""Tests of the kustomize manifests against the loopback Kubernetes API."""
