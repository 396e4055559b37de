"""A step's measured CPU-seconds: ``with measure_cpu() as m: ...``, then ``write_cpu`` into its output folder
(``stats/cpu-<name>.json``: user + system CPU-seconds of the step's process and its children, and the items it
handled); ``read_cpu`` sums a folder's records. notify.costs prices them in the run summary.
"""

from __future__ import annotations

import contextlib
import json
import resource
from dataclasses import dataclass

import fsspec

CPU_PREFIX = "cpu-"  # stats/cpu-<name>.json; kept apart from the runner's stats/shard-*.json


@dataclass
class Measured:
    cpu_seconds: float = 0.0


def _cpu_now() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@contextlib.contextmanager
def measure_cpu():
    """``with measure_cpu() as m: ...`` then ``m.cpu_seconds``: CPU-seconds of this process (all threads) and
    its finished children over the block."""
    measured, start = Measured(), _cpu_now()
    try:
        yield measured
    finally:
        measured.cpu_seconds = round(_cpu_now() - start, 4)


def _join(root: str, *parts: str) -> str:
    return "/".join([str(root).rstrip("/"), *parts])


def write_cpu(folder: str, name: str, *, cpu_seconds: float, items: int) -> None:
    """Record a step's measured CPU-seconds and the items it handled in ``folder/stats/cpu-<name>.json``."""
    with fsspec.open(_join(folder, "stats", f"{CPU_PREFIX}{name}.json"), "w") as f:
        json.dump({"cpu_seconds": round(float(cpu_seconds), 4), "items": int(items)}, f)


def read_cpu(folder: str) -> dict:
    """Every ``stats/cpu-*.json`` under ``folder`` summed: {"cpu_seconds", "items", "steps"}; {} when none."""
    fs, path = fsspec.core.url_to_fs(_join(folder, "stats"))
    files = sorted(fs.glob(_join(path, f"{CPU_PREFIX}*.json"))) if fs.exists(path) else []
    records = []
    for file in files:
        with fs.open(file, "r") as f:
            records.append(json.load(f))
    if not records:
        return {}
    return {
        "cpu_seconds": round(sum(float(r.get("cpu_seconds", 0.0)) for r in records), 4),
        "items": sum(int(r.get("items", 0)) for r in records),
        "steps": len(records),
    }
