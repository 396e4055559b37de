"""What keeps bulk scoring cheap on Beam: compact elements, Arrow-coded row groups, one read, vectorized checks."""

from __future__ import annotations

import pickle

import numpy as np
import pyarrow as pa
import pytest

from silverset.components.common import schemas, tables
from silverset.components.score.bulk import blocks_of, read_patterns, split_batch

EMBEDDER = "clip@test"


def embeddings_batch(n: int, d: int = 8, *, embedder: str = EMBEDDER) -> pa.RecordBatch:
    vectors = np.arange(n * d, dtype=np.float32).reshape(n, d)
    table = pa.table(
        {
            "video_id": [f"v{i}" for i in range(n)],
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), d),
            "embedder_id": [embedder] * n,
        },
        schema=schemas.embeddings_schema(d),
    )
    return table.combine_chunks().to_batches()[0]


def test_blocks_cover_every_row_once_in_order_and_encode_only_their_own_rows():
    batch = embeddings_batch(10_000)
    blocks = list(blocks_of(batch, rows=4096, dimension=8))
    assert [len(b) for b in blocks] == [4096, 4096, 1808]
    ids = [v for b in blocks for v in b.video_ids.to_pylist()]
    assert ids == batch.column(0).to_pylist()
    np.testing.assert_array_equal(
        np.concatenate([b.vectors for b in blocks]), np.arange(80_000, dtype=np.float32).reshape(-1, 8)
    )
    # An encode of a block (a stage boundary) must not drag the whole row group along.
    last_ids, last_vectors = blocks[-1].video_ids, blocks[-1].vectors
    assert len(pickle.dumps(last_ids)) < 0.3 * len(pickle.dumps(batch.column(0)))
    assert len(pickle.dumps(last_vectors)) < 0.3 * batch.nbytes


def test_misfit_rows_are_errors_and_an_embedder_mismatch_wins_over_nan():
    batch = embeddings_batch(6)
    vectors = np.arange(48, dtype=np.float32).reshape(6, 8)
    vectors[1, 3] = np.nan
    vectors[4, 0] = np.inf
    vectors[5, 0] = np.nan
    batch = pa.record_batch(
        [
            batch.column(0),
            pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), 8),
            pa.array([EMBEDDER] * 5 + ["other@1"]),
        ],
        schema=batch.schema,
    )
    good, errors = split_batch(batch, embedder_id=EMBEDDER, dimension=8)
    assert good.column(0).to_pylist() == ["v0", "v2", "v3"]
    assert {(e.key, e.error_type) for e in errors} == {
        ("v1", "non_finite_vector"),
        ("v4", "non_finite_vector"),
        ("v5", "embedder_mismatch"),
    }
    assert len(good) + len(errors) == 6


def test_one_read_pattern_only_when_it_matches_exactly_the_shards(tmp_path):
    for name in ("embeddings-00000-of-00002.parquet", "embeddings-00001-of-00002.parquet"):
        tables.write_table(pa.Table.from_batches([embeddings_batch(3)]), tmp_path / "a" / name)
    tables.write_errors(tmp_path / "a", [])
    files = tables.parquet_files(tmp_path / "a")
    assert read_patterns(files) == [f"{tmp_path / 'a'}/embeddings-0000*.parquet"]
    # No shared prefix: '*.parquet' would also read errors.parquet, so each file is read on its own.
    for name in ("x.parquet", "y.parquet"):
        tables.write_table(pa.Table.from_batches([embeddings_batch(3)]), tmp_path / "b" / name)
    tables.write_errors(tmp_path / "b", [])
    files = tables.parquet_files(tmp_path / "b")
    assert read_patterns(files) == files


@pytest.mark.slow  # imports Beam
def test_arrow_coders_round_trip_a_slice_and_size_it_without_encoding():
    from silverset.components.score.handlers import ArrowRecordBatchCoder, ArrowTableCoder

    batch = embeddings_batch(50_000)
    piece = batch.slice(1000, 1024)
    coder = ArrowRecordBatchCoder()
    encoded = coder.encode(piece)
    assert coder.decode(encoded).equals(piece)
    assert coder.estimate_size(piece) == piece.nbytes
    assert len(encoded) < 2 * piece.nbytes < len(pickle.dumps(piece)) / 10  # pickle drags the parent buffers
    table = pa.Table.from_batches([batch])
    assert ArrowTableCoder().decode(ArrowTableCoder().encode(table)).equals(table)


