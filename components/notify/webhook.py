"""Send a run summary to a webhook when the pipeline ends (success or failure), then clean up after the run.

The payload is JSON with a one-line ``text`` (what Slack/Teams/Chat incoming webhooks display) naming the
run's ``outcome`` and its reasons, and the structured per-stage fields a receiver can act on: plan counts,
teacher gate, annotate counts and spend, student gate, approval decision and who made it, deploy version or
rollback, and the run's ``costs`` (costs.run_costs: teacher calls and spend against its budget, student items
scored, each one's cost per 1,000 videos and their ratio). Clean-up releases the run lock if this run holds it
and removes staging folders under this run's own plan folder and run folder only. A run that was locked out
touches nothing. The corpus state is never marked here: ``incremental.plan.commit_promotion`` does that after the
deploy.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Callable, TypeVar

import fsspec
from pydantic import BaseModel, ConfigDict, Field

from silverset.components.common import artifacts
from silverset.components.common.artifacts import RUN_SUMMARY_FILE, LockedOut, PlanSummary, RunSummary
from silverset.components.common.errors import SilversetInputError
from silverset.components.common.logs import safe_url
from silverset.components.common.tables import STAGING_PREFIX
from silverset.components.incremental import plan as incremental_plan

_LOGGER = logging.getLogger(__name__)
T = TypeVar("T")

SUCCEEDED = "SUCCEEDED"
OUTCOMES = (
    "promoted",
    "up_to_date",
    "teacher_gate_failed",
    "student_gate_failed",
    "approval_rejected",
    "approval_expired",
    "deploy_failed",
    "locked",
    "failed",
)
SUMMARY_FILE = RUN_SUMMARY_FILE  # common.artifacts.RunSummary: what the webhook receives and the file holds


class NotifyOptions(BaseModel):
    """How hard the webhook post tries: ``attempts`` in all, waiting ``backoff_s`` x 2^(attempt-1) in between."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    attempts: int = Field(4, ge=1)
    backoff_s: float = Field(1.0, ge=0)


class NotifySummary(BaseModel):
    """What the notify step did; the run summary itself (common.artifacts.RunSummary) is at ``summary_path``."""

    model_config = ConfigDict(frozen=True)

    status: str
    outcome: str
    webhook_status: int | None  # HTTP status of the last attempt; None when no webhook is set
    attempts: int
    released_lock: bool
    removed_staging: int
    summary_path: str


def _join(root: str, *parts: str) -> str:
    return "/".join([root.rstrip("/"), *parts])


_STAT_FIELDS = ("items", "resumed", "processed", "outputs", "errors", "remaining", "requests", "cache_hits")


def teacher_spend(out_dir: str) -> dict:
    """Every teacher shard's stats under ``out_dir/stats`` summed: counts, requests and cost_usd ({} if none).

    The shard records are common.artifacts.ShardStats; an unreadable one raises SilversetInputError naming it."""
    shards = artifacts.read_stage_stats(out_dir)
    if not shards:
        return {}
    total: dict = {k: sum(int(getattr(s, k)) for s in shards) for k in _STAT_FIELDS}
    total["cost_usd"] = round(sum(float(s.cost_usd) for s in shards), 6)
    total["shards"] = len(shards)
    total["teacher_id"] = shards[0].model_id
    total["stopped"] = sorted({s.stopped for s in shards if s.stopped})
    return total


def _outcome(
    *, status: str, plan: PlanSummary | LockedOut | None, gates: dict, approval: dict, deploy: dict, error_message: str
) -> tuple[str, list[str]]:
    """The promotion's outcome and its reasons, from the earliest stage that stopped it."""
    if isinstance(plan, LockedOut):
        return "locked", [plan.message or f"the state is held by run {plan.holder!r}"]
    for gate in ("teacher_gate", "student_gate"):
        if gate in gates and not gates[gate]["passed"]:
            return f"{gate}_failed", list(gates[gate]["reasons"]) or ["no reasons given"]
    decision = approval.get("decision")
    if decision in ("rejected", "expired"):
        who = approval.get("decided_by") or "nobody"
        return f"approval_{decision}", [f"{decision} by {who}: {approval.get('reason') or 'no reason given'}"]
    if deploy.get("status") == "failed":
        return "deploy_failed", [deploy.get("error") or "deploy failed"]
    if status == SUCCEEDED and isinstance(plan, PlanSummary) and plan.up_to_date:
        return "up_to_date", []
    if status == SUCCEEDED and deploy.get("status") == "deployed":
        return "promoted", []
    return "failed", [error_message] if error_message else [f"run ended {status} before the promotion went live"]


