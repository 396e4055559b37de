"""A small frames CNN teacher for the four synthetic attributes, trained on its OWN synthetic corpus.

It stands in for a user's trained checkpoint in the demo and the distillation benchmark: a learned model that
looks at the same frames the local teacher gets (float32 [B, 8, 3, 64, 64]), trained on a separate corpus
(another seed, other frame sizes, frames rendered and JPEG-compressed without H.264, and no hard cases; see
``components/corpus/synth.py``) with that corpus's truth. It never reads the truth of a corpus it labels, so
on a corpus with hard cases (dark crimson, red logo blocks, short trips, look-alike cuts, captions without a
band) it makes the mistakes a real teacher makes on data unlike its training set.

The trained checkpoints are cached under a folder named by the hash of the training settings: one TorchScript
file per attribute (``<attribute>.pt``, the local teacher's format; the text input is ignored) and
``card.json`` (the training settings and the validation F1 on held-out videos of its own corpus).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from silverset.components.corpus.synth import ATTRIBUTES

_LOGGER = logging.getLogger(__name__)

TEACHER_VERSION = "frames-cnn-v1"
FRAMES_PER_VIDEO = 8
IMAGE_SIZE = 64
CARD_FILE = "card.json"


class TrainingCorpus(BaseModel):
    """The teacher's own synthetic corpus and training recipe (the hash of this names the cache folder)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    videos: int = Field(480, ge=20)
    seed: int = 7_919  # not the demo's (0) nor the benchmark's corpus seed
    # Frame sizes, taken in turn video by video: a range around, but not including, the demo's 320x240 (a
    # CNN trained at one size reads text drawn at another size poorly).
    sizes: tuple[tuple[int, int], ...] = ((160, 128), (256, 200), (352, 272))
    duration_s: float = 3.0
    jpeg_quality: int = Field(75, ge=10, le=100)  # frames pass through JPEG once, as the frames stage's do
    validation_share: float = Field(0.2, gt=0.0, lt=0.5)
    epochs: int = Field(10, ge=1)
    batch_size: int = 16
    learning_rate: float = 3e-3
    train_seed: int = 0

    def digest(self) -> str:
        payload = json.dumps({"version": TEACHER_VERSION, **self.model_dump()}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def sample_frames(frames: np.ndarray, *, width: int, height: int, jpeg_quality: int) -> np.ndarray:
    """Centre-crop, resize and JPEG-compress rendered frames uint8 [T, h, w, 3] -> float32 [T, 3, 64, 64] in [0, 1]."""
    import io

    from PIL import Image

    side = min(width, height)
    top, left = (height - side) // 2, (width - side) // 2
    out = []
    for frame in frames:
        small = Image.fromarray(frame[top : top + side, left : left + side]).resize((IMAGE_SIZE, IMAGE_SIZE), Image.BOX)
        buffer = io.BytesIO()
        small.save(buffer, format="JPEG", quality=jpeg_quality)
        out.append(np.asarray(Image.open(buffer).convert("RGB")))
    return np.stack(out).transpose(0, 3, 1, 2).astype(np.float32) / 255.0


def render_training_set(corpus: TrainingCorpus, *, hard_case_share: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(frames float32 [n, 8, 3, 64, 64], truth int64 [n, 4]) of the teacher's own corpus, rendered in memory.

    Frames are taken at the frames stage's times (midpoints of 8 equal slices of the clip). The teacher trains
    without hard cases; tests render a corpus with them (``hard_case_share``) to measure it.
    """
    from silverset.components.corpus.synth import SynthOptions, frame_count, plan_video, render_frames

    by_size = [
        SynthOptions(
            videos=corpus.videos,
            seed=corpus.seed,
            width=w,
            height=h,
            duration_s=corpus.duration_s,
            hard_case_share=hard_case_share,
        )
        for w, h in corpus.sizes
    ]
    n = frame_count(by_size[0])
    picks = [
        min(n - 1, int((i + 0.5) * corpus.duration_s / FRAMES_PER_VIDEO * by_size[0].fps))
        for i in range(FRAMES_PER_VIDEO)
    ]
    frames, truth = [], []
    for number in range(corpus.videos):
        options = by_size[number % len(by_size)]
        plan = plan_video(number, options)
        rendered = np.stack(list(render_frames(plan, options, frame_numbers=picks)))
        frames.append(
            sample_frames(rendered, width=options.width, height=options.height, jpeg_quality=corpus.jpeg_quality)
        )
        truth.append([plan.truth[a] for a in ATTRIBUTES])
    return np.stack(frames), np.asarray(truth, dtype=np.int64)


def _network():
    import torch
    from torch import nn

    class FramesCNN(nn.Module):
        """frames float32 [B, 8, 3, 64, 64] -> logits [B, 4]: appearance of each frame + change between frames."""

        def __init__(self) -> None:
            super().__init__()
            self.appearance = nn.Sequential(
                nn.Conv2d(3, 8, 4, stride=2, padding=1),
                nn.ReLU(),  # 64 -> 32: letters
                nn.Conv2d(8, 16, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
            )
            self.change = nn.Sequential(
                nn.Conv2d(6, 8, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Conv2d(8, 16, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
            )
            self.head = nn.Sequential(nn.Linear(32 * 2 + 32 * 3, 64), nn.ReLU(), nn.Linear(64, len(ATTRIBUTES)))

        def _pooled(self, y: torch.Tensor) -> torch.Tensor:
            return torch.cat([y.mean(dim=(2, 3)), y.amax(dim=(2, 3))], dim=1)

        def forward(self, frames: torch.Tensor) -> torch.Tensor:
            b, t = frames.shape[0], frames.shape[1]
            look = self._pooled(self.appearance(frames.flatten(0, 1))).reshape(b, t, -1)
            x = torch.nn.functional.avg_pool2d(frames.flatten(0, 1), 2)  # change between frames: 32 x 32 is enough
            s = x.shape[-1]
            x = x.reshape(b, t, 3, s, s)
            pairs = torch.cat([x[:, 1:], x[:, 1:] - x[:, :-1]], dim=2).reshape(b * (t - 1), 6, s, s)
            moved = self._pooled(self.change(pairs)).reshape(b, t - 1, -1)
            features = torch.cat([look.mean(1), look.amax(1), moved.mean(1), moved.amax(1), moved.std(1)], dim=1)
            return self.head(features)

    class AttributeTeacher(nn.Module):
        """The local-teacher checkpoint for one attribute: (frames [B, 8, 3, 64, 64], text [B, 384]) -> logit [B]."""

        def __init__(self, net, index: int) -> None:
            super().__init__()
            self.net, self.index = net, index

        def forward(self, frames: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
            return self.net(frames)[:, self.index]

    return FramesCNN, AttributeTeacher


def _f1(truth: np.ndarray, predicted: np.ndarray) -> float:
    tp = int(((truth == 1) & (predicted == 1)).sum())
    wrong = int((truth != predicted).sum())
    return 2 * tp / (2 * tp + wrong) if tp + wrong else 0.0


def train(corpus: TrainingCorpus, out_dir: Path) -> dict:
    """Render the teacher's corpus, train the CNN (multi-label BCE), write one TorchScript per attribute + card."""
    import torch

    started = time.perf_counter()
    frames, truth = render_training_set(corpus)
    rendered_s = time.perf_counter() - started
    FramesCNN, AttributeTeacher = _network()
    order = np.random.default_rng(corpus.train_seed).permutation(len(truth))
    n_val = int(round(len(truth) * corpus.validation_share))
    val, fit = order[:n_val], order[n_val:]
    x, y = torch.from_numpy(frames), torch.from_numpy(truth).float()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(corpus.train_seed)
        net = FramesCNN()
        optimizer = torch.optim.Adam(net.parameters(), lr=corpus.learning_rate)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, corpus.epochs)
        generator = torch.Generator().manual_seed(corpus.train_seed)
        fit_t = torch.from_numpy(fit)
        for _ in range(corpus.epochs):
            net.train()
            for batch in fit_t[torch.randperm(len(fit_t), generator=generator)].split(corpus.batch_size):
                optimizer.zero_grad()
                loss = torch.nn.functional.binary_cross_entropy_with_logits(net(x[batch]), y[batch])
                loss.backward()
                optimizer.step()
            schedule.step()
        net.eval()
        with torch.no_grad():
            val_logits = net(x[torch.from_numpy(val)]).numpy()
    validation_f1 = {
        a: round(_f1(truth[val, k], (val_logits[:, k] >= 0).astype(np.int64)), 4) for k, a in enumerate(ATTRIBUTES)
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    for k, attribute in enumerate(ATTRIBUTES):
        torch.jit.save(torch.jit.script(AttributeTeacher(net, k)), str(out_dir / f"{attribute}.pt"))
    card = {
        "teacher": TEACHER_VERSION,
        "training_corpus": corpus.model_dump(),
        "digest": corpus.digest(),
        "trained_on": len(fit),
        "validation_videos": len(val),
        "validation_f1_own_corpus": validation_f1,
        "render_s": round(rendered_s, 1),
        "train_s": round(time.perf_counter() - started - rendered_s, 1),
    }
    (out_dir / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")
    _LOGGER.info(
        "trained %s in %.0f s; validation F1 on its own corpus %s",
        TEACHER_VERSION,
        time.perf_counter() - started,
        validation_f1,
    )
    return card


def teacher_checkpoint(cache_dir: str | Path, attribute: str, corpus: TrainingCorpus = TrainingCorpus()) -> Path:
    """The TorchScript checkpoint for ``attribute``, trained once into ``cache_dir/<settings hash>/`` and reused."""
    if attribute not in ATTRIBUTES:
        from silverset.components.common.errors import SilversetInputError

        known = ", ".join(ATTRIBUTES)
        raise SilversetInputError("attribute", f"the frames CNN teacher knows {known}, not {attribute!r}")
    folder = Path(cache_dir) / f"{TEACHER_VERSION}-{corpus.digest()}"
    if not (folder / CARD_FILE).exists():
        staging = folder.with_name(folder.name + ".partial")
        _LOGGER.info("training %s into %s (none cached for these settings)", TEACHER_VERSION, folder)
        train(corpus, staging)
        if folder.exists():  # another process finished first: same settings, same model
            import shutil

            shutil.rmtree(staging)
        else:
            staging.rename(folder)
    else:
        _LOGGER.debug("reusing %s from %s", TEACHER_VERSION, folder)
    return folder / f"{attribute}.pt"


def teacher_card(checkpoint: str | Path) -> dict:
    """The card written beside a checkpoint of this teacher."""
    return json.loads((Path(checkpoint).parent / CARD_FILE).read_text())
