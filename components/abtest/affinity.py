"""The learned trigger: a small logistic model of a user's engagement with an attribute from their history.

The index server triggers restricted retrieval for a user when ``model.probability(model.features(p,
threshold)) >= model.threshold``, where ``p`` are the student's probabilities of the user's known history
videos, oldest first, and ``threshold`` is the vocabulary rule's ``min_probability``. Without a model the
server uses the spec's rule (share or mean score >= ``serving.trigger_threshold``).

A model is a JSON file (coefficients, feature names, scaler, decision threshold, training metadata): a
server reads numbers, never unpickles code. ``AffinityModel.load`` refuses anything malformed with a
SilversetInputError naming the file.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import fsspec
import numpy as np

from silverset.components.common.errors import SilversetInputError

FORMAT = "silverset.affinity/1"
# The history features, in the order of a feature vector. ``features`` computes exactly these.
FEATURE_NAMES = ("share", "mean_score", "max_score", "recent_mean", "log_history")
# Recency weighting: an item ``half_life`` positions before the newest counts half as much.
DEFAULT_HALF_LIFE = 5.0
MAX_FILE_BYTES = 1 << 20


def history_features(
    probabilities: np.ndarray, threshold: float, *, half_life: float = DEFAULT_HALF_LIFE
) -> np.ndarray:
    """Features of one history: float64 [len(FEATURE_NAMES)].

    ``probabilities`` are the student's scores of the user's known history videos, oldest -> newest.
    share = fraction >= ``threshold``; mean/max score; recent_mean = mean weighted 0.5 ** (age / half_life),
    age 0 for the newest; log_history = log(1 + length). An empty history is all zeros.
    """
    p = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    n = p.size
    if n == 0:
        return np.zeros(len(FEATURE_NAMES), dtype=np.float64)
    age = np.arange(n - 1, -1, -1, dtype=np.float64)
    weights = 0.5 ** (age / half_life)
    return np.array(
        [
            float(np.mean(p >= threshold)),
            float(p.mean()),
            float(p.max()),
            float(np.dot(weights, p) / weights.sum()),
            math.log1p(n),
        ],
        dtype=np.float64,
    )


@dataclass(frozen=True)
class AffinityModel:
    """Standardized logistic regression over ``FEATURE_NAMES``.

    ``threshold`` is the trigger cut-off on its probability.
    """

    coefficients: tuple[float, ...]
    intercept: float
    scaler_mean: tuple[float, ...]
    scaler_scale: tuple[float, ...]
    threshold: float
    half_life: float = DEFAULT_HALF_LIFE
    feature_names: tuple[str, ...] = FEATURE_NAMES
    training: dict = field(default_factory=dict)

    def features(self, probabilities: np.ndarray, threshold: float) -> np.ndarray:
        """History features (see ``history_features``) with this model's recency half-life."""
        return history_features(probabilities, threshold, half_life=self.half_life)

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """Engagement probability per row of ``features`` float [n, len(FEATURE_NAMES)]."""
        x = (np.atleast_2d(np.asarray(features, dtype=np.float64)) - np.asarray(self.scaler_mean)) / np.asarray(
            self.scaler_scale
        )
        z = x @ np.asarray(self.coefficients) + self.intercept
        return 1.0 / (1.0 + np.exp(-np.clip(z, -500, 500)))

    def probability(self, features: np.ndarray) -> float:
        """Engagement probability of one feature vector."""
        return float(self.probabilities(features)[0])

    def triggers(self, probabilities: np.ndarray, threshold: float) -> tuple[bool, float]:
        """(triggered, affinity) for one history: the model's probability against ``self.threshold``."""
        affinity = self.probability(self.features(probabilities, threshold))
        return affinity >= self.threshold, affinity

    def to_json(self) -> dict:
        return {
            "format": FORMAT,
            "feature_names": list(self.feature_names),
            "coefficients": list(self.coefficients),
            "intercept": self.intercept,
            "scaler": {"mean": list(self.scaler_mean), "scale": list(self.scaler_scale)},
            "threshold": self.threshold,
            "half_life": self.half_life,
            "training": self.training,
        }

    def save(self, uri: str | Path) -> None:
        text = json.dumps(self.to_json(), indent=2, sort_keys=True, allow_nan=False)
        with fsspec.open(str(uri), "w") as f:
            f.write(text + "\n")

    @classmethod
    def from_json(cls, value: object, *, source: str = "<affinity model>") -> "AffinityModel":
        """Validate a decoded model file; SilversetInputError naming ``source`` for anything off."""
        what = f"affinity model '{source}'"
        if not isinstance(value, dict):
            raise SilversetInputError(what, "is not a JSON object")
        if value.get("format") != FORMAT:
            raise SilversetInputError(what, f"format is {value.get('format')!r}, expected {FORMAT!r}")
        names = value.get("feature_names")
        if names != list(FEATURE_NAMES):
            raise SilversetInputError(what, f"feature_names {names!r} are not this server's {list(FEATURE_NAMES)}")
        scaler = value.get("scaler")
        if not isinstance(scaler, dict):
            raise SilversetInputError(what, "'scaler' must be an object with 'mean' and 'scale'")
        vectors = {
            "coefficients": value.get("coefficients"),
            "scaler.mean": scaler.get("mean"),
            "scaler.scale": scaler.get("scale"),
        }
        for name, vec in vectors.items():
            if not isinstance(vec, list) or len(vec) != len(FEATURE_NAMES) or not all(_finite_number(v) for v in vec):
                raise SilversetInputError(what, f"'{name}' must be {len(FEATURE_NAMES)} finite numbers")
        if not all(v > 0 for v in vectors["scaler.scale"]):
            raise SilversetInputError(what, "'scaler.scale' entries must be > 0")
        for name, low, high in (
            ("intercept", -math.inf, math.inf),
            ("threshold", 0.0, 1.0),
            ("half_life", 0.0, math.inf),
        ):
            v = value.get(name, DEFAULT_HALF_LIFE if name == "half_life" else None)
            if not _finite_number(v) or not (low <= v <= high) or (name == "half_life" and v <= 0):
                raise SilversetInputError(
                    what,
                    f"'{name}' must be a finite number"
                    + (f" in [{low}, {high}]" if name == "threshold" else "")
                    + (" > 0" if name == "half_life" else ""),
                )
        training = value.get("training", {})
        if not isinstance(training, dict):
            raise SilversetInputError(what, "'training' must be an object")
        return cls(
            coefficients=tuple(float(v) for v in vectors["coefficients"]),
            intercept=float(value["intercept"]),
            scaler_mean=tuple(float(v) for v in vectors["scaler.mean"]),
            scaler_scale=tuple(float(v) for v in vectors["scaler.scale"]),
            threshold=float(value["threshold"]),
            half_life=float(value.get("half_life", DEFAULT_HALF_LIFE)),
            training=training,
        )

    @classmethod
    def load(cls, uri: str | Path) -> "AffinityModel":
        """Read and validate a model file (local path or fsspec URI)."""
        what = f"affinity model '{uri}'"
        try:
            with fsspec.open(str(uri), "rb") as f:
                raw = f.read(MAX_FILE_BYTES + 1)
        except FileNotFoundError:
            raise SilversetInputError(what, "does not exist") from None
        except OSError as exc:
            raise SilversetInputError(what, f"cannot be read: {type(exc).__name__}") from None
        if len(raw) > MAX_FILE_BYTES:
            raise SilversetInputError(what, f"is larger than {MAX_FILE_BYTES} bytes")
        try:
            value = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
        except (UnicodeDecodeError, ValueError) as exc:
            raise SilversetInputError(what, f"is not valid JSON: {str(exc).splitlines()[0][:120]}") from None
        return cls.from_json(value, source=str(uri))


def _finite_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")
