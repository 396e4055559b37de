"""The studio's HTTP API and single-page UI (FastAPI); all logic lives in service.Studio, users in users.Users,
OpenID Connect sign-in in oidc.OidcSignIn and the sign-in rate limit in auth_limit.SignInLimiter."""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import Callable, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.middleware.trustedhost import TrustedHostMiddleware

from silverset.components.common.errors import SilversetInputError
from silverset.components.common.spec import MAX_SPEC_CHARS, example_specs_dir

from .auth_limit import SignInLimiter
from .bandits import BATCH_SIZE
from .oidc import CALLBACK_PATH, LOGIN_SECONDS, OidcError, OidcSignIn
from .service import Conflict, Invalid, NotFound, Studio
from .users import USER_NAME_PATTERN, Sessions, User, Users

STATIC_DIR = Path(__file__).resolve().parent / "static"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
MAX_BODY_BYTES = 8 * 1024 * 1024
SESSION_COOKIE = "silverset_session"
OIDC_COOKIE = "silverset_oidc"  # binds an OIDC sign-in attempt to the browser that started it
CSRF_HEADER = "X-CSRF-Token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# No inline script or handler runs even if an escaping bug slipped through; the page is never framed.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NewAttribute(_Body):
    spec_yaml: str | None = Field(None, max_length=MAX_SPEC_CHARS, description="The attribute spec YAML")
    example: str | None = Field(None, pattern=r"^[a-z][a-z0-9_]{1,62}$", description="Name of a shipped example spec")
    policy: Literal["round_robin", "epsilon_greedy", "ucb"] = "ucb"


class PolicyChange(_Body):
    policy: Literal["round_robin", "epsilon_greedy", "ucb"]


class NewLabel(_Body):
    """A label by the signed-in user; the labeler is never taken from the body."""

    video_id: str = Field(min_length=1, max_length=256)
    label: Literal["positive", "negative", "skip"]
    source: str = Field("manual", pattern=r"^[a-z_:]{1,32}$")
    expected_revision: int | None = Field(
        None, ge=0, description="revision last seen; 0 = no label yet; omit to overwrite"
    )


class Adjudication(_Body):
    video_id: str = Field(min_length=1, max_length=256)
    label: Literal["positive", "negative"]


class ExportRequest(_Body):
    out_dir: str | None = Field(None, max_length=1024, description="folder relative to the studio's golden folder")


class GoldenRow(_Body):
    video_id: str = Field(min_length=1, max_length=256)
    attribute: str = Field(max_length=64)
    attribute_version: int = Field(ge=1, le=2**31 - 1)
    label: int
    labeler: str = Field(pattern=r"^[A-Za-z0-9._@+\-,]{1,1024}$")
    labeled_at: str | None = None
    rater_label: int | None = Field(None, description="GOLDEN v2: this rater's vote (absent in v1 rows)")
    how: Literal["adjudicated", "unanimous", "majority", "single"] | None = None
    classes: str | None = Field(None, max_length=1024, description="the spec's class names joined by ','")


class ModelExportRequest(_Body):
    out_dir: str | None = Field(None, max_length=1024, description="folder relative to the studio's models folder")


class GoldenImport(_Body):
    rows: list[GoldenRow] = Field(max_length=1_000_000)


class SignIn(_Body):
    user: str = Field(pattern=USER_NAME_PATTERN)
    password: str | None = Field(None, max_length=1024)
    token: str | None = Field(None, max_length=1024)


def one_line(text: str) -> str:
    """A message as one line: control characters (a newline in a field name a client sent, say) as escapes."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def validation_detail(errors) -> str:
    """Pydantic/FastAPI validation errors as one line, "where: problem; where: problem" (first five)."""
    return one_line(
        "; ".join(f"{'.'.join(str(part) for part in e['loc']) or 'body'}: {e['msg']}" for e in list(errors)[:5])
    )


class _BodyLimit:
    """Refuses a request body over ``limit`` bytes with 413 before any of it is parsed."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            return await JSONResponse({"detail": f"request body is over {self.limit} bytes"}, status_code=413)(
                scope, receive, send
            )
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise HTTPException(413, f"request body is over {self.limit} bytes")
            return message

        await self.app(scope, limited, send)


