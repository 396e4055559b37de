"""Real Silverset tables built from known truth for tests and benchmarks, written with the pinned schemas.

- frames: ``video_frames`` / ``write_frames`` / ``write_manifest`` make tiny synthetic videos of a known kind
  ('red', 'moving', 'cuts', 'text', 'plain') as a frames table (JPEG bytes) and a manifest CSV;
  ``encode_video`` writes uint8 RGB frames as a real H.264 file.
- embeddings + teacher labels: ``write_synthetic`` makes embeddings whose positives lie along one direction and
  noisy teacher probabilities of that truth.
- golden sets and scores: ``write_golden``, ``write_scores`` and ``noisy_predictions`` for the gate tests.
- exposure logs: ``write_exposure_log`` writes A/B exposure rows as the server's rotated Parquet files.
- incremental runs: ``file_corpus`` (small files + manifest), ``spec_version`` (the example spec at a version),
  ``teacher_labels`` (what a teacher would label for a plan's todo videos), ``golden_for_ids``.
"""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import numpy as np
import pyarrow as pa

from silverset.components.common import schemas, tables
from silverset.components.common.golden import GOLDEN_V1
from silverset.components.common.spec import example_specs_dir, load_spec

SPEC = str(example_specs_dir() / "red_dominant.yaml")  # teacher gate: F1 >= 0.6, lower CI >= 0.45, 10 pos / 10 neg
EMBEDDER = "minilm-test@sha256:0"
VIDEO_KINDS = ("red", "moving", "cuts", "text", "plain")  # the kinds video_frames draws


# --- frames and manifests ------------------------------------------------------------------------------------------


