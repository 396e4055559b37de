"""Per-task progress of a kfp.local run: one ``TaskEvent`` when a task starts, one when it ends.

kfp.local (2.17.0) runs each task as a subprocess and logs it to stdout, which a quiet ``run_local`` keeps in a
file. ``following_tasks`` follows the same tasks one level up, through kfp.local's task executor
(``kfp.local.orchestrator.task_executor.execute_single_task``, called for every task of both its orchestrators,
cache hits included), and calls ``on_task`` with the task's display name (``set_display_name`` in
``attribute_promotion``), its shard (its ``shard_index``/``shard_count`` arguments), its seconds and status, and a
count read from the task's own outputs where the stage reports one (videos framed, embedded, labelled, scored; the
plan step's count from the plan.json it wrote). kfp.local's own log stays as it is. ``on_task`` may be called
from kfp.local's worker threads (a ParallelFor runs two iterations at once); calls are serialised here.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator, Literal

if TYPE_CHECKING:
    from silverset.components.common.artifacts import PlanSummary

_LOGGER = logging.getLogger(__name__)

# display name (prefix) -> (output key holding the count, what the count is)
_COUNTS: tuple[tuple[str, str, str], ...] = (
    ("frames", "videos", "videos framed"),
    ("embed-shard", "outputs", "videos embedded"),
    ("annotate-", "outputs", "videos labelled"),
    ("merge-labels", "Output", "teacher labels, each video exactly once"),
    ("carry-over", "labels", "labels for the student (carried + new)"),
    ("score-golden-set", "scored", "golden-set videos scored"),
    ("bulk-score", "scored", "videos scored"),
    ("commit-promoted-state", "videos", "videos in the promoted state"),
)
# display name -> what precedes the one-word result the task returns
_VERDICTS = {
    "teacher-gate": "",
    "student-gate": "",
    "human-approval": "",
    "restricted-vocabulary-and-index": "version ",
}


@dataclass(frozen=True)
class TaskEvent:
    """One task of a kfp.local run starting (``phase`` "start") or ending ("end").

    ``task``: the display name (e.g. "frames", "embed-shard"); ``shard`` of ``shards``: the task's
    ``shard_index``/``shard_count`` arguments when it is one of several shards (a ParallelFor iteration), else None;
    ``seconds``: wall seconds of the task (end only); ``status``: "SUCCESS" / "FAILURE" (end only);
    ``count`` with ``unit``: what the task reports it did (e.g. 60, "videos framed"), None when it reports no
    count; ``note``: a short result without a count (a gate's "passed", the index version), or beside the count.
    """

    task: str
    phase: Literal["start", "end"]
    shard: int | None = None
    shards: int | None = None
    seconds: float | None = None
    status: str = ""
    count: int | None = None
    unit: str = ""
    note: str = ""
    within: str = ""  # the enclosing stage, when a caller nests these events (the demo: its pipeline stage)

    @property
    def label(self) -> str:
        return self.task if self.shard is None else f"{self.task} [shard {self.shard + 1}/{self.shards}]"


def _as_json(value: Any) -> dict:
    if isinstance(value, str) and value.startswith("{"):
        try:
            loaded = json.loads(value)
        except ValueError:
            return {}
        return loaded if isinstance(loaded, dict) else {}
    return {}


def describe_outputs(task: str, outputs: dict) -> tuple[int | None, str, str]:
    """(count, unit, note) of a finished task from its kfp outputs (parameters by name; a str return is
    ``Output``). A JSON object returned as ``Output`` (the embed and annotate shards' stats) is read too."""
    values = {**_as_json(outputs.get("Output")), **outputs}
    for prefix, key, unit in _COUNTS:
        if not task.startswith(prefix):
            continue
        value = values.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            note = f"{int(values['resumed'])} done by an earlier run" if values.get("resumed") else ""
            return int(value), unit, note
        if isinstance(value, str) and value:
            return None, "", value
    output = outputs.get("Output")
    if task == "deploy-index" and values.get("version"):
        return None, "", f"{values['version']} " + ("now live" if values.get("changed", True) else "already live")
    if task == "plan-incremental":  # its output is the run folder, "" when the corpus is unchanged
        if output == "":
            return None, "", "corpus unchanged: nothing to do"
        plan = _read_plan(f"{output}/plan") if isinstance(output, str) and output else None
        if plan is not None:
            return plan.todo, f"of {plan.videos} videos to process (new or changed)", ""
        return None, "", ""
    if task in _VERDICTS and isinstance(output, str) and output and len(output) <= 60:
        return None, "", f"{_VERDICTS[task]}{output}"
    return None, "", ""


def _read_plan(plan_dir: str) -> PlanSummary | None:
    """The plan a plan step wrote in ``plan_dir`` (local path or fsspec URI); None when it cannot be read."""
    from silverset.components.common.artifacts import PlanSummary, read_plan
    from silverset.components.common.errors import SilversetInputError

    try:
        plan = read_plan(plan_dir)
    except (OSError, SilversetInputError):
        return None
    return plan if isinstance(plan, PlanSummary) else None


def _shard_of(task_spec, io_store) -> tuple[int | None, int | None]:
    """(shard_index, shard_count) of a sharded task (its own ``shard_index``/``shard_count`` arguments, as kfp.local
    resolves them for this ParallelFor iteration); (None, None) for a task that is not split in several shards."""
    if io_store is None or "shard_index" not in task_spec.inputs.parameters:
        return None, None
    try:
        from kfp.local.orchestrator.orchestrator_utils import OrchestratorUtils

        arguments = OrchestratorUtils.make_task_arguments(task_inputs_spec=task_spec.inputs, io_store=io_store)
        index, count = int(arguments["shard_index"]), int(arguments.get("shard_count", 1))
    except Exception:  # noqa: BLE001 - an argument kfp.local cannot resolve yet: no shard shown, nothing else
        return None, None
    return (index, count) if count > 1 else (None, None)


@contextlib.contextmanager
def following_tasks(on_task: Callable[[TaskEvent], None]) -> Iterator[None]:
    """Within the block, call ``on_task`` as each kfp.local task starts and ends (see the module docstring).

    A kfp.local without the task executor this follows (not 2.17) runs unchanged, without events, and says so
    once in the log. An exception raised by ``on_task`` is logged, never allowed to fail the task.
    """
    try:
        from kfp.local.orchestrator import task_executor
    except ImportError:
        task_executor = None
    execute = getattr(task_executor, "execute_single_task", None)
    if execute is None:
        _LOGGER.warning("kfp.local has no orchestrator.task_executor.execute_single_task: no per-task progress")
        yield
        return
    lock = threading.Lock()

    def emit(event: TaskEvent) -> None:
        with lock:
            try:
                on_task(event)
            except Exception:  # noqa: BLE001 - progress output must never fail a pipeline task
                _LOGGER.exception("progress callback failed on %s", event)

    def following(task_name, task_spec, pipeline_resource_name, *args, **kwargs):
        display = task_spec.task_info.name or task_name
        shard, shards = _shard_of(task_spec, kwargs.get("io_store"))
        emit(TaskEvent(task=display, phase="start", shard=shard, shards=shards))
        started = time.perf_counter()
        status_name = "FAILURE"
        outputs: dict = {}
        try:
            outputs, status = execute(task_name, task_spec, pipeline_resource_name, *args, **kwargs)
            status_name = getattr(status, "name", str(status))
            return outputs, status
        finally:
            count, unit, note = describe_outputs(display, outputs or {}) if status_name == "SUCCESS" else (None, "", "")
            emit(
                TaskEvent(
                    task=display,
                    phase="end",
                    shard=shard,
                    shards=shards,
                    status=status_name,
                    seconds=time.perf_counter() - started,
                    count=count,
                    unit=unit,
                    note=note,
                )
            )

    task_executor.execute_single_task = following
    try:
        yield
    finally:
        task_executor.execute_single_task = execute
