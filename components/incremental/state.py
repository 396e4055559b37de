"""Previous-run state: which (video_id, content etag) pairs hold labels for which attribute version.

The state lives in one folder (local path or fsspec URI) that every scheduled run of one attribute shares:

    state_dir/
      videos.parquet       # video_id, uri, etag of every video the last successful run covered
      labels/              # teacher labels of those videos (schemas.LABELS: carries attribute_version, prompt_hash);
                           # under a teacher budget only the sampled ones: a video in videos.parquet without a
                           # row here was never labelled (scored by the student only), and is carried as such
      embeddings/          # embeddings of those videos (all of them, labelled or not)
      attribute.json       # {"attribute", "attribute_version", "prompt_hash", "teacher_identity"} of that run
      completed.json       # {"corpus_digest", "run_id"} of the last promotion that went live
      lock.json            # the run lock, when the state folder holds it (lock.py)

It is only replaced by ``plan.commit_promotion`` after a promotion went live, so a run that failed or was
stopped by a gate, the approval or the deploy leaves it as it was and the next run plans the same work again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import fsspec
import pyarrow as pa

from silverset.components.common import schemas, tables
from silverset.components.common.errors import SilversetInputError
from silverset.components.common.run_lock import StateLocked  # noqa: F401 - the run lock's refusal, raised by plan.plan_run

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
    teacher_identity: str = ""  # "" for a state written before the teacher was recorded

    @property
    def exists(self) -> bool:
        return self.attribute is not None


def load(state_dir: str) -> PreviousRun:
    """Read the state folder; a missing folder is a first run (empty state)."""
    meta_uri = _join(state_dir, ATTRIBUTE_FILE)
    if not _exists(meta_uri):
        return PreviousRun(VIDEO_STATE.empty_table(), schemas.LABELS.empty_table(), None, None, None, "")
    with fsspec.open(meta_uri, "r") as f:
        meta = json.load(f)
    videos = tables.read_table(_join(state_dir, VIDEOS_FILE), VIDEO_STATE, name=f"state '{state_dir}' videos")
    labels_uri = _join(state_dir, LABELS_DIR)
    labels = (
        tables.read_table(labels_uri, schemas.LABELS, name=f"state '{state_dir}' labels")
        if _exists(labels_uri)
        else schemas.LABELS.empty_table()
    )
    return PreviousRun(
        videos,
        labels,
        meta["attribute"],
        int(meta["attribute_version"]),
        meta["prompt_hash"],
        meta.get("teacher_identity", ""),
    )


def commit(
    state_dir: str,
    *,
    videos: pa.Table,
    labels: pa.Table,
    attribute: str,
    attribute_version: int,
    prompt_hash: str,
    teacher_identity: str = "",
) -> None:
    """Replace the state with this run's videos and labels. Called only after the promotion went live.

    ``attribute.json`` is written last: a crash part-way leaves the old metadata, whose prompt hash
    still matches the old labels' rows, so the next run re-does at most this run's work.
    """
    foreign = (
        labels.filter(
            pa.compute.or_(
                pa.compute.not_equal(labels.column("attribute_version"), attribute_version),
                pa.compute.not_equal(labels.column("prompt_hash"), prompt_hash),
            )
        )
        if labels.num_rows
        else labels
    )
    if foreign.num_rows:
        raise SilversetInputError(
            "labels",
            f"{foreign.num_rows} label(s) are not for {attribute}@v{attribute_version} "
            f"(prompt {prompt_hash[:12]}); old and new versions must not mix",
        )
    tables.write_table(videos, _join(state_dir, VIDEOS_FILE), VIDEO_STATE, name="state videos")
    tables.write_table(labels, _join(state_dir, LABELS_DIR, "labels.parquet"), schemas.LABELS, name="state labels")
    with fsspec.open(_join(state_dir, ATTRIBUTE_FILE), "w") as f:
        json.dump(
            {
                "attribute": attribute,
                "attribute_version": attribute_version,
                "prompt_hash": prompt_hash,
                "teacher_identity": teacher_identity,
            },
            f,
            sort_keys=True,
        )


def load_table(state_dir: str, name: str) -> pa.Table | None:
    """A carried table other than labels (e.g. ``embeddings``) as the last run left it, or None."""
    uri = _join(state_dir, name)
    if not _exists(uri) or not tables.parquet_files(uri):
        return None
    return tables.read_table(uri)


def commit_table(state_dir: str, name: str, table: pa.Table) -> None:
    """Replace the state's table ``name`` (e.g. ``embeddings``) with ``table``."""
    tables.write_table(table, _join(state_dir, name, "part.parquet"))
