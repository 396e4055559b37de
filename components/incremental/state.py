"""Previous-run state: which (video_id, content etag) pairs hold labels for which attribute version.

The state lives in one folder (local path or fsspec URI) that every scheduled run of one attribute shares:

    state_dir/
      videos.parquet       # video_id, uri, etag of every video the last successful run covered
      labels/              # teacher labels of those videos (schemas.LABELS: carries attribute_version, prompt_hash)
      attribute.json       # {"attribute", "attribute_version", "prompt_hash"} of the last successful run
      lock.json            # present while a run holds the state (one writer at a time)

It is only replaced by ``commit`` at the end of a successful run, so a failed run leaves it as it was and
the next run picks up the same work again.
"""
from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass

import fsspec
import pyarrow as pa

from silverset.components.common import schemas, tables
from silverset.components.common.errors import SilversetInputError

VIDEOS_FILE = "videos.parquet"
LABELS_DIR = "labels"
ATTRIBUTE_FILE = "attribute.json"
LOCK_FILE = "lock.json"

# video_id -> etag of the content the state's labels were computed from.
VIDEO_STATE = pa.schema(
    [
        pa.field("video_id", pa.string(), nullable=False),
        pa.field("uri", pa.string(), nullable=False),
        pa.field("etag", pa.string(), nullable=False),
    ]
)


def _join(root: str, *parts: str) -> str:
    return "/".join([root.rstrip("/"), *parts])


def _exists(uri: str) -> bool:
    fs, path = fsspec.core.url_to_fs(uri)
    return fs.exists(path)


@dataclass(frozen=True)
class PreviousRun:
    """What the last successful run left behind (empty tables when there was none)."""

    videos: pa.Table  # VIDEO_STATE
    labels: pa.Table  # schemas.LABELS
    attribute: str | None
    attribute_version: int | None
    prompt_hash: str | None

    @property
    def exists(self) -> bool:
        return self.attribute is not None


def load(state_dir: str) -> PreviousRun:
    """Read the state folder; a missing folder is a first run (empty state)."""
    meta_uri = _join(state_dir, ATTRIBUTE_FILE)
    if not _exists(meta_uri):
        return PreviousRun(VIDEO_STATE.empty_table(), schemas.LABELS.empty_table(), None, None, None)
    with fsspec.open(meta_uri, "r") as f:
        meta = json.load(f)
    videos = tables.read_table(_join(state_dir, VIDEOS_FILE), VIDEO_STATE, name=f"state '{state_dir}' videos")
    labels_uri = _join(state_dir, LABELS_DIR)
    labels = (tables.read_table(labels_uri, schemas.LABELS, name=f"state '{state_dir}' labels")
              if _exists(labels_uri) else schemas.LABELS.empty_table())
    return PreviousRun(videos, labels, meta["attribute"], int(meta["attribute_version"]), meta["prompt_hash"])


def commit(state_dir: str, *, videos: pa.Table, labels: pa.Table, attribute: str, attribute_version: int,
           prompt_hash: str) -> None:
    """Replace the state with this run's videos and labels. Called only after the run succeeded.

    ``attribute.json`` is written last: a crash part-way leaves the old metadata, whose prompt hash
    still matches the old labels' rows, so the next run re-does at most this run's work.
    """
    foreign = labels.filter(pa.compute.or_(
        pa.compute.not_equal(labels.column("attribute_version"), attribute_version),
        pa.compute.not_equal(labels.column("prompt_hash"), prompt_hash),
    )) if labels.num_rows else labels
    if foreign.num_rows:
        raise SilversetInputError("labels", f"{foreign.num_rows} label(s) are not for {attribute}@v{attribute_version} "
                                            f"(prompt {prompt_hash[:12]}); old and new versions must not mix")
    tables.write_table(videos, _join(state_dir, VIDEOS_FILE), VIDEO_STATE, name="state videos")
    tables.write_table(labels, _join(state_dir, LABELS_DIR, "labels.parquet"), schemas.LABELS, name="state labels")
    with fsspec.open(_join(state_dir, ATTRIBUTE_FILE), "w") as f:
        json.dump({"attribute": attribute, "attribute_version": attribute_version, "prompt_hash": prompt_hash}, f,
                  sort_keys=True)


class StateLocked(RuntimeError):
    """Another run holds the state folder; this run must not run over the same videos."""


def acquire_lock(state_dir: str, *, run_id: str, stale_after_s: float = 6 * 3600.0) -> str:
    """Take the state folder's lock for ``run_id`` (seconds since the epoch recorded in it).

    A lock older than ``stale_after_s`` seconds belongs to a run that died without its exit handler
    and is taken over. Returns the run id that now holds it. Object stores give no atomic
    create-if-absent, so on a cluster the recurring run's ``max_concurrency=1`` is the primary guard;
    this lock catches a manual run started beside a scheduled one.
    """
    lock_uri = _join(state_dir, LOCK_FILE)
    fs, path = fsspec.core.url_to_fs(lock_uri)
    if fs.exists(path):
        with fs.open(path, "r") as f:
            held = json.load(f)
        if held.get("run_id") != run_id and time.time() - float(held.get("acquired_at", 0)) < stale_after_s:
            raise StateLocked(f"state '{state_dir}' is held by run {held.get('run_id')!r} since "
                              f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(float(held['acquired_at'])))}")
    fs.makedirs(fs._parent(path), exist_ok=True)
    tmp = f"{path}.{uuid.uuid4().hex}.tmp"
    with fs.open(tmp, "w") as f:
        json.dump({"run_id": run_id, "acquired_at": time.time()}, f)
    fs.mv(tmp, path)
    return run_id


def release_lock(state_dir: str, *, run_id: str) -> bool:
    """Drop the lock if ``run_id`` holds it; returns whether a lock was released."""
    lock_uri = _join(state_dir, LOCK_FILE)
    fs, path = fsspec.core.url_to_fs(lock_uri)
    if not fs.exists(path):
        return False
    with fs.open(path, "r") as f:
        held = json.load(f)
    if held.get("run_id") != run_id:
        return False
    fs.rm(path)
    return True


def load_table(state_dir: str, name: str) -> pa.Table | None:
    """A carried table other than labels (e.g. ``embeddings``) as the last run left it, or None."""
    uri = _join(state_dir, name)
    if not _exists(uri) or not tables.parquet_files(uri):
        return None
    return tables.read_table(uri)


def commit_table(state_dir: str, name: str, table: pa.Table) -> None:
    tables.write_table(table, _join(state_dir, name, "part.parquet"))
