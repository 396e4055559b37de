"""The frames CNN teacher: trained on its own synthetic corpus, never reads the truth of the corpus it labels,
imperfect on hard cases but far from chance, cached by its training settings, in the local-teacher format."""

from __future__ import annotations

import numpy as np
import pytest

from silverset.components.corpus.synth import ATTRIBUTES
from silverset.components.teacher.frames_cnn import TrainingCorpus, render_training_set, teacher_checkpoint

# A smaller recipe than the demo's (480 videos at three sizes, 10 epochs) so the module trains in seconds.
SMALL = TrainingCorpus(videos=200, sizes=((96, 80), (160, 120)), duration_s=2.0, epochs=6)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("teacher")
    teacher_checkpoint(root, "red_dominant", SMALL)
    return root


def _logits(checkpoint, frames: np.ndarray) -> np.ndarray:
    import torch

    model = torch.jit.load(str(checkpoint))
    with torch.no_grad():
        return model(torch.from_numpy(frames), torch.zeros(len(frames), 384)).numpy()


def test_trained_once_per_recipe_and_one_checkpoint_per_attribute(cache):
    first = teacher_checkpoint(cache, "red_dominant", SMALL)
    mtime = first.stat().st_mtime_ns
    assert teacher_checkpoint(cache, "red_dominant", SMALL).stat().st_mtime_ns == mtime  # reused, not retrained
    assert {p.name for p in first.parent.glob("*.pt")} == {f"{a}.pt" for a in ATTRIBUTES}


def _red_f1(cache, hard_case_share: float) -> float:
    test_corpus = SMALL.model_copy(update={"videos": 160, "seed": 99, "sizes": ((128, 96),)})
    frames, truth = render_training_set(test_corpus, hard_case_share=hard_case_share)
    predicted = (_logits(teacher_checkpoint(cache, "red_dominant", SMALL), frames) >= 0).astype(int)
    y = truth[:, ATTRIBUTES.index("red_dominant")]
    tp, wrong = int(((y == 1) & (predicted == 1)).sum()), int((y != predicted).sum())
    return 2 * tp / (2 * tp + wrong)


def test_red_dominant_is_good_but_no_oracle_on_hard_cases_it_never_trained_on(cache):
    """Another seed and size. Every red video a hard case: F1 in (0.6, 0.97), where always-positive scores ~0.55;
    without hard cases it is better, so the errors are the hard cases (dark crimson, red logos), not noise."""
    hard, easy = _red_f1(cache, 1.0), _red_f1(cache, 0.0)
    assert 0.6 < hard < 0.97, hard
    assert easy > hard + 0.03, (easy, hard)


def test_labels_a_corpus_whose_truth_file_is_gone(cache, tmp_path):
    from silverset.components.common import schemas, tables
    from silverset.components.common.spec import example_specs_dir
    from silverset.components.corpus.synth import SynthOptions
    from silverset.components.corpus.synth import run as synth
    from silverset.components.frames.extract import FrameOptions
    from silverset.components.frames.pipeline import run as frames
    from silverset.components.teacher.annotate import AnnotateOptions
    from silverset.components.teacher.annotate import run as annotate

    corpus = synth(
        out_dir=tmp_path / "c",
        options=SynthOptions(videos=6, seed=4, duration_s=1.0, width=96, height=64, hard_case_share=0.3),
    )
    (tmp_path / "c" / "truth.parquet").unlink()
    frames(
        manifest_uri=corpus.manifest_uri, out_dir=str(tmp_path / "f"), options=FrameOptions(frames_per_video=8, size=64)
    )
    checkpoint = teacher_checkpoint(cache, "red_dominant", SMALL)
    summary = annotate(
        attribute_spec=str(example_specs_dir() / "red_dominant.yaml"),
        manifest_uri=corpus.manifest_uri,
        frames_uri=str(tmp_path / "f"),
        out_dir=str(tmp_path / "labels"),
        options=AnnotateOptions(teacher="local", checkpoint=str(checkpoint), runtime="eager"),
    )
    labels = tables.read_table(tmp_path / "labels", schemas.LABELS).to_pylist()
    assert len(labels) == 6 and {r["label"] for r in labels} <= {0, 1}
    assert summary.teacher_id.startswith("local:red_dominant.pt@sha256:")


def test_an_attribute_it_was_not_trained_for_is_refused(cache):
    from silverset.components.common.errors import SilversetInputError

    with pytest.raises(SilversetInputError, match="frames CNN teacher knows"):
        teacher_checkpoint(cache, "cooking_tutorial", SMALL)
