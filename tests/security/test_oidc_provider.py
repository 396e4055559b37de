"""The fake OpenID Connect provider refuses what a real one refuses (RFC 6749 5.2, RFC 7636 4.6), so a studio that
passes against it would not pass only because the fake is lenient: wrong client secret -> 401 invalid_client;
reused or unknown code, PKCE verifier mismatch, redirect_uri mismatch -> 400 invalid_grant; unregistered
redirect_uri never redirected to; userinfo without a valid token -> 401."""

from __future__ import annotations

import base64
import secrets
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.fakes.oidc_provider import OidcProviderServer, Person, s256

CALLBACK = "http://localhost/auth/callback"


@pytest.fixture(scope="module")
def provider():
    with OidcProviderServer(redirect_uris=(CALLBACK,), next_person=Person("u-1", "a@b.dev", ["g"])) as provider:
        yield provider


def authorize(provider, *, verifier: str, redirect_uri: str = CALLBACK, **changes) -> httpx.Response:
    params = {
        "response_type": "code",
        "client_id": provider.client_id,
        "redirect_uri": redirect_uri,
        "scope": "openid email",
        "state": "s-1",
        "nonce": "n-1",
        "code_challenge": s256(verifier),
        "code_challenge_method": "S256",
        **changes,
    }
    return httpx.get(
        f"{provider.issuer}/authorize?{urlencode({k: v for k, v in params.items() if v is not None})}",
        follow_redirects=False,
    )


def code_for(provider, verifier: str) -> str:
    answer = authorize(provider, verifier=verifier)
    assert answer.status_code == 302
    return parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]


def exchange(
    provider,
    code: str,
    *,
    verifier: str,
    secret: str | None = None,
    redirect_uri: str = CALLBACK,
    basic: bool = True,
    grant_type: str = "authorization_code",
) -> httpx.Response:
    form = {"grant_type": grant_type, "code": code, "redirect_uri": redirect_uri, "code_verifier": verifier}
    secret = provider.client_secret if secret is None else secret
    if basic:
        auth = base64.b64encode(f"{provider.client_id}:{secret}".encode()).decode()
        return httpx.post(f"{provider.issuer}/token", data=form, headers={"Authorization": f"Basic {auth}"})
    return httpx.post(
        f"{provider.issuer}/token", data={**form, "client_id": provider.client_id, "client_secret": secret}
    )


def test_a_good_exchange_returns_a_signed_id_token_with_the_nonce(provider):
    verifier = secrets.token_urlsafe(48)
    answer = exchange(provider, code_for(provider, verifier), verifier=verifier)
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    body = answer.json()
    claims = jwt.decode(body["id_token"], KeySet.import_key_set(httpx.get(f"{provider.issuer}/jwks").json())).claims
    assert (claims["iss"], claims["aud"], claims["nonce"], claims["sub"]) == (
        provider.issuer,
        provider.client_id,
        "n-1",
        "u-1",
    )
    info = httpx.get(f"{provider.issuer}/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert info.status_code == 200 and info.json()["sub"] == "u-1"


@pytest.mark.parametrize("basic", [True, False])
def test_a_wrong_client_secret_is_401_invalid_client(provider, basic):
    verifier = secrets.token_urlsafe(48)
    answer = exchange(provider, code_for(provider, verifier), verifier=verifier, secret="wrong", basic=basic)
    assert answer.status_code == 401 and answer.json()["error"] == "invalid_client"
    assert ("www-authenticate" in answer.headers) == basic  # RFC 6749 5.2: when the client used the header


def test_a_reused_code_is_invalid_grant_and_revokes_the_first_access_token(provider):
    verifier = secrets.token_urlsafe(48)
    code = code_for(provider, verifier)
    first = exchange(provider, code, verifier=verifier)
    again = exchange(provider, code, verifier=verifier)
    assert first.status_code == 200 and again.status_code == 400 and again.json()["error"] == "invalid_grant"
    info = httpx.get(f"{provider.issuer}/userinfo", headers={"Authorization": f"Bearer {first.json()['access_token']}"})
    assert info.status_code == 401 and "invalid_token" in info.headers["www-authenticate"]


def test_an_unknown_code_a_wrong_verifier_and_another_redirect_uri_are_invalid_grant(provider):
    verifier = secrets.token_urlsafe(48)
    unknown = exchange(provider, "made-up-code", verifier=verifier)
    wrong_verifier = exchange(provider, code_for(provider, verifier), verifier=secrets.token_urlsafe(48))
    no_verifier = exchange(provider, code_for(provider, verifier), verifier="")
    other_redirect = exchange(
        provider, code_for(provider, verifier), verifier=verifier, redirect_uri="http://localhost/elsewhere"
    )
    for answer in (unknown, wrong_verifier, no_verifier, other_redirect):
        assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant", answer.text
        assert set(answer.json()) == {"error", "error_description"}
    assert exchange(provider, "x", verifier=verifier, grant_type="password").json()["error"] == "unsupported_grant_type"


def test_authorize_never_redirects_to_an_unregistered_uri_and_requires_pkce_and_openid(provider):
    verifier = secrets.token_urlsafe(48)
    evil = authorize(provider, verifier=verifier, redirect_uri="https://evil.example/cb")
    assert evil.status_code == 400 and "location" not in evil.headers
    assert authorize(provider, verifier=verifier, client_id="someone-else").status_code == 400
    for changes, error in (
        ({"code_challenge": None}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"scope": "email"}, "invalid_scope"),
        ({"response_type": "token"}, "unsupported_response_type"),
    ):
        answer = authorize(provider, verifier=verifier, **changes)
        query = parse_qs(urlsplit(answer.headers["location"]).query)
        assert answer.status_code == 302 and query["error"] == [error] and query["state"] == ["s-1"], changes
