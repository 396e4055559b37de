"""`silverset pipeline compile|run|submit|schedule|runs`: the compiled KFP pipeline, locally and on a cluster."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from silverset.components.common.errors import SilversetInputError
from silverset.components.common.images import ImageSet

DEFAULT_IMAGES = ImageSet()

console = Console()
pipeline_app = typer.Typer(
    help="The attribute-promotion KFP pipeline: compile, run locally, submit, schedule.", no_args_is_help=True
)

PARAM_HELP = (
    "Pipeline parameter key=value (repeatable), e.g. --param workdir=/data/red --param manifest_uri=gs://b/m.csv."
)


def _check_beam_params(params: dict) -> dict:
    """Refuse (exit 2) a ``beam_runner``/``beam_options`` run parameter that the frames and score steps would refuse
    later: an unknown runner (the valid ones named), a malformed flag, ``--runner``, or a secret-carrying option."""
    from silverset.components.common.beam_runner import DEFAULT_RUNNER, beam_args

    if "beam_runner" in params or "beam_options" in params:
        beam_args(runner=str(params.get("beam_runner", DEFAULT_RUNNER)), options=params.get("beam_options", ""))
    return params


def _options(
    shards: int,
    pvc: str,
    no_pvc: bool,
    gemini_secret: str,
    pull_secret: str,
    image_registry: str,
    image_tag: str,
    cpu_digest: str,
    gpu_digest: str,
    gpu_teacher: bool,
    gpu_trainer: bool,
    approval_timeout_hours: float,
    beam_runner: str = "DirectRunner",
    beam_options: str = "",
):
    from pydantic import ValidationError

    from silverset.components.common.beam_runner import beam_args
    from silverset.components.common.images import ImageSet
    from silverset.pipelines.attribute_promotion import PlatformOptions

    beam_args(runner=beam_runner, options=beam_options)  # SilversetInputError naming the parameter: exit 2

    try:
        digests = {image: digest for image, digest in (("cpu", cpu_digest), ("gpu", gpu_digest)) if digest}
        images = ImageSet(registry=image_registry, tag=image_tag, digests=digests)
    except ValidationError as exc:
        error = exc.errors()[0]
        flag = {"registry": "--image-registry", "tag": "--image-tag"}.get(
            str(error["loc"][0]) if error["loc"] else "", "--cpu-image-digest/--gpu-image-digest"
        )
        raise SilversetInputError(flag, error["msg"].removeprefix("Value error, ")) from None
    return PlatformOptions(
        shards=shards,
        artifacts_pvc=None if no_pvc else pvc,
        gemini_secret=gemini_secret,
        image_pull_secret=pull_secret or None,
        images=images,
        gpu_teacher=gpu_teacher,
        gpu_trainer=gpu_trainer,
        approval_timeout_hours=approval_timeout_hours,
        beam_runner=beam_runner,
        beam_options=beam_options,
    )


@pipeline_app.command("compile")
def compile_cmd(
    out: Path = typer.Option(Path("pipeline.yaml"), "--out", help="Where to write the compiled package (YAML)."),
    shards: int = typer.Option(
        4, "--shards", min=1, max=256, help="ParallelFor width for frames, embed, annotate and bulk score."
    ),
    pvc: str = typer.Option("silverset-artifacts", "--pvc", help="PVC mounted at /data in every step."),
    no_pvc: bool = typer.Option(False, "--no-pvc", help="Mount no PVC; pass gs:// or s3:// URIs as workdir instead."),
    gemini_secret: str = typer.Option(
        "silverset-gemini", "--gemini-secret", help="Secret (name only) with key api-key."
    ),
    pull_secret: str = typer.Option("silverset-registry", "--image-pull-secret", help="'' for none."),
    image_registry: str = typer.Option(
        DEFAULT_IMAGES.registry, "--image-registry", help="Registry (and path) holding silverset-cpu and silverset-gpu."
    ),
    image_tag: str = typer.Option(
        DEFAULT_IMAGES.tag,
        "--image-tag",
        help="Tag of every image, or one digest sha256:... when only the CPU image runs.",
    ),
    cpu_digest: str = typer.Option("", "--cpu-image-digest", help="sha256:... of silverset-cpu (pulled by digest)."),
    gpu_digest: str = typer.Option("", "--gpu-image-digest", help="sha256:... of silverset-gpu (pulled by digest)."),
    gpu_teacher: bool = typer.Option(False, "--gpu-teacher", help="Local-teacher steps on the GPU pool, GPU image."),
    gpu_trainer: bool = typer.Option(False, "--gpu-trainer", help="The student trainer on the GPU pool, GPU image."),
    approval_timeout_hours: float = typer.Option(
        72.0, "--approval-timeout-hours", min=0.01, help="KFP timeout of the approval step (>= the specs' expiry)."
    ),
    beam_runner: str = typer.Option(
        "DirectRunner",
        "--beam-runner",
        help="Default of the beam_runner parameter: the runner of the frames and "
        "bulk-score Beam pipelines (DirectRunner, FlinkRunner, SparkRunner, "
        "PortableRunner, DataflowRunner).",
    ),
    beam_options: str = typer.Option(
        "",
        "--beam-options",
        help="Default of the beam_options parameter: Beam flags as a JSON list or one "
        "space-separated string, e.g. '--flink_master=flink:8081 "
        "--environment_type=EXTERNAL'. Never a secret (refused).",
    ),
) -> None:
    """Compile the pipeline to a deterministic YAML package (no secret values, only Secret names)."""
    from silverset.pipelines.compile import compile_pipeline

    path = compile_pipeline(
        out,
        options=_options(
            shards,
            pvc,
            no_pvc,
            gemini_secret,
            pull_secret,
            image_registry,
            image_tag,
            cpu_digest,
            gpu_digest,
            gpu_teacher,
            gpu_trainer,
            approval_timeout_hours,
            beam_runner,
            beam_options,
        ),
    )
    console.print(f"wrote {path}", markup=False)


@pipeline_app.command("run")
def run_cmd(
    local: bool = typer.Option(False, "--local", help="Run through kfp.local on this machine (the only mode here)."),
    attribute: Path = typer.Option(..., "--attribute", help="Attribute spec YAML."),
    manifest: str = typer.Option(..., "--manifest", help="Video manifest (CSV, JSONL, Parquet; path or URI)."),
    workdir: Path = typer.Option(Path("pipeline-workdir"), "--workdir", help="Every artifact goes here."),
    state_dir: Optional[Path] = typer.Option(None, "--state-dir", help="Incremental state (default WORKDIR/state)."),
    golden_set: Optional[Path] = typer.Option(
        None,
        "--golden",
        "--golden-set",
        help="Golden set Parquet (studio export); without one the teacher gate fails closed and nothing is promoted.",
    ),
    shards: int = typer.Option(
        2, "--shards", min=1, max=64, help="ParallelFor width for frames, embed, annotate and bulk score."
    ),
    auto_approve_as: str = typer.Option(
        "", "--auto-approve-as", help="Demo only: approve as this approver (recorded as auto-approve in the audit log)."
    ),
    webhook_url: str = typer.Option("", "--webhook-url", help="POST the run summary here when the run ends."),
    param: list[str] = typer.Option([], "--param", help=PARAM_HELP),
) -> None:
    """Run the same pipeline end to end through kfp.local; a second run over an unchanged corpus does nothing.

    Approvals go to WORKDIR/approvals.db (decide with `silverset approvals approve --store ...` while it waits)
    and the approved index is deployed to WORKDIR/serve (`silverset index serve --index-dir WORKDIR/serve`).
    """
    from silverset.pipelines.attribute_promotion import PlatformOptions
    from silverset.pipelines.cluster import parse_params
    from silverset.pipelines.local_run import run_local

    if not local:
        raise SilversetInputError(
            "--local", "only local runs start from here; use `silverset pipeline submit` for a cluster"
        )
    with console.status("running attribute-promotion through kfp.local ..."):
        params = _check_beam_params(parse_params(param))
        if auto_approve_as:
            params["auto_approve_as"] = auto_approve_as
        result = run_local(
            attribute_spec=attribute,
            manifest_uri=manifest,
            workdir=workdir,
            state_dir=state_dir,
            golden_set=golden_set or "",
            webhook_url=webhook_url,
            params=params,
            options=PlatformOptions(shards=shards, local_demo=True),
        )
    print_local_summary(result)
    if result.status != "SUCCEEDED":
        console.print(f"run {result.status}: {result.error}", markup=False)
        raise typer.Exit(1)


def print_local_summary(result) -> None:
    from silverset.components.common.artifacts import LockedOut, PlanSummary

    plan = result.plan
    table = Table(title=f"attribute-promotion (kfp.local): {result.status} in {result.wall_s:.1f} s")
    table.add_column("what")
    table.add_column("value")
    if isinstance(plan, PlanSummary):
        table.add_row(
            "videos",
            f"{plan.videos} ({plan.new} new, {plan.changed} changed, {plan.unchanged} unchanged, {plan.errors} errors)",
        )
        table.add_row("to process", "nothing (corpus and spec unchanged)" if plan.up_to_date else str(plan.todo))
        table.add_row("run folder", plan.run_dir or "-")
    elif isinstance(plan, LockedOut):
        table.add_row("locked out", plan.message)
    summary = result.summary
    for gate, outcome in (summary.gates if summary else {}).items():
        table.add_row(
            gate.replace("_", " "), "passed" if outcome["passed"] else "FAILED: " + "; ".join(outcome["reasons"])
        )
    if summary and summary.index_version:
        table.add_row("index version", summary.index_version)
    costs = summary.costs if summary else {}
    if costs:
        calls, spend, scored, per_1k = cost_cells(costs)
        table.add_row("teacher", f"{calls} calls, ${spend} ({costs['teacher_priced_by']})")
        table.add_row("student", f"{scored} videos scored, {costs['student_cpu_seconds']:.1f} CPU-s")
        table.add_row(
            "$ per 1,000 videos", f"teacher : student = {per_1k} (at ${costs['cost_per_core_hour_usd']}/core-hour)"
        )
    for stage, stage_summary in (summary.stages if summary else {}).items():
        table.add_row(stage, json.dumps(stage_summary)[:200])
    table.add_row("run summary", str(result.workdir / "run_summary.json"))
    if result.log:
        table.add_row("task logs", str(result.log))
    console.print(table)


def _package(package: Optional[Path]) -> Path:
    if package:
        return package
    from silverset.pipelines.compile import compile_pipeline

    return compile_pipeline(Path(tempfile.mkdtemp(prefix="silverset-")) / "pipeline.yaml")


@pipeline_app.command("submit")
def submit_cmd(
    host: str = typer.Option(
        ..., "--host", help="KFP API URL, e.g. http://localhost:8080 (port-forwarded ml-pipeline-ui)."
    ),
    package: Optional[Path] = typer.Option(None, "--package", help="Compiled YAML (default: compile now)."),
    experiment: str = typer.Option("silverset", "--experiment"),
    run_name: Optional[str] = typer.Option(None, "--run-name"),
    param: list[str] = typer.Option([], "--param", help=PARAM_HELP),
    service_account: Optional[str] = typer.Option(
        None,
        "--service-account",
        help="Default: KFP's runner (standalone: pipeline-runner; multi-user: default-editor).",
    ),
    namespace: Optional[str] = typer.Option(None, "--namespace", help="Multi-user KFP: the profile namespace."),
) -> None:
    """Start one run on the cluster."""
    from silverset.pipelines.cluster import parse_params, submit

    run = submit(
        host=host,
        package=_package(package),
        params=_check_beam_params(parse_params(param)),
        experiment=experiment,
        run_name=run_name,
        service_account=service_account,
        namespace=namespace,
    )
    console.print(f"run {run.run_id} in experiment {run.experiment_id}\n{run.url}", markup=False)


@pipeline_app.command("schedule")
def schedule_cmd(
    host: str = typer.Option(..., "--host"),
    cron: str = typer.Option(..., "--cron", help="Cron, 6 fields with seconds first (0 0 3 * * *) or 5."),
    name: str = typer.Option("attribute-promotion-recurring", "--name"),
    package: Optional[Path] = typer.Option(None, "--package"),
    experiment: str = typer.Option("silverset", "--experiment"),
    max_concurrency: int = typer.Option(1, "--max-concurrency", min=1, help="1: a run never overlaps the previous."),
    no_catchup: bool = typer.Option(
        True, "--no-catchup/--catchup", help="After a pause, run once, not per missed slot."
    ),
    param: list[str] = typer.Option([], "--param", help=PARAM_HELP),
    service_account: Optional[str] = typer.Option(None, "--service-account", help="Default: KFP's runner."),
    namespace: Optional[str] = typer.Option(None, "--namespace"),
    replace: bool = typer.Option(False, "--replace", help="Replace a recurring run of this name with other settings."),
) -> None:
    """Create a recurring run (idempotent by --name); each run processes only new or changed videos."""
    from silverset.pipelines.cluster import parse_params, schedule

    job = schedule(
        host=host,
        package=_package(package),
        params=_check_beam_params(parse_params(param)),
        cron=cron,
        name=name,
        experiment=experiment,
        max_concurrency=max_concurrency,
        no_catchup=no_catchup,
        service_account=service_account,
        namespace=namespace,
        replace=replace,
    )
    verb = "created" if job.created else "already exists, unchanged:"
    console.print(
        f"recurring run {job.recurring_run_id} {verb} cron '{job.cron}', max concurrency "
        f"{job.max_concurrency}, {'no catch-up' if job.no_catchup else 'catch-up'}",
        markup=False,
    )


@pipeline_app.command("runs")
def runs_cmd(
    host: str = typer.Option(..., "--host"),
    experiment: Optional[str] = typer.Option(None, "--experiment"),
    limit: int = typer.Option(20, "--limit", min=1, max=200),
    namespace: Optional[str] = typer.Option(None, "--namespace"),
    workdir: str = typer.Option(
        "",
        "--workdir",
        help="The runs' workdir as this machine reaches it (path, gs://, "
        "s3://): adds each run's teacher and student costs from its run summary.",
    ),
) -> None:
    """List recent runs, newest first (with --workdir: teacher calls and spend, student items scored, $ per 1,000)."""
    from silverset.pipelines.cluster import list_runs

    rows = list_runs(host=host, experiment=experiment, page_size=limit, namespace=namespace, workdir=workdir)
    table = Table(title=f"runs on {host}")
    columns = ("run id", "name", "state", "promotion", "created", "recurring run") + (
        ("teacher calls", "teacher $", "student scored", "$/1k teacher : student") if workdir else ()
    )
    for column in columns:
        table.add_column(column)
    for r in rows:
        row = [r.run_id, r.name, r.state, r.outcome, r.created_at, r.recurring_run_id or "-"]
        table.add_row(*(row + (cost_cells(r.costs) if workdir else [])))
    console.print(table)


def cost_cells(costs: dict | None) -> list[str]:
    """Teacher calls (of its budget), teacher spend, student items scored, and both costs per 1,000 videos."""
    if not costs:
        return ["-"] * 4
    budget = costs.get("teacher_budget_videos") or 0
    per_1k = [costs.get("teacher_usd_per_1000_videos"), costs.get("student_usd_per_1000_videos")]
    return [
        f"{costs['teacher_calls']}" + (f" of {budget}" if budget else ""),
        f"{costs['teacher_spend_usd']:.4f}",
        str(costs["student_items_scored"]),
        " : ".join("-" if v is None else f"{v:.4f}" for v in per_1k),
    ]


def register(app: typer.Typer) -> None:
    app.add_typer(pipeline_app, name="pipeline")
