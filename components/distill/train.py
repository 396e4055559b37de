"""`distill.run`: train a student on embeddings against the teacher's soft labels and write MODELDIR.

MODELDIR holds ``model.pt`` (TorchScript), ``model.onnx``, ``metadata.json`` and ``errors.parquet``.
Both exports map embeddings float32 [n, d] to calibrated P(positive) float32 [n].
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict

from silverset.components.common import schemas, tables
from silverset.components.common.artifacts import MODEL_METADATA_FILE as METADATA_FILE  # noqa: F401

# The model's files, metadata and digest are a contract between stages: defined in common.artifacts, re-exported
# here under their old names for the studio export.
from silverset.components.common.artifacts import (  # noqa: F401
    ONNX_FILE,
    TORCHSCRIPT_FILE,
    ModelMetadata,
    model_digest,
    weights_digest,
    write_model_metadata,
)
from silverset.components.common.digest import sha256_bytes, sha256_json
from silverset.components.common.errors import SilversetInputError
from silverset.components.common.spec import AttributeSpec, load_spec

from .student import StudentOptions

_LOGGER = logging.getLogger(__name__)

STAGE = "distill"
ONNX_INPUT = "embeddings"
ONNX_OUTPUT = "probability"


# ---------------------------------------------------------------- inputs


def embedding_dimension(table: pa.Table, *, name: str) -> int:
    """d of a table whose ``vector`` column is fixed_size_list<float32>[d]."""
    if "vector" not in table.column_names:
        raise SilversetInputError(name, "missing required column 'vector'")
    vector_type = table.schema.field("vector").type
    if not pa.types.is_fixed_size_list(vector_type):
        raise SilversetInputError(name, f"column 'vector' is {vector_type}, expected a fixed-size list of float32")
    return vector_type.list_size


def read_embeddings(uri: str | Path) -> tuple[pa.Table, int]:
    """The embeddings table conformed to ``embeddings_schema(d)``, and d."""
    name = f"embeddings '{uri}'"
    raw = tables.read_table(uri, name=name)
    dimension = embedding_dimension(raw, name=name)
    return tables.conform(raw, schemas.embeddings_schema(dimension), name=name), dimension


def vectors_of(table: pa.Table, dimension: int) -> np.ndarray:
    """float32 [n, d] view of a conformed embeddings table's ``vector`` column."""
    flat = table.column("vector").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    return np.asarray(flat, dtype=np.float32).reshape(-1, dimension)


def teacher_labels_for(labels: pa.Table, spec: AttributeSpec, *, name: str) -> dict[str, float]:
    """video_id -> teacher P(positive) for this attribute and version; fails on a version mismatch."""
    attribute = np.asarray(labels.column("attribute").to_pylist(), dtype=object)
    version = np.asarray(labels.column("attribute_version").to_numpy())
    mine = attribute == spec.name
    if mine.any() and not (version[mine] == spec.version).any():
        found = sorted({int(v) for v in version[mine]})
        raise SilversetInputError(
            name, f"attribute version mismatch: labels are for {spec.name} v{found}, spec is {spec.key}"
        )
    keep = mine & (version == spec.version)
    if not keep.any():
        raise SilversetInputError(name, f"has no labels for {spec.key}")
    ids = labels.column("video_id").to_pylist()
    probs = labels.column("probability").to_numpy()
    teacher: dict[str, float] = {}
    for i in np.flatnonzero(keep):
        teacher[ids[i]] = float(probs[i])  # a later duplicate wins: labels are appended, never edited
    return teacher


def training_data_digest(video_ids: list[str], vectors: np.ndarray, teacher_probabilities: np.ndarray) -> str:
    """sha256 over the exact (video_id, vector, teacher probability) rows the student saw, in order."""
    return sha256_json(
        {
            "video_ids": sha256_bytes("\n".join(video_ids).encode("utf-8")),
            "vectors": sha256_bytes(np.ascontiguousarray(vectors, dtype=np.float32).tobytes()),
            "teacher": sha256_bytes(np.ascontiguousarray(teacher_probabilities, dtype=np.float32).tobytes()),
        }
    )


# ---------------------------------------------------------------- training


