"""The studio as a shared service on a real database: concurrent label edits settle with one 200 and one 409 on
SQLite and on PostgreSQL (two HTTP clients on real threads, and two `silverset studio serve` processes on one
PostgreSQL database), a writer blocked behind a committing one is refused rather than overwriting it, timestamps
are UTC on a server whose TimeZone is not, long video ids fit, replicas starting together create the tables once,
and a bad or unreachable database URL is one clear line with exit code 2."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from silverset.components.studio.app import create_app
from tests.helpers.ports import free_port, serve_app

from .conftest import bearer

KEY = "red_dominant@v1"
POSTGRES_ONLY = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


def race(requests: list) -> list[httpx.Response]:
    """Run each zero-argument request on its own thread, released together by a barrier; responses in order."""
    barrier, out = threading.Barrier(len(requests)), [None] * len(requests)

    def run(i):
        barrier.wait()
        out[i] = requests[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return out


def test_two_clients_editing_one_label_at_once_get_one_200_and_one_409(studio, users, tokens):
    """alice has the studio open on two devices; both send an edit made against the same revision, at once."""
    videos = studio.catalog.video_ids[:12]
    with (
        serve_app(create_app(studio, users=users)) as url,
        httpx.Client(base_url=url, headers=bearer(tokens, "alice")) as laptop,
        httpx.Client(base_url=url, headers=bearer(tokens, "alice")) as tablet,
    ):
        assert (
            laptop.post("/api/attributes", json={"example": "red_dominant"}, headers=bearer(tokens, "root")).status_code
            == 201
        )
        winners = {}
        for round_, video_id in enumerate(videos):
            creating = round_ % 3 == 0  # every third round races to create the label, the rest to change it
            if not creating:
                first = laptop.post(f"/api/attributes/{KEY}/labels", json={"video_id": video_id, "label": "skip"})
                assert first.status_code == 200 and first.json()["label"]["revision"] == 1
            expected = 0 if creating else 1
            edit = {"video_id": video_id, "expected_revision": expected}
            answers = race(
                [
                    lambda c=c, v=v, e=edit: c.post(f"/api/attributes/{KEY}/labels", json={**e, "label": v})
                    for c, v in ((laptop, "positive"), (tablet, "negative"))
                ]
            )
            assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
            won = next(a for a in answers if a.status_code == 200).json()["label"]
            assert won["revision"] == expected + 1
            winners[video_id] = (won["label"], 1 if creating else 2)
        labels = {
            lab["video_id"]: (lab["label"], lab["revision"])
            for lab in laptop.get(f"/api/attributes/{KEY}/labels").json()
        }
        assert labels == winners  # the loser's value was never written
        audit = laptop.get(f"/api/attributes/{KEY}/audit").json()
        assert len(audit) == sum(revision for _, revision in winners.values())  # one audit row per applied edit
        assert [a["new"] for a in audit if a["old"] is not None] == [
            winners[v][0] for v in videos if winners[v][1] == 2
        ]


def test_two_adjudicators_settling_one_video_at_once_get_one_200_and_one_409(studio, users, tokens):
    """Adjudications race too: to create the first one and to change it; the loser is told, nothing is lost."""
    videos = studio.catalog.video_ids[20:28]
    with (
        serve_app(create_app(studio, users=users)) as url,
        httpx.Client(base_url=url, headers=bearer(tokens, "dana")) as dana,
        httpx.Client(base_url=url, headers=bearer(tokens, "root")) as root,
    ):
        assert root.post("/api/attributes", json={"example": "red_dominant"}).status_code == 201
        path = f"/api/attributes/{KEY}/adjudications"
        for round_, video_id in enumerate(videos):
            if round_ % 2:  # odd rounds change an existing adjudication
                assert dana.post(path, json={"video_id": video_id, "label": "positive"}).status_code == 200
            answers = race(
                [
                    lambda c=c, v=v, i=video_id: c.post(path, json={"video_id": i, "label": v})
                    for c, v in ((dana, "negative"), (root, "positive"))
                ]
            )
            codes = sorted(a.status_code for a in answers)
            assert codes in ([200, 200], [200, 409]), [a.text for a in answers]  # serialised, or one refused
        audit = [a for a in root.get(f"/api/attributes/{KEY}/audit").json() if a["action"] == "adjudicate"]
        for video_id in videos:
            chain = [(a["old"], a["new"]) for a in audit if a["video_id"] == video_id]
            assert all(old == chain[i - 1][1] for i, (old, _) in enumerate(chain) if i), chain  # no lost update
            assert chain[0][0] is None


@POSTGRES_ONLY
def test_a_writer_blocked_behind_a_committing_edit_gets_409_not_an_overwrite(studio, db_url):
    """The exact race on PostgreSQL (READ COMMITTED): the studio reads revision 1 while another transaction holds
    the row with revision 2 uncommitted; its compare-and-set waits on the row lock, then finds revision 2."""
    from sqlalchemy import create_engine, text

    from silverset.components.studio.service import Conflict

    studio.create_attribute(spec_yaml=_spec_text())
    video_id = studio.catalog.video_ids[0]
    studio.set_label(KEY, video_id=video_id, value="skip", labeler="alice")
    other = create_engine(db_url)
    try:
        with other.connect() as rival, other.connect() as observer:
            rival.execute(
                text("UPDATE labels SET value = 'negative', revision = 2 WHERE video_id = :v"), {"v": video_id}
            )
            outcome = {}

            def stale_edit():
                try:
                    outcome["label"] = studio.set_label(
                        KEY, video_id=video_id, value="positive", labeler="alice", expected_revision=1
                    )
                except Conflict as exc:
                    outcome["conflict"] = str(exc)

            writer = threading.Thread(target=stale_edit)
            writer.start()
            deadline = time.monotonic() + 20
            while not observer.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database()"
                )
            ).scalar():
                assert writer.is_alive() and time.monotonic() < deadline, f"the studio did not wait: {outcome}"
                time.sleep(0.02)
            rival.commit()
            writer.join(timeout=20)
    finally:
        other.dispose()
    assert "changed concurrently" in outcome.get("conflict", ""), outcome
    assert [(lab["label"], lab["revision"]) for lab in studio.labels(KEY)] == [("negative", 2)]
    assert [a["new"] for a in studio.audit(KEY)] == ["skip"]  # nothing recorded for the refused edit


def test_timestamps_are_utc_even_on_a_server_in_another_timezone(studio):
    """The test server runs in Asia/Kolkata (+05:30): a naive timestamp column would come back 5.5 hours off."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from silverset.components.studio.models import AuditRow, LabelRow

    studio.create_attribute(spec_yaml=_spec_text())
    before = datetime.now(timezone.utc)
    label = studio.set_label(KEY, video_id=studio.catalog.video_ids[0], value="positive", labeler="bob")
    after = datetime.now(timezone.utc)
    slack = timedelta(seconds=1)
    for stamp in (label["updated_at"], studio.audit(KEY)[0]["at"]):
        at = datetime.fromisoformat(stamp)
        assert at.utcoffset() == timedelta(0) and before - slack <= at <= after + slack, (stamp, before, after)
    with Session(studio.engine) as session:
        for at in (session.scalar(select(LabelRow.updated_at)), session.scalar(select(AuditRow.at))):
            assert at.tzinfo is not None and at.utcoffset() == timedelta(0) and before - slack <= at <= after + slack


