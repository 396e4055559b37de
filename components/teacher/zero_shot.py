"""Zero-shot teachers: MiniLM similarity of title/description to the attribute (no pixels), or a user's image-text
model (CLIP / SigLIP) comparing frames to the attribute's definition (``clip-zero-shot``).

The text one is the default so the demo runs with no key and no GPU. It is weak (text only, uncalibrated) and its
teacher id says so; a golden-set gate should be expected to reject it for visual attributes.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from silverset.components.common.spec import AttributeSpec
from silverset.components.runtime.handler import ItemResult, ModelHandler, WorkItem

NEUTRAL_PROMPT = "a video"
SHARPNESS = 12.0  # logit per unit of cosine-similarity margin; fixed, not fitted


class ZeroShotHandler(ModelHandler):
    """Scores ``title. description`` against the attribute's title and definition with MiniLM cosine similarity."""

    stage = "annotate"

    def __init__(self, spec: AttributeSpec, *, batch_size: int = 64):
        self.spec = spec
        self.batch_size = batch_size
        self._prompts: np.ndarray | None = None

    def batch_elements_kwargs(self) -> dict[str, int]:
        return {"min_batch_size": 1, "max_batch_size": self.batch_size}

    @property
    def model_id(self) -> str:
        from silverset.components.embed.text import text_embedder_id

        return f"zero-shot-text-only-weak:{text_embedder_id()}"

    def load_model(self) -> np.ndarray:
        from silverset.components.embed.text import embed_texts

        first_sentence = self.spec.definition.split(".")[0]
        # rows: attribute title, first sentence of the definition, neutral anchor; float32 [3, 384]
        self._prompts = embed_texts([self.spec.title, first_sentence, NEUTRAL_PROMPT])
        return self._prompts

    def probabilities(self, texts: list[str], prompts: np.ndarray) -> np.ndarray:
        """P(positive) float [n]: sigmoid(SHARPNESS * (mean cos to attribute prompts - cos to neutral anchor))."""
        from silverset.components.embed.text import embed_texts

        vecs = embed_texts(texts)  # [n, 384], unit length (zero for empty text)
        sims = vecs @ prompts.T  # [n, 3]
        margin = sims[:, :2].mean(1) - sims[:, 2]
        return 1.0 / (1.0 + np.exp(-SHARPNESS * margin))

    def run_inference(self, batch: Sequence[WorkItem], model: np.ndarray) -> list[ItemResult]:
        texts = [item.payload.text for item in batch]
        probs = self.probabilities(texts, model)
        results = []
        for item, p in zip(batch, probs):
            if not item.payload.text:
                results.append(
                    ItemResult(
                        key=item.key, error_type="no_text", message="zero-shot teacher needs a title or description"
                    )
                )
                continue
            results.append(
                ItemResult(
                    key=item.key,
                    row=label_row(self.spec, item.key, float(p), self.model_id, f"text similarity margin -> p={p:.3f}"),
                )
            )
        return results


def label_row(
    spec: AttributeSpec,
    video_id: str,
    probability: float,
    teacher_id: str,
    rationale: str | None,
    label: int | None = None,
) -> dict:
    """One labels-table row; ``label`` defaults to probability >= the spec's decision threshold."""
    if label is None:
        label = int(probability >= spec.decision_threshold)
    return {
        "video_id": video_id,
        "attribute": spec.name,
        "attribute_version": spec.version,
        "label": int(label),
        "probability": float(probability),
        "rationale": rationale,
        "teacher_id": teacher_id,
        "prompt_hash": spec.prompt_hash,
    }


# --- The visual zero-shot teacher: an image-text model (CLIP / SigLIP) looks at the frames. ---

NEUTRAL_FRAME_PROMPT = "a video frame"


