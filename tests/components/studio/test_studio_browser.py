"""A real browser (Playwright + Debian's chromium) drives the studio: sign in, search, label 20 videos by keyboard,
see feeds and scores appear, run a bandit batch, export a golden set, save a screenshot; and script planted in
an attribute title, an attribute key and a video id (manifest) shows as text and never runs."""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import threading
import time

import numpy as np
import pyarrow as pa
import pytest

from silverset.components.common import schemas, tables
from silverset.components.studio.app import create_app

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless=new",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def server(studio, users):
    with serving(create_app(studio, users=users)) as url:
        yield url


@contextlib.contextmanager
def serving(app):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with serving_on(app, port):
        yield f"http://127.0.0.1:{port}"


def sign_in(page, user, token):
    page.get_by_test_id("signin-user").fill(user)
    page.get_by_test_id("secret-kind").select_option("token")
    page.get_by_test_id("secret").fill(token)
    page.get_by_test_id("secret").press("Enter")


def test_label_twenty_videos_then_feeds_scores_and_export(server, studio, corpus, catalog, tmp_path, tokens):
    from playwright.sync_api import expect, sync_playwright

    chromium = shutil.which("chromium")
    assert chromium, "chromium is missing: run `make browser`"
    truth = {catalog.video_ids[i]: int(t) for i, t in enumerate(corpus.truth)}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(server)
        expect(page.get_by_test_id("message")).to_contain_text("Sign in")
        sign_in(page, "root", tokens["root"])
        expect(page.get_by_test_id("user")).to_have_text("root (admin)")
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
    assert set(golden.column("labeler").to_pylist()) == {"root"}
    audit = studio.audit("red_dominant@v1")
    assert {a["source"] for a in audit if a["action"] == "label"} == {"search"}
    assert [(a["actor"], a["action"], a["new"]) for a in audit if a["video_id"] == "*"] == [
        ("root", "export", "20 rows")
    ]


XSS = '<img src=x onerror="window.__xss=(window.__xss||0)+1;alert(1)">'


@pytest.fixture
def planted_studio(workdir, tmp_path):
    """A studio whose manifest has a video id and title carrying script, whose attribute title carries script,
    and whose database holds an attribute key carrying script (as a tool writing the database directly could)."""
    from sqlalchemy.orm import Session

    from silverset.components.studio.catalog import load_workdir
    from silverset.components.studio.models import AttributeRow
    from silverset.components.studio.service import Studio

    from .conftest import hashing_text_encoder

    root = tmp_path / "planted"
    manifest = tables.read_table(workdir / "manifest.parquet").to_pylist()
    embeddings = tables.read_table(workdir / "embeddings" / "part-0.parquet")
    evil_id = f"vid{XSS}"
    manifest[0] = {**manifest[0], "video_id": evil_id, "title": f"crimson planted {XSS}", "description": XSS}
    tables.write_table(pa.Table.from_pylist(manifest), root / "manifest.parquet", schemas.MANIFEST)
    ids = [evil_id] + embeddings.column("video_id").to_pylist()[1:]
    tables.write_table(embeddings.set_column(0, "video_id", pa.array(ids)), root / "embeddings" / "part-0.parquet")
    studio = Studio(
        catalog=load_workdir(root, text_encoder=hashing_text_encoder),
        db_url=f"sqlite:///{tmp_path / 'p.db'}",
        golden_dir=root / "golden",
    )
    from silverset.components.common.spec import example_specs_dir

    spec = (example_specs_dir() / "red_dominant.yaml").read_text()
    spec = re.sub(r"(?m)^title: .*$", f"title: 'Red {XSS.replace(chr(39), chr(39) * 2)}'", spec)
    studio.create_attribute(spec_yaml=spec)
    with Session(studio.engine) as session:
        first = session.query(AttributeRow).one()
        session.add(
            AttributeRow(
                name=f"k{XSS}",
                version=1,
                title=XSS,
                spec_yaml=first.spec_yaml,
                content_hash=first.content_hash,
                bandit_state=first.bandit_state,
            )
        )
        session.commit()
    return studio, evil_id


def test_script_planted_in_titles_keys_and_video_ids_shows_as_text_and_never_runs(planted_studio, users, tokens):
    from playwright.sync_api import expect, sync_playwright

    studio, evil_id = planted_studio
    assert np.isfinite(studio.catalog.embeddings).all()
    dialogs = []
    with serving(create_app(studio, users=users)) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(url)
        sign_in(page, "bob", tokens["bob"])
        options = page.get_by_test_id("attribute").locator("option")
        expect(options).to_have_count(2)
        texts = options.all_text_contents()
        assert f"k{XSS}@v1 — {XSS}" in texts and f"red_dominant@v1 — Red {XSS}" in texts
        page.get_by_test_id("attribute").select_option("red_dominant@v1")
        page.get_by_test_id("query").fill(
            f"crimson planted {XSS} {XSS}"
        )  # the hashing encoder's nearest: the planted video
        page.get_by_test_id("query").press("Enter")
        planted = page.locator(".card").first
        expect(planted).to_have_attribute("data-video", evil_id)
        expect(planted.locator("h3")).to_have_text(f"crimson planted {XSS}")
        expect(planted.locator(".desc")).to_have_text(XSS)
        expect(planted.locator(".meta")).to_contain_text(evil_id)
        page.keyboard.press("p")  # labelling it sends the id back intact
        expect(page.get_by_test_id("positives")).to_have_text("1")
        page.wait_for_timeout(300)
        assert page.evaluate("window.__xss") is None and dialogs == []
        assert page.locator("img[src='x']").count() == 0
        browser.close()
    assert [(lab["video_id"], lab["labeler"]) for lab in studio.labels("red_dominant@v1")] == [(evil_id, "bob")]


def test_oidc_sign_in_in_a_real_browser_across_sites_lands_signed_in_with_the_mapped_role(studio):
    """Studio on localhost, provider on 127.0.0.1 (another site): the SameSite cookies must survive the redirects."""
    from playwright.sync_api import expect, sync_playwright

    from silverset.components.studio.oidc import OidcConfig, OidcSignIn
    from tests.fakes.oidc_provider import OidcProviderServer, Person

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://localhost:{port}"
    with OidcProviderServer(
        redirect_uris=(f"{base}/auth/callback",),
        login_page=True,
        next_person=Person("u-7", "gwen@silverset.dev", ["studio-adjudicators"]),
    ) as provider:
        oidc = OidcSignIn(
            OidcConfig(
                issuer=provider.issuer,
                client_id=provider.client_id,
                client_secret=provider.client_secret,
                redirect_base_url=base,
                role_map={"studio-adjudicators": "adjudicator"},
            )
        )
        app = create_app(studio, oidc=oidc, allowed_hosts=("localhost",))
        with serving_on(app, port), sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(base)
            expect(page.get_by_test_id("signin-form")).to_be_hidden()
            page.get_by_test_id("sso").click()
            page.locator("#approve").click()  # on the provider's page (another site)
            expect(page.get_by_test_id("user")).to_have_text("gwen@silverset.dev (adjudicator)")
            assert page.url == f"{base}/"
            browser.close()


@contextlib.contextmanager
def serving_on(app, port: int):
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "studio server did not start"
        time.sleep(0.05)
    yield
    server.should_exit = True
    thread.join(timeout=10)
