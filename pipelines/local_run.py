"""Run the attribute-promotion pipeline on this machine through ``kfp.local`` (SubprocessRunner, same env)."""

from __future__ import annotations

import contextlib
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from silverset.components.common.artifacts import (
    PLAN_FILE,
    RUN_SUMMARY_FILE,
    LockedOut,
    PlanSummary,
    RunSummary,
    read_plan,
    read_run_summary,
)
from silverset.components.common.errors import SilversetInputError
from silverset.components.incremental.plan import plan_dir_of
from silverset.pipelines.local_progress import TaskEvent, following_tasks


@dataclass
class LocalRun:
    """What a local run did: wall seconds, the run summary the exit handler wrote, and the plan."""

    workdir: Path
    wall_s: float
    status: str
    summary: RunSummary | None = None  # None when the exit handler wrote none (kfp.local stopped before it)
    plan: PlanSummary | LockedOut | None = None  # the run's plan.json; None when the plan step wrote none
    tasks: int = 0  # tasks kfp.local executed
    log: Path | None = None  # kfp.local's task logs (quiet runs); None when they went to stdout
    run_id: str = ""  # the job name kfp.local gave the run (its plan and summary are under plans/<run_id>)
    error: str = ""  # why the run FAILED (kfp.local's message; the run summary says which stage stopped it)


def run_local(
    *,
    attribute_spec: str | Path,
    manifest_uri: str,
    workdir: str | Path,
    state_dir: str | Path | None = None,
    golden_set: str | Path = "",
    webhook_url: str = "",
    params: dict | None = None,
    options=None,
    quiet: bool = True,
    on_task: Callable[[TaskEvent], None] | None = None,
) -> LocalRun:
    """Run the compiled pipeline's function end to end with kfp.local; every artifact stays under ``workdir``.

    ``options`` (attribute_promotion.PlatformOptions) sets e.g. the shard count; default 4 shards.
    Local defaults: approvals in ``workdir/approvals.db`` (SQLite), deploy target ``local`` serving from
    ``workdir/serve``. ``params`` are further pipeline parameters (e.g. ``{"frames_per_video": 4,
    "auto_approve_as": "demo@silverset.dev"}``). Without a golden set the teacher gate fails closed and
    nothing after it runs. Raises SilversetInputError for a missing spec/manifest/golden set or an unknown or
    missing pipeline parameter. A run that a gate, the approval, the deploy or a failed stage stopped returns
    with status "FAILED" and ``error``; its summary says which stage stopped it and why.
    ``on_task`` is called as each task starts and ends (``local_progress.TaskEvent``: display name, seconds,
    the count the task reports); kfp.local's own task log is kept either way.
    """
    import logging
    import warnings

    from kfp import local

    from silverset.components.common.spec import load_spec
    from silverset.pipelines.attribute_promotion import PlatformOptions, build
    from silverset.pipelines.cluster import check_params, typed_params

    options = (options or PlatformOptions()).model_copy(update={"local_demo": True})
    pipeline = build(options)
    inputs = {
        name: {"required": not spec.optional, "type": spec.type}
        for name, spec in pipeline.component_spec.inputs.items()
    }
    load_spec(attribute_spec)  # fail fast, naming the spec, before any task starts
    if "://" not in manifest_uri and not Path(manifest_uri).exists():
        raise SilversetInputError(f"manifest '{manifest_uri}'", "file not found")
    if golden_set and "://" not in str(golden_set) and not Path(golden_set).exists():
        raise SilversetInputError(f"golden set '{golden_set}'", "file not found")
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    state = Path(state_dir).resolve() if state_dir else workdir / "state"
    root = workdir / "kfp-local"
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=True)
    root.mkdir(parents=True, exist_ok=True)
    log_path = root / f"run-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.log" if quiet else None
    arguments = {
        "attribute_spec": str(Path(attribute_spec).resolve()),
        "manifest_uri": manifest_uri if "://" in manifest_uri else str(Path(manifest_uri).resolve()),
        "workdir": str(workdir),
        "state_dir": str(state),
        "webhook_url": webhook_url,
        "golden_set": str(Path(golden_set).resolve())
        if golden_set and "://" not in str(golden_set)
        else str(golden_set),
        "approval_store": f"sqlite:///{workdir / 'approvals.db'}",
        "deploy_target": "local",
        "serve_root": str(workdir / "serve"),
        **(params or {}),
    }
    check_params(arguments, inputs)
    arguments = typed_params(arguments, inputs)
    started = time.perf_counter()
    before = {p for p in root.glob("*/*") if p.is_dir()}
    status, error, job_names = "SUCCEEDED", "", []
    root_logger = logging.getLogger()
    handlers, level = root_logger.handlers[:], root_logger.level
    try:
        with contextlib.ExitStack() as stack:
            job_names = stack.enter_context(_recording_job_name())
            if on_task is not None:
                stack.enter_context(following_tasks(on_task))
            if log_path is not None:
                # kfp.local logs every task (and streams its subprocess output) to stdout; keep that in a file.
                stack.enter_context(contextlib.redirect_stdout(stack.enter_context(open(log_path, "w"))))
                stack.enter_context(warnings.catch_warnings())
                warnings.simplefilter("ignore")
            pipeline(**arguments)
    except RuntimeError as exc:
        message = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))  # kfp.local colours its messages for a terminal
        status, error = "FAILED", message + (f" (task logs: {log_path})" if log_path is not None else "")
    finally:
        # kfp.local leaves a root handler on the stream it logged to (here the closed log file): put ours back.
        root_logger.handlers[:] = handlers
        root_logger.setLevel(level)
        wall = time.perf_counter() - started
        tasks = len({p for p in root.glob("*/*") if p.is_dir()} - before)
    run_id = job_names[0] if job_names else ""
    own = Path(plan_dir_of(str(workdir), run_id)) if run_id else None
    summary_path, plan_path = (own / RUN_SUMMARY_FILE, own / PLAN_FILE) if own else (Path(), Path())
    return LocalRun(
        workdir=workdir,
        wall_s=wall,
        status=status,
        tasks=tasks,
        log=log_path,
        error=error,
        run_id=run_id,
        summary=read_run_summary(summary_path) if own and summary_path.exists() else None,
        plan=read_plan(plan_path) if own and plan_path.exists() else None,
    )


@contextlib.contextmanager
def _recording_job_name():
    """The job name kfp.local gives this run (what the steps see as PIPELINE_JOB_NAME, i.e. the run id), recorded
    as kfp.local makes it; a run started beside this one in another process has its own."""
    from kfp.local import executor_input_utils

    names: list[str] = []
    make = executor_input_utils.get_local_pipeline_resource_name

    def recording(pipeline_name: str) -> str:
        names.append(make(pipeline_name))
        return names[-1]

    executor_input_utils.get_local_pipeline_resource_name = recording
    try:
        yield names
    finally:
        executor_input_utils.get_local_pipeline_resource_name = make
