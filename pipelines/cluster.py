"""Submit, schedule and list runs of the compiled pipeline on a cluster that runs Kubeflow Pipelines (kfp.Client)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from silverset.components.common.errors import SilversetInputError

DEFAULT_EXPERIMENT = "silverset"


def parse_params(pairs: list[str] | None) -> dict[str, str]:
    """``["k=v", ...]`` -> ``{"k": "v"}``; a pair without ``=`` is bad input."""
    params: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise SilversetInputError("--param", f"expected key=value, got {pair!r}")
        params[key.strip()] = value
    return params


def _client(host: str, *, namespace: str | None = None, existing_token: str | None = None):
    import kfp

    if not host.startswith(("http://", "https://")):
        raise SilversetInputError("--host", f"expected an http(s) URL of the KFP API, got {host!r}")
    kwargs = {"host": host, "existing_token": existing_token}
    if namespace:
        kwargs["namespace"] = namespace
    return kfp.Client(**kwargs)


def _check_package(package: str | Path) -> str:
    if not Path(package).is_file():
        raise SilversetInputError(f"pipeline package '{package}'", "not found; run `silverset pipeline compile` first")
    return str(package)


@dataclass(frozen=True)
class Submitted:
    run_id: str
    experiment_id: str
    url: str


def submit(*, host: str, package: str | Path, params: dict[str, str], experiment: str = DEFAULT_EXPERIMENT,
           run_name: str | None = None, pipeline_root: str | None = None, service_account: str | None = None,
           namespace: str | None = None, existing_token: str | None = None) -> Submitted:
    """One run of the compiled pipeline package (create_run_from_pipeline_package)."""
    package = _check_package(package)
    client = _client(host, namespace=namespace, existing_token=existing_token)
    result = client.create_run_from_pipeline_package(
        package, arguments=params, run_name=run_name, experiment_name=experiment,
        namespace=namespace, pipeline_root=pipeline_root, service_account=service_account)
    run = client.get_run(result.run_id)
    return Submitted(run_id=result.run_id, experiment_id=run.experiment_id, url=f"{host.rstrip('/')}/#/runs/details/{result.run_id}")


@dataclass(frozen=True)
class Scheduled:
    recurring_run_id: str
    experiment_id: str
    cron: str
    max_concurrency: int
    no_catchup: bool


def schedule(*, host: str, package: str | Path, params: dict[str, str], cron: str, name: str,
             experiment: str = DEFAULT_EXPERIMENT, max_concurrency: int = 1, no_catchup: bool = True,
             pipeline_root: str | None = None, service_account: str | None = None, namespace: str | None = None,
             existing_token: str | None = None) -> Scheduled:
    """A recurring run on a cron schedule (6 fields, seconds first, e.g. ``0 0 3 * * *`` = daily 03:00).

    ``max_concurrency=1`` keeps runs of one attribute from overlapping; ``no_catchup`` starts only the
    latest missed run after a pause rather than backfilling every interval (the incremental plan
    already covers whatever changed meanwhile).
    """
    fields = cron.split()
    if len(fields) not in (5, 6):
        raise SilversetInputError("--cron", f"expected 6 fields (sec min hour dom month dow) or 5, got {cron!r}")
    if len(fields) == 5:  # the KFP scheduler (robfig/cron) wants seconds first
        cron = "0 " + cron
    if max_concurrency < 1:
        raise SilversetInputError("--max-concurrency", f"must be >= 1, got {max_concurrency}")
    package = _check_package(package)
    client = _client(host, namespace=namespace, existing_token=existing_token)
    exp = client.create_experiment(name=experiment, namespace=namespace)
    job = client.create_recurring_run(
        experiment_id=exp.experiment_id, job_name=name, cron_expression=cron, max_concurrency=max_concurrency,
        no_catchup=no_catchup, params=params, pipeline_package_path=package,
        pipeline_root=pipeline_root, service_account=service_account)
    return Scheduled(recurring_run_id=job.recurring_run_id, experiment_id=exp.experiment_id, cron=cron,
                     max_concurrency=int(job.max_concurrency or max_concurrency), no_catchup=bool(job.no_catchup))


@dataclass(frozen=True)
class RunRow:
    run_id: str
    name: str
    state: str
    created_at: str
    recurring_run_id: str | None


def list_runs(*, host: str, experiment: str | None = None, page_size: int = 20, namespace: str | None = None,
              existing_token: str | None = None) -> list[RunRow]:
    """Most recent runs first (optionally of one experiment by name)."""
    client = _client(host, namespace=namespace, existing_token=existing_token)
    experiment_id = None
    if experiment:
        try:
            experiment_id = client.get_experiment(experiment_name=experiment, namespace=namespace).experiment_id
        except ValueError as exc:
            raise SilversetInputError("--experiment", str(exc)) from None
    response = client.list_runs(page_size=page_size, sort_by="created_at desc", experiment_id=experiment_id,
                                namespace=namespace)
    return [RunRow(run_id=r.run_id, name=r.display_name, state=str(r.state or ""), created_at=str(r.created_at or ""),
                   recurring_run_id=r.recurring_run_id) for r in (response.runs or [])]
