"""The frames KFP component: its Python function directly, and one run through kfp.local."""

from __future__ import annotations

import pytest

from silverset.components.common import schemas, tables
from silverset.components.frames.component import extract_frames


def test_python_func_writes_frames_and_reports_counts(tmp_path, tiny_corpus):
    result = extract_frames.python_func(
        manifest_uri=tiny_corpus.manifest_uri, out_dir=str(tmp_path / "frames"), frames_per_video=2, frame_size=32
    )
    assert (result.videos, result.errors, result.frames) == (4, 0, 8)
    assert tables.read_table(result.frames_dir, schemas.FRAMES).num_rows == 8


@pytest.mark.slow
def test_kfp_local_run(tmp_path, tiny_corpus):
    from kfp import local

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "kfp-root"))
    task = extract_frames(
        manifest_uri=tiny_corpus.manifest_uri,
        out_dir=str(tmp_path / "frames"),
        frames_per_video=2,
        frame_size=32,
        beam_options="--direct_num_workers=1",
    )
    assert task.outputs["videos"] == 4 and task.outputs["frames"] == 8 and task.outputs["errors"] == 0
    assert tables.read_table(task.outputs["frames_dir"], schemas.FRAMES).num_rows == 8