def build_summary(
    *, run_id: str, status: str, error_message: str, attribute_spec: str, workdir: str, plan_dir: str
) -> RunSummary:
    """Read what this run's stages wrote (plan, gates, teacher stats, approval decision, deploy record)."""
    plan, plan_problem = _read_plan(plan_dir)
    problems = [plan_problem]  # records that could not be read: the summary still goes out, and says so
    stages: dict[str, dict] = {}
    root = Path(workdir)
    if workdir and "://" not in workdir and root.is_dir():
        for path in sorted(root.glob("*/summary.json")):
            try:
                stages[path.parent.name] = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
    gates: dict[str, dict] = {}
    annotate: dict = {}
    golden_annotate: dict = {}
    approval: dict = {}
    deploy: dict = {}
    index_version = ""
    costs: dict = {}
    run_dir = plan.run_dir if isinstance(plan, PlanSummary) else ""
    if run_dir:
        records = incremental_plan.OUTCOME_RECORDS
        for gate in ("teacher_gate", "student_gate"):
            result = _read_gate(_join(run_dir, records[gate]))
            if result is not None:
                gates[gate] = {"passed": result.passed, "reasons": list(result.reasons)}
        annotate, problem = _read_record(teacher_spend, _join(run_dir, "teacher"), {})
        problems.append(problem)
        golden_annotate, problem = _read_record(teacher_spend, _join(run_dir, "teacher_golden"), {})
        problems.append(problem)
        decision, problem = _read_record(artifacts.read_approval_decision, _join(run_dir, records["approval"]), None)
        problems.append(problem)
        approval = (
            {
                "decision": decision.decision.value,
                "decided_by": decision.decided_by,
                "reason": decision.reason,
                "candidate_digest": decision.candidate_digest,
            }
            if decision is not None
            else {}
        )
        record, problem = _read_record(artifacts.read_deploy_record, _join(run_dir, records["deploy"]), None)
        problems.append(problem)
        deploy = record.model_dump(mode="json") if record is not None else {}
        index_version = _index_version(_join(run_dir, "index"))
        costs = _costs(run_dir, plan, annotate, golden_annotate)
    outcome, reasons = _outcome(
        status=status,
        plan=plan,
        gates=gates,
        approval=approval,
        deploy=deploy,
        error_message=error_message or next(filter(None, problems), ""),
    )
    if isinstance(plan, LockedOut):
        work = "did nothing"
    elif plan is not None and plan.up_to_date:
        work = f"corpus unchanged ({plan.videos} videos): nothing to do"
    elif plan is not None:
        work = f"{plan.todo} of {plan.videos} videos to process"
    else:
        work = plan_problem or "no plan"
    text = f"silverset attribute-promotion run {run_id}: {status}, {outcome.replace('_', ' ')}; {work}"
    if annotate:
        text += (
            f"; teacher labelled {annotate['outputs']} ({annotate['requests']} requests, ${annotate['cost_usd']:.2f})"
        )
    if costs.get("student_items_scored"):
        text += (
            f"; teacher {costs['teacher_calls']} calls ${costs['teacher_spend_usd']:.4f}, student scored "
            f"{costs['student_items_scored']} ${costs['student_spend_usd']:.4f}"
        )
    for gate, result in gates.items():
        text += f"; {gate.replace('_', ' ')} " + (
            "passed" if result["passed"] else "FAILED (" + "; ".join(result["reasons"])[:200] + ")"
        )
    if approval.get("decision"):
        text += f"; approval {approval['decision']} by {approval.get('decided_by') or 'nobody'}"
    if index_version:
        text += f"; index {index_version}"
    if deploy.get("status") == "deployed":
        text += f"; deployed {deploy.get('version', '')} (previous {deploy.get('previous') or 'none'})"
    elif deploy.get("status") == "failed":
        text += f"; deploy FAILED ({str(deploy.get('error', ''))[:200]})"
    if outcome == "locked":
        text += f"; {reasons[0][:300]}"
    if error_message:
        text += f"; error: {error_message[:300]}"
    return RunSummary(
        text=text,
        run_id=run_id,
        status=status,
        outcome=outcome,
        reasons=reasons,
        error_message=error_message,
        attribute_spec=attribute_spec,
        workdir=workdir,
        run_dir=run_dir,
        plan=plan.model_dump(mode="json") if plan is not None else {},
        stages=stages,
        gates=gates,
        annotate=annotate,
        golden_annotate=golden_annotate,
        approval=approval,
        deploy=deploy,
        index_version=index_version,
        costs=costs,
    )


