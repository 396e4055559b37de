"""Run the attribute-promotion pipeline on this machine through ``kfp.local`` (SubprocessRunner, same env)."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from silverset.components.common.errors import SilversetInputError


@dataclass
class LocalRun:
    """What a local run did: wall seconds, the run summary the exit handler wrote, and the plan."""

    workdir: Path
    wall_s: float
    status: str
    summary: dict = field(default_factory=dict)
    plan: dict = field(default_factory=dict)
    tasks: int = 0  # tasks kfp.local executed


def run_local(*, attribute_spec: str | Path, manifest: str, workdir: str | Path, state_dir: str | Path | None = None,
              webhook_url: str = "", params: dict | None = None, quiet: bool = True) -> LocalRun:
    """Run the compiled pipeline's function end to end with kfp.local; every artifact stays under ``workdir``.

    ``params`` are further pipeline parameters (e.g. ``{"frames_per_video": 4}``). Raises
    SilversetInputError for a missing spec/manifest; a failed stage fails the run (RuntimeError).
    """
    import logging

    from kfp import local

    from silverset.components.common.spec import load_spec
    from silverset.pipelines.attribute_promotion import attribute_promotion

    load_spec(attribute_spec)  # fail fast, naming the spec, before any task starts
    if "://" not in manifest and not Path(manifest).exists():
        raise SilversetInputError(f"manifest '{manifest}'", "file not found")
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    state = Path(state_dir).resolve() if state_dir else workdir / "state"
    root = workdir / "kfp-local"
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=True)
    if quiet:
        logging.getLogger().setLevel(logging.ERROR)
    arguments = {"attribute_spec": str(Path(attribute_spec).resolve()),
                 "manifest": manifest if "://" in manifest else str(Path(manifest).resolve()),
                 "workdir": str(workdir), "state_dir": str(state), "webhook_url": webhook_url, **(params or {})}
    started = time.perf_counter()
    before = {p for p in root.glob("*/*") if p.is_dir()}
    status = "SUCCEEDED"
    try:
        attribute_promotion(**arguments)
    except RuntimeError:
        status = "FAILED"
        raise
    finally:
        wall = time.perf_counter() - started
        tasks = len({p for p in root.glob("*/*") if p.is_dir()} - before)
    summary_path = workdir / "run_summary.json"
    plan_path = workdir / "plan" / "plan.json"
    return LocalRun(workdir=workdir, wall_s=wall, status=status, tasks=tasks,
                    summary=json.loads(summary_path.read_text()) if summary_path.exists() else {},
                    plan=json.loads(plan_path.read_text()) if plan_path.exists() else {})