def test_a_video_id_longer_than_256_characters_is_stored_whole(db_url):
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from silverset.components.studio.models import AttributeRow, LabelRow, make_engine

    engine = make_engine(db_url)
    long_id = "gs://bucket/" + "deeply/nested/folder/" * 20 + "clip.mp4"
    assert len(long_id) > 256
    try:
        with Session(engine) as session:
            attribute = AttributeRow(name="a", version=1, title="A", spec_yaml="", content_hash="h", bandit_state="{}")
            session.add(attribute)
            session.flush()
            session.add(
                LabelRow(attribute_id=attribute.id, video_id=long_id, labeler="bob", value="positive", source="manual")
            )
            session.commit()
            assert session.scalar(select(LabelRow.video_id)) == long_id
    finally:
        engine.dispose()


def test_studio_replicas_starting_together_on_a_fresh_database_all_start(postgres_server):
    from sqlalchemy import inspect

    from silverset.components.studio.models import Base, make_engine

    db_url = postgres_server.create_database()  # without tables: a lent database has them already
    engines, errors = [], []

    def start():
        try:
            engines.append(make_engine(db_url))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(repr(exc))

    race([start] * 6)
    try:
        assert errors == [] and len(engines) == 6
        assert set(inspect(engines[0]).get_table_names()) == set(Base.metadata.tables)
    finally:
        for engine in engines:
            engine.dispose()
        postgres_server.drop_database(db_url)


