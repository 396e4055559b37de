"""Shared pytest fixtures: nothing here reaches the network.

Shared fixtures live in ``tests.helpers`` modules registered below as plugins (the one way a test gets a shared
fixture); shared plain helpers are imported by full name, ``from tests.helpers.ports import free_port``.
"""

from __future__ import annotations

import os

import pytest

pytest_plugins = ("tests.helpers.cli",)  # the in-process ``cli`` runner fixture

# The MiniLM weights ship inside a package; no test may fetch anything from a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except Exception:  # noqa: BLE001 - no torch means no GPU either
        has_gpu = False
    if has_gpu:
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU (run on the device machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
