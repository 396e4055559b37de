"""Submit, schedule and list runs of the compiled pipeline on a cluster that runs Kubeflow Pipelines (kfp.Client).

Parameters are checked against the compiled package before anything is sent: an unknown name or a missing
required one is a SilversetInputError listing the valid ones, and store URIs (``approval_store``,
``run_lock``) must be ``kubernetes://NAMESPACE`` or ``sqlite:///PATH`` (the lock also takes a path or URI).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from silverset.components.common.artifacts import RUN_SUMMARY_FILE, RunSummary, read_run_summary
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


def pipeline_inputs(package: str | Path) -> dict[str, dict]:
    """The compiled package's pipeline parameters: name -> {"type", "required", "default"}."""
    spec = next(yaml.safe_load_all(Path(package).read_text()))
    declared = spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {})
    return {
        name: {
            "type": d.get("parameterType", ""),
            "required": not d.get("isOptional", False),
            "default": d.get("defaultValue"),
        }
        for name, d in declared.items()
    }


def check_store_uri(name: str, value: str, *, allow_path: bool = False) -> None:
    """``kubernetes://NAMESPACE`` or ``sqlite:///PATH`` (and, with ``allow_path``, a folder path or URI)."""
    from silverset.components.approval.store import parse_store_uri

    if (
        allow_path
        and value
        and not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:(?!//)", value)
        and not value.startswith(("kubernetes:", "sqlite:"))
    ):
        return  # the run lock in a folder: a path, or an fsspec URI such as s3://bucket/state
    if not value.startswith(("kubernetes://", "sqlite:///")):
        raise SilversetInputError(
            f"--param {name}",
            f"{value!r} is not a store URI; use kubernetes://NAMESPACE or "
            "sqlite:///PATH" + (" or a folder path/URI" if allow_path else ""),
        )
    try:
        parse_store_uri(value)
    except SilversetInputError as exc:
        raise SilversetInputError(f"--param {name}", exc.problem) from None


STORE_PARAMS = {"approval_store": False, "run_lock": True}  # parameter -> whether a plain path or URI is allowed


# compiled parameterType or component-spec type -> how a command-line string becomes that type
_CASTS = {
    "NUMBER_INTEGER": int,
    "Integer": int,
    "NUMBER_DOUBLE": float,
    "Float": float,
    "BOOLEAN": lambda v: {"true": True, "false": False}[v.lower()],
    "Boolean": lambda v: {"true": True, "false": False}[v.lower()],
}


def typed_params(params: dict, inputs: dict[str, dict]) -> dict:
    """Command-line values (strings) as the types the pipeline declares; a bad value names its parameter."""
    typed = {}
    for name, value in params.items():
        cast = _CASTS.get(str(inputs.get(name, {}).get("type", "")))
        if cast is None or not isinstance(value, str):
            typed[name] = value
            continue
        try:
            typed[name] = cast(value)
        except (ValueError, KeyError):
            kind = {int: "an integer", float: "a number"}.get(cast, "true or false")
            raise SilversetInputError(f"--param {name}", f"{value!r} is not {kind}") from None
    share = typed.get("experiment_treatment_share", 0.0)
    if not (share == 0 or 0 < share < 1):  # refused before the run, not by its last step after the deploy
        raise SilversetInputError(
            "--param experiment_treatment_share", f"must be 0 (no experiment) or strictly between 0 and 1, got {share}"
        )
    return typed


def check_params(params: dict, inputs: dict[str, dict], *, where: str = "--param") -> None:
    """Refuse unknown and missing required pipeline parameters (naming the valid ones) and bad store URIs."""
    unknown = sorted(set(params) - set(inputs))
    if unknown:
        raise SilversetInputError(
            where, f"unknown pipeline parameter(s) {', '.join(unknown)}; valid: {', '.join(sorted(inputs))}"
        )
    missing = sorted(n for n, d in inputs.items() if d["required"] and n not in params)
    if missing:
        raise SilversetInputError(
            where, f"missing required pipeline parameter(s) {', '.join(missing)} (set each with --param NAME=VALUE)"
        )
    for name, allow_path in STORE_PARAMS.items():
        if name in params and (params[name] or not allow_path):
            check_store_uri(name, str(params[name]), allow_path=allow_path)


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


def submit(
    *,
    host: str,
    package: str | Path,
    params: dict[str, str],
    experiment: str = DEFAULT_EXPERIMENT,
    run_name: str | None = None,
    pipeline_root: str | None = None,
    service_account: str | None = None,
    namespace: str | None = None,
    existing_token: str | None = None,
) -> Submitted:
    """One run of the compiled pipeline package (create_run_from_pipeline_package)."""
    package = _check_package(package)
    inputs = pipeline_inputs(package)
    check_params(params, inputs)
    params = typed_params(params, inputs)
    client = _client(host, namespace=namespace, existing_token=existing_token)
    result = client.create_run_from_pipeline_package(
        package,
        arguments=params,
        run_name=run_name,
        experiment_name=experiment,
        namespace=namespace,
        pipeline_root=pipeline_root,
        service_account=service_account,
    )
    run = client.get_run(result.run_id)
    return Submitted(
        run_id=result.run_id, experiment_id=run.experiment_id, url=f"{host.rstrip('/')}/#/runs/details/{result.run_id}"
    )


@dataclass(frozen=True)
class Scheduled:
    recurring_run_id: str
    experiment_id: str
    cron: str
    max_concurrency: int
    no_catchup: bool
    created: bool = True  # False: a recurring run of this name already existed with these settings


def _find_recurring_run(client, *, experiment_id: str, name: str, namespace: str | None):
    name_filter = json.dumps({"predicates": [{"operation": "EQUALS", "key": "display_name", "stringValue": name}]})
    found = client.list_recurring_runs(
        experiment_id=experiment_id, namespace=namespace, filter=name_filter, page_size=100
    )
    return [j for j in (found.recurring_runs or []) if j.display_name == name]


def _same_schedule(job, *, cron: str, params: dict, max_concurrency: int, no_catchup: bool) -> bool:
    trigger = job.trigger.cron_schedule.cron if job.trigger and job.trigger.cron_schedule else None
    given = {k: v for k, v in ((job.runtime_config.parameters if job.runtime_config else None) or {}).items()}
    return (
        trigger == cron
        and int(job.max_concurrency or 1) == max_concurrency
        and bool(job.no_catchup) == no_catchup
        and given == params
    )


def schedule(
    *,
    host: str,
    package: str | Path,
    params: dict[str, str],
    cron: str,
    name: str,
    experiment: str = DEFAULT_EXPERIMENT,
    max_concurrency: int = 1,
    no_catchup: bool = True,
    pipeline_root: str | None = None,
    service_account: str | None = None,
    namespace: str | None = None,
    existing_token: str | None = None,
    replace: bool = False,
) -> Scheduled:
    """A recurring run on a cron schedule (6 fields, seconds first, e.g. ``0 0 3 * * *`` = daily 03:00).

    ``max_concurrency=1`` keeps runs of one attribute from overlapping; ``no_catchup`` starts only the
    latest missed run after a pause rather than backfilling every interval (the incremental plan
    already covers whatever changed meanwhile). Idempotent by ``name`` within the experiment: the same
    settings again report the existing recurring run (``created=False``); different settings are refused
    unless ``replace`` (the old recurring run is deleted, then the new one created).
    """
    fields = cron.split()
    if len(fields) not in (5, 6):
        raise SilversetInputError("--cron", f"expected 6 fields (sec min hour dom month dow) or 5, got {cron!r}")
    if len(fields) == 5:  # the KFP scheduler (robfig/cron) wants seconds first
        cron = "0 " + cron
    if max_concurrency < 1:
        raise SilversetInputError("--max-concurrency", f"must be >= 1, got {max_concurrency}")
    package = _check_package(package)
    inputs = pipeline_inputs(package)
    check_params(params, inputs)
    params = typed_params(params, inputs)
    client = _client(host, namespace=namespace, existing_token=existing_token)
    exp = client.create_experiment(name=experiment, namespace=namespace)
    for job in _find_recurring_run(client, experiment_id=exp.experiment_id, name=name, namespace=namespace):
        if not replace:
            if not _same_schedule(
                job, cron=cron, params=params, max_concurrency=max_concurrency, no_catchup=no_catchup
            ):
                raise SilversetInputError(
                    "--name",
                    f"recurring run {name!r} ({job.recurring_run_id}) already exists "
                    "with other settings; pass --replace to replace it",
                )
            return Scheduled(
                recurring_run_id=job.recurring_run_id,
                experiment_id=exp.experiment_id,
                cron=cron,
                max_concurrency=int(job.max_concurrency or max_concurrency),
                no_catchup=bool(job.no_catchup),
                created=False,
            )
        client.delete_recurring_run(job.recurring_run_id)
    job = client.create_recurring_run(
        experiment_id=exp.experiment_id,
        job_name=name,
        cron_expression=cron,
        max_concurrency=max_concurrency,
        no_catchup=no_catchup,
        params=params,
        pipeline_package_path=package,
        pipeline_root=pipeline_root,
        service_account=service_account,
    )
    return Scheduled(
        recurring_run_id=job.recurring_run_id,
        experiment_id=exp.experiment_id,
        cron=cron,
        max_concurrency=int(job.max_concurrency or max_concurrency),
        no_catchup=bool(job.no_catchup),
    )


# display names of the steps that tell a run's promotion outcome (pipelines/attribute_promotion.py)
STOP_STEPS = {
    "stop-teacher-gate": "teacher gate failed",
    "stop-student-gate": "student gate failed",
    "stop-approval": "not approved",
}
OUTCOME_STEPS = {"deploy-index": "deploy failed", "plan-incremental": "plan failed (or locked by another run)"}


def promotion_outcome(state: str, task_details) -> str:
    """What a run did to the promotion, from its task details (display_name, state) as KFP reports them."""
    tasks = {t.display_name: str(t.state or "") for t in (task_details or []) if t.display_name}
    for step, outcome in STOP_STEPS.items():
        if tasks.get(step) in ("FAILED", "SUCCEEDED"):  # the stop step ran: its branch was taken
            return outcome
    for step, outcome in OUTCOME_STEPS.items():
        if tasks.get(step) == "FAILED":
            return outcome
    if tasks.get("commit-promoted-state") == "SUCCEEDED":
        return "promoted"
    if tasks.get("plan-incremental") == "SUCCEEDED" and "frames" not in tasks and state == "SUCCEEDED":
        return "nothing new"
    return {"SUCCEEDED": "succeeded", "FAILED": "failed"}.get(state, state.lower() or "unknown")


@dataclass(frozen=True)
class RunRow:
    run_id: str
    name: str
    state: str
    created_at: str
    recurring_run_id: str | None
    outcome: str = ""
    costs: dict | None = None  # the run summary's costs (teacher calls/spend, student scored), when workdir has them


def run_summaries(workdir: str) -> dict[str, RunSummary]:
    """run id -> the run summary every run wrote under ``workdir/plans/*/run_summary.json`` (path or URI).

    A summary that cannot be read or does not validate is left out (the listing still shows the run).
    """
    import fsspec

    fs, path = fsspec.core.url_to_fs(workdir.rstrip("/") + "/plans")
    summaries: dict[str, RunSummary] = {}
    for file in sorted(fs.glob(f"{path}/*/{RUN_SUMMARY_FILE}")) if fs.exists(path) else []:
        try:
            summary = read_run_summary(fs.unstrip_protocol(file))
        except (OSError, SilversetInputError):
            continue
        if summary.run_id:
            summaries[summary.run_id] = summary
    return summaries


def _costs_of(summary: RunSummary | None) -> dict | None:
    return summary.costs if summary is not None else None


def list_runs(
    *,
    host: str,
    experiment: str | None = None,
    page_size: int = 20,
    namespace: str | None = None,
    existing_token: str | None = None,
    workdir: str = "",
) -> list[RunRow]:
    """Most recent runs first (optionally of one experiment by name). With ``workdir`` (the runs' workdir
    parameter, as this machine reaches it), each run's costs from its run summary, matched by the run id
    the pipeline's steps saw (KFP's run id or its name)."""
    client = _client(host, namespace=namespace, existing_token=existing_token)
    experiment_id = None
    if experiment:
        try:
            experiment_id = client.get_experiment(experiment_name=experiment, namespace=namespace).experiment_id
        except ValueError as exc:
            raise SilversetInputError("--experiment", str(exc)) from None
    response = client.list_runs(
        page_size=page_size, sort_by="created_at desc", experiment_id=experiment_id, namespace=namespace
    )
    summaries = run_summaries(workdir) if workdir else {}
    return [
        RunRow(
            run_id=r.run_id,
            name=r.display_name,
            state=str(r.state or ""),
            created_at=str(r.created_at or ""),
            recurring_run_id=r.recurring_run_id,
            outcome=promotion_outcome(str(r.state or ""), r.run_details.task_details if r.run_details else None),
            costs=_costs_of(summaries.get(r.run_id) or summaries.get(r.display_name)),
        )
        for r in (response.runs or [])
    ]
