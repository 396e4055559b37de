"""The student's decision threshold: on a perfectly separated held-out set it sits mid-gap (max margin), not on
the lowest held-out positive, so an unseen positive scored a little lower is still accepted."""

from __future__ import annotations

import numpy as np

from silverset.components.distill import train
from silverset.components.distill.student import StudentOptions


def test_threshold_sits_in_the_middle_of_a_clean_held_out_gap():
    rng = np.random.default_rng(0)
    labels = (rng.random(200) < 0.4).astype(np.float32)
    vectors = (rng.normal(size=(200, 8)) * 0.3 + labels[:, None] * 3.0).astype(np.float32)  # far apart classes
    teacher = np.where(labels == 1, 0.98, 0.02).astype(np.float32)
    result = train.train_student(vectors, teacher, options=StudentOptions(max_epochs=60, hidden_units=16))
    _, held_idx = train.split_held_out(200, fraction=0.2, seed=0)
    import torch

    with torch.no_grad():
        held = result["model"](torch.from_numpy(vectors[held_idx])).numpy()
    held_labels = labels[held_idx]
    lowest_positive, highest_negative = held[held_labels == 1].min(), held[held_labels == 0].max()
    assert highest_negative < lowest_positive  # the set is separated
    cut = result["threshold"]["threshold"]
    assert (
        cut == np.float32((lowest_positive + highest_negative) / 2)
        or abs(cut - (lowest_positive + highest_negative) / 2) < 1e-6
    )
    assert result["threshold"]["f1"] == 1.0
