"""Manifests: CSV, JSONL and Parquet read alike; every manifest-level problem is a clear input error."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from silverset.components.common import schemas
from silverset.components.common.errors import SilversetInputError
from silverset.components.common.manifest import read_manifest

ROWS = [
    {"video_id": "007", "uri": "/v/a.mp4", "title": "A", "description": "first", "channel": "c1"},
    {"video_id": "b", "uri": "gs://bucket/b.mp4", "title": "B", "description": None, "channel": "c2"},
]


def write(tmp_path, fmt: str, rows: list[dict], name: str = "manifest"):
    path = tmp_path / f"{name}.{fmt}"
    if fmt == "csv":
        columns = list(rows[0]) if rows else ["video_id", "uri"]
        lines = [",".join(columns)] + [",".join("" if r.get(c) is None else str(r[c]) for c in columns) for r in rows]
        path.write_text("\n".join(lines) + "\n")
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)
    return path


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_each_format_reads_to_the_same_rows(tmp_path, fmt):
    table, errors = read_manifest(str(write(tmp_path, fmt, ROWS)))
    assert errors == []
    assert table.column_names[:4] == ["video_id", "uri", "title", "description"]
    assert table.column("video_id").to_pylist() == ["007", "b"]  # ids stay text: "007" is not 7
    assert table.column("uri").to_pylist() == ["/v/a.mp4", "gs://bucket/b.mp4"]
    assert table.column("channel").to_pylist() == ["c1", "c2"]  # extra metadata passes through
    assert table.schema.field("video_id").type == pa.string()


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_title_and_description_are_optional(tmp_path, fmt):
    table, _ = read_manifest(str(write(tmp_path, fmt, [{"video_id": "a", "uri": "/a.mp4"}])))
    assert table.column("title").to_pylist() == [None]
    assert table.column("description").to_pylist() == [None]


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_missing_required_column_is_named(tmp_path, fmt):
    path = write(tmp_path, fmt, [{"video_id": "a", "title": "no uri"}])
    with pytest.raises(SilversetInputError) as info:
        read_manifest(str(path))
    assert str(path) in str(info.value) and "'uri'" in str(info.value) and "missing required column" in str(info.value)


def test_empty_manifests_are_refused(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "header_only.csv").write_text("video_id,uri\n")
    (tmp_path / "empty.jsonl").write_text("\n\n")
    pq.write_table(schemas.MANIFEST.empty_table(), tmp_path / "empty.parquet")
    for name in ("empty.csv", "header_only.csv", "empty.jsonl", "empty.parquet"):
        with pytest.raises(SilversetInputError, match="empty"):
            read_manifest(str(tmp_path / name))


def test_missing_file_unknown_format_and_unparsable_file(tmp_path):
    with pytest.raises(SilversetInputError, match="file not found"):
        read_manifest(str(tmp_path / "absent.csv"))
    (tmp_path / "m.xlsx").write_text("x")
    with pytest.raises(SilversetInputError, match="unknown format"):
        read_manifest(str(tmp_path / "m.xlsx"))
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(SilversetInputError, match="cannot be parsed as parquet"):
        read_manifest(str(tmp_path / "bad.parquet"))
    (tmp_path / "bad.jsonl").write_text('{"video_id": "a", "uri": \n')
    with pytest.raises(SilversetInputError, match="cannot be parsed as jsonl"):
        read_manifest(str(tmp_path / "bad.jsonl"))


def test_row_problems_become_error_rows_and_every_row_is_accounted_for(tmp_path):
    rows = [
        {"video_id": "a", "uri": "/a.mp4"},
        {"video_id": "a", "uri": "/a-again.mp4"},
        {"video_id": "", "uri": "/nameless.mp4"},
        {"video_id": "c", "uri": ""},
        {"video_id": "d", "uri": "/d.mp4"},
    ]
    table, errors = read_manifest(str(write(tmp_path, "jsonl", rows)), stage="frames")
    assert table.column("video_id").to_pylist() == ["a", "d"]
    assert table.column("uri").to_pylist() == ["/a.mp4", "/d.mp4"]  # first occurrence of a duplicate wins
    assert sorted(e.error_type for e in errors) == ["duplicate_video_id", "missing_uri", "missing_video_id"]
    assert all(e.stage == "frames" for e in errors)
    assert table.num_rows + len(errors) == len(rows)
