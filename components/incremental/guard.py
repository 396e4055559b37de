"""What a pipeline step does with the run lock: keep it renewed while the step works (and fail if it is lost).

The plan step takes the lock; every later step re-takes it (a no-op for the same run) and renews it from a
heartbeat thread while it works, so the lock outlives a long step or a days-long approval wait and expires
soon after a crashed run stops renewing it. The lock is ``run_lock`` (``kubernetes://NS``) or, when that is
empty, the state folder itself.
"""

from __future__ import annotations

import contextlib
from typing import Iterator


@contextlib.contextmanager
def renewing(*, run_lock: str, state_dir: str, run_id: str) -> Iterator[None]:
    """Hold ``run_id``'s lock on ``state_dir`` while the block runs; without a run id (a step called on its
    own, outside a pipeline run) there is no lock to keep and the block just runs."""
    if not run_id or not state_dir:
        yield
        return
    from .lock import open_run_lock

    with open_run_lock(run_lock or state_dir, key=state_dir).held(pipeline_run_id(run_id)):
        yield


def pipeline_run_id(job_name: str) -> str:
    """The run's id from what a step sees as PIPELINE_JOB_NAME. KFP gives every step the run's name; kfp.local
    2.17 appends ``/for-loop-N-iteration-I`` inside a ParallelFor (a Kubernetes name never holds a "/")."""
    return job_name.split("/", 1)[0]
