"""Which embedder made a run's embeddings, as block names: part of the plan digest, and compared with the
embedder id stored on every carried embedding row, so the state never mixes two embedders' vectors.

The identity is the embed stage's embedder id (``embed.EmbedHandler.model_id``) without the block widths,
computed without loading any model (weights are hashed, not loaded):

- ``default`` / ``visual``: ``visual-stats-v1+minilm-l6-v2@sha256:<16 hex>``
- ``clip:PATH_OR_HUB_ID``: ``clip-<name>@sha256:<16 hex>+minilm-...`` (``embed.clip.block_name_for``)
- a ``.onnx``/``.pt`` checkpoint: ``checkpoint:<file name>@sha256:<16 hex>+minilm-...``
- ``text``: ``minilm-...``

The pipeline's embed step always has a manifest, so the MiniLM text block is always part of the vector.
"""

from __future__ import annotations

from silverset.components.common.errors import SilversetInputError

DEFAULT_EMBEDDER = "default"


def embedder_identity(embedder: str) -> str:
    """Block names (joined by ``+``) of the vectors the pipeline's embed step writes with ``embedder``."""
    from pathlib import Path

    from silverset.components.embed import clip, visual
    from silverset.components.embed.embed import BUILTIN_EMBEDDERS

    from .teacher_identity import _sha256_uri, bundled_text_weights_id

    embedder = (embedder or DEFAULT_EMBEDDER).strip()
    text = bundled_text_weights_id()
    if embedder in ("default", "visual"):
        return f"{visual.VISUAL_ID}+{text}"
    if embedder == "text":
        return text
    if clip.is_clip(embedder):
        clip.resolve(embedder, flag="embedder")  # names the pipeline parameter when the weights are missing
        return f"{clip.block_name_for(embedder)}+{text}"
    path = Path(embedder)
    if not path.is_file():
        raise SilversetInputError(
            f"embedder '{embedder}'",
            f"is neither one of {', '.join(BUILTIN_EMBEDDERS)}, "
            "clip:PATH_OR_HUB_ID nor an existing .onnx/.pt checkpoint file",
        )
    return f"checkpoint:{path.name}@sha256:{_sha256_uri(str(path), 'embedder checkpoint')[:16]}+{text}"


def block_names(embedder_id: str) -> str:
    """An embeddings row's ``embedder_id`` (``name[width]+...``) as its identity (``name+...``)."""
    from silverset.components.embed.embed import blocks

    return "+".join(name for name, _, _ in blocks(embedder_id))
