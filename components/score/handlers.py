"""Beam-side pieces of bulk scoring: the student's model handlers (Beam's own ONNX and PyTorch handlers, fed one
pre-batched ``ScoringBlock`` per call), and Arrow IPC coders with O(1) size estimates for every element type on
the scoring path (RecordBatch, Table, ScoringBlock, ScoredBlock).

Imports Beam, onnxruntime and torch at module import; ``bulk`` imports this module only inside ``run``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pyarrow as pa
from apache_beam import coders
from apache_beam.ml.inference.base import ModelHandler
from apache_beam.ml.inference.onnx_inference import OnnxModelHandlerNumpy
from apache_beam.ml.inference.pytorch_inference import PytorchModelHandlerTensor

from silverset.components.common.artifacts import ModelMetadata

from .bulk import ScoredBlock, ScoringBlock


class StudentOnnxHandler(OnnxModelHandlerNumpy):
    """Beam's ONNX handler, one ``ScoringBlock`` per call; CPU session options built at load (not picklable)."""

    def __init__(self, model_uri: str, *, threads: int):
        super().__init__(model_uri, providers=["CPUExecutionProvider"])
        self._threads = threads

    def load_model(self) -> ort.InferenceSession:
        options = ort.SessionOptions()
        options.intra_op_num_threads = self._threads
        options.inter_op_num_threads = 1
        return ort.InferenceSession(self._model_uri, sess_options=options, providers=["CPUExecutionProvider"])

    def run_inference(
        self, batch: ScoringBlock, model: ort.InferenceSession, inference_args: dict | None = None
    ) -> list[ScoredBlock]:
        """The block's probabilities, one session run over its float32 [n, d] vectors."""
        out = model.run(None, {model.get_inputs()[0].name: batch.vectors})[0]
        return [ScoredBlock(batch.video_ids, out)]

    def get_num_bytes(self, batch: ScoringBlock) -> int:
        return batch.nbytes


class StudentTorchHandler(PytorchModelHandlerTensor):
    """TorchScript counterpart of ``StudentOnnxHandler``."""

    def run_inference(self, batch: ScoringBlock, model: Any, inference_args: dict | None = None) -> list[ScoredBlock]:
        import torch

        with torch.inference_mode():  # a writable copy: torch refuses read-only Arrow memory
            out = model(torch.from_numpy(np.array(batch.vectors))).numpy()
        return [ScoredBlock(batch.video_ids, out)]

    def get_num_bytes(self, batch: ScoringBlock) -> int:
        return batch.nbytes


def model_handler(model_dir: str | Path, metadata: ModelMetadata, *, backend: str, threads: int) -> ModelHandler:
    """Handler for MODELDIR whose elements are pre-batched ``ScoringBlock``s (no BatchElements step before it)."""
    model_dir = Path(model_dir)
    if backend == "onnx":
        return StudentOnnxHandler(str(model_dir / metadata.files["onnx"]), threads=threads).with_no_batching()
    import torch

    torch.set_num_threads(threads)
    return StudentTorchHandler(
        torch_script_model_path=str(model_dir / metadata.files["torchscript"]), device="CPU"
    ).with_no_batching()


def _ipc_bytes(batch: pa.RecordBatch) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


class ScoringBlockCoder(coders.Coder):
    """Arrow IPC coder for ``ScoringBlock`` (ids + fixed-size-list vectors), size estimate ``nbytes`` (no encode)."""

    def encode(self, block: ScoringBlock) -> bytes:
        n, d = block.vectors.shape
        vectors = pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(block.vectors).reshape(-1)), d)
        return _ipc_bytes(pa.record_batch([block.video_ids, vectors], names=["video_id", "vector"]))

    def decode(self, encoded: bytes) -> ScoringBlock:
        batch = pa.ipc.open_stream(encoded).read_next_batch()
        vectors = batch.column(1)
        d = vectors.type.list_size
        flat = vectors.flatten().to_numpy(zero_copy_only=False)
        return ScoringBlock(batch.column(0), np.asarray(flat, dtype=np.float32).reshape(-1, d))

    def estimate_size(self, block: ScoringBlock) -> int:
        return block.nbytes

    def is_deterministic(self) -> bool:
        return True

    def to_type_hint(self):
        return ScoringBlock


class ScoredBlockCoder(coders.Coder):
    """Arrow IPC coder for ``ScoredBlock`` (ids + float32 probabilities), size estimate ``nbytes``."""

    def encode(self, scored: ScoredBlock) -> bytes:
        columns = [scored.video_ids, pa.array(scored.probabilities)]
        return _ipc_bytes(pa.record_batch(columns, names=["video_id", "probability"]))

    def decode(self, encoded: bytes) -> ScoredBlock:
        batch = pa.ipc.open_stream(encoded).read_next_batch()
        return ScoredBlock(batch.column(0), batch.column(1).to_numpy(zero_copy_only=False))

    def estimate_size(self, scored: ScoredBlock) -> int:
        return scored.nbytes

    def is_deterministic(self) -> bool:
        return True

    def to_type_hint(self):
        return ScoredBlock


