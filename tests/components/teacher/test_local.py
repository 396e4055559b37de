"""The local teacher: a tiny frames + text scorer checkpoint made here, run eager, in ONNX Runtime and (GPU)
TensorRT."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from silverset.components.common import tables
from silverset.components.common.digest import sha256_file
from silverset.components.common.errors import SilversetInputError
from silverset.components.runtime import backends, precision
from silverset.components.teacher import annotate
from tests.helpers.checkpoints import SCORER_FRAMES as FRAMES
from tests.helpers.checkpoints import SCORER_TEXT_DIM as TEXT_DIM
from tests.helpers.checkpoints import export_scorer


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> tuple[Path, Path]:
    return export_scorer(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="module")
def inputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    n = 48
    frames = rng.uniform(0, 1, (n, *FRAMES)).astype(np.float32) * 0.5
    frames[: n // 2, :, 0] += 0.4  # half the videos lean red
    text = rng.normal(size=(n, TEXT_DIM)).astype(np.float32)
    return frames, text / np.linalg.norm(text, axis=1, keepdims=True)


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("SILVERSET_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_onnxruntime_fp32_matches_eager(checkpoint, inputs):
    script, onnx = checkpoint
    eager = backends.open_checkpoint(script, runtime="eager")
    ort = backends.open_checkpoint(onnx, runtime="onnxruntime")
    assert eager.name == "torchscript-eager@cpu" and ort.name == "onnxruntime@cpu"
    np.testing.assert_allclose(ort(*inputs), eager(*inputs), rtol=1e-4, atol=1e-4)


def test_onnxruntime_int8_agrees_with_eager(checkpoint, inputs):
    script, onnx = checkpoint
    reference = backends.open_checkpoint(script, runtime="eager")(*inputs)
    int8 = backends.open_checkpoint(onnx, runtime="onnxruntime-int8")
    assert int8.name == "onnxruntime-int8-dynamic@cpu"
    logits = int8(*inputs)
    assert logits.shape == reference.shape == (len(inputs[0]),)
    assert ((logits >= 0) == (reference >= 0)).mean() >= 0.95
    assert np.corrcoef(logits, reference)[0, 1] > 0.99
    assert np.abs(logits - reference).max() < 0.1 * np.abs(reference).max()
    # the quantized model is really smaller: MatMul/Gemm weights stored as int8
    quantized = next((Path(backends.default_cache_dir()) / "onnx-int8").glob("*.onnx"))
    assert quantized.stat().st_size < onnx.stat().st_size


def test_quantized_model_is_cached_by_model_digest(checkpoint, tmp_path, cache_dir, monkeypatch):
    _, onnx = checkpoint
    backends.open_checkpoint(onnx, runtime="onnxruntime-int8")
    cached = cache_dir / "onnx-int8" / f"{sha256_file(onnx)}.onnx"
    assert cached.exists()
    stamp = cached.stat().st_mtime_ns

    import onnxruntime.quantization as quantization

    def refuse(*a, **k):
        raise AssertionError("quantized again although the digest is cached")

    monkeypatch.setattr(quantization, "quantize_dynamic", refuse)
    backends.open_checkpoint(onnx, runtime="onnxruntime-int8")
    assert cached.stat().st_mtime_ns == stamp
    monkeypatch.undo()
    monkeypatch.setenv("SILVERSET_CACHE", str(cache_dir))
    _, other = export_scorer(tmp_path / "other", seed=1)  # other weights -> other digest -> its own entry
    backends.open_checkpoint(other, runtime="onnxruntime-int8")
    assert sorted(p.name for p in (cache_dir / "onnx-int8").glob("*.onnx")) == sorted(
        [f"{sha256_file(onnx)}.onnx", f"{sha256_file(other)}.onnx"]
    )


def test_engine_key_covers_model_gpu_precision_calibration_and_batch_shape():
    base = dict(
        model_digest="a" * 64,
        gpu_name="NVIDIA H100",
        tensorrt_version="10.0",
        precision="int8",
        frames_shape=(16, 8, 3, 64, 64),
        text_shape=(16, 384),
        calibration_digest="c" * 64,
    )
    key = backends.EngineKey(**base).digest
    assert key == backends.EngineKey(**base).digest
    for field, value in [
        ("model_digest", "b" * 64),
        ("gpu_name", "NVIDIA L4"),
        ("tensorrt_version", "10.1"),
        ("precision", "fp16"),
        ("frames_shape", (32, 8, 3, 64, 64)),
        ("text_shape", (32, 384)),
        ("calibration_digest", "d" * 64),
    ]:
        assert backends.EngineKey(**{**base, field: value}).digest != key, field


def test_open_checkpoint_picks_the_runtime_and_sibling_files(checkpoint, monkeypatch, tmp_path):
    script, onnx = checkpoint
    monkeypatch.setattr(backends, "gpu_available", lambda: False)
    assert backends.open_checkpoint(onnx).name == "onnxruntime-int8-dynamic@cpu"  # auto on CPU
    assert backends.open_checkpoint(script).name == "onnxruntime-int8-dynamic@cpu"  # sibling scorer.onnx
    assert backends.open_checkpoint(onnx, runtime="eager").name == "torchscript-eager@cpu"  # sibling scorer.pt
    lonely = tmp_path / "lonely.pt"
    lonely.write_bytes(script.read_bytes())
    assert backends.open_checkpoint(lonely).name == "torchscript-eager@cpu"
    with pytest.raises(SilversetInputError, match="needs an ONNX file"):
        backends.open_checkpoint(lonely, runtime="onnxruntime")
    with pytest.raises(SilversetInputError, match="needs an NVIDIA GPU"):
        backends.open_checkpoint(onnx, runtime="tensorrt-fp16")
    with pytest.raises(SilversetInputError, match="file not found"):
        backends.open_checkpoint(tmp_path / "nope.onnx")
    with pytest.raises(SilversetInputError, match="unknown runtime"):
        backends.open_checkpoint(onnx, runtime="tpu")  # type: ignore[arg-type]


@pytest.mark.slow  # ~25 s on 2 loaded cores, most of it loading MiniLM for the text input
def test_local_teacher_labels_the_corpus(corpus, checkpoint):
    """annotate --teacher local: labels come from the checkpoint's logits on the real frames + MiniLM text."""
    from silverset.components.common.manifest import read_manifest
    from silverset.components.embed.embed import checkpoint_frames
    from silverset.components.embed.text import embed_texts
    from silverset.components.runtime.inputs import load_frames, manifest_texts

    script, onnx = checkpoint
    out = corpus["tmp"] / "labels"
    summary = annotate.run(
        attribute_spec=corpus["spec"],
        manifest_uri=corpus["manifest"],
        frames_uri=corpus["frames"],
        out_dir=str(out),
        options=annotate.AnnotateOptions(teacher="local", checkpoint=str(onnx), runtime="onnxruntime", batch_size=5),
    )
    rows = {r["video_id"]: r for r in tables.read_table(out).to_pylist()}
    assert sorted(rows) == sorted(corpus["videos"]) and summary.stats.errors == 0
    assert summary.teacher_id == f"local:scorer.onnx@sha256:{sha256_file(onnx)[:16]}:onnxruntime@cpu"
    # oracle: the eager TorchScript scorer on the same decoded frames and text
    videos = load_frames(corpus["frames"])
    texts = manifest_texts(read_manifest(corpus["manifest"])[0])
    ids = sorted(rows)
    logits = backends.open_checkpoint(script, runtime="eager")(
        np.stack([checkpoint_frames(videos[v], 8, 64) for v in ids]), embed_texts([texts[v] for v in ids])
    )
    for vid, logit in zip(ids, logits):
        assert rows[vid]["label"] == int(logit >= 0)
        assert rows[vid]["probability"] == pytest.approx(1 / (1 + np.exp(-logit)), abs=2e-3)  # MiniLM pads per batch
        assert rows[vid]["teacher_id"] == summary.teacher_id
    red = [v for v, k in corpus["videos"].items() if k == "red"]
    assert all(rows[v]["label"] == 1 for v in red)  # the scorer's red term dominates on red videos


