"""Experiment set-up for a promoted attribute: the config file and deterministic salted-hash bucketing."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Iterable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from silverset.components.common.errors import SilversetInputError
from silverset.components.common.spec import AttributeSpec

log = logging.getLogger(__name__)

TREATMENT = "treatment"
CONTROL = "control"
ARMS = (CONTROL, TREATMENT)
# Users hash into this many buckets; a treatment share is a whole number of buckets.
BUCKETS = 10_000
CONFIG_FILE = "experiment.json"


class ExperimentConfig(BaseModel):
    """One A/B test: treatment turns personalized restricted retrieval on for the attribute, control leaves it off."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    experiment_id: str = Field(min_length=1)
    attribute: str
    attribute_version: int = Field(ge=1)
    spec_content_hash: str
    salt: str = Field(min_length=1)
    treatment_share: float = Field(gt=0.0, lt=1.0)
    trigger_threshold: float = Field(ge=0.0, le=1.0)
    arms: dict[str, str] = {
        CONTROL: "restricted retrieval off: the production retrieval mix",
        TREATMENT: "personalized restricted retrieval on: users whose affinity exceeds the trigger threshold "
        "get candidates from the attribute's restricted ScaNN index",
    }
    metrics: tuple[str, ...] = ("satisfied_consumption", "creation_participation")

    @field_validator("treatment_share")
    @classmethod
    def _whole_buckets(cls, value: float) -> float:
        if abs(value * BUCKETS - round(value * BUCKETS)) > 1e-9:
            raise ValueError(f"must be a multiple of 1/{BUCKETS} (users hash into {BUCKETS} buckets)")
        return value

    @property
    def treatment_buckets(self) -> int:
        return int(round(self.treatment_share * BUCKETS))

    def arm_of(self, user_id: str) -> str:
        """The arm a user is in; the same (salt, user) always gives the same arm."""
        return TREATMENT if bucket_of(user_id, self.salt) < self.treatment_buckets else CONTROL


def bucket_of(user_id: str, salt: str) -> int:
    """Bucket in [0, BUCKETS) from sha256(salt:user_id); a new salt reshuffles every user independently."""
    digest = hashlib.sha256(f"{salt}:{user_id}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def assign(user_ids: Iterable[str], *, salt: str, treatment_share: float) -> np.ndarray:
    """Arms for many users: bool [n], True = treatment."""
    buckets = np.fromiter((bucket_of(str(u), salt) for u in user_ids), dtype=np.int64)
    return buckets < int(round(treatment_share * BUCKETS))


def default_salt(spec: AttributeSpec) -> str:
    """A salt bound to the exact promoted spec: rerunning the same version keeps every arm, a new version reshuffles."""
    return spec.content_hash[:12]


def create_experiment(
    *, spec: AttributeSpec, salt: str, treatment_share: float, out_dir: str | Path, experiment_id: str | None = None
) -> ExperimentConfig:
    """Write ``out_dir/experiment.json`` for ``spec`` and return it (the same inputs write the same file)."""
    if not 0.0 < treatment_share < 1.0:
        raise SilversetInputError("--treatment-share", f"must be strictly between 0 and 1, got {treatment_share}")
    try:
        config = ExperimentConfig(
            experiment_id=experiment_id or f"{spec.name}-v{spec.version}-{salt}",
            attribute=spec.name,
            attribute_version=spec.version,
            spec_content_hash=spec.content_hash,
            salt=salt,
            treatment_share=treatment_share,
            trigger_threshold=spec.serving.trigger_threshold,
        )
    except ValueError as exc:
        raise SilversetInputError("experiment", str(exc)) from None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # Written aside and renamed: a server following the file (ExperimentFile) never reads half of it.
    partial = out / f".{CONFIG_FILE}.{os.getpid()}.tmp"
    partial.write_text(json.dumps(config.model_dump(mode="json"), indent=2) + "\n", encoding="utf-8")
    os.replace(partial, out / CONFIG_FILE)
    return config


def load_experiment(path: str | Path) -> ExperimentConfig:
    """Read an experiment config from its JSON file or the folder holding ``experiment.json``."""
    p = Path(path)
    if p.is_dir():
        p = p / CONFIG_FILE
    if not p.exists():
        raise SilversetInputError(f"experiment '{path}'", "file not found")
    try:
        return ExperimentConfig.model_validate_json(p.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise SilversetInputError(f"experiment '{path}'", str(exc)) from None


class ExperimentFile:
    """The experiment.json a long-running server follows: ``refresh()`` reloads it when it changes on disk.

    A new file that does not load (missing, half-written, invalid) keeps the last good config and sets
    ``problem``; the start-up load raises instead, so a server never starts without a valid experiment.
    """

    def __init__(self, path: str | Path):
        p = Path(path)
        self.path = p / CONFIG_FILE if p.is_dir() else p
        self._seen = self._signature()
        self.config = load_experiment(self.path)
        self.problem: str | None = None

    def _signature(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def refresh(self) -> bool:
        """Reload after a change; True when a different config now applies. Blocking: call off the event loop."""
        seen = self._signature()
        if seen == self._seen:
            return False
        self._seen = seen
        try:
            new = load_experiment(self.path)
        except SilversetInputError as exc:
            self.problem = f"{exc}; still running {self.config.experiment_id}"
            log.error("experiment file changed but cannot be used: %s", self.problem)
            return False
        self.problem = None
        if new == self.config:
            return False
        log.info("experiment %s replaces %s", new.experiment_id, self.config.experiment_id)
        self.config = new
        return True
