"""`silverset demo`: corpus synth + frames end to end in one work folder, with a readable summary."""
from __future__ import annotations

import subprocess
import sys

import pyarrow.parquet as pq

from silverset.components.common import schemas, tables


def test_demo_runs_end_to_end_and_keeps_every_artifact(cli, tmp_path):
    workdir = tmp_path / "w"
    result = cli("demo", "--workdir", str(workdir), "--videos", "5")
    assert result.code == 0
    assert "corpussynth" in result.flat_out and "5videos/40frames" in result.flat_out
    assert pq.read_table(workdir / "corpus" / "truth.parquet").num_rows == 20
    assert tables.read_table(workdir / "frames", schemas.FRAMES).num_rows == 40
    assert tables.read_errors(workdir / "frames").num_rows == 0


def test_help_lists_the_commands():
    result = subprocess.run([sys.executable, "-c", "from silverset.pipelines.cli import main; main()", "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for command in ("demo", "corpus", "frames", "attribute"):
        assert command in result.stdout
