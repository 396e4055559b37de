"""Synthetic corpus: real H.264, same seed same bytes, balanced independent truth visible in the pixels."""

from __future__ import annotations

import av
import numpy as np
import pyarrow.parquet as pq
import pytest

from silverset.components.common import schemas
from silverset.components.corpus import synth
from silverset.components.corpus.synth import ATTRIBUTES, MENTIONS, SynthOptions, plan_video, render_frames

SMALL = SynthOptions(videos=4, seed=3, duration_s=1.0, width=96, height=64)


@pytest.fixture(scope="module")
def plans() -> list:
    options = SynthOptions(videos=2000, seed=11)
    return [plan_video(i, options) for i in range(options.videos)]


def test_corpus_files_schemas_and_real_h264(tmp_path):
    summary = synth.run(out_dir=tmp_path / "corpus", options=SMALL)
    out = tmp_path / "corpus"
    manifest = pq.read_table(out / "manifest.parquet")
    truth = pq.read_table(out / "truth.parquet")
    assert manifest.schema.equals(schemas.MANIFEST, check_metadata=False)
    assert truth.schema.equals(schemas.TRUTH, check_metadata=False)
    assert manifest.num_rows == 4 and truth.num_rows == 4 * len(ATTRIBUTES)
    assert summary.manifest_uri == str(out / "manifest.parquet") and summary.truth_uri == str(out / "truth.parquet")
    assert (summary.videos, summary.errors, summary.out_dir) == (4, 0, str(out))
    positives = {a: sum(r["label"] for r in truth.to_pylist() if r["attribute"] == a) for a in ATTRIBUTES}
    assert summary.prevalence == {a: positives[a] / 4 for a in ATTRIBUTES}
    for uri in manifest.column("uri").to_pylist():
        with av.open(uri) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == "h264"
            assert (stream.codec_context.width, stream.codec_context.height) == (96, 64)
            assert sum(1 for _ in container.decode(stream)) == 15  # 1 s at 15 fps


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    synth.run(out_dir=tmp_path / "a", options=SMALL)
    synth.run(out_dir=tmp_path / "b", options=SMALL)
    synth.run(out_dir=tmp_path / "c", options=SMALL.model_copy(update={"seed": 4}))
    for name in ("vid00000.mp4", "vid00003.mp4"):
        assert (tmp_path / "a/videos" / name).read_bytes() == (tmp_path / "b/videos" / name).read_bytes()
        assert (tmp_path / "a/videos" / name).read_bytes() != (tmp_path / "c/videos" / name).read_bytes()
    assert (tmp_path / "a/truth.parquet").read_bytes() == (tmp_path / "b/truth.parquet").read_bytes()


def test_rerun_replaces_the_corpus(tmp_path):
    synth.run(out_dir=tmp_path / "corpus", options=SMALL.model_copy(update={"videos": 3}))
    synth.run(out_dir=tmp_path / "corpus", options=SMALL.model_copy(update={"videos": 2}))
    assert sorted(p.name for p in (tmp_path / "corpus/videos").iterdir()) == ["vid00000.mp4", "vid00001.mp4"]


def test_prevalence_is_balanced_and_attributes_independent(plans):
    labels = np.array([[p.truth[a] for a in ATTRIBUTES] for p in plans], float)
    assert np.all((labels.mean(axis=0) > 0.3) & (labels.mean(axis=0) < 0.5))
    correlation = np.corrcoef(labels.T)
    assert np.all(np.abs(correlation[np.triu_indices(len(ATTRIBUTES), 1)]) < 0.08)


@pytest.mark.parametrize("attribute", ATTRIBUTES)
def test_title_mentions_the_attribute_noisily(plans, attribute):
    mentioned = np.array([any(m in p.title for m in MENTIONS[attribute]) for p in plans])
    truth = np.array([p.truth[attribute] for p in plans], bool)
    assert abs(mentioned[truth].mean() - 0.6) < 0.06
    assert abs(mentioned[~truth].mean() - 0.15) < 0.04