def test_local_teacher_needs_a_checkpoint(corpus):
    with pytest.raises(SilversetInputError, match="checkpoint"):
        annotate.run(
            attribute_spec=corpus["spec"],
            manifest_uri=corpus["manifest"],
            frames_uri=corpus["frames"],
            out_dir=str(corpus["tmp"] / "x"),
            options=annotate.AnnotateOptions(teacher="local"),
        )


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_tensorrt_engine_matches_eager_and_is_cached(checkpoint, inputs, cache_dir, precision):
    pytest.importorskip("tensorrt")
    script, onnx = checkpoint
    frames, text = inputs
    batch = 16
    calibration = [(frames[i : i + batch], text[i : i + batch]) for i in range(0, len(frames), batch)]
    reference = backends.TorchScriptRunner(script, device="cuda")(frames, text)
    engine = backends.TensorRTRunner(
        onnx,
        batch_size=batch,
        frames_shape=FRAMES,
        precision=precision,
        calibration=calibration if precision == "int8" else None,
        cache_dir=cache_dir,
    )
    assert not engine.cache_hit and engine.name.startswith(f"tensorrt-{precision}@")
    logits = engine(frames, text)  # 48 videos = three full batches
    assert logits.shape == reference.shape
    assert ((logits >= 0) == (reference >= 0)).mean() >= (0.97 if precision == "fp16" else 0.9)
    assert np.corrcoef(logits, reference)[0, 1] > 0.98
    np.testing.assert_allclose(engine(frames[:5], text[:5]), logits[:5], atol=1e-3)  # padded final batch
    engine_file = cache_dir / "tensorrt" / f"{engine.key.digest}.engine"
    assert engine_file.exists() and engine.key.model_digest == sha256_file(onnx)
    again = backends.TensorRTRunner(
        onnx, batch_size=batch, frames_shape=FRAMES, precision=precision, calibration=calibration, cache_dir=cache_dir
    )
    assert again.cache_hit
    other_batch = backends.TensorRTRunner(
        onnx,
        batch_size=8,
        frames_shape=FRAMES,
        precision=precision,
        calibration=[(f[:8], t[:8]) for f, t in calibration],
        cache_dir=cache_dir,
    )
    assert not other_batch.cache_hit and other_batch.key.digest != engine.key.digest