def test_a_nul_character_is_a_404_or_a_422_on_both_backends_never_a_500(studio, users, tokens):
    """PostgreSQL text cannot hold U+0000 (SQLite can): a key asking for one finds nothing, a title carrying one
    (a YAML "\\0" escape) is refused before anything is written."""
    import re

    from fastapi.testclient import TestClient

    with TestClient(
        create_app(studio, users=users),
        base_url="http://localhost",
        headers=bearer(tokens, "root"),
        raise_server_exceptions=False,
    ) as client:
        assert client.post("/api/attributes", json={"example": "red_dominant"}).status_code == 201
        assert client.get("/api/attributes/red%00dominant@v1").status_code == 404
        spec = re.sub(r"(?m)^title: .*$", lambda _: 'title: "Red' + chr(92) + '0 dominant"', _spec_text())
        spec = spec.replace("version: 1", "version: 2", 1)
        refused = client.post("/api/attributes", json={"spec_yaml": spec})
        assert refused.status_code == 422 and "attributes.title" in refused.json()["detail"], refused.text
        assert [a["key"] for a in client.get("/api/attributes").json()] == [KEY]


def _spec_text() -> str:
    from silverset.components.common.spec import example_specs_dir

    return (example_specs_dir() / "red_dominant.yaml").read_text()


# ---- `silverset studio serve --db postgresql+psycopg://...` -------------------------------------------------------
def _serve(workdir: Path, db_url: str, port: int, log: Path) -> subprocess.Popen:
    command = [
        str(Path(sys.executable).parent / "silverset"),
        "studio",
        "serve",
        "--workdir",
        str(workdir),
        "--db",
        db_url,
        "--port",
        str(port),
        "--no-text-search",
        "--user",
        "alice",
    ]
    return subprocess.Popen(
        command, stdout=log.open("wb"), stderr=subprocess.STDOUT, env={**os.environ, "COLUMNS": "200"}
    )


