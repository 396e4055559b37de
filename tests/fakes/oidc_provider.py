"""A loopback fake OpenID Connect provider: discovery, JWKS, authorize, token and userinfo endpoints.

It speaks the protocol a relying party meets at Keycloak, Dex or an authlib server, and refuses what they refuse
(RFC 6749 sections 4.1 and 5.2, RFC 7636 section 4.6, OIDC Core 3.1.2):

- authorize: an unknown ``client_id`` or a ``redirect_uri`` that is not registered exactly gets a 400 page and is
  never redirected to; a request without ``scope=openid``, ``response_type=code`` or an S256 ``code_challenge``
  (this client requires PKCE) is redirected back with ``error=invalid_request``/``invalid_scope``/...;
  a user who does not sign in comes back with ``error=access_denied``;
- token: wrong or missing client credentials -> 401 ``invalid_client`` (with ``WWW-Authenticate: Basic`` when
  the client used the Authorization header); an unknown, expired or already used code, a code issued to another
  client, a ``redirect_uri`` other than the authorize request's, or a ``code_verifier`` whose S256 is not the
  challenge -> 400 ``invalid_grant``; another grant type -> 400 ``unsupported_grant_type``; every answer carries
  ``Cache-Control: no-store``; a reused code also revokes the access token it bought (RFC 6749 4.1.2);
- userinfo: a missing or unknown bearer token -> 401 with ``WWW-Authenticate: Bearer error="invalid_token"``.

ID tokens are RS256 JWTs with ``kid``; ``id_token_changes`` (claims to override or drop) and ``sign_with``
(another key) let a test hand the studio a token that must be refused.
"""

from __future__ import annotations

import base64
import hashlib
import html
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from tests.fakes.loopback import JsonHandler

CODE_SECONDS = 60
TOKEN_SECONDS = 300
DROP = object()  # an id_token_changes value: remove the claim


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


def at_hash(access_token: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(access_token.encode("ascii")).digest()[:16]).rstrip(b"=").decode()


@dataclass
class Person:
    sub: str
    email: str
    groups: list[str]
    email_verified: bool = True


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str | None
    person: Person
    expires: float
    used: bool = False
    access_token: str | None = None


@dataclass
class FakeOidcProvider:
    """State of the fake: one registered confidential client, who signs in next, and what it has issued."""

    client_id: str = "silverset-studio"
    client_secret: str = "studio-secret-0123456789"
    redirect_uris: tuple[str, ...] = ()
    next_person: Person | None = None  # who "signs in" at the authorize endpoint; None = the user declines
    login_page: bool = False  # show a page with a "Sign in" button (as a real provider does) before redirecting
    id_token_changes: dict = field(default_factory=dict)
    sign_with: RSAKey | None = None
    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, parameters={"kid": "fake-1", "use": "sig"}))
    issuer: str = ""
    codes: dict[str, _Code] = field(default_factory=dict)
    access_tokens: dict[str, Person] = field(default_factory=dict)
    token_errors: list[tuple[int, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def discovery(self) -> dict:
        base = self.issuer
        return {
            "issuer": base,
            "authorization_endpoint": f"{base}/authorize",
            "token_endpoint": f"{base}/token",
            "userinfo_endpoint": f"{base}/userinfo",
            "jwks_uri": f"{base}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "scopes_supported": ["openid", "email", "profile", "groups"],
            "grant_types_supported": ["authorization_code"],
        }

    def jwks(self) -> dict:
        return KeySet([self.key]).as_dict(private=False)

    def id_token(self, code: _Code, access_token: str) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": code.person.sub,
            "aud": code.client_id,
            "exp": now + TOKEN_SECONDS,
            "iat": now,
            "auth_time": now,
            "email": code.person.email,
            "email_verified": code.person.email_verified,
            "groups": code.person.groups,
            "at_hash": at_hash(access_token),
        }
        if code.nonce is not None:
            claims["nonce"] = code.nonce
        for name, value in self.id_token_changes.items():
            claims.pop(name, None) if value is DROP else claims.__setitem__(name, value)
        key = self.sign_with or self.key
        return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)