def create_app(
    studio: Studio,
    *,
    users: Users | None = None,
    allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS,
    secure_cookies: bool = False,
    oidc: OidcSignIn | None = None,
    limiter: SignInLimiter | None = None,
) -> FastAPI:
    """FastAPI app over one Studio.

    ``users``: who may sign in with a password or bearer token (None without ``oidc`` = ``Users.local("local")``,
    one admin needing no sign-in: a laptop on loopback). ``oidc``: people sign in at the identity provider
    (GET /auth/login). Unknown attribute/video -> 404, stale edit -> 409, bad body -> 422, too big -> 413, no or
    bad credentials -> 401, missing role or CSRF token -> 403, a Host not in ``allowed_hosts`` -> 400, too many
    failed sign-ins for a user or from an address -> 429 with Retry-After.
    """
    users = users or (Users({}) if oidc is not None else Users.local("local"))
    sessions = Sessions()
    limiter = limiter or SignInLimiter()
    app = FastAPI(title="Silverset studio", version="0.2.0", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.studio = studio
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))
    app.add_middleware(_BodyLimit, limit=MAX_BODY_BYTES)

    @app.middleware("http")
    async def _security_headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(Conflict)
    async def _conflict(_: Request, exc: Conflict) -> JSONResponse:
        return JSONResponse({"detail": str(exc), "current": exc.current}, status_code=409)

    @app.exception_handler(Invalid)
    async def _invalid(_: Request, exc: Invalid) -> JSONResponse:
        return JSONResponse({"detail": one_line(str(exc))}, status_code=422)

    @app.exception_handler(SilversetInputError)
    async def _bad_input(_: Request, exc: SilversetInputError) -> JSONResponse:
        return JSONResponse({"detail": one_line(str(exc))}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def _bad_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        # One line, without echoing the inputs: FastAPI's default puts each bad value in the body, and a NaN or
        # Infinity there (Python's json reads them) made the 422 a 500; a rejected sign-in would echo its password.
        return JSONResponse({"detail": validation_detail(exc.errors())}, status_code=422)

    def client_key(request: Request) -> str:
        return f"address:{request.client.host if request.client else 'unknown'}"

    def refuse_if_limited(*keys: str) -> None:
        wait = limiter.retry_after(*keys)
        if wait:
            raise HTTPException(
                429, f"too many failed sign-ins; try again in {wait} s", headers={"Retry-After": str(wait)}
            )

    def signed_in(request: Request) -> User:
        """The request's user: a bearer token, else a session cookie (CSRF-checked on writes), else local mode."""
        header = request.headers.get("authorization", "")
        if header:
            scheme, _, token = header.partition(" ")
            refuse_if_limited(client_key(request))
            user = users.by_token(token.strip()) if scheme.lower() == "bearer" and token.strip() else None
            if user is None:
                limiter.failed(client_key(request))
                raise HTTPException(401, "bearer token not recognised", headers={"WWW-Authenticate": "Bearer"})
            return user
        session = sessions.get(request.cookies.get(SESSION_COOKIE, ""))
        if session is not None:
            if request.method in UNSAFE_METHODS and not hmac.compare_digest(
                request.headers.get(CSRF_HEADER, "").encode(), session.csrf_token.encode()
            ):
                raise HTTPException(403, f"missing or wrong {CSRF_HEADER} header for this session")
            return session.user
        if users.local_user is not None:
            return users.local_user
        raise HTTPException(
            401, "sign in first (POST /api/session) or send a bearer token", headers={"WWW-Authenticate": "Bearer"}
        )

    def role(needed: str) -> Callable[[Request], User]:
        def check(user: User = Depends(signed_in)) -> User:
            if not user.may(needed):
                raise HTTPException(403, f"user '{user.name}' is a {user.role}; this needs {needed}")
            return user

        return check

    labeler, adjudicator, admin = role("labeler"), role("adjudicator"), role("admin")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    def set_session_cookie(response: Response, session_id: str) -> None:
        response.set_cookie(
            SESSION_COOKIE,
            session_id,
            httponly=True,
            samesite="strict",
            secure=secure_cookies,
            max_age=int(sessions.lifetime_s),
            path="/",
        )

    @app.get("/auth/methods")
    def sign_in_methods() -> dict:
        """How people sign in here (open: the page asks before anyone is signed in)."""
        return {
            "oidc": oidc is not None,
            "password": users.local_user is None and users.has_entries,
            "local": users.local_user is not None,
        }

    @app.post("/api/session")
    def sign_in(body: SignIn, request: Request) -> JSONResponse:
        if (body.password is None) == (body.token is None):
            raise Invalid("give exactly one of 'password' or 'token'")
        keys = (f"user:{body.user}", client_key(request))
        refuse_if_limited(*keys)
        user = users.by_password(body.user, body.password) if body.password is not None else users.by_token(body.token)
        if user is None or user.name != body.user:
            limiter.failed(*keys)
            raise HTTPException(401, "unknown user or wrong password/token")
        session_id, session = sessions.open(user)
        response = JSONResponse({"user": user.name, "role": user.role, "csrf_token": session.csrf_token})
        set_session_cookie(response, session_id)
        return response

    @app.get("/auth/login", include_in_schema=False)
    def oidc_login() -> RedirectResponse:
        if oidc is None:
            raise HTTPException(404, "this studio has no OpenID Connect sign-in (serve it with --oidc-issuer)")
        try:
            url, browser_secret = oidc.begin()
        except OidcError as exc:
            raise HTTPException(exc.status, str(exc)) from None
        response = RedirectResponse(url, status_code=302)
        # Lax, not Strict: the provider's redirect back is a cross-site top-level navigation that must carry it.
        response.set_cookie(
            OIDC_COOKIE,
            browser_secret,
            httponly=True,
            samesite="lax",
            secure=secure_cookies,
            max_age=LOGIN_SECONDS,
            path="/auth",
        )
        return response

    @app.get(CALLBACK_PATH, include_in_schema=False)
    def oidc_callback(
        request: Request,
        code: str | None = Query(None, max_length=4096),
        state: str | None = Query(None, max_length=512),
        error: str | None = Query(None, max_length=128),
    ):
        if oidc is None:
            raise HTTPException(404, "this studio has no OpenID Connect sign-in")
        if error is not None:
            raise HTTPException(401, f"the identity provider did not sign you in: {error[:64]}")
        if not code or not state:
            raise HTTPException(400, "the sign-in callback needs 'code' and 'state'")
        try:
            user = oidc.finish(code=code, state=state, browser_secret=request.cookies.get(OIDC_COOKIE, ""))
        except OidcError as exc:
            raise HTTPException(exc.status, str(exc)) from None
        response = RedirectResponse("/", status_code=303)
        set_session_cookie(response, sessions.open(user)[0])
        response.delete_cookie(OIDC_COOKIE, path="/auth")
        return response

    @app.delete("/api/session")
    def sign_out(request: Request, _: User = Depends(signed_in)) -> JSONResponse:
        sessions.close(request.cookies.get(SESSION_COOKIE, ""))
        response = JSONResponse({"signed_out": True})
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @app.get("/api/me")
    def me(request: Request, user: User = Depends(signed_in)) -> dict:
        session = sessions.get(request.cookies.get(SESSION_COOKIE, ""))
        return {
            "user": user.name,
            "role": user.role,
            "csrf_token": session.csrf_token if session else None,
            "local": user is users.local_user,
        }

    @app.get("/api/corpus")
    def corpus(_: User = Depends(labeler)) -> dict:
        c = studio.catalog
        return {
            "videos": len(c),
            "dimension": int(c.embeddings.shape[1]),
            "embedder_id": c.embedder_id,
            "text_search": c.text_encoder is not None,
        }

    @app.get("/api/examples")
    def examples(_: User = Depends(labeler)) -> list[str]:
        return sorted(p.stem for p in example_specs_dir().glob("*.yaml"))

    @app.get("/api/attributes")
    def list_attributes(_: User = Depends(labeler)) -> list[dict]:
        return studio.list_attributes()

    @app.post("/api/attributes", status_code=201)
    def create_attribute(body: NewAttribute, _: User = Depends(admin)) -> dict:
        if (body.spec_yaml is None) == (body.example is None):
            raise Invalid("give exactly one of 'spec_yaml' or 'example'")
        text = body.spec_yaml
        if body.example is not None:
            path = example_specs_dir() / f"{body.example}.yaml"
            if not path.exists():
                raise NotFound(f"unknown example spec '{body.example}'")
            text = path.read_text(encoding="utf-8")
        return studio.create_attribute(spec_yaml=text, policy=body.policy)

    @app.get("/api/attributes/{key}")
    def attribute_state(key: str, _: User = Depends(labeler)) -> dict:
        return studio.state(key)

    @app.put("/api/attributes/{key}/policy")
    def set_policy(key: str, body: PolicyChange, _: User = Depends(admin)) -> dict:
        return studio.set_policy(key, body.policy)

    @app.get("/api/attributes/{key}/search")
    def search(
        key: str,
        q: str = Query(..., min_length=1, max_length=500),
        limit: int = Query(24, ge=1, le=200),
        _: User = Depends(labeler),
    ) -> list[dict]:
        return studio.search(key, query=q, limit=limit)

    @app.get("/api/attributes/{key}/labels")
    def labels(key: str, _: User = Depends(labeler)) -> list[dict]:
        return studio.labels(key)

    @app.post("/api/attributes/{key}/labels")
    def add_label(key: str, body: NewLabel, user: User = Depends(labeler)) -> dict:
        label = studio.set_label(
            key,
            video_id=body.video_id,
            value=body.label,
            labeler=user.name,
            source=body.source,
            expected_revision=body.expected_revision,
        )
        return {"label": label, "state": studio.state(key)}

    @app.get("/api/attributes/{key}/feeds")
    def get_feeds(key: str, limit: int = Query(BATCH_SIZE, ge=1, le=200), _: User = Depends(labeler)) -> dict:
        return studio.feeds(key, limit=limit)

    @app.post("/api/attributes/{key}/next-batch")
    def next_batch(key: str, limit: int = Query(BATCH_SIZE, ge=1, le=200), _: User = Depends(labeler)) -> dict:
        return studio.next_batch(key, limit=limit)

    @app.get("/api/attributes/{key}/disagreements")
    def disagreements(key: str, _: User = Depends(labeler)) -> list[dict]:
        return studio.golden_labels(key)[1]

    @app.post("/api/attributes/{key}/adjudications")
    def adjudicate(key: str, body: Adjudication, user: User = Depends(adjudicator)) -> dict:
        return studio.adjudicate(key, video_id=body.video_id, value=body.label, adjudicator=user.name)

    @app.get("/api/attributes/{key}/audit")
    def audit(key: str, _: User = Depends(labeler)) -> list[dict]:
        return studio.audit(key)

    @app.post("/api/attributes/{key}/export")
    def export(key: str, body: ExportRequest | None = None, user: User = Depends(adjudicator)) -> dict:
        out_dir = studio.export_folder(body.out_dir) if body and body.out_dir else None
        return studio.export_golden(key, out_dir=out_dir, actor=user.name, via="api")

    @app.get("/api/attributes/{key}/review")
    def review(key: str, _: User = Depends(labeler)) -> list[dict]:
        return studio.review(key)

    @app.get("/api/attributes/{key}/teacher-disagreements")
    def teacher_disagreements(key: str, _: User = Depends(labeler)) -> dict:
        return studio.teacher_disagreements(key)

    @app.post("/api/attributes/{key}/export-model")
    def export_model(key: str, body: ModelExportRequest | None = None, user: User = Depends(adjudicator)) -> dict:
        out_dir = studio.export_folder_for_models(body.out_dir) if body and body.out_dir else None
        return studio.export_model(key, out_dir=out_dir, actor=user.name, via="api")

    @app.get("/api/attributes/{key}/golden.parquet")
    def download_golden(key: str, _: User = Depends(labeler)) -> Response:
        import io

        import pyarrow.parquet as pq

        table, _errors = studio.golden_table(key)
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        name = key.replace("@", "_")
        return Response(
            buffer.getvalue(),
            media_type="application/vnd.apache.parquet",
            headers={"Content-Disposition": f'attachment; filename="golden_{name}.parquet"'},
        )

    @app.post("/api/attributes/{key}/import")
    async def import_golden(key: str, request: Request, user: User = Depends(admin)) -> dict:
        # JSON only: a cross-site form or a text/plain "simple request" cannot reach this without a CORS preflight.
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            raise HTTPException(415, 'send the golden set as application/json: {"rows": [...]}')
        try:
            body = GoldenImport.model_validate_json(await request.body())
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            raise Invalid(f"golden set upload: {where}: {first['msg']}") from None
        return studio.import_golden_rows(key, rows=[r.model_dump() for r in body.rows], actor=user.name)

    @app.get("/api/videos/{video_id}/frames/{frame_index}.jpg")
    def frame(video_id: str, frame_index: int, _: User = Depends(labeler)) -> Response:
        jpeg = studio.catalog.frame_jpeg(video_id, frame_index)
        if jpeg is None:
            raise HTTPException(404, f"no frame {frame_index} for video '{video_id}'")
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

    return app