def _pixel_judgement(plan, options) -> dict[str, int]:
    """Read each attribute back from the rendered pixels with a simple, independent rule."""
    frames = np.stack(list(render_frames(plan, options))).astype(np.int16)  # [t, h, w, 3]
    r, g, b = frames[..., 0], frames[..., 1], frames[..., 2]
    red_share = ((r > 90) & (r > 1.6 * g) & (r > 1.6 * b)).mean()
    step = np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3))  # mean abs change per frame step
    cuts = int((step > 6).sum())
    white = (frames == 255).all(axis=-1).mean(axis=(1, 2))
    obj = (frames == np.array(plan.object_colour)).all(axis=-1)
    xs = [np.nonzero(o)[1].mean() for o in (obj[0], obj[-1])]
    return {
        "red_dominant": int(red_share > 0.5),
        "moving_object": int(abs(xs[1] - xs[0]) > 0.25 * options.width),
        "frequent_cuts": int(cuts >= 3),
        "onscreen_text": int(white.min() > 0.005),
    }


def test_truth_is_visible_in_the_pixels():
    options = SynthOptions(videos=40, seed=5, width=160, height=120)
    for number in range(options.videos):
        plan = plan_video(number, options)
        assert _pixel_judgement(plan, options) == plan.truth, plan.video_id


def test_hard_cases_keep_each_videos_truth_and_nothing_else_changes_without_them():
    plain, hard = SynthOptions(videos=300, seed=5), SynthOptions(videos=300, seed=5, hard_case_share=0.5)
    plans = [(plan_video(i, plain), plan_video(i, hard)) for i in range(300)]
    assert all(a.truth == b.truth and a.title == b.title and a.object_start == b.object_start for a, b in plans)
    flashes = [(a, b) for a, b in plans if a.shot_starts_s != b.shot_starts_s]  # only a red flash adds shots
    assert flashes and all(len(a.shot_starts_s) == 1 and not b.truth["red_dominant"] for a, b in flashes)
    assert not any(a.hard_cases or a.red_patch or not a.caption_band for a, _ in plans)
    counts = {attr: sum(attr in b.hard_cases for _, b in plans) for attr in ATTRIBUTES}
    assert counts["red_dominant"] > 100  # positives and negatives both get one
    assert all(c > 25 for c in counts.values()), counts


def _red_share(frame: np.ndarray) -> float:
    r, g, b = (frame[..., i].astype(int) for i in range(3))
    return float(((r > 1.5 * g) & (r > 1.5 * b) & (r > 30)).mean())


def test_hard_red_cases_are_what_the_definition_says():
    """Dark crimson positives are still all red; red-logo negatives have a small red detail only; flashes are brief."""
    options = SynthOptions(videos=200, seed=5, hard_case_share=0.5, duration_s=1.0, width=96, height=64)
    hard = [p for p in (plan_video(i, options) for i in range(200)) if "red_dominant" in p.hard_cases]
    dark = next(p for p in hard if p.truth["red_dominant"])
    logo = next(p for p in hard if not p.truth["red_dominant"])
    dark_frame = next(render_frames(dark, options, frame_numbers=[7]))
    logo_frame = next(render_frames(logo, options, frame_numbers=[7]))
    assert max(dark.shot_colours[0]) < 0.35 * 255 and _red_share(dark_frame) > 0.6
    assert 0.04 < _red_share(logo_frame) < 0.2
    flash = next(p for p in hard if not p.truth["red_dominant"] and p.red_patch is None)
    assert len(flash.shot_starts_s) == 3 and 0.3 <= flash.shot_starts_s[2] - flash.shot_starts_s[1] <= 0.5
    assert flash.shot_colours[0] == flash.shot_colours[2] and flash.shot_colours[1][0] > 150
