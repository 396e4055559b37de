"""The frames stage sharded across pods: n shards' outputs, read as one table, equal one unsharded run's."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from silverset.components.common import schemas, sharding, tables
from silverset.components.common.errors import SilversetInputError
from silverset.components.common.sharding import Shard
from silverset.components.frames import pipeline
from silverset.components.frames.extract import FrameOptions


def _rows(table) -> list[tuple]:
    """Every frame row as a comparable tuple (the JPEG bytes included), in key order."""
    table = table.sort_by([("video_id", "ascending"), ("frame_index", "ascending")])
    return list(zip(*(table.column(name).to_pylist() for name in schemas.FRAMES.names)))


def _errors(table) -> list[tuple]:
    return sorted((e["key"], e["error_type"], e["stage"], e["uri"] or "") for e in table.to_pylist())


@pytest.fixture(scope="module")
def mixed_manifest(tmp_path_factory, tiny_corpus, bad_videos, manifest_writer):
    """The 4 good corpus videos, every kind of bad file, one duplicate id and one row without an id."""
    good = pq.read_table(tiny_corpus.manifest_uri).select(["video_id", "uri"]).to_pylist()
    bad = [{"video_id": kind, "uri": str(path)} for kind, path in bad_videos.items()]
    duplicate = [{"video_id": good[1]["video_id"], "uri": str(bad_videos["corrupt"])}]
    no_id = [{"video_id": "", "uri": str(bad_videos["truncated"])}]
    folder = tmp_path_factory.mktemp("mixed")
    return manifest_writer(folder / "manifest.jsonl", good + bad + duplicate + no_id), len(good + bad) + 2


def test_the_union_of_three_shards_equals_one_unsharded_run(tmp_path, mixed_manifest):
    manifest, inputs = mixed_manifest
    single = pipeline.run(
        manifest_uri=str(manifest), out_dir=str(tmp_path / "single"), options=FrameOptions(frames_per_video=3, size=32)
    )
    out = tmp_path / "sharded"
    summaries = [
        pipeline.run(
            manifest_uri=str(manifest),
            out_dir=str(out),
            options=FrameOptions(frames_per_video=3, size=32),
            shard=Shard(i, 3),
        )
        for i in range(3)
    ]

    whole = tables.read_table(out, schemas.FRAMES)
    assert _rows(whole) == _rows(tables.read_table(tmp_path / "single", schemas.FRAMES))
    assert whole.num_rows == single.frames == 3 * single.videos_ok
    # Every shard wrote what it dropped; together they are the unsharded run's errors, each once.
    assert _errors(sharding.read_shard_errors(str(out))) == _errors(tables.read_errors(tmp_path / "single"))
    assert sum(s.inputs for s in summaries) == single.inputs == inputs
    assert sum(s.videos_ok for s in summaries) == single.videos_ok
    assert sum(s.errors for s in summaries) == single.errors
    # embed and the teacher read the sharded folder as they read one run's: the same videos, frames and bytes.
    from silverset.components.runtime.inputs import load_frames

    assert load_frames(str(out)) == load_frames(str(tmp_path / "single"))
    assert load_frames(str(out), shard=Shard(1, 3)).keys() == load_frames(str(out / "shard-00001-of-00003")).keys()
    for i, summary in enumerate(summaries):
        folder = out / f"shard-{i:05d}-of-00003"
        assert summary.out_dir == str(folder) and summary.table == str(out)
        assert (folder / "errors.parquet").exists()
        frames = tables.read_table(folder, schemas.FRAMES)
        errors = tables.read_errors(folder)
        # A shard holds exactly the videos whose id hashes to it (the split embed and annotate use).
        keys = set(frames.column("video_id").to_pylist()) | set(errors.column("key").to_pylist())
        assert all(sharding.shard_of(key, 3) == i for key in keys)
        assert summary.inputs == summary.videos_ok + summary.errors


def test_a_shard_that_owns_no_video_writes_an_empty_errors_table(tmp_path, tiny_corpus, manifest_writer):
    row = pq.read_table(tiny_corpus.manifest_uri).select(["video_id", "uri"]).to_pylist()[0]
    manifest = manifest_writer(tmp_path / "one.csv", [row])
    other = (sharding.shard_of(row["video_id"], 2) + 1) % 2
    summary = pipeline.run(
        manifest_uri=str(manifest),
        out_dir=str(tmp_path / "f"),
        options=FrameOptions(frames_per_video=2, size=32),
        shard=Shard(other, 2),
    )
    assert (summary.inputs, summary.videos_ok, summary.errors, summary.frames) == (0, 0, 0, 0)
    assert tables.read_errors(tmp_path / "f" / f"shard-{other:05d}-of-00002").num_rows == 0


def test_a_rerun_with_another_shard_count_leaves_no_old_rows(tmp_path, tiny_corpus, manifest_writer):
    manifest = manifest_writer(
        tmp_path / "m.parquet", pq.read_table(tiny_corpus.manifest_uri).select(["video_id", "uri"]).to_pylist()
    )
    out = tmp_path / "frames"
    for i in range(3):
        pipeline.run(
            manifest_uri=str(manifest),
            out_dir=str(out),
            options=FrameOptions(frames_per_video=1, size=32),
            shard=Shard(i, 3),
        )
    for i in range(2):
        pipeline.run(
            manifest_uri=str(manifest),
            out_dir=str(out),
            options=FrameOptions(frames_per_video=1, size=32),
            shard=Shard(i, 2),
        )
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "shard-00000-of-00002",
        "shard-00001-of-00002",
    ]
    assert tables.read_table(out, schemas.FRAMES).num_rows == 4  # each video once
    pipeline.run(
        manifest_uri=str(manifest), out_dir=str(out), options=FrameOptions(frames_per_video=1, size=32)
    )  # unsharded replaces it all
    assert tables.read_table(out, schemas.FRAMES).num_rows == 4


def test_unknown_runners_and_secret_options_are_refused_before_anything_runs(tmp_path, tiny_corpus):
    manifest = str(tiny_corpus.manifest_uri)
    with pytest.raises(SilversetInputError, match="beam_runner.*FlinkRunner.*DataflowRunner"):
        pipeline.run(manifest_uri=manifest, out_dir=str(tmp_path / "a"), beam_runner="FlinkRuner")
    with pytest.raises(SilversetInputError, match="secret"):
        pipeline.run(
            manifest_uri=manifest, out_dir=str(tmp_path / "b"), beam_options=["service_account_key_file=/keys/sa.json"]
        )
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
