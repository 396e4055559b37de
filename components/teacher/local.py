"""The local teacher: a user's frames + text scorer checkpoint (TorchScript or ONNX) run through the runtime.

On GPU the ONNX file becomes a cached TensorRT engine (FP16, or INT8 from a Q/DQ graph calibrated on frames of
the corpus); on CPU it runs in ONNX Runtime (dynamic INT8, or the same Q/DQ graph); eager TorchScript is the
baseline. Output: one logit per video. The checkpoint is hashed and loaded once per run.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from silverset.components.common.spec import AttributeSpec
from silverset.components.runtime.handler import ItemResult, ModelHandler, WorkItem

from .zero_shot import label_row

_LOGGER = logging.getLogger(__name__)

FRAMES_PER_VIDEO = 8
IMAGE_SIZE = 64
CALIBRATION_VIDEOS = 64  # INT8 ranges are calibrated on at most this many videos of the calibration frames
CALIBRATION_BATCH = 16


@dataclass(frozen=True)
class PrecisionReport:
    """How a reduced-precision teacher agrees with the checkpoint in FP32 on the calibration videos."""

    precision: str
    runner: str
    calibration_videos: int
    label_agreement_vs_fp32: float
    max_abs_logit_error: float


def calibration_batches(
    frames_uri: str, texts: dict[str, str], *, limit: int = CALIBRATION_VIDEOS, batch_size: int = CALIBRATION_BATCH
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(frames float32 [B, 8, 3, 64, 64], text float32 [B, 384]) batches from up to ``limit`` videos of a frames table.

    Videos are picked by a hash of their id (a spread over the corpus, the same on every run); a video's text is
    its manifest title + description ('' when the manifest does not list it).
    """
    from silverset.components.common.errors import SilversetInputError
    from silverset.components.embed.embed import checkpoint_frames
    from silverset.components.embed.text import embed_texts
    from silverset.components.runtime.inputs import load_frames

    try:
        videos = load_frames(frames_uri)
    except SilversetInputError as exc:  # name the flag the table came from
        raise SilversetInputError(f"--calibration '{frames_uri}'", exc.problem) from None
    if not videos:
        raise SilversetInputError(f"--calibration '{frames_uri}'", "the frames table holds no videos to calibrate on")
    picked = sorted(videos, key=lambda v: hashlib.sha256(v.encode()).hexdigest())[:limit]
    frames = np.stack([checkpoint_frames(videos[v], FRAMES_PER_VIDEO, IMAGE_SIZE) for v in picked])
    text = np.asarray(embed_texts([texts.get(v, "") for v in picked]), dtype=np.float32)
    return [(frames[i : i + batch_size], text[i : i + batch_size]) for i in range(0, len(picked), batch_size)]


class LocalTeacherHandler(ModelHandler):
    """Scores frames float32 [B, 8, 3, 64, 64] + MiniLM text float32 [B, 384] -> logits [B]; P = sigmoid(logit)."""

    stage = "annotate"

    def __init__(
        self,
        spec: AttributeSpec,
        *,
        checkpoint: str,
        runtime: str = "auto",
        precision: str = "auto",
        calibration: str | None = None,
        calibration_texts: dict[str, str] | None = None,
        batch_size: int = 32,
        threshold_logit: float = 0.0,
    ):
        self.spec, self.checkpoint = spec, Path(checkpoint)
        self.runtime, self.precision, self.batch_size, self.threshold_logit = (
            runtime,
            precision,
            batch_size,
            threshold_logit,
        )
        self.calibration, self.calibration_texts = calibration, calibration_texts or {}
        self.precision_report: PrecisionReport | None = None
        self._runner = None

    def batch_elements_kwargs(self) -> dict[str, int]:
        return {"min_batch_size": 1, "max_batch_size": self.batch_size}

    def load_model(self):
        """Open the checkpoint once (the runner and ``model_id`` share it); with calibration, measure agreement."""
        if self._runner is not None:
            return self._runner
        from silverset.components.runtime.backends import open_checkpoint

        batches = calibration_batches(self.calibration, self.calibration_texts) if self.calibration else None
        self._runner = open_checkpoint(
            self.checkpoint,
            runtime=self.runtime,
            precision=self.precision,  # type: ignore[arg-type]
            batch_size=self.batch_size,
            calibration=batches,
            frames_shape=(FRAMES_PER_VIDEO, 3, IMAGE_SIZE, IMAGE_SIZE),
        )
        if batches:
            self.precision_report = self._agreement(batches)
        _LOGGER.info(
            "local teacher: %s on %s (precision %s, batch %d)",
            Path(self.checkpoint).name,
            getattr(self._runner, "name", type(self._runner).__name__),
            self.precision,
            self.batch_size,
        )
        return self._runner

    def _agreement(self, batches) -> PrecisionReport:
        from silverset.components.runtime.backends import open_checkpoint
        from silverset.components.runtime.precision import label_agreement

        fp32 = open_checkpoint(self.checkpoint, runtime="onnxruntime", precision="fp32")
        reference = np.concatenate([np.asarray(fp32(f, t)).reshape(-1) for f, t in batches])
        logits = np.concatenate([np.asarray(self._runner(f, t)).reshape(-1) for f, t in batches])
        report = PrecisionReport(
            precision=self._runner.name.split("@")[0],
            runner=self._runner.name,
            calibration_videos=len(reference),
            label_agreement_vs_fp32=label_agreement(reference, logits, threshold=self.threshold_logit),
            max_abs_logit_error=float(np.abs(reference - logits).max()),
        )
        level = logging.INFO if report.label_agreement_vs_fp32 >= 0.95 else logging.WARNING
        _LOGGER.log(
            level,
            "%s agrees with FP32 on %.1f%% of %d calibration videos (max logit error %.4f)",
            report.runner,
            100 * report.label_agreement_vs_fp32,
            report.calibration_videos,
            report.max_abs_logit_error,
        )
        return report

    @property
    def model_id(self) -> str:
        runner = self.load_model()
        calibrated = getattr(runner, "calibration_digest", None) or getattr(
            getattr(runner, "key", None), "calibration_digest", None
        )
        suffix = f":cal-{calibrated[:12]}" if calibrated else ""
        return f"local:{self.checkpoint.name}@sha256:{runner.digest[:16]}:{runner.name}{suffix}"

    def run_inference(self, batch: Sequence[WorkItem], model) -> list[ItemResult]:
        from silverset.components.embed.embed import checkpoint_frames
        from silverset.components.embed.text import embed_texts

        results, stack, ok = [], [], []
        for item in batch:
            try:
                stack.append(checkpoint_frames(item.payload.frames, FRAMES_PER_VIDEO, IMAGE_SIZE))
                ok.append(item)
            except Exception as exc:  # noqa: BLE001 - a bad JPEG drops that video, not the batch
                results.append(
                    ItemResult(key=item.key, error_type="bad_frames", message=f"{type(exc).__name__}: {exc}")
                )
        if ok:
            text = embed_texts([it.payload.text for it in ok])
            logits = np.asarray(model(np.stack(stack), text), dtype=np.float64).reshape(len(ok))
            for item, logit in zip(ok, logits):
                p = float(1.0 / (1.0 + np.exp(-logit)))
                results.append(
                    ItemResult(
                        key=item.key,
                        row=label_row(
                            self.spec,
                            item.key,
                            p,
                            self.model_id,
                            f"logit {logit:.3f}",
                            label=int(logit >= self.threshold_logit),
                        ),
                    )
                )
        return results
