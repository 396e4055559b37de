"""The teacher gate's disagreement review: disagreements.json (the studio's input) and the report's list."""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import shutil
from html.parser import HTMLParser

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from silverset.components.common import schemas, tables
from silverset.components.common.errors import SilversetInputError
from silverset.components.common.golden import golden_rows
from silverset.components.common.spec import load_spec
from silverset.components.evaluate.disagreements import DISAGREEMENTS_FILE, read_disagreements
from silverset.components.evaluate.gate import check_student, check_teacher
from tests.helpers.factories import SPEC, noisy_predictions, write_golden, write_scores

HOSTILE_TITLE = "<script>alert('title')</script> Tom & \"Jerry\""
HOSTILE_RATIONALE = "<img src=x onerror=alert(1)> looks red'</td>"
RATERS = ("alice", "bob", "carol")


def _golden(tmp_path, n=24):
    """n videos, 3 raters; resolved = majority of votes; returns (uri, resolved, votes)."""
    rng = np.random.default_rng(3)
    resolved = {f"v{i:04d}": int(i % 2) for i in range(n)}
    votes = {}
    for vid, label in resolved.items():
        dissent = RATERS[int(rng.integers(0, 3))] if rng.random() < 0.4 else None  # one rater may disagree
        votes[vid] = {r: (1 - label if r == dissent else label) for r in RATERS}
    how = {v: ("majority" if len(set(votes[v].values())) > 1 else "unanimous") for v in resolved}
    at = {v: dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc) for v in resolved}
    spec = load_spec(SPEC)
    table = golden_rows(
        attribute=spec.name,
        version=spec.version,
        classes=spec.classes,
        votes=votes,
        resolved=resolved,
        how=how,
        labeled_at=at,
    )
    tables.write_table(table, tmp_path / "golden.parquet", schemas.GOLDEN)
    return str(tmp_path / "golden.parquet"), resolved, votes


def _teacher_labels(tmp_path, resolved, probabilities):
    ids = list(resolved)
    p = [probabilities[v] for v in ids]
    table = pa.table(
        {
            "video_id": ids,
            "attribute": ["red_dominant"] * len(ids),
            "attribute_version": pa.array([1] * len(ids), pa.int32()),
            "label": pa.array([int(x >= 0.5) for x in p], pa.int32()),
            "probability": pa.array(p, pa.float32()),
            "rationale": [HOSTILE_RATIONALE if v == "v0002" else f"rationale of {v}" for v in ids],
            "teacher_id": ["t"] * len(ids),
            "prompt_hash": ["h"] * len(ids),
        }
    )
    tables.write_table(table, tmp_path / "labels.parquet", schemas.LABELS)
    return str(tmp_path / "labels.parquet")