@pytest.mark.gpu
def test_auto_runtime_on_gpu_is_tensorrt_fp16(checkpoint):
    pytest.importorskip("tensorrt")
    _, onnx = checkpoint
    assert backends.open_checkpoint(onnx, batch_size=4, frames_shape=FRAMES).name.startswith("tensorrt-fp16@")


def _calibration(inputs, n: int = 32, batch: int = 16):
    frames, text = inputs
    return [(frames[i : i + batch], text[i : i + batch]) for i in range(0, n, batch)]


def test_int8_qdq_on_cpu_agrees_with_fp32_and_is_cached_by_calibration(checkpoint, inputs, cache_dir):
    """INT8 as TensorRT 10/11 take it: a Q/DQ graph with symmetric ranges calibrated on frames, run here by ONNX
    Runtime."""
    import onnx

    script, onnx_path = checkpoint
    reference = backends.open_checkpoint(script, runtime="eager")(*inputs)
    int8 = backends.open_checkpoint(
        onnx_path, runtime="onnxruntime", precision="int8", calibration=_calibration(inputs)
    )
    assert int8.name == "onnxruntime-int8-qdq@cpu"
    logits = int8(*inputs)  # 16 of the 48 videos were never seen in calibration
    assert precision.label_agreement(reference, logits) >= 0.95
    assert np.corrcoef(logits, reference)[0, 1] > 0.99
    graphs = sorted((cache_dir / "onnx-qdq-int8").glob("*.onnx"))
    assert [g.name for g in graphs] == [f"{sha256_file(onnx_path)}-{int8.calibration_digest[:16]}.onnx"]
    graph = onnx.load(str(graphs[0]))
    ops = [n.op_type for n in graph.graph.node]
    assert ops.count("QuantizeLinear") >= 3 and ops.count("DequantizeLinear") >= 3
    zero_points = {
        i.name: onnx.numpy_helper.to_array(i) for i in graph.graph.initializer if i.name.endswith("zero_point")
    }
    assert zero_points and all((z == 0).all() and z.dtype == np.int8 for z in zero_points.values())  # symmetric int8
    assert not [n for n in zero_points if "bias" in n]  # biases stay float, as TensorRT's Q/DQ rules expect
    # other calibration frames -> another graph; the same ones -> the cached graph, not a new calibration
    backends.open_checkpoint(onnx_path, runtime="onnxruntime", precision="int8", calibration=_calibration(inputs, n=16))
    backends.open_checkpoint(onnx_path, runtime="onnxruntime", precision="int8", calibration=_calibration(inputs))
    assert len(list((cache_dir / "onnx-qdq-int8").glob("*.onnx"))) == 2


