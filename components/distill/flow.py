"""A demo golden set drawn from the synthetic corpus's truth (``golden_from_truth``).

The distill half of the flow in one call (teacher gate, distill, bulk score, student gate) spans four stages and
lives in ``silverset.pipelines.distill_flow``, so that distill imports neither evaluate's gate nor score.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from silverset.components.common import schemas, tables
from silverset.components.common.golden import GOLDEN_V1


def golden_from_truth(*, truth: str, spec_path: str, out: str, share: float = 0.4, seed: int = 0) -> dict[str, Any]:
    """A demo golden set: a seeded ``share`` of the synthetic corpus's truth rows for the spec's attribute, as human
    labels.

    Only for the synthetic corpus (whose truth is known); a real golden set comes from the studio.
    """
    import datetime as dt

    import numpy as np

    from silverset.components.common.spec import load_spec

    spec = load_spec(spec_path)
    table = tables.read_table(truth, schemas.TRUTH)
    rows = [
        (v, label)
        for v, a, label in zip(
            table.column("video_id").to_pylist(),
            table.column("attribute").to_pylist(),
            table.column("label").to_pylist(),
        )
        if a == spec.name
    ]
    rows.sort()
    pick = np.sort(np.random.default_rng(seed).choice(len(rows), size=int(round(len(rows) * share)), replace=False))
    chosen = [rows[i] for i in pick]
    n = len(chosen)
    labeled_at = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    tables.write_table(
        pa.table(
            {
                "video_id": [v for v, _ in chosen],
                "attribute": [spec.name] * n,
                "attribute_version": pa.array([spec.version] * n, pa.int32()),
                "label": pa.array([int(x) for _, x in chosen], pa.int32()),
                "labeler": ["synthetic-truth"] * n,
                "labeled_at": pa.array([labeled_at] * n, pa.timestamp("us", tz="UTC")),
            }
        ),
        out,
        GOLDEN_V1,
    )
    return {"golden": out, "items": n, "positives": int(sum(x for _, x in chosen))}
