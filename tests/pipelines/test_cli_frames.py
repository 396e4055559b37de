"""`silverset frames`: exit 0 with a summary counting bad videos; exit 2 on a bad manifest."""

from __future__ import annotations

import subprocess
import sys

import pyarrow.parquet as pq

from silverset.components.corpus import synth
from silverset.components.corpus.synth import SynthOptions


def test_bad_videos_are_counted_and_the_run_succeeds(cli, tmp_path):
    corpus = synth.run(
        out_dir=tmp_path / "corpus", options=SynthOptions(videos=2, seed=0, duration_s=1.0, width=96, height=64)
    )
    rows = pq.read_table(corpus.manifest_uri).select(["video_id", "uri"]).to_pylist()
    (tmp_path / "empty.mp4").write_bytes(b"")
    lines = (
        ["video_id,uri"]
        + [f"{r['video_id']},{r['uri']}" for r in rows]
        + [f"gone,{tmp_path / 'gone.mp4'}", f"empty,{tmp_path / 'empty.mp4'}"]
    )
    (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
    result = cli(
        "frames",
        "--manifest",
        str(tmp_path / "m.csv"),
        "--out",
        str(tmp_path / "frames"),
        "--frames-per-video",
        "2",
        "--size",
        "32",
        "--pipeline-option",
        "direct_num_workers=1",
    )
    assert result.code == 0
    flat = result.flat_out
    assert "inputs4" in flat and "videos_ok2" in flat and "errors2" in flat and "frames4" in flat
    assert "error:missing_file1" in flat and "error:empty_file1" in flat


def test_manifest_missing_a_column_exits_2(tmp_path):
    (tmp_path / "m.jsonl").write_text('{"video_id": "a", "path": "/a.mp4"}\n')
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from silverset.pipelines.cli import main; main()",
            "frames",
            "--manifest",
            str(tmp_path / "m.jsonl"),
            "--out",
            str(tmp_path / "frames"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "'uri'" in result.stderr and "missingrequiredcolumn" in "".join(result.stderr.split())
    assert not (tmp_path / "frames").exists()


def test_empty_manifest_exits_2(cli, tmp_path):
    (tmp_path / "m.csv").write_text("video_id,uri\n")
    result = cli("frames", "--manifest", str(tmp_path / "m.csv"), "--out", str(tmp_path / "frames"))
    assert result.code == 2 and "empty" in result.err
