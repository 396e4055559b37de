"""The embedder is part of a run's identity: a new embedder re-embeds carried videos (labels kept, no teacher
call) and the state never mixes two embedders' vectors; the clip-zero-shot teacher has an identity too."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from silverset.components.common import tables
from silverset.components.common.errors import SilversetInputError
from silverset.components.common.spec import load_spec
from silverset.components.incremental import plan
from silverset.components.incremental.embedder_identity import block_names, embedder_identity
from silverset.components.incremental.teacher_identity import teacher_identity
from silverset.components.teacher.annotate import AnnotateOptions
from tests.helpers.factories import file_corpus, spec_version, teacher_labels


def _fake_clip_dir(root: Path, weights: bytes) -> Path:
    """A save_pretrained-shaped folder: block_name_for hashes the weights file and never loads it."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "model.safetensors").write_bytes(weights)
    (root / "config.json").write_text("{}")
    return root


def _embed(todo_manifest: str, embedder_id: str, out: Path) -> str:
    """What the embed step would write for the manifest's videos: one row each, stamped with its embedder id."""
    ids = tables.read_table(todo_manifest).column("video_id").to_pylist()
    table = pa.table(
        {
            "video_id": ids,
            "embedder_id": [embedder_id] * len(ids),
            "embedding": [[float(i), 1.0] for i in range(len(ids))],
        }
    )
    tables.write_table(table, out / "part-00000.parquet")
    tables.write_errors(out, [])
    return str(out)


def _cycle(tmp: Path, manifest: Path, spec_path: Path, run: int, embedder: str) -> tuple[plan.PlanSummary, int]:
    """plan -> teacher -> embed -> finalize -> commit with the embedder id ``embedder`` (``name[width]+...``)."""
    plan_dir, run_dir = tmp / f"run{run}" / "plan", tmp / f"run{run}"
    summary = plan.run(
        manifest_uri=str(manifest),
        attribute_spec=str(spec_path),
        state_dir=str(tmp / "state"),
        out_dir=str(plan_dir),
        embedder=block_names(embedder),
    )
    labels, calls = teacher_labels(summary.teacher_manifest, spec_path, run_dir / "teacher")
    embeddings = _embed(summary.embed_manifest, embedder, run_dir / "embeddings")
    plan.finalize(plan_dir=str(plan_dir), new_labels=labels, new_embeddings=embeddings, out_dir=str(run_dir / "m"))
    plan.commit_promotion(
        plan_dir=str(plan_dir), merged_dir=str(run_dir / "m"), state_dir=str(tmp / "state"), run_id=f"run{run}"
    )
    return summary, calls


VISUAL = "visual-stats-v1[46]+minilm-l6-v2@sha256:aaaa[384]"
CLIP = "clip-vit@sha256:bbbb[512]+minilm-l6-v2@sha256:aaaa[384]"


def _state_embedders(tmp: Path) -> set[str]:
    return set(tables.read_table(str(tmp / "state" / "embeddings")).column("embedder_id").to_pylist())


def test_a_new_embedder_re_embeds_every_carried_video_keeps_labels_and_calls_no_teacher(tmp_path):
    manifest, spec_path = file_corpus(tmp_path, 8), spec_version(tmp_path)
    first, calls1 = _cycle(tmp_path, manifest, spec_path, 1, VISUAL)
    assert (first.todo, calls1, first.reembed) == (8, 8, 0)
    second, calls2 = _cycle(tmp_path, manifest, spec_path, 2, CLIP)
    assert (second.todo, calls2, second.reembed, second.unchanged) == (0, 0, 8, 8)
    assert not second.up_to_date and not second.relabel_all
    frames = tables.read_table(str(tmp_path / "run2" / "plan" / "frames_manifest.parquet"))
    assert frames.num_rows == 8  # re-embedding needs the frames again
    assert _state_embedders(tmp_path) == {CLIP}  # the state holds one embedder's vectors
    labels = tables.read_table(str(tmp_path / "state" / "labels"))
    assert labels.num_rows == 8  # labels carried through the embedder change
    third, calls3 = _cycle(tmp_path, manifest, spec_path, 3, CLIP)  # same embedder again: nothing to do
    assert (third.todo, third.reembed, calls3) == (0, 0, 0) and third.up_to_date


def test_an_unchanged_embedder_carries_embeddings_and_a_new_video_alone_is_embedded(tmp_path):
    manifest, spec_path = file_corpus(tmp_path, 5), spec_version(tmp_path)
    _cycle(tmp_path, manifest, spec_path, 1, VISUAL)
    extra = tmp_path / "videos" / "v100.mp4"
    extra.write_bytes(b"new video")
    with manifest.open("a") as f:
        f.write(f"v100,{extra},new\n")
    second, calls = _cycle(tmp_path, manifest, spec_path, 2, VISUAL)
    assert (second.todo, second.reembed, calls) == (1, 0, 1)
    assert tables.read_table(second.embed_manifest).column("video_id").to_pylist() == ["v100"]


