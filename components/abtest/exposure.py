"""The exposure log: one row per experiment search request, written by the index server, read by the analysis.

The server appends an ``Exposure`` per request (a list append under a lock: nothing is encoded or
written on the request path). A background thread turns the buffered rows into Parquet files of at
most ``max_rows`` rows, at least every ``max_seconds``, and on ``close()``. Each file is written to a
hidden temporary name, fsynced and renamed into place, so a reader only ever sees finished files:
``exposures-<utcstamp>-<pid>-<seq>.parquet``. Pre-forked workers each open their own log (the pid in
the name keeps them apart).
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq

from silverset.components.common.errors import SilversetInputError

log = logging.getLogger(__name__)

EXPOSURE_SCHEMA = pa.schema(
    [
        pa.field("experiment_id", pa.string(), nullable=False),
        pa.field("request_id", pa.string(), nullable=False),
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("arm", pa.string(), nullable=False),  # "control" | "treatment"
        pa.field("triggered", pa.bool_(), nullable=False),
        pa.field("served", pa.bool_(), nullable=False),  # true only in treatment, triggered, with results returned
        pa.field("affinity", pa.float64()),  # null when the request sent a vector, not a history
        pa.field("trigger_source", pa.string(), nullable=False),  # "rule" | "model"
        pa.field("attribute", pa.string(), nullable=False),
        pa.field("attribute_version", pa.int64(), nullable=False),
        pa.field("index_version", pa.string(), nullable=False),
        pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)
FILE_PREFIX = "exposures-"
FILE_SUFFIX = ".parquet"


class Exposure(NamedTuple):
    """One logged request, fields in ``EXPOSURE_SCHEMA`` order; ``ts`` in seconds since the epoch (time.time())."""

    experiment_id: str
    request_id: str
    user_id: str
    arm: str
    triggered: bool
    served: bool
    affinity: float | None
    trigger_source: str
    attribute: str
    attribute_version: int
    index_version: str
    ts: float


def exposures_table(rows: list[Exposure]) -> pa.Table:
    """Rows as a table in ``EXPOSURE_SCHEMA`` (timestamps to whole microseconds, UTC)."""
    columns = list(zip(*rows, strict=True)) if rows else [[] for _ in EXPOSURE_SCHEMA]
    arrays = []
    for field, values in zip(EXPOSURE_SCHEMA, columns, strict=True):
        if field.name == "ts":
            values = [int(round(t * 1_000_000)) for t in values]
        arrays.append(pa.array(values, type=field.type))
    return pa.Table.from_arrays(arrays, schema=EXPOSURE_SCHEMA)


class ExposureLog:
    """Buffered, thread-safe exposure appender rotating to finalized Parquet files in ``directory``.

    ``max_rows``: most rows per file (a full buffer wakes the writer early). ``max_seconds``: longest a
    row waits in memory before its file is finalized. ``max_pending_rows``: rows held while writes keep
    failing (a full or read-only disk), 10 files' worth by default; beyond it the oldest are dropped and
    counted in ``rows_dropped``. A buffered row takes about 330 bytes (50,000 rows: about 16 MiB).
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        max_rows: int = 50_000,
        max_seconds: float = 60.0,
        max_pending_rows: int | None = None,
    ):
        if max_rows < 1:
            raise SilversetInputError("exposure log max_rows", f"must be at least 1, got {max_rows}")
        if not max_seconds > 0:
            raise SilversetInputError("exposure log max_seconds", f"must be positive, got {max_seconds}")
        self.directory = Path(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SilversetInputError(
                f"exposure log '{directory}'", f"cannot create the folder: {exc.strerror or exc}"
            ) from None
        if not os.access(self.directory, os.W_OK):
            raise SilversetInputError(f"exposure log '{directory}'", "folder is not writable")
        self.max_rows = max_rows
        self.max_seconds = max_seconds
        self.max_pending_rows = max_pending_rows if max_pending_rows is not None else 10 * max_rows
        self.rows_written = 0
        self.rows_dropped = 0
        self.files_written = 0
        self._pending: list[Exposure] = []
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._seq = 0
        self._writer = threading.Thread(target=self._run, name="exposure-log", daemon=True)
        self._writer.start()

    def append(self, exposure: Exposure) -> None:
        """Buffer one row (cheap: no encoding, no I/O). Raises RuntimeError after ``close()``."""
        if self._closed.is_set():
            raise RuntimeError(f"exposure log '{self.directory}' is closed")
        with self._lock:
            self._pending.append(exposure)
            full = len(self._pending) >= self.max_rows
        if full:
            self._wake.set()

    def _run(self) -> None:
        while not self._closed.is_set():
            self._wake.wait(self.max_seconds)
            self._wake.clear()
            if self._closed.is_set():
                break
            self.flush()

    def flush(self) -> int:
        """Finalize every buffered row into files of at most ``max_rows`` rows; returns rows written."""
        with self._flushing:
            with self._lock:
                rows, self._pending = self._pending, []
            written = 0
            for start in range(0, len(rows), self.max_rows):
                chunk = rows[start : start + self.max_rows]
                try:
                    self._write_file(chunk)
                except OSError as exc:
                    self._requeue(rows[start:])
                    log.error(
                        "exposure log '%s': could not write %d rows (kept in memory, retried): %s",
                        self.directory,
                        len(rows) - start,
                        exc,
                    )
                    break
                written += len(chunk)
            self.rows_written += written
            return written

    def _requeue(self, rows: list[Exposure]) -> None:
        with self._lock:
            self._pending = rows + self._pending
            excess = len(self._pending) - self.max_pending_rows
            if excess > 0:
                del self._pending[:excess]
                self.rows_dropped += excess
                log.error(
                    "exposure log '%s': dropped the %d oldest unwritten rows (over %d pending)",
                    self.directory,
                    excess,
                    self.max_pending_rows,
                )

    def _write_file(self, rows: list[Exposure]) -> Path:
        table = exposures_table(rows)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        partial = self.directory / f".{FILE_PREFIX}{stamp}-{os.getpid()}-{uuid.uuid4().hex}.tmp"
        try:
            with open(partial, "wb") as handle:
                pq.write_table(table, handle)
                handle.flush()
                os.fsync(handle.fileno())
            final = self._finalize(partial, stamp)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        self.files_written += 1
        return final

    def _finalize(self, partial: Path, stamp: str) -> Path:
        """Publish ``partial`` under the first free ``exposures-<stamp>-<pid>-<seq>`` name, never replacing a file.

        Pods sharing one folder all run as pid 1: a hard link fails on an existing name (the next seq is
        tried) where a rename would silently overwrite another pod's rows. Without hard links (some network
        or FUSE filesystems) it falls back to a rename.
        """
        while True:
            final = self.directory / f"{FILE_PREFIX}{stamp}-{os.getpid()}-{self._seq:06d}{FILE_SUFFIX}"
            self._seq += 1
            try:
                os.link(partial, final)
            except FileExistsError:
                continue
            except OSError:
                if final.exists():
                    continue
                os.replace(partial, final)
                return final
            partial.unlink()
            return final

    def close(self) -> None:
        """Stop the writer and finalize what is buffered. Idempotent."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._wake.set()
        self._writer.join()
        self.flush()

    def __enter__(self) -> "ExposureLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def exposure_files(directory: str | Path) -> list[Path]:
    """The finalized exposure files in ``directory``, oldest name first (temporary files are never listed)."""
    return sorted(p for p in Path(directory).glob(f"{FILE_PREFIX}*{FILE_SUFFIX}") if p.is_file())


def read_exposures(directory: str | Path) -> pa.Table:
    """Every finalized exposure file in ``directory`` as one table in ``EXPOSURE_SCHEMA`` (empty when none yet)."""
    folder = Path(directory)
    if not folder.is_dir():
        raise SilversetInputError(f"exposures '{directory}'", "folder not found")
    tables = []
    for path in exposure_files(folder):
        try:
            table = pq.read_table(path)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is named, not skipped
            raise SilversetInputError(f"exposures '{path}'", f"cannot be read: {type(exc).__name__}: {exc}") from None
        if not table.schema.equals(EXPOSURE_SCHEMA, check_metadata=False):
            raise SilversetInputError(
                f"exposures '{path}'", f"schema differs from the exposure log's (columns {table.column_names})"
            )
        tables.append(table)
    if not tables:
        return EXPOSURE_SCHEMA.empty_table()
    return pa.concat_tables(tables)
