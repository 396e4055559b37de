"""`silverset annotate --budget-videos/--budget-usd/--priority`: the teacher labels the same budgeted sample the
pipeline's plan would choose (one selection function), and a USD cap without a priced teacher is refused."""

from __future__ import annotations

from silverset.components.common import tables
from silverset.components.common.spec import example_specs_dir


def _manifest(tmp_path) -> str:
    lines = ["video_id,uri,title,views"]
    for i in range(8):
        (tmp_path / f"v{i}.mp4").write_bytes(b"x")
        lines.append(f"v{i},{tmp_path}/v{i}.mp4,a red car {i},{i * 10}")
    (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
    return str(tmp_path / "m.csv")


def test_annotate_labels_only_the_budgeted_sample_in_priority_order(cli, tmp_path):
    spec, manifest, out = str(example_specs_dir() / "red_dominant.yaml"), _manifest(tmp_path), tmp_path / "out"
    result = cli(
        "annotate",
        "--attribute",
        spec,
        "--manifest",
        manifest,
        "--out",
        str(out),
        "--teacher",
        "zero-shot",
        "--budget-videos",
        "3",
        "--priority",
        "views",
    )
    assert result.code == 0, result.err
    assert "teachersample:3of8videos" in result.flat_out
    assert sorted(tables.read_table(str(out)).column("video_id").to_pylist()) == ["v5", "v6", "v7"]  # most views


def test_a_usd_budget_for_an_unpriced_teacher_and_a_bad_budget_exit_2_naming_the_option(cli, tmp_path):
    spec, manifest = str(example_specs_dir() / "red_dominant.yaml"), _manifest(tmp_path)
    refused = cli(
        "annotate",
        "--attribute",
        spec,
        "--manifest",
        manifest,
        "--out",
        str(tmp_path / "o1"),
        "--teacher",
        "zero-shot",
        "--budget-usd",
        "1",
    )
    assert refused.code == 2 and "--budget-usd" in refused.err and "gemini" in refused.err
    assert not (tmp_path / "o1").exists()  # a refused start leaves no folder behind
    bad = cli(
        "annotate",
        "--attribute",
        spec,
        "--manifest",
        manifest,
        "--out",
        str(tmp_path / "o2"),
        "--priority",
        "views;drop",
    )
    assert bad.code == 2 and "--priority" in bad.err
