"""submit / schedule / runs drive the real kfp.Client into a loopback fake of the KFP v2beta1 API."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fakes.kfp_api_server import FakeKfpApiServer  # noqa: E402

from silverset.components.common.errors import SilversetInputError
from silverset.pipelines import cluster
from silverset.pipelines.compile import compile_pipeline


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    return compile_pipeline(tmp_path_factory.mktemp("pkg") / "pipeline.yaml")


@pytest.fixture()
def kfp_api():
    with FakeKfpApiServer() as server:
        yield server


PARAMS = {"attribute_spec": "/data/specs/red_dominant.yaml", "manifest": "/data/manifest.parquet",
          "workdir": "/data/red", "state_dir": "/data/red/state"}


def test_submit_creates_experiment_and_a_run_with_the_compiled_spec(kfp_api, package):
    run = cluster.submit(host=kfp_api.host, package=package, params=PARAMS, experiment="silverset-red")
    stored = kfp_api.runs[run.run_id]
    assert kfp_api.experiments[run.experiment_id]["display_name"] == "silverset-red"
    assert stored["runtime_config"]["parameters"] == PARAMS
    spec = stored["pipeline_spec"]
    spec = spec.get("pipeline_spec", spec)
    assert spec["pipelineInfo"]["name"] == "attribute-promotion"
    # the same experiment is reused by the next submit
    again = cluster.submit(host=kfp_api.host, package=package, params=PARAMS, experiment="silverset-red")
    assert again.experiment_id == run.experiment_id and len(kfp_api.experiments) == 1
    rows = cluster.list_runs(host=kfp_api.host, experiment="silverset-red")
    assert {r.run_id for r in rows} == {run.run_id, again.run_id}


def test_schedule_never_overlaps_and_does_not_backfill(kfp_api, package):
    job = cluster.schedule(host=kfp_api.host, package=package, params=PARAMS, cron="0 3 * * *", name="red-nightly")
    stored = kfp_api.recurring_runs[job.recurring_run_id]
    assert stored["trigger"]["cron_schedule"]["cron"] == "0 0 3 * * *"  # seconds field added for robfig/cron
    assert stored["max_concurrency"] == "1" and stored["no_catchup"] is True
    assert stored["runtime_config"]["parameters"]["workdir"] == "/data/red"
    assert job.max_concurrency == 1 and job.no_catchup


def test_unknown_parameter_is_refused_by_the_server(kfp_api, package):
    import kfp_server_api

    with pytest.raises(kfp_server_api.ApiException, match="unknown pipeline parameter"):
        cluster.submit(host=kfp_api.host, package=package, params={**PARAMS, "wrokdir": "/x"})


def test_bad_inputs_name_the_flag(tmp_path, package):
    with pytest.raises(SilversetInputError, match="--param"):
        cluster.parse_params(["novalue"])
    with pytest.raises(SilversetInputError, match="--cron"):
        cluster.schedule(host="http://127.0.0.1:9", package=package, params={}, cron="daily", name="x")
    with pytest.raises(SilversetInputError, match="compile"):
        cluster.submit(host="http://127.0.0.1:9", package=tmp_path / "missing.yaml", params={})
