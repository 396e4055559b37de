"""What every KFP component function does around its work.

``begin_step()`` first; ``renewing(...)`` around the work (the run lock held and renewed); ``nothing_to_do``
the one guard for an incremental run's empty plan manifest.

``begin_step()``:

- Its log records reach the step's pod log (:func:`logs.configure_step_logging`).
- A step that did its work exits 0 instead of aborting in native teardown
  (:func:`process_exit.exit_cleanly_after_kfp_step`): "terminate called without an active exception" after
  every output was written, seen in Gemini annotate steps and in Beam frames steps under kfp.local on loaded
  2-core machines. Only active in a KFP executor process.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import fsspec

from .logs import configure_step_logging
from .process_exit import exit_cleanly_after_kfp_step


def begin_step() -> None:
    """Set up a KFP step's process: logging to the pod log, a clean exit after the step's work."""
    configure_step_logging()
    exit_cleanly_after_kfp_step()


# ---------------------------------------------------------------- the run lock, held while a step works
# The plan step takes the lock; every later step re-takes it (a no-op for the same run) and renews it from a
# heartbeat thread while it works, so the lock outlives a long step or a days-long approval wait and expires
# soon after a crashed run stops renewing it. The lock is ``run_lock`` (``kubernetes://NS``) or, when that is
# empty, the state folder itself.


@contextlib.contextmanager
def renewing(*, run_lock: str, state_dir: str, run_id: str) -> Iterator[None]:
    """Hold ``run_id``'s lock on ``state_dir`` while the block runs; without a run id (a step called on its
    own, outside a pipeline run) there is no lock to keep and the block just runs."""
    if not run_id or not state_dir:
        yield
        return
    from .run_lock import open_run_lock

    with open_run_lock(run_lock or state_dir, key=state_dir).held(pipeline_run_id(run_id)):
        yield


def pipeline_run_id(job_name: str) -> str:
    """The run's id from what a step sees as PIPELINE_JOB_NAME. KFP gives every step the run's name; kfp.local
    2.17 appends ``/for-loop-N-iteration-I`` inside a ParallelFor (a Kubernetes name never holds a "/")."""
    return job_name.split("/", 1)[0]


def nothing_to_do(manifest_uri: str) -> bool:
    """The one empty-manifest guard: True when ``manifest_uri`` is a plan's Parquet manifest (todo, golden,
    frames) with no rows (or none at all), so an incremental run's step has nothing new to do. A CSV/JSONL
    manifest a user passed is never "empty" here: reading it reports its own problems.

    A step that finds nothing to do returns its usual outputs with every count zero, the same shape as a run
    that did work: ``extract_frames`` (out_dir, 0 videos, 0 errors, 0 frames); ``embed_shard`` and
    ``annotate_shard`` the JSON of an all-zero ``common.artifacts.ShardStats`` (no model id); ``merge_labels`` 0."""
    if not manifest_uri.endswith(".parquet"):
        return False
    fs, path = fsspec.core.url_to_fs(manifest_uri)
    if not fs.exists(path):
        return True
    import pyarrow.parquet as pq

    with fs.open(path, "rb") as f:
        return pq.ParquetFile(f).metadata.num_rows == 0