def split_held_out(n: int, *, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, held_out) index arrays; held-out has at least one item when n >= 2."""
    order = np.random.default_rng(seed).permutation(n)
    n_held = min(max(int(round(n * fraction)), 1 if n >= 2 else 0), n - 1)
    return np.sort(order[n_held:]), np.sort(order[:n_held])


def train_student(vectors: np.ndarray, teacher_probabilities: np.ndarray, *, options: StudentOptions) -> dict[str, Any]:
    """Train with early stopping on held-out KD loss, then calibrate and pick a threshold on held-out.

    vectors: float32 [n, d]; teacher_probabilities: float32 [n].
    Returns the CalibratedStudent (eval mode), threshold info, held-out metrics and the split sizes.
    """
    import torch

    from silverset.components.evaluate import metrics

    from .student import CalibratedStudent, DistillationLoss, StudentNet, fit_calibration

    n, dimension = vectors.shape
    train_idx, held_idx = split_held_out(n, fraction=options.held_out_fraction, seed=options.seed)
    x = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))
    p = torch.from_numpy(np.ascontiguousarray(teacher_probabilities, dtype=np.float32))
    hard = (p >= 0.5).float()
    n_pos = float(hard[train_idx].sum())
    n_neg = float(len(train_idx) - n_pos)
    pos_weight = min(max(n_neg / n_pos, 1.0), 100.0) if options.balance_classes and n_pos > 0 else 1.0

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(options.seed)
        generator = torch.Generator().manual_seed(options.seed)
        net = StudentNet(
            dimension, architecture=options.architecture, hidden_units=options.hidden_units, dropout=options.dropout
        )
        loss_fn = DistillationLoss(pos_weight=pos_weight, hard_weight=options.hard_label_weight)
        optimizer = torch.optim.AdamW(net.parameters(), lr=options.learning_rate, weight_decay=options.weight_decay)
        x_train, p_train = x[train_idx], p[train_idx]
        x_held, p_held = x[held_idx], p[held_idx]
        best_loss, best_state, best_epoch, stale, epochs = float("inf"), None, 0, 0, 0
        for epoch in range(options.max_epochs):
            epochs = epoch + 1
            net.train()
            for batch in torch.randperm(len(train_idx), generator=generator).split(options.batch_size):
                optimizer.zero_grad()
                loss = loss_fn(net(x_train[batch]), p_train[batch])
                loss.backward()
                optimizer.step()
            net.eval()
            with torch.no_grad():
                held_loss = float(loss_fn(net(x_held), p_held)) if len(held_idx) else float(loss)
            _LOGGER.debug("epoch %d: held-out KD loss %.5f (best %.5f)", epochs, held_loss, best_loss)
            if held_loss < best_loss - 1e-6:
                best_loss, best_epoch, stale = held_loss, epochs, 0
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            else:
                stale += 1
                if stale >= options.patience:
                    _LOGGER.info(
                        "early stop after epoch %d: no held-out gain for %d epochs (best epoch %d, loss %.5f)",
                        epochs,
                        stale,
                        best_epoch,
                        best_loss,
                    )
                    break
        net.load_state_dict(best_state)
        net.eval()
        with torch.no_grad():
            held_logits = net(x_held)
        scale, bias = fit_calibration(held_logits, p_held, method=options.calibration)
        model = CalibratedStudent(net, scale=scale, bias=bias).eval()
        with torch.no_grad():
            held_probs = model(x_held).numpy().astype(np.float64)

    held_hard = hard[held_idx].numpy().astype(np.int64)
    chosen = metrics.select_threshold(held_hard, held_probs, target_precision=options.target_precision)
    # When the held-out set is separated perfectly (F1 1), the cut sits exactly on its lowest positive, leaving
    # no margin for unseen positives just below it. Move it to the middle of the gap (max margin): the held-out
    # decisions and metrics stay the same.
    below = held_probs[held_probs < chosen["threshold"]]
    if below.size and chosen["f1"] == 1.0:
        chosen = {**chosen, "threshold": float((chosen["threshold"] + below.max()) / 2)}
    held_predicted = (held_probs >= chosen["threshold"]).astype(np.int64)
    held_metrics = metrics.point_metrics(held_hard, held_probs, held_predicted)
    return {
        "model": model,
        "threshold": chosen,
        "held_out_metrics_vs_teacher": held_metrics,
        "calibration": {"method": options.calibration, "scale": scale, "bias": bias},
        "pos_weight": pos_weight,
        "epochs": epochs,
        "best_epoch": best_epoch,
        "best_held_out_loss": best_loss,
        "n_train": int(len(train_idx)),
        "n_held_out": int(len(held_idx)),
        "n_teacher_positives": int(hard.sum()),
    }


# ---------------------------------------------------------------- export


def export_model(model: Any, dimension: int, out_dir: Path) -> None:
    """Write ``model.pt`` (TorchScript) and ``model.onnx`` (dynamic batch axis) under ``out_dir``."""
    import warnings

    import torch

    example = torch.zeros(2, dimension, dtype=torch.float32)
    torch.jit.script(model).save(str(out_dir / TORCHSCRIPT_FILE))
    with warnings.catch_warnings():
        # The TorchScript-based exporter is deprecated but is exact for this graph and takes 0.3 s
        # where the dynamo exporter takes ~8 s on these machines.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            str(out_dir / ONNX_FILE),
            input_names=[ONNX_INPUT],
            output_names=[ONNX_OUTPUT],
            dynamic_axes={ONNX_INPUT: {0: "items"}, ONNX_OUTPUT: {0: "items"}},
            dynamo=False,
        )


def measure_latency_s_per_item(model_dir: str | Path, dimension: int, *, batch: int = 1024, repeats: int = 20) -> float:
    """Median seconds per item of the ONNX student on one CPU thread, batches of ``batch`` items."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(Path(model_dir) / ONNX_FILE), options, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((batch, dimension)).astype(np.float32)
    session.run(None, {ONNX_INPUT: x})
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(None, {ONNX_INPUT: x})
        times.append(time.perf_counter() - start)
    return float(np.median(times) / batch)