def _read_plan(plan_dir: str) -> tuple[PlanSummary | LockedOut | None, str]:
    """This run's plan.json (None when there is none) and, when it cannot be read, why: the summary still goes out."""
    if not plan_dir:
        return None, ""
    uri = _join(plan_dir, artifacts.PLAN_FILE)
    fs, path = fsspec.core.url_to_fs(uri)
    if not fs.exists(path):
        return None, ""
    try:
        return artifacts.read_plan(uri), ""
    except SilversetInputError as exc:
        return None, str(exc)


def _read_record(read: Callable[[str], T], uri: str, absent: T) -> tuple[T, str]:
    """``read(uri)``, or ``absent`` when the stage wrote nothing there, and, when the record is unreadable, why."""
    fs, path = fsspec.core.url_to_fs(uri)
    if not fs.exists(path):
        return absent, ""
    try:
        return read(uri), ""
    except SilversetInputError as exc:
        _LOGGER.warning("run summary: %s", exc)
        return absent, str(exc)


def _read_gate(uri: str) -> artifacts.GateResult | None:
    """A gate.json of the run folder (None when that gate did not run); an unreadable one counts as failed."""
    fs, path = fsspec.core.url_to_fs(uri)
    if not fs.exists(path):
        return None
    try:
        return artifacts.read_gate(uri)
    except SilversetInputError as exc:
        return artifacts.GateResult(passed=False, reasons=[str(exc)])


def _index_version(index_dir: str) -> str:
    """The version of the index this run built ("" when it built none, or left an unreadable manifest)."""
    fs, path = fsspec.core.url_to_fs(_join(index_dir, artifacts.INDEX_MANIFEST_FILE))
    if not fs.exists(path):
        return ""
    try:
        return artifacts.read_index_manifest(index_dir).version
    except SilversetInputError:
        return ""


def _costs(run_dir: str, plan: PlanSummary, annotate: dict, golden_annotate: dict) -> dict:
    """costs.run_costs of the run folder's teacher and score steps ({} before the teacher ran)."""
    from silverset.components.common.cpu_stats import read_cpu
    from silverset.components.common.tables import parquet_files

    from .costs import run_costs

    if not annotate and not golden_annotate:
        return {}
    scores = _join(run_dir, "scores")
    fs, path = fsspec.core.url_to_fs(scores)
    scored = 0
    if fs.exists(path):
        import pyarrow.parquet as pq

        for file in parquet_files(scores):
            with fsspec.open(file, "rb") as f:
                scored += pq.ParquetFile(f).metadata.num_rows
    sample = plan.teacher_sample or {}
    rate = float(plan.cost_per_core_hour_usd)
    return run_costs(
        annotate=annotate,
        golden_annotate=golden_annotate,
        teacher_cpu=read_cpu(_join(run_dir, "teacher")),
        golden_cpu=read_cpu(_join(run_dir, "teacher_golden")),
        student_cpu=read_cpu(scores),
        scored=scored,
        cost_per_core_hour_usd=rate,
        budget_videos=int(sample.get("budget_videos", 0)),
        budget_usd=float(sample.get("budget_usd", 0.0)),
    )


