"""Precision carried in the ONNX graph: FP16 by converting the exported graph, INT8 by Q/DQ from a calibration set.

TensorRT 11 builds strongly typed networks only (BuilderFlag.FP16/INT8 and the INT8 calibrator are gone) and
TensorRT 10 builds them too, so an engine's precision is decided here, in the graph it is built from. ONNX
Runtime runs the same graphs (the Q/DQ one on CPU as well), which is how INT8 label agreement with FP32 is
measured on machines without a GPU. Converted graphs are cached by model digest (+ calibration digest).
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Literal, Sequence

import numpy as np

from silverset.components.common.errors import SilversetInputError

_LOGGER = logging.getLogger(__name__)

Precision = Literal["fp32", "fp16", "int8"]
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "fp16", "int8")
# Quantized ops: TensorRT and ONNX Runtime fuse Q/DQ around these; elementwise ops stay in float.
QDQ_OPS = ["MatMul", "Gemm", "Conv"]

CalibrationBatch = tuple[np.ndarray, np.ndarray]  # frames float32 [B, T, 3, S, S], text float32 [B, 384]


def calibration_digest(batches: Sequence[CalibrationBatch]) -> str:
    """sha256 over the calibration arrays (shape, dtype, bytes): part of every INT8 cache key."""
    h = hashlib.sha256()
    for batch in batches:
        for array in batch:
            array = np.ascontiguousarray(array, dtype=np.float32)
            h.update(f"{array.shape}:".encode())
            h.update(array.tobytes())
    return h.hexdigest()


def _write_once(target: Path, build) -> Path:
    """Write ``build(tmp_path)``'s file to ``target`` atomically unless it is already there."""
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".{os.getpid()}.tmp.onnx")
        try:
            build(tmp)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    return target


def fp16_model(onnx_path: Path, model_digest: str, cache_dir: Path) -> Path:
    """The graph with float32 weights and activations in float16; inputs and outputs stay float32."""

    def build(tmp: Path) -> None:
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16

        model = convert_float_to_float16(onnx.load(str(onnx_path)), keep_io_types=True)
        onnx.save(model, str(tmp))

    return _write_once(cache_dir / "onnx-fp16" / f"{model_digest}.onnx", build)


class _Batches:
    """ONNX Runtime's CalibrationDataReader over (frames, text) batches, fed by input name."""

    def __init__(self, input_names: list[str], batches: Sequence[CalibrationBatch]):
        self._feeds = iter(
            [dict(zip(input_names, (np.asarray(f, np.float32), np.asarray(t, np.float32)))) for f, t in batches]
        )

    def get_next(self):
        return next(self._feeds, None)


def qdq_int8_model(onnx_path: Path, model_digest: str, batches: Sequence[CalibrationBatch], cache_dir: Path) -> Path:
    """Static INT8 with QuantizeLinear/DequantizeLinear pairs, ranges calibrated on ``batches``.

    Symmetric INT8 for activations and per-channel weights, biases left in float: the form TensorRT's explicit
    quantization takes (int8 Q/DQ with zero points of 0), and ONNX Runtime's CPU kernels run it as well.
    """
    if not batches:
        raise SilversetInputError("--calibration", "INT8 needs at least one calibration batch of frames")
    digest = calibration_digest(batches)

    def build(tmp: Path) -> None:
        import onnxruntime as ort
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

        names = [i.name for i in ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).get_inputs()]
        _LOGGER.info("calibrating INT8 ranges of %s on %d batches", onnx_path.name, len(batches))
        quantize_static(
            str(onnx_path),
            str(tmp),
            _Batches(names, batches),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=QDQ_OPS,
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False},
        )

    return _write_once(cache_dir / "onnx-qdq-int8" / f"{model_digest}-{digest[:16]}.onnx", build)


def label_agreement(reference_logits: np.ndarray, logits: np.ndarray, *, threshold: float = 0.0) -> float:
    """Share of items whose label (logit >= threshold) is the same under both runs."""
    reference_logits, logits = np.asarray(reference_logits).reshape(-1), np.asarray(logits).reshape(-1)
    if reference_logits.shape != logits.shape or reference_logits.size == 0:
        raise ValueError(f"cannot compare logits of shapes {reference_logits.shape} and {logits.shape}")
    return float(((reference_logits >= threshold) == (logits >= threshold)).mean())
