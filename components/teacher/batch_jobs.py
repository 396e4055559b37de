"""The ledger of submitted Gemini Batch API jobs, so a rerun polls the jobs it already paid for instead of resubmitting.

One JSON file per job under ``<cache>/batch-jobs/``, written right after ``batches.create`` returns the job's
name and removed once the job's answers are in the answer cache (or the job failed). Each record maps every
video of the job to its answer-cache key, so answers land in the cache even when a rerun asks for a
different subset of videos.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BatchJobRecord:
    """One submitted job: its resource name (``batches/...``), model, and video_id -> answer-cache key."""

    name: str
    model: str
    cache_keys: dict[str, str]


class BatchLedger:
    """Submitted, not yet collected Batch API jobs in ``root`` (a local folder beside the answer cache)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _path(self, name: str) -> Path:
        return self.root / f"{hashlib.sha256(name.encode()).hexdigest()[:32]}.json"

    def record(self, name: str, model: str, cache_keys: dict[str, str]) -> BatchJobRecord:
        """Persist a job the moment its name is known (atomic write)."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self._path(name)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps({"name": name, "model": model, "cache_keys": cache_keys}), encoding="utf-8")
        os.replace(tmp, path)
        return BatchJobRecord(name, model, dict(cache_keys))

    def jobs(self, model: str) -> list[BatchJobRecord]:
        """Every recorded job of ``model``, oldest file name first."""
        found = []
        for path in sorted(self.root.glob("*.json")):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if data.get("model") == model:
                found.append(BatchJobRecord(data["name"], data["model"], dict(data["cache_keys"])))
        return found

    def forget(self, name: str) -> None:
        """Drop a job whose answers are cached (or that failed, so its videos are submitted again)."""
        self._path(name).unlink(missing_ok=True)