def test_precision_int8_without_calibration_and_unknown_precision_are_refused(checkpoint):
    script, onnx_path = checkpoint
    with pytest.raises(SilversetInputError, match="--calibration.*calibration frames"):
        backends.open_checkpoint(onnx_path, precision="int8")
    with pytest.raises(SilversetInputError, match="unknown precision 'int4'"):
        backends.open_checkpoint(onnx_path, precision="int4")
    with pytest.raises(SilversetInputError, match="'eager' runs the TorchScript file in fp32"):
        backends.open_checkpoint(script, runtime="eager", precision="fp16")


def test_fp16_graph_keeps_float32_io_and_matches_fp32(checkpoint, inputs, cache_dir):
    import onnx

    _, onnx_path = checkpoint
    fp32 = backends.open_checkpoint(onnx_path, runtime="onnxruntime")(*inputs)
    fp16 = backends.open_checkpoint(onnx_path, runtime="onnxruntime", precision="fp16")
    assert fp16.name == "onnxruntime-fp16@cpu"
    np.testing.assert_allclose(fp16(*inputs), fp32, atol=0.05)
    graph = onnx.load(str(cache_dir / "onnx-fp16" / f"{sha256_file(onnx_path)}.onnx")).graph
    float_weights = [i for i in graph.initializer if i.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)]
    assert float_weights and all(i.data_type == onnx.TensorProto.FLOAT16 for i in float_weights)
    assert {i.type.tensor_type.elem_type for i in [*graph.input, *graph.output]} == {onnx.TensorProto.FLOAT}


def test_onnxruntime_prefers_tensorrt_then_cuda_execution_providers(tmp_path):
    gpu_build = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    chosen = backends.execution_providers(gpu_build, gpu=True, cache_dir=tmp_path)
    assert [p[0] if isinstance(p, tuple) else p for p in chosen] == gpu_build
    trt_options = chosen[0][1]
    assert trt_options["trt_engine_cache_path"] == str(tmp_path / "ort-tensorrt")
    assert not {k for k in trt_options if "fp16" in k or "int8" in k}  # precision comes from the graph
    assert backends.execution_providers(
        ["CUDAExecutionProvider", "CPUExecutionProvider"], gpu=True, cache_dir=tmp_path
    ) == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert backends.execution_providers(gpu_build, gpu=False, cache_dir=tmp_path) == ["CPUExecutionProvider"]


def test_auto_on_a_gpu_without_usable_tensorrt_falls_back_to_onnxruntime_and_says_why(checkpoint, monkeypatch, caplog):
    import sys

    _, onnx_path = checkpoint
    monkeypatch.setattr(backends, "gpu_available", lambda: True)
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # `import tensorrt` fails as on an image without it
    with caplog.at_level("WARNING", logger=backends.__name__):
        runner = backends.open_checkpoint(onnx_path, batch_size=4, frames_shape=FRAMES)
    assert runner.name.startswith("onnxruntime-fp16@")  # this CPU build of ONNX Runtime offers only the CPU EP
    reasons = [r.getMessage() for r in caplog.records if "TensorRT is not usable" in r.getMessage()]
    assert reasons and "scorer.onnx" in reasons[0] and "ModuleNotFoundError" in reasons[0]


def test_tensorrt_majors_and_strongly_typed_network_flags():
    assert backends.tensorrt_major("10.16.1.11") == 10 and backends.tensorrt_major("11.0.0.114") == 11
    with pytest.raises(RuntimeError, match="TensorRT 8.6.1 is not supported"):
        backends.tensorrt_major("8.6.1")

    class Flags:  # TensorRT 10 and 11 both expose the member (11 ignores it: networks are always strongly typed)
        STRONGLY_TYPED = 1

    class WithFlag:
        NetworkDefinitionCreationFlag = Flags

    class WithoutFlag:
        NetworkDefinitionCreationFlag = type("NoMembers", (), {})

    assert backends.strongly_typed_flags(WithFlag) == 1 << 1
    assert backends.strongly_typed_flags(WithoutFlag) == 0


