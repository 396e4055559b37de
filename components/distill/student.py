"""The student: a logistic head or small MLP on precomputed embeddings, its KD loss and its calibration."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torch.nn import functional as F


class StudentOptions(BaseModel):
    """Architecture and training settings of one student; the defaults are what `silverset distill` uses."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    architecture: Literal["logistic", "mlp"] = "mlp"
    hidden_units: int = Field(128, ge=1, le=8192)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    learning_rate: float = Field(3e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    batch_size: int = Field(256, ge=1)
    max_epochs: int = Field(200, ge=1)
    patience: int = Field(10, ge=1)
    held_out_fraction: float = Field(0.2, gt=0.0, lt=0.9)
    hard_label_weight: float = Field(0.0, ge=0.0, le=1.0)  # 0 = soft targets only
    balance_classes: bool = True
    calibration: Literal["platt", "temperature", "none"] = "platt"
    target_precision: float | None = Field(None, gt=0.0, le=1.0)  # None: threshold at best F1
    seed: int = 0


class StudentNet(nn.Module):
    """embeddings float32 [n, d] -> logits float32 [n] (P(positive) before calibration)."""

    def __init__(self, dimension: int, *, architecture: str = "mlp", hidden_units: int = 128, dropout: float = 0.1):
        super().__init__()
        if architecture == "logistic":
            self.body = nn.Linear(dimension, 1)
        else:
            self.body = nn.Sequential(
                nn.Linear(dimension, hidden_units),
                nn.ReLU(),
                nn.Dropout(dropout),
                nn.Linear(hidden_units, 1),
            )

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.body(embeddings).squeeze(-1)


class DistillationLoss(nn.Module):
    """Binary KD loss on logits.

    ``(1 - hard_weight) * BCE(sigmoid(z), p_teacher) + hard_weight * BCE(sigmoid(z), 1[p_teacher >= 0.5])``
    where the positive term of each BCE is multiplied by ``pos_weight`` (class-imbalance handling), and
    the result is averaged over the batch. logits, teacher_probabilities: float32 [n] -> scalar.
    """

    def __init__(self, *, pos_weight: float = 1.0, hard_weight: float = 0.0):
        super().__init__()
        self.register_buffer("pos_weight", torch.tensor(float(pos_weight)))
        self.hard_weight = float(hard_weight)

    def forward(self, logits: torch.Tensor, teacher_probabilities: torch.Tensor) -> torch.Tensor:
        soft = F.binary_cross_entropy_with_logits(logits, teacher_probabilities, pos_weight=self.pos_weight)
        if self.hard_weight == 0.0:
            return soft
        hard_targets = (teacher_probabilities >= 0.5).to(logits.dtype)
        hard = F.binary_cross_entropy_with_logits(logits, hard_targets, pos_weight=self.pos_weight)
        return (1.0 - self.hard_weight) * soft + self.hard_weight * hard


class CalibratedStudent(nn.Module):
    """The exported model: embeddings float32 [n, d] -> calibrated P(positive) float32 [n].

    Calibration is ``sigmoid(scale * logit + bias)``: Platt fits both, temperature scaling fits only
    ``scale = 1 / T``; both are folded into the exported graph so every runtime returns the same numbers.
    """

    def __init__(self, net: StudentNet, *, scale: float = 1.0, bias: float = 0.0):
        super().__init__()
        self.net = net
        self.register_buffer("scale", torch.tensor(float(scale)))
        self.register_buffer("bias", torch.tensor(float(bias)))

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(embeddings) * self.scale + self.bias)


def fit_calibration(logits: torch.Tensor, teacher_probabilities: torch.Tensor, *, method: str) -> tuple[float, float]:
    """Fit (scale, bias) on held-out logits [n] against the teacher's probabilities [n] by minimizing BCE.

    ``platt``: scale and bias; ``temperature``: scale only (bias 0); ``none``: (1, 0).
    Training with ``pos_weight`` inflates probabilities on purpose; this undoes that on held-out data.
    """
    if method == "none" or logits.numel() == 0:
        return 1.0, 0.0
    logits = logits.detach().double()
    targets = teacher_probabilities.detach().double()
    scale = torch.ones((), dtype=torch.float64, requires_grad=True)
    bias = torch.zeros((), dtype=torch.float64, requires_grad=method == "platt")
    params = [scale, bias] if method == "platt" else [scale]
    optimizer = torch.optim.LBFGS(params, lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.binary_cross_entropy_with_logits(logits * scale + bias, targets)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(scale.detach()), float(bias.detach())
