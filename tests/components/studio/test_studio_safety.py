"""The studio refuses what an attacker or a careless client sends: unknown Host names, huge bodies, exports
outside its golden folder, non-JSON imports, requests without a user, writes above a user's role, cookie writes
without the session's CSRF token; the labeler of a label is always the signed-in user."""

from __future__ import annotations

import re
import time

import pytest
from fastapi.testclient import TestClient

from silverset.components.common.errors import SilversetInputError
from silverset.components.studio.app import STATIC_DIR, create_app
from silverset.components.studio.users import Users

from .conftest import bearer

KEY = "red_dominant@v1"


@pytest.fixture
def app(studio, users):
    return create_app(studio, users=users)


@pytest.fixture
def root(app, tokens):
    with TestClient(app, base_url="http://localhost", headers=bearer(tokens, "root")) as c:
        assert c.post("/api/attributes", json={"example": "red_dominant"}).status_code == 201
        yield c


def test_only_allowed_host_names_are_answered(studio, users, tokens):
    with TestClient(create_app(studio, users=users), base_url="http://attacker.example:8765") as c:
        assert c.get("/").status_code == 400  # DNS rebinding: the browser sends the attacker's name
    for host in ("localhost:8765", "127.0.0.1:8765", "[::1]:8765"):
        with TestClient(create_app(studio, users=users), base_url=f"http://{host}") as c:
            assert c.get("/").status_code == 200, host
    with TestClient(
        create_app(studio, users=users, allowed_hosts=("studio.internal",)), base_url="http://studio.internal"
    ) as c:
        assert c.get("/api/attributes", headers=bearer(tokens, "bob")).status_code == 200
    with TestClient(
        create_app(studio, users=users, allowed_hosts=("studio.internal",)), base_url="http://localhost"
    ) as c:
        assert c.get("/").status_code == 400


def test_a_50_mb_spec_is_refused_before_parsing(root):
    started = time.monotonic()
    huge = root.post("/api/attributes", json={"spec_yaml": "a: [" * 25_000_000})
    assert huge.status_code == 413 and time.monotonic() - started < 5
    big = root.post("/api/attributes", json={"spec_yaml": "name: x\n" + "# padding\n" * 40_000})
    assert big.status_code == 422 and "spec_yaml" in big.text
    assert [a["key"] for a in root.get("/api/attributes").json()] == [KEY]


@pytest.mark.parametrize("out_dir", ["/tmp/silverset-export-escape", "../escape", "a/../../escape", "..", "C:\\escape"])
def test_export_writes_only_under_the_golden_folder(root, studio, tmp_path, out_dir):
    response = root.post(f"/api/attributes/{KEY}/export", json={"out_dir": out_dir})
    assert response.status_code == 422 and "out_dir" in response.json()["detail"]
    assert not (tmp_path / "escape").exists() and not (tmp_path / "golden.parquet").exists()


def test_export_refuses_a_symlink_that_leads_out_and_accepts_a_subfolder(root, studio, tmp_path):
    outside = tmp_path / "pipeline-golden"
    outside.mkdir()
    studio.golden_dir.mkdir(parents=True, exist_ok=True)
    (studio.golden_dir / "link").symlink_to(outside)
    assert root.post(f"/api/attributes/{KEY}/export", json={"out_dir": "link/v1"}).status_code == 422
    assert list(outside.iterdir()) == []
    ok = root.post(f"/api/attributes/{KEY}/export", json={"out_dir": "review/2026-12"})
    assert ok.status_code == 200 and ok.json()["path"] == str(
        studio.golden_dir.resolve() / "review" / "2026-12" / "golden.parquet"
    )


def test_every_api_call_needs_a_user(app, tokens, catalog):
    with TestClient(app, base_url="http://localhost") as anonymous:
        assert anonymous.get("/").status_code == 200  # the sign-in page itself is open
        for method, path in (
            ("GET", "/api/attributes"),
            ("GET", f"/api/attributes/{KEY}/labels"),
            ("GET", "/api/me"),
            ("GET", f"/api/videos/{catalog.video_ids[0]}/frames/0.jpg"),
            ("POST", "/api/attributes"),
            ("POST", f"/api/attributes/{KEY}/export"),
        ):
            assert anonymous.request(method, path, json={}).status_code == 401, path
        wrong = anonymous.get("/api/attributes", headers={"Authorization": "Bearer not-a-token"})
        assert wrong.status_code == 401
        assert anonymous.get("/docs").status_code == 404 and anonymous.get("/openapi.json").status_code == 404


def test_the_labeler_is_the_signed_in_user_never_the_body(root, tokens, catalog):
    vid = catalog.video_ids[5]
    forged = root.post(
        f"/api/attributes/{KEY}/labels",
        json={"video_id": vid, "label": "positive", "labeler": "carol"},
        headers=bearer(tokens, "bob"),
    )
    assert forged.status_code == 422  # a labeler field is not part of the request any more
    made = root.post(
        f"/api/attributes/{KEY}/labels", json={"video_id": vid, "label": "positive"}, headers=bearer(tokens, "bob")
    )
    assert made.status_code == 200 and made.json()["label"]["labeler"] == "bob"
    assert [(a["actor"], a["new"]) for a in root.get(f"/api/attributes/{KEY}/audit").json()] == [("bob", "positive")]


