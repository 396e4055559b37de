"""The exposure log: no row lost or doubled under concurrent appends, readers never see a partial file."""

from __future__ import annotations

import threading
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from silverset.components.abtest.exposure import EXPOSURE_SCHEMA, Exposure, ExposureLog, exposure_files, read_exposures
from silverset.components.common.errors import SilversetInputError


def _row(request_id: str, *, user: str = "u1", arm: str = "control", affinity: float | None = 0.4) -> Exposure:
    return Exposure(
        "exp-1", request_id, user, arm, True, arm == "treatment", affinity, "rule", "red_dominant", 3, "v3", time.time()
    )


def test_concurrent_appends_rotate_without_loss_while_a_reader_polls(tmp_path):
    threads, per_thread = 8, 1500
    seen_counts, reader_errors = [], []
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            try:
                seen_counts.append(read_exposures(tmp_path).num_rows)
            except Exception as exc:  # a partial or half-renamed file would land here
                reader_errors.append(repr(exc))

    def writer(t: int):
        for i in range(per_thread):
            exposures.append(_row(f"t{t}-r{i}", user=f"user-{t}"))

    exposures = ExposureLog(tmp_path, max_rows=700, max_seconds=0.05)
    poll = threading.Thread(target=reader)
    poll.start()
    workers = [threading.Thread(target=writer, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    exposures.close()
    stop.set()
    poll.join()

    table = read_exposures(tmp_path)
    ids = table.column("request_id").to_pylist()
    assert len(ids) == threads * per_thread and len(set(ids)) == len(ids)
    assert len(exposure_files(tmp_path)) >= threads * per_thread // 700  # it rotated
    assert all(pq.read_metadata(p).num_rows <= 700 for p in exposure_files(tmp_path))
    assert not reader_errors
    assert seen_counts == sorted(seen_counts)  # rows only ever appear, whole files at a time
    assert not list(tmp_path.glob(".*.tmp"))


def test_rows_wait_at_most_about_max_seconds(tmp_path):
    with ExposureLog(tmp_path, max_rows=10_000, max_seconds=0.1) as exposures:
        exposures.append(_row("r1"))
        deadline = time.time() + 5
        while not exposure_files(tmp_path) and time.time() < deadline:
            time.sleep(0.02)
        assert read_exposures(tmp_path).column("request_id").to_pylist() == ["r1"]


def test_table_round_trips_the_contract_schema(tmp_path):
    with ExposureLog(tmp_path) as exposures:
        exposures.append(_row("r1", arm="treatment", affinity=None))
        exposures.append(_row("r2", arm="control", affinity=0.25))
    table = read_exposures(tmp_path)
    assert table.schema.equals(EXPOSURE_SCHEMA, check_metadata=False)
    assert table.column("affinity").to_pylist() == [None, 0.25]
    assert table.column("served").to_pylist() == [True, False]
    assert str(table.column("ts").type) == "timestamp[us, tz=UTC]"


def test_append_after_close_is_refused(tmp_path):
    exposures = ExposureLog(tmp_path)
    exposures.close()
    exposures.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        exposures.append(_row("late"))


def test_failed_writes_keep_rows_then_drop_the_oldest_beyond_the_cap(tmp_path, monkeypatch):
    exposures = ExposureLog(tmp_path, max_rows=2, max_seconds=60, max_pending_rows=3)

    def disk_full(rows):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(exposures, "_write_file", disk_full)
    for i in range(5):
        exposures.append(_row(f"r{i}"))
    assert exposures.flush() == 0
    assert exposures.rows_dropped == 2
    monkeypatch.undo()
    exposures.close()
    assert read_exposures(tmp_path).column("request_id").to_pylist() == ["r2", "r3", "r4"]


def test_reading_none_yet_a_missing_folder_and_a_foreign_file(tmp_path):
    assert read_exposures(tmp_path).num_rows == 0
    with pytest.raises(SilversetInputError, match="folder not found"):
        read_exposures(tmp_path / "nope")
    pq.write_table(pa.table({"user_id": ["u"]}), tmp_path / "exposures-20260101T000000Z-1-000000.parquet")
    with pytest.raises(SilversetInputError, match="schema differs"):
        read_exposures(tmp_path)


def test_a_file_of_the_same_name_is_never_overwritten(tmp_path, monkeypatch):
    """Pods sharing a folder all run as pid 1: a name taken by another writer moves this one to the next seq."""
    import datetime as real_datetime
    import os

    from silverset.components.abtest import exposure as module

    class Frozen(real_datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return real_datetime.datetime(2026, 11, 30, 8, 0, 0, 123456, tzinfo=tz)

    monkeypatch.setattr(module, "datetime", Frozen)
    taken = tmp_path / f"exposures-20261130T080000123456Z-{os.getpid()}-000000.parquet"
    with ExposureLog(tmp_path) as other_pod:
        other_pod.append(_row("theirs"))
    assert taken.exists()
    with ExposureLog(tmp_path) as this_pod:
        this_pod.append(_row("mine"))
    assert sorted(read_exposures(tmp_path).column("request_id").to_pylist()) == ["mine", "theirs"]
    assert [p.name[-14:] for p in exposure_files(tmp_path)] == ["000000.parquet", "000001.parquet"]
