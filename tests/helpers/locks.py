"""Run-lock test helpers: a settable ``Clock`` and ``race_two_processes``, which races two processes for one lock.

Used by the local-filesystem lock tests and by the same races against a loopback S3.
"""

from __future__ import annotations

import multiprocessing

from silverset.components.common import run_lock


class Clock:
    """A clock that stands still at ``now`` (seconds since the epoch) until a test moves it."""

    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def _race(uri: str, barrier, results, run_id: str, lease_s: float) -> None:
    lock = run_lock.open_run_lock(uri, key=uri, lease_duration_s=lease_s)
    barrier.wait()
    try:
        lock.acquire(run_id)
        results.put((run_id, "won"))
    except run_lock.StateLocked as exc:
        results.put((run_id, f"locked: {exc}"))


def race_two_processes(uri: str, *, trials: int, lease_s: float = 60.0, before=None) -> list[list[str]]:
    """Start two processes per trial that call acquire at the same instant; returns the winners of each trial."""
    ctx = multiprocessing.get_context("fork")
    winners = []
    for trial in range(trials):
        target = f"{uri.rstrip('/')}/trial-{trial}"
        if before is not None:
            before(target)
        barrier, results = ctx.Barrier(2), ctx.Queue()
        procs = [ctx.Process(target=_race, args=(target, barrier, results, f"run-{trial}-{p}", lease_s)) for p in "ab"]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=60)
            assert p.exitcode == 0, f"trial {trial}: a racer crashed"
        outcome = [results.get(timeout=5) for _ in procs]
        winners.append(sorted(r for r, what in outcome if what == "won"))
        losers = [what for r, what in outcome if what != "won"]
        assert all(w.startswith("locked: ") and "held by run 'run-" in w for w in losers), losers
    return winners
