"""The index server runs an A/B test: arms by the experiment's hash, control never served, every request logged."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading

import httpx
import numpy as np
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from silverset.components.abtest.affinity import AffinityModel
from silverset.components.abtest.experiment import assign, create_experiment, load_experiment
from silverset.components.abtest.exposure import exposure_files, read_exposures
from silverset.components.common.errors import SilversetInputError
from silverset.components.common.spec import load_spec
from silverset.components.index.build import MANIFEST_FILE
from silverset.components.index.server import ServerOptions, create_app
from tests.helpers.cli import run_silverset
from tests.helpers.indexes import build_tiny_index
from tests.helpers.ports import free_port, serve_app, wait_ready

URL = "/v1/attributes/red_dominant/search"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    import yaml

    from silverset.components.common.spec import example_specs_dir

    folder = tmp_path_factory.mktemp("experiment")
    data = yaml.safe_load((example_specs_dir() / "red_dominant.yaml").read_text())
    data["serving"]["recall_target"] = 0.9
    spec_path = folder / "red_dominant.yaml"
    spec_path.write_text(yaml.safe_dump(data))
    out, vectors, ids, summary = build_tiny_index(folder, spec_path)
    config = create_experiment(spec=load_spec(spec_path), salt="ab-1", treatment_share=0.3, out_dir=folder / "exp")
    return out, vectors, ids, folder / "exp" / "experiment.json", config, spec_path


def _options(experiment, log_dir, **extra) -> ServerOptions:
    return ServerOptions(experiment=str(experiment), exposure_log=str(log_dir), tune_leaves=False, **extra)


def test_arms_follow_the_experiment_and_control_is_never_served_but_logged(tiny, tmp_path):
    out, vectors, ids, experiment, config, _ = tiny
    fan = [ids[0], ids[2], ids[3]]  # 2/3 of the history in the vocabulary: triggers under the rule (0.3)
    users = [f"user-{i}" for i in range(400)]
    with TestClient(create_app(out, _options(experiment, tmp_path / "log"))) as client:
        bodies = [client.post(URL, json={"user_id": u, "history": fan, "k": 5}).json() for u in users]
        metrics = client.get("/metrics").text
        readiness = client.get("/readyz").json()
    assert (
        readiness["experiment"]["serving_attribute_version"]
        == readiness["experiment"]["attribute_version"]
        == config.attribute_version
    )
    expected = np.where(assign(users, salt="ab-1", treatment_share=0.3), "treatment", "control")
    assert [b["arm"] for b in bodies] == expected.tolist()
    assert all(b["triggered"] for b in bodies)
    control = [b for b in bodies if b["arm"] == "control"]
    treatment = [b for b in bodies if b["arm"] == "treatment"]
    assert control and all(b["results"] == [] and b["served"] is False for b in control)
    assert treatment and all(len(b["results"]) == 5 and b["served"] is True for b in treatment)
    # The share lands inside the binomial 99.9% interval around the configured 30%.
    share = len(treatment) / len(users)
    assert abs(share - 0.3) <= 3.29 * math.sqrt(0.3 * 0.7 / len(users))

    log = read_exposures(tmp_path / "log").to_pandas()  # the TestClient's exit flushed the log
    assert len(log) == len(users) and log["request_id"].is_unique
    assert (log["user_id"].tolist(), log["arm"].tolist()) == (users, expected.tolist())
    assert log.loc[log["arm"] == "control", "served"].eq(False).all() and log["triggered"].all()
    assert log.loc[log["arm"] == "treatment", "served"].all()
    assert set(log["trigger_source"]) == {"rule"} and log["affinity"].tolist() == pytest.approx([2 / 3] * len(users))
    assert set(log["experiment_id"]) == {config.experiment_id} and set(log["attribute_version"]) == {
        config.attribute_version
    }
    assert f'arm="control",attribute="red_dominant",served="false",triggered="true"}} {len(control)}.0' in metrics
    assert f'arm="treatment",attribute="red_dominant",served="true",triggered="true"}} {len(treatment)}.0' in metrics


def test_untriggered_users_are_logged_in_both_arms_and_served_nothing(tiny, tmp_path):
    out, _, ids, experiment, _, _ = tiny
    stranger = [ids[1], ids[3], ids[5]]  # no history video in the vocabulary: affinity 0
    with TestClient(create_app(out, _options(experiment, tmp_path / "log"))) as client:
        bodies = [client.post(URL, json={"user_id": f"u{i}", "history": stranger}).json() for i in range(40)]
    assert {b["arm"] for b in bodies} == {"control", "treatment"}
    assert all(b["triggered"] is False and b["results"] == [] and b["served"] is False for b in bodies)
    log = read_exposures(tmp_path / "log")
    assert log.num_rows == 40 and not any(log.column("triggered").to_pylist())


def test_same_user_same_arm_across_restarts_processes_and_abtest_create(tiny, tmp_path):
    out, _, ids, experiment, _, spec_path = tiny
    users = [f"user-{i}" for i in range(300)]

    def arms_from_a_fresh_server() -> list[str]:
        with TestClient(create_app(out, _options(experiment, tmp_path / "log"))) as client:
            return [client.post(URL, json={"user_id": u, "history": [ids[0]]}).json()["arm"] for u in users]

    first, second = arms_from_a_fresh_server(), arms_from_a_fresh_server()
    # Another interpreter with a different string-hash seed computes the same arms.
    code = (
        f"from silverset.components.abtest.experiment import load_experiment; import json; "
        f"c = load_experiment({str(experiment)!r}); print(json.dumps([c.arm_of(u) for u in {users!r}]))"
    )
    other = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345", "PATH": "/usr/bin:/bin"},
    )
    # `silverset abtest create --users` writes the same arms for the same salt.
    from typer.testing import CliRunner

    from silverset.pipelines.cli import app

    users_csv = tmp_path / "users.csv"
    users_csv.write_text("user_id\n" + "\n".join(users) + "\n")
    result = CliRunner().invoke(
        app,
        [
            "abtest",
            "create",
            "--attribute",
            str(spec_path),
            "--salt",
            "ab-1",
            "--treatment-share",
            "0.3",
            "--out",
            str(tmp_path / "created"),
            "--users",
            str(users_csv),
        ],
    )
    assert result.exit_code == 0, result.output
    created = pq.read_table(tmp_path / "created" / "assignments.parquet").to_pydict()
    assert first == second == json.loads(other.stdout) == created["arm"]
    assert created["user_id"] == users


def test_missing_user_id_is_a_422_naming_it_and_nothing_is_logged(tiny, tmp_path):
    out, _, ids, experiment, _, _ = tiny
    with TestClient(create_app(out, _options(experiment, tmp_path / "log"))) as client:
        r = client.post(URL, json={"history": [ids[0]]})
        assert r.status_code == 422 and r.json()["detail"].startswith("user_id: required while experiment")
        r = client.post(URL, json={"user_id": "", "history": [ids[0]]})
        assert r.status_code == 422 and "user_id" in r.json()["detail"]
    assert read_exposures(tmp_path / "log").num_rows == 0


def test_without_an_experiment_user_id_is_optional_and_nothing_has_an_arm(tiny):
    out, _, ids, _, _, _ = tiny
    with TestClient(create_app(out, ServerOptions(tune_leaves=False))) as client:
        body = client.post(URL, json={"history": [ids[0], ids[2]]}).json()
    assert body["served"] is True and "arm" not in body and len(body["results"]) > 0


def test_experiment_and_exposure_log_come_together(tiny, tmp_path):
    out, _, _, experiment, _, _ = tiny
    with pytest.raises(SilversetInputError, match="--exposure-log: required with --experiment"):
        create_app(out, ServerOptions(experiment=str(experiment)))
    with pytest.raises(SilversetInputError, match="needs --experiment"):
        create_app(out, ServerOptions(exposure_log=str(tmp_path)))
    (tmp_path / "a-file").write_text("")
    with pytest.raises(SilversetInputError, match="--exposure-log .*a-file/log': cannot create the folder"):
        create_app(out, ServerOptions(experiment=str(experiment), exposure_log=str(tmp_path / "a-file" / "log")))
    with pytest.raises(SilversetInputError, match="file not found"):
        create_app(out, ServerOptions(experiment=str(tmp_path / "nope.json"), exposure_log=str(tmp_path)))


def test_log_rotates_without_loss_under_concurrent_requests(tiny, tmp_path):
    """4 clients x 60 requests over real HTTP -> exactly 240 rows in several finalized files, read while written."""
    out, _, ids, experiment, _, _ = tiny
    clients, per_client = 4, 60
    app = create_app(out, _options(experiment, tmp_path / "log", exposure_max_rows=25, exposure_max_seconds=0.05))
    reads, read_errors, failures = [], [], []
    done = threading.Event()

    def reader():
        while not done.is_set():
            try:
                reads.append(read_exposures(tmp_path / "log").num_rows)
            except Exception as exc:  # a partial file would surface here
                read_errors.append(repr(exc))

    with serve_app(app) as url:

        def client(c: int):
            with httpx.Client(base_url=url, timeout=10) as http:
                for i in range(per_client):
                    r = http.post(
                        URL,
                        json={"user_id": f"c{c}-u{i}", "history": [ids[0], ids[2]]},
                        headers={"X-Request-ID": f"req-{c}-{i}"},
                    )
                    if r.status_code != 200 or r.json()["request_id"] != f"req-{c}-{i}":
                        failures.append(r.text)

        poll = threading.Thread(target=reader)
        poll.start()
        threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    done.set()
    poll.join()
    assert not failures and not read_errors
    log = read_exposures(tmp_path / "log")
    expected = {f"req-{c}-{i}" for c in range(clients) for i in range(per_client)}
    assert log.num_rows == clients * per_client and set(log.column("request_id").to_pylist()) == expected
    assert len(exposure_files(tmp_path / "log")) >= (clients * per_client) // 25
    assert reads == sorted(reads)


def _with_affinity_model(index_dir, tmp_path, model: AffinityModel | None, text: str | None = None):
    """A serving root whose one version is ``index_dir`` with a manifest naming a learned trigger saved beside the root.

    Only the manifest changes (it is outside the content digest), as `index build` writes it for a spec naming a model.
    """
    import shutil

    from silverset.components.index import pointer

    model_path = tmp_path / "affinity.json"
    if model is not None:
        model.save(model_path)
    else:
        model_path.write_text(text)
    root = tmp_path / "serving"
    version = json.loads((index_dir / MANIFEST_FILE).read_text())["version"]
    copy = pointer.version_dir(root, "red_dominant", version)
    shutil.copytree(index_dir, copy)
    manifest = json.loads((copy / MANIFEST_FILE).read_text())
    manifest["serving"]["affinity_model"] = str(model_path)
    (copy / MANIFEST_FILE).write_text(json.dumps(manifest))
    pointer.write_pointer(root, "red_dominant", version)
    return root


# Triggers on a LOW attribute share: the opposite of the rule, so the two cannot be confused.
CONTRARIAN = AffinityModel(
    coefficients=(-3.0, 0.0, 0.0, 0.0, 0.0),
    intercept=0.0,
    scaler_mean=(0.5, 0, 0, 0, 0),
    scaler_scale=(0.25, 1, 1, 1, 1),
    threshold=0.5,
)


def test_the_learned_trigger_decides_when_the_manifest_names_one_and_the_rule_otherwise(tiny, tmp_path):
    out, vectors, ids, experiment, _, _ = tiny
    low = {"history_vectors": vectors[[1, 3, 5]].tolist(), "history_probabilities": [0.1, 0.2, 0.1]}
    high = {"history_vectors": vectors[[0, 2, 4]].tolist(), "history_probabilities": [0.9, 0.8, 0.95]}
    with_model = _with_affinity_model(out, tmp_path, CONTRARIAN)
    treated = next(u for u in (f"u{i}" for i in range(100)) if load_experiment(experiment).arm_of(u) == "treatment")
    with TestClient(create_app(with_model, _options(experiment, tmp_path / "log"))) as client:
        by_model = {
            name: client.post(URL, json={"user_id": treated, **body}).json()
            for name, body in (("low", low), ("high", high))
        }
    with TestClient(create_app(out, _options(experiment, tmp_path / "log-rule"))) as client:
        by_rule = {
            name: client.post(URL, json={"user_id": treated, **body}).json()
            for name, body in (("low", low), ("high", high))
        }

    expected_low = CONTRARIAN.probability(CONTRARIAN.features(np.array([0.1, 0.2, 0.1]), 0.5))
    assert by_model["low"]["trigger_source"] == "model" and by_model["low"]["triggered"] is True
    assert by_model["low"]["affinity"] == pytest.approx(expected_low) and by_model["low"]["served"] is True
    assert by_model["high"]["triggered"] is False and by_model["high"]["results"] == []
    assert by_rule["low"]["trigger_source"] == "rule" and by_rule["low"]["triggered"] is False
    assert by_rule["high"]["triggered"] is True and by_rule["high"]["affinity"] == pytest.approx(1.0)
    assert set(read_exposures(tmp_path / "log").column("trigger_source").to_pylist()) == {"model"}


def test_a_named_but_broken_learned_trigger_refuses_the_version(tiny, tmp_path):
    out, _, _, _, _, _ = tiny
    broken = _with_affinity_model(out, tmp_path, None, text='{"format": "something else"}')
    with TestClient(create_app(broken, ServerOptions(tune_leaves=False))) as client:
        readiness = client.get("/readyz")
    assert readiness.status_code == 503
    assert "affinity_model" in json.dumps(readiness.json()["refused"])


def test_cli_refuses_an_exposure_log_without_an_experiment_in_one_line(tiny, tmp_path):
    out = tiny[0]
    result = run_silverset(
        "index", "serve", "--index-dir", str(out), "--exposure-log", str(tmp_path / "log"), cwd=tmp_path
    )
    assert result.returncode == 2
    assert (
        " ".join(result.stderr.split())
        == "error: --exposure-log: needs --experiment: exposures are logged for a running experiment"
    )
    assert "serving" not in result.stdout


@pytest.mark.slow
def test_forked_workers_each_log_and_flush_on_sigterm(tiny, tmp_path):
    """serve(workers=2): every answered request is in the log after SIGTERM, written by the workers, not the parent."""
    import http.client
    import signal

    out, _, ids, experiment, _, _ = tiny
    port = free_port()
    code = (
        "from silverset.components.index.server import serve, ServerOptions; "
        f"serve(index_dir={str(out)!r}, port={port}, workers=2, options=ServerOptions(experiment={str(experiment)!r}, "
        f"exposure_log={str(tmp_path / 'log')!r}, tune_leaves=False))"
    )
    server = subprocess.Popen([sys.executable, "-c", code])
    try:
        wait_ready(port, server)
        connections = [http.client.HTTPConnection("127.0.0.1", port, timeout=10) for _ in range(4)]
        for i in range(40):
            conn = connections[i % 4]
            conn.request(
                "POST", URL, json.dumps({"user_id": f"u{i}", "history": [ids[0]]}), {"Content-Type": "application/json"}
            )
            response = conn.getresponse()
            assert response.status == 200 and json.loads(response.read())["arm"] in ("control", "treatment")
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0
    finally:
        if server.poll() is None:
            server.kill()
    log = read_exposures(tmp_path / "log")
    assert sorted(log.column("user_id").to_pylist()) == sorted(f"u{i}" for i in range(40))
    writers = {p.name.split("-")[2] for p in exposure_files(tmp_path / "log")}
    assert str(server.pid) not in writers


def test_the_servers_own_log_feeds_abtest_status_and_analyze(tiny, tmp_path):
    """Users search the live server; outcomes follow what it actually served; status and analyze read its log."""
    import pandas as pd

    from silverset.components.abtest import analyze
    from silverset.components.abtest.status import status

    out, _, ids, experiment, config, _ = tiny
    rng = np.random.default_rng(11)
    users = [f"user-{i}" for i in range(800)]
    fan, stranger = [ids[0], ids[2], ids[4]], [ids[1], ids[3], ids[5]]
    served = {}
    with TestClient(create_app(out, _options(experiment, tmp_path / "log"))) as client:
        for i, user in enumerate(users):
            body = client.post(URL, json={"user_id": user, "history": fan if i % 2 else stranger}).json()
            served[user] = body["served"]
    base = rng.normal(10.0, 2.0, len(users))
    effect = 1.0  # minutes gained by a user the server served restricted retrieval to
    minutes = base + effect * np.array([served[u] for u in users])
    pre = base + rng.normal(0, 0.5, len(users))
    pd.DataFrame({"user_id": users, "minutes": minutes, "pre_minutes": pre}).to_parquet(tmp_path / "outcomes.parquet")

    s = status(tmp_path / "log", experiment, outcomes=tmp_path / "outcomes.parquet")
    assert s["healthy"] and s["arms"]["control"]["served_users"] == 0
    assert s["arms"]["treatment"]["triggered_share"] == pytest.approx(0.5, abs=0.1)
    triggered = s["triggered_lifts"]["minutes"]["difference_ci"]
    assert triggered["low"] <= effect <= triggered["high"] and triggered["low"] > 0

    summary = analyze.run(
        exposures=tmp_path / "log",
        outcomes=tmp_path / "outcomes.parquet",
        out_dir=tmp_path / "analysis",
        options=analyze.AnalysisOptions(treatment_share=config.treatment_share, bootstrap_samples=0),
    )
    assert summary.control_served == 0 and not summary.srm_mismatch and summary.users_analysed == len(users)
    low, high = summary.triggered_lifts["minutes"].ci
    true_relative = effect / base[[i for i in range(len(users)) if i % 2]].mean()
    assert low <= true_relative <= high


def test_a_rewritten_experiment_file_is_followed_and_a_broken_one_keeps_the_last_good(tiny, tmp_path):
    """The pipeline's experiment step rewrites experiment.json after a deploy; the running server picks it up."""
    import time

    out, _, ids, _, _, spec_path = tiny
    folder = tmp_path / "exp"
    first = create_experiment(spec=load_spec(spec_path), salt="first", treatment_share=0.3, out_dir=folder)
    users = [f"u{i}" for i in range(200)]
    options = _options(folder / "experiment.json", tmp_path / "log", poll_interval_s=0.05)

    def arms(client) -> tuple[set[str], list[str]]:
        bodies = [client.post(URL, json={"user_id": u, "history": [ids[0]]}).json() for u in users]
        return {b["experiment_id"] for b in bodies}, [b["arm"] for b in bodies]

    def wait_for(client, experiment_id: str) -> None:
        deadline = time.monotonic() + 10
        while client.get("/readyz").json()["experiment"]["experiment_id"] != experiment_id:
            assert time.monotonic() < deadline, f"server never switched to {experiment_id}"
            time.sleep(0.05)

    with TestClient(create_app(out, options)) as client:
        assert arms(client) == ({first.experiment_id}, [first.arm_of(u) for u in users])
        second = create_experiment(spec=load_spec(spec_path), salt="second", treatment_share=0.6, out_dir=folder)
        wait_for(client, second.experiment_id)
        assert arms(client) == ({second.experiment_id}, [second.arm_of(u) for u in users])
        (folder / "experiment.json").write_text('{"experiment_id": ')  # a broken rewrite
        deadline = time.monotonic() + 10
        while "problem" not in client.get("/readyz").json()["experiment"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert arms(client)[0] == {second.experiment_id}
    ids_logged = read_exposures(tmp_path / "log").column("experiment_id").to_pylist()
    assert ids_logged == [first.experiment_id] * 200 + [second.experiment_id] * 400
