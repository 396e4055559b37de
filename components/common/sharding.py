"""Deterministic sharding by a stable hash of video_id: n workers split any manifest with no overlap, and a sharded
stage writes one folder per shard under its output folder, read back as one table."""

from __future__ import annotations

import hashlib
import re
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


# --- sharded stage outputs: one folder per shard under the stage's folder, read back as one table -----------
SHARD_DIR_PREFIX = "shard-"
_SHARD_DIR_RE = re.compile(r"^shard-(?P<index>\d{5})-of-(?P<count>\d{5})$")


def shard_dir(out: str, shard: Shard) -> str:
    """The folder shard ``shard`` of a stage writes under ``out`` (``out/shard-00003-of-00008``); ``out`` itself
    when the shard is the whole input. ``tables.read_table(out)`` reads every shard's rows as one table (it
    skips each shard's ``errors.parquet``); ``read_shard_errors(out)`` reads their errors as one table."""
    out = str(out).rstrip("/")
    return out if shard.count == 1 else f"{out}/{SHARD_DIR_PREFIX}{shard.tag}"


def remove_other_shardings(out: str, shard: Shard) -> list[str]:
    """Delete ``out/shard-*`` folders written with another shard count (a rerun of the folder with a different
    width would otherwise read old rows twice); returns what it removed. Folders of this count are left to
    their own shard, which replaces its folder atomically. The new width's shards may all do this at once."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(str(out))
    if shard.count == 1 or not fs.exists(path):
        return []
    removed = []
    for item in fs.ls(path, detail=False):
        match = _SHARD_DIR_RE.match(item.rstrip("/").rsplit("/", 1)[-1])
        if match and int(match["count"]) != shard.count:
            try:
                fs.rm(item, recursive=True)
            except OSError:  # a sibling shard of the new width removing it at the same time is fine
                if fs.exists(item):
                    raise
            removed.append(item)
    return removed


def read_shard_errors(out: str):
    """Every shard's ``errors.parquet`` under ``out`` (and ``out/errors.parquet`` of an unsharded run) as one
    errors table (pyarrow, schemas.ERRORS): what the stage dropped over all its shards."""
    import fsspec
    import pyarrow as pa

    from . import schemas, tables

    fs, path = fsspec.core.url_to_fs(str(out))
    parts = [tables.read_errors(out)]
    if fs.exists(path):
        for item in sorted(fs.ls(path, detail=False)):
            if _SHARD_DIR_RE.match(item.rstrip("/").rsplit("/", 1)[-1]):
                parts.append(tables.read_errors(f"{str(out).rstrip('/')}/{item.rstrip('/').rsplit('/', 1)[-1]}"))
    return pa.concat_tables(parts) if len(parts) > 1 else parts[0].cast(schemas.ERRORS)