def test_local_teacher_hashes_and_loads_the_checkpoint_once(checkpoint, monkeypatch):
    """Issue 14 item 8: model_id and the runner share one load and one checkpoint digest per run."""
    from silverset.components.common.spec import example_specs_dir, load_spec
    from silverset.components.teacher.local import LocalTeacherHandler

    _, onnx_path = checkpoint
    opened, hashed = [], []
    real_open, real_hash = backends.open_checkpoint, backends.sha256_file
    monkeypatch.setattr(backends, "open_checkpoint", lambda *a, **k: opened.append(a) or real_open(*a, **k))
    monkeypatch.setattr(backends, "sha256_file", lambda p: hashed.append(p) or real_hash(p))
    handler = LocalTeacherHandler(
        load_spec(str(example_specs_dir() / "red_dominant.yaml")), checkpoint=str(onnx_path), runtime="onnxruntime"
    )
    ids = {handler.model_id for _ in range(3)}
    model = handler.load_model()
    assert handler.load_model() is model and ids == {handler.model_id}
    assert len(opened) == 1 and len(hashed) == 1
    assert ids == {f"local:scorer.onnx@sha256:{real_hash(onnx_path)[:16]}:onnxruntime@cpu"}


@pytest.mark.slow  # ~30 s on 2 loaded cores: MiniLM for the text input, and the CLI process
def test_annotate_cli_int8_calibrated_on_corpus_frames_reports_agreement(corpus, checkpoint, tmp_path):
    """`silverset annotate --teacher local --precision int8 --calibration FRAMES`: Q/DQ INT8 labels vs FP32."""
    import subprocess
    import sys

    _, onnx_path = checkpoint
    silverset = str(Path(sys.executable).with_name("silverset"))
    labels = {}
    for name, extra in [
        ("fp32", ["--precision", "fp32"]),
        ("int8", ["--precision", "int8", "--calibration", corpus["frames"]]),
    ]:
        out = tmp_path / name
        done = subprocess.run(
            [
                silverset,
                "annotate",
                "--attribute",
                corpus["spec"],
                "--manifest",
                corpus["manifest"],
                "--frames",
                corpus["frames"],
                "--out",
                str(out),
                "--teacher",
                "local",
                "--checkpoint",
                str(onnx_path),
                "--runtime",
                "onnxruntime",
                *extra,
            ],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "SILVERSET_CACHE": str(tmp_path / "c")},
        )
        assert done.returncode == 0, done.stderr
        labels[name] = {r["video_id"]: r for r in tables.read_table(out).to_pylist()}
    assert sorted(labels["int8"]) == sorted(corpus["videos"])
    teacher = {r["teacher_id"] for r in labels["int8"].values()}
    assert len(teacher) == 1 and ":onnxruntime-int8-qdq@cpu:cal-" in teacher.pop()
    agree = np.mean([labels["int8"][v]["label"] == labels["fp32"][v]["label"] for v in corpus["videos"]])
    assert agree >= 0.9
    # the handler behind that command measures and reports agreement with FP32 on the calibration videos
    from silverset.components.common.manifest import read_manifest
    from silverset.components.common.spec import load_spec
    from silverset.components.runtime.inputs import manifest_texts
    from silverset.components.teacher.local import LocalTeacherHandler

    handler = LocalTeacherHandler(
        load_spec(corpus["spec"]),
        checkpoint=str(onnx_path),
        runtime="onnxruntime",
        precision="int8",
        calibration=corpus["frames"],
        calibration_texts=manifest_texts(read_manifest(corpus["manifest"])[0]),
    )
    handler.load_model()
    report = handler.precision_report
    assert report.runner == "onnxruntime-int8-qdq@cpu" and report.calibration_videos == len(corpus["videos"])
    assert report.label_agreement_vs_fp32 >= 0.9 and report.max_abs_logit_error < 0.5


def test_calibration_without_videos_is_refused_naming_it(corpus, tmp_path):
    from silverset.components.teacher.local import calibration_batches

    with pytest.raises(SilversetInputError, match="--calibration"):
        calibration_batches(str(tmp_path / "missing-frames"), {})
