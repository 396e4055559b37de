"""The review list (every label of an attribute, per video) and the teacher gate's disagreements as the studio finds
them under its workdir: the newest file of this attribute, this version first; other attributes, unreadable files
and the large stage folders are passed over."""

from __future__ import annotations

import os

import pytest
from fastapi.testclient import TestClient

from silverset.components.common.spec import example_specs_dir
from silverset.components.evaluate.disagreements import DisagreementItem, Disagreements, write_disagreements
from silverset.components.studio.app import create_app
from silverset.components.studio.service import Studio

from .conftest import bearer

KEY = "red_dominant@v1"


@pytest.fixture
def studio_wd(catalog, tmp_path):
    studio = Studio(
        catalog=catalog,
        db_url=f"sqlite:///{tmp_path / 'studio.db'}",
        golden_dir=tmp_path / "golden",
        workdir=tmp_path / "wd",
    )
    studio.create_attribute(spec_yaml=(example_specs_dir() / "red_dominant.yaml").read_text())
    return studio, tmp_path / "wd"


def item(video_id: str, p: float, resolved: int, **extra) -> DisagreementItem:
    return DisagreementItem(
        video_id=video_id,
        title=extra.get("title", f"title of {video_id}"),
        teacher_label=int(p >= 0.5),
        teacher_probability=p,
        resolved_label=resolved,
        rationale=extra.get("rationale"),
        votes=extra.get("votes", {"alice": resolved}),
        frame_count=6,
    )


def write(folder, attribute: str, version: int, items: list[DisagreementItem], mtime: float | None = None):
    folder.mkdir(parents=True, exist_ok=True)
    path = write_disagreements(folder, Disagreements(attribute=attribute, attribute_version=version, items=items))
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def test_review_lists_every_label_per_video_with_its_resolution(studio_wd, catalog, users, tokens):
    studio, _ = studio_wd
    a, b, c = catalog.video_ids[:3]
    studio.set_label(KEY, video_id=a, value="positive", labeler="alice")
    studio.set_label(KEY, video_id=a, value="negative", labeler="bob")
    studio.set_label(KEY, video_id=b, value="skip", labeler="bob")
    studio.adjudicate(KEY, video_id=c, value="negative", adjudicator="dana")
    with TestClient(create_app(studio, users=users), base_url="http://localhost") as client:
        assert client.get(f"/api/attributes/{KEY}/review").status_code == 401
        review = client.get(f"/api/attributes/{KEY}/review", headers=bearer(tokens, "carol")).json()
    by_video = {r["video_id"]: r for r in review}
    assert list(by_video) == sorted([a, b, c])
    assert [(lab["labeler"], lab["label"], lab["revision"]) for lab in by_video[a]["labels"]] == [
        ("alice", "positive", 1),
        ("bob", "negative", 1),
    ]
    assert (by_video[a]["resolved"], by_video[a]["how"]) == (None, "tie")
    assert (by_video[b]["resolved"], by_video[b]["how"]) == (None, "skipped")
    assert (by_video[c]["resolved"], by_video[c]["how"], by_video[c]["adjudication"]["adjudicator"]) == (
        "negative",
        "adjudicated",
        "dana",
    )
    assert by_video[a]["title"] == catalog.titles[0] and by_video[a]["frames"] == catalog.card(0)["frames"]


def test_teacher_disagreements_come_from_the_newest_run_of_this_attribute_most_confident_first(studio_wd, catalog):
    studio, wd = studio_wd
    assert studio.teacher_disagreements(KEY)["found"] is False
    v = catalog.video_ids
    write(wd / "pipeline" / "runs" / "old" / "teacher_gate", "red_dominant", 1, [item(v[9], 0.9, 0)], mtime=1_000)
    newest = write(
        wd / "pipeline" / "runs" / "new" / "teacher_gate",
        "red_dominant",
        1,
        [item(v[1], 0.6, 0), item(v[2], 0.02, 1), item("not-in-corpus", 0.3, 1)],
        mtime=2_000,
    )
    write(wd / "pipeline" / "runs" / "v2" / "teacher_gate", "red_dominant", 2, [item(v[3], 0.99, 0)], mtime=3_000)
    write(wd / "pipeline" / "runs" / "other" / "teacher_gate", "blue_sky", 1, [item(v[4], 0.99, 0)], mtime=4_000)
    (wd / "pipeline" / "runs" / "broken" / "teacher_gate").mkdir(parents=True)
    (wd / "pipeline" / "runs" / "broken" / "teacher_gate" / "disagreements.json").write_text("{not json")
    os.utime(wd / "pipeline" / "runs" / "broken" / "teacher_gate" / "disagreements.json", (5_000, 5_000))
    # inside a stage output folder: never searched
    write(wd / "frames" / "teacher_gate", "red_dominant", 1, [item(v[5], 0.99, 0)], mtime=6_000)

    found = studio.teacher_disagreements(KEY)
    assert (found["found"], found["path"], found["attribute_version"], found["same_version"]) == (
        True,
        str(newest),
        1,
        True,
    )
    assert [(i["video_id"], round(i["confidence"], 6)) for i in found["items"]] == [
        (v[2], 0.48),
        ("not-in-corpus", 0.2),
        (v[1], 0.1),
    ]  # |p - 0.5|, most confident first
    assert found["items"][0]["frames"] == catalog.card(2)["frames"] and found["items"][1]["frames"] == []
    assert found["items"][1]["in_corpus"] is False

    # no file of this version: the newest of another version is shown, marked as such
    text = (example_specs_dir() / "red_dominant.yaml").read_text()
    studio.create_attribute(spec_yaml=text.replace("version: 1\n", "version: 3\n"))
    other = studio.teacher_disagreements("red_dominant@v3")
    assert (other["attribute_version"], other["same_version"]) == (2, False)
