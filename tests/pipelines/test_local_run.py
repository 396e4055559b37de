"""`silverset pipeline run --local`: the pipeline through kfp.local, twice; the second run does nothing."""
from __future__ import annotations

import json

import pytest

from silverset.components.common.spec import example_specs_dir
from silverset.components.common import tables


@pytest.mark.slow
def test_second_local_run_over_an_unchanged_corpus_skips_every_stage(tmp_path):
    from silverset.components.corpus.synth import run as synth
    from silverset.pipelines.local_run import run_local

    corpus = synth(out=tmp_path / "corpus", videos=4, seed=0, duration_s=1.0, width=96, height=64)
    spec = str(example_specs_dir() / "red_dominant.yaml")
    params = {"frames_per_video": 2, "frame_size": 64}
    first = run_local(attribute_spec=spec, manifest=corpus["manifest"], workdir=tmp_path / "w", params=params)
    assert first.status == "SUCCEEDED" and first.plan["todo"] == 4
    merged = tables.read_table(f"{first.plan['run_dir']}/merged/labels")
    assert merged.num_rows + tables.read_errors(f"{first.plan['run_dir']}/teacher").num_rows == 4
    assert set(merged.column("attribute_version").to_pylist()) <= {1}
    second = run_local(attribute_spec=spec, manifest=corpus["manifest"], workdir=tmp_path / "w", params=params)
    assert second.plan["up_to_date"] and second.plan["todo"] == 0
    assert second.tasks == 2  # plan + notify only: zero teacher calls
    summary = json.loads((tmp_path / "w" / "run_summary.json").read_text())
    assert summary["status"] == "SUCCEEDED" and "nothing to do" in summary["text"]
    assert not (tmp_path / "w" / "state" / "lock.json").exists()
