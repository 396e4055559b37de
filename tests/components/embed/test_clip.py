"""The image-text embedder (``--embedder clip:...``), its text tower in studio search, the clip-zero-shot teacher
and a student on clip embeddings, all with tiny randomly initialised CLIP / SigLIP models saved to disk.

Random weights prove the plumbing (what is loaded, which vectors are pooled and compared, ids, refusals), not
quality: no test here says a CLIP model finds red videos. Every expected vector is recomputed by calling the
transformers model directly, not through the code under test.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import numpy as np
import pytest

from silverset.components.common import schemas, tables
from silverset.components.common.errors import SilversetInputError
from silverset.components.common.spec import example_specs_dir, load_spec
from silverset.components.embed import clip, embed
from silverset.components.runtime.inputs import load_frames
from silverset.components.runtime.runner import merge_check
from tests.helpers import checkpoints, factories
from tests.helpers.factories import VIDEO_KINDS as KINDS

SPEC = str(example_specs_dir() / "red_dominant.yaml")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("clip")
    videos = {f"vid{i:03d}": KINDS[i % len(KINDS)] for i in range(20)}
    return {
        "videos": videos,
        "tmp": tmp,
        "frames": str(factories.write_frames(tmp / "frames", videos, n=4)),
        "manifest": str(factories.write_manifest(tmp / "manifest.csv", videos)),
        "clip": checkpoints.save_tiny_clip(tmp / "tinyclip"),
    }


@pytest.fixture(scope="module")
def other_clip(corpus) -> Path:
    """Same shape as corpus["clip"], other weights."""
    return checkpoints.save_tiny_clip(corpus["tmp"] / "other", seed=1)


@pytest.fixture(scope="module")
def clip_run(corpus) -> embed.EmbedSummary:
    return embed.run(
        frames_uri=corpus["frames"],
        out_dir=str(corpus["tmp"] / "emb"),
        manifest_uri=corpus["manifest"],
        options=embed.EmbedOptions(embedder=f"clip:{corpus['clip']}", batch_size=6),
    )


def _vectors(out) -> tuple[list[str], np.ndarray, str]:
    table = tables.read_table(out)
    ids = table.column("video_id").to_pylist()
    return ids, np.asarray(table.column("vector").to_pylist(), np.float32), table.column("embedder_id")[0].as_py()


def _direct_image_vectors(model_dir: Path, frames: np.ndarray) -> np.ndarray:
    """Oracle: the projected, unit image vectors of ``frames`` uint8 [T, H, W, 3], straight from transformers."""
    import torch
    from transformers import AutoImageProcessor, AutoModel

    model = AutoModel.from_pretrained(model_dir, local_files_only=True).eval()
    processor = AutoImageProcessor.from_pretrained(model_dir, local_files_only=True)
    pixels = processor(images=list(frames), return_tensors="pt")
    with torch.no_grad():
        out = model.get_image_features(pixel_values=pixels["pixel_values"]).pooler_output.numpy()
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def _block_sockets(monkeypatch) -> list:
    """Every outbound connection attempt is recorded and refused; the returned list must stay empty."""
    attempts: list = []

    def refuse(self, address, *args):
        attempts.append(address)
        raise OSError("network blocked by test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", lambda address, *a, **k: refuse(None, address))
    import huggingface_hub.constants

    # tests/conftest.py sets HF_HUB_OFFLINE; switch it off so local_files_only alone must keep us offline.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    return attempts


def test_clip_block_is_named_pooled_and_followed_by_minilm(corpus, clip_run):
    digest = clip.weights_digest(corpus["clip"])[:16]
    assert clip_run.embedder_id.startswith(f"clip-tinyclip@sha256:{digest}[16]+minilm-l6-v2@sha256:")
    assert clip_run.dimension == 16 + 384
    assert merge_check(clip_run.out_dir, list(corpus["videos"])).ok
    ids, vectors, embedder_id = _vectors(clip_run.out_dir)
    assert embedder_id == clip_run.embedder_id and vectors.shape == (20, 400)
    (name, lo, hi), (text_name, _, _) = embed.blocks(embedder_id)
    assert (lo, hi) == (0, 16) and text_name.startswith("minilm")
    frames = load_frames(corpus["frames"])
    for vid in ("vid000", "vid003"):  # red and text videos: mean of unit frame vectors, re-normalised
        expected = _direct_image_vectors(corpus["clip"], frames[vid].decode()).mean(0)
        expected /= np.linalg.norm(expected)
        np.testing.assert_allclose(vectors[ids.index(vid), :16], expected, atol=1e-5)
    assert np.linalg.norm(vectors[:, :16], axis=1) == pytest.approx(1.0, abs=1e-5)
    assert not np.allclose(vectors[ids.index("vid000"), :16], vectors[ids.index("vid001"), :16])


def test_siglip_directory_embeds_too(corpus, tmp_path):
    siglip = checkpoints.save_tiny_siglip(tmp_path / "tinysiglip")
    summary = embed.run(
        frames_uri=corpus["frames"],
        out_dir=str(tmp_path / "sig"),
        options=embed.EmbedOptions(embedder=f"clip:{siglip}"),
    )
    assert summary.embedder_id.startswith("clip-tinysiglip@sha256:") and summary.embedder_id.endswith("[32]")
    ids, vectors, _ = _vectors(tmp_path / "sig")
    frames = load_frames(corpus["frames"])["vid002"].decode()
    expected = _direct_image_vectors(siglip, frames).mean(0)
    np.testing.assert_allclose(vectors[ids.index("vid002")], expected / np.linalg.norm(expected), atol=1e-5)


def test_corrupt_jpeg_is_an_error_row_and_component_shards_cover_every_video(corpus, tmp_path):
    import json

    import pyarrow as pa

    from silverset.components.embed import component

    factories.write_frames(tmp_path / "frames", {"good": "red"}, n=3)
    bad = [{"video_id": "bad", "frame_index": 0, "timestamp_s": 0.0, "width": 8, "height": 8, "jpeg": b"not a jpeg"}]
    tables.write_table(
        pa.Table.from_pylist(bad, schema=schemas.FRAMES), tmp_path / "frames" / "frames-00001.parquet", schemas.FRAMES
    )
    summary = embed.run(
        frames_uri=str(tmp_path / "frames"),
        out_dir=str(tmp_path / "emb"),
        options=embed.EmbedOptions(embedder=f"clip:{corpus['clip']}"),
    )
    assert summary.stats.outputs == 1
    assert tables.read_errors(tmp_path / "emb").column("error_type").to_pylist() == ["bad_frames"]
    from silverset.components.teacher.annotate import AnnotateOptions
    from silverset.components.teacher.annotate import run as annotate

    manifest = tmp_path / "m.csv"
    manifest.write_text("video_id,uri,title\ngood,file:///g.mp4,Good\nbad,file:///b.mp4,Bad\n")
    labelled = annotate(
        attribute_spec=SPEC,
        manifest_uri=str(manifest),
        frames_uri=str(tmp_path / "frames"),
        out_dir=str(tmp_path / "l"),
        options=AnnotateOptions(teacher="clip-zero-shot", checkpoint=str(corpus["clip"])),
    )
    assert labelled.stats.outputs == 1 and tables.read_errors(tmp_path / "l").column("key").to_pylist() == ["bad"]
    out = str(tmp_path / "shards")
    for i in range(2):  # the KFP component passes --embedder through
        stats = json.loads(
            component.embed_shard.python_func(
                frames_uri=corpus["frames"],
                manifest_uri=corpus["manifest"],
                out_dir=out,
                shard_index=i,
                shard_count=2,
                embedder=f"clip:{corpus['clip']}",
                batch_size=4,
            )
        )
        assert stats["model_id"].startswith("clip-tinyclip@sha256:")
    assert merge_check(out, list(corpus["videos"])).ok


def _cli(monkeypatch, capsys, args: list[str]) -> tuple[int, str, str]:
    from silverset.pipelines import cli

    monkeypatch.setattr(sys, "argv", ["silverset", *args])
    from silverset.pipelines.cli import annotate as annotate_cli
    from silverset.pipelines.cli import embed as embed_cli

    for console in (cli.err_console, annotate_cli.console, embed_cli.console):
        monkeypatch.setattr(console, "width", 10_000)  # unwrapped lines, as a wide terminal shows them
    with pytest.raises(SystemExit) as exited:
        cli.main()
    out = capsys.readouterr()
    return exited.value.code or 0, out.out, " ".join(out.err.split())


def test_cli_embeds_with_clip_and_missing_weights_exit_2_saying_how(corpus, monkeypatch, capsys, tmp_path):
    attempts = _block_sockets(monkeypatch)
    code, out, err = _cli(
        monkeypatch,
        capsys,
        [
            "embed",
            "--frames",
            corpus["frames"],
            "--out",
            str(tmp_path / "e"),
            "--embedder",
            f"clip:{corpus['clip']}",
            "--no-text",
        ],
    )
    assert code == 0, err
    assert "clip-tinyclip@sha256:" in out and "(d=16)" in out
    missing = tmp_path / "no-such-model"
    code, _, err = _cli(
        monkeypatch,
        capsys,
        ["embed", "--frames", corpus["frames"], "--out", str(tmp_path / "m"), "--embedder", f"clip:{missing}"],
    )
    assert code == 2 and f"--embedder 'clip:{missing}'" in err and "save_pretrained" in err
    code, _, err = _cli(
        monkeypatch,
        capsys,
        [
            "embed",
            "--frames",
            corpus["frames"],
            "--out",
            str(tmp_path / "h"),
            "--embedder",
            "clip:openai-silverset-test/not-in-cache",
        ],
    )
    assert code == 2 and "'clip:openai-silverset-test/not-in-cache'" in err and "local Hugging Face cache" in err
    assert "save_pretrained" in err and not (tmp_path / "h" / "stats").exists()
    assert attempts == []  # never tried the network, even with HF_HUB_OFFLINE off


def test_annotate_cli_clip_zero_shot_refusals_exit_2(corpus, monkeypatch, capsys, tmp_path):
    attempts = _block_sockets(monkeypatch)
    args = [
        "annotate",
        "--attribute",
        SPEC,
        "--manifest",
        corpus["manifest"],
        "--frames",
        corpus["frames"],
        "--teacher",
        "clip-zero-shot",
    ]
    code, _, err = _cli(monkeypatch, capsys, [*args, "--out", str(tmp_path / "a")])
    assert code == 2 and "--checkpoint" in err
    code, _, err = _cli(monkeypatch, capsys, [*args, "--out", str(tmp_path / "b"), "--checkpoint", "org/absent-clip"])
    assert code == 2 and "--checkpoint 'clip:org/absent-clip'" in err and "local Hugging Face cache" in err
    code, _, err = _cli(
        monkeypatch,
        capsys,
        [*args, "--out", str(tmp_path / "c"), "--checkpoint", str(corpus["clip"]), "--temperature", "0"],
    )
    assert code == 2 and "--temperature" in err
    code, out, err = _cli(
        monkeypatch, capsys, [*args, "--out", str(tmp_path / "d"), "--checkpoint", str(corpus["clip"])]
    )
    assert code == 0, err
    assert "by clip-zero-shot:clip-tinyclip@sha256:" in out and len(tables.read_table(tmp_path / "d")) == 20
    assert attempts == []


def test_directory_from_model_and_processor_save_pretrained_loads(corpus, tmp_path):
    """The way the exit-2 message tells users to make one: model.save_pretrained(D); processor.save_pretrained(D)."""
    from transformers import AutoTokenizer, CLIPImageProcessor, CLIPModel, CLIPProcessor

    target = tmp_path / "user-clip"
    CLIPModel.from_pretrained(corpus["clip"], local_files_only=True).save_pretrained(target)
    CLIPProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        tokenizer=AutoTokenizer.from_pretrained(corpus["clip"], local_files_only=True),
    ).save_pretrained(target)
    loaded, reference = clip.load(f"clip:{target}"), clip.load(f"clip:{corpus['clip']}")
    assert loaded.digest == reference.digest and loaded.block_name.startswith("clip-user-clip@sha256:")
    frames = load_frames(corpus["frames"])["vid000"].decode()
    np.testing.assert_allclose(loaded.encode_images(list(frames)), reference.encode_images(list(frames)), atol=1e-6)


def test_hub_id_in_the_local_cache_loads_offline(corpus, monkeypatch, tmp_path):
    import huggingface_hub.constants

    attempts = _block_sockets(monkeypatch)
    checkpoints.populate_hf_cache(tmp_path / "hub", "silverset-test/tiny-clip", corpus["clip"])
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    loaded = clip.load("clip:silverset-test/tiny-clip")
    assert loaded.block_name == f"clip-silverset-test--tiny-clip@sha256:{clip.weights_digest(corpus['clip'])[:16]}"
    assert clip.block_name_for("clip:silverset-test/tiny-clip") == loaded.block_name  # same id, no model load
    np.testing.assert_allclose(loaded.encode_text(["red"]), clip.load(f"clip:{corpus['clip']}").encode_text(["red"]))
    assert attempts == []


def test_studio_search_ranks_videos_by_clip_block_with_the_text_tower(corpus, clip_run, other_clip):
    import torch
    from transformers import AutoModel, AutoTokenizer

    from silverset.components.studio.catalog import load_catalog

    catalog = load_catalog(
        embeddings=clip_run.out_dir, manifest=corpus["manifest"], clip_model=f"clip:{corpus['clip']}"
    )
    ids, vectors, embedder_id = _vectors(clip_run.out_dir)
    rows = [ids.index(v) for v in catalog.video_ids]
    np.testing.assert_array_equal(catalog.text_index(), vectors[rows, :16])  # the image block, not MiniLM's
    query = "red is the dominant colour"
    model = AutoModel.from_pretrained(corpus["clip"], local_files_only=True).eval()
    tokens = AutoTokenizer.from_pretrained(corpus["clip"], local_files_only=True)([query], return_tensors="pt")
    with torch.no_grad():
        q = model.get_text_features(**tokens).pooler_output.numpy()[0]
    q /= np.linalg.norm(q)
    np.testing.assert_allclose(catalog.text_encoder([query])[0], q, atol=1e-5)
    np.testing.assert_array_equal(catalog.text_encoder([query, query])[0], catalog.text_encoder([query, query])[1])
    expected = np.argsort(-(vectors[rows, :16] @ q), kind="stable")[:5]
    got = catalog.search(query, limit=5)
    assert [r for r, _ in got] == list(expected)
    assert got[0][1] == pytest.approx(float(vectors[rows[expected[0]], :16] @ q), abs=1e-5)
    with pytest.raises(SilversetInputError, match="give the same weights"):
        load_catalog(embeddings=clip_run.out_dir, manifest=corpus["manifest"], clip_model=f"clip:{other_clip}")
    # Without the clip model, search stays on the MiniLM text block (titles), as before.
    plain = load_catalog(
        embeddings=clip_run.out_dir,
        manifest=corpus["manifest"],
        text_encoder=lambda texts: np.zeros((len(texts), 384), np.float32),
    )
    np.testing.assert_array_equal(plain.text_index(), vectors[rows, 16:])


def test_class_prompts_come_from_the_definition():
    from silverset.components.teacher.zero_shot import class_prompts

    positive, negative = class_prompts(load_spec(SPEC))
    assert positive[0] == "Red is the dominant colour"
    assert positive[1].startswith("red is the dominant colour of the picture for most of its duration")
    assert negative == ["Small red details, a red logo, or a brief red flash"]


def test_clip_zero_shot_teacher_labels_and_its_identity(corpus, other_clip):
    from silverset.components.teacher.annotate import AnnotateOptions, run

    spec = load_spec(SPEC)
    out = corpus["tmp"] / "labels"
    options = AnnotateOptions(teacher="clip-zero-shot", checkpoint=str(corpus["clip"]), temperature=0.05)
    summary = run(
        attribute_spec=SPEC,
        manifest_uri=corpus["manifest"],
        frames_uri=corpus["frames"],
        out_dir=str(out),
        options=options,
    )
    labels = tables.read_table(out, schemas.LABELS)
    assert labels.num_rows == 20 and merge_check(out, list(corpus["videos"])).ok
    rows = {r["video_id"]: r for r in labels.to_pylist()}
    digest = clip.weights_digest(corpus["clip"])[:16]
    assert summary.teacher_id.startswith(f"clip-zero-shot:clip-tinyclip@sha256:{digest}:t0.05:prompts-")
    for r in rows.values():
        assert r["teacher_id"] == summary.teacher_id and r["prompt_hash"] == spec.prompt_hash
        assert 0.0 < r["probability"] < 1.0 and r["label"] == int(r["probability"] >= spec.decision_threshold)
    # Oracle for one video: mean over frames of softmax([cos to negative, cos to positive] / T).
    loaded = clip.load(f"clip:{corpus['clip']}")
    from silverset.components.teacher.zero_shot import class_prompts

    pos, neg = class_prompts(spec)
    classes = [v.mean(0) / np.linalg.norm(v.mean(0)) for v in (loaded.encode_text(neg), loaded.encode_text(pos))]
    frames = _direct_image_vectors(corpus["clip"], load_frames(corpus["frames"])["vid000"].decode())
    logits = np.stack([frames @ c for c in classes], 1) / 0.05
    soft = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert rows["vid000"]["probability"] == pytest.approx(float(soft[:, 1].mean()), abs=1e-5)
    # Same model and settings: a rerun resumes everything; other weights may not write into this folder.
    again = run(
        attribute_spec=SPEC,
        manifest_uri=corpus["manifest"],
        frames_uri=corpus["frames"],
        out_dir=str(out),
        options=options,
    )
    assert again.stats.resumed == 20 and again.stats.processed == 0
    other = AnnotateOptions(teacher="clip-zero-shot", checkpoint=str(other_clip), temperature=0.05)
    with pytest.raises(SilversetInputError, match="use a fresh --out"):
        run(
            attribute_spec=SPEC,
            manifest_uri=corpus["manifest"],
            frames_uri=corpus["frames"],
            out_dir=str(out),
            options=other,
        )
    warmer = AnnotateOptions(teacher="clip-zero-shot", checkpoint=f"clip:{corpus['clip']}", temperature=0.5)
    with pytest.raises(SilversetInputError, match="use a fresh --out"):
        run(
            attribute_spec=SPEC,
            manifest_uri=corpus["manifest"],
            frames_uri=corpus["frames"],
            out_dir=str(out),
            options=warmer,
        )


def test_clip_zero_shot_needs_a_model(corpus, tmp_path):
    from silverset.components.teacher.annotate import AnnotateOptions, run

    with pytest.raises(SilversetInputError, match="--checkpoint"):
        run(
            attribute_spec=SPEC,
            manifest_uri=corpus["manifest"],
            frames_uri=corpus["frames"],
            out_dir=str(tmp_path / "l"),
            options=AnnotateOptions(teacher="clip-zero-shot"),
        )
    with pytest.raises(SilversetInputError, match="save_pretrained"):
        run(
            attribute_spec=SPEC,
            manifest_uri=corpus["manifest"],
            frames_uri=corpus["frames"],
            out_dir=str(tmp_path / "l"),
            options=AnnotateOptions(teacher="clip-zero-shot", checkpoint=str(tmp_path / "absent")),
        )


@pytest.fixture(scope="module")
def student(corpus, clip_run) -> Path:
    """A student distilled from the clip-zero-shot teacher's labels over the clip (+ MiniLM) embeddings."""
    from silverset.components.distill import train
    from silverset.components.teacher.annotate import AnnotateOptions
    from silverset.components.teacher.annotate import run as annotate

    labels = corpus["tmp"] / "student-labels"
    annotate(
        attribute_spec=SPEC,
        manifest_uri=corpus["manifest"],
        frames_uri=corpus["frames"],
        out_dir=str(labels),
        options=AnnotateOptions(teacher="clip-zero-shot", checkpoint=str(corpus["clip"]), temperature=0.01),
    )
    result = train.run(
        embeddings=clip_run.out_dir,
        labels=str(labels),
        attribute_spec=SPEC,
        out_dir=str(corpus["tmp"] / "model"),
        measure_latency=False,
    )
    assert result.embedder_id == clip_run.embedder_id and result.trained_on == 20
    return corpus["tmp"] / "model"


def test_student_trains_on_clip_embeddings(student, clip_run):
    from silverset.components.common.artifacts import read_model_metadata

    metadata = read_model_metadata(student)
    assert metadata.embedder_id == clip_run.embedder_id and metadata.dimension == 400


@pytest.mark.slow
def test_student_scores_every_video_of_clip_embeddings(corpus, student, clip_run, tmp_path):
    from silverset.components.score import bulk

    scored = bulk.run(model_dir=str(student), embeddings=clip_run.out_dir, out_dir=str(tmp_path / "scores"))
    assert scored.inputs == scored.scored == 20
    scores = tables.read_table(tmp_path / "scores")
    assert sorted(scores.column("video_id").to_pylist()) == sorted(corpus["videos"])