@pytest.mark.slow  # imports Beam
def test_block_coders_round_trip_and_size_blocks_without_encoding():
    from silverset.components.score.bulk import ScoredBlock
    from silverset.components.score.handlers import ScoredBlockCoder, ScoringBlockCoder

    block = list(blocks_of(embeddings_batch(5000), rows=1000, dimension=8))[2]
    coder = ScoringBlockCoder()
    back = coder.decode(coder.encode(block))
    assert back.video_ids.to_pylist() == [f"v{i}" for i in range(2000, 3000)]
    np.testing.assert_array_equal(back.vectors, np.arange(16_000, 24_000, dtype=np.float32).reshape(1000, 8))
    assert coder.estimate_size(block) == block.video_ids.nbytes + 1000 * 8 * 4
    scored = ScoredBlock(block.video_ids, np.linspace(0, 1, 1000, dtype=np.float32).reshape(-1, 1))  # ONNX gives [n, 1]
    again = ScoredBlockCoder().decode(ScoredBlockCoder().encode(scored))
    assert again.video_ids.equals(block.video_ids)
    np.testing.assert_array_equal(again.probabilities, np.linspace(0, 1, 1000, dtype=np.float32))
    with pytest.raises(ValueError, match="999 video ids for 1000 probabilities"):
        ScoredBlock(block.video_ids.slice(1), np.zeros(1000))


@pytest.mark.slow  # imports Beam and tfx-bsl (TensorFlow)
def test_every_pcollection_on_the_scoring_path_has_an_arrow_coder_and_row_telemetry_is_off(distilled, tmp_path):
    import apache_beam as beam
    from apache_beam import coders
    from apache_beam.coders.coders import FastPrimitivesCoder, PickleCoder

    from silverset.components.common.artifacts import read_model_metadata
    from silverset.components.score.bulk import ScoreOptions, build_scoring

    pipeline = beam.Pipeline()
    files = tables.parquet_files(distilled["embeddings"])
    build_scoring(
        pipeline,
        files=files,
        model_dir=distilled["model"],
        metadata=read_model_metadata(distilled["model"]),
        options=ScoreOptions(),
        scores_prefix=str(tmp_path / "s"),
        errors_prefix=str(tmp_path / "e"),
    )
    pickled, telemetry = [], []

    class Outputs(beam.pipeline.PipelineVisitor):
        def visit_transform(self, node):
            if node.full_label.startswith(("WriteScores/", "WriteErrorShards/")):
                return  # the writes' own bookkeeping PCollections carry file names, not rows
            for tag, o in node.outputs.items():
                coder = coders.registry.get_coder(o.element_type)
                if isinstance(coder, (FastPrimitivesCoder, PickleCoder)) and o.element_type is not bytes:
                    if "EmitSource" not in node.full_label:  # the Parquet source object itself, once per file pattern
                        pickled.append((node.full_label, tag, o.element_type))
            fn = getattr(node.transform, "fn", None)
            if type(fn).__name__ == "_ProfileRecordBatchDoFn":
                telemetry.append(fn._dist_update_prob)

    pipeline.visit(Outputs())
    # Beam sizes ~35 sampled elements of every PCollection per run by encoding them: a pickled block is ~12 MB.
    assert pickled == []
    assert telemetry == [0.0]


@pytest.mark.slow  # imports Beam and tfx-bsl (TensorFlow)
def test_the_parquet_read_inside_tfx_bsl_gets_arrow_types(tmp_path):
    import apache_beam as beam
    from tfx_bsl.tfxio.parquet_tfxio import ParquetTFXIO

    from silverset.components.score.handlers import register_arrow_coders, type_arrow_read_outputs

    tables.write_table(pa.Table.from_batches([embeddings_batch(3)]), tmp_path / "e.parquet")
    register_arrow_coders()
    pipeline = beam.Pipeline()
    _ = pipeline | "ReadEmbeddings" >> ParquetTFXIO([str(tmp_path / "e.parquet")]).BeamSource(batch_size=None)
    # Beam's Parquet read output, its Flatten and tfx-bsl's ToRecordBatch: if tfx-bsl renames them this fails
    # and bulk scoring silently falls back to pickling every row group.
    assert type_arrow_read_outputs(pipeline, "ReadEmbeddings") == 3
    untyped = []

    class Outputs(beam.pipeline.PipelineVisitor):
        def visit_transform(self, node):
            untyped.extend(
                node.full_label for o in node.outputs.values() if o.element_type in (None, beam.typehints.Any)
            )

    pipeline.visit(Outputs())
    assert untyped == []  # so no row group is pickled for Beam's size samples
