"""The run lock on a local folder: one winner per race, take-over only after expiry, heartbeats keep it."""

from __future__ import annotations

import json
import time

import pytest

from silverset.components.common import run_lock
from silverset.components.common.errors import SilversetInputError
from tests.helpers.locks import Clock, race_two_processes


def test_two_processes_racing_for_a_free_lock_never_both_win(tmp_path):
    winners = race_two_processes(str(tmp_path), trials=25)
    assert all(len(w) == 1 for w in winners), winners


def test_two_processes_racing_to_take_over_an_expired_lock_never_both_win(tmp_path):
    def expired(target: str) -> None:  # a crashed run's lock, expired a minute ago
        lock = run_lock.open_run_lock(target, lease_duration_s=1.0, clock=Clock(time.time() - 60))
        lock.acquire("crashed-run")

    winners = race_two_processes(str(tmp_path), trials=25, before=expired)
    assert all(len(w) == 1 for w in winners), winners


def test_a_held_lock_refuses_another_run_naming_the_holder_and_is_taken_over_after_expiry(tmp_path):
    clock = Clock()
    lock = run_lock.open_run_lock(str(tmp_path), lease_duration_s=600, clock=clock)
    first = lock.acquire("scheduled-1")
    with pytest.raises(run_lock.StateLocked, match=r"held by run 'scheduled-1' since 2027-01-15T08:00:00Z"):
        lock.acquire("manual-2")
    assert lock.acquire("scheduled-1").acquired_at == first.acquired_at  # re-taking by the holder is a renewal
    clock.now += 599
    with pytest.raises(run_lock.StateLocked):
        lock.acquire("manual-2")
    clock.now += 2  # 601 s after the last renewal: the holder crashed
    assert lock.acquire("manual-2").holder == "manual-2"
    with pytest.raises(run_lock.LockLost, match="no longer holds it"):
        lock.renew("scheduled-1")
    assert json.loads((tmp_path / run_lock.LOCK_FILE).read_text())["holder"] == "manual-2"


def test_release_only_by_the_holder(tmp_path):
    lock = run_lock.open_run_lock(str(tmp_path), lease_duration_s=600)
    lock.acquire("run-a")
    assert not lock.release("run-b")
    with pytest.raises(run_lock.StateLocked, match="run-a"):
        lock.acquire("run-b")
    assert lock.release("run-a")
    assert not lock.release("run-a")
    assert lock.acquire("run-b").holder == "run-b"


def test_heartbeat_keeps_the_lock_past_its_lease_and_a_crashed_run_frees_it(tmp_path):
    lock = run_lock.open_run_lock(str(tmp_path), lease_duration_s=0.8)
    other = run_lock.open_run_lock(str(tmp_path), lease_duration_s=0.8)
    with lock.held("waiting-for-approval", heartbeat_s=0.1) as beat:
        time.sleep(2.0)  # 2.5 lease durations
        with pytest.raises(run_lock.StateLocked, match="waiting-for-approval"):
            other.acquire("next-run")
    assert beat.renewals >= 5 and beat.lost is None
    # Kept after the block (the run's next step takes it up); with nobody renewing it frees itself.
    with pytest.raises(run_lock.StateLocked):
        other.acquire("next-run")
    time.sleep(1.0)
    assert other.acquire("next-run").holder == "next-run"


def test_a_step_whose_lock_was_taken_over_fails_at_exit(tmp_path):
    clock = Clock()
    lock = run_lock.open_run_lock(str(tmp_path), lease_duration_s=5, clock=clock)
    with pytest.raises(run_lock.LockLost, match="'usurper'"):
        with lock.held("slow-run", heartbeat_s=0.05, release_on_exit=True):
            clock.now += 10
            run_lock.open_run_lock(str(tmp_path), lease_duration_s=5, clock=clock).acquire("usurper")
            time.sleep(0.3)
    assert lock.holder().holder == "usurper"  # release_on_exit never frees another run's lock


def test_bad_lock_uris_and_run_ids_are_named(tmp_path):
    with pytest.raises(SilversetInputError, match="kubernetes://NAMESPACE"):
        run_lock.open_run_lock("kubernetes://Not_A_Namespace", key="s3://b/state")
    with pytest.raises(SilversetInputError, match="needs the state folder"):
        run_lock.open_run_lock("kubernetes://silverset-control", api_client=object())
    with pytest.raises(SilversetInputError, match="no atomic create-if-absent on 'memory://'"):
        run_lock.open_run_lock("memory://state")
    with pytest.raises(SilversetInputError, match="run_id"):
        run_lock.open_run_lock(str(tmp_path)).acquire("")
    assert run_lock.lease_name("s3://bucket/state").startswith("silverset-run-")
    assert len(run_lock.lease_name("s3://bucket/state")) <= 63
