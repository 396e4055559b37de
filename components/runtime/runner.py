"""The sharded, batched, resumable runner written once around a ModelHandler.

Output layout of one stage directory (several shards may write into the same one)::

    out/part-<shard tag>-<seq>.parquet     output rows of one batch (written atomically; its presence
                                           marks every item of that batch as done)
    out/.parts/errors-<shard tag>-<seq>.parquet   error rows of the same batch (hidden from readers)
    out/errors.parquet                     union of every shard's error parts, rewritten at shard end
    out/stats/shard-<shard tag>.json       per-shard stats: items, errors, seconds, cost, requests

A crashed run (kill -9 included) resumes by skipping every item found in a completed part, so no item
is computed (or paid for) twice and none is lost. An item whose error the handler calls transient
(``ModelHandler.is_final``) is run again by a rerun; its old error row is then superseded. ``merge_check``
verifies the exactly-once contract.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from silverset.components.common import schemas, tables
from silverset.components.common.artifacts import (
    SHARD_STATS_DIR,
    ShardStats,
    read_shard_stats,
    shard_stats_uri,
    write_shard_stats,
)
from silverset.components.common.errors import SilversetInputError
from silverset.components.common.sharding import Shard
from silverset.components.common.tables import ErrorRow

from .handler import BudgetExhausted, ItemResult, ModelHandler, WorkItem

_LOGGER = logging.getLogger(__name__)

PARTS_DIR = ".parts"
_PART_RE = re.compile(r"^part-(?P<tag>\d{5}-of-\d{5})-(?P<seq>\d{5})\.parquet$")


class _Folder:
    """A stage output folder on any fsspec filesystem (a local path or an s3://, gs:// URI)."""

    def __init__(self, out_dir: str | Path):
        import fsspec

        self.uri = str(out_dir).rstrip("/")
        self.fs, self.path = fsspec.core.url_to_fs(self.uri)
        self.local = "://" not in self.uri or self.uri.startswith("file://")

    def __str__(self) -> str:
        return self.uri

    def join(self, *parts: str) -> str:
        """URI of ``parts`` under the folder (a plain path when local)."""
        base = self.path if self.local else self.uri
        return "/".join([base.rstrip("/"), *parts])

    def names(self, sub: str, pattern: str) -> list[str]:
        """Sorted file names under ``sub`` ("" = the folder) matching the glob ``pattern``."""
        folder = "/".join(p for p in (self.path.rstrip("/"), sub) if p)
        return sorted(item.rsplit("/", 1)[-1] for item in self.fs.glob(f"{folder}/{pattern}"))

    def exists(self, *parts: str) -> bool:
        return self.fs.exists("/".join([self.path.rstrip("/"), *parts]))

    def makedirs(self, *parts: str) -> None:
        self.fs.makedirs("/".join([self.path.rstrip("/"), *parts]), exist_ok=True)

    def read_parquet(self, *parts: str, columns: list[str] | None = None) -> pa.Table:
        with self.fs.open("/".join([self.path.rstrip("/"), *parts]), "rb") as f:
            return pq.read_table(f, columns=columns)

    def read_text(self, *parts: str) -> str:
        with self.fs.open("/".join([self.path.rstrip("/"), *parts]), "r") as f:
            return f.read()

    def write_text(self, text: str, *parts: str) -> None:
        with self.fs.open("/".join([self.path.rstrip("/"), *parts]), "w") as f:
            f.write(text)


def _completed(
    out: _Folder, shard: Shard, key_column: str, id_column: str, model_id: str, is_final=lambda error_type: True
) -> tuple[set[str], int]:
    """Keys done by earlier runs of this shard, and the next part sequence number.

    An item is done when a part holds its output row or an error the handler calls final; an item whose
    only errors are transient (``is_final`` False) is run again.
    """
    done: set[str] = set()
    next_seq = 0
    for name in out.names("", f"part-{shard.tag}-*.parquet"):
        match = _PART_RE.match(name)
        if not match:
            continue
        seq = int(match["seq"])
        next_seq = max(next_seq, seq + 1)
        part = out.read_parquet(name, columns=[key_column, id_column])
        ids = set(part.column(id_column).to_pylist())
        if ids and ids != {model_id}:
            raise SilversetInputError(
                f"output '{out}'",
                f"holds results of {sorted(ids)[0]!r}, not {model_id!r}; use a fresh --out to change the model",
            )
        done.update(part.column(key_column).to_pylist())
        err_name = f"errors-{shard.tag}-{seq:05d}.parquet"
        if out.exists(PARTS_DIR, err_name):
            errors = out.read_parquet(PARTS_DIR, err_name, columns=["key", "error_type"]).to_pylist()
            done.update(e["key"] for e in errors if is_final(e["error_type"]))
    return done, next_seq


def collect_errors(out_dir: "str | Path | _Folder", *, key_column: str = "video_id") -> int:
    """Rewrite ``out/errors.parquet`` as the union of every shard's error parts; returns its row count.

    An error row that a later part of the same shard answered again (a transient error retried by a rerun)
    is superseded and left out; an item with a row and an error in the same part stays a duplicate.
    """
    out = out_dir if isinstance(out_dir, _Folder) else _Folder(out_dir)
    error_parts: list[tuple[str, int, pa.Table]] = []
    for err in out.names(PARTS_DIR, "errors-*.parquet"):
        match = _PART_RE.match(err.replace("errors-", "part-", 1))
        if match and out.exists(err.replace("errors-", "part-", 1)):  # no data part: an unfinished batch
            error_parts.append((match["tag"], int(match["seq"]), out.read_parquet(PARTS_DIR, err)))
    latest: dict[tuple[str, str], int] = {}  # (shard tag, key) -> last part sequence that holds the key
    if error_parts:
        for name in out.names("", "part-*.parquet"):
            match = _PART_RE.match(name)
            if match:
                for key in out.read_parquet(name, columns=[key_column]).column(key_column).to_pylist():
                    latest[(match["tag"], key)] = max(latest.get((match["tag"], key), -1), int(match["seq"]))
        for tag, seq, part in error_parts:
            for key in part.column("key").to_pylist():
                latest[(tag, key)] = max(latest.get((tag, key), -1), seq)
    rows = [
        part.filter(pa.array([latest[(tag, k)] == seq for k in part.column("key").to_pylist()], pa.bool_()))
        for tag, seq, part in error_parts
    ]
    table = pa.concat_tables(rows) if rows else schemas.ERRORS.empty_table()
    tables.write_table(table, out.join(tables.ERRORS_FILE), schemas.ERRORS, name="errors")
    return table.num_rows


def run_sharded(
    *,
    items: Sequence[WorkItem],
    handler: ModelHandler,
    out_dir: str | Path,
    schema: pa.Schema,
    shard: Shard = Shard(),
    batch_size: int | None = None,
    prior_errors: Sequence[ErrorRow] = (),
    max_items: int | None = None,
    key_column: str = "video_id",
    id_column: str,
    progress: bool = False,
    description: str = "inference",
) -> ShardStats:
    """Run ``handler`` over the items this ``shard`` owns, in batches, resuming from completed parts.

    ``prior_errors`` are inputs already dropped upstream of the handler (e.g. a video with no frames);
    they are recorded once, in this run's first part. ``max_items`` bounds the items processed in this
    run (the rest stay ``remaining`` for a later run). Returns the shard's stats (also written as JSON).
    """
    out = _Folder(out_dir)
    out.makedirs(PARTS_DIR)
    out.makedirs(SHARD_STATS_DIR)
    model_id = handler.model_id
    stats = ShardStats(shard=str(shard), model_id=model_id)

    owned = [it for it in items if shard.owns(it.key)]
    owned_errors = [e for e in prior_errors if shard.owns(e.key)]
    seen: set[str] = set()
    for it in owned:
        if it.key in seen:
            raise SilversetInputError(description, f"item '{it.key}' appears twice; keys must be unique")
        seen.add(it.key)
    done, seq = _completed(out, shard, key_column, id_column, model_id, handler.is_final)
    stats.items = len(owned) + len(owned_errors)
    pending = [it for it in owned if it.key not in done]
    pending_errors = [e for e in owned_errors if e.key not in done]
    stats.resumed = stats.items - len(pending) - len(pending_errors)
    if max_items is not None and len(pending) > max_items:
        pending, stats.stopped = pending[:max_items], "max_items"

    size = batch_size if batch_size is not None else handler.batch_elements_kwargs().get("max_batch_size", 32)
    if size < 1:
        raise SilversetInputError("--batch-size", f"must be >= 1, got {size}")
    start = time.perf_counter()
    model = handler.load_model() if pending else None

    def write_part(results: list[ItemResult], extra_errors: Sequence[ErrorRow] = ()) -> None:
        nonlocal seq
        rows = [r.row for r in results if r.row is not None]
        errors = list(extra_errors) + [
            ErrorRow(
                key=r.key,
                uri=uris.get(r.key),
                stage=handler.stage,
                error_type=r.error_type or "error",
                message=r.message or "",
            )
            for r in results
            if r.error_type is not None
        ]
        # errors first, then the data part: the data part's atomic appearance marks the batch done.
        tables.write_table(tables.errors_table(errors), out.join(PARTS_DIR, f"errors-{shard.tag}-{seq:05d}.parquet"))
        tables.write_table(
            pa.Table.from_pylist(rows, schema=schema),
            out.join(f"part-{shard.tag}-{seq:05d}.parquet"),
            schema,
            name=description,
        )
        seq += 1
        stats.outputs += len(rows)
        stats.errors += len(errors)
        for e in errors:
            stats.error_types[e.error_type] = stats.error_types.get(e.error_type, 0) + 1
        for r in results:
            stats.cost_usd += r.cost_usd
            stats.requests += r.requests
            stats.cache_hits += int(r.cached)
        stats.processed += len(results) + len(extra_errors)
        failed = [r for r in results if r.error_type is not None]
        _LOGGER.debug("%s [shard %s]: part %d, %d rows, %d errors", description, shard, seq - 1, len(rows), len(errors))
        if failed:  # extra_errors were dropped upstream: their stage reports them
            _LOGGER.warning(
                "%s [shard %s]: %d item(s) written to the errors table (%s); first: %s",
                description,
                shard,
                len(failed),
                ", ".join(sorted({r.error_type or "error" for r in failed})),
                ", ".join(r.key for r in failed[:5]),
            )

    uris = {it.key: it.uri for it in pending}
    bar = None
    if progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        bar = Progress(
            TextColumn(f"{description} [shard {shard}]"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            transient=False,
        )
        bar.start()
        task = bar.add_task(description, total=len(pending))
    try:
        if pending_errors and not pending:
            write_part([], pending_errors)
            pending_errors = []
        for lo in range(0, len(pending), size):
            batch = pending[lo : lo + size]
            try:
                results = handler.run_inference(batch, model)
            except BudgetExhausted as stop:
                write_part(_check(stop.partial, batch), pending_errors)
                pending_errors = []
                stats.stopped, stats.message = "budget", str(stop)
                break
            write_part(_check(results, batch), pending_errors)
            pending_errors = []
            if bar is not None:
                bar.update(task, advance=len(batch))
    finally:
        if bar is not None:
            bar.stop()
        stats.seconds = round(time.perf_counter() - start, 4)
        stats.items_per_s = round(stats.processed / stats.seconds, 3) if stats.seconds > 0 else 0.0
        stats.cost_usd = round(stats.cost_usd, 6)
        stats.remaining = stats.items - stats.resumed - stats.processed
        _carry_timing(out, shard, stats)
        collect_errors(out, key_column=key_column)
        write_shard_stats(out.uri, stats, tag=shard.tag)
    return stats


def _carry_timing(out: _Folder, shard: Shard, stats: ShardStats) -> None:
    """Add this run's timed items to what earlier runs of the shard measured (their stats file, if any)."""
    previous = ShardStats()
    if out.exists(SHARD_STATS_DIR, f"shard-{shard.tag}.json"):
        try:
            previous = read_shard_stats(shard_stats_uri(out.uri, shard.tag))
        except SilversetInputError:
            previous = ShardStats()  # an unreadable record: this run's timing starts afresh
    if "timed_items" in previous.model_fields_set:
        timed_before, seconds_before = previous.timed_items, previous.timed_seconds
    else:  # written before the timing was carried: what that run processed, cache hits excluded
        timed_before, seconds_before = previous.processed - previous.cache_hits, previous.seconds
    ran = stats.processed - stats.cache_hits
    stats.timed_items = max(timed_before, 0) + max(ran, 0)
    stats.timed_seconds = round(seconds_before + (stats.seconds if ran > 0 else 0.0), 4)


def _check(results: list[ItemResult], batch: Sequence[WorkItem]) -> list[ItemResult]:
    """A handler must answer each item at most once and only for items it was given."""
    keys = {it.key for it in batch}
    got = [r.key for r in results]
    if len(got) != len(set(got)) or not set(got) <= keys:
        raise RuntimeError(f"handler returned results for unknown or repeated items: {sorted(set(got) - keys)[:5]}")
    return results


@dataclass(frozen=True)
class MergeReport:
    """Exactly-once check of a stage directory against the keys that went in."""

    expected: int
    outputs: int
    errors: int
    missing: tuple[str, ...]
    duplicated: tuple[str, ...]
    unexpected: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not (self.missing or self.duplicated or self.unexpected)


def merge_check(out_dir: str | Path, expected_keys: Sequence[str], *, key_column: str = "video_id") -> MergeReport:
    """Check every expected key is in the output rows or errors.parquet exactly once (all shards together)."""
    out = _Folder(out_dir)
    collect_errors(out, key_column=key_column)
    keys: list[str] = []
    n_out = 0
    for name in out.names("", "part-*.parquet"):
        part = out.read_parquet(name, columns=[key_column]).column(key_column).to_pylist()
        keys += part
        n_out += len(part)
    err_keys = tables.read_errors(out.join()).column("key").to_pylist()
    keys += err_keys
    counts: dict[str, int] = {}
    for k in keys:
        counts[k] = counts.get(k, 0) + 1
    expected = set(expected_keys)
    return MergeReport(
        expected=len(expected),
        outputs=n_out,
        errors=len(err_keys),
        missing=tuple(sorted(expected - counts.keys())),
        duplicated=tuple(sorted(k for k, c in counts.items() if c > 1)),
        unexpected=tuple(sorted(counts.keys() - expected)),
    )
