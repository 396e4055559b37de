"""`silverset studio serve --workdir W` on a pipeline or demo workdir opens its live run: the promoted state's
embeddings, with each video's title and thumbnails from the run folder that embedded it; a newer run that did not
go live changes nothing; a workdir with no live run is refused naming what is missing.

The workdir is built by the stage functions themselves (plan, frames, embed, zero-shot teacher, finalize, commit
of the promotion), the way the pipeline's steps call them, on real tiny videos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from silverset.components.common import run_lock, tables
from silverset.components.common.errors import SilversetInputError
from silverset.components.common.spec import example_specs_dir
from silverset.components.incremental import plan
from silverset.components.studio.catalog import live_run, load_workdir
from tests.components.studio.conftest import hashing_text_encoder

SPEC = str(example_specs_dir() / "red_dominant.yaml")


def _videos(root: Path, n: int) -> str:
    """n real videos (PyAV) and their manifest (title "clip <i>") under root; returns the manifest path."""
    from silverset.components.corpus.synth import SynthOptions
    from silverset.components.corpus.synth import run as synth

    corpus = synth(out_dir=root, options=SynthOptions(videos=n, seed=5, duration_s=1.0, width=64, height=48))
    manifest = tables.read_table(corpus.manifest_uri)
    titles = [f"clip {v}" for v in manifest.column("video_id").to_pylist()]
    manifest = manifest.set_column(manifest.column_names.index("title"), "title", tables.pa.array(titles))
    tables.write_table(manifest, root / "titled.parquet")
    return str(root / "titled.parquet")


def _promotion(pipeline: Path, manifest: str, run_id: str, *, commit: bool) -> plan.PlanSummary:
    """One pipeline run's stages over ``manifest`` into ``pipeline`` (the run lock released at the end, as the
    exit handler does); ``commit``: the promotion went live and the state is committed."""
    from silverset.components.embed.embed import EmbedOptions
    from silverset.components.embed.embed import run as embed
    from silverset.components.frames.extract import FrameOptions
    from silverset.components.frames.pipeline import run as extract_frames
    from silverset.components.teacher.annotate import AnnotateOptions
    from silverset.components.teacher.annotate import run as annotate

    state_dir = str(pipeline / "state")
    summary = plan.plan_run(
        manifest_uri=manifest,
        attribute_spec=SPEC,
        state_dir=state_dir,
        workdir=str(pipeline),
        run_id=run_id,
        options=plan.PlanOptions(embedder="visual"),
    )
    run_dir, plan_dir = summary.run_dir, summary.out_dir
    extract_frames(
        manifest_uri=f"{plan_dir}/frames_manifest.parquet",
        out_dir=f"{run_dir}/frames",
        options=FrameOptions(frames_per_video=2, size=32),
    )
    embed(
        frames_uri=f"{run_dir}/frames",
        out_dir=f"{run_dir}/embeddings",
        manifest_uri=summary.embed_manifest,
        options=EmbedOptions(embedder="visual", frames_per_video=2),
    )
    annotate(
        attribute_spec=SPEC,
        manifest_uri=summary.teacher_manifest,
        out_dir=f"{run_dir}/teacher",
        options=AnnotateOptions(teacher="zero-shot"),
    )
    plan.finalize(
        plan_dir=plan_dir,
        new_labels=f"{run_dir}/teacher",
        out_dir=f"{run_dir}/merged",
        new_embeddings=f"{run_dir}/embeddings",
    )
    if commit:
        plan.commit_promotion(plan_dir=plan_dir, merged_dir=f"{run_dir}/merged", state_dir=state_dir, run_id=run_id)
    run_lock.open_run_lock(state_dir).release(run_id)
    return summary


@pytest.fixture(scope="module")
def demo_workdir(tmp_path_factory):
    """A demo-shaped workdir W: the pipeline works in W/pipeline. Run 1 (6 videos) went live; run 2 added 2 videos
    and stopped before going live."""
    root = tmp_path_factory.mktemp("demo-workdir")
    first = _videos(root / "corpus-1", 6)
    runs = {"first": _promotion(root / "pipeline", first, "run-1", commit=True)}
    both = _videos(root / "corpus-2", 8)  # same seed: the first 6 videos are the same bytes, 2 more
    runs["second"] = _promotion(root / "pipeline", both, "run-2", commit=False)
    return root, runs, both


def test_a_demo_workdir_opens_its_live_run_and_a_run_that_did_not_go_live_changes_nothing(demo_workdir):
    root, runs, _ = demo_workdir
    assert runs["second"].todo == 2 and runs["second"].run_dir != runs["first"].run_dir
    assert not (root / "embeddings").exists()  # what the studio used to ask for ("has no embeddings table")
    catalog = load_workdir(root, text_encoder=hashing_text_encoder)
    assert sorted(catalog.video_ids) == [f"vid{i:05d}" for i in range(6)]  # run 2's new videos are not live
    assert Path(runs["first"].run_dir).name in catalog.source and "6 videos" in catalog.source
    row = catalog.row_of["vid00003"]
    assert catalog.titles[row] == "clip vid00003" and catalog.uris[row].endswith("vid00003.mp4")
    assert all(len(catalog.frames[v]) == 2 for v in catalog.video_ids)  # thumbnails from the live run's frames
    # The vectors are the state's committed embeddings, row for row.
    state = tables.read_table(root / "pipeline" / "state" / "embeddings")
    vectors = dict(zip(state.column("video_id").to_pylist(), state.column("vector").to_pylist()))
    assert np.allclose(catalog.embeddings[row], vectors["vid00003"])


def test_after_the_next_promotion_goes_live_its_new_videos_and_the_carried_ones_open_together(demo_workdir, tmp_path):
    import shutil

    root, runs, both = demo_workdir
    copy = tmp_path / "w"
    shutil.copytree(root, copy)
    # Run 2 is planned again (a stopped promotion re-plans into the same run folder) and this time goes live.
    again = _promotion(copy / "pipeline", both, "run-3", commit=True)
    assert Path(again.run_dir).name == Path(runs["second"].run_dir).name
    live = live_run(copy)
    assert live is not None and live.run_dir.name == Path(again.run_dir).name and live.videos == 8
    # Each video's metadata and frames come from the run that embedded it: 2 from the live run, 6 carried.
    assert sorted((folder.name, rows.num_rows) for folder, rows in live.sources) == sorted(
        [(Path(again.run_dir).name, 2), (Path(runs["first"].run_dir).name, 6)]
    )
    catalog = load_workdir(copy, text_encoder=hashing_text_encoder)
    assert sorted(catalog.video_ids) == [f"vid{i:05d}" for i in range(8)]
    assert [catalog.titles[catalog.row_of[v]] for v in ("vid00001", "vid00007")] == ["clip vid00001", "clip vid00007"]
    assert all(len(catalog.frames[v]) == 2 for v in catalog.video_ids)


def test_a_pipeline_workdir_opens_the_same_way_and_explicit_tables_still_win(demo_workdir):
    root, runs, both = demo_workdir
    pipeline_catalog = load_workdir(root / "pipeline", text_encoder=hashing_text_encoder)
    assert sorted(pipeline_catalog.video_ids) == [f"vid{i:05d}" for i in range(6)]
    # The run that did not go live, asked for by name: its own 2 new videos.
    chosen = load_workdir(
        root, text_encoder=hashing_text_encoder, manifest=both, embeddings=f"{runs['second'].run_dir}/embeddings"
    )
    assert sorted(chosen.video_ids) == ["vid00006", "vid00007"] and "live run" not in chosen.source


def test_a_workdir_without_a_live_run_is_refused_naming_what_is_missing(tmp_path, demo_workdir):
    with pytest.raises(SilversetInputError) as empty:
        load_workdir(tmp_path / "nothing-here")
    message = str(empty.value)
    assert "has no embeddings table" in message and "state/completed.json" in message and "--embeddings" in message

    stopped = tmp_path / "stopped"  # a demo whose first promotion a gate stopped: a state, nothing committed
    (stopped / "pipeline" / "state").mkdir(parents=True)
    with pytest.raises(SilversetInputError) as never_live:
        load_workdir(stopped)
    assert "no promotion went live yet" in str(never_live.value)
    assert str(stopped / "pipeline" / "state" / "completed.json") in str(never_live.value)

    import shutil

    unpromoted = tmp_path / "unpromoted"  # runs made embeddings, none went live: the error says how to open one
    shutil.copytree(demo_workdir[0] / "pipeline", unpromoted / "pipeline")
    (unpromoted / "pipeline" / "state" / "completed.json").unlink()
    with pytest.raises(SilversetInputError) as hint:
        load_workdir(unpromoted)
    last_run = Path(demo_workdir[1]["second"].run_dir).name
    assert f"--embeddings {unpromoted / 'pipeline' / 'runs' / last_run / 'embeddings'}" in str(hint.value)

    gone = tmp_path / "gone"
    shutil.copytree(demo_workdir[0] / "pipeline" / "state", gone / "state")
    shutil.rmtree(gone / "state" / "embeddings")
    with pytest.raises(SilversetInputError, match="has no embeddings table at .*state/embeddings"):
        load_workdir(gone)


def test_studio_serve_on_a_demo_workdir_gets_past_loading_the_catalog(cli, demo_workdir, monkeypatch):
    """The command a newcomer runs after the demo: it loads the live run and starts serving (uvicorn stubbed)."""
    import uvicorn

    root, _, _ = demo_workdir
    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.update(kw))
    result = cli("studio", "serve", "--workdir", str(root), "--no-text-search", "--port", "8799")
    assert result.code == 0, result.err
    assert served["port"] == 8799
    assert "studio:6videos" in result.flat_out and "videosfromtheliverun" in result.flat_out
