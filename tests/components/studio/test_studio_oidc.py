"""OpenID Connect sign-in against a loopback provider that speaks the protocol: people sign in at the provider,
come back with a role from their groups, label under their verified email; the studio refuses an ID token signed
by another key, for another audience or issuer, expired, with another nonce, and a replayed or foreign state."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from joserfc.jwk import RSAKey

from silverset.components.studio.app import create_app
from silverset.components.studio.oidc import OidcConfig, OidcSignIn
from tests.fakes.oidc_provider import DROP, OidcProviderServer, Person

KEY = "red_dominant@v1"
STUDIO_URL = "http://localhost"
ROLE_MAP = {"studio-labelers": "labeler", "studio-adjudicators": "adjudicator", "studio-admins": "admin"}
ALICE = Person(sub="u-alice", email="alice@silverset.dev", groups=["studio-labelers", "staff"])


@pytest.fixture(scope="module")
def provider():
    with OidcProviderServer(redirect_uris=(f"{STUDIO_URL}/auth/callback",)) as provider:
        yield provider


@pytest.fixture(autouse=True)
def _reset(provider):
    original_key = provider.key
    provider.next_person, provider.id_token_changes, provider.sign_with = ALICE, {}, None
    provider.token_errors.clear()
    yield
    provider.key = original_key


def sign_in_of(provider, **changes) -> OidcSignIn:
    fields = dict(
        issuer=provider.issuer,
        client_id=provider.client_id,
        client_secret=provider.client_secret,
        redirect_base_url=STUDIO_URL,
        role_map=ROLE_MAP,
    )
    return OidcSignIn(OidcConfig(**{**fields, **changes}))


@pytest.fixture
def client(studio, provider):
    with TestClient(create_app(studio, oidc=sign_in_of(provider)), base_url=STUDIO_URL) as c:
        yield c


def sign_in(client) -> httpx.Response:
    """The browser's round trip: studio -> provider's authorize -> studio's callback. Returns the callback answer."""
    start = client.get("/auth/login", follow_redirects=False)
    assert start.status_code == 302, start.text
    at_provider = httpx.get(start.headers["location"], follow_redirects=False)
    assert at_provider.status_code == 302, at_provider.text
    back = urlsplit(at_provider.headers["location"])
    assert f"{back.scheme}://{back.netloc}" == STUDIO_URL
    return client.get(f"{back.path}?{back.query}", follow_redirects=False)


def test_the_authorize_request_carries_state_nonce_and_an_s256_challenge(client, provider):
    location = client.get("/auth/login", follow_redirects=False).headers["location"]
    assert location.startswith(provider.issuer + "/authorize?")
    q = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    assert q["response_type"] == "code" and q["client_id"] == provider.client_id
    assert q["redirect_uri"] == f"{STUDIO_URL}/auth/callback" and "openid" in q["scope"].split()
    assert q["code_challenge_method"] == "S256" and len(q["code_challenge"]) == 43
    assert len(q["state"]) >= 32 and len(q["nonce"]) >= 32 and q["state"] != q["nonce"]
    assert provider.client_secret not in location


@pytest.mark.parametrize(
    "groups, role",
    [
        (["studio-labelers"], "labeler"),
        (["studio-adjudicators"], "adjudicator"),
        (["studio-labelers", "studio-admins"], "admin"),
    ],
)
def test_a_signed_in_person_gets_the_highest_mapped_role_and_labels_under_their_email(
    client, provider, catalog, groups, role
):
    provider.next_person = Person(sub="u-1", email="erin@silverset.dev", groups=groups)
    back = sign_in(client)
    assert back.status_code == 303 and back.headers["location"] == "/"
    me = client.get("/api/me").json()
    assert (me["user"], me["role"], me["local"]) == ("erin@silverset.dev", role, False)
    csrf = {"X-CSRF-Token": me["csrf_token"]}
    created = client.post("/api/attributes", json={"example": "red_dominant"}, headers=csrf)
    assert created.status_code == (201 if role == "admin" else 403)
    if role == "admin":
        assert (
            client.post(
                f"/api/attributes/{KEY}/labels",
                json={"video_id": catalog.video_ids[0], "label": "positive"},
                headers={"X-CSRF-Token": "wrong"},
            ).status_code
            == 403
        )
        labelled = client.post(
            f"/api/attributes/{KEY}/labels", json={"video_id": catalog.video_ids[0], "label": "positive"}, headers=csrf
        )
        assert labelled.status_code == 200 and labelled.json()["label"]["labeler"] == "erin@silverset.dev"


