"""Execution backends for a user checkpoint: eager TorchScript, ONNX Runtime (FP32 / dynamic INT8), TensorRT.

A checkpoint is a scorer or embedder with two inputs, ``frames`` float32 [B, T, 3, S, S] (RGB in [0, 1])
and ``text`` float32 [B, 384] (MiniLM embedding of title + description), and one output float32 [B] (a
logit) or [B, D] (an embedding). All heavy imports are lazy; TensorRT only loads on a GPU machine.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from silverset.components.common.digest import sha256_file, sha256_json
from silverset.components.common.errors import SilversetInputError

Runtime = Literal["auto", "eager", "onnxruntime", "onnxruntime-int8", "tensorrt-fp16", "tensorrt-int8"]
RUNTIMES: tuple[str, ...] = ("auto", "eager", "onnxruntime", "onnxruntime-int8", "tensorrt-fp16", "tensorrt-int8")


class CheckpointRunner(Protocol):
    name: str
    digest: str

    def __call__(self, frames: np.ndarray, text: np.ndarray) -> np.ndarray: ...


def default_cache_dir() -> Path:
    """Where compiled artefacts (quantized ONNX, TensorRT engines) are cached; SILVERSET_CACHE overrides."""
    return Path(os.environ.get("SILVERSET_CACHE", Path.home() / ".cache" / "silverset"))


def gpu_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:  # noqa: BLE001 - a broken CUDA install means "no GPU" here
        return False


class TorchScriptRunner:
    """Eager TorchScript on CPU (or CUDA), optionally in FP16 on GPU: the baseline every runtime is measured against."""

    def __init__(self, path: Path, *, device: str = "cpu", fp16: bool = False, threads: int | None = None):
        import torch

        if threads:
            torch.set_num_threads(threads)
        self.digest = sha256_file(path)
        self.device = device
        self.fp16 = fp16
        self.module = torch.jit.load(str(path), map_location=device).eval()
        if fp16:
            self.module = self.module.half()
        self.name = f"torchscript-eager{'-fp16' if fp16 else ''}@{device}"

    def __call__(self, frames: np.ndarray, text: np.ndarray) -> np.ndarray:
        import torch

        dtype = torch.float16 if self.fp16 else torch.float32
        with torch.inference_mode():
            out = self.module(torch.from_numpy(frames).to(self.device, dtype), torch.from_numpy(text).to(self.device, dtype))
        return out.float().cpu().numpy()


class OnnxRuntimeRunner:
    """ONNX Runtime on CPU; ``int8`` quantizes weights of MatMul/Gemm dynamically (cached by model digest)."""

    def __init__(self, path: Path, *, int8: bool = False, cache_dir: Path | None = None, threads: int | None = None):
        import onnxruntime as ort

        self.digest = sha256_file(path)
        model_path = path
        if int8:
            model_path = quantized_model(path, self.digest, cache_dir or default_cache_dir())
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.name = f"onnxruntime{'-int8-dynamic' if int8 else ''}@cpu"

    def __call__(self, frames: np.ndarray, text: np.ndarray) -> np.ndarray:
        feeds = dict(zip(self.input_names, (frames.astype(np.float32), text.astype(np.float32))))
        return self.session.run(None, feeds)[0]


def quantized_model(path: Path, digest: str, cache_dir: Path) -> Path:
    """Dynamic INT8 quantization of an ONNX model (weights int8, activations quantized per batch at run time)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target = cache_dir / "onnx-int8" / f"{digest}.onnx"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".{os.getpid()}.tmp.onnx")
        # MatMul/Gemm only: dynamic ConvInteger is slow on CPU and hurts agreement more than it gains.
        quantize_dynamic(str(path), str(tmp), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"])
        os.replace(tmp, target)
    return target


@dataclass(frozen=True)
class EngineKey:
    """What a TensorRT engine is valid for: the exact model, GPU, TensorRT version, precision and batch shape."""

    model_digest: str
    gpu_name: str
    tensorrt_version: str
    precision: str
    frames_shape: tuple[int, ...]
    text_shape: tuple[int, ...]

    @property
    def digest(self) -> str:
        return sha256_json(self.__dict__)


class TensorRTRunner:
    """A TensorRT engine built from the ONNX checkpoint (FP16, or INT8 with entropy calibration), cached on disk.

    The engine is built for a fixed batch shape (frames [B, T, 3, S, S], text [B, 384]); smaller final batches are
    zero-padded. Cache key: model digest, GPU name, TensorRT version, precision, batch shape (``EngineKey``).
    """

    def __init__(self, onnx_path: Path, *, batch_size: int, frames_shape: tuple[int, int, int, int], text_dim: int = 384,
                 precision: Literal["fp16", "int8"] = "fp16", calibration: list[tuple[np.ndarray, np.ndarray]] | None = None,
                 cache_dir: Path | None = None):
        import tensorrt as trt
        import torch

        self.trt, self.torch = trt, torch
        self.digest = sha256_file(onnx_path)
        self.batch_size = batch_size
        self.key = EngineKey(self.digest, torch.cuda.get_device_name(0), trt.__version__, precision,
                             (batch_size, *frames_shape), (batch_size, text_dim))
        path = (cache_dir or default_cache_dir()) / "tensorrt" / f"{self.key.digest}.engine"
        self.cache_hit = path.exists()
        if not self.cache_hit:
            path.parent.mkdir(parents=True, exist_ok=True)
            plan = self._build(onnx_path, precision, calibration)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(plan)
            os.replace(tmp, path)
            path.with_suffix(".json").write_text(json.dumps(self.key.__dict__, indent=2))
        logger = trt.Logger(trt.Logger.WARNING)
        self.engine = trt.Runtime(logger).deserialize_cuda_engine(path.read_bytes())
        self.context = self.engine.create_execution_context()
        self.names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in self.names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in self.names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self.name = f"tensorrt-{precision}@{self.key.gpu_name}"

    def _build(self, onnx_path: Path, precision: str, calibration) -> bytes:
        trt = self.trt
        logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(logger)
        network = builder.create_network(0)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(onnx_path.read_bytes()):
            problems = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise SilversetInputError(f"checkpoint '{onnx_path}'", f"TensorRT cannot parse it: {problems}")
        config = builder.create_builder_config()
        profile = builder.create_optimization_profile()
        for i in range(network.num_inputs):
            tensor = network.get_input(i)
            shape = self.key.frames_shape if len(tensor.shape) == 5 else self.key.text_shape
            profile.set_shape(tensor.name, shape, shape, shape)
        config.add_optimization_profile(profile)
        config.set_flag(trt.BuilderFlag.FP16)
        if precision == "int8":
            if not calibration:
                raise SilversetInputError("--runtime tensorrt-int8", "needs calibration batches (frames, text)")
            config.set_flag(trt.BuilderFlag.INT8)
            config.int8_calibrator = _make_calibrator(trt, self.torch, calibration)
            config.set_calibration_profile(profile)
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise RuntimeError(f"TensorRT failed to build an engine for {onnx_path}")
        return bytes(plan)

    def __call__(self, frames: np.ndarray, text: np.ndarray) -> np.ndarray:
        torch = self.torch
        n = frames.shape[0]
        if n > self.batch_size:
            return np.concatenate([self(frames[i : i + self.batch_size], text[i : i + self.batch_size])
                                   for i in range(0, n, self.batch_size)])
        pad = self.batch_size - n
        feeds = [np.pad(frames, [(0, pad)] + [(0, 0)] * (frames.ndim - 1)), np.pad(text, [(0, pad), (0, 0)])]
        stream = torch.cuda.current_stream()
        buffers = []
        for name, array in zip(self.inputs, feeds):
            t = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).cuda()
            self.context.set_input_shape(name, tuple(t.shape))
            self.context.set_tensor_address(name, t.data_ptr())
            buffers.append(t)
        results = []
        for name in self.outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            t = torch.empty(shape, dtype=torch.float32, device="cuda")
            self.context.set_tensor_address(name, t.data_ptr())
            results.append(t)
        self.context.execute_async_v3(stream.cuda_stream)
        stream.synchronize()
        return results[0].cpu().numpy()[:n]


