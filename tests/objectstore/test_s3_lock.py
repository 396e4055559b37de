"""The run lock on S3 (moto's loopback server): conditional writes make it atomic across processes."""

from __future__ import annotations

import time

import pytest

from silverset.components.common import run_lock
from tests.helpers.locks import Clock, race_two_processes


def test_two_processes_racing_for_an_s3_lock_never_both_win(s3):
    winners = race_two_processes(f"{s3}/state", trials=12)
    assert all(len(w) == 1 for w in winners), winners


def test_two_processes_racing_to_take_over_an_expired_s3_lock_never_both_win(s3):
    def expired(target: str) -> None:
        run_lock.open_run_lock(target, lease_duration_s=1.0, clock=Clock(time.time() - 60)).acquire("crashed-run")

    winners = race_two_processes(f"{s3}/state", trials=12, before=expired)
    assert all(len(w) == 1 for w in winners), winners


def test_an_s3_lock_is_held_renewed_taken_over_after_expiry_and_released_only_by_its_holder(s3):
    import fsspec

    clock = Clock()
    lock = run_lock.open_run_lock(f"{s3}/state", lease_duration_s=600, clock=clock)
    lock.acquire("run-a")
    with pytest.raises(run_lock.StateLocked, match="held by run 'run-a'"):
        lock.acquire("run-b")
    assert not lock.release("run-b")
    clock.now += 500
    lock.renew("run-a")
    clock.now += 500  # 500 s after the renewal: still held
    with pytest.raises(run_lock.StateLocked):
        lock.acquire("run-b")
    clock.now += 101
    assert lock.acquire("run-b").holder == "run-b"
    with pytest.raises(run_lock.LockLost):
        lock.renew("run-a")
    assert lock.release("run-b") and lock.holder().holder == ""
    assert fsspec.filesystem("s3").exists(f"{s3}/state/lock.json")