class ArrowRecordBatchCoder(coders.Coder):
    """Arrow IPC stream coder for ``pa.RecordBatch`` elements, with an O(1) size estimate.

    Beam's default for an unknown type is pickle, and Beam estimates PCollection sizes by encoding sampled
    elements (the first ~30 of every PCollection, then fewer). Pickling a zero-copy slice of a RecordBatch
    serializes the slice's whole parent buffers (a 1024-row slice of a 50k-row row group pickles ~77 MB),
    which made those samples cost more than the inference. IPC writes only the slice's rows, and the size
    estimate is ``nbytes`` without encoding anything.
    """

    def encode(self, batch: pa.RecordBatch) -> bytes:
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, batch.schema) as writer:
            writer.write_batch(batch)
        return sink.getvalue().to_pybytes()

    def decode(self, encoded: bytes) -> pa.RecordBatch:
        return pa.ipc.open_stream(encoded).read_next_batch()

    def estimate_size(self, batch: pa.RecordBatch) -> int:
        return batch.nbytes

    def is_deterministic(self) -> bool:
        return True  # the same batch (schema, rows) always writes the same IPC bytes

    def to_type_hint(self):
        return pa.RecordBatch


class ArrowTableCoder(coders.Coder):
    """``ArrowRecordBatchCoder`` for ``pa.Table`` elements (Beam's Parquet read emits one table per row group)."""

    def encode(self, table: pa.Table) -> bytes:
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return sink.getvalue().to_pybytes()

    def decode(self, encoded: bytes) -> pa.Table:
        return pa.ipc.open_stream(encoded).read_all()

    def estimate_size(self, table: pa.Table) -> int:
        return table.nbytes

    def is_deterministic(self) -> bool:
        return True

    def to_type_hint(self):
        return pa.Table


def register_scoring_coders() -> None:
    """Arrow IPC coders for PCollections typed ``pa.RecordBatch``, ``pa.Table``, ``ScoringBlock`` or ``ScoredBlock``."""
    coders.registry.register_coder(pa.RecordBatch, ArrowRecordBatchCoder)
    coders.registry.register_coder(pa.Table, ArrowTableCoder)
    coders.registry.register_coder(ScoringBlock, ScoringBlockCoder)
    coders.registry.register_coder(ScoredBlock, ScoredBlockCoder)


register_arrow_coders = register_scoring_coders  # the name the read-typing test and older callers use


def type_arrow_read_outputs(pipeline: Any, read_label: str) -> int:
    """Give the untyped PCollections inside tfx-bsl's Parquet read their Arrow types, so they get the Arrow coders.

    tfx-bsl types only the read's final output; its inner steps (Beam's Parquet read: tables, their Flatten,
    ``ToRecordBatch``) are ``Any`` and would be pickled for every size sample Beam takes (three full copies of
    the data per run). Returns how many PCollections were typed; labels it does not know are left alone.
    """
    from apache_beam.pipeline import PipelineVisitor
    from apache_beam.typehints import Any as AnyHint

    typed = 0

    class _Typer(PipelineVisitor):
        def visit_transform(self, node) -> None:
            nonlocal typed
            if not node.full_label.startswith(read_label + "/"):
                return
            step = node.full_label.rsplit("/", 1)[-1]
            arrow_type = (
                pa.RecordBatch
                if step == "ToRecordBatch"
                else pa.Table
                if (step == "FlattenPCollsFromPatterns" or "SDFBoundedSourceDoFn" in step)
                else None
            )
            for output in node.outputs.values():
                if arrow_type is not None and output.element_type in (None, AnyHint):
                    output.element_type = arrow_type
                    typed += 1

    pipeline.visit(_Typer())
    return typed


def quiet_tfxio_row_telemetry(pipeline: Any, read_label: str) -> int:
    """Turn off the per-row distributions of tfx-bsl's RecordBatch telemetry inside the read; returns DoFns changed.

    ``ProfileRecordBatches`` updates, for a random 10% of RecordBatches, two Beam distributions once per row and
    per cell (``np.bincount(...).tolist()`` then a Python call per row): ~0.3 s per 50k-row row group, 1.5 s per
    250k-row one, at random. Its per-batch row count, byte size and cell counters are kept.
    """
    from apache_beam.pipeline import PipelineVisitor

    changed = 0

    class _Quiet(PipelineVisitor):
        def visit_transform(self, node) -> None:
            nonlocal changed
            fn = getattr(node.transform, "fn", None)
            if (
                node.full_label.startswith(read_label + "/")
                and type(fn).__name__ == "_ProfileRecordBatchDoFn"
                and hasattr(fn, "_dist_update_prob")
            ):
                fn._dist_update_prob = 0.0  # np.random.rand() < 0.0 never holds
                changed += 1

    pipeline.visit(_Quiet())
    return changed
