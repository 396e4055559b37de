"""Execution backends for a user checkpoint: eager TorchScript, ONNX Runtime (CPU, CUDA or TensorRT EP), TensorRT.

A checkpoint is a scorer or embedder with two inputs, ``frames`` float32 [B, T, 3, S, S] (RGB in [0, 1])
and ``text`` float32 [B, 384] (MiniLM embedding of title + description), and one output float32 [B] (a
logit) or [B, D] (an embedding). All heavy imports are lazy; TensorRT only loads on a GPU machine.

Precision lives in the ONNX graph (``precision.py``): TensorRT 10 and 11 both build the FP16 or Q/DQ INT8
graph as a strongly typed network, so no TensorRT-11-removed builder flag or calibrator is ever used. When
TensorRT cannot be had, ``open_checkpoint`` says why in the log and falls back to ONNX Runtime with the
TensorRT or CUDA execution provider, then to ONNX Runtime on the CPU.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from silverset.components.common.digest import sha256_file, sha256_json
from silverset.components.common.errors import SilversetInputError

from .precision import PRECISIONS, CalibrationBatch, calibration_digest, fp16_model, qdq_int8_model

_LOGGER = logging.getLogger(__name__)

Runtime = Literal["auto", "eager", "onnxruntime", "onnxruntime-int8", "tensorrt", "tensorrt-fp16", "tensorrt-int8"]
RUNTIMES: tuple[str, ...] = (
    "auto",
    "eager",
    "onnxruntime",
    "onnxruntime-int8",
    "tensorrt",
    "tensorrt-fp16",
    "tensorrt-int8",
)
# TensorRT majors whose strongly typed ONNX build this module is written against.
TENSORRT_MAJORS = (10, 11)


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
            out = self.module(
                torch.from_numpy(frames).to(self.device, dtype), torch.from_numpy(text).to(self.device, dtype)
            )
        return out.float().cpu().numpy()


def execution_providers(available: list[str], *, gpu: bool, cache_dir: Path) -> list:
    """ONNX Runtime providers, best first: TensorRT EP, CUDA EP (when this build offers them and a GPU is
    visible), then CPU. The TensorRT EP gets no fp16/int8 flags: it builds the graph's own precision strongly
    typed (the flags map to APIs TensorRT 11 removed), and caches its engines under ``cache_dir``."""
    chosen: list = []
    if gpu and "TensorrtExecutionProvider" in available:
        engines = str(cache_dir / "ort-tensorrt")
        chosen.append(
            (
                "TensorrtExecutionProvider",
                {
                    "trt_engine_cache_enable": True,
                    "trt_engine_cache_path": engines,
                    "trt_timing_cache_enable": True,
                    "trt_timing_cache_path": engines,
                },
            )
        )
    if gpu and "CUDAExecutionProvider" in available:
        chosen.append("CUDAExecutionProvider")
    chosen.append("CPUExecutionProvider")
    return chosen


_PRECISION_SUFFIX = {"fp32": "", "fp16": "-fp16", "int8": "-int8-qdq", "int8-dynamic": "-int8-dynamic"}
_PROVIDER_DEVICE = {
    "TensorrtExecutionProvider": "tensorrt",
    "CUDAExecutionProvider": "cuda",
    "CPUExecutionProvider": "cpu",
}


class OnnxRuntimeRunner:
    """ONNX Runtime on the best execution provider it offers (``execution_providers``).

    ``precision``: fp32 (the checkpoint as exported), fp16 (converted graph), int8 (Q/DQ calibrated on
    ``calibration``), or int8-dynamic (MatMul/Gemm weights int8, activations quantized per batch; no calibration).
    """

    def __init__(
        self,
        path: Path,
        *,
        int8: bool = False,
        precision: str = "fp32",
        calibration: list[CalibrationBatch] | None = None,
        cache_dir: Path | None = None,
        threads: int | None = None,
        gpu: bool | None = None,
    ):
        import onnxruntime as ort

        precision = "int8-dynamic" if int8 else precision
        cache_dir = cache_dir or default_cache_dir()
        self.digest = sha256_file(path)
        self.precision = precision
        self.calibration_digest = calibration_digest(calibration) if precision == "int8" and calibration else None
        model_path = precision_graph(path, self.digest, precision, calibration, cache_dir)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        wanted = execution_providers(
            ort.get_available_providers(), gpu=gpu_available() if gpu is None else gpu, cache_dir=cache_dir
        )
        self.session = ort.InferenceSession(str(model_path), options, providers=wanted)
        used = self.session.get_providers()
        first = wanted[0][0] if isinstance(wanted[0], tuple) else wanted[0]
        if used[0] != first:
            _LOGGER.warning("ONNX Runtime could not use %s for %s; running on %s", first, path.name, used[0])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.name = f"onnxruntime{_PRECISION_SUFFIX[precision]}@{_PROVIDER_DEVICE.get(used[0], used[0])}"

    def __call__(self, frames: np.ndarray, text: np.ndarray) -> np.ndarray:
        feeds = dict(zip(self.input_names, (frames.astype(np.float32), text.astype(np.float32))))
        return self.session.run(None, feeds)[0]


def precision_graph(
    path: Path, digest: str, precision: str, calibration: list[CalibrationBatch] | None, cache_dir: Path
) -> Path:
    """The ONNX file that carries ``precision``: the checkpoint itself for fp32, else a cached converted graph."""
    if precision == "fp32":
        return path
    if precision == "fp16":
        return fp16_model(path, digest, cache_dir)
    if precision == "int8":
        if not calibration:
            raise SilversetInputError("--calibration", "precision int8 needs calibration frames (a frames table)")
        return qdq_int8_model(path, digest, calibration, cache_dir)
    if precision == "int8-dynamic":
        return quantized_model(path, digest, cache_dir)
    raise SilversetInputError("--precision", f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")


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


def tensorrt_major(version: str) -> int:
    """The major of a TensorRT version string ('11.0.0.114' -> 11); refuses one this module was not written for."""
    try:
        major = int(version.split(".")[0])
    except ValueError:
        raise RuntimeError(f"unreadable TensorRT version {version!r}") from None
    if major not in TENSORRT_MAJORS:
        raise RuntimeError(
            f"TensorRT {version} is not supported (strongly typed builds are written for "
            f"{' and '.join(map(str, TENSORRT_MAJORS))}.x)"
        )
    return major


@dataclass(frozen=True)
class EngineKey:
    """What a TensorRT engine is valid for.

    The exact model, GPU, TensorRT version, precision, calibration and batch shape.
    """

    model_digest: str
    gpu_name: str
    tensorrt_version: str
    precision: str
    frames_shape: tuple[int, ...]
    text_shape: tuple[int, ...]
    calibration_digest: str | None = None

    @property
    def digest(self) -> str:
        return sha256_json(self.__dict__)


def strongly_typed_flags(trt) -> int:
    """``create_network`` flags for a strongly typed network: the STRONGLY_TYPED bit TensorRT 10 needs (TensorRT 11
    is always strongly typed and ignores it; a build without the enum member gets 0)."""
    member = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    return 0 if member is None else 1 << int(member)


class TensorRTRunner:
    """A TensorRT engine built from the ONNX checkpoint's precision graph (FP16 converted, or Q/DQ INT8), cached on
    disk.

    Built as a strongly typed network, the one build both TensorRT 10 and 11 offer: the precision comes from the
    graph, never from builder flags or a calibrator. The engine has a fixed batch shape (frames [B, T, 3, S, S],
    text [B, 384]); smaller final batches are zero-padded. Cache key: ``EngineKey``.
    """

    def __init__(
        self,
        onnx_path: Path,
        *,
        batch_size: int,
        frames_shape: tuple[int, int, int, int],
        text_dim: int = 384,
        precision: Literal["fp32", "fp16", "int8"] = "fp16",
        calibration: list[CalibrationBatch] | None = None,
        cache_dir: Path | None = None,
    ):
        import tensorrt as trt
        import torch

        self.trt, self.torch = trt, torch
        self.tensorrt_major = tensorrt_major(trt.__version__)
        cache_dir = cache_dir or default_cache_dir()
        self.digest = sha256_file(onnx_path)
        self.batch_size = batch_size
        graph = precision_graph(onnx_path, self.digest, precision, calibration, cache_dir)
        self.key = EngineKey(
            self.digest,
            torch.cuda.get_device_name(0),
            trt.__version__,
            precision,
            (batch_size, *frames_shape),
            (batch_size, text_dim),
            calibration_digest(calibration) if precision == "int8" and calibration else None,
        )
        path = cache_dir / "tensorrt" / f"{self.key.digest}.engine"
        self.cache_hit = path.exists()
        if not self.cache_hit:
            path.parent.mkdir(parents=True, exist_ok=True)
            plan = self._build(graph)
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

    def _build(self, graph: Path) -> bytes:
        trt = self.trt
        logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(logger)
        network = builder.create_network(strongly_typed_flags(trt))
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(graph.read_bytes()):
            problems = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise SilversetInputError(f"checkpoint '{graph}'", f"TensorRT cannot parse it: {problems}")
        config = builder.create_builder_config()
        profile = builder.create_optimization_profile()
        for i in range(network.num_inputs):
            tensor = network.get_input(i)
            shape = self.key.frames_shape if len(tensor.shape) == 5 else self.key.text_shape
            profile.set_shape(tensor.name, shape, shape, shape)
        config.add_optimization_profile(profile)
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise RuntimeError(f"TensorRT {trt.__version__} failed to build an engine for {graph}")
        return bytes(plan)

    def __call__(self, frames: np.ndarray, text: np.ndarray) -> np.ndarray:
        torch = self.torch
        n = frames.shape[0]
        if n > self.batch_size:
            return np.concatenate(
                [
                    self(frames[i : i + self.batch_size], text[i : i + self.batch_size])
                    for i in range(0, n, self.batch_size)
                ]
            )
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


def open_checkpoint(
    path: str | Path,
    *,
    runtime: Runtime = "auto",
    precision: str = "auto",
    batch_size: int = 16,
    frames_shape: tuple[int, int, int, int] = (8, 3, 64, 64),
    threads: int | None = None,
    calibration: list[CalibrationBatch] | None = None,
    cache_dir: Path | None = None,
) -> CheckpointRunner:
    """Open a user checkpoint (``.onnx`` or TorchScript ``.pt``/``.ts``) on the best runtime available.

    ``auto`` on a GPU with an ONNX file: TensorRT, else (logged) ONNX Runtime on its TensorRT/CUDA provider, else
    CPU; on a CPU: ONNX Runtime; eager TorchScript without an ONNX file. ``precision`` auto: int8 (Q/DQ) with
    ``calibration``, else fp16 for TensorRT, dynamic INT8 when the runtime was auto on a CPU, fp32 otherwise. A
    sibling file with the other suffix (model.onnx beside model.pt) is used when the chosen runtime needs the other
    format.
    """
    path = Path(path)
    if not path.exists():
        raise SilversetInputError(f"checkpoint '{path}'", "file not found")
    if runtime not in RUNTIMES:
        raise SilversetInputError("--runtime", f"unknown runtime {runtime!r}; use one of {', '.join(RUNTIMES)}")
    if precision not in PRECISIONS:
        raise SilversetInputError("--precision", f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    # the older runtime names carry their precision: tensorrt-fp16, tensorrt-int8, onnxruntime-int8 (dynamic)
    if runtime in ("tensorrt-fp16", "tensorrt-int8"):
        runtime, precision = "tensorrt", runtime.removeprefix("tensorrt-")  # type: ignore[assignment]
    elif runtime == "onnxruntime-int8":
        runtime, precision = "onnxruntime", "int8" if calibration else "int8-dynamic"  # type: ignore[assignment]
    if precision == "int8" and not calibration:
        raise SilversetInputError("--calibration", "precision int8 needs calibration frames (a frames table)")
    onnx = path if path.suffix == ".onnx" else next((p for p in (path.with_suffix(".onnx"),) if p.exists()), None)
    script = (
        path
        if path.suffix in (".pt", ".ts", ".pth")
        else next((p for p in (path.with_suffix(".pt"), path.with_suffix(".ts")) if p.exists()), None)
    )
    gpu = gpu_available()
    chose_runtime = runtime == "auto"
    if chose_runtime:
        runtime = ("tensorrt" if gpu else "onnxruntime") if onnx else "eager"  # type: ignore[assignment]
    if runtime == "eager":
        if script is None:
            raise SilversetInputError(f"checkpoint '{path}'", "runtime 'eager' needs a TorchScript file (.pt)")
        if precision not in ("auto", "fp32"):
            raise SilversetInputError(
                "--precision", f"runtime 'eager' runs the TorchScript file in fp32, not {precision}"
            )
        return TorchScriptRunner(script, device="cuda" if gpu else "cpu", threads=threads)
    if onnx is None:
        raise SilversetInputError(f"checkpoint '{path}'", f"runtime '{runtime}' needs an ONNX file (.onnx)")
    if precision == "auto":  # an explicit onnxruntime runs the checkpoint as exported
        precision = (
            "int8" if calibration else "fp16" if runtime == "tensorrt" else "int8-dynamic" if chose_runtime else "fp32"
        )
    if runtime == "tensorrt":
        if not gpu:
            raise SilversetInputError("--runtime", "'tensorrt' needs an NVIDIA GPU; none is visible")
        if precision == "int8-dynamic":
            raise SilversetInputError(
                "--precision", "TensorRT runs INT8 from a calibrated Q/DQ graph: give --calibration"
            )
        try:
            return TensorRTRunner(
                onnx,
                batch_size=batch_size,
                frames_shape=frames_shape,
                precision=precision,  # type: ignore[arg-type]
                calibration=calibration,
                cache_dir=cache_dir,
            )
        except SilversetInputError:
            raise
        except Exception as exc:  # noqa: BLE001 - no TensorRT, an unsupported major or a failed build: say so, fall back
            _LOGGER.warning(
                "TensorRT is not usable for %s (%s: %s); falling back to ONNX Runtime (TensorRT/CUDA "
                "execution provider if offered, else CPU)",
                onnx.name,
                type(exc).__name__,
                exc,
            )
    return OnnxRuntimeRunner(
        onnx, precision=precision, calibration=calibration, cache_dir=cache_dir, threads=threads, gpu=gpu
    )
