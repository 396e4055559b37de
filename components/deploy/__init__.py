"""Promote an approved index version: local pointer swap, or a Kubernetes canary rollout with rollback."""