def class_prompts(spec: AttributeSpec) -> tuple[list[str], list[str]]:
    """(positive prompts, negative prompts) from the spec's own words.

    Positive: the title and every definition sentence that says POSITIVE; negative: every sentence that says
    NEGATIVE (a sentence saying both is left out), else the neutral ``a video frame``. The label words are
    removed ("Label a video POSITIVE when" reads as noise to a text tower).
    """
    import re

    positive, negative = [spec.title], []
    for sentence in re.split(r"(?<=[.!?])\s+", " ".join(spec.definition.split())):
        says_pos, says_neg = re.search(r"\bpositive\b", sentence, re.I), re.search(r"\bnegative\b", sentence, re.I)
        if bool(says_pos) == bool(says_neg):
            continue
        text = re.sub(r"^label (a|the) video (positive|negative) when\s*", "", sentence, flags=re.I)
        text = re.sub(r"\s*,?\s*(are|is)\s+(positive|negative)\.?$", "", text, flags=re.I).strip(" .")
        (positive if says_pos else negative).append(text or sentence)
    return positive, negative or [NEUTRAL_FRAME_PROMPT]


class ImageTextZeroShotHandler(ModelHandler):
    """P(positive) from frames: each frame against the positive and negative prompts of the spec (``clip-zero-shot``).

    Prompts of a class are embedded with the model's text tower and averaged into one class vector (prompt
    ensembling); each frame's P(positive) is the two-way softmax of its cosine similarities to the class
    vectors divided by ``temperature`` (default: the model's learned scale, 1/100 for OpenAI CLIP); the video's
    probability is the mean over ``spec.teacher.frames_per_request`` evenly spaced frames. Untuned and
    uncalibrated: put it through the golden-set gate like any teacher.
    """

    stage = "annotate"

    def __init__(self, spec: AttributeSpec, *, model: str, temperature: float | None = None, batch_size: int = 16):
        from silverset.components.common.errors import SilversetInputError
        from silverset.components.embed import clip

        if temperature is not None and not temperature > 0:
            raise SilversetInputError("--temperature", f"must be > 0, got {temperature}")
        self.spec, self.batch_size = spec, batch_size
        self.image_text = clip.load(model if clip.is_clip(model) else clip.PREFIX + model, flag="--checkpoint")
        self.temperature = temperature if temperature is not None else 1.0 / self.image_text.logit_scale
        self.positive, self.negative = class_prompts(spec)
        from silverset.components.common.digest import sha256_json

        prompts = sha256_json({"positive": self.positive, "negative": self.negative})[:12]
        self._id = f"clip-zero-shot:{self.image_text.block_name}:t{self.temperature:.6g}:prompts-{prompts}"

    def batch_elements_kwargs(self) -> dict[str, int]:
        return {"min_batch_size": 1, "max_batch_size": self.batch_size}

    @property
    def model_id(self) -> str:
        """Changes with the weights, the prompts or the temperature: a labels folder never mixes two of them."""
        return self._id

    def load_model(self) -> np.ndarray:
        """Class vectors float32 [2, D]: row 0 negative, row 1 positive (unit length)."""
        from silverset.components.embed.clip import pool_frames

        return np.stack(
            [
                pool_frames(self.image_text.encode_text(self.negative)),
                pool_frames(self.image_text.encode_text(self.positive)),
            ]
        )

    def frame_probabilities(self, frame_vectors: np.ndarray, classes: np.ndarray) -> np.ndarray:
        """Unit frame vectors float32 [T, D] -> P(positive) per frame float [T] (softmax over the two classes)."""
        logits = (frame_vectors @ classes.T) / self.temperature  # [T, 2]
        return 1.0 / (1.0 + np.exp(-(logits[:, 1] - logits[:, 0])))

    def run_inference(self, batch: Sequence[WorkItem], model: np.ndarray) -> list[ItemResult]:
        per_video, failed = self.image_text.encode_videos(
            {item.key: item.payload.frames for item in batch}, max_frames=self.spec.teacher.frames_per_request
        )
        results = [ItemResult(key=key, error_type="bad_frames", message=message) for key, message in failed.items()]
        for key, frame_vectors in per_video.items():
            p = float(self.frame_probabilities(frame_vectors, model).mean())
            results.append(
                ItemResult(
                    key=key,
                    row=label_row(
                        self.spec, key, p, self.model_id, f"mean P(positive) over {len(frame_vectors)} frames = {p:.3f}"
                    ),
                )
            )
        return results
