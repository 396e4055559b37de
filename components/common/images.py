"""Container images each KFP component runs in (built from images/; tags kept in step with pyproject)."""
from __future__ import annotations

REGISTRY = "ghcr.io/silverset"
VERSION = "0.1.0"

CPU_IMAGE = f"{REGISTRY}/silverset-cpu:{VERSION}"  # Beam, PyAV, torch CPU, tfx-bsl, ScaNN
GPU_IMAGE = f"{REGISTRY}/silverset-gpu:{VERSION}"  # CUDA, torch, TensorRT: local teacher and trainer
SERVER_IMAGE = f"{REGISTRY}/silverset-index-server:{VERSION}"  # ScaNN index server
