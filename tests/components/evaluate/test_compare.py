"""Two definitions compared on a hand-made golden set with the real zero-shot text teacher (MiniLM)."""

from __future__ import annotations

import datetime as dt
import io
import json
import re

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image
from sklearn.metrics import f1_score, precision_score, recall_score

from silverset.components.common import schemas, tables
from silverset.components.common.errors import SilversetInputError
from silverset.components.common.golden import golden_rows
from silverset.components.common.spec import example_specs_dir, load_spec
from silverset.components.evaluate.compare import COMPARE_REPORT, read_compare, run

COOKING = [
    "How to make pasta carbonara at home",
    "Easy chocolate cake recipe step by step",
    "Chef shows how to fry rice",
    "Baking sourdough bread for beginners",
    "Cooking a Sunday roast dinner",
    "Making homemade pizza dough",
    "Quick vegetable stir fry recipe",
    "Grandma's soup recipe in the kitchen",
    "How to grill the perfect steak",
    "Pancake breakfast cooking lesson",
]
OTHER = [
    "Highlights of the football match",
    "Formula one race in Monaco",
    "Cat plays with a toy mouse",
    "City skyline timelapse at night",
    "Guitar lesson for beginners",
    "Hiking in the mountains vlog",
    "Stock market news today",
    "Kids playing in the park",
    "Car engine repair tutorial",
    "Sunset over the ocean",
]
GOOD = ("A cooking tutorial", "Label a video POSITIVE when someone shows how to cook or bake food in a kitchen.")
POOR = ("A motor race", "Label a video POSITIVE when it shows cars racing on a track.")


def write_spec(path, *, title, definition, version, name="cooking", classes=None):
    text = (example_specs_dir() / "red_dominant.yaml").read_text()
    text = text.replace("name: red_dominant", f"name: {name}").replace("version: 1", f"version: {version}")
    text = text.replace("title: Red is the dominant colour", f"title: {title}")
    text = re.sub(r"definition: \|\n(  .*\n)+", f"definition: |\n  {definition}\n", text)
    if classes:
        text += f"classes: [{', '.join(classes)}]\n"
    path.write_text(text)
    return str(path)


def write_golden_and_manifest(tmp_path, *, version=1, hostile=False):
    """20 videos (10 cooking, 10 not), 2 raters who agree; golden v2 at ``version``; manifest with titles."""
    titles = COOKING + OTHER
    if hostile:
        titles[0] = "<b>How to make pasta</b> carbonara at home & <script>x()</script>"
    ids = [f"g{i:02d}" for i in range(len(titles))]
    resolved = {v: int(i < len(COOKING)) for i, v in enumerate(ids)}
    votes = {v: {"alice": label, "bob": label} for v, label in resolved.items()}
    at = {v: dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc) for v in ids}
    table = golden_rows(
        attribute="cooking",
        version=version,
        classes=("negative", "positive"),
        votes=votes,
        resolved=resolved,
        how={v: "unanimous" for v in ids},
        labeled_at=at,
    )
    tables.write_table(table, tmp_path / "golden.parquet", schemas.GOLDEN)
    manifest = pa.table(
        {
            "video_id": ids + ["extra"],
            "uri": [f"file:///v/{v}.mp4" for v in ids + ["extra"]],
            "title": titles + ["not in the golden set"],
        }
    )
    tables.write_table(manifest, tmp_path / "manifest.parquet")
    return str(tmp_path / "golden.parquet"), str(tmp_path / "manifest.parquet"), ids, titles, resolved


def write_frames(folder, ids):
    rows = []
    for i, vid in enumerate(ids):
        for t in range(2):
            buffer = io.BytesIO()
            Image.fromarray(np.full((40, 48, 3), (10 * i, 90, 120 * t), np.uint8)).save(buffer, format="JPEG")
            rows.append(
                {
                    "video_id": vid,
                    "frame_index": t,
                    "timestamp_s": 0.5 * t,
                    "width": 48,
                    "height": 40,
                    "jpeg": buffer.getvalue(),
                }
            )
    tables.write_table(pa.Table.from_pylist(rows, schema=schemas.FRAMES), folder / "part-0.parquet", schemas.FRAMES)
    return str(folder)


def oracle_decisions(spec_path, titles):
    """The zero-shot teacher's decisions computed directly from its scoring function (no stage, no files)."""
    from silverset.components.teacher.zero_shot import ZeroShotHandler

    spec = load_spec(spec_path)
    handler = ZeroShotHandler(spec)
    return (handler.probabilities(titles, handler.load_model()) >= spec.decision_threshold).astype(int)


@pytest.fixture
def specs(tmp_path):
    good = write_spec(tmp_path / "good.yaml", title=GOOD[0], definition=GOOD[1], version=1)
    poor = write_spec(tmp_path / "poor.yaml", title=POOR[0], definition=POOR[1], version=2)
    return good, poor


