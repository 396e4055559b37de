"""Container images the pipeline's steps and the index server run in (built from images/).

The defaults name ``ghcr.io/silverset/<image>:<pyproject version>``; ``ImageSet`` names them in another
registry, under another tag, or pinned by digest, and is what ``silverset pipeline compile`` writes into
the compiled pipeline.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .errors import SilversetInputError

REGISTRY = "ghcr.io/silverset"
VERSION = "0.1.0"

ImageName = Literal["cpu", "gpu", "server"]
REPOSITORIES: dict[str, str] = {
    "cpu": "silverset-cpu",  # Beam, PyAV, torch CPU, tfx-bsl, ScaNN, kfp: every CPU step
    "gpu": "silverset-gpu",  # CUDA, torch, TensorRT: local teacher and trainer
    "server": "silverset-index-server",  # ScaNN index server
}

# The distribution reference grammar (github.com/distribution/reference): a registry host with an
# optional port, then lowercase path components; a tag; a digest.
_HOST = re.compile(
    r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?"
)
_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_DIGEST = re.compile(r"(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})")
_MAX_NAME = 255  # longest repository name (registry path + image name) a registry accepts


def is_digest(value: str) -> bool:
    return _DIGEST.fullmatch(value) is not None


def _check_digest(value: str, what: str) -> str:
    if not is_digest(value):
        raise ValueError(f"{what} {value!r} is not a digest: expected sha256: and 64 lowercase hex characters")
    return value


class ImageSet(BaseModel):
    """Where the three images come from: ``registry``, and ``tag`` (a tag, or a digest ``sha256:...``).

    A digest names one image's bytes, so a digest ``tag`` suits a pipeline that runs one image; to pin
    several, keep a tag and give each image's digest in ``digests`` (``name:tag@sha256:...``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    registry: str = REGISTRY
    tag: str = VERSION
    digests: dict[ImageName, str] = Field(default_factory=dict)

    @field_validator("registry")
    @classmethod
    def _registry_is_a_reference_prefix(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value:
            raise ValueError("registry is empty")
        if "://" in value:
            raise ValueError(f"registry {value!r}: give host/path without a scheme, e.g. ghcr.io/acme")
        if "@" in value or ":" in value.split("/", 1)[-1] and "/" in value:
            raise ValueError(f"registry {value!r}: a tag or digest goes in the tag, not the registry")
        host, *path = value.split("/")
        if not (_HOST.fullmatch(host) or _PATH_COMPONENT.fullmatch(host)):
            raise ValueError(
                f"registry {value!r}: {host!r} is not a registry host (letters, digits, '-', '.', optional :port)"
            )
        for component in path:
            if not _PATH_COMPONENT.fullmatch(component):
                raise ValueError(
                    f"registry {value!r}: path component {component!r} must be lowercase letters and digits "
                    "joined by '.', '_', '__' or '-'"
                )
        longest = max(len(r) for r in REPOSITORIES.values())
        if len(value) + 1 + longest > _MAX_NAME:
            raise ValueError(f"registry {value!r}: image names under it would be over {_MAX_NAME} characters")
        return value

    @field_validator("tag")
    @classmethod
    def _tag_or_digest(cls, value: str) -> str:
        value = value.strip()
        if value.startswith(("sha256:", "sha512:")):
            return _check_digest(value, "tag")
        if not _TAG.fullmatch(value):
            raise ValueError(
                f"tag {value!r}: up to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-' "
                "(or a digest sha256:...)"
            )
        return value

    @field_validator("digests")
    @classmethod
    def _digests_are_digests(cls, value: dict[str, str]) -> dict[str, str]:
        return {image: _check_digest(digest, f"digest of the {image} image") for image, digest in value.items()}

    @model_validator(mode="after")
    def _one_way_to_pin(self) -> ImageSet:
        if is_digest(self.tag) and self.digests:
            raise ValueError(f"tag {self.tag[:19]}... is already a digest; with per-image digests give a tag")
        return self

    @property
    def pinned(self) -> bool:
        """True when references are by digest (``IfNotPresent`` is then safe: the bytes cannot change)."""
        return is_digest(self.tag)

    def ref(self, image: ImageName) -> str:
        """The image reference for ``image``: ``registry/name:tag``, ``registry/name@sha256:...``, or both."""
        name = f"{self.registry}/{REPOSITORIES[image]}"
        if is_digest(self.tag):
            return f"{name}@{self.tag}"
        digest = self.digests.get(image)
        return f"{name}:{self.tag}@{digest}" if digest else f"{name}:{self.tag}"

    def is_pinned(self, image: ImageName) -> bool:
        return is_digest(self.tag) or image in self.digests

    def pull_policy(self, image: ImageName) -> str:
        """``IfNotPresent`` for a digest (the bytes cannot change), ``Always`` for a tag a push can move."""
        return "IfNotPresent" if self.is_pinned(image) else "Always"

    @property
    def cpu(self) -> str:
        return self.ref("cpu")

    @property
    def gpu(self) -> str:
        return self.ref("gpu")

    @property
    def server(self) -> str:
        return self.ref("server")

    def check_used(self, images: set[str]) -> None:
        """Refuse one digest ``tag`` for more than one image.

        It names one image's bytes, so the others would not pull.
        """
        if is_digest(self.tag) and len(set(images)) > 1:
            used = ", ".join(REPOSITORIES[i] for i in sorted(images))
            raise SilversetInputError(
                f"--image-tag {self.tag[:19]}...",
                f"a digest names one image, and these steps run {used}; "
                "give a tag, and pin each image by its own digest",
            )


_DEFAULT = ImageSet()
CPU_IMAGE = _DEFAULT.cpu
GPU_IMAGE = _DEFAULT.gpu
SERVER_IMAGE = _DEFAULT.server