def test_a_person_with_no_mapped_group_is_refused_or_a_labeler_by_policy(studio, provider):
    provider.next_person = Person(sub="u-2", email="visitor@example.com", groups=["staff"])
    with TestClient(create_app(studio, oidc=sign_in_of(provider)), base_url=STUDIO_URL) as c:
        refused = sign_in(c)
        assert refused.status_code == 403 and "no groups value mapped" in refused.json()["detail"]
        assert c.get("/api/me").status_code == 401
    with TestClient(create_app(studio, oidc=sign_in_of(provider, unknown_users="labeler")), base_url=STUDIO_URL) as c:
        assert sign_in(c).status_code == 303
        assert c.get("/api/me").json()["role"] == "labeler"


def test_an_unverified_email_is_not_taken_as_a_name(client, provider):
    provider.next_person = Person(sub="u-3", email="root@silverset.dev", groups=["studio-admins"], email_verified=False)
    answer = sign_in(client)
    assert answer.status_code == 403 and "not verified" in answer.json()["detail"]


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({"aud": "another-client"}, "aud"),
        ({"aud": ["another-client", "silverset-studio"], "azp": "another-client"}, "azp"),
        ({"iss": "https://evil.example"}, "iss"),
        ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}, "exp"),
        ({"nonce": "a-nonce-from-another-sign-in"}, "nonce"),
        ({"nonce": DROP}, "nonce"),
        ({"at_hash": "AAAAAAAAAAAAAAAAAAAAAA"}, "at_hash"),
    ],
)
def test_an_id_token_with_a_wrong_claim_is_refused(client, provider, changes, reason):
    provider.id_token_changes = changes
    answer = sign_in(client)
    assert answer.status_code == 401 and answer.json()["detail"].startswith("ID token refused")
    assert reason in answer.json()["detail"]
    assert client.get("/api/me").status_code == 401


def test_an_id_token_signed_by_another_key_is_refused_even_with_the_providers_kid(client, provider):
    provider.sign_with = RSAKey.generate_key(2048, parameters={"kid": provider.key.kid})
    answer = sign_in(client)
    assert answer.status_code == 401 and "ID token refused" in answer.json()["detail"]
    assert client.get("/api/me").status_code == 401


def test_a_replayed_state_and_a_callback_from_another_browser_are_refused(studio, provider):
    oidc = sign_in_of(provider)
    with (
        TestClient(create_app(studio, oidc=oidc), base_url=STUDIO_URL) as client,
        TestClient(create_app(studio, oidc=oidc), base_url=STUDIO_URL) as other_browser,
    ):
        start = client.get("/auth/login", follow_redirects=False)
        back = urlsplit(httpx.get(start.headers["location"], follow_redirects=False).headers["location"])
        callback = f"{back.path}?{back.query}"
        foreign = other_browser.get(callback, follow_redirects=False)  # login CSRF: someone else's code and state
        assert foreign.status_code == 401 and "another browser" in foreign.json()["detail"]
        replay = client.get(callback, follow_redirects=False)  # the state was spent by the attempt above
        assert replay.status_code == 401 and "already used" in replay.json()["detail"]
        assert client.get("/api/me").status_code == 401 and other_browser.get("/api/me").status_code == 401


