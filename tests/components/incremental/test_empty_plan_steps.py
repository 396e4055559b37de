"""An incremental run whose plan has nothing new: every shard step sees an empty plan manifest
(common.step.nothing_to_do) and returns its usual outputs with every count zero, writing nothing."""

from __future__ import annotations

import json

import pyarrow as pa

from silverset.components.common import schemas, tables
from silverset.components.common.artifacts import ShardStats
from silverset.components.common.spec import example_specs_dir
from silverset.components.embed.component import embed_shard
from silverset.components.frames.component import extract_frames
from silverset.components.teacher.component import annotate_shard, merge_labels


def test_every_shard_step_returns_zero_counts_in_its_usual_shape_and_writes_nothing(tmp_path):
    empty = tmp_path / "plan" / "todo_manifest.parquet"
    tables.write_table(pa.Table.from_pylist([], schema=schemas.MANIFEST), empty)
    manifest, out = str(empty), tmp_path / "run"

    frames = extract_frames.python_func(
        manifest_uri=manifest, out_dir=str(out / "frames"), shard_index=1, shard_count=2
    )
    assert (frames.frames_dir, frames.videos, frames.errors, frames.frames) == (str(out / "frames"), 0, 0, 0)
    fields = set(ShardStats.model_fields)
    for stats in (
        embed_shard.python_func(
            frames_uri=str(out / "frames"),
            manifest_uri=manifest,
            out_dir=str(out / "emb"),
            shard_index=1,
            shard_count=2,
        ),
        annotate_shard.python_func(
            attribute_spec=str(example_specs_dir() / "red_dominant.yaml"),
            manifest_uri=manifest,
            frames_uri=str(out / "frames"),
            out_dir=str(out / "labels"),
            shard_index=1,
            shard_count=2,
        ),
    ):
        counts = json.loads(stats)
        assert set(counts) == fields  # the shape of a shard that did work
        assert counts["shard"] == "1/2" and counts["items"] == counts["outputs"] == counts["errors"] == 0
    assert merge_labels.python_func(manifest_uri=manifest, out_dir=str(out / "labels")) == 0
    assert not out.exists()
