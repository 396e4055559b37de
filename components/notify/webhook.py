"""Send a run summary to a webhook when the pipeline ends (success or failure), then clean up after the run.

The payload is JSON with a one-line ``text`` (what Slack/Teams/Chat incoming webhooks display) and the
structured fields a receiver can act on. Cleanup releases the incremental state's lock, removes staging
folders a crashed stage left behind, and, only when the run succeeded, records the corpus digest as
completed so the next scheduled run over the same corpus does nothing.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import fsspec
from pydantic import BaseModel, ConfigDict

from silverset.components.common.tables import STAGING_PREFIX

SUCCEEDED = "SUCCEEDED"


class RunSummary(BaseModel):
    """What the webhook receives."""

    model_config = ConfigDict(frozen=True)

    text: str
    pipeline: str = "attribute-promotion"
    run_id: str
    status: str  # SUCCEEDED, FAILED, CANCELED (KFP's PipelineTaskFinalStatus.state)
    error_message: str = ""
    attribute_spec: str = ""
    workdir: str = ""
    plan: dict = {}
    stages: dict[str, dict] = {}  # stage folder -> its summary.json, where the stage wrote one
    gates: dict[str, dict] = {}  # teacher_gate / student_gate -> {passed, reasons}, for the gates that ran
    index_version: str = ""  # the index this run built ("" when it stopped before the index)


class NotifyResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    status: str
    webhook_status: int | None  # HTTP status of the last attempt; None when no webhook is set
    attempts: int
    released_lock: bool
    removed_staging: int
    marked_completed: bool
    summary_path: str


def _read_json(uri: str) -> dict:
    fs, path = fsspec.core.url_to_fs(uri)
    if not fs.exists(path):
        return {}
    with fs.open(path, "r") as f:
        return json.load(f)


def build_summary(*, run_id: str, status: str, error_message: str, attribute_spec: str, workdir: str,
                  plan_dir: str) -> RunSummary:
    plan = _read_json(f"{plan_dir.rstrip('/')}/plan.json") if plan_dir else {}
    stages: dict[str, dict] = {}
    root = Path(workdir)
    if workdir and root.is_dir():
        for path in sorted(root.glob("*/summary.json")):
            try:
                stages[path.parent.name] = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
    gates: dict[str, dict] = {}
    index_version = ""
    run_dir = plan.get("run_dir") or ""
    if run_dir:
        for gate in ("teacher_gate", "student_gate"):
            result = _read_json(f"{run_dir.rstrip('/')}/{gate}/gate.json")
            if result:
                gates[gate] = {"passed": bool(result.get("passed")), "reasons": list(result.get("reasons", []))}
        index_version = _read_json(f"{run_dir.rstrip('/')}/index/manifest.json").get("version", "")
    work = (f"{plan.get('todo', '?')} of {plan.get('videos', '?')} videos to process"
            if plan else "no plan")
    if plan.get("up_to_date"):
        work = f"corpus unchanged ({plan.get('videos')} videos): nothing to do"
    text = f"silverset attribute-promotion run {run_id}: {status}; {work}"
    for gate, result in gates.items():
        text += f"; {gate.replace('_', ' ')} " + ("passed" if result["passed"] else
                                                   "FAILED (" + "; ".join(result["reasons"])[:200] + ")")
    if index_version:
        text += f"; index {index_version}"
    if error_message:
        text += f"; error: {error_message[:300]}"
    return RunSummary(text=text, run_id=run_id, status=status, error_message=error_message,
                      attribute_spec=attribute_spec, workdir=workdir, plan=plan, stages=stages, gates=gates,
                      index_version=index_version)


def post(url: str, summary: RunSummary, *, attempts: int = 4, backoff_s: float = 1.0,
         timeout_s: float = 10.0) -> tuple[int | None, int]:
    """POST the summary; retry connection errors and 5xx/429 with exponential backoff (seconds).

    Returns (HTTP status of the last attempt or None if none connected, attempts made). Never raises:
    a webhook that is down must not turn a good run into a failed one.
    """
    import httpx

    status = None
    for attempt in range(1, attempts + 1):
        try:
            response = httpx.post(url, json=summary.model_dump(mode="json"), timeout=timeout_s)
            status = response.status_code
            if status < 500 and status != 429:
                return status, attempt
        except httpx.HTTPError:
            status = None
        if attempt < attempts:
            time.sleep(backoff_s * 2 ** (attempt - 1))
    return status, attempts


def remove_staging(workdir: str) -> int:
    """Remove hidden staging folders (tables.atomic_directory) a crashed stage left under ``workdir``."""
    root = Path(workdir)
    if not workdir or not root.is_dir():
        return 0
    stale = [p for p in root.rglob(f"{STAGING_PREFIX}*") if p.is_dir()]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return len(stale)


def run(*, run_id: str, status: str, error_message: str = "", webhook_url: str = "", attribute_spec: str = "",
        workdir: str = "", state_dir: str = "", plan_dir: str = "", attempts: int = 4,
        backoff_s: float = 1.0) -> NotifyResult:
    """Summarize the run, post it to ``webhook_url`` (if set), write it to ``workdir/run_summary.json``, clean up."""
    from silverset.components.incremental import plan as incremental_plan
    from silverset.components.incremental import state as incremental_state

    summary = build_summary(run_id=run_id, status=status, error_message=error_message,
                            attribute_spec=attribute_spec, workdir=workdir, plan_dir=plan_dir)
    webhook_status, tries = (post(webhook_url, summary, attempts=attempts, backoff_s=backoff_s)
                             if webhook_url else (None, 0))
    marked = False
    if status == SUCCEEDED and state_dir and plan_dir and _read_json(f"{plan_dir.rstrip('/')}/plan.json"):
        incremental_plan.mark_completed(state_dir=state_dir, plan_dir=plan_dir, run_id=run_id)
        marked = True
    released = incremental_state.release_lock(state_dir, run_id=run_id) if state_dir else False
    removed = remove_staging(workdir)
    summary_path = f"{workdir.rstrip('/')}/run_summary.json" if workdir else ""
    if summary_path:
        with fsspec.open(summary_path, "w") as f:
            f.write(summary.model_dump_json(indent=2))
    return NotifyResult(status=status, webhook_status=webhook_status, attempts=tries, released_lock=released,
                        removed_staging=removed, marked_completed=marked, summary_path=summary_path)