def seal_model_dir(model_dir: Path, metadata: ModelMetadata, *, measure_latency: bool = True) -> ModelMetadata:
    """The last step of writing a MODELDIR (a distilled student or the studio's classifier), whose model files are
    already there: its latency measured, its digest over the files and the deciding fields, metadata.json written."""
    latency = measure_latency_s_per_item(model_dir, metadata.dimension) if measure_latency else None
    metadata = metadata.model_copy(update={"latency_s_per_item": latency})
    metadata = metadata.model_copy(update={"model_digest": model_digest(model_dir, metadata)})
    write_model_metadata(model_dir, metadata)
    return metadata


# ---------------------------------------------------------------- entry point


class DistillSummary(BaseModel):
    """What one distillation wrote: MODELDIR, the candidate's digest and threshold, and its counts
    (``items == trained_on + errors``)."""

    model_config = ConfigDict(frozen=True)

    model_dir: str
    model_digest: str
    attribute: str  # the spec's key, name@vN
    embedder_id: str
    items: int  # embedding rows read
    trained_on: int
    errors: int  # rows written to errors.parquet
    threshold: float
    held_out_f1_vs_teacher: float
    latency_s_per_item: float | None  # median ONNX seconds per item on one CPU thread; None = not measured


def run(
    *,
    embeddings: str,
    labels: str,
    attribute_spec: str,
    out_dir: str,
    options: StudentOptions = StudentOptions(),
    measure_latency: bool = True,
    overwrite: bool = False,
) -> DistillSummary:
    """Distill a student for the spec at ``attribute_spec`` into ``out_dir`` (MODELDIR).

    Every embedding row is either a training item or an error (no teacher label for this attribute
    version, or a second embedder id). Returns digest, threshold, counts and held-out metrics.
    """
    spec = load_spec(attribute_spec)
    table, dimension = read_embeddings(embeddings)
    labels_table = tables.read_table(labels, schemas.LABELS, name=f"labels '{labels}'")
    teacher = teacher_labels_for(labels_table, spec, name=f"labels '{labels}'")

    embedder_ids = table.column("embedder_id").to_pylist()
    video_ids = table.column("video_id").to_pylist()
    if not video_ids:
        raise SilversetInputError(f"embeddings '{embeddings}'", "is empty")
    # One student serves one embedding space: the most common embedder id wins, others are errors.
    values, counts = np.unique(np.asarray(embedder_ids, dtype=object).astype(str), return_counts=True)
    embedder_id = str(values[np.argmax(counts)])
    errors: list[tables.ErrorRow] = []
    keep: list[int] = []
    seen: set[str] = set()
    for i, (vid, eid) in enumerate(zip(video_ids, embedder_ids)):
        if eid != embedder_id:
            errors.append(
                tables.ErrorRow(
                    vid, STAGE, "embedder_mismatch", f"embedder id {eid!r}, student trains on {embedder_id!r}"
                )
            )
        elif vid in seen:
            errors.append(
                tables.ErrorRow(vid, STAGE, "duplicate_embedding", "video_id appears twice in the embeddings")
            )
        elif vid not in teacher:
            errors.append(tables.ErrorRow(vid, STAGE, "no_teacher_label", f"no teacher label for {spec.key}"))
        else:
            keep.append(i)
            seen.add(vid)
    if len(keep) < 10:
        raise SilversetInputError(
            f"labels '{labels}'", f"only {len(keep)} embeddings have a teacher label for {spec.key}; need at least 10"
        )
    vectors = vectors_of(table, dimension)[keep]
    kept_ids = [video_ids[i] for i in keep]
    teacher_probs = np.array([teacher[v] for v in kept_ids], dtype=np.float32)
    if not np.all(np.isfinite(vectors)) or not np.all(np.isfinite(teacher_probs)):
        raise SilversetInputError(f"embeddings '{embeddings}'", "contains NaN or infinite values")

    if errors:
        reasons = Counter(e.error_type for e in errors)
        _LOGGER.warning(
            "distill %s: %d of %d embeddings left out of training and written to the errors table (%s); first: %s",
            spec.key,
            len(errors),
            len(video_ids),
            ", ".join(f"{k} {n}" for k, n in sorted(reasons.items())),
            ", ".join(e.key for e in errors[:5]),
        )
    _LOGGER.info(
        "distill %s: training a %s student on %d videos (%d dims, %s)",
        spec.key,
        options.architecture,
        len(keep),
        dimension,
        embedder_id,
    )
    started = time.perf_counter()
    trained = train_student(vectors, teacher_probs, options=options)
    with tables.atomic_directory(out_dir, command="distill", overwrite=overwrite) as staging:
        export_model(trained["model"], dimension, staging)
        metadata = ModelMetadata(
            attribute=spec.name,
            attribute_version=spec.version,
            prompt_hash=spec.prompt_hash,
            embedder_id=embedder_id,
            dimension=dimension,
            threshold=trained["threshold"]["threshold"],
            threshold_rule=trained["threshold"]["rule"],
            training_data_digest=training_data_digest(kept_ids, vectors, teacher_probs),
            training_metrics={
                "held_out_vs_teacher": trained["held_out_metrics_vs_teacher"],
                "epochs": trained["epochs"],
                "best_epoch": trained["best_epoch"],
                "best_held_out_loss": trained["best_held_out_loss"],
                "n_train": trained["n_train"],
                "n_held_out": trained["n_held_out"],
                "n_teacher_positives": trained["n_teacher_positives"],
                "pos_weight": trained["pos_weight"],
            },
            calibration=trained["calibration"],
            options=options.model_dump(mode="json"),
            files={"torchscript": TORCHSCRIPT_FILE, "onnx": ONNX_FILE},
            onnx_io={"input": ONNX_INPUT, "output": ONNX_OUTPUT},
        )
        metadata = seal_model_dir(staging, metadata, measure_latency=measure_latency)
        tables.write_errors(staging, errors)
    _LOGGER.info(
        "distill %s: %d epochs (best %d), held-out F1 vs teacher %.3f, threshold %.3f, digest %s in %.1f s",
        spec.key,
        trained["epochs"],
        trained["best_epoch"],
        trained["held_out_metrics_vs_teacher"]["f1"],
        metadata.threshold,
        metadata.model_digest,
        time.perf_counter() - started,
    )
    return DistillSummary(
        model_dir=str(out_dir),
        model_digest=metadata.model_digest,
        attribute=spec.key,
        embedder_id=embedder_id,
        items=len(video_ids),
        trained_on=len(keep),
        errors=len(errors),
        threshold=metadata.threshold,
        held_out_f1_vs_teacher=trained["held_out_metrics_vs_teacher"]["f1"],
        latency_s_per_item=metadata.latency_s_per_item,
    )
