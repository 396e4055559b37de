"""Bulk scoring through Beam RunInference: TorchScript vs ONNX agree, misfit rows become errors, nothing is lost."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from silverset.components.common import schemas, tables
from silverset.components.common.artifacts import read_model_metadata
from silverset.components.score.bulk import ScoreOptions, run

pytestmark = pytest.mark.slow  # Beam + tfx-bsl import TensorFlow (~20 s once per process)


def scores_by_id(out) -> dict[str, float]:
    table = tables.read_table(out, schemas.SCORES)
    return dict(zip(table.column("video_id").to_pylist(), table.column("probability").to_pylist()))


def test_torchscript_and_onnx_scores_agree_within_1e_5(distilled, tmp_path):
    onnx = run(
        model_dir=distilled["model"],
        embeddings=distilled["embeddings"],
        out_dir=str(tmp_path / "onnx"),
        options=ScoreOptions(batch_size=64),
    )
    ts = run(
        model_dir=distilled["model"],
        embeddings=distilled["embeddings"],
        out_dir=str(tmp_path / "ts"),
        options=ScoreOptions(backend="torchscript", batch_size=100),
    )
    assert onnx.inputs == onnx.scored == ts.scored == 300 and onnx.errors == 0
    a, b = scores_by_id(tmp_path / "onnx"), scores_by_id(tmp_path / "ts")
    assert a.keys() == b.keys() == set(distilled["ids"])
    np.testing.assert_allclose([a[k] for k in a], [b[k] for k in a], atol=1e-5)
    meta = read_model_metadata(distilled["model"])
    table = tables.read_table(tmp_path / "onnx", schemas.SCORES)
    assert set(table.column("model_digest").to_pylist()) == {meta.model_digest}
    # the scores are the model's own probabilities, in the right rows
    import onnxruntime as ort

    direct = ort.InferenceSession(f"{distilled['model']}/model.onnx")
    expected = direct.run(None, {"embeddings": distilled["vectors"]})[0]
    np.testing.assert_allclose([a[v] for v in distilled["ids"]], expected, atol=1e-6)


def test_rows_that_do_not_fit_the_model_go_to_errors(distilled, tmp_path):
    emb = tables.read_table(distilled["embeddings"])
    folder = tmp_path / "mixed"
    tables.write_table(emb.slice(0, 50), folder / "a.parquet")
    foreign = emb.slice(50, 5).set_column(2, "embedder_id", pa.array(["clip@other"] * 5))
    tables.write_table(foreign, folder / "b.parquet")
    rng = np.random.default_rng(0)
    wide = pa.table(
        {
            "video_id": ["w1", "w2", "w3"],
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(rng.random(3 * 32).astype(np.float32)), 32),
            "embedder_id": [distilled_embedder(emb)] * 3,
        }
    )
    tables.write_table(wide, folder / "c.parquet")
    nan_vec = np.full(16, np.nan, dtype=np.float32)
    nan_row = pa.table(
        {
            "video_id": ["n1"],
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(nan_vec), 16),
            "embedder_id": [distilled_embedder(emb)],
        }
    )
    tables.write_table(nan_row, folder / "d.parquet")
    s = run(model_dir=distilled["model"], embeddings=str(folder), out_dir=str(tmp_path / "out"))
    assert s.inputs == 59 and s.scored == 50 and s.errors == 9
    assert s.inputs == s.scored + s.errors
    errors = tables.read_errors(tmp_path / "out").to_pylist()
    by_type = {}
    for e in errors:
        by_type.setdefault(e["error_type"], set()).add(e["key"])
    assert by_type["dimension_mismatch"] == {"w1", "w2", "w3"}
    assert by_type["non_finite_vector"] == {"n1"}
    assert len(by_type["embedder_mismatch"]) == 5
    assert "model expects 16" in next(e["message"] for e in errors if e["key"] == "w1")


def distilled_embedder(emb: pa.Table) -> str:
    return emb.column("embedder_id")[0].as_py()