def test_a_better_definition_scores_higher_and_flips_are_listed(tmp_path, specs):
    good, poor = specs
    golden, manifest, ids, titles, resolved = write_golden_and_manifest(tmp_path, hostile=True)
    truth = np.array([resolved[v] for v in ids])
    frames = write_frames(tmp_path / "frames", ids)
    report = run(a=poor, b=good, golden=golden, out=str(tmp_path / "cmp"), manifest=manifest, frames=frames)

    decided = {"a": oracle_decisions(poor, titles), "b": oracle_decisions(good, titles)}
    for side in ("a", "b"):
        result = getattr(report, side)
        assert result.f1.value == pytest.approx(f1_score(truth, decided[side]))
        assert result.precision.value == pytest.approx(precision_score(truth, decided[side], zero_division=0))
        assert result.recall.value == pytest.approx(recall_score(truth, decided[side]))
        assert result.f1.lower <= result.f1.value <= result.f1.upper
    assert report.b.f1.value > 0.8 > 0.3 > report.a.f1.value  # the cooking definition is the better one
    d = report.f1_difference
    assert d.value == pytest.approx(f1_score(truth, decided["b"]) - f1_score(truth, decided["a"]))
    assert 0 < d.lower <= d.value <= d.upper and d.verdict == "B better" and d.share_b_at_least_a == 1.0
    # the paired CI against a brute-force bootstrap with scikit-learn on the same seeded resamples
    spec = load_spec(poor)
    rng = np.random.default_rng(spec.gates.seed)
    idx = rng.integers(0, len(ids), size=(spec.gates.bootstrap_samples, len(ids)))
    f1 = lambda y, yhat: f1_score(y, yhat, zero_division=0)  # noqa: E731
    deltas = [f1(truth[i], decided["b"][i]) - f1(truth[i], decided["a"][i]) for i in idx]
    assert (d.lower, d.upper) == pytest.approx(tuple(np.quantile(deltas, [0.025, 0.975])))

    flipped = {f.video_id: f for f in report.flipped}
    assert set(flipped) == {v for v, x, y in zip(ids, decided["a"], decided["b"]) if x != y} and flipped
    for vid, f in flipped.items():
        i = ids.index(vid)
        assert (f.label_a, f.label_b, f.resolved_label) == (decided["a"][i], decided["b"][i], resolved[vid])
        assert f.right == ("B" if decided["b"][i] == resolved[vid] else "A")
        assert f.title == titles[i] and "p=" in f.rationale_a and "p=" in f.rationale_b
    assert read_compare(tmp_path / "cmp") == report
    page = (tmp_path / "cmp" / COMPARE_REPORT).read_text()
    assert page.count("<tr data-video-id=") == len(flipped)
    assert page.count("<img alt='frame' src='data:image/jpeg;base64,") == 2 * len(flipped)  # 2 frames per video
    assert "<script>" not in page and "&lt;script&gt;x()&lt;/script&gt;" in page


def test_swapping_the_definitions_swaps_the_sign_and_reuses_the_labels(tmp_path, specs):
    good, poor = specs
    golden, manifest, *_ = write_golden_and_manifest(tmp_path)
    first = run(a=poor, b=good, golden=golden, out=str(tmp_path / "cmp"), manifest=manifest)
    second = run(a=good, b=poor, golden=golden, out=str(tmp_path / "cmp"), manifest=manifest)
    assert second.f1_difference.value == pytest.approx(-first.f1_difference.value)
    assert second.f1_difference.verdict == "B worse" and second.f1_difference.upper < 0
    # the second run found both definitions' labels in the folder: the teacher labelled nothing again
    assert (first.a.labelled_now, first.b.labelled_now) == (20, 20)
    assert (second.a.resumed, second.b.resumed) == (20, 20) and (second.a.labelled_now, second.b.labelled_now) == (0, 0)
    assert json.loads((tmp_path / "cmp" / "compare.json").read_text())["a"]["key"] == "cooking@v1"


def test_golden_labels_carry_to_a_new_version_with_the_same_classes(tmp_path, specs):
    good, _ = specs
    golden, manifest, *_ = write_golden_and_manifest(tmp_path, version=1)
    v3 = write_spec(tmp_path / "v3.yaml", title="Someone cooking food", definition=GOOD[1], version=3)
    v4 = write_spec(tmp_path / "v4.yaml", title=GOOD[0], definition=GOOD[1], version=4)
    report = run(a=v3, b=v4, golden=golden, out=str(tmp_path / "cmp"), manifest=manifest)
    assert report.golden_version == 1 and report.n == 20


def test_refuses_another_attribute_or_other_classes(tmp_path, specs):
    good, _ = specs
    golden, manifest, *_ = write_golden_and_manifest(tmp_path)
    other = write_spec(tmp_path / "other.yaml", title=GOOD[0], definition=GOOD[1], version=2, name="baking")
    with pytest.raises(SilversetInputError, match="is attribute 'baking'.*one attribute"):
        run(a=good, b=other, golden=golden, out=str(tmp_path / "c1"), manifest=manifest)
    classes = write_spec(
        tmp_path / "classes.yaml", title=GOOD[0], definition=GOOD[1], version=2, classes=("absent", "present")
    )
    with pytest.raises(SilversetInputError, match="classes .*unchanged"):
        run(a=good, b=classes, golden=golden, out=str(tmp_path / "c2"), manifest=manifest)
    assert not (tmp_path / "c1").exists() and not (tmp_path / "c2").exists()  # refused before the teacher ran


def test_items_the_teacher_cannot_label_are_named(tmp_path, specs):
    good, poor = specs
    golden, _, ids, *_ = write_golden_and_manifest(tmp_path)
    # without a manifest the text teacher has no text for any golden video
    with pytest.raises(SilversetInputError, match=r"20 of 20 golden items got no label \(e.g. g00 \(no_text"):
        run(a=poor, b=good, golden=golden, out=str(tmp_path / "cmp"))