def test_roles_are_enforced(root, tokens, catalog):
    vid = catalog.video_ids[6]
    as_bob, as_dana = bearer(tokens, "bob"), bearer(tokens, "dana")
    assert root.post("/api/attributes", json={"example": "moving_object"}, headers=as_bob).status_code == 403
    assert root.put(f"/api/attributes/{KEY}/policy", json={"policy": "round_robin"}, headers=as_dana).status_code == 403
    assert (
        root.post(
            f"/api/attributes/{KEY}/adjudications", json={"video_id": vid, "label": "positive"}, headers=as_bob
        ).status_code
        == 403
    )
    assert root.post(f"/api/attributes/{KEY}/export", json={}, headers=as_bob).status_code == 403
    assert (
        root.post(
            f"/api/attributes/{KEY}/adjudications", json={"video_id": vid, "label": "positive"}, headers=as_dana
        ).status_code
        == 200
    )
    assert root.get(f"/api/attributes/{KEY}/audit").json()[-1]["actor"] == "dana"
    assert (
        root.post(f"/api/attributes/{KEY}/labels", json={"video_id": vid, "label": "skip"}, headers=as_dana).status_code
        == 200
    )


def test_cookie_sessions_need_the_csrf_token_on_every_write(app, catalog):
    vid = catalog.video_ids[7]
    with TestClient(app, base_url="http://localhost") as browser:
        assert browser.post("/api/session", json={"user": "dana", "password": "wrong"}).status_code == 401
        assert (
            browser.post("/api/session", json={"user": "bob", "password": "correct horse battery staple"}).status_code
            == 401
        )
        signed = browser.post("/api/session", json={"user": "dana", "password": "correct horse battery staple"})
        assert signed.status_code == 200 and signed.json()["role"] == "adjudicator"
        cookie = signed.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        csrf = signed.json()["csrf_token"]
        assert browser.get("/api/attributes").status_code == 200  # reads need no CSRF token
        body = {"video_id": vid, "label": "negative"}
        assert browser.post(f"/api/attributes/{KEY}/labels", json=body).status_code == 403
        assert (
            browser.post(f"/api/attributes/{KEY}/labels", json=body, headers={"X-CSRF-Token": "guess"}).status_code
            == 403
        )
        assert browser.post(f"/api/attributes/{KEY}/labels", json=body, headers={"X-CSRF-Token": csrf}).status_code in (
            200,
            404,
        )
        assert browser.delete("/api/session").status_code == 403
        assert browser.delete("/api/session", headers={"X-CSRF-Token": csrf}).status_code == 200
        assert browser.get("/api/attributes").status_code == 401


def test_cookie_labels_carry_the_session_user(root, app, catalog):
    vid = catalog.video_ids[8]
    with TestClient(app, base_url="http://localhost") as browser:
        csrf = browser.post("/api/session", json={"user": "dana", "password": "correct horse battery staple"}).json()[
            "csrf_token"
        ]
        made = browser.post(
            f"/api/attributes/{KEY}/labels", json={"video_id": vid, "label": "negative"}, headers={"X-CSRF-Token": csrf}
        )
        assert made.status_code == 200 and made.json()["label"]["labeler"] == "dana"


def test_local_mode_is_one_admin_without_sign_in(studio):
    with TestClient(create_app(studio, users=Users.local("maria")), base_url="http://localhost") as c:
        assert c.get("/api/me").json()["user"] == "maria"
        assert c.post("/api/attributes", json={"example": "red_dominant"}).status_code == 201
        vid = studio.catalog.video_ids[9]
        assert (
            c.post(f"/api/attributes/{KEY}/labels", json={"video_id": vid, "label": "positive"}).json()["label"][
                "labeler"
            ]
            == "maria"
        )


def test_a_huge_attribute_version_is_a_404_not_a_crash(root):
    response = root.get("/api/attributes/red_dominant@v99999999999999999999999")
    assert response.status_code == 404 and "version" in response.json()["detail"]
    assert root.get("/api/attributes/red_dominant@v\u0661").status_code == 404  # a non-ASCII digit


def test_pages_carry_a_content_security_policy_and_app_js_builds_no_html_strings(root):
    csp = root.get("/").headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    script = (STATIC_DIR / "app.js").read_text()
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(", script)


@pytest.mark.parametrize(
    "content, problem",
    [
        ("users: {}\n", "non-empty 'users'"),
        ("users:\n  bob: {role: king, token_sha256: " + "a" * 64 + "}\n", "role"),
        ("users:\n  bob: {role: labeler}\n", "token_sha256 or password"),
        ("users:\n  bob: {role: labeler, password: hunter2}\n", "password"),
        ("users:\n  'bad name!': {role: labeler, token_sha256: " + "a" * 64 + "}\n", "bad name!"),
    ],
)
def test_a_bad_users_file_is_named_with_its_problem(tmp_path, content, problem):
    path = tmp_path / "users.yaml"
    path.write_text(content)
    with pytest.raises(SilversetInputError) as info:
        Users.load(path)
    assert str(path) in str(info.value) and problem in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "change, problem",
    [
        (("version: 1", "version: true"), "field 'version'"),
        (("version: 1", "version: 1\napproval_timeout_hours: .inf"), "finite number"),
        (("version: 1", "version: 1\nversion: 2"), "duplicate key 'version'"),
    ],
)
def test_a_bad_spec_over_the_api_is_one_line_422(root, change, problem):
    from silverset.components.common.spec import example_specs_dir

    text = (example_specs_dir() / "moving_object.yaml").read_text().replace(*change, 1)
    response = root.post("/api/attributes", json={"spec_yaml": text})
    assert (
        response.status_code == 422 and problem in response.json()["detail"] and "\n" not in response.json()["detail"]
    )
