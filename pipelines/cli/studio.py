"""`silverset studio ...`: serve the annotation studio; export and import golden sets from the command line."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

console = Console()
studio_app = typer.Typer(
    help="Annotation studio: search, label, active-learning feeds, golden sets.", no_args_is_help=True
)


def default_db_url(workdir: Path) -> str:
    return f"sqlite:///{(workdir / 'studio' / 'studio.db').resolve()}"


def _studio(
    workdir: Path,
    db: str | None,
    embeddings: Path | None,
    manifest: Path | None,
    frames: Path | None,
    text_search: bool,
    clip_model: str | None = None,
):
    from silverset.components.studio.catalog import load_workdir, minilm_text_encoder
    from silverset.components.studio.service import Studio

    (workdir / "studio").mkdir(parents=True, exist_ok=True)
    with console.status("Loading embeddings, metadata and frames..."):
        catalog = load_workdir(
            workdir,
            embeddings=embeddings,
            manifest=manifest,
            frames=frames,
            text_encoder=minilm_text_encoder() if text_search and not clip_model else None,
            clip_model=clip_model,
        )
    return Studio(
        catalog=catalog,
        db_url=db or default_db_url(workdir),
        golden_dir=workdir / "golden",
        workdir=workdir,
        models_dir=workdir / "studio" / "models",
    )


WorkdirOpt = typer.Option(
    ...,
    "--workdir",
    "-w",
    help="Workdir holding manifest.*, embeddings/ and (optionally) "
    "frames/; or a demo/pipeline workdir, whose live run (the promoted state) is opened.",
)
DbOpt = typer.Option(
    None, "--db", help="SQLAlchemy URL (default: SQLite file W/studio/studio.db; postgresql+psycopg://... works)."
)
EmbOpt = typer.Option(None, "--embeddings", help="Embeddings table (default W/embeddings).")
ManOpt = typer.Option(None, "--manifest", help="Manifest (default W/manifest.{parquet,jsonl,csv}).")
FramesOpt = typer.Option(None, "--frames", help="Frames table for thumbnails (default W/frames if present).")


@studio_app.command("serve")
def serve(
    workdir: Path = WorkdirOpt,
    db: str = DbOpt,
    port: int = typer.Option(8765, "--port", "-p", min=1, max=65535),
    host: str = typer.Option("127.0.0.1", "--host"),
    embeddings: Path = EmbOpt,
    manifest: Path = ManOpt,
    frames: Path = FramesOpt,
    attribute: list[Path] = typer.Option([], "--attribute", "-a", help="Spec YAML to register at start (repeatable)."),
    policy: str = typer.Option(
        "ucb",
        "--policy",
        help="Feed-selection bandit for attributes registered here: round_robin | epsilon_greedy | ucb.",
    ),
    text_search: bool = typer.Option(
        True, "--text-search/--no-text-search", help="MiniLM text-to-video search over title+description."
    ),
    clip_model: str = typer.Option(
        None,
        "--clip-model",
        help="CLIP/SigLIP directory (or cached hub id) the embeddings' "
        "clip block was made with: text search then looks at the frames, not the titles.",
    ),
    users_file: Path = typer.Option(
        None,
        "--users",
        help="Users file (YAML: name -> role and token_sha256 or scrypt password); "
        "without it one local admin (--user) needs no sign-in, on a loopback --host only.",
    ),
    user: str = typer.Option("local", "--user", help="Name recorded on labels in local mode (no --users)."),
    allowed_host: list[str] = typer.Option(
        [],
        "--allowed-host",
        help="Host header the studio answers (repeatable; default: loopback names, plus --host when it is a name).",
    ),
    trusted_proxy: list[str] = typer.Option(
        [],
        "--trusted-proxy",
        help="Address of a reverse proxy whose "
        "X-Forwarded-For names the client (repeatable; default 127.0.0.1): the "
        "sign-in rate limit counts per client address.",
    ),
    oidc_issuer: str = typer.Option(
        None,
        "--oidc-issuer",
        help="OpenID Connect issuer URL: people sign in there "
        "(authorization code + PKCE); its discovery document is read at the first sign-in.",
    ),
    oidc_client_id: str = typer.Option(None, "--oidc-client-id", help="This studio's client id at the issuer."),
    oidc_client_secret_env: str = typer.Option(
        "SILVERSET_OIDC_CLIENT_SECRET",
        "--oidc-client-secret-env",
        help="NAME of the environment variable holding the client secret (never the secret itself).",
    ),
    oidc_redirect_base: str = typer.Option(
        None,
        "--oidc-redirect-base",
        help="The studio's external URL, e.g. https://studio.example.com; register <it>/auth/callback at the issuer.",
    ),
    oidc_role_claim: str = typer.Option("groups", "--oidc-role-claim", help="Claim holding the user's groups."),
    oidc_role: list[str] = typer.Option(
        [],
        "--oidc-role",
        help="VALUE=ROLE: a role_claim value and the studio role "
        "(labeler|adjudicator|admin) it grants (repeatable; the highest wins).",
    ),
    oidc_unknown_users: str = typer.Option(
        "refuse", "--oidc-unknown-users", help="Someone with no mapped value: refuse | labeler."
    ),
    oidc_name_claim: str = typer.Option("email", "--oidc-name-claim", help="Claim recorded as the labeler's name."),
    oidc_scope: str = typer.Option("openid email profile", "--oidc-scope", help="Scopes asked for (Dex: add groups)."),
) -> None:
    """Serve the studio web app on http://HOST:PORT (Ctrl-C stops it)."""
    import ipaddress

    import uvicorn

    from silverset.components.common.errors import SilversetInputError
    from silverset.components.studio.app import create_app
    from silverset.components.studio.bandits import POLICIES
    from silverset.components.studio.users import Users

    if policy not in POLICIES:
        raise SilversetInputError("--policy", f"'{policy}' is not one of {', '.join(POLICIES)}")
    oidc = _oidc_sign_in(
        issuer=oidc_issuer,
        client_id=oidc_client_id,
        secret_env=oidc_client_secret_env,
        redirect_base=oidc_redirect_base,
        role_claim=oidc_role_claim,
        roles=oidc_role,
        unknown_users=oidc_unknown_users,
        name_claim=oidc_name_claim,
        scope=oidc_scope,
    )
    users = Users.load(users_file) if users_file is not None else None if oidc is not None else Users.local(user)
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if users_file is None and oidc is None and not loopback:
        raise SilversetInputError(
            "--host", f"'{host}' is not a loopback address; a studio reachable by others needs --users or --oidc-issuer"
        )
    hosts = tuple(allowed_host) or default_allowed_hosts(host, loopback=loopback, oidc=oidc)
    studio = _studio(workdir, db, embeddings, manifest, frames, text_search, clip_model)
    for spec_path in attribute:
        studio.create_attribute(spec_yaml=Path(spec_path).read_text(encoding="utf-8"), policy=policy)
    if text_search:
        with console.status("Embedding video titles and descriptions for text search (MiniLM)..."):
            studio.catalog.text_index()
    from silverset.components.studio.models import shown_url

    console.print(f"studio: {len(studio.catalog)} videos, db {shown_url(db or default_db_url(workdir))}")  # no password
    console.print(f"videos from the {studio.catalog.source}", markup=False)  # a demo/pipeline workdir: its live run
    # with OIDC the sign-in cookies belong to the redirect base's host: open the studio there, not by its address
    console.print(f"open {oidc.config.redirect_base_url}/" if oidc is not None else f"open http://{host}:{port}/")
    secure = oidc is not None and oidc.config.redirect_base_url.startswith("https://")
    uvicorn.run(
        create_app(studio, users=users, allowed_hosts=hosts, oidc=oidc, secure_cookies=secure),
        host=host,
        port=port,
        log_level="warning",
        proxy_headers=True,
        forwarded_allow_ips=",".join(trusted_proxy) or "127.0.0.1",
    )


