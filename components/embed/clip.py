"""Image-text (CLIP / SigLIP) embedder from weights the user already has: frame vectors and query text vectors.

``--embedder clip:PATH_OR_HUB_ID`` loads ``transformers``' ``CLIPModel`` / ``SiglipModel`` (any model with
``get_image_features`` and ``get_text_features``), its tokenizer and image processor, from a directory written
by ``save_pretrained`` or from a hub id that is already in the local Hugging Face cache. Nothing is ever fetched
from the network (``local_files_only`` everywhere). Frame and text vectors are projected into the joint space
and L2-normalised, so a query's text vector compares with a video's pooled frame vector by dot product.

The block of the embedding is named ``clip-<name>@sha256:<16 hex of the weights>[D]``; the digest, not the name,
is the identity: ``encode_text`` refuses a model whose digest differs from the embeddings' block.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from silverset.components.common.errors import SilversetInputError

_LOGGER = logging.getLogger(__name__)

if TYPE_CHECKING:
    from silverset.components.runtime.inputs import VideoFrames

PREFIX = "clip:"
_BLOCK_PREFIX = "clip-"
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*(/[A-Za-z0-9][A-Za-z0-9_.\-]*)?$")
HOW_TO_PROVIDE = (
    "give a directory written by save_pretrained (model, tokenizer and image processor: "
    "model.save_pretrained(D); processor.save_pretrained(D)) or a hub id already in the local "
    "Hugging Face cache (fill it where there is network, e.g. `hf download ORG/NAME`, and copy "
    "HF_HOME here); weights are never downloaded at run time"
)


def is_clip(embedder: str) -> bool:
    """Whether an ``--embedder`` value names an image-text model (``clip:PATH_OR_HUB_ID``)."""
    return embedder.startswith(PREFIX)


@dataclass(frozen=True)
class ImageTextModel:
    """A loaded image-text model: towers, tokenizer and image processor, with its weight digest and width."""

    source: str  # what the user gave after ``clip:``
    directory: Path
    name: str  # sanitized label for the block name (hub id or directory name)
    digest: str  # sha256 of the weight files, hex
    dimension: int  # width of the joint (projected) space
    model_type: str  # config.model_type, e.g. "clip" or "siglip"
    model: object
    tokenizer: object
    image_processor: object

    @property
    def block_name(self) -> str:
        """``clip-<name>@sha256:<16 hex>`` (the embedder id adds ``[D]``)."""
        return f"{_BLOCK_PREFIX}{self.name}@sha256:{self.digest[:16]}"

    @property
    def device(self):
        """Where the model's weights live: the first CUDA device when torch sees one, else the CPU."""
        return next(self.model.parameters()).device

    @property
    def logit_scale(self) -> float:
        """The model's learned similarity scale (exp of ``logit_scale``), e.g. 100 for OpenAI's CLIP."""
        scale = getattr(self.model, "logit_scale", None)
        return float(np.exp(float(scale.detach().reshape(-1)[0]))) if scale is not None else 100.0

    def encode_images(self, frames: Sequence[np.ndarray], *, batch_size: int = 64) -> np.ndarray:
        """Frames uint8 [H, W, 3] RGB (any size) -> unit vectors float32 [len(frames), dimension]."""
        import torch

        out = np.zeros((len(frames), self.dimension), np.float32)
        for lo in range(0, len(frames), batch_size):
            pixels = self.image_processor(images=list(frames[lo : lo + batch_size]), return_tensors="pt")
            with torch.inference_mode():
                feats = _pooled(self.model.get_image_features(pixel_values=pixels["pixel_values"].to(self.device)))
            out[lo : lo + len(feats)] = _unit(feats.float().cpu().numpy())
        return out

    def encode_videos(
        self, videos: dict[str, VideoFrames], *, max_frames: int
    ) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        """Unit frame vectors of each video, float32 [T, dimension] per key, from one pass over all their frames.

        ``max_frames`` evenly spaced frames per video, decoded at full size (the image processor resizes and
        crops as the model was trained). A video whose JPEGs do not decode is returned in the second dict
        (key -> message) instead: it drops that video, not the batch.
        """
        failed: dict[str, str] = {}
        frames: list[np.ndarray] = []
        owners: list[str] = []
        for key, video in videos.items():
            try:
                decoded = video.decode(None, max_frames=max_frames)
            except Exception as exc:  # noqa: BLE001 - any decoder error is that video's error
                failed[key] = f"{type(exc).__name__}: {exc}"
                continue
            frames.extend(decoded)
            owners.extend([key] * len(decoded))
        vectors = self.encode_images(frames) if frames else np.zeros((0, self.dimension), np.float32)
        owner = np.asarray(owners, dtype=object)
        return {key: vectors[owner == key] for key in dict.fromkeys(owners)}, failed

    def encode_text(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        """Texts -> unit vectors float32 [len(texts), dimension] (SigLIP pads to its trained length)."""
        import torch

        out = np.zeros((len(texts), self.dimension), np.float32)
        padding = "max_length" if self.model_type.startswith("siglip") else True
        max_length = getattr(getattr(self.model.config, "text_config", None), "max_position_embeddings", None)
        for lo in range(0, len(texts), batch_size):
            tokens = self.tokenizer(
                list(texts[lo : lo + batch_size]),
                padding=padding,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            tokens = {k: v.to(self.device) for k, v in tokens.items() if k in ("input_ids", "attention_mask")}
            if self.model_type.startswith("siglip"):
                tokens.pop("attention_mask", None)  # SigLIP was trained without one (pads are attended)
            with torch.inference_mode():
                feats = _pooled(self.model.get_text_features(**tokens))
            out[lo : lo + len(feats)] = _unit(feats.float().cpu().numpy())
        return out


def _pooled(output):
    """transformers 5 returns a ModelOutput whose ``pooler_output`` is the projected vector; 4.x a tensor."""
    return getattr(output, "pooler_output", output)


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


def pool_frames(frame_vectors: np.ndarray) -> np.ndarray:
    """Unit frame vectors float32 [T, D] -> one unit video vector float32 [D] (mean, re-normalised)."""
    return _unit(frame_vectors.mean(0))


def _source_of(embedder: str, flag: str = "--embedder") -> str:
    source = embedder[len(PREFIX) :] if is_clip(embedder) else embedder
    if not source.strip():
        raise SilversetInputError(f"{flag} '{embedder}'", f"names no model; use clip:PATH_OR_HUB_ID ({HOW_TO_PROVIDE})")
    return source


def resolve(embedder: str, *, flag: str = "--embedder") -> Path:
    """The local directory holding the weights for ``clip:PATH_OR_HUB_ID``; never touches the network.

    A path that exists is used as is; otherwise a hub id is looked up in the local Hugging Face cache only.
    ``flag`` names the input in errors (``--embedder``, or ``--checkpoint`` for the teacher).
    """
    source = _source_of(embedder, flag)
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise SilversetInputError(
            f"{flag} '{embedder}'", f"'{source}' is a file, not a model directory; {HOW_TO_PROVIDE}"
        )
    if not _HUB_ID.match(source) or source.startswith("."):
        raise SilversetInputError(f"{flag} '{embedder}'", f"no model directory at '{source}'; {HOW_TO_PROVIDE}")
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:  # local_files_only: a cache lookup, no HTTP request is made
        return Path(snapshot_download(source, cache_dir=constants.HF_HUB_CACHE, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError) as exc:
        raise SilversetInputError(
            f"{flag} '{embedder}'",
            f"'{source}' is neither a model directory nor in the local Hugging Face cache "
            f"({constants.HF_HUB_CACHE}); {HOW_TO_PROVIDE}",
        ) from exc


def weights_digest(directory: Path) -> str:
    """sha256 over the directory's weight files (``*.safetensors``, else ``*.bin``), in name order."""
    import hashlib

    from silverset.components.common.digest import sha256_file

    files = sorted(directory.glob("*.safetensors")) or sorted(directory.glob("*.bin"))
    if not files:
        raise SilversetInputError(
            f"model directory '{directory}'", f"holds no *.safetensors or *.bin weights; {HOW_TO_PROVIDE}"
        )
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.name}:{sha256_file(f)}\n".encode())
    return h.hexdigest()


def _label(source: str, directory: Path) -> str:
    """The readable part of a block name: the hub id (``/`` -> ``--``) or the model directory's name."""
    label = source if not Path(source).expanduser().is_dir() else directory.name
    return re.sub(r"[^A-Za-z0-9._-]+", "--", label).strip("-") or "model"


def block_name_for(embedder: str) -> str:
    """``clip-<name>@sha256:<16 hex>`` of ``clip:PATH_OR_HUB_ID`` without loading the model (hashes the weights).

    For callers that need the identity only, e.g. a run plan deciding whether labels must be redone.
    """
    directory = resolve(embedder)
    return f"{_BLOCK_PREFIX}{_label(_source_of(embedder), directory)}@sha256:{weights_digest(directory)[:16]}"


@functools.lru_cache(maxsize=4)
def _load_directory(directory: str, source: str, flag: str) -> ImageTextModel:
    from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

    path = Path(directory)
    what = f"{flag} 'clip:{source}'"
    digest = weights_digest(path)
    try:
        model = AutoModel.from_pretrained(path, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        image_processor = AutoImageProcessor.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        reason = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}"
        raise SilversetInputError(
            what, f"cannot load model, tokenizer and image processor from '{path}' ({reason}); {HOW_TO_PROVIDE}"
        ) from exc
    if not (hasattr(model, "get_image_features") and hasattr(model, "get_text_features")):
        raise SilversetInputError(what, f"'{type(model).__name__}' is not an image-text model (CLIPModel, SiglipModel)")
    import torch

    model.eval()
    if torch.cuda.is_available():  # fp32 on the GPU: same vectors as on CPU up to rounding
        model.to("cuda")
    loaded = ImageTextModel(
        source=source,
        directory=path,
        name=_label(source, path),
        digest=digest,
        dimension=0,
        model_type=str(model.config.model_type),
        model=model,
        tokenizer=tokenizer,
        image_processor=image_processor,
    )
    # The joint width differs by family (CLIP: projection_dim; SigLIP: the text head's width): ask the model.
    tokens = tokenizer(["a video"], return_tensors="pt")
    with torch.inference_mode():
        probe = _pooled(model.get_text_features(input_ids=tokens["input_ids"].to(loaded.device)))
    _LOGGER.info(
        "image-text model %s (%s, %d dims) loaded from %s on %s",
        loaded.name,
        loaded.model_type,
        int(probe.shape[-1]),
        path,
        loaded.device,
    )
    return dataclasses.replace(loaded, dimension=int(probe.shape[-1]))


def load(embedder: str, *, flag: str = "--embedder") -> ImageTextModel:
    """Load ``clip:PATH_OR_HUB_ID`` (or a bare path / hub id) once per process; exit-2 errors name ``flag`` and say
    how to provide the weights."""
    directory = resolve(embedder, flag=flag)
    return _load_directory(str(directory.resolve()), _source_of(embedder, flag), flag)


def clip_block(embedder_id: str) -> tuple[str, int, int] | None:
    """``(block name, start, end)`` of the image-text block of an embedder id, or None when it has none."""
    from .embed import blocks

    for name, lo, hi in blocks(embedder_id):
        if name.startswith(_BLOCK_PREFIX):
            return name, lo, hi
    return None


def encode_text(model: ImageTextModel | str, texts: Sequence[str], *, embedder_id: str | None = None) -> np.ndarray:
    """Query text -> unit vectors float32 [n, D] in the image space of the embeddings' clip block.

    ``model`` is a loaded model or ``clip:PATH_OR_HUB_ID``. With ``embedder_id``, the model must be the one the
    embeddings were made with (same weight digest and width), else a SilversetInputError names both.
    """
    loaded = load(model) if isinstance(model, str) else model
    if embedder_id is not None:
        block = clip_block(embedder_id)
        if block is None:
            raise SilversetInputError(
                f"embedder id '{embedder_id}'", "has no clip block; embed with --embedder clip:PATH_OR_HUB_ID"
            )
        name, lo, hi = block
        if name.rsplit("@sha256:", 1)[-1] != loaded.digest[:16] or hi - lo != loaded.dimension:
            raise SilversetInputError(
                f"clip model '{loaded.source}'",
                f"is {loaded.block_name}[{loaded.dimension}], but the embeddings were made "
                f"with {name}[{hi - lo}]; give the same weights",
            )
    return loaded.encode_text(list(texts))
