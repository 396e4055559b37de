"""Table IO: schema-checked writes, shard discovery, errors tables, atomic directory replacement."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from silverset.components.common import schemas, tables
from silverset.components.common.errors import SilversetInputError
from silverset.components.common.tables import ErrorRow


def truth_rows(n: int) -> pa.Table:
    return pa.table(
        {"video_id": [f"v{i}" for i in range(n)], "attribute": ["a"] * n, "label": list(range(n)), "extra": [0] * n}
    )


def test_write_table_conforms_to_the_schema_and_leaves_no_temp_files(tmp_path):
    tables.write_table(truth_rows(3), tmp_path / "sub" / "truth.parquet", schemas.TRUTH)
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["truth.parquet"]
    read = pq.read_table(tmp_path / "sub" / "truth.parquet")
    assert read.schema.names == ["video_id", "attribute", "label"]  # extra column dropped
    assert read.schema.field("label").type == pa.int32()


def test_write_table_names_the_bad_column(tmp_path):
    with pytest.raises(SilversetInputError, match="missing required column.*'label'"):
        tables.write_table(truth_rows(2).drop(["label"]), tmp_path / "t.parquet", schemas.TRUTH, name="truth")
    nulls = pa.table({"video_id": ["a", None], "attribute": ["x", "x"], "label": [1, 0]})
    with pytest.raises(SilversetInputError, match="column 'video_id' has 1 null"):
        tables.write_table(nulls, tmp_path / "t.parquet", schemas.TRUTH)
    assert not (tmp_path / "t.parquet").exists()


def test_read_table_joins_shards_and_skips_errors_and_hidden_files(tmp_path):
    tables.write_table(truth_rows(2), tmp_path / "part-0.parquet", schemas.TRUTH)
    tables.write_table(truth_rows(3), tmp_path / "part-1.parquet", schemas.TRUTH)
    tables.write_errors(tmp_path, [ErrorRow(key="v9", stage="s", error_type="t", message="m")])
    (tmp_path / ".hidden").mkdir()
    tables.write_table(truth_rows(5), tmp_path / ".hidden" / "x.parquet", schemas.TRUTH)
    assert tables.read_table(tmp_path, schemas.TRUTH).num_rows == 5
    assert tables.read_errors(tmp_path).column("key").to_pylist() == ["v9"]


def test_empty_errors_file_is_written_and_missing_one_reads_empty(tmp_path):
    assert tables.write_errors(tmp_path / "out", []) == 0
    assert (tmp_path / "out" / "errors.parquet").exists()
    assert tables.read_errors(tmp_path / "nowhere").num_rows == 0
    with pytest.raises(SilversetInputError, match="does not exist"):
        tables.read_table(tmp_path / "nowhere")


def test_atomic_directory_replaces_the_whole_folder_on_success(tmp_path):
    out = tmp_path / "frames"
    with tables.atomic_directory(out, command="frames") as staging:
        (staging / "shard-0.parquet").write_text("old 0")
        (staging / "shard-1.parquet").write_text("old 1")
    with tables.atomic_directory(out, command="frames") as staging:
        assert not (staging / "shard-0.parquet").exists()  # a fresh folder, not the old one
        assert (out / "shard-1.parquet").read_text() == "old 1"  # readers still see the old output
        (staging / "shard-0.parquet").write_text("new 0")
    assert sorted(p.name for p in out.iterdir()) == [tables.OUTPUT_MARKER, "shard-0.parquet"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames"]


def test_atomic_directory_keeps_the_old_output_when_the_writer_fails(tmp_path):
    out = tmp_path / "frames"
    with tables.atomic_directory(out, command="frames") as staging:
        (staging / "shard-0.parquet").write_text("good")
    with pytest.raises(RuntimeError):
        with tables.atomic_directory(out, command="frames") as staging:
            (staging / "shard-0.parquet").write_text("half writ")
            raise RuntimeError("worker died")
    assert (out / "shard-0.parquet").read_text() == "good"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames"]


def test_atomic_directory_cleans_up_a_crashed_runs_staging(tmp_path):
    stale = tmp_path / f"{tables.STAGING_PREFIX}frames-deadbeef"
    stale.mkdir()
    with tables.atomic_directory(tmp_path / "frames", command="frames"):
        pass
    assert not stale.exists()
