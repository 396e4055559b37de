"""A real browser (Playwright + Debian's chromium) drives the studio: search, label 20 videos by keyboard,
see feeds and scores appear, run a bandit batch, export a golden set, save a screenshot."""
from __future__ import annotations

import re
import shutil
import socket
import threading
import time

import pytest

from silverset.components.common import schemas, tables
from silverset.components.studio.app import create_app

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = ["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture
def server(studio):
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(studio), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "studio server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_label_twenty_videos_then_feeds_scores_and_export(server, studio, corpus, catalog, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    chromium = shutil.which("chromium")
    assert chromium, "chromium is missing: run `make browser`"
    truth = {catalog.video_ids[i]: int(t) for i, t in enumerate(corpus.truth)}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(server)
        page.get_by_test_id("labeler").fill("alice@silverset.dev")
        page.get_by_test_id("labeler").press("Tab")
        page.get_by_test_id("example").select_option("red_dominant")
        expect(page.get_by_test_id("attribute")).to_have_value("red_dominant@v1")
        expect(page.get_by_test_id("feeds-status")).to_contain_text("Feeds open at 10 positives")

        wanted = {1: 10, 0: 10}
        for query in ("crimson", "city street kitchen"):
            page.keyboard.press("/")
            page.get_by_test_id("query").fill(query)
            page.get_by_test_id("query").press("Enter")
            expect(page.get_by_test_id("cards")).to_have_attribute("data-query", query)
            for card in page.get_by_test_id("card").all():
                video_id = card.get_attribute("data-video")
                label = truth[video_id]
                expect(page.locator(".card.focus")).to_have_attribute("data-video", video_id)
                if wanted[label] > 0:
                    wanted[label] -= 1
                    page.keyboard.press("p" if label else "n")  # labels the focused card and moves on
                else:
                    page.keyboard.press("ArrowRight")
                if not any(wanted.values()):
                    break
            if not any(wanted.values()):
                break
        assert wanted == {1: 0, 0: 0}

        expect(page.get_by_test_id("positives")).to_have_text("10")
        expect(page.get_by_test_id("negatives")).to_have_text("10")
        expect(page.get_by_test_id("feeds-status")).to_contain_text("Feeds are open")
        expect(page.get_by_test_id("quality")).to_have_text(re.compile(r"^[01]\.\d{3}$"))
        expect(page.get_by_test_id("diversity")).not_to_have_text("0.000")

        page.keyboard.press("1")  # top-positive feed
        expect(page.get_by_test_id("card")).to_have_count(25)
        page.keyboard.press("b")  # bandit-suggested batch
        expect(page.get_by_test_id("message")).to_contain_text("Suggested by ucb")
        page.keyboard.press("e")
        expect(page.get_by_test_id("export-result")).to_contain_text("Exported 20 videos (10+ / 10−")
        page.screenshot(path=str(tmp_path / "studio.png"), full_page=True)
        browser.close()

    assert (tmp_path / "studio.png").stat().st_size > 10_000
    golden = tables.read_table(tmp_path / "golden" / "red_dominant" / "v1" / "golden.parquet", schemas.GOLDEN)
    assert golden.num_rows == 20
    assert all(truth[r["video_id"]] == r["label"] for r in golden.to_pylist())
    assert set(golden.column("labeler").to_pylist()) == {"alice@silverset.dev"}
    sources = {a["source"] for a in studio.audit("red_dominant@v1")}
    assert sources == {"search"}
