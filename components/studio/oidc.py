"""OpenID Connect sign-in for a deployed studio: the authorization-code flow with PKCE through authlib.

The studio is the relying party. ``OidcSignIn.begin`` makes the authorize URL (state, nonce, S256 code challenge)
and remembers the attempt for ten minutes, bound to a random value in the browser's cookie; ``finish`` takes the
provider's redirect back: the state is used once, the code is exchanged with the client secret and the PKCE
verifier, and the ID token is accepted only when its signature verifies against the issuer's JWKS (asymmetric
algorithms only) and its ``iss``, ``aud``, ``exp``, ``iat`` and ``nonce`` are what this attempt expects. The
role comes from a claim the operator names (``groups`` by default) through the operator's mapping of claim
values to roles; someone with no mapped value is refused or, by policy, a labeler.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from .users import ROLES, USER_NAME_PATTERN, User

_LOGGER = logging.getLogger(__name__)
CALLBACK_PATH = "/auth/callback"
LOGIN_SECONDS = 600
MAX_ATTEMPTS = 10_000  # sign-ins in flight at once (GET /auth/login is open); the oldest are forgotten first
# Asymmetric signatures only: "none" and HS* (keyed with the client secret) are never accepted for an ID token.
SIGNING_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
CLOCK_LEEWAY_S = 60
JWKS_REFRESH_MIN_S = 60.0


class OidcError(Exception):
    """A sign-in the studio refuses: ``status`` is the HTTP answer (401 not signed in, 403 signed in but no role)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _is_loopback_http(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")


class OidcConfig(BaseModel):
    """What the operator configures: the issuer, this client's registration, and how claims become roles."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    issuer: str = Field(min_length=1, description="Issuer URL; its /.well-known/openid-configuration is read")
    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    redirect_base_url: str = Field(
        description="The studio's external URL; the provider redirects to <it>/auth/callback"
    )
    role_claim: str = Field("groups", min_length=1, description="ID-token (or userinfo) claim holding group names")
    role_map: dict[str, Literal["labeler", "adjudicator", "admin"]] = Field(
        description="claim value -> role; a user holding several gets the highest"
    )
    unknown_users: Literal["refuse", "labeler"] = "refuse"
    name_claim: str = Field("email", min_length=1, description="claim recorded as the labeler's name")
    scope: str = "openid email profile"

    @field_validator("issuer", "redirect_base_url")
    @classmethod
    def _https(cls, url: str) -> str:
        parts = urlsplit(url)
        if not parts.netloc or not (parts.scheme == "https" or _is_loopback_http(url)):
            raise ValueError(f"'{url}' is not an https URL (plain http only on loopback)")
        if parts.query or parts.fragment:
            raise ValueError(f"'{url}' has a query or fragment")
        return url.rstrip("/")

    @field_validator("scope")
    @classmethod
    def _openid(cls, scope: str) -> str:
        if "openid" not in scope.split():
            raise ValueError("scope must include 'openid'")
        return scope

    @property
    def redirect_uri(self) -> str:
        return self.redirect_base_url + CALLBACK_PATH


@dataclass(frozen=True)
class _Attempt:
    nonce: str
    code_verifier: str
    browser_sha256: str
    expires: float


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


class OidcSignIn:
    """The relying party: discovery, JWKS, attempts in flight (in memory), code exchange, ID-token checks."""

    def __init__(self, config: OidcConfig, *, timeout_s: float = 10.0, clock=time.time):
        self.config = config
        self.timeout_s = timeout_s
        self._clock = clock
        self._lock = threading.Lock()
        self._attempts: dict[str, _Attempt] = {}
        self._metadata: dict | None = None
        self._jwks: dict | None = None
        self._jwks_fetched_at = float("-inf")

    # --- provider documents -------------------------------------------------------------------------------
    def _get_json(self, url: str, what: str) -> dict:
        try:
            response = httpx.get(url, timeout=self.timeout_s, follow_redirects=False)
            response.raise_for_status()
            data = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise OidcError(502, f"identity provider {what} at {url} could not be read: {type(exc).__name__}") from None
        if not isinstance(data, dict):
            raise OidcError(502, f"identity provider {what} at {url} is not a JSON object")
        return data

    def metadata(self) -> dict:
        """The issuer's discovery document; its ``issuer`` must equal the configured one (OIDC Discovery 4.3)."""
        if self._metadata is None:
            data = self._get_json(self.config.issuer + "/.well-known/openid-configuration", "discovery document")
            if data.get("issuer") != self.config.issuer:
                raise OidcError(
                    502, f"discovery document names issuer {data.get('issuer')!r}, not {self.config.issuer!r}"
                )
            for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not isinstance(data.get(key), str):
                    raise OidcError(502, f"discovery document has no {key}")
            self._metadata = data
        return self._metadata

    def _key_set(self, *, refresh: bool = False):
        from joserfc.jwk import KeySet

        with self._lock:
            stale = self._jwks is None or (refresh and self._clock() - self._jwks_fetched_at >= JWKS_REFRESH_MIN_S)
        if stale:
            jwks = self._get_json(self.metadata()["jwks_uri"], "JWKS")
            with self._lock:
                self._jwks, self._jwks_fetched_at = jwks, self._clock()
        try:
            return KeySet.import_key_set(self._jwks)
        except Exception as exc:  # noqa: BLE001 - any malformed key set is the provider's fault, one line
            raise OidcError(502, f"identity provider JWKS cannot be read: {type(exc).__name__}") from None

    def _client(self):
        from authlib.integrations.httpx_client import OAuth2Client

        return OAuth2Client(
            client_id=self.config.client_id,
            client_secret=self.config.client_secret.get_secret_value(),
            scope=self.config.scope,
            redirect_uri=self.config.redirect_uri,
            code_challenge_method="S256",
            token_endpoint_auth_method="client_secret_basic",
            timeout=self.timeout_s,
        )

    # --- the flow --------------------------------------------------------------------------------------------
    def begin(self) -> tuple[str, str]:
        """(authorize URL, browser secret): send the browser to the URL with the secret in a cookie."""
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        code_verifier, browser_secret = secrets.token_urlsafe(48), secrets.token_urlsafe(24)
        with self._client() as client:
            url, _ = client.create_authorization_url(
                self.metadata()["authorization_endpoint"], state=state, nonce=nonce, code_verifier=code_verifier
            )
        now = self._clock()
        with self._lock:
            self._attempts = {k: a for k, a in self._attempts.items() if a.expires > now}
            while len(self._attempts) >= MAX_ATTEMPTS:
                del self._attempts[next(iter(self._attempts))]
            self._attempts[state] = _Attempt(nonce, code_verifier, _sha256(browser_secret), now + LOGIN_SECONDS)
        return url, browser_secret

    def finish(self, *, code: str, state: str, browser_secret: str) -> User:
        """The signed-in user for the provider's redirect back, or OidcError. Each state is used once."""
        with self._lock:
            attempt = self._attempts.pop(state, None)
        if attempt is None or attempt.expires <= self._clock():
            raise OidcError(401, "sign-in state is unknown, expired or already used; sign in again")
        if not hmac.compare_digest(_sha256(browser_secret), attempt.browser_sha256):
            raise OidcError(401, "sign-in was started in another browser; sign in again")
        from authlib.integrations.base_client.errors import OAuthError

        try:
            with self._client() as client:
                token = client.fetch_token(
                    self.metadata()["token_endpoint"],
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=attempt.code_verifier,
                    redirect_uri=self.config.redirect_uri,
                )
        except OAuthError as exc:
            raise OidcError(401, f"identity provider refused the code: {exc.error}") from None
        except httpx.HTTPError as exc:
            raise OidcError(502, f"identity provider token endpoint failed: {type(exc).__name__}") from None
        if not isinstance(token.get("id_token"), str):
            raise OidcError(401, "identity provider answered without an id_token (is 'openid' in the scope?)")
        claims = self.verify_id_token(token["id_token"], nonce=attempt.nonce, access_token=token.get("access_token"))
        return self.user_for(claims, access_token=token.get("access_token"))

    def verify_id_token(self, id_token: str, *, nonce: str, access_token: str | None = None) -> dict:
        """The ID token's claims once its signature, iss, aud, exp, iat, nonce (and at_hash, azp) check out."""
        from authlib.oidc.core import CodeIDToken
        from joserfc import jwt
        from joserfc.errors import InvalidKeyIdError, JoseError
        from joserfc.jws import JWSRegistry

        offered = self.metadata().get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = [a for a in offered if a in SIGNING_ALGORITHMS]
        registry = JWSRegistry(algorithms=algorithms or ["RS256"], strict_check_header=False)
        try:
            try:
                decoded = jwt.decode(id_token, self._key_set(), registry=registry)
            except InvalidKeyIdError:  # the provider rotated its keys since the JWKS was read
                decoded = jwt.decode(id_token, self._key_set(refresh=True), registry=registry)
            options = {
                "iss": {"essential": True, "value": self.config.issuer},
                "aud": {"essential": True, "value": self.config.client_id},
                "exp": {"essential": True},
            }
            params = {"nonce": nonce, "client_id": self.config.client_id}
            if access_token:
                params["access_token"] = access_token
            claims = CodeIDToken(decoded.claims, decoded.header, options, params)
            claims.validate(now=int(self._clock()), leeway=CLOCK_LEEWAY_S)
        except (JoseError, ValueError) as exc:
            reason = getattr(exc, "description", None) or getattr(exc, "error", None) or type(exc).__name__
            _LOGGER.warning("OIDC ID token refused: %s", reason)
            raise OidcError(401, f"ID token refused: {reason}") from None
        return dict(claims)

    def _userinfo(self, access_token: str | None) -> dict:
        endpoint = self.metadata().get("userinfo_endpoint")
        if not endpoint or not access_token:
            return {}
        try:
            response = httpx.get(endpoint, headers={"Authorization": f"Bearer {access_token}"}, timeout=self.timeout_s)
            response.raise_for_status()
            data = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise OidcError(502, f"identity provider userinfo failed: {type(exc).__name__}") from None
        return data if isinstance(data, dict) else {}

    def user_for(self, claims: dict, *, access_token: str | None = None) -> User:
        """Name from ``name_claim`` and role from ``role_claim`` (ID token first, then userinfo for the same sub)."""
        config = self.config
        if config.name_claim not in claims or config.role_claim not in claims:
            info = self._userinfo(access_token)
            if info.get("sub") == claims.get("sub"):  # OIDC Core 5.3.2: userinfo for another subject is not used
                claims = {**info, **claims}
        if config.name_claim == "email" and claims.get("email_verified") is False:
            raise OidcError(403, f"the identity provider has not verified the email address of '{claims.get('sub')}'")
        name = claims.get(config.name_claim)
        if not isinstance(name, str) or not re.match(USER_NAME_PATTERN, name):
            raise OidcError(
                403, f"claim '{config.name_claim}' is missing or not a user name (letters, digits and ._@+-)"
            )
        held = claims.get(config.role_claim)
        values = (
            [held]
            if isinstance(held, str)
            else [v for v in held if isinstance(v, str)]
            if isinstance(held, list)
            else []
        )
        roles = [config.role_map[v] for v in values if v in config.role_map]
        if roles:
            return User(name, max(roles, key=ROLES.index))
        if config.unknown_users == "labeler":
            return User(name, "labeler")
        raise OidcError(403, f"'{name}' holds no {config.role_claim} value mapped to a studio role")
