"""`silverset studio export/import` act as an authenticated studio user: the bearer token in an environment
variable, looked up in the users file, with the role the API would need (export: adjudicator, import: admin);
no free-text --actor; anything else exits 2 with one line; the audit names who did it, through the CLI."""

from __future__ import annotations

import pytest

from silverset.components.studio.service import Studio

KEY = "red_dominant@v1"


@pytest.fixture
def db(tmp_path, catalog):
    """A studio database with the red_dominant attribute and six labels by alice."""
    from silverset.components.common.spec import example_specs_dir

    url = f"sqlite:///{tmp_path / 'studio.db'}"
    studio = Studio(catalog=catalog, db_url=url)
    studio.create_attribute(spec_yaml=(example_specs_dir() / "red_dominant.yaml").read_text(), policy="ucb")
    for i, video_id in enumerate(catalog.video_ids[:6]):
        studio.set_label(KEY, video_id=video_id, value="positive" if i % 2 else "negative", labeler="alice")
    return url, studio


def run(cli, monkeypatch, command, workdir, db, users_file, token, *extra):
    monkeypatch.delenv("SILVERSET_STUDIO_TOKEN", raising=False)
    if token is not None:
        monkeypatch.setenv("SILVERSET_STUDIO_TOKEN", token)
    return cli("studio", command, KEY, *extra, "--workdir", str(workdir), "--db", db, "--users", str(users_file))


def test_export_and_import_are_audited_under_the_token_holder(cli, monkeypatch, workdir, db, users_file, tmp_path):
    url, studio = db
    path, tokens = users_file
    exported = run(cli, monkeypatch, "export", workdir, url, path, tokens["dana"], "--out", str(tmp_path / "g"))
    assert exported.code == 0, exported.err
    golden = tmp_path / "g" / "golden.parquet"
    imported = run(cli, monkeypatch, "import", workdir, url, path, tokens["root"], str(golden))
    assert imported.code == 0, imported.err
    whole_set = [(a["actor"], a["action"], a["new"], a["source"]) for a in studio.audit(KEY) if a["video_id"] == "*"]
    assert whole_set == [("dana", "export", "6 rows", "cli"), ("root", "import", "0 rows", "cli")]
    for token in tokens.values():
        assert token not in exported.out + exported.err + imported.out + imported.err


@pytest.mark.parametrize(
    "command, who, problem",
    [
        ("export", None, "environmentvariableSILVERSET_STUDIO_TOKEN:isnotset"),
        ("export", "not-a-token", "holdsatokenthatusersfile"),
        ("export", "bob", "studiouser'bob':hasrolelabeler;'studioexport'needsadjudicator"),
        ("import", "dana", "studiouser'dana':hasroleadjudicator;'studioimport'needsadmin"),
    ],
)
def test_no_token_an_unknown_one_or_a_role_too_low_exits_2_and_changes_nothing(
    cli, monkeypatch, workdir, db, users_file, tmp_path, command, who, problem
):
    url, studio = db
    path, tokens = users_file
    token = tokens.get(who, who)
    extra = ("--out", str(tmp_path / "g")) if command == "export" else (str(tmp_path / "missing.parquet"),)
    before = studio.audit(KEY)
    result = run(cli, monkeypatch, command, workdir, url, path, token, *extra)
    assert result.code == 2 and problem in result.flat_err, result.err
    assert "Traceback" not in result.err and result.err.count("error:") == 1
    assert not (tmp_path / "g").exists() and studio.audit(KEY) == before


def test_a_free_text_actor_is_not_an_option(cli, monkeypatch, workdir, db, users_file, tmp_path):
    url, _ = db
    path, tokens = users_file
    result = run(
        cli, monkeypatch, "import", workdir, url, path, tokens["root"], str(tmp_path / "g.parquet"), "--actor", "root"
    )
    assert result.code == 2 and "--actor" in result.err


@pytest.mark.parametrize(
    "options, env, problem",
    [
        (
            [
                "--oidc-client-id",
                "studio",
                "--oidc-redirect-base",
                "https://studio.example.com",
                "--oidc-role",
                "g=admin",
            ],
            {},
            "environmentvariableSILVERSET_OIDC_CLIENT_SECRET:isnotsetorempty",
        ),
        (
            [
                "--oidc-client-id",
                "studio",
                "--oidc-redirect-base",
                "https://studio.example.com",
                "--oidc-client-secret-env",
                "hunter2-the-secret!",
            ],
            {},
            "--oidc-client-secret-env:takestheNAME",
        ),
        (
            [
                "--oidc-client-id",
                "studio",
                "--oidc-redirect-base",
                "https://studio.example.com",
                "--oidc-role",
                "g=root",
            ],
            {"SILVERSET_OIDC_CLIENT_SECRET": "s"},
            "--oidc-role:'g=root'isnotVALUE=labeler|adjudicator|admin",
        ),
        (
            [
                "--oidc-client-id",
                "studio",
                "--oidc-redirect-base",
                "http://studio.example.com",
                "--oidc-role",
                "g=admin",
            ],
            {"SILVERSET_OIDC_CLIENT_SECRET": "s"},
            "--oidc-redirect-base:'http://studio.example.com'isnotanhttpsURL",
        ),
        (
            ["--oidc-redirect-base", "https://studio.example.com", "--oidc-role", "g=admin"],
            {"SILVERSET_OIDC_CLIENT_SECRET": "s"},
            "--oidc-client-id:isrequiredwith--oidc-issuer",
        ),
        (
            ["--oidc-client-id", "studio", "--oidc-redirect-base", "https://studio.example.com"],
            {"SILVERSET_OIDC_CLIENT_SECRET": "s"},
            "--oidc-role:giveatleastoneVALUE=ROLE",
        ),
    ],
)
def test_serve_oidc_options_exit_2_naming_the_problem_and_never_take_the_secret_itself(
    cli, monkeypatch, tmp_path, options, env, problem
):
    monkeypatch.delenv("SILVERSET_OIDC_CLIENT_SECRET", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = cli(
        "studio",
        "serve",
        "--workdir",
        str(tmp_path),
        "--host",
        "0.0.0.0",
        "--oidc-issuer",
        "https://idp.example.com/realms/x",
        *options,
    )
    assert result.code == 2 and problem in result.flat_err, result.err
    assert "hunter2" not in result.err and "Traceback" not in result.err
    assert not (tmp_path / "studio").exists()  # refused before touching the workdir


def test_a_studio_behind_oidc_answers_its_redirect_base_host_by_default():
    from silverset.components.studio.oidc import OidcConfig, OidcSignIn
    from silverset.pipelines.cli.studio import default_allowed_hosts

    oidc = OidcSignIn(
        OidcConfig(
            issuer="https://idp.example.com",
            client_id="c",
            client_secret="s",
            redirect_base_url="https://studio.example.com:8443/",
            role_map={"g": "admin"},
        )
    )
    hosts = default_allowed_hosts("0.0.0.0", loopback=False, oidc=oidc)
    assert "studio.example.com" in hosts and "0.0.0.0" not in hosts and "localhost" in hosts
    assert default_allowed_hosts("studio.lan", loopback=False, oidc=None)[-1] == "studio.lan"
