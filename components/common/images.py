"""Container images each KFP component runs in (built from images/; tags kept in step with pyproject).

``CPU_IMAGE`` is what the component decorators name; a compiled package can point every step at another
registry and tag or digest (``ImageSet``, ``silverset pipeline compile --image-registry R --image-tag T``).
"""
from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, field_validator

REGISTRY = "ghcr.io/silverset"
VERSION = "0.1.0"

CPU_IMAGE = f"{REGISTRY}/silverset-cpu:{VERSION}"  # Beam, PyAV, torch CPU, tfx-bsl, ScaNN
GPU_IMAGE = f"{REGISTRY}/silverset-gpu:{VERSION}"  # CUDA, torch, TensorRT: local teacher and trainer
SERVER_IMAGE = f"{REGISTRY}/silverset-index-server:{VERSION}"  # ScaNN index server

# OCI distribution spec: a tag is [A-Za-z0-9_][A-Za-z0-9._-]{0,127}; a digest is algorithm:hex.
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
_REGISTRY = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*$")


class ImageSet(BaseModel):
    """Where the images live: ``registry`` (host[:port]/path), one ``tag`` for all, and optionally each image's
    ``sha256:`` digest, which pins the exact bytes (``registry/name:tag@sha256:...``: the node pulls by digest)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    registry: str = REGISTRY
    tag: str = VERSION
    cpu_digest: str | None = None
    gpu_digest: str | None = None
    server_digest: str | None = None

    @field_validator("registry")
    @classmethod
    def _registry(cls, value: str) -> str:
        value = value.rstrip("/")
        if not _REGISTRY.match(value):
            raise ValueError(f"registry {value!r} is not host[:port]/path in lower case (e.g. ghcr.io/acme)")
        return value

    @field_validator("tag")
    @classmethod
    def _tag(cls, value: str) -> str:
        if not _TAG.match(value):
            raise ValueError(f"tag {value!r} is not a valid image tag ([A-Za-z0-9_][A-Za-z0-9._-]{{0,127}}); "
                             "give digests per image (cpu_digest, gpu_digest, server_digest)")
        return value

    @field_validator("cpu_digest", "gpu_digest", "server_digest")
    @classmethod
    def _digest(cls, value: str | None) -> str | None:
        if value is not None and not _DIGEST.match(value):
            raise ValueError(f"digest {value!r} is not sha256: followed by 64 lower-case hex digits")
        return value

    def ref(self, name: str, digest: str | None = None) -> str:
        """``registry/name:tag``, or ``registry/name:tag@sha256:...`` when a digest pins it."""
        return f"{self.registry}/{name}:{self.tag}" + (f"@{digest}" if digest else "")

    @property
    def cpu(self) -> str:
        return self.ref("silverset-cpu", self.cpu_digest)

    @property
    def gpu(self) -> str:
        return self.ref("silverset-gpu", self.gpu_digest)

    @property
    def server(self) -> str:
        return self.ref("silverset-index-server", self.server_digest)
