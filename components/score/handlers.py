"""Beam-side pieces of bulk scoring: the student's model handlers (Beam's own ONNX and PyTorch handlers, fed one
float32 [n, d] block per call) and an Arrow IPC coder for RecordBatch PCollections.

Imports Beam, onnxruntime and torch at module import; ``bulk`` imports this module only inside ``run``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import onnxruntime as ort
import pyarrow as pa
from apache_beam import coders
from apache_beam.ml.inference import utils
from apache_beam.ml.inference.base import KeyedModelHandler
from apache_beam.ml.inference.onnx_inference import OnnxModelHandlerNumpy
from apache_beam.ml.inference.pytorch_inference import PytorchModelHandlerTensor


def onnx_block_inference(session: ort.InferenceSession, batch: Sequence[np.ndarray], inference_args: dict | None = None) -> list[np.ndarray]:
    """Each element is already a float32 [n, d] block: concatenate, run once, split back per element."""
    sizes = [len(block) for block in batch]
    out = session.run(None, {session.get_inputs()[0].name: np.concatenate(batch, axis=0)})[0]
    return np.split(np.asarray(out).reshape(-1), np.cumsum(sizes)[:-1])


def torch_block_inference(batch: Sequence[Any], model: Any, device: str, inference_args: dict | None = None, model_id: str | None = None) -> Iterable[Any]:
    """TorchScript counterpart of ``onnx_block_inference``: blocks are float32 tensors [n, d]."""
    import torch

    sizes = [len(block) for block in batch]
    with torch.inference_mode():
        out = model(torch.cat(list(batch), dim=0)).numpy().reshape(-1)
    return utils._convert_to_result(batch, np.split(out, np.cumsum(sizes)[:-1]), model_id)


class StudentOnnxHandler(OnnxModelHandlerNumpy):
    """Beam's ONNX handler with CPU session options built at load time (they cannot be pickled)."""

    def __init__(self, model_uri: str, *, threads: int):
        super().__init__(model_uri, providers=["CPUExecutionProvider"], inference_fn=onnx_block_inference,
                         min_batch_size=1, max_batch_size=1)
        self._threads = threads

    def load_model(self) -> ort.InferenceSession:
        options = ort.SessionOptions()
        options.intra_op_num_threads = self._threads
        options.inter_op_num_threads = 1
        return ort.InferenceSession(self._model_uri, sess_options=options, providers=["CPUExecutionProvider"])


def model_handler(model_dir: str | Path, metadata: dict[str, Any], *, backend: str, threads: int) -> KeyedModelHandler:
    """Keyed handler for MODELDIR: elements are (video_ids, block [n, d]); ``max_batch_size=1`` keeps one block per call."""
    model_dir = Path(model_dir)
    if backend == "onnx":
        return KeyedModelHandler(StudentOnnxHandler(str(model_dir / metadata["files"]["onnx"]), threads=threads))
    import torch

    torch.set_num_threads(threads)
    return KeyedModelHandler(
        PytorchModelHandlerTensor(
            torch_script_model_path=str(model_dir / metadata["files"]["torchscript"]),
            device="CPU",
            inference_fn=torch_block_inference,
            min_batch_size=1,
            max_batch_size=1,
        )
    )


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


def register_arrow_coders() -> None:
    """Use the Arrow IPC coders for every PCollection typed ``pa.RecordBatch`` or ``pa.Table``."""
    coders.registry.register_coder(pa.RecordBatch, ArrowRecordBatchCoder)
    coders.registry.register_coder(pa.Table, ArrowTableCoder)


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
            arrow_type = pa.RecordBatch if step == "ToRecordBatch" else pa.Table if (
                step == "FlattenPCollsFromPatterns" or "SDFBoundedSourceDoFn" in step) else None
            for output in node.outputs.values():
                if arrow_type is not None and output.element_type in (None, AnyHint):
                    output.element_type = arrow_type
                    typed += 1

    pipeline.visit(_Typer())
    return typed
