"""The sharded, batched, resumable runner, driven by small in-test ModelHandlers (no model weights)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Sequence

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from silverset.components.common import tables
from silverset.components.common.artifacts import read_stage_stats
from silverset.components.common.errors import SilversetInputError
from silverset.components.common.sharding import Shard, shard_of
from silverset.components.common.tables import ErrorRow
from silverset.components.runtime.handler import BudgetExhausted, ItemResult, ModelHandler, WorkItem
from silverset.components.runtime.runner import merge_check, run_sharded

SCHEMA = pa.schema([("video_id", pa.string()), ("model_id", pa.string()), ("value", pa.float64())])


class Doubler(ModelHandler):
    """value = 2 * payload; payload None is a per-item error; records every batch it sees."""

    stage = "test"

    def __init__(
        self, *, name: str = "doubler-v1", crash_on_batch: int | None = None, max_batch: int = 32, cost: float = 0.0
    ):
        self.name, self.crash_on_batch, self.max_batch, self.cost = name, crash_on_batch, max_batch, cost
        self.batches: list[list[str]] = []
        self.loads = 0

    @property
    def model_id(self) -> str:
        return self.name

    def batch_elements_kwargs(self) -> dict[str, int]:
        return {"min_batch_size": 1, "max_batch_size": self.max_batch}

    def load_model(self):
        self.loads += 1
        return 2.0

    def run_inference(self, batch: Sequence[WorkItem], model) -> list[ItemResult]:
        if self.crash_on_batch is not None and len(self.batches) == self.crash_on_batch:
            raise RuntimeError("simulated crash")
        self.batches.append([it.key for it in batch])
        out = []
        for it in batch:
            if it.payload is None:
                out.append(ItemResult(key=it.key, error_type="no_value", message="payload missing", requests=1))
            else:
                out.append(
                    ItemResult(
                        key=it.key,
                        row={"video_id": it.key, "model_id": self.name, "value": model * it.payload},
                        cost_usd=self.cost,
                        requests=1,
                    )
                )
        return out


class Budgeted(Doubler):
    """Pays ``cost`` per item and stops (BudgetExhausted with the partial results) once ``budget`` is spent."""

    def __init__(self, *, budget: float, **kw):
        super().__init__(**kw)
        self.budget, self.spent = budget, 0.0

    def run_inference(self, batch, model):
        done = []
        for it in batch:
            if self.spent + self.cost > self.budget + 1e-12:
                raise BudgetExhausted(partial=done, message=f"spent {self.spent:.2f}")
            self.spent += self.cost
            done += super().run_inference([it], model)
        return done


def items(n: int, *, missing: Sequence[int] = ()) -> list[WorkItem]:
    return [
        WorkItem(key=f"v{i:04d}", payload=None if i in missing else float(i), uri=f"file:///v{i:04d}.mp4")
        for i in range(n)
    ]


def run(handler, out: Path, work, **kw):
    return run_sharded(items=work, handler=handler, out_dir=out, schema=SCHEMA, id_column="model_id", **kw)


def output_rows(out: Path) -> list[dict]:
    return tables.read_table(out).to_pylist()


def test_batches_follow_batch_size_and_handler_hint(tmp_path):
    handler = Doubler()
    run(handler, tmp_path / "a", items(10), batch_size=3)
    assert [len(b) for b in handler.batches] == [3, 3, 3, 1]
    hinted = Doubler(max_batch=4)
    run(hinted, tmp_path / "b", items(10))
    assert [len(b) for b in hinted.batches] == [4, 4, 2]
    assert hinted.loads == 1  # the model is loaded once per run, not per batch
    rows = {r["video_id"]: r["value"] for r in output_rows(tmp_path / "b")}
    assert rows == {f"v{i:04d}": 2.0 * i for i in range(10)}


def test_batch_size_below_one_is_an_input_error(tmp_path):
    with pytest.raises(SilversetInputError, match="batch-size"):
        run(Doubler(), tmp_path, items(3), batch_size=0)


@pytest.mark.parametrize("n_shards", [1, 3, 8])
def test_shards_cover_every_item_exactly_once(tmp_path, n_shards):
    work = items(200, missing=[5, 17])
    owners: dict[str, list[int]] = {}
    for i in range(n_shards):
        handler = Doubler()
        stats = run(handler, tmp_path, work, shard=Shard(i, n_shards), batch_size=16)
        for batch in handler.batches:
            for key in batch:
                owners.setdefault(key, []).append(i)
        assert stats.items == sum(1 for it in work if shard_of(it.key, n_shards) == i)
    assert sorted(owners) == sorted(it.key for it in work)
    assert all(len(v) == 1 for v in owners.values())
    assert all(v[0] == shard_of(k, n_shards) for k, v in owners.items())  # the stable-hash oracle
    report = merge_check(tmp_path, [it.key for it in work])
    assert report.ok and report.outputs == 198 and report.errors == 2
    assert sorted(tables.read_errors(tmp_path).column("key").to_pylist()) == ["v0005", "v0017"]


def test_resume_after_crash_skips_completed_parts(tmp_path):
    work = items(50)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(Doubler(crash_on_batch=3), tmp_path, work, batch_size=10)
    assert len(output_rows(tmp_path)) == 30  # three batches made it to disk
    again = Doubler()
    stats = run(again, tmp_path, work, batch_size=10)
    redone = [k for b in again.batches for k in b]
    assert sorted(redone) == [f"v{i:04d}" for i in range(30, 50)]
    assert stats.resumed == 30 and stats.processed == 20 and stats.remaining == 0
    assert merge_check(tmp_path, [it.key for it in work]).ok
    # a third run has nothing left to do and does not even load the model
    idle = Doubler()
    assert run(idle, tmp_path, work, batch_size=10).processed == 0 and idle.loads == 0


def test_a_resumed_run_with_nothing_left_keeps_the_measured_cost_per_item(tmp_path):
    """The student gate compares the student's latency with the teacher's from these stats: a re-run that
    finds every item labelled must not erase what labelling cost (it would fail the gate as "unknown")."""
    from silverset.components.evaluate.gate import teacher_latency_from_stats

    work = items(20)
    first = run(Doubler(), tmp_path, work, batch_size=5)
    measured = teacher_latency_from_stats(tmp_path)
    assert first.timed_items == 20 and measured == pytest.approx(first.timed_seconds / 20)
    idle = run(Doubler(), tmp_path, work, batch_size=5)
    assert idle.processed == 0 and idle.timed_items == 20 and idle.timed_seconds == first.timed_seconds
    assert teacher_latency_from_stats(tmp_path) == pytest.approx(measured)


def test_a_resumed_run_over_stats_from_before_the_timing_carries_what_that_run_processed(tmp_path):
    """A stats file written before ``timed_items`` existed still counts: its processed items (cache hits excluded)
    and seconds are the earlier measurement; a broken one starts the measurement afresh instead of failing."""
    work = items(10)
    first = run(Doubler(), tmp_path, work, batch_size=5)
    tag = Shard(0, 1).tag
    stats_file = tmp_path / "stats" / f"shard-{tag}.json"
    stats_file.write_text(json.dumps({"shard": "0/1", "processed": 10, "cache_hits": 4, "seconds": 3.0}))
    idle = run(Doubler(), tmp_path, work, batch_size=5)
    assert first.processed == 10 and (idle.processed, idle.timed_items, idle.timed_seconds) == (0, 6, 3.0)
    assert json.loads(stats_file.read_text())["timed_items"] == 6  # written back in the current shape
    stats_file.write_text("{half a file")
    again = run(Doubler(), tmp_path, work, batch_size=5)
    assert (again.timed_items, again.timed_seconds) == (0, 0.0)


def test_half_written_batch_is_redone_not_counted(tmp_path):
    """kill -9 between the error part and the data part: the orphan error part is ignored and redone."""
    work = items(6, missing=[4])
    run(Doubler(), tmp_path, work, batch_size=3)
    data_part = sorted(tmp_path.glob("part-*.parquet"))[-1]  # the batch holding v0004's error
    data_part.unlink()
    assert merge_check(tmp_path, [it.key for it in work]).missing == ("v0003", "v0004", "v0005")
    handler = Doubler()
    run(handler, tmp_path, work, batch_size=3)
    assert handler.batches == [["v0003", "v0004", "v0005"]]
    assert merge_check(tmp_path, [it.key for it in work]).ok


def test_resume_with_another_model_is_refused(tmp_path):
    run(Doubler(name="doubler-v1"), tmp_path, items(4))
    with pytest.raises(SilversetInputError, match="fresh --out"):
        run(Doubler(name="doubler-v2"), tmp_path, items(4))


def test_merge_check_finds_missing_duplicated_and_unexpected_keys(tmp_path):
    work = items(30)
    run(Doubler(), tmp_path, work, batch_size=10)
    keys = [it.key for it in work]
    assert merge_check(tmp_path, keys).ok
    parts = sorted(tmp_path.glob("part-*.parquet"))
    shutil.copy(parts[0], tmp_path / "part-00000-of-00001-00099.parquet")  # a batch written twice
    parts[1].unlink()  # a batch lost
    report = merge_check(tmp_path, keys + ["v9999"])
    assert not report.ok
    assert report.duplicated == tuple(f"v{i:04d}" for i in range(10))
    assert report.missing == tuple(sorted([f"v{i:04d}" for i in range(10, 20)] + ["v9999"]))
    assert report.unexpected == ()
    report = merge_check(tmp_path, keys[:5])
    assert "v0029" in report.unexpected


def test_an_item_both_labelled_and_in_errors_is_a_duplicate(tmp_path):
    work = items(5)
    run(Doubler(), tmp_path, work)
    tables.write_table(
        tables.errors_table([ErrorRow(key="v0002", uri=None, stage="test", error_type="x", message="")]),
        tmp_path / ".parts" / "errors-00000-of-00001-00000.parquet",
    )
    assert merge_check(tmp_path, [it.key for it in work]).duplicated == ("v0002",)


def test_budget_stop_leaves_valid_partial_output_and_resumes(tmp_path):
    work = items(20)
    handler = Budgeted(budget=0.7, cost=0.1)
    stats = run(handler, tmp_path, work, batch_size=4)
    assert stats.stopped == "budget" and "spent 0.70" in stats.message
    assert stats.outputs == 7 and stats.remaining == 13
    assert stats.cost_usd == pytest.approx(0.7)
    for part in tmp_path.glob("part-*.parquet"):
        assert pq.read_table(part).schema.equals(SCHEMA)  # every file on disk is a whole, readable table
    assert len(output_rows(tmp_path)) == 7
    assert len(merge_check(tmp_path, [it.key for it in work]).missing) == 13
    more = Budgeted(budget=10.0, cost=0.1)
    stats = run(more, tmp_path, work, batch_size=4)
    assert stats.resumed == 7 and stats.outputs == 13 and stats.stopped is None
    assert merge_check(tmp_path, [it.key for it in work]).ok


def test_max_items_bounds_one_run(tmp_path):
    stats = run(Doubler(), tmp_path, items(10), max_items=4)
    assert stats.stopped == "max_items" and stats.processed == 4 and stats.remaining == 6


def test_prior_errors_are_recorded_once_in_their_shard(tmp_path):
    work = items(8)
    prior = [
        ErrorRow(key="gone1", uri=None, stage="test", error_type="no_frames", message="no frames"),
        ErrorRow(key="gone2", uri=None, stage="test", error_type="no_frames", message="no frames"),
    ]
    for i in range(2):
        run(Doubler(), tmp_path, work, shard=Shard(i, 2), prior_errors=prior)
        run(Doubler(), tmp_path, work, shard=Shard(i, 2), prior_errors=prior)  # a rerun adds nothing
    report = merge_check(tmp_path, [it.key for it in work] + ["gone1", "gone2"])
    assert report.ok and report.errors == 2


def test_stats_json_per_shard(tmp_path):
    work = items(40, missing=[3])
    for i in range(2):
        run(Doubler(cost=0.01), tmp_path, work, shard=Shard(i, 2), batch_size=8)
    stats = read_stage_stats(tmp_path)
    assert [s.shard for s in stats] == ["0/2", "1/2"]
    assert sum(s.items for s in stats) == 40
    assert sum(s.outputs for s in stats) == 39 and sum(s.errors for s in stats) == 1
    assert sum(s.error_types.get("no_value", 0) for s in stats) == 1
    assert sum(s.requests for s in stats) == 40
    assert sum(s.cost_usd for s in stats) == pytest.approx(0.39)
    for s in stats:
        assert s.model_id == "doubler-v1" and s.seconds >= 0 and s.remaining == 0
        on_disk = json.loads((tmp_path / "stats" / f"shard-{Shard(int(s.shard[0]), 2).tag}.json").read_text())
        assert on_disk == s.to_dict()


def test_handler_answering_for_unknown_items_fails_loudly(tmp_path):
    class Liar(Doubler):
        def run_inference(self, batch, model):
            return [ItemResult(key="not-asked", row={"video_id": "not-asked", "model_id": self.name, "value": 0.0})]

    with pytest.raises(RuntimeError, match="unknown or repeated"):
        run(Liar(), tmp_path, items(3))


def test_duplicate_input_keys_are_refused(tmp_path):
    with pytest.raises(SilversetInputError, match="appears twice"):
        run(Doubler(), tmp_path, items(3) + items(1))


def test_item_result_has_exactly_one_of_row_or_error():
    with pytest.raises(ValueError):
        ItemResult(key="k")
    with pytest.raises(ValueError):
        ItemResult(key="k", row={}, error_type="x")


class Flaky(Doubler):
    """Fails items in ``transient`` with a retryable error and items in ``terminal`` with a final one."""

    def __init__(self, *, transient=(), terminal=(), **kw):
        super().__init__(**kw)
        self.transient, self.terminal = set(transient), set(terminal)

    def is_final(self, error_type: str) -> bool:
        return error_type == "blocked"

    def run_inference(self, batch, model):
        self.batches.append([it.key for it in batch])
        out = []
        for it in batch:
            if it.key in self.transient:
                out.append(ItemResult(key=it.key, error_type="retries_exhausted", message="server busy"))
            elif it.key in self.terminal:
                out.append(ItemResult(key=it.key, error_type="blocked", message="policy"))
            else:
                out.append(ItemResult(key=it.key, row={"video_id": it.key, "model_id": self.name, "value": 1.0}))
        return out


def test_a_rerun_retries_transient_errors_and_keeps_final_ones(tmp_path):
    work = items(10)
    first = run(Flaky(transient=["v0001", "v0004"], terminal=["v0007"]), tmp_path, work, batch_size=4)
    assert first.errors == 3
    healed = Flaky(terminal=["v0007"])
    second = run(healed, tmp_path, work, batch_size=4)
    assert [k for b in healed.batches for k in b] == ["v0001", "v0004"]  # only the transient failures ran again
    assert second.resumed == 8 and second.outputs == 2
    assert tables.read_errors(tmp_path).column("key").to_pylist() == ["v0007"]  # the old error rows are superseded
    assert merge_check(tmp_path, [it.key for it in work]).ok
    assert run(Flaky(), tmp_path, work).processed == 0  # nothing left: the final verdict stands
