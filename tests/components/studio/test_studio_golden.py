"""Golden set v2 in the studio: the export keeps each rater's vote beside the resolved label; the import gives each
rater their own vote back (v2 files) or each comma-listed labeler the row's label (v1 files); a spec edit that keeps
the classes keeps the labels usable for the new version, and rows of a version with other classes are refused."""

from __future__ import annotations

import pyarrow as pa
import pytest

from silverset.components.common import tables
from silverset.components.common.golden import GOLDEN_V1, read_golden_set
from silverset.components.common.spec import example_specs_dir, parse_spec
from silverset.components.studio.service import Studio

V1, V2, V3 = "red_dominant@v1", "red_dominant@v2", "red_dominant@v3"


def spec_text(*, version: int = 1, edit: str = "", classes: tuple[str, str] | None = None) -> str:
    text = (example_specs_dir() / "red_dominant.yaml").read_text()
    text = text.replace("version: 1\n", f"version: {version}\n")
    text = text.replace("not the title.\n", f"not the title.{edit}\n")
    if classes:
        text += f"classes: [{classes[0]}, {classes[1]}]\n"
    return text


@pytest.fixture
def labelled(studio, catalog):
    """Six videos: a majority, an adjudicated split, a single vote, a tie, a skip, and an adjudicated skip."""
    studio.create_attribute(spec_yaml=spec_text())
    a, b, c, d, e, f = catalog.video_ids[:6]
    for video, labeler, value in [
        (a, "alice", "positive"),
        (a, "bob", "positive"),
        (a, "carol", "negative"),
        (b, "alice", "positive"),
        (b, "bob", "negative"),
        (c, "carol", "negative"),
        (d, "alice", "positive"),
        (d, "bob", "negative"),
        (e, "bob", "skip"),
        (f, "alice", "skip"),
    ]:
        studio.set_label(V1, video_id=video, value=value, labeler=labeler)
    studio.adjudicate(V1, video_id=b, value="negative", adjudicator="dana")
    studio.adjudicate(V1, video_id=f, value="positive", adjudicator="dana")
    return studio, (a, b, c, d, e, f)


def test_export_keeps_each_raters_vote_and_the_resolved_label(labelled, tmp_path):
    studio, (a, b, c, d, _e, f) = labelled
    summary = studio.export_golden(V1, out_dir=tmp_path / "g")
    rows = tables.read_table(tmp_path / "g" / "golden.parquet").to_pylist()
    got = {(r["video_id"], r["labeler"], r["rater_label"], r["label"], r["how"]) for r in rows}
    assert got == {
        (a, "alice", 1, 1, "majority"),
        (a, "bob", 1, 1, "majority"),
        (a, "carol", 0, 1, "majority"),
        (b, "alice", 1, 0, "adjudicated"),
        (b, "bob", 0, 0, "adjudicated"),
        (c, "carol", 0, 0, "single"),
    }
    assert {r["classes"] for r in rows} == {"negative,positive"}
    # inputs == outputs + errors: the tie awaits adjudication; the adjudicated skip has no rater's vote to write
    errors = tables.read_errors(tmp_path / "g").to_pylist()
    assert {(r["key"], r["error_type"]) for r in errors} == {(d, "unresolved_disagreement"), (f, "no_rater_vote")}
    counts = ("rows", "rater_rows", "positives", "negatives", "errors")
    assert tuple(summary[k] for k in counts) == (3, 6, 1, 2, 2)
    golden = read_golden_set(str(tmp_path / "g" / "golden.parquet"), spec=studio.spec(V1))
    assert golden.votes == {a: {"alice": 1, "bob": 1, "carol": 0}, b: {"alice": 1, "bob": 0}, c: {"carol": 0}}
    assert golden.resolved == {a: 1, b: 0, c: 0} and golden.carried_from is None


def test_import_gives_each_rater_their_own_vote_back_and_keeps_the_adjudication(labelled, catalog, tmp_path):
    studio, (a, b, c, *_rest) = labelled
    studio.export_golden(V1, out_dir=tmp_path / "g")
    fresh = Studio(catalog=catalog, db_url=f"sqlite:///{tmp_path / 'fresh.db'}")
    fresh.create_attribute(spec_yaml=spec_text())
    result = fresh.import_golden(V1, path=tmp_path / "g" / "golden.parquet", actor="root")
    assert (result["applied"], result["unchanged"], result["adjudicated"], result["skipped"]) == (6, 0, 1, [])
    votes = {(r["video_id"], r["labeler"]): r["label"] for r in fresh.labels(V1)}
    assert votes == {
        (a, "alice"): "positive",
        (a, "bob"): "positive",
        (a, "carol"): "negative",
        (b, "alice"): "positive",
        (b, "bob"): "negative",
        (c, "carol"): "negative",
    }
    resolved, disputed = fresh.golden_labels(V1)
    assert {r["video_id"]: (r["label"], r["how"]) for r in resolved} == {
        a: ("positive", "majority"),
        b: ("negative", "adjudicated"),
        c: ("negative", "unanimous"),
    }
    assert disputed == []
    again = fresh.import_golden(V1, path=tmp_path / "g" / "golden.parquet", actor="root")
    assert (again["applied"], again["unchanged"], again["adjudicated"]) == (0, 6, 0)


