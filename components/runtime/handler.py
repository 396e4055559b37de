"""The ModelHandler-style interface every embedder, teacher and student backend implements.

Shaped after Apache Beam's ``ml.inference.base.ModelHandler``: ``load_model()`` once per worker,
``run_inference(batch, model)`` per batch, ``batch_elements_kwargs()`` for batch sizing. Heavy imports
(torch, onnxruntime, tensorrt, google-genai) happen inside ``load_model``, never at module import.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Generic, Sequence, TypeVar

ModelT = TypeVar("ModelT")


@dataclass(frozen=True)
class WorkItem:
    """One unit of work: a video and whatever the handler needs about it (frames, text, ...)."""

    key: str
    payload: Any = None
    uri: str | None = None


@dataclass(frozen=True)
class ItemResult:
    """What a handler made of one item: an output row, or an error (type + message), never both.

    ``cost_usd`` is what this item cost (0 for a cache hit or a local model); ``requests`` is how many
    paid or attempted remote calls it took (0 for local models and cache hits).
    """

    key: str
    row: dict[str, Any] | None = None
    error_type: str | None = None
    message: str | None = None
    cost_usd: float = 0.0
    requests: int = 0
    cached: bool = False

    def __post_init__(self) -> None:
        if (self.row is None) == (self.error_type is None):
            raise ValueError(f"item '{self.key}': a result has exactly one of row or error_type")


@dataclass
class BudgetExhausted(Exception):
    """Raised by a handler when the next paid call would exceed the budget; results so far are kept."""

    partial: list[ItemResult] = field(default_factory=list)
    message: str = "budget exhausted"

    def __str__(self) -> str:
        return self.message


class ModelHandler(abc.ABC, Generic[ModelT]):
    """Backend interface: load once, then turn batches of work items into one result per item."""

    #: stage name used in errors.parquet rows, e.g. "embed" or "annotate"
    stage: str = "inference"

    @abc.abstractmethod
    def load_model(self) -> ModelT:
        """Load weights / open clients. Called once per runner, lazily."""

    @abc.abstractmethod
    def run_inference(self, batch: Sequence[WorkItem], model: ModelT) -> list[ItemResult]:
        """Return exactly one ItemResult per item of ``batch``, in any order.

        Per-item failures are ItemResults with ``error_type``; only a failure of the whole backend
        (or BudgetExhausted) may raise.
        """

    def batch_elements_kwargs(self) -> dict[str, int]:
        """Batch sizing hints, as in Beam: ``min_batch_size`` / ``max_batch_size`` items."""
        return {"min_batch_size": 1, "max_batch_size": 32}

    def is_final(self, error_type: str) -> bool:
        """Whether an error of this type is the item's verdict (kept by a rerun) or transient (tried again).

        By default every error is final; a remote teacher keeps only terminal verdicts (a safety block, an
        unusable video) and lets a rerun retry the rest.
        """
        return True

    @property
    def model_id(self) -> str:
        """Identifier written into output rows (embedder_id / teacher_id)."""
        return type(self).__name__