class _Handler(JsonHandler):
    provider: FakeOidcProvider

    def _token_error(self, status: int, error: str, description: str, headers: dict | None = None) -> None:
        self.provider.token_errors.append((status, error))
        self._send(
            status,
            {"error": error, "error_description": description},
            {"Cache-Control": "no-store", "Pragma": "no-cache", **(headers or {})},
        )

    def do_GET(self):  # noqa: N802 - http.server's name
        parts = urlsplit(self.path)
        if parts.path == "/.well-known/openid-configuration":
            return self._send(200, self.provider.discovery())
        if parts.path == "/jwks":
            return self._send(200, self.provider.jwks())
        if parts.path == "/authorize":
            return self._authorize({k: v[0] for k, v in parse_qs(parts.query).items()})
        if parts.path == "/userinfo":
            return self._userinfo()
        return self._send(404, {"error": "not_found"})

    def do_POST(self):  # noqa: N802
        if urlsplit(self.path).path != "/token":
            return self._send(404, {"error": "not_found"})
        return self._token()

    def _redirect(self, uri: str, params: dict) -> None:
        self.send_response(302)
        self.send_header("Location", f"{uri}{'&' if '?' in uri else '?'}{urlencode(params)}")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _authorize(self, q: dict) -> None:
        p = self.provider
        # Never redirect to a URI the client did not register: an error page instead (RFC 6749 4.1.2.1).
        if q.get("client_id") != p.client_id:
            return self._send(400, {"error": "invalid_request", "error_description": "unknown client_id"})
        if q.get("redirect_uri") not in p.redirect_uris:
            return self._send(400, {"error": "invalid_request", "error_description": "redirect_uri is not registered"})
        back, state = q["redirect_uri"], {"state": q["state"]} if "state" in q else {}
        if q.get("response_type") != "code":
            return self._redirect(back, {"error": "unsupported_response_type", **state})
        if "openid" not in q.get("scope", "").split():
            return self._redirect(back, {"error": "invalid_scope", **state})
        if not q.get("code_challenge") or q.get("code_challenge_method") != "S256":
            return self._redirect(
                back, {"error": "invalid_request", "error_description": "PKCE S256 is required", **state}
            )
        if p.next_person is None:
            return self._redirect(back, {"error": "access_denied", **state})
        if p.login_page and not q.get("signed_in"):
            # The person presses "Sign in" on the provider's own page: the redirect back starts on the provider's site.
            fields = "".join(f'<input type="hidden" name="{k}" value="{html.escape(v)}">' for k, v in q.items())
            page = (
                f'<!doctype html><form method="get" action="/authorize">{fields}'
                f'<input type="hidden" name="signed_in" value="1"><button id="approve">Sign in</button></form>'
            )
            data = page.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            return self.wfile.write(data)
        code = secrets.token_urlsafe(24)
        with p.lock:
            p.codes[code] = _Code(
                p.client_id, back, q["code_challenge"], q.get("nonce"), p.next_person, time.time() + CODE_SECONDS
            )
        self._redirect(back, {"code": code, **state})

    def _client_credentials(self, form: dict) -> tuple[str | None, str | None, bool]:
        header = self.headers.get("Authorization", "")
        if header.lower().startswith("basic "):
            from urllib.parse import unquote

            try:
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                return None, None, True
            return unquote(user), unquote(password), True
        return form.get("client_id"), form.get("client_secret"), False

    def _token(self) -> None:
        p = self.provider
        length = int(self.headers.get("Content-Length") or 0)
        if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
            return self._token_error(400, "invalid_request", "send application/x-www-form-urlencoded")
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        client_id, secret, basic = self._client_credentials(form)
        if client_id != p.client_id or secret is None or not secrets.compare_digest(secret, p.client_secret):
            return self._token_error(
                401,
                "invalid_client",
                "client authentication failed",
                {"WWW-Authenticate": 'Basic realm="fake-oidc"'} if basic else None,
            )
        if form.get("grant_type") != "authorization_code":
            return self._token_error(400, "unsupported_grant_type", "only authorization_code")
        if not form.get("code"):
            return self._token_error(400, "invalid_request", "code is missing")
        with p.lock:
            code = p.codes.get(form["code"])
            if code is None or code.expires < time.time() or code.client_id != client_id:
                return self._token_error(400, "invalid_grant", "code is unknown or expired")
            if code.used:  # a replayed code: refuse it and revoke what the first exchange issued
                p.access_tokens.pop(code.access_token, None)
                return self._token_error(400, "invalid_grant", "code was already used")
            code.used = True  # any attempt spends the code, as Keycloak and Dex do
            if form.get("redirect_uri") != code.redirect_uri:
                return self._token_error(400, "invalid_grant", "redirect_uri does not match the authorization request")
            if not form.get("code_verifier") or not secrets.compare_digest(s256(form["code_verifier"]), code.challenge):
                return self._token_error(400, "invalid_grant", "PKCE verification failed")
            access_token = secrets.token_urlsafe(32)
            code.access_token = access_token
            p.access_tokens[access_token] = code.person
        self._send(
            200,
            {
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": TOKEN_SECONDS,
                "scope": "openid email profile",
                "id_token": p.id_token(code, access_token),
            },
            {"Cache-Control": "no-store", "Pragma": "no-cache"},
        )

    def _userinfo(self) -> None:
        header = self.headers.get("Authorization", "")
        person = self.provider.access_tokens.get(header[7:]) if header.lower().startswith("bearer ") else None
        if person is None:
            return self._send(401, {"error": "invalid_token"}, {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        self._send(
            200,
            {
                "sub": person.sub,
                "email": person.email,
                "email_verified": person.email_verified,
                "groups": person.groups,
            },
        )


class OidcProviderServer:
    """``with OidcProviderServer(redirect_uris=(...,)) as provider:`` serves a FakeOidcProvider on 127.0.0.1."""

    def __init__(self, **fields):
        self.provider = FakeOidcProvider(**fields)
        handler = type("Handler", (_Handler,), {"provider": self.provider})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.provider.issuer = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeOidcProvider:
        self.thread.start()
        return self.provider

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
