"""The stages with manifest, videos, workdir and state on S3 (moto's loopback server, real s3fs/botocore)."""

from __future__ import annotations

import fsspec
import numpy as np

from silverset.components.common import run_lock, schemas, tables
from silverset.components.common.spec import example_specs_dir
from silverset.components.embed import embed
from silverset.components.frames import pipeline as frames
from silverset.components.frames.extract import FrameOptions
from silverset.components.incremental import plan, state
from silverset.components.notify import webhook
from silverset.components.teacher import annotate
from tests.helpers.factories import encode_video


def _corpus_on_s3(root: str, n: int, scratch) -> str:
    """``n`` real H.264 videos (32x32, 10 frames) uploaded under ``root/videos`` with a CSV manifest."""
    fs = fsspec.filesystem("s3")
    lines = ["video_id,uri,title"]
    for i in range(n):
        uri = f"{root}/videos/v{i:03d}.mp4"
        local = encode_video(scratch / f"v{i:03d}.mp4", [np.full((32, 32, 3), 20 * k + i, np.uint8) for k in range(10)])
        fs.put(str(local), uri)
        lines.append(f"v{i:03d},{uri},{'a red sports car' if i % 2 else 'a quiet lake'} {i}")
    fs.pipe(f"{root}/manifest.csv", ("\n".join(lines) + "\n").encode())
    fs.pipe(f"{root}/spec.yaml", (example_specs_dir() / "red_dominant.yaml").read_bytes())
    return f"{root}/manifest.csv"


def test_plan_frames_embed_annotate_finalize_commit_and_summary_with_everything_on_s3(s3, tmp_path, monkeypatch):
    scratch = tmp_path / "videos"
    scratch.mkdir()
    manifest = _corpus_on_s3(s3, 5, scratch)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)  # a stage that wrongly treated s3:// as a local path would write under here
    state_dir, workdir = f"{s3}/state", f"{s3}/work"
    first = plan.plan_run(
        manifest_uri=manifest, attribute_spec=f"{s3}/spec.yaml", state_dir=state_dir, workdir=workdir, run_id="run-1"
    )
    assert (first.todo, first.errors) == (5, 0) and first.run_dir.startswith(f"{s3}/work/runs/")
    assert plan.read_plan(plan.plan_dir_of(workdir, "run-1")).run_dir == first.run_dir
    framed = frames.run(
        manifest_uri=f"{first.out_dir}/frames_manifest.parquet",
        out_dir=f"{first.run_dir}/frames",
        options=FrameOptions(frames_per_video=2, size=32),
    )
    assert (framed.videos_ok, framed.errors) == (5, 0)
    embedded = embed.run(
        frames_uri=f"{first.run_dir}/frames", out_dir=f"{first.run_dir}/embeddings", manifest_uri=first.todo_manifest
    )
    assert embedded.stats.outputs == 5
    labelled = annotate.run(
        attribute_spec=f"{s3}/spec.yaml",
        manifest_uri=first.todo_manifest,
        out_dir=f"{first.run_dir}/teacher",
        options=annotate.AnnotateOptions(teacher="zero-shot"),
    )
    assert (labelled.stats.processed, labelled.stats.outputs) == (5, 5)
    again = annotate.run(
        attribute_spec=f"{s3}/spec.yaml",
        manifest_uri=first.todo_manifest,
        out_dir=f"{first.run_dir}/teacher",
        options=annotate.AnnotateOptions(teacher="zero-shot"),
    )
    assert (again.stats.processed, again.stats.resumed) == (0, 5)  # resumed from the parts on S3
    merged = plan.finalize(
        plan_dir=first.out_dir,
        new_labels=f"{first.run_dir}/teacher",
        out_dir=f"{first.run_dir}/merged",
        new_embeddings=f"{first.run_dir}/embeddings",
    )
    assert (merged.labels, merged.embeddings) == (5, 5)
    assert not state.load(state_dir).exists  # nothing committed before the promotion went live
    committed = plan.commit_promotion(
        plan_dir=first.out_dir, merged_dir=f"{first.run_dir}/merged", state_dir=state_dir, run_id="run-1"
    )
    assert (committed.videos, committed.embeddings) == (5, 5)
    assert tables.read_table(f"{state_dir}/labels", schemas.LABELS).num_rows == 5

    fsspec.filesystem("s3").pipe(f"{first.run_dir}/deploy/deploy.json", b'{"status": "deployed", "version": "v1"}')
    result = webhook.run(run_id="run-1", status="SUCCEEDED", workdir=workdir, state_dir=state_dir)
    assert result.outcome == "promoted" and result.released_lock
    summary = webhook.RunSummary.model_validate_json(fsspec.filesystem("s3").cat(result.summary_path))
    # The shard stats say what the last annotate pass did: everything resumed, no teacher call.
    assert (summary.annotate["resumed"], summary.annotate["processed"], summary.annotate["requests"]) == (5, 0, 0)

    second = plan.plan_run(
        manifest_uri=manifest, attribute_spec=f"{s3}/spec.yaml", state_dir=state_dir, workdir=workdir, run_id="run-2"
    )
    assert second.up_to_date and second.todo == 0
    assert run_lock.open_run_lock(state_dir).holder().holder == "run-2"
    assert list(cwd.iterdir()) == []  # nothing landed on the local disk