def post(
    url: str, summary: RunSummary, *, attempts: int = 4, backoff_s: float = 1.0, timeout_s: float = 10.0
) -> tuple[int | None, int]:
    """POST the summary; retry connection errors and 5xx/429 with exponential backoff (seconds).

    Returns (HTTP status of the last attempt or None if none connected, attempts made). Never raises:
    a webhook that is down must not turn a good run into a failed one.
    """
    import httpx

    status = None
    where = safe_url(url, keep_path=False)  # a webhook's path is its secret
    for attempt in range(1, attempts + 1):
        failure = ""
        try:
            response = httpx.post(url, json=summary.model_dump(mode="json"), timeout=timeout_s)
            status = response.status_code
            if status < 500 and status != 429:
                level = logging.INFO if status < 400 else logging.WARNING
                _LOGGER.log(level, "webhook %s answered HTTP %s on attempt %d", where, status, attempt)
                return status, attempt
            failure = f"HTTP {status}"
        except httpx.HTTPError as exc:
            status, failure = None, type(exc).__name__
        if attempt < attempts:
            wait = backoff_s * 2 ** (attempt - 1)
            _LOGGER.warning(
                "webhook %s: %s on attempt %d/%d; retrying in %.3g s", where, failure, attempt, attempts, wait
            )
            time.sleep(wait)
    _LOGGER.warning(
        "webhook %s: %s on attempt %d/%d; gave up (the run's outcome stands; the summary is in the run folder)",
        where,
        failure,
        attempts,
        attempts,
    )
    return status, attempts


def remove_staging(root: str) -> int:
    """Remove hidden staging folders (tables.atomic_directory) a crashed stage left under ``root`` (local only)."""
    path = Path(root)
    if not root or "://" in root or not path.is_dir():
        return 0
    stale = [p for p in path.rglob(f"{STAGING_PREFIX}*") if p.is_dir()]
    for folder in stale:
        shutil.rmtree(folder, ignore_errors=True)
    return len(stale)


def run(
    *,
    run_id: str,
    status: str,
    error_message: str = "",
    webhook_url: str = "",
    attribute_spec: str = "",
    workdir: str = "",
    state_dir: str = "",
    run_lock: str = "",
    options: NotifyOptions = NotifyOptions(),
    api_client=None,
) -> NotifySummary:
    """Summarize the run, post it to ``webhook_url`` (if set), write it, clean up after this run only.

    The plan is this run's ``plan_dir_of(workdir, run_id)``. The summary goes to ``run_summary.json`` there
    and, unless the run was locked out, to ``workdir/run_summary.json`` (the latest run's). The lock
    (``run_lock``, or the state folder) is released only if this run holds it.
    """
    plan_dir = incremental_plan.plan_dir_of(workdir, run_id) if workdir and run_id else ""
    summary = build_summary(
        run_id=run_id,
        status=status,
        error_message=error_message,
        attribute_spec=attribute_spec,
        workdir=workdir,
        plan_dir=plan_dir,
    )
    _LOGGER.info("run %s ended %s: outcome %s", run_id, status, summary.outcome)
    webhook_status, tries = (
        post(webhook_url, summary, attempts=options.attempts, backoff_s=options.backoff_s) if webhook_url else (None, 0)
    )
    released, removed = False, 0
    if summary.outcome != "locked":
        if state_dir and run_id:
            from silverset.components.common.run_lock import open_run_lock

            released = open_run_lock(run_lock or state_dir, key=state_dir, api_client=api_client).release(run_id)
        removed = remove_staging(plan_dir) + remove_staging(summary.run_dir)
    summary_path = _join(plan_dir, SUMMARY_FILE) if plan_dir else ""
    targets = [summary_path] + ([_join(workdir, SUMMARY_FILE)] if workdir and summary.outcome != "locked" else [])
    for target in filter(None, targets):
        artifacts.write_run_summary(target, summary)
    _LOGGER.info(
        "run %s: summary written to %s; lock released %s, %d staging folder(s) removed",
        run_id,
        ", ".join(filter(None, targets)) or "nowhere",
        released,
        removed,
    )
    return NotifySummary(
        status=status,
        outcome=summary.outcome,
        webhook_status=webhook_status,
        attempts=tries,
        released_lock=released,
        removed_staging=removed,
        summary_path=summary_path or "",
    )
