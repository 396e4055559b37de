"""Tests that build the images' Python environments and check the Dockerfiles and GPU lock."""