def test_finalize_refuses_embeddings_of_two_embedders(tmp_path):
    manifest, spec_path = file_corpus(tmp_path, 4), spec_version(tmp_path)
    _cycle(tmp_path, manifest, spec_path, 1, VISUAL)
    (tmp_path / "videos" / "v001.mp4").write_bytes(b"changed")
    plan_dir = tmp_path / "run2" / "plan"
    summary = plan.run(
        manifest_uri=str(manifest),
        attribute_spec=str(spec_path),
        state_dir=str(tmp_path / "state"),
        out_dir=str(plan_dir),
    )  # no embedder given: carried rows are not checked
    labels, _ = teacher_labels(summary.teacher_manifest, spec_path, tmp_path / "run2" / "teacher")
    embeddings = _embed(summary.embed_manifest, CLIP, tmp_path / "run2" / "embeddings")
    with pytest.raises(SilversetInputError, match="mix embedders"):
        plan.finalize(
            plan_dir=str(plan_dir), new_labels=labels, new_embeddings=embeddings, out_dir=str(tmp_path / "run2" / "m")
        )


def test_embedder_identity_follows_the_weights_and_names_a_missing_model(tmp_path):
    default = embedder_identity("default")
    assert default.startswith("visual-stats-v1+minilm-l6-v2@sha256:") and embedder_identity("visual") == default
    a = embedder_identity(f"clip:{_fake_clip_dir(tmp_path / 'vit', b'weights one')}")
    same = embedder_identity(f"clip:{tmp_path / 'vit'}")
    b = embedder_identity(f"clip:{_fake_clip_dir(tmp_path / 'vit2', b'weights two')}")
    assert a == same and a != b and a.startswith("clip-vit@sha256:") and a.endswith(default.split("+")[1])
    with pytest.raises(SilversetInputError, match="embedder"):
        embedder_identity(f"clip:{tmp_path / 'absent'}")
    with pytest.raises(SilversetInputError, match="embedder 'nope.onnx'"):
        embedder_identity("nope.onnx")


def test_plan_run_puts_a_non_default_embedder_in_the_run_folder_and_keeps_the_default_digest(tmp_path):
    manifest, spec_path = file_corpus(tmp_path, 3), spec_version(tmp_path)
    model = _fake_clip_dir(tmp_path / "vit", b"weights one")

    def planned(embedder: str, run_id: str) -> plan.PlanSummary:
        return plan.plan_run(
            manifest_uri=str(manifest),
            attribute_spec=str(spec_path),
            state_dir=str(tmp_path / "s"),
            workdir=str(tmp_path / "w"),
            run_id=run_id,
            options=plan.PlanOptions(embedder=embedder),
            run_lock=str(tmp_path / f"lock-{run_id}"),
        )

    default, clip_run = planned("default", "r1"), planned(f"clip:{model}", "r2")
    assert default.run_dir != clip_run.run_dir
    assert clip_run.embedder_identity.startswith("clip-vit@sha256:")
    without = plan.run(
        manifest_uri=str(manifest),
        attribute_spec=str(spec_path),
        state_dir=str(tmp_path / "s"),
        out_dir=str(tmp_path / "p"),
        teacher=default.teacher_identity,
    )
    assert without.corpus_digest == default.corpus_digest  # plans made before the parameter keep their folders


def test_clip_zero_shot_teacher_identity_covers_weights_and_temperature(tmp_path):
    spec = load_spec(spec_version(tmp_path))
    model = str(_fake_clip_dir(tmp_path / "vit", b"weights one"))

    def identity(**kw) -> str:
        return teacher_identity(spec, AnnotateOptions(teacher="clip-zero-shot", **kw))

    base = identity(checkpoint=model)
    assert base.startswith("clip-zero-shot:clip-vit@sha256:") and base == identity(checkpoint=f"clip:{model}")
    assert identity(checkpoint=model, temperature=0.05) not in (base, identity(checkpoint=model, temperature=0.1))
    other = str(_fake_clip_dir(tmp_path / "vit2", b"weights two"))
    assert identity(checkpoint=other) != base
    with pytest.raises(SilversetInputError, match="teacher_checkpoint"):
        identity()
    with pytest.raises(SilversetInputError, match="teacher_checkpoint"):
        identity(checkpoint=str(tmp_path / "absent"))
