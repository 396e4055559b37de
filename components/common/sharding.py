"""Deterministic sharding by a stable hash of video_id: n workers split any manifest with no overlap."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from .errors import SilversetInputError


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0-based). ``Shard(0, 1)`` is everything."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise SilversetInputError("--shard", f"needs 0 <= i < n, got {self.index}/{self.count}")

    def owns(self, video_id: str) -> bool:
        return self.count == 1 or shard_of(video_id, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def tag(self) -> str:
        """File-name-safe form, e.g. ``00003-of-00008``."""
        return f"{self.index:05d}-of-{self.count:05d}"


def shard_of(video_id: str, count: int) -> int:
    """Stable shard index of ``video_id``: the first 8 bytes of its sha256, modulo ``count``."""
    digest = hashlib.sha256(video_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count


def parse_shard(text: str | None) -> Shard:
    """Parse ``"i/n"`` (e.g. ``"2/8"``); ``None`` or empty means the whole input."""
    if not text:
        return Shard()
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise SilversetInputError("--shard", f"expected i/n such as 0/4, got {text!r}") from None
    return Shard(index, count)