def _jpeg(colour, size=64):
    buffer = io.BytesIO()
    Image.fromarray(np.full((size, size + 16, 3), colour, np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


def _frames(tmp_path, counts):
    rows = [
        {
            "video_id": vid,
            "frame_index": i,
            "timestamp_s": i * 0.5,
            "width": 80,
            "height": 64,
            "jpeg": _jpeg((200, 20 * i % 255, 30)),
        }
        for vid, n in counts.items()
        for i in range(n)
    ]
    tables.write_table(
        pa.Table.from_pylist(rows, schema=schemas.FRAMES), tmp_path / "frames" / "part-0.parquet", schemas.FRAMES
    )
    return str(tmp_path / "frames")


def _manifest(tmp_path, ids):
    table = pa.table(
        {
            "video_id": ids,
            "uri": [f"file:///v/{v}.mp4" for v in ids],
            "title": [HOSTILE_TITLE if v == "v0001" else f"title {v}" for v in ids],
        }
    )
    tables.write_table(table, tmp_path / "manifest.parquet")
    return str(tmp_path / "manifest.parquet")


class _Rows(HTMLParser):
    """Rows of table#disagreements (data-video-id, title/rationale cell text, thumbnail srcs) and every script."""

    def __init__(self):
        super().__init__()
        self.rows, self.scripts, self._in_table, self._cell, self._script = [], [], False, None, False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and attrs.get("id") == "disagreements":
            self._in_table = True
        elif tag == "script":
            self._script = True
            self.scripts.append("")
        elif self._in_table and tag == "tr" and "data-video-id" in attrs:
            self.rows.append(
                {
                    "id": attrs["data-video-id"],
                    "confidence": float(attrs["data-confidence"]),
                    "title": "",
                    "rationale": "",
                    "thumbs": [],
                }
            )
        elif self._in_table and tag == "td" and self.rows:
            self._cell = attrs.get("class")
        elif self._in_table and tag == "img" and self.rows:
            self.rows[-1]["thumbs"].append(attrs["src"])

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_table = False
        elif tag == "td":
            self._cell = None
        elif tag == "script":
            self._script = False

    def handle_data(self, data):
        if self._script:
            self.scripts[-1] += data
        elif self._in_table and self._cell in ("title", "rationale") and self.rows:
            self.rows[-1][self._cell] += data


def _parse(path):
    parser = _Rows()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def _case(tmp_path):
    golden, resolved, votes = _golden(tmp_path)
    probabilities = {v: (0.8 if label else 0.2) for v, label in resolved.items()}
    # disagreements: positives called negative, and negatives called positive, at different confidences
    probabilities.update({"v0001": 0.02, "v0003": 0.45, "v0002": 0.93, "v0010": 0.61, "v0005": 0.3})
    labels = _teacher_labels(tmp_path, resolved, probabilities)
    return golden, resolved, votes, probabilities, labels


def test_teacher_gate_lists_exactly_the_disagreements_sorted_by_confidence(tmp_path):
    golden, resolved, votes, probabilities, labels = _case(tmp_path)
    frame_counts = {"v0001": 5, "v0002": 2, "v0003": 1}  # v0005 and v0010 have no frames
    frames = _frames(tmp_path, {**frame_counts, "v0004": 3})
    manifest = _manifest(tmp_path, list(resolved))
    check_teacher(
        attribute_spec=SPEC,
        golden_set=golden,
        predictions=labels,
        out_dir=str(tmp_path / "gate"),
        frames_uri=frames,
        manifest_uri=manifest,
    )

    # brute force: every golden item whose teacher decision differs from the resolved label, |p - 0.5| descending
    wrong = [v for v in resolved if int(probabilities[v] >= 0.5) != resolved[v]]
    expected = sorted(wrong, key=lambda v: -abs(np.float32(probabilities[v]) - 0.5))
    assert expected == ["v0001", "v0002", "v0005", "v0010", "v0003"]

    record = json.loads((tmp_path / "gate" / DISAGREEMENTS_FILE).read_text())
    assert set(record) == {"attribute", "attribute_version", "items"}
    assert (record["attribute"], record["attribute_version"]) == ("red_dominant", 1)
    assert [item["video_id"] for item in record["items"]] == expected
    for item in record["items"]:
        vid = item["video_id"]
        assert set(item) == {
            "video_id",
            "title",
            "teacher_label",
            "teacher_probability",
            "resolved_label",
            "rationale",
            "votes",
            "frame_count",
        }
        assert item["resolved_label"] == resolved[vid] and item["teacher_label"] == 1 - resolved[vid]
        assert item["teacher_probability"] == pytest.approx(probabilities[vid], abs=1e-6)
        assert item["votes"] == votes[vid]
        assert item["frame_count"] == frame_counts.get(vid, 0)
        assert item["title"] == (HOSTILE_TITLE if vid == "v0001" else f"title {vid}")
        assert item["rationale"] == (HOSTILE_RATIONALE if vid == "v0002" else f"rationale of {vid}")
    assert read_disagreements(tmp_path / "gate").items[0].video_id == "v0001"  # the studio's reader

    report = tmp_path / "gate" / "report.html"
    page = _parse(report)
    assert [row["id"] for row in page.rows] == expected
    by_id = {row["id"]: row for row in page.rows}
    # user and model text shows as text, never as markup: the only script is the report's own sorter
    assert by_id["v0001"]["title"] == HOSTILE_TITLE and by_id["v0002"]["rationale"] == HOSTILE_RATIONALE
    text = report.read_text(encoding="utf-8")
    assert "<script>alert" not in text and "<img src=x" not in text
    assert len(page.scripts) == 1 and "alert" not in page.scripts[0] and "src=" not in page.scripts[0]
    # thumbnails: up to 3 per item, small JPEGs embedded as data: URIs (nothing fetched from outside)
    for vid, row in by_id.items():
        assert len(row["thumbs"]) == min(3, frame_counts.get(vid, 0))
        for src in row["thumbs"]:
            assert src.startswith("data:image/jpeg;base64,")
            image = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
            assert image.format == "JPEG" and max(image.size) <= 96


def test_without_frames_or_manifest_the_list_still_shows(tmp_path):
    golden, resolved, votes, probabilities, labels = _case(tmp_path)
    check_teacher(attribute_spec=SPEC, golden_set=golden, predictions=labels, out_dir=str(tmp_path / "gate"))
    found = read_disagreements(tmp_path / "gate" / DISAGREEMENTS_FILE)
    assert [i.video_id for i in found.items] == ["v0001", "v0002", "v0005", "v0010", "v0003"]
    assert all(i.title is None and i.frame_count == 0 for i in found.items)
    page = _parse(tmp_path / "gate" / "report.html")
    assert [r["id"] for r in page.rows] == [i.video_id for i in found.items]
    assert all(r["thumbs"] == [] for r in page.rows)


def test_old_golden_file_votes_come_from_its_labelers(tmp_path, truth):
    """A v1 golden file (one row per video, labeler 'alice') still gives each item alice's vote."""
    golden = write_golden(tmp_path / "golden.parquet", truth)
    probs = noisy_predictions(truth, flip=0.1, seed=2)
    preds = write_scores(tmp_path / "p.parquet", probs)
    check_teacher(attribute_spec=SPEC, golden_set=golden, predictions=preds, out_dir=str(tmp_path / "gate"))
    found = read_disagreements(tmp_path / "gate")
    wrong = {f"v{i:04d}" for i in np.flatnonzero((probs >= 0.5).astype(int) != truth)}
    assert {i.video_id for i in found.items} == wrong and wrong
    assert all(i.votes == {"alice": i.resolved_label} and i.rationale is None for i in found.items)


def test_student_gate_writes_no_list_and_a_stale_one_is_removed(tmp_path, truth):
    golden = write_golden(tmp_path / "golden.parquet", truth)
    preds = write_scores(tmp_path / "p.parquet", noisy_predictions(truth, flip=0.1, seed=2))
    out = tmp_path / "gate"
    check_teacher(attribute_spec=SPEC, golden_set=golden, predictions=preds, out_dir=str(out))
    assert (out / DISAGREEMENTS_FILE).exists()
    check_student(
        attribute_spec=SPEC,
        golden_set=golden,
        predictions=preds,
        model_dir=None,
        out_dir=str(out),
        teacher_predictions=preds,
        student_latency_s_per_item=1e-5,
        teacher_latency_s_per_item=1.0,
    )
    assert not (out / DISAGREEMENTS_FILE).exists()
    assert "disagreements" not in (out / "report.html").read_text()


def test_unreadable_inputs_are_named(tmp_path):
    golden, resolved, votes, probabilities, labels = _case(tmp_path)
    with pytest.raises(SilversetInputError, match="absent"):
        check_teacher(
            attribute_spec=SPEC,
            golden_set=golden,
            predictions=labels,
            out_dir=str(tmp_path / "g"),
            frames_uri=str(tmp_path / "absent"),
        )
    with pytest.raises(SilversetInputError, match="disagreements .*does not exist"):
        read_disagreements(tmp_path / "nowhere")


def test_cli_exit_2_for_missing_frames(cli_run, tmp_path):
    golden, resolved, votes, probabilities, labels = _case(tmp_path)
    code, err = cli_run(
        "evaluate",
        "--attribute",
        SPEC,
        "--golden",
        golden,
        "--predictions",
        labels,
        "--gate",
        "teacher",
        "--out",
        str(tmp_path / "g"),
        "--frames",
        str(tmp_path / "no-frames"),
    )
    assert code == 2 and "no-frames" in err


@pytest.fixture
def cli_run(capsys, monkeypatch):
    import sys

    from silverset.pipelines.cli import main

    def run_cli(*args):
        monkeypatch.setattr(sys, "argv", ["silverset", *args])
        with pytest.raises(SystemExit) as info:
            main()
        return info.value.code, capsys.readouterr().err

    return run_cli


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is installed by `make browser`")
def test_browser_sorts_by_confidence(tmp_path):
    from playwright.sync_api import sync_playwright

    golden, resolved, votes, probabilities, labels = _case(tmp_path)
    check_teacher(attribute_spec=SPEC, golden_set=golden, predictions=labels, out_dir=str(tmp_path / "gate"))
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=shutil.which("chromium"), args=["--no-sandbox", "--headless=new", "--disable-gpu"]
        )
        page = browser.new_page()
        page.goto((tmp_path / "gate" / "report.html").as_uri())
        order = lambda: page.eval_on_selector_all(  # noqa: E731
            "#disagreements tbody tr", "rows => rows.map(r => r.dataset.videoId)"
        )
        assert order() == ["v0001", "v0002", "v0005", "v0010", "v0003"]
        page.click("#sort-confidence-asc")
        assert order() == ["v0003", "v0010", "v0005", "v0002", "v0001"]
        page.click("#sort-confidence-desc")
        assert order() == ["v0001", "v0002", "v0005", "v0010", "v0003"]
        browser.close()
