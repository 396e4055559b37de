"""Parquet table IO for stage outputs: schema-checked writes, atomic replacement, errors tables."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from . import schemas
from .errors import SilversetInputError

ERRORS_FILE = "errors.parquet"
STAGING_PREFIX = "._staging-"


def conform(table: pa.Table, schema: pa.Schema, *, name: str = "table") -> pa.Table:
    """Select and cast ``table``'s columns to ``schema`` (extra columns dropped), or raise naming the column."""
    missing = [f.name for f in schema if f.name not in table.column_names]
    if missing:
        raise SilversetInputError(name, f"missing required column(s) {', '.join(repr(m) for m in missing)}")
    columns = []
    for field in schema:
        column = table.column(field.name)
        if not field.nullable and column.null_count:
            raise SilversetInputError(name, f"column '{field.name}' has {column.null_count} null value(s)")
        try:
            columns.append(column.cast(field.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise SilversetInputError(
                name, f"column '{field.name}' is {column.type}, expected {field.type}: {exc}"
            ) from None
    return pa.Table.from_arrays(columns, schema=schema)


def _is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


def _local_path(uri: str) -> str:
    return uri[len("file://") :] if uri.startswith("file://") else uri


def write_table(table: pa.Table, uri: str | Path, schema: pa.Schema | None = None, *, name: str = "table") -> None:
    """Write one Parquet file. Local writes go to a temp name then ``os.replace`` so readers never see half a file."""
    uri = str(uri)
    if schema is not None:
        table = conform(table, schema, name=name)
    if _is_local(uri):
        path = Path(_local_path(uri))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    else:
        with fsspec.open(uri, "wb") as f:
            pq.write_table(table, f)


def parquet_files(uri: str | Path, *, include_errors: bool = False) -> list[str]:
    """Parquet files of a table: the file itself, or every ``*.parquet`` under a directory (sorted).

    ``errors.parquet`` and staging folders are skipped unless ``include_errors``.
    """
    uri = str(uri)
    fs, path = fsspec.core.url_to_fs(uri)
    if not fs.exists(path):
        raise SilversetInputError(f"table '{uri}'", "does not exist")
    if fs.isfile(path):
        return [uri]
    found = []
    for item in sorted(fs.find(path)):
        base = item.rsplit("/", 1)[-1]
        rel = item[len(path.rstrip("/")) + 1 :]
        if not base.endswith(".parquet") or any(part.startswith(".") for part in rel.split("/")):
            continue
        if base == ERRORS_FILE and not include_errors:
            continue
        found.append(fs.unstrip_protocol(item) if not _is_local(uri) else item)
    return found


def read_table(uri: str | Path, schema: pa.Schema | None = None, *, name: str | None = None) -> pa.Table:
    """Read a Parquet file or a directory of Parquet shards into one table, conformed to ``schema``."""
    label = name or f"table '{uri}'"
    files = parquet_files(uri)
    if not files:
        if schema is None:
            raise SilversetInputError(label, "has no Parquet files")
        return schema.empty_table()
    tables = []
    for file in files:
        with fsspec.open(file, "rb") as f:
            tables.append(pq.read_table(f))
    table = pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]
    return conform(table, schema, name=label) if schema is not None else table


@dataclass(frozen=True)
class ErrorRow:
    """One dropped input: its key, where it came from, which stage dropped it, and why."""

    key: str
    stage: str
    error_type: str
    message: str
    uri: str | None = None


def read_json(uri: str | Path) -> dict:
    """A small JSON record (path or fsspec URI); {} when absent. The files stages hand each other are read typed
    through ``common.artifacts`` instead."""
    import json

    fs, path = fsspec.core.url_to_fs(str(uri))
    if not fs.exists(path):
        return {}
    with fs.open(path, "r") as f:
        return json.load(f)


def errors_table(rows: Iterable[ErrorRow]) -> pa.Table:
    rows = list(rows)
    return pa.Table.from_pylist(
        [
            {"key": r.key, "uri": r.uri, "stage": r.stage, "error_type": r.error_type, "message": r.message}
            for r in rows
        ],
        schema=schemas.ERRORS,
    )


def write_errors(out_dir: str | Path, rows: Iterable[ErrorRow]) -> int:
    """Write ``out_dir/errors.parquet`` (always, even when empty, so absence means 'stage did not run')."""
    table = errors_table(rows)
    write_table(table, f"{str(out_dir).rstrip('/')}/{ERRORS_FILE}")
    return table.num_rows


def read_errors(out_dir: str | Path) -> pa.Table:
    path = f"{str(out_dir).rstrip('/')}/{ERRORS_FILE}"
    fs, p = fsspec.core.url_to_fs(path)
    if not fs.exists(p):
        return schemas.ERRORS.empty_table()
    return read_table(path, schemas.ERRORS)


OUTPUT_MARKER = ".silverset-output.json"


def _marker_command(folder: Path) -> str | None:
    """The command named by ``folder``'s output marker, or None when there is none (or it is unreadable)."""
    import json

    try:
        return str(json.loads((folder / OUTPUT_MARKER).read_text())["command"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_output_marker(folder: str | Path, *, command: str) -> None:
    """Mark ``folder`` as written by ``silverset <command>`` so a later run of the same command may replace it.

    The content is deterministic (no time stamp) so digests of a folder never depend on when it was written.
    """
    import json

    (Path(folder) / OUTPUT_MARKER).write_text(json.dumps({"command": command}) + "\n")


def check_output_folder(
    out_dir: str | Path, *, command: str, overwrite: bool = False, replaces: bool = True
) -> Path | None:
    """Refuse an ``--out`` whose replacement would delete a user's files; returns its absolute local path.

    Allowed: a path that does not exist, an empty folder, a folder this same command wrote (marker file),
    or any other folder when ``overwrite``. Always refused: a file (or any non-folder), a symbolic link,
    and the current directory or one of its parents. ``replaces``: the command replaces the whole folder
    (else it adds files to it, and --overwrite is not offered). Object-store URIs are not checked (None).
    """
    uri = str(out_dir)
    if not _is_local(uri):
        return None
    name = f"--out '{uri}'"
    if not _local_path(uri).strip():
        raise SilversetInputError("--out", "is empty; name the folder to write")
    out = Path(os.path.abspath(os.path.expanduser(_local_path(uri))))
    cwd = Path.cwd()
    if out == Path(out.anchor) or out == Path.home() or out == cwd or out in cwd.parents:
        raise SilversetInputError(
            name, "is the current directory, a parent of it, the home folder or the root; name a new folder to write"
        )
    if out.is_symlink():
        raise SilversetInputError(name, "is a symbolic link; name the folder itself")
    if not out.exists():
        return out
    if not out.is_dir():
        raise SilversetInputError(
            name, f"is a file, not a folder; `silverset {command}` writes a folder and never replaces a file"
        )
    if not any(out.iterdir()) or overwrite:
        return out
    writer = _marker_command(out)
    if writer == command:
        return out
    who = f"was written by `silverset {writer}`" if writer else f"is a non-empty folder without {OUTPUT_MARKER}"
    if replaces:
        raise SilversetInputError(
            name,
            f"{who}, not by `silverset {command}`; its files would be deleted. "
            "Choose a new folder, or pass --overwrite to replace it",
        )
    raise SilversetInputError(
        name,
        f"{who}, not by `silverset {command}`; its files would be mixed with "
        "this command's. Choose a new or empty folder",
    )


def _remove_created(created: list[Path]) -> None:
    """Remove the (still empty) parent folders a failed run created, innermost first."""
    for folder in reversed(created):
        try:
            folder.rmdir()
        except OSError:
            return


def _mkdir_parents(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; returns the ones created, outermost first."""
    missing = [p for p in [folder, *folder.parents] if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    return list(reversed(missing))


@contextlib.contextmanager
def atomic_directory(out_dir: str | Path, *, command: str, overwrite: bool = False) -> Iterator[Path]:
    """Yield a staging folder beside ``out_dir``; on success it replaces ``out_dir`` in two renames.

    ``out_dir`` is checked first (``check_output_folder``): a file, the current directory, or a non-empty
    folder that ``silverset <command>`` did not write is refused unless ``overwrite``. The new folder gets
    the command's marker. A crash leaves the previous output intact (and a hidden staging folder that the
    next run removes) and removes the parent folders it created: no reader ever sees a half-written set
    of shards. Local filesystems only; object-store outputs are written per object by the stage itself.
    """
    out = check_output_folder(out_dir, command=command, overwrite=overwrite)
    if out is None:
        raise SilversetInputError(f"--out '{out_dir}'", "atomic replacement needs a local folder")
    created = _mkdir_parents(out.parent)
    for stale in out.parent.glob(f"{STAGING_PREFIX}{out.name}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    staging = out.parent / f"{STAGING_PREFIX}{out.name}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        yield staging
        write_output_marker(staging, command=command)
        check_output_folder(out, command=command, overwrite=overwrite)  # nothing appeared there meanwhile
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        _remove_created(created)
        raise
    trash = out.parent / f"{STAGING_PREFIX}{out.name}-old-{uuid.uuid4().hex[:8]}"
    if out.exists():
        os.replace(out, trash)
    os.replace(staging, out)
    shutil.rmtree(trash, ignore_errors=True)


@contextlib.contextmanager
def resumable_output_folder(out_dir: str | Path, *, command: str) -> Iterator[None]:
    """Guard the ``--out`` of a resumable command (annotate, embed, evaluate) that writes into the folder.

    Refused like ``check_output_folder`` (without overwrite: these commands add to a folder, they never
    replace it). The folder gets the command's marker so a later run may resume in it. When the run fails,
    a folder it created is removed if it holds no file but the marker (empty ``.parts/`` and ``stats/``
    folders included), so a failed start leaves nothing behind; finished parts are always kept.
    """
    out = check_output_folder(out_dir, command=command, replaces=False)
    if out is None:
        yield
        return
    existed = out.exists()
    created = _mkdir_parents(out)
    write_output_marker(out, command=command)
    try:
        yield
    except BaseException:
        if not existed and not any(p.is_file() and p.name != OUTPUT_MARKER for p in out.rglob("*")):
            shutil.rmtree(out, ignore_errors=True)
            _remove_created(created[:-1])
        raise
