"""A real browser (Playwright + Debian's chromium) on the review tab: every label listed and filtered, an edit of the
signed-in user's label going through the revision rule (a stale edit gets the 409 and the fresh list, the retry
lands), the stop-rule banner appearing when the edit reaches the cap; then the teacher disagreements from the
workdir's pipeline run, most confident first and re-sortable, with script in a title and a rationale shown as text."""

from __future__ import annotations

import shutil

import pytest

from silverset.components.common.spec import example_specs_dir
from silverset.components.evaluate.disagreements import DisagreementItem, Disagreements, write_disagreements
from silverset.components.studio import scores
from silverset.components.studio.app import create_app
from silverset.components.studio.service import Studio

from .test_studio_browser import CHROMIUM_ARGS, XSS, serving, sign_in

pytestmark = pytest.mark.browser
KEY = "red_dominant@v1"
CAP = 8  # the stop rule's label cap in this test (1,000 in the product)


@pytest.fixture
def seeded(catalog, corpus, tmp_path, monkeypatch):
    """alice labels 8 videos by their truth; bob agrees on one and contradicts her on another (a tie): 7 resolved."""
    stop_rule = scores.stop_rule
    monkeypatch.setattr(scores, "stop_rule", lambda **kw: stop_rule(**kw, max_labels=CAP))
    studio = Studio(
        catalog=catalog,
        db_url=f"sqlite:///{tmp_path / 'studio.db'}",
        golden_dir=tmp_path / "golden",
        workdir=tmp_path / "wd",
    )
    studio.create_attribute(spec_yaml=(example_specs_dir() / "red_dominant.yaml").read_text())
    ids = catalog.video_ids[:8]
    truth = {v: "positive" if corpus.truth[i] else "negative" for i, v in enumerate(ids)}
    for v in ids:
        studio.set_label(KEY, video_id=v, value=truth[v], labeler="alice")
    flip = {"positive": "negative", "negative": "positive"}
    studio.set_label(KEY, video_id=ids[1], value=flip[truth[ids[1]]], labeler="bob")
    studio.set_label(KEY, video_id=ids[2], value=truth[ids[2]], labeler="bob")
    items = [
        DisagreementItem(
            video_id=ids[i],
            title=title,
            teacher_label=int(p >= 0.5),
            teacher_probability=p,
            resolved_label=int(p < 0.5),
            rationale=rationale,
            votes={"alice": int(p < 0.5)},
            frame_count=6,
        )
        for i, p, title, rationale in [
            (3, 0.62, "mild", "slightly red"),
            (4, 0.97, f"sure {XSS}", f"because {XSS}"),
            (5, 0.21, "fairly", None),
        ]
    ]
    gate = tmp_path / "wd" / "pipeline" / "runs" / "0123456789abcdef" / "teacher_gate"
    gate.mkdir(parents=True)
    write_disagreements(gate, Disagreements(attribute="red_dominant", attribute_version=1, items=items))
    return studio, ids, truth


def test_review_tab_filters_and_edits_labels_with_the_revision_rule_and_teacher_list_sorts(
    seeded, users, tokens, tmp_path
):
    from playwright.sync_api import expect, sync_playwright

    studio, ids, truth = seeded
    dialogs = []
    with serving(create_app(studio, users=users)) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(url)
        sign_in(page, "bob", tokens["bob"])
        expect(page.get_by_test_id("attribute")).to_have_value(KEY)
        expect(page.get_by_test_id("stop-status")).to_contain_text(f"or {CAP} labels (7 now)")
        expect(page.get_by_test_id("stop-banner")).to_be_hidden()

        page.keyboard.press("r")
        rows = page.get_by_test_id("review-row")
        expect(rows).to_have_count(8)
        expect(page.get_by_test_id("review-count")).to_have_text("8 of 8 videos")
        page.get_by_test_id("review-filter").fill("bob")
        expect(rows).to_have_count(2)
        page.get_by_test_id("review-filter").fill("")
        page.get_by_test_id("review-show").select_option("split")
        expect(rows).to_have_count(1)
        tie = page.locator(f"[data-testid=review-row][data-video='{ids[1]}']")
        expect(tie.get_by_test_id("resolved")).to_contain_text("tie")
        expect(tie.get_by_test_id("mine")).to_contain_text("(r1)")

        # Another tab of bob's saves his label meanwhile: this page's edit is stale and must not overwrite it.
        studio.set_label(KEY, video_id=ids[1], value="skip", labeler="bob", expected_revision=1)
        tie.locator(f"button[data-edit='{truth[ids[1]]}']").click()
        expect(page.get_by_test_id("message")).to_contain_text("409")
        expect(page.get_by_test_id("message")).to_contain_text("reloaded")
        page.get_by_test_id("review-show").select_option("all")
        expect(tie.get_by_test_id("mine")).to_contain_text("skip (r2)")
        tie.locator(f"button[data-edit='{truth[ids[1]]}']").click()  # the retry, at the revision now shown
        expect(tie.get_by_test_id("mine")).to_contain_text(f"{truth[ids[1]]} (r3)")
        expect(tie.get_by_test_id("resolved")).to_have_text(f"{truth[ids[1]]} (unanimous)")
        expect(page.get_by_test_id("stop-banner")).to_be_visible()
        expect(page.get_by_test_id("stop-banner")).to_contain_text(f"{CAP} labels reached the cap of {CAP}")

        page.keyboard.press("t")
        teacher = page.get_by_test_id("teacher-row")
        expect(teacher).to_have_count(3)
        expect(page.get_by_test_id("teacher-source")).to_contain_text("teacher_gate")
        assert [r.get_attribute("data-video") for r in teacher.all()] == [ids[4], ids[5], ids[3]]  # 0.47, 0.29, 0.12
        expect(teacher.first.locator(".title")).to_have_text(f"sure {XSS}")
        expect(teacher.first.locator(".rationale")).to_have_text(f"because {XSS}")
        expect(teacher.first.locator("img")).to_have_count(3)  # the studio's own thumbnails
        page.get_by_test_id("teacher-sort").click()
        assert [r.get_attribute("data-video") for r in teacher.all()] == [ids[3], ids[5], ids[4]]
        page.screenshot(path=str(tmp_path / "review.png"), full_page=True)
        assert page.evaluate("window.__xss") is None and dialogs == []
        assert page.locator("img[src='x']").count() == 0
        browser.close()

    bob = {lab["video_id"]: lab for lab in studio.labels(KEY) if lab["labeler"] == "bob"}
    assert (bob[ids[1]]["label"], bob[ids[1]]["revision"], bob[ids[1]]["source"]) == (truth[ids[1]], 3, "review")
    flipped = {"positive": "negative", "negative": "positive"}[truth[ids[1]]]
    assert [(a["old"], a["new"]) for a in studio.audit(KEY) if a["video_id"] == ids[1] and a["actor"] == "bob"] == [
        (None, flipped),
        (flipped, "skip"),
        ("skip", truth[ids[1]]),
    ]  # the stale edit left no trace
