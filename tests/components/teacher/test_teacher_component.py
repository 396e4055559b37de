"""Teacher components: python_func over two shards, the merge check, and one kfp.local run."""
from __future__ import annotations

import json

import pytest

from silverset.components.teacher import component


def test_shards_then_merge_cover_every_video(corpus):
    out = str(corpus["tmp"] / "labels")
    totals = 0
    for i in range(2):
        stats = json.loads(component.annotate_shard.python_func(
            attribute_uri=corpus["spec"], manifest_uri=corpus["manifest"], frames_uri="", out_uri=out,
            shard_index=i, shard_count=2))
        totals += stats["outputs"] + stats["errors"]
    assert totals == len(corpus["videos"])
    assert component.merge_labels.python_func(manifest_uri=corpus["manifest"], out_uri=out) == len(corpus["videos"])


@pytest.mark.slow
def test_kfp_local_run(corpus, tmp_path):
    from kfp import local

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    task = component.annotate_shard(attribute_uri=corpus["spec"], manifest_uri=corpus["manifest"], frames_uri="",
                                    out_uri=str(tmp_path / "labels"))
    assert json.loads(task.output)["outputs"] == len(corpus["videos"])