def jpeg(rgb: np.ndarray) -> bytes:
    """JPEG bytes (quality 90) of uint8 RGB [h, w, 3]."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def video_frames(kind: str, *, n: int = 8, size: int = 48, seed: int = 0) -> list[np.ndarray]:
    """Frames uint8 [size, size, 3] of a synthetic video: 'red', 'moving', 'cuts', 'text' or 'plain'."""
    rng = np.random.default_rng(seed)
    base = np.full((size, size, 3), (70, 90, 110), np.uint8) + rng.integers(0, 10, (size, size, 3), dtype=np.uint8)
    out = []
    for t in range(n):
        f = base.copy()
        if kind == "red":
            f[..., 0], f[..., 1], f[..., 2] = 210, 30, 35
        elif kind == "moving":
            x = 4 + t * (size - 16) // n
            f[20:32, x : x + 10] = (250, 250, 250)
        elif kind == "cuts":
            f[:] = [(20, 160, 40), (200, 200, 30), (30, 40, 200), (160, 60, 160)][t % 4]
        elif kind == "text":
            for c in range(4, size - 4, 4):
                f[size - 14 : size - 6, c : c + 2] = 255
        out.append(f)
    return out


def write_frames(path: Path, videos: dict[str, str], *, n: int = 8) -> Path:
    """Write a frames table for ``{video_id: kind}`` as one Parquet shard under ``path`` (a folder)."""
    rows = []
    for i, (vid, kind) in enumerate(videos.items()):
        for t, f in enumerate(video_frames(kind, n=n, seed=i)):
            rows.append(
                {
                    "video_id": vid,
                    "frame_index": t,
                    "timestamp_s": t * 0.5,
                    "width": f.shape[1],
                    "height": f.shape[0],
                    "jpeg": jpeg(f),
                }
            )
    tables.write_table(pa.Table.from_pylist(rows, schema=schemas.FRAMES), path / "frames-00000.parquet", schemas.FRAMES)
    return path


def write_manifest(path: Path, videos: dict[str, str]) -> Path:
    """Write a manifest CSV (video_id, uri, title, description) for ``{video_id: kind}`` at ``path``."""
    titles = {
        "red": "A crimson scene",
        "moving": "A ball rolling across",
        "cuts": "Fast montage",
        "text": "Lecture with captions",
        "plain": "Quiet grey room",
    }
    lines = ["video_id,uri,title,description"]
    for vid, kind in videos.items():
        lines.append(f"{vid},file:///videos/{vid}.mp4,{titles[kind]},synthetic {kind} clip")
    path.write_text("\n".join(lines) + "\n")
    return path


def encode_video(path: Path, frames: list[np.ndarray], *, fps: int = 10, gop: int = 10, fmt: str = "mp4") -> Path:
    """Encode uint8 RGB frames [h, w, 3] to H.264 at ``path``."""
    height, width = frames[0].shape[:2]
    import av

    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "threads": "1"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = gop
        for array in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


# --- embeddings and teacher labels ---------------------------------------------------------------------------------


def write_synthetic(
    root: Path, *, n: int = 400, dimension: int = 16, seed: int = 0, positive_share: float = 0.3
) -> dict:
    """Embeddings float32 [n, d] whose positives lie along one direction; teacher = noisy truth probability."""
    rng = np.random.default_rng(seed)
    truth = (rng.random(n) < positive_share).astype(np.int32)
    direction = rng.standard_normal(dimension).astype(np.float32)
    direction /= np.linalg.norm(direction)
    shift = np.outer(truth * 2.5 - 1.0, direction).astype(np.float32)
    vectors = rng.standard_normal((n, dimension)).astype(np.float32) + shift
    margin = vectors @ direction
    teacher_prob = (1 / (1 + np.exp(-2.0 * (margin - 0.25)))).astype(np.float32)
    ids = [f"v{i:05d}" for i in range(n)]
    emb = pa.table(
        {
            "video_id": ids,
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), dimension),
            "embedder_id": [EMBEDDER] * n,
        }
    )
    tables.write_table(emb, root / "embeddings" / "part-0.parquet", schemas.embeddings_schema(dimension))
    labels = pa.table(
        {
            "video_id": ids,
            "attribute": ["red_dominant"] * n,
            "attribute_version": pa.array([1] * n, pa.int32()),
            "label": pa.array((teacher_prob >= 0.5).astype(np.int32)),
            "probability": pa.array(teacher_prob),
            "rationale": [None] * n,
            "teacher_id": ["sim"] * n,
            "prompt_hash": ["x"] * n,
        }
    )
    tables.write_table(labels, root / "labels.parquet", schemas.LABELS)
    return {
        "embeddings": str(root / "embeddings"),
        "labels": str(root / "labels.parquet"),
        "vectors": vectors,
        "truth": truth,
        "teacher": teacher_prob,
        "ids": ids,
        "dimension": dimension,
    }


# --- golden sets and scores ----------------------------------------------------------------------------------------


def write_golden(path: Path, labels, *, version: int = 1, attribute: str = "red_dominant") -> str:
    n = len(labels)
    table = pa.table(
        {
            "video_id": [f"v{i:04d}" for i in range(n)],
            "attribute": [attribute] * n,
            "attribute_version": pa.array([version] * n, pa.int32()),
            "label": pa.array(np.asarray(labels, dtype=np.int32)),
            "labeler": ["alice"] * n,
            "labeled_at": pa.array([dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)] * n, pa.timestamp("us", tz="UTC")),
        }
    )
    tables.write_table(table, path, GOLDEN_V1)  # the v1 layout: golden.py reads it
    return str(path)


def write_scores(path: Path, probabilities, *, ids=None, version: int = 1, digest: str = "d0") -> str:
    probabilities = np.asarray(probabilities, dtype=np.float32)
    ids = ids if ids is not None else [f"v{i:04d}" for i in range(len(probabilities))]
    n = len(ids)
    table = pa.table(
        {
            "video_id": ids,
            "attribute": ["red_dominant"] * n,
            "attribute_version": pa.array([version] * n, pa.int32()),
            "probability": pa.array(probabilities),
            "model_digest": [digest] * n,
        }
    )
    tables.write_table(table, path, schemas.SCORES)
    return str(path)


def noisy_predictions(truth: np.ndarray, *, flip: float, seed: int) -> np.ndarray:
    """P(positive) that agrees with ``truth`` except on a seeded ``flip`` share of items."""
    rng = np.random.default_rng(seed)
    wrong = rng.random(len(truth)) < flip
    decided = np.where(wrong, 1 - truth, truth)
    return np.where(decided == 1, 0.6 + 0.39 * rng.random(len(truth)), 0.4 * rng.random(len(truth)))


# --- incremental runs ----------------------------------------------------------------------------------------------


def file_corpus(root: Path, n: int) -> Path:
    """``n`` small files ``root/videos/v000.mp4``... (distinct bytes), listed in ``root/manifest.csv``; returns it."""
    videos = root / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    lines = ["video_id,uri,title"]
    for i in range(n):
        path = videos / f"v{i:03d}.mp4"
        path.write_bytes(f"video bytes {i}".encode())
        lines.append(f"v{i:03d},{path},title {i}")
    manifest = root / "manifest.csv"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def spec_version(root: Path, *, version: int = 1) -> Path:
    """The example red_dominant spec at ``version``, written as ``root/spec_v<version>.yaml``."""
    text = (example_specs_dir() / "red_dominant.yaml").read_text().replace("version: 1", f"version: {version}")
    path = root / f"spec_v{version}.yaml"
    path.write_text(text)
    return path


def teacher_labels(todo_manifest: str, spec_path: Path, out: Path) -> tuple[str, int]:
    """What the teacher would produce for a plan's todo videos (label i % 2); returns (labels dir, teacher calls)."""
    spec = load_spec(spec_path)
    ids = tables.read_table(todo_manifest).column("video_id").to_pylist()
    rows = [
        {
            "video_id": v,
            "attribute": spec.name,
            "attribute_version": spec.version,
            "label": i % 2,
            "probability": 0.9 if i % 2 else 0.1,
            "rationale": "r",
            "teacher_id": "fake",
            "prompt_hash": spec.prompt_hash,
        }
        for i, v in enumerate(ids)
    ]
    tables.write_table(pa.Table.from_pylist(rows, schema=schemas.LABELS), out / "part-00000.parquet", schemas.LABELS)
    tables.write_errors(out, [])
    return str(out), len(ids)


def golden_for_ids(path: Path, ids: list[str], attribute: str = "red_dominant") -> str:
    """A v1 golden set of ``ids`` (label i % 2, labeler alice) for ``attribute``; returns the path."""
    n = len(ids)
    tables.write_table(
        pa.table(
            {
                "video_id": ids,
                "attribute": [attribute] * n,
                "attribute_version": pa.array([1] * n, pa.int32()),
                "label": pa.array([i % 2 for i in range(n)], pa.int32()),
                "labeler": ["alice"] * n,
                "labeled_at": pa.array(
                    [dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)] * n, pa.timestamp("us", tz="UTC")
                ),
            }
        ),
        path,
        GOLDEN_V1,
    )
    return str(path)


# --- A/B exposure logs ---------------------------------------------------------------------------------------------


def write_exposure_log(folder: Path, rows: list, files: int = 3) -> None:
    """Write ``rows`` (``abtest.exposure.Exposure``) as ``files`` exposure Parquet files in ``folder``, in order."""
    import pyarrow.parquet as pq

    from silverset.components.abtest.exposure import exposures_table

    folder.mkdir(parents=True, exist_ok=True)
    for i, chunk in enumerate(np.array_split(np.arange(len(rows)), files)):
        pq.write_table(
            exposures_table([rows[j] for j in chunk]), folder / f"exposures-2026113{i}T000000000000Z-1-{i:06d}.parquet"
        )
