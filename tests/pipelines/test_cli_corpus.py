"""`silverset corpus synth`: writes the corpus; a bad --size exits 2."""

from __future__ import annotations

import pyarrow.parquet as pq


def test_synth_writes_videos_manifest_and_truth(cli, tmp_path):
    result = cli(
        "corpus",
        "synth",
        "--out",
        str(tmp_path / "c"),
        "--videos",
        "3",
        "--seed",
        "2",
        "--duration-s",
        "1",
        "--size",
        "96x64",
    )
    assert result.code == 0
    assert "wrote3videos" in result.flat_out
    assert pq.read_table(tmp_path / "c" / "manifest.parquet").num_rows == 3
    assert pq.read_table(tmp_path / "c" / "truth.parquet").num_rows == 12
    assert len(list((tmp_path / "c" / "videos").glob("*.mp4"))) == 3


def test_bad_size_exits_2_naming_the_flag(cli, tmp_path):
    for size in ("320by240", "321x240"):
        result = cli("corpus", "synth", "--out", str(tmp_path / "c"), "--size", size)
        assert result.code == 2 and "--size" in result.err
    assert not (tmp_path / "c").exists()