def test_a_v1_file_still_imports_each_listed_labeler_voting_the_rows_label(studio, catalog, tmp_path):
    from datetime import datetime, timezone

    studio.create_attribute(spec_yaml=spec_text())
    a, c = catalog.video_ids[0], catalog.video_ids[2]
    at = datetime(2026, 1, 2, tzinfo=timezone.utc)
    old = pa.Table.from_pylist(
        [
            {
                "video_id": a,
                "attribute": "red_dominant",
                "attribute_version": 1,
                "label": 1,
                "labeler": "alice,bob",
                "labeled_at": at,
            },
            {
                "video_id": c,
                "attribute": "red_dominant",
                "attribute_version": 1,
                "label": 0,
                "labeler": "carol",
                "labeled_at": at,
            },
        ],
        schema=GOLDEN_V1,
    )
    tables.write_table(old, tmp_path / "old.parquet")
    result = studio.import_golden(V1, path=tmp_path / "old.parquet", actor="root")
    assert (result["applied"], result["skipped"]) == (3, [])
    assert {(r["video_id"], r["labeler"], r["label"]) for r in studio.labels(V1)} == {
        (a, "alice", "positive"),
        (a, "bob", "positive"),
        (c, "carol", "negative"),
    }


def test_a_spec_edit_that_keeps_the_classes_keeps_the_labels_and_other_classes_start_empty(labelled, tmp_path):
    studio, (a, b, c, *_rest) = labelled
    before = {(r["video_id"], r["labeler"], r["label"]) for r in studio.labels(V1)}
    created = studio.create_attribute(spec_yaml=spec_text(version=2, edit=" A red sunset counts."))
    assert (created["key"], created["carried_from"], created["carried_labels"]) == (V2, 1, len(before))
    assert {(r["video_id"], r["labeler"], r["label"]) for r in studio.labels(V2)} == before
    assert {r["source"] for r in studio.labels(V2)} == {"carried:v1"}
    resolved = {key: {r["video_id"]: r["label"] for r in studio.golden_labels(key)[0]} for key in (V1, V2)}
    assert resolved[V2] == resolved[V1]
    # the versions are separate from here on: an edit in v2 does not touch v1
    studio.set_label(V2, video_id=c, value="positive", labeler="carol", expected_revision=1)
    assert {(r["video_id"], r["labeler"], r["label"]) for r in studio.labels(V1)} == before

    other = studio.create_attribute(spec_yaml=spec_text(version=3, classes=("plain", "red")))
    assert (other["carried_from"], other["carried_labels"]) == (None, 0)
    assert studio.labels(V3) == []


def test_golden_rows_of_another_version_apply_when_the_classes_match_and_are_refused_otherwise(
    labelled, catalog, tmp_path
):
    studio, (a, b, c, *_rest) = labelled
    studio.export_golden(V1, out_dir=tmp_path / "g")
    path = tmp_path / "g" / "golden.parquet"
    fresh = Studio(catalog=catalog, db_url=f"sqlite:///{tmp_path / 'fresh.db'}")
    fresh.create_attribute(spec_yaml=spec_text(version=2, edit=" A red sunset counts."))
    fresh.create_attribute(spec_yaml=spec_text(version=3, classes=("plain", "red")))
    same = fresh.import_golden(V2, path=path, actor="root")
    assert (same["applied"], same["carried_from"], same["skipped"]) == (6, [1], [])
    assert read_golden_set(str(path), spec=parse_spec(spec_text(version=2, edit=" x"), source="v2")).carried_from == 1

    refused = fresh.import_golden(V3, path=path, actor="root")
    assert refused["applied"] == 0 and len(refused["skipped"]) == 6
    assert {s["reason"] for s in refused["skipped"]} == {
        "row is for red_dominant@v1 with classes (negative,positive), red_dominant@v3 has (plain,red)"
    }
    assert fresh.labels(V3) == []
