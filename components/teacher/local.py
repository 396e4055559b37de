"""The local teacher: a user's frames + text scorer checkpoint (TorchScript or ONNX) run through the runtime.

On GPU the ONNX file becomes a cached TensorRT engine (FP16, or INT8 with calibration); on CPU it runs in
ONNX Runtime with dynamic INT8 quantization; eager TorchScript is the baseline. Output: one logit per video.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from silverset.components.common.digest import sha256_file
from silverset.components.common.spec import AttributeSpec
from silverset.components.runtime.handler import ItemResult, ModelHandler, WorkItem

from .zero_shot import label_row

FRAMES_PER_VIDEO = 8
IMAGE_SIZE = 64


class LocalTeacherHandler(ModelHandler):
    """Scores frames float32 [B, 8, 3, 64, 64] + MiniLM text float32 [B, 384] -> logits [B]; P = sigmoid(logit)."""

    stage = "annotate"

    def __init__(self, spec: AttributeSpec, *, checkpoint: str, runtime: str = "auto", batch_size: int = 32,
                 threshold_logit: float = 0.0):
        self.spec, self.checkpoint = spec, Path(checkpoint)
        self.runtime, self.batch_size, self.threshold_logit = runtime, batch_size, threshold_logit
        self._runner = None

    def batch_elements_kwargs(self) -> dict[str, int]:
        return {"min_batch_size": 1, "max_batch_size": self.batch_size}

    def load_model(self):
        from silverset.components.runtime.backends import open_checkpoint

        self._runner = open_checkpoint(self.checkpoint, runtime=self.runtime,  # type: ignore[arg-type]
                                       batch_size=self.batch_size, frames_shape=(FRAMES_PER_VIDEO, 3, IMAGE_SIZE, IMAGE_SIZE))
        return self._runner

    @property
    def model_id(self) -> str:
        runner = self._runner or self.load_model()
        return f"local:{self.checkpoint.name}@sha256:{sha256_file(self.checkpoint)[:16]}:{runner.name}"

    def run_inference(self, batch: Sequence[WorkItem], model) -> list[ItemResult]:
        from silverset.components.embed.embed import checkpoint_frames
        from silverset.components.embed.text import embed_texts

        results, stack, ok = [], [], []
        for item in batch:
            try:
                stack.append(checkpoint_frames(item.payload.frames, FRAMES_PER_VIDEO, IMAGE_SIZE))
                ok.append(item)
            except Exception as exc:  # noqa: BLE001 - a bad JPEG drops that video, not the batch
                results.append(ItemResult(key=item.key, error_type="bad_frames", message=f"{type(exc).__name__}: {exc}"))
        if ok:
            text = embed_texts([it.payload.text for it in ok])
            logits = np.asarray(model(np.stack(stack), text), dtype=np.float64).reshape(len(ok))
            for item, logit in zip(ok, logits):
                p = float(1.0 / (1.0 + np.exp(-logit)))
                results.append(ItemResult(key=item.key, row=label_row(
                    self.spec, item.key, p, self.model_id, f"logit {logit:.3f}", label=int(logit >= self.threshold_logit))))
        return results
