"""Pinned pyarrow schemas for every table stages exchange; defined here once and nowhere else."""

from __future__ import annotations

import pyarrow as pa

# manifest: what a user hands us. Extra metadata columns pass through untouched.
MANIFEST_REQUIRED = ("video_id", "uri")
MANIFEST = pa.schema(
    [
        pa.field("video_id", pa.string(), nullable=False),
        pa.field("uri", pa.string(), nullable=False),
        pa.field("title", pa.string()),
        pa.field("description", pa.string()),
    ]
)

# frames: key (video_id, frame_index).
FRAMES = pa.schema(
    [
        pa.field("video_id", pa.string(), nullable=False),
        pa.field("frame_index", pa.int32(), nullable=False),
        pa.field("timestamp_s", pa.float64(), nullable=False),
        pa.field("width", pa.int32(), nullable=False),
        pa.field("height", pa.int32(), nullable=False),
        pa.field("jpeg", pa.binary(), nullable=False),
    ]
)


def embeddings_schema(dimension: int) -> pa.Schema:
    """embeddings: key video_id; ``vector`` is float32 [dimension]."""
    if dimension < 1:
        raise ValueError(f"embedding dimension must be >= 1, got {dimension}")
    return pa.schema(
        [
            pa.field("video_id", pa.string(), nullable=False),
            pa.field("vector", pa.list_(pa.float32(), dimension), nullable=False),
            pa.field("embedder_id", pa.string(), nullable=False),
        ]
    )


# labels: key (video_id, attribute, attribute_version). label is the class index (binary: 0/1);
# probability is P(positive) for binary attributes.
LABELS = pa.schema(
    [
        pa.field("video_id", pa.string(), nullable=False),
        pa.field("attribute", pa.string(), nullable=False),
        pa.field("attribute_version", pa.int32(), nullable=False),
        pa.field("label", pa.int32(), nullable=False),
        pa.field("probability", pa.float32(), nullable=False),
        pa.field("rationale", pa.string()),
        pa.field("teacher_id", pa.string(), nullable=False),
        pa.field("prompt_hash", pa.string(), nullable=False),
    ]
)

# golden set v2: key (video_id, attribute, attribute_version, labeler), one row per rater's vote. ``label`` is the
# video's resolved label (adjudication wins, else strict majority) repeated on each of its rows; ``rater_label`` is
# that rater's own vote; ``how`` says how ``label`` was reached (adjudicated | unanimous | majority | single);
# ``classes`` is the spec's class names joined by ",". Read it through components/common/golden.py, which also reads
# the v1 files (no rater_label/how/classes; ``labeler`` lists the agreeing raters as "alice,bob").
GOLDEN = pa.schema(
    [
        pa.field("video_id", pa.string(), nullable=False),
        pa.field("attribute", pa.string(), nullable=False),
        pa.field("attribute_version", pa.int32(), nullable=False),
        pa.field("label", pa.int32(), nullable=False),
        pa.field("labeler", pa.string(), nullable=False),
        pa.field("labeled_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("rater_label", pa.int32()),
        pa.field("how", pa.string()),
        pa.field("classes", pa.string()),
    ]
)

# scores: key (video_id, attribute); the student's output in bulk.
SCORES = pa.schema(
    [
        pa.field("video_id", pa.string(), nullable=False),
        pa.field("attribute", pa.string(), nullable=False),
        pa.field("attribute_version", pa.int32(), nullable=False),
        pa.field("probability", pa.float32(), nullable=False),
        pa.field("model_digest", pa.string(), nullable=False),
    ]
)

# truth: the synthetic corpus's known answers (never seen by teacher or student).
TRUTH = pa.schema(
    [
        pa.field("video_id", pa.string(), nullable=False),
        pa.field("attribute", pa.string(), nullable=False),
        pa.field("label", pa.int32(), nullable=False),
    ]
)

# errors: what a stage dropped, and why. inputs == outputs + errors for every stage.
ERRORS = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),
        pa.field("uri", pa.string()),
        pa.field("stage", pa.string(), nullable=False),
        pa.field("error_type", pa.string(), nullable=False),
        pa.field("message", pa.string(), nullable=False),
    ]
)
