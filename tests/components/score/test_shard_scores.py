"""Bulk scoring sharded across pods: n shards' scores and errors, read as one table, equal one unsharded run's."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from silverset.components.common import schemas, sharding, tables
from silverset.components.common.cpu_stats import read_cpu
from silverset.components.common.errors import SilversetInputError
from silverset.components.common.sharding import Shard
from silverset.components.score.bulk import ScoreOptions
from silverset.components.score.component import bulk_score
from silverset.components.score.shards import run_shard

pytestmark = pytest.mark.slow  # Beam + tfx-bsl import TensorFlow (~20 s once per process)


@pytest.fixture(scope="module")
def mixed_embeddings(distilled, tmp_path_factory):
    """The 300 distilled embeddings in two files, plus 4 rows of another embedder and 2 rows of the wrong width."""
    emb = tables.read_table(distilled["embeddings"])
    folder = tmp_path_factory.mktemp("mixed-embeddings")
    tables.write_table(emb.slice(0, 150), folder / "a.parquet")
    tables.write_table(emb.slice(150), folder / "b.parquet")
    foreign = emb.slice(0, 4).set_column(0, "video_id", pa.array([f"foreign-{i}" for i in range(4)]))
    tables.write_table(foreign.set_column(2, "embedder_id", pa.array(["clip@other"] * 4)), folder / "c.parquet")
    rng = np.random.default_rng(0)
    wide = pa.table(
        {
            "video_id": ["wide-1", "wide-2"],
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(rng.random(64).astype(np.float32)), 32),
            "embedder_id": [emb.column("embedder_id")[0].as_py()] * 2,
        }
    )
    tables.write_table(wide, folder / "d.parquet")
    return str(folder)


def _scores(folder) -> dict[str, tuple]:
    table = tables.read_table(folder, schemas.SCORES)
    rows = zip(
        *(
            table.column(n).to_pylist()
            for n in ("video_id", "attribute", "attribute_version", "probability", "model_digest")
        )
    )
    return {row[0]: row[1:] for row in rows}


def _errors(table) -> list[tuple]:
    return sorted((e["key"], e["error_type"], e["stage"]) for e in table.to_pylist())


def test_the_union_of_three_shards_equals_one_unsharded_run(distilled, mixed_embeddings, tmp_path):
    options = ScoreOptions(batch_size=64)
    single = run_shard(
        model_dir=distilled["model"], embeddings=mixed_embeddings, out_dir=str(tmp_path / "single"), options=options
    )
    out = tmp_path / "scores"
    shards = [
        run_shard(
            model_dir=distilled["model"],
            embeddings=mixed_embeddings,
            out_dir=str(out),
            shard=Shard(i, 3),
            options=options,
        )
        for i in range(3)
    ]

    assert (single.inputs, single.scored, single.errors) == (306, 300, 6)
    one = _scores(tmp_path / "single")
    union = _scores(out)
    assert union.keys() == one.keys() == set(distilled["ids"])
    for video_id, (attribute, version, probability, digest) in one.items():
        assert union[video_id][:2] == (attribute, version) and union[video_id][3] == digest
        assert union[video_id][2] == pytest.approx(probability, abs=1e-6)
    assert tables.read_table(out, schemas.SCORES).num_rows == 300  # no row twice, the input copies not read
    assert _errors(sharding.read_shard_errors(str(out))) == _errors(tables.read_errors(tmp_path / "single"))
    assert sum(s.inputs for s in shards) == 306 and sum(s.scored for s in shards) == 300
    for i, summary in enumerate(shards):
        folder = out / f"shard-{i:05d}-of-00003"
        assert summary.table == str(out) and (folder / "errors.parquet").exists()
        assert summary.inputs == summary.scored + summary.errors > 0
        keys = _scores(folder).keys() | {e[0] for e in _errors(tables.read_errors(folder))}
        assert all(sharding.shard_of(key, 3) == i for key in keys)
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        f"shard-{i:05d}-of-00003" for i in range(3)
    ]  # the shards' input copies are gone


def test_a_shard_that_owns_no_embedding_writes_an_empty_errors_table(distilled, tmp_path):
    emb = tables.read_table(distilled["embeddings"]).slice(0, 1)
    tables.write_table(emb, tmp_path / "one.parquet")
    other = (sharding.shard_of(emb.column("video_id")[0].as_py(), 2) + 1) % 2
    summary = run_shard(
        model_dir=distilled["model"],
        embeddings=str(tmp_path / "one.parquet"),
        out_dir=str(tmp_path / "s"),
        shard=Shard(other, 2),
    )
    assert (summary.inputs, summary.scored, summary.errors) == (0, 0, 0)
    assert tables.read_errors(tmp_path / "s" / f"shard-{other:05d}-of-00002").num_rows == 0
    assert tables.read_table(tmp_path / "s", schemas.SCORES).num_rows == 0


def test_the_component_scores_its_shard_and_records_cpu_per_shard(distilled, tmp_path):
    out = str(tmp_path / "scores")
    results = [
        bulk_score.python_func(
            model_dir=distilled["model"],
            embeddings=distilled["embeddings"],
            out_dir=out,
            beam_options='["--direct_num_workers=1"]',
            shard_index=i,
            shard_count=2,
        )
        for i in range(2)
    ]
    assert sum(r.scored for r in results) == 300 and {r.scores for r in results} == {out}
    cpu = read_cpu(out)  # the run summary's student cost sums every shard's measurement
    assert cpu["steps"] == 2 and cpu["items"] == 300
    with pytest.raises(SilversetInputError, match="beam_runner"):
        bulk_score.python_func(
            model_dir=distilled["model"],
            embeddings=distilled["embeddings"],
            out_dir=out,
            beam_runner="SparkRunnner",
            shard_index=0,
            shard_count=2,
        )
    key = json.dumps({"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\\nMIIE"})
    with pytest.raises(SilversetInputError, match="service-account key"):
        bulk_score.python_func(
            model_dir=distilled["model"],
            embeddings=distilled["embeddings"],
            out_dir=out,
            beam_options=json.dumps([f"--dataflow_service_options={key}"]),
        )