def test_a_wrong_client_secret_or_a_declined_sign_in_leaves_nobody_signed_in(studio, provider):
    with TestClient(
        create_app(studio, oidc=sign_in_of(provider, client_secret="not-the-secret")), base_url=STUDIO_URL
    ) as c:
        answer = sign_in(c)
        assert answer.status_code == 401 and "invalid_client" in answer.json()["detail"]
        assert "not-the-secret" not in answer.text and provider.token_errors == [(401, "invalid_client")]
    provider.next_person = None
    with TestClient(create_app(studio, oidc=sign_in_of(provider)), base_url=STUDIO_URL) as c:
        answer = sign_in(c)
        assert answer.status_code == 401 and "access_denied" in answer.json()["detail"]
        assert c.get("/api/me").status_code == 401


def test_a_rotated_signing_key_is_fetched_once_the_cached_one_no_longer_matches(provider):
    now = [time.time()]
    oidc = OidcSignIn(sign_in_of(provider).config, clock=lambda: now[0])
    oidc._key_set()  # the JWKS as it was before the provider rotated its key
    provider.key = RSAKey.generate_key(2048, parameters={"kid": "fake-2", "use": "sig"})
    now[0] += 120
    url, browser_secret = oidc.begin()
    q = {
        k: v[0] for k, v in parse_qs(urlsplit(httpx.get(url, follow_redirects=False).headers["location"]).query).items()
    }
    user = oidc.finish(code=q["code"], state=q["state"], browser_secret=browser_secret)
    assert (user.name, user.role) == ("alice@silverset.dev", "labeler")


def test_a_discovery_document_naming_another_issuer_is_refused(provider):
    from silverset.components.studio.oidc import OidcError

    oidc = sign_in_of(provider, issuer=provider.issuer.replace("127.0.0.1", "localhost"))
    with pytest.raises(OidcError, match="names issuer"):
        oidc.begin()


def test_sign_ins_in_flight_are_bounded_and_the_oldest_is_forgotten(provider, monkeypatch):
    """GET /auth/login is open to anyone: it cannot grow the studio's memory without bound."""
    import silverset.components.studio.oidc as oidc_module
    from silverset.components.studio.oidc import OidcError

    monkeypatch.setattr(oidc_module, "MAX_ATTEMPTS", 3)
    oidc = sign_in_of(provider)
    started = [oidc.begin() for _ in range(4)]
    states = [parse_qs(urlsplit(url).query)["state"][0] for url, _ in started]
    with pytest.raises(OidcError, match="unknown, expired or already used"):
        oidc.finish(code="whatever", state=states[0], browser_secret=started[0][1])
    q = {
        k: v[0]
        for k, v in parse_qs(
            urlsplit(httpx.get(started[3][0], follow_redirects=False).headers["location"]).query
        ).items()
    }
    assert oidc.finish(code=q["code"], state=q["state"], browser_secret=started[3][1]).name == "alice@silverset.dev"


def test_groups_missing_from_the_id_token_are_read_from_userinfo_for_the_same_subject(client, provider):
    provider.id_token_changes = {"groups": DROP}  # Keycloak and Dex can leave groups out of the ID token
    provider.next_person = Person(sub="u-9", email="ivy@silverset.dev", groups=["studio-adjudicators"])
    assert sign_in(client).status_code == 303
    assert client.get("/api/me").json()["role"] == "adjudicator"


def test_userinfo_for_another_subject_is_not_used(studio, provider):
    provider.id_token_changes = {"groups": DROP, "sub": "someone-else"}
    provider.next_person = Person(sub="u-10", email="jay@silverset.dev", groups=["studio-admins"])
    with TestClient(create_app(studio, oidc=sign_in_of(provider)), base_url=STUDIO_URL) as c:
        answer = sign_in(c)
        assert answer.status_code == 403 and "no groups value mapped" in answer.json()["detail"]
