"""Read a video manifest (CSV, JSONL or Parquet; local path or fsspec URI) into the manifest table."""

from __future__ import annotations

from collections import Counter

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from . import schemas
from .errors import SilversetInputError
from .tables import ErrorRow

FORMATS = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}


def manifest_format(uri: str) -> str:
    lowered = uri.lower()
    for suffix, fmt in FORMATS.items():
        if lowered.endswith(suffix):
            return fmt
    raise SilversetInputError(f"manifest '{uri}'", f"unknown format; use one of {', '.join(sorted(FORMATS))}")


def _read_raw(uri: str) -> pa.Table:
    fmt = manifest_format(uri)
    try:
        with fsspec.open(uri, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise SilversetInputError(f"manifest '{uri}'", "file not found") from None
    if not data.strip():
        raise SilversetInputError(f"manifest '{uri}'", "is empty (no rows)")
    buf = pa.BufferReader(data)
    try:
        if fmt == "csv":
            # Everything is read as text: ids like "007" must not become integers.
            probe = pacsv.read_csv(pa.BufferReader(data), read_options=pacsv.ReadOptions(block_size=1 << 16))
            types = {name: pa.string() for name in probe.column_names}
            return pacsv.read_csv(buf, convert_options=pacsv.ConvertOptions(column_types=types))
        if fmt == "jsonl":
            return pajson.read_json(buf)
        return pq.read_table(buf)
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as exc:
        first_line = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise SilversetInputError(f"manifest '{uri}'", f"cannot be parsed as {fmt}: {first_line}") from None


def read_manifest(uri: str, *, stage: str = "manifest") -> tuple[pa.Table, list[ErrorRow]]:
    """Return (manifest rows conformed to schemas.MANIFEST plus extra columns, per-row errors).

    Manifest-level problems (missing file, unknown format, missing required column, no rows) raise
    SilversetInputError. Row-level problems (empty id or uri, duplicate video_id) become error rows:
    the first occurrence of a duplicated id is kept, later ones are dropped.
    """
    raw = _read_raw(uri)
    repeated = sorted({c for c in raw.column_names if raw.column_names.count(c) > 1})
    if repeated:
        raise SilversetInputError(
            f"manifest '{uri}'", f"column(s) {', '.join(repr(c) for c in repeated)} appear more than once"
        )
    missing = [c for c in schemas.MANIFEST_REQUIRED if c not in raw.column_names]
    if missing:
        raise SilversetInputError(
            f"manifest '{uri}'",
            f"missing required column(s) {', '.join(repr(c) for c in missing)}; found {raw.column_names}",
        )
    if raw.num_rows == 0:
        raise SilversetInputError(f"manifest '{uri}'", "is empty (no rows)")
    columns = {}
    for name in raw.column_names:
        col = raw.column(name)
        if name in ("video_id", "uri", "title", "description") and col.type != pa.string():
            try:
                col = pc.cast(col, pa.string())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise SilversetInputError(
                    f"manifest '{uri}'", f"column '{name}' holds {col.type} values, not UTF-8 text"
                ) from None
        columns[name] = col
    for optional in ("title", "description"):
        columns.setdefault(optional, pa.nulls(raw.num_rows, pa.string()))
    table = pa.table(columns)

    errors: list[ErrorRow] = []
    keep = []
    seen: Counter[str] = Counter()
    ids = table.column("video_id").to_pylist()
    uris = table.column("uri").to_pylist()
    for row, (video_id, video_uri) in enumerate(zip(ids, uris)):
        if not video_id or not str(video_id).strip():
            errors.append(
                ErrorRow(
                    key=f"<row {row}>",
                    uri=video_uri,
                    stage=stage,
                    error_type="missing_video_id",
                    message=f"row {row} has an empty video_id",
                )
            )
            continue
        if not video_uri or not str(video_uri).strip():
            errors.append(
                ErrorRow(
                    key=video_id,
                    uri=None,
                    stage=stage,
                    error_type="missing_uri",
                    message=f"video '{video_id}' (row {row}) has an empty uri",
                )
            )
            continue
        seen[video_id] += 1
        if seen[video_id] > 1:
            errors.append(
                ErrorRow(
                    key=video_id,
                    uri=video_uri,
                    stage=stage,
                    error_type="duplicate_video_id",
                    message=f"video_id '{video_id}' appears again at row {row}; the first row is kept",
                )
            )
            continue
        keep.append(row)
    ordered = ["video_id", "uri", "title", "description"] + [
        c for c in table.column_names if c not in ("video_id", "uri", "title", "description")
    ]
    return table.take(pa.array(keep, pa.int64())).select(ordered), errors