def _make_calibrator(trt, torch, batches):
    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            super().__init__()
            self.batches = list(batches)
            self.index = 0
            self.buffers: list = []

        def get_batch_size(self):
            return self.batches[0][0].shape[0]

        def get_batch(self, names):
            if self.index >= len(self.batches):
                return None
            frames, text = self.batches[self.index]
            self.index += 1
            self.buffers = [torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).cuda() for a in (frames, text)]
            return [b.data_ptr() for b in self.buffers]

        def read_calibration_cache(self):
            return None

        def write_calibration_cache(self, cache):
            return None

    return EntropyCalibrator()


def open_checkpoint(path: str | Path, *, runtime: Runtime = "auto", batch_size: int = 16,
                    frames_shape: tuple[int, int, int, int] = (8, 3, 64, 64), threads: int | None = None,
                    calibration: list[tuple[np.ndarray, np.ndarray]] | None = None) -> CheckpointRunner:
    """Open a user checkpoint (``.onnx`` or TorchScript ``.pt``/``.ts``) on the best runtime available.

    ``auto``: TensorRT FP16 on a GPU with an ONNX file, else ONNX Runtime with dynamic INT8 for an ONNX file,
    else eager TorchScript. A sibling file with the other suffix (model.onnx beside model.pt) is used when the
    chosen runtime needs the other format.
    """
    path = Path(path)
    if not path.exists():
        raise SilversetInputError(f"checkpoint '{path}'", "file not found")
    onnx = path if path.suffix == ".onnx" else next((p for p in (path.with_suffix(".onnx"),) if p.exists()), None)
    script = path if path.suffix in (".pt", ".ts", ".pth") else next(
        (p for p in (path.with_suffix(".pt"), path.with_suffix(".ts")) if p.exists()), None)
    if runtime == "auto":
        runtime = "tensorrt-fp16" if (onnx and gpu_available()) else ("onnxruntime-int8" if onnx else "eager")
    if runtime == "eager":
        if script is None:
            raise SilversetInputError(f"checkpoint '{path}'", "runtime 'eager' needs a TorchScript file (.pt)")
        return TorchScriptRunner(script, device="cuda" if gpu_available() else "cpu", threads=threads)
    if onnx is None:
        raise SilversetInputError(f"checkpoint '{path}'", f"runtime '{runtime}' needs an ONNX file (.onnx)")
    if runtime in ("onnxruntime", "onnxruntime-int8"):
        return OnnxRuntimeRunner(onnx, int8=runtime == "onnxruntime-int8", threads=threads)
    if runtime in ("tensorrt-fp16", "tensorrt-int8"):
        if not gpu_available():
            raise SilversetInputError("--runtime", f"'{runtime}' needs an NVIDIA GPU; none is visible")
        return TensorRTRunner(onnx, batch_size=batch_size, frames_shape=frames_shape,
                              precision=runtime.removeprefix("tensorrt-"), calibration=calibration)
    raise SilversetInputError("--runtime", f"unknown runtime {runtime!r}; use one of {', '.join(RUNTIMES)}")
