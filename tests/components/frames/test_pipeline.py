"""The Beam frames pipeline: every manifest row lands in frames or errors, reruns replace output atomically."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from silverset.components.common import schemas, tables
from silverset.components.common.errors import SilversetInputError
from silverset.components.frames import pipeline
from silverset.components.frames.extract import FrameOptions


def _corpus_rows(tiny_corpus) -> list[dict]:
    return pq.read_table(tiny_corpus.manifest_uri).select(["video_id", "uri"]).to_pylist()


def test_every_row_ends_in_frames_or_errors(tmp_path, tiny_corpus, bad_videos, bad_kinds, manifest_writer):
    good = _corpus_rows(tiny_corpus)
    bad = [{"video_id": kind, "uri": str(path)} for kind, path in bad_videos.items()]
    duplicate = [{"video_id": good[0]["video_id"], "uri": bad_videos["corrupt"].as_posix()}]
    manifest = manifest_writer(tmp_path / "manifest.jsonl", good + bad + duplicate)

    summary = pipeline.run(
        manifest_uri=str(manifest), out_dir=str(tmp_path / "frames"), options=FrameOptions(frames_per_video=3, size=32)
    )

    frames = tables.read_table(tmp_path / "frames", schemas.FRAMES)
    errors = tables.read_errors(tmp_path / "frames")
    assert summary.inputs == len(good) + len(bad) + 1
    assert summary.inputs == summary.videos_ok + summary.errors
    assert sorted(set(frames.column("video_id").to_pylist())) == sorted(r["video_id"] for r in good)
    assert frames.num_rows == summary.frames == 3 * len(good)
    assert sorted(frames.column("frame_index").to_pylist()) == sorted([0, 1, 2] * len(good))
    by_key = {(e["key"], e["error_type"]) for e in errors.to_pylist()}
    assert by_key == {(kind, bad_kinds[kind]) for kind in bad_videos} | {(good[0]["video_id"], "duplicate_video_id")}
    assert all(message for message in errors.column("message").to_pylist())
    assert set(errors.column("stage").to_pylist()) == {"frames"}
    assert summary.errors_by_type["unreadable_video"] == 2
    # the output holds only shards, errors.parquet and the marker naming the command that wrote it: no staging
    # or temp leftovers
    names = sorted(p.name for p in (tmp_path / "frames").iterdir())
    assert names[:2] == [tables.OUTPUT_MARKER, "errors.parquet"] and len(names) > 2
    assert all(n.startswith("frames-") for n in names[2:])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames", "manifest.jsonl"]


def test_rerun_replaces_output_and_a_failed_rerun_keeps_the_old_one(
    tmp_path, tiny_corpus, monkeypatch, manifest_writer
):
    manifest = manifest_writer(tmp_path / "manifest.csv", _corpus_rows(tiny_corpus))
    out = tmp_path / "frames"
    pipeline.run(
        manifest_uri=str(manifest), out_dir=str(out), options=FrameOptions(frames_per_video=2, size=32), num_shards=3
    )
    assert len(tables.parquet_files(out)) == 3
    pipeline.run(
        manifest_uri=str(manifest), out_dir=str(out), options=FrameOptions(frames_per_video=1, size=32), num_shards=1
    )
    assert len(tables.parquet_files(out)) == 1  # no stale shard from the first run survives
    before = tables.read_table(out, schemas.FRAMES)
    assert before.num_rows == 4

    def dying_extract(video_id, uri, options):
        raise SystemExit("worker killed mid-run")

    monkeypatch.setattr(pipeline, "sample_frames", dying_extract)
    with pytest.raises(BaseException):
        pipeline.run(manifest_uri=str(manifest), out_dir=str(out), options=FrameOptions(frames_per_video=2, size=32))
    assert tables.read_table(out, schemas.FRAMES).equals(before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames", "manifest.csv"]


def test_empty_run_still_writes_an_errors_table(tmp_path, bad_videos, manifest_writer):
    manifest = manifest_writer(tmp_path / "m.parquet", [{"video_id": "x", "uri": str(bad_videos["zero_byte"])}])
    summary = pipeline.run(
        manifest_uri=str(manifest), out_dir=str(tmp_path / "frames"), options=FrameOptions(frames_per_video=2, size=32)
    )
    assert (summary.videos_ok, summary.errors, summary.frames) == (0, 1, 0)
    assert tables.read_table(tmp_path / "frames", schemas.FRAMES).num_rows == 0


@pytest.mark.parametrize(
    ("content", "problem"),
    [("video_id,title\na,b\n", "missing required column(s) 'uri'"), ("video_id,uri\n", "empty")],
)
def test_manifest_level_problems_stop_before_any_output(tmp_path, content, problem):
    (tmp_path / "m.csv").write_text(content)
    with pytest.raises(SilversetInputError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        pipeline.run(manifest_uri=str(tmp_path / "m.csv"), out_dir=str(tmp_path / "frames"))
    assert not (tmp_path / "frames").exists()


def test_beam_runner_and_beam_options_reach_beam():
    options = pipeline.pipeline_options(
        "DirectRunner", ["direct_num_workers=2", "--direct_running_mode=multi_threading"]
    )
    flags = options.get_all_options()
    assert flags["runner"] == "DirectRunner"
    assert flags["direct_num_workers"] == 2 and flags["direct_running_mode"] == "multi_threading"
    defaults = pipeline.pipeline_options().get_all_options()
    assert defaults["direct_num_workers"] == 1 and defaults["direct_running_mode"] == "in_memory"
    other = pipeline.pipeline_options("FlinkRunner", ["flink_master=localhost:8081"]).get_all_options()
    assert other["runner"] == "FlinkRunner" and other["flink_master"] == "localhost:8081"
    with pytest.raises(SilversetInputError, match="beam_options"):
        pipeline.pipeline_options("DirectRunner", ["=oops"])
