"""`silverset pipeline run --local`: the golden set comes in as --golden, like every other command's (--golden-set
still works); a missing one is refused by name, exit 2, before any step starts."""

from __future__ import annotations

import pytest

from silverset.components.common.spec import example_specs_dir


@pytest.mark.parametrize("flag", ["--golden", "--golden-set"])
def test_the_golden_set_flag_reaches_the_run_and_a_missing_file_exits_2(cli, tmp_path, flag):
    manifest = tmp_path / "m.csv"
    manifest.write_text("video_id,uri\nv0,/nowhere/v0.mp4\n")
    missing = tmp_path / "no-such-golden.parquet"
    result = cli(
        "pipeline",
        "run",
        "--local",
        "--attribute",
        str(example_specs_dir() / "red_dominant.yaml"),
        "--manifest",
        str(manifest),
        flag,
        str(missing),
        "--workdir",
        str(tmp_path / "w"),
    )
    assert result.code == 2
    assert "golden set" in result.err and "no-such-golden.parquet" in "".join(result.err.split())
    assert not (tmp_path / "w" / "kfp-local").exists()  # refused before kfp.local started


def test_a_missing_manifest_exits_2_naming_it_before_any_step_starts(cli, tmp_path):
    missing = tmp_path / "no-such-manifest.csv"
    result = cli(
        "pipeline",
        "run",
        "--local",
        "--attribute",
        str(example_specs_dir() / "red_dominant.yaml"),
        "--manifest",
        str(missing),
        "--workdir",
        str(tmp_path / "w"),
    )
    assert result.code == 2
    assert "manifest" in result.err and "no-such-manifest.csv" in result.flat_err and "filenotfound" in result.flat_err
    assert not (tmp_path / "w" / "kfp-local").exists()