def default_allowed_hosts(host: str, *, loopback: bool, oidc) -> tuple[str, ...]:
    """Host names answered without --allowed-host: loopback, --host when it is a name, the OIDC redirect base's."""
    from urllib.parse import urlsplit

    from silverset.components.studio.app import LOOPBACK_HOSTS

    names = list(LOOPBACK_HOSTS) + ([] if loopback or host in ("0.0.0.0", "::") else [host])
    if oidc is not None:
        names.append(urlsplit(oidc.config.redirect_base_url).hostname)
    return tuple(dict.fromkeys(names))


def _oidc_sign_in(*, issuer, client_id, secret_env, redirect_base, role_claim, roles, unknown_users, name_claim, scope):
    """An OidcSignIn from the serve options, or None without --oidc-issuer; a bad option exits 2 naming it."""
    import os
    import re

    from pydantic import ValidationError

    from silverset.components.common.errors import SilversetInputError
    from silverset.components.studio.oidc import OidcConfig, OidcSignIn

    if issuer is None:
        given = [
            name
            for name, value in (
                ("--oidc-client-id", client_id),
                ("--oidc-redirect-base", redirect_base),
                ("--oidc-role", roles),
            )
            if value
        ]
        if given:
            raise SilversetInputError(given[0], "needs --oidc-issuer")
        return None
    for option, value in (("--oidc-client-id", client_id), ("--oidc-redirect-base", redirect_base)):
        if not value:
            raise SilversetInputError(option, "is required with --oidc-issuer")
    if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", secret_env):
        raise SilversetInputError("--oidc-client-secret-env", "takes the NAME of an environment variable, not a secret")
    secret = os.environ.get(secret_env, "")
    if not secret:
        raise SilversetInputError(f"environment variable {secret_env}", "is not set or empty (the OIDC client secret)")
    role_map = {}
    for entry in roles:
        value, _, role = entry.rpartition("=")
        if not value or role not in ("labeler", "adjudicator", "admin"):
            raise SilversetInputError("--oidc-role", f"'{entry}' is not VALUE=labeler|adjudicator|admin")
        role_map[value] = role
    if not role_map and unknown_users == "refuse":
        raise SilversetInputError("--oidc-role", "give at least one VALUE=ROLE (or --oidc-unknown-users labeler)")
    try:
        config = OidcConfig(
            issuer=issuer,
            client_id=client_id,
            client_secret=secret,
            redirect_base_url=redirect_base,
            role_claim=role_claim,
            role_map=role_map,
            unknown_users=unknown_users,
            name_claim=name_claim,
            scope=scope,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "oidc"
        option = {
            "issuer": "--oidc-issuer",
            "redirect_base_url": "--oidc-redirect-base",
            "scope": "--oidc-scope",
            "unknown_users": "--oidc-unknown-users",
        }.get(field, f"--oidc-{field.replace('_', '-')}")
        raise SilversetInputError(option, first["msg"].removeprefix("Value error, ")) from None
    return OidcSignIn(config)


@studio_app.command("hash-password")
def hash_password_cmd() -> None:
    """Read a password (not echoed) and print its scrypt hash for a --users file."""
    from silverset.components.studio.users import hash_password

    print(hash_password(typer.prompt("password", hide_input=True, confirmation_prompt=True)))


@studio_app.command("hash-token")
def hash_token_cmd() -> None:
    """Make a random bearer token; print it once (give it to the user) and its token_sha256 for a --users file."""
    import secrets

    from silverset.components.studio.users import hash_token

    token = secrets.token_urlsafe(32)
    print(f"token: {token}\ntoken_sha256: {hash_token(token)}")


UsersForCliOpt = typer.Option(
    ...,
    "--users",
    envvar="SILVERSET_STUDIO_USERS",
    help="The studio's users file (env SILVERSET_STUDIO_USERS): who you are is checked there.",
)
TokenEnvOpt = typer.Option(
    "SILVERSET_STUDIO_TOKEN",
    "--token-env",
    help="NAME of the environment variable holding your studio bearer token (never the token).",
)


def signed_in_actor(users_file: Path, token_env: str, *, needs: str, command: str):
    """The studio user running a command: their bearer token (from an env var) looked up in the users file.

    The name recorded in the audit is that user's, never free text; a missing or unknown token, or a role below
    ``needs``, exits 2 naming the problem.
    """
    import os
    import re

    from silverset.components.common.errors import SilversetInputError
    from silverset.components.studio.users import Users

    if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", token_env):
        raise SilversetInputError("--token-env", "takes the NAME of an environment variable, not a token")
    token = os.environ.get(token_env, "").strip()
    if not token:
        raise SilversetInputError(
            f"environment variable {token_env}",
            "is not set: it must hold your studio bearer token (an admin makes one with 'silverset studio hash-token')",
        )
    user = Users.load(users_file).by_token(token)
    if user is None:
        raise SilversetInputError(
            f"environment variable {token_env}", f"holds a token that users file '{users_file}' does not know"
        )
    if not user.may(needs):
        raise SilversetInputError(
            f"studio user '{user.name}'", f"has role {user.role}; 'studio {command}' needs {needs}"
        )
    return user


@studio_app.command("export")
def export(
    attribute: str = typer.Argument(..., help="Attribute key, e.g. red_dominant@v1."),
    workdir: Path = WorkdirOpt,
    db: str = DbOpt,
    out: Path = typer.Option(None, "--out", help="Output folder (default W/golden/<name>/v<version>)."),
    users_file: Path = UsersForCliOpt,
    token_env: str = TokenEnvOpt,
) -> None:
    """Write the resolved golden set (golden.parquet) and unresolved disagreements (errors.parquet); adjudicators."""
    from silverset.components.studio.service import NotFound

    actor = signed_in_actor(users_file, token_env, needs="adjudicator", command="export")
    studio = _studio(workdir, db, None, None, None, False)
    try:
        summary = studio.export_golden(attribute, out_dir=out, actor=actor.name, via="cli")
    except NotFound as exc:
        from silverset.components.common.errors import SilversetInputError

        raise SilversetInputError("attribute", str(exc)) from None
    console.print(summary)


@studio_app.command("import")
def import_(
    attribute: str = typer.Argument(..., help="Attribute key, e.g. red_dominant@v1."),
    golden: Path = typer.Argument(..., help="Golden-set Parquet file (schemas.GOLDEN)."),
    workdir: Path = WorkdirOpt,
    db: str = DbOpt,
    users_file: Path = UsersForCliOpt,
    token_env: str = TokenEnvOpt,
) -> None:
    """Load a golden-set table into the studio as labels by their recorded labelers; admins only, audited."""
    from silverset.components.common.errors import SilversetInputError
    from silverset.components.studio.service import NotFound

    actor = signed_in_actor(users_file, token_env, needs="admin", command="import")
    studio = _studio(workdir, db, None, None, None, False)
    try:
        console.print(studio.import_golden(attribute, path=golden, actor=actor.name, via="cli"))
    except NotFound as exc:
        raise SilversetInputError("attribute", str(exc)) from None


@studio_app.command("export-model")
def export_model(
    attribute: str = typer.Argument(..., help="Attribute key, e.g. red_dominant@v1."),
    workdir: Path = WorkdirOpt,
    db: str = DbOpt,
    embeddings: Path = EmbOpt,
    manifest: Path = ManOpt,
    out: Path = typer.Option(None, "--out", help="MODELDIR to write (default W/studio/models/<name>/v<version>)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace --out even when another command wrote it."),
    users_file: Path = UsersForCliOpt,
    token_env: str = TokenEnvOpt,
) -> None:
    """Write the studio's current classifier as a student candidate (the distill stage's MODELDIR: model.pt,
    model.onnx, metadata.json with its digest) for `silverset score` and `evaluate --gate student`; adjudicators."""
    from silverset.components.common.errors import SilversetInputError
    from silverset.components.studio.service import Conflict, NotFound

    actor = signed_in_actor(users_file, token_env, needs="adjudicator", command="export-model")
    studio = _studio(workdir, db, embeddings, manifest, None, False)
    try:
        summary = studio.export_model(attribute, out_dir=out, actor=actor.name, via="cli", overwrite=overwrite)
    except NotFound as exc:
        raise SilversetInputError("attribute", str(exc)) from None
    except Conflict as exc:
        raise SilversetInputError(f"attribute {attribute}", str(exc)) from None
    console.print(summary)


def register(app: typer.Typer) -> None:
    app.add_typer(studio_app, name="studio")