def _wait_ready(url: str, process: subprocess.Popen, log: Path, *, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/api/me", timeout=5).status_code == 200:
                return
        assert process.poll() is None and time.monotonic() < deadline, f"studio serve did not start: {log.read_text()}"
        time.sleep(0.3)


@POSTGRES_ONLY
@pytest.mark.slow
def test_two_studio_serve_processes_on_one_postgres_database_share_labels_and_settle_races(db_url, workdir, tmp_path):
    import shutil

    shutil.copytree(workdir, tmp_path / "w")  # serve writes W/studio and W/golden
    ports = [free_port(), free_port()]
    logs = [tmp_path / f"serve-{i}.log" for i in range(2)]
    processes = [_serve(tmp_path / "w", db_url, port, log) for port, log in zip(ports, logs, strict=True)]
    try:
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        for url, process, log in zip(urls, processes, logs, strict=True):
            _wait_ready(url, process, log)
        one, two = (httpx.Client(base_url=url, timeout=30) for url in urls)
        with one, two:
            assert one.post("/api/attributes", json={"example": "red_dominant"}).status_code == 201
            assert [a["key"] for a in two.get("/api/attributes").json()] == [KEY]  # the other replica sees it
            video_id = "vid0005"
            labels = f"/api/attributes/{KEY}/labels"
            assert one.post(labels, json={"video_id": video_id, "label": "skip"}).status_code == 200
            edit = {"video_id": video_id, "expected_revision": 1}
            answers = race(
                [
                    lambda c=c, v=v: c.post(labels, json={**edit, "label": v})
                    for c, v in ((one, "positive"), (two, "negative"))
                ]
            )
            assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
            won = next(a for a in answers if a.status_code == 200).json()["label"]["label"]
            for client in (one, two):
                assert [
                    (lab["label"], lab["revision"]) for lab in client.get(f"/api/attributes/{KEY}/labels").json()
                ] == [(won, 2)]
    finally:
        for process in processes:
            process.send_signal(signal.SIGINT)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
    assert "postgresql+psycopg://silverset:***@127.0.0.1" in logs[0].read_text()  # the URL is shown, its password not
    assert db_url.split(":")[2].split("@")[0] not in logs[0].read_text() + logs[1].read_text()


def test_cli_export_then_import_round_trip_through_the_database_url(
    cli,
    monkeypatch,
    studio,
    db_url,
    workdir,  # noqa: F811
    users_file,
    tmp_path,
):
    """`silverset studio export/import --db URL` on both backends: the export holds the labels, importing it back
    changes nothing, and both are audited under the token holder."""
    from silverset.components.common import tables

    studio.create_attribute(spec_yaml=_spec_text())
    truth = {v: "positive" if i % 2 else "negative" for i, v in enumerate(studio.catalog.video_ids[:6])}
    for video_id, value in truth.items():
        studio.set_label(KEY, video_id=video_id, value=value, labeler="alice")
    path, tokens = users_file
    common = ("--workdir", str(workdir), "--db", db_url, "--users", str(path))
    monkeypatch.setenv("SILVERSET_STUDIO_TOKEN", tokens["dana"])
    exported = cli("studio", "export", KEY, "--out", str(tmp_path / "g"), *common)
    assert exported.code == 0, exported.err
    golden = tables.read_table(tmp_path / "g" / "golden.parquet").to_pylist()
    assert {r["video_id"]: r["label"] for r in golden} == {v: int(value == "positive") for v, value in truth.items()}
    monkeypatch.setenv("SILVERSET_STUDIO_TOKEN", tokens["root"])
    imported = cli("studio", "import", KEY, str(tmp_path / "g" / "golden.parquet"), *common)
    assert imported.code == 0, imported.err
    assert [(lab["label"], lab["revision"]) for lab in studio.labels(KEY)] == [(truth[v], 1) for v in truth]
    whole_set = [(a["actor"], a["action"], a["new"]) for a in studio.audit(KEY) if a["video_id"] == "*"]
    assert whole_set == [("dana", "export", "6 rows"), ("root", "import", "0 rows")]


@pytest.mark.parametrize(
    "db, problem",
    [
        ("not a url", "studio database URL: not a SQLAlchemy URL"),
        ("mysql+nosuchdriver://u:p@127.0.0.1/x", "no driver for it is installed"),
    ],
)
def test_a_database_url_that_does_not_parse_or_has_no_driver_exits_2_naming_it(cli, workdir, db, problem):  # noqa: F811
    result = cli(
        "studio", "serve", "--workdir", str(workdir), "--db", db, "--no-text-search", "--port", str(free_port())
    )
    assert result.code == 2 and _squeezed(problem) in _squeezed(result.err), result.err  # rich wraps the line


def test_a_postgres_server_refusing_the_password_exits_2_naming_the_url_without_the_password(
    cli, workdir, postgres_server
):  # noqa: F811 - the imported fixture
    db = postgres_server.url("postgres").replace(postgres_server.password, "not-the-password")
    result = cli(
        "studio", "serve", "--workdir", str(workdir), "--db", db, "--no-text-search", "--port", str(free_port())
    )
    assert result.code == 2, (result.out, result.err)
    shown = f"studio database 'postgresql+psycopg://silverset:***@127.0.0.1:{postgres_server.port}/postgres'"
    assert _squeezed(shown) in _squeezed(result.err), result.err
    assert _squeezed("password authentication failed") in _squeezed(result.err)
    assert "not-the-password" not in _squeezed(result.out + result.err)


def _squeezed(text: str) -> str:
    return "".join(text.split())
