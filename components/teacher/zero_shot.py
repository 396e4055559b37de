"""The embedded zero-shot teacher: MiniLM similarity of title/description to the attribute, no pixels.

It is the default so the demo runs with no key and no GPU. It is weak (text only, uncalibrated) and its
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
                results.append(ItemResult(key=item.key, error_type="no_text",
                                          message="zero-shot teacher needs a title or description"))
                continue
            results.append(ItemResult(key=item.key, row=label_row(self.spec, item.key, float(p), self.model_id,
                                                                   f"text similarity margin -> p={p:.3f}")))
        return results


def label_row(spec: AttributeSpec, video_id: str, probability: float, teacher_id: str, rationale: str | None,
              label: int | None = None) -> dict:
    """One labels-table row; ``label`` defaults to probability >= the spec's decision threshold."""
    if label is None:
        label = int(probability >= spec.decision_threshold)
    return {"video_id": video_id, "attribute": spec.name, "attribute_version": spec.version, "label": int(label),
            "probability": float(probability), "rationale": rationale, "teacher_id": teacher_id,
            "prompt_hash": spec.prompt_hash}
