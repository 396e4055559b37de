"""`evaluate.run`: golden-set metrics and the teacher or student gate, written as gate.json + report.html
(+ disagreements.json for the teacher gate: the golden items where the teacher and the resolved label differ).

The gate fails closed: a missing or too-small golden set, an attribute-version mismatch, golden items
without a prediction, NaN probabilities, or a missing latency each fail it with a reason; nothing
passes by default. gate.json is the typed "blessing" the pipeline's ``dsl.If`` and the approval step read.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from silverset.components.common import tables
from silverset.components.common.artifacts import GateResult, read_model_metadata, write_gate
from silverset.components.common.errors import SilversetInputError
from silverset.components.common.golden import GoldenSet, read_golden_set
from silverset.components.common.spec import AttributeSpec, load_spec

from . import metrics

REPORT_FILE = "report.html"
METRICS_FILE = "metrics.json"
GateKind = Literal["teacher", "student"]


class GateProblem(Exception):
    """An input problem that fails the gate (with this reason) instead of aborting the command."""


# ---------------------------------------------------------------- inputs


def read_golden(uri: str | None, spec: AttributeSpec) -> dict[str, int]:
    """video_id -> resolved human label for this attribute and version (or the newest version with the same classes,
    see golden.read_golden_set); raises GateProblem when unusable."""
    return dict(_golden_set(uri, spec).resolved)


def _golden_set(uri: str | None, spec: AttributeSpec) -> GoldenSet:
    if not uri:
        raise GateProblem("no golden set given")
    try:
        return read_golden_set(uri, spec=spec)
    except SilversetInputError as exc:
        if exc.problem.startswith("attribute version mismatch"):
            raise GateProblem(str(exc)) from None
        raise GateProblem(f"golden set unreadable: {exc}") from None


def read_predictions(uri: str | None, spec: AttributeSpec, *, role: str) -> dict[str, Any]:
    """A labels or scores table for this attribute: probabilities by video_id, decisions when a ``label`` column exists.

    Returns {"probability": {id: p}, "label": {id: 0|1} or None, "rationale": {id: text} ({} without the column),
    "model_digest": set of digests}.
    """
    if not uri:
        raise GateProblem(f"no {role} predictions given")
    try:
        table = tables.read_table(uri, name=f"{role} predictions '{uri}'")
    except SilversetInputError as exc:
        raise GateProblem(f"{role} predictions unreadable: {exc}") from None
    for column in ("video_id", "probability"):
        if column not in table.column_names:
            raise GateProblem(f"{role} predictions '{uri}' have no '{column}' column")
    keep = np.ones(table.num_rows, dtype=bool)
    if "attribute" in table.column_names:
        keep &= np.asarray([a == spec.name for a in table.column("attribute").to_pylist()], dtype=bool)
    if "attribute_version" in table.column_names and keep.any():
        versions = np.asarray(table.column("attribute_version").to_pylist())
        if not (versions[keep] == spec.version).any():
            raise GateProblem(
                f"attribute version mismatch: {role} predictions are for "
                f"v{sorted({int(v) for v in versions[keep]})}, spec is {spec.key}"
            )
        keep &= versions == spec.version
    table = table.filter(pa.array(keep))
    ids = table.column("video_id").to_pylist()
    probs = np.asarray(table.column("probability").to_pylist(), dtype=np.float64)
    label = None
    if "label" in table.column_names:
        label = dict(zip(ids, (int(v) for v in table.column("label").to_pylist())))
    digests = set(table.column("model_digest").to_pylist()) if "model_digest" in table.column_names else set()
    rationale = dict(zip(ids, table.column("rationale").to_pylist())) if "rationale" in table.column_names else {}
    return {"probability": dict(zip(ids, probs)), "label": label, "rationale": rationale, "model_digest": digests}


def aligned(
    golden: dict[str, int], predictions: dict[str, Any], *, threshold: float, role: str
) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities float64 [n], decisions int [n]) in golden order.

    Every golden item must be predicted, with no NaN.
    """
    missing = [v for v in golden if v not in predictions["probability"]]
    if missing:
        raise GateProblem(
            f"{len(missing)} of {len(golden)} golden items have no {role} prediction (e.g. {missing[:3]})"
        )
    probs = np.array([predictions["probability"][v] for v in golden], dtype=np.float64)
    nan = int(np.sum(~np.isfinite(probs)))
    if nan:
        raise GateProblem(f"{nan} {role} probabilities on golden items are NaN or infinite")
    if predictions["label"] is not None:
        decided = np.array([predictions["label"][v] for v in golden], dtype=np.int64)
    else:
        decided = (probs >= threshold).astype(np.int64)
    return probs, decided


def teacher_latency_from_stats(labels_dir: str | Path) -> float | None:
    """Seconds per item the teacher spent, from its per-shard stats (``stats/shard-*.json``): the items it really
    ran over every run of the shard (``timed_items``/``timed_seconds``), so a resumed run that found every item
    already labelled still knows what labelling cost."""
    files = sorted((Path(labels_dir) / "stats").glob("shard-*.json"))
    seconds = items = 0.0
    for path in files:
        stats = json.loads(path.read_text())
        if "timed_items" in stats:
            seconds += float(stats["timed_seconds"])
            items += float(stats["timed_items"])
            continue
        seconds += float(stats.get("seconds", 0.0))
        items += float(stats.get("processed", stats.get("items", 0))) - float(stats.get("cache_hits", 0))
    return seconds / items if items > 0 and seconds > 0 else None


def _finite(value: float) -> bool:
    return value is not None and math.isfinite(value)


# ---------------------------------------------------------------- the gates


def _metric_block(
    labels: np.ndarray, probs: np.ndarray, decided: np.ndarray, *, samples: int, seed: int
) -> dict[str, Any]:
    estimates = metrics.bootstrap_metrics(labels, probs, decided, samples=samples, seed=seed)
    tn, fp, fn, tp = metrics.confusion_counts(labels, decided)
    return {
        **{k: e.as_dict() for k, e in estimates.items()},
        "confusion_matrix": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
        "n": int(len(labels)),
        "positives": int(labels.sum()),
        "negatives": int(len(labels) - labels.sum()),
    }


def slice_metrics(
    labels: np.ndarray, probs: np.ndarray, decided: np.ndarray, slices: list[str], *, samples: int, seed: int
) -> dict[str, Any]:
    """Precision/recall/F1 with CIs per value of a metadata column (slices: one value per golden item)."""
    out = {}
    values = np.asarray(slices, dtype=object)
    for value in sorted(set(slices), key=str):
        mask = values == value
        est = metrics.bootstrap_metrics(labels[mask], probs[mask], decided[mask], samples=samples, seed=seed)
        out[str(value)] = {
            "n": int(mask.sum()),
            "positives": int(labels[mask].sum()),
            **{k: est[k].as_dict() for k in ("precision", "recall", "f1")},
        }
    return out


def run(
    *,
    attribute: str,
    golden: str | None,
    predictions: str | None,
    gate: GateKind,
    out: str,
    baseline: str | None = None,
    teacher_predictions: str | None = None,
    model: str | None = None,
    threshold: float | None = None,
    baseline_threshold: float | None = None,
    teacher_latency_s_per_item: float | None = None,
    teacher_stats: str | None = None,
    student_latency_s_per_item: float | None = None,
    metadata: str | None = None,
    slice_column: str | None = None,
    frames: str | None = None,
    manifest: str | None = None,
) -> dict[str, Any]:
    """Evaluate ``predictions`` on the golden set and apply the ``gate``.

    Writes gate.json, metrics.json, report.html under ``out``.

    teacher gate: F1 and its lower 95% CI bound above the spec's bars, enough golden positives/negatives.
    student gate: F1 retention vs ``teacher_predictions`` on the same golden items, latency ratio
    student/teacher (from ``model``'s metadata and the teacher's stats or the given seconds/item),
    and no significant F1 regression vs ``baseline`` (paired bootstrap) when given.
    The teacher gate also writes disagreements.json (golden items where the teacher and the resolved label differ)
    and lists them in the report, with thumbnails from the ``frames`` table and titles from the ``manifest``.
    Returns {"passed": bool, "reasons": [...], "gate_json": path, "report": path, "metrics": {...}}.
    """
    if gate not in ("teacher", "student"):
        raise SilversetInputError("--gate", f"must be 'teacher' or 'student', got {gate!r}")
    spec = load_spec(attribute)
    settings = spec.gates
    samples, seed = settings.bootstrap_samples, settings.seed
    reasons: list[str] = []
    result: dict[str, Any] = {
        "gate": gate,
        "attribute": spec.name,
        "attribute_version": spec.version,
        "spec_content_hash": spec.content_hash,
        "candidate_digest": None,
        "metrics": {},
    }
    curves: dict[str, Any] = {}
    review = None  # (Disagreements, thumbnails) of the teacher gate
    try:
        model_meta = None
        if model:
            try:
                model_meta = read_model_metadata(model)
            except SilversetInputError as exc:
                raise GateProblem(f"candidate model unusable: {exc}") from None
            result["candidate_digest"] = model_meta.model_digest
            if (model_meta.attribute, model_meta.attribute_version) != (spec.name, spec.version):
                raise GateProblem(
                    f"attribute version mismatch: model is for {model_meta.attribute}"
                    f"@v{model_meta.attribute_version}, spec is {spec.key}"
                )
        golden_set = _golden_set(golden, spec)
        golden_labels = dict(golden_set.resolved)
        # The version the golden labels were given for: the spec's own, or an earlier one with the same classes.
        result["golden_version"] = golden_set.carried_from or spec.version
        labels = np.array(list(golden_labels.values()), dtype=np.int64)
        n_pos, n_neg = int(labels.sum()), int(len(labels) - labels.sum())
        bars = settings.teacher
        if n_pos < bars.min_positives or n_neg < bars.min_negatives:
            raise GateProblem(
                f"golden set too small: {n_pos} positives / {n_neg} negatives, "
                f"need {bars.min_positives} / {bars.min_negatives}"
            )

        candidate = read_predictions(predictions, spec, role="candidate")
        if (
            gate == "student"
            and model_meta
            and candidate["model_digest"]
            and candidate["model_digest"] != {model_meta.model_digest}
        ):
            raise GateProblem(
                "candidate predictions were made by a different model than --model (model_digest differs)"
            )
        if result["candidate_digest"] is None and len(candidate["model_digest"]) == 1:
            result["candidate_digest"] = next(iter(candidate["model_digest"]))
        cut = threshold if threshold is not None else (model_meta.threshold if model_meta else spec.decision_threshold)
        probs, decided = aligned(golden_labels, candidate, threshold=cut, role="candidate")
        block = _metric_block(labels, probs, decided, samples=samples, seed=seed)
        result["metrics"]["candidate"] = block
        result["threshold"] = cut
        result["best_f1_threshold_on_golden"] = metrics.select_threshold(labels, probs)
        curves["candidate"] = {"labels": labels, "probabilities": probs, "decided": decided}
        if metadata and slice_column:
            result["metrics"]["slices"] = {
                slice_column: slice_metrics(
                    labels,
                    probs,
                    decided,
                    _slice_values(metadata, slice_column, golden_labels),
                    samples=samples,
                    seed=seed,
                )
            }

        f1 = block["f1"]
        if gate == "teacher":
            from .disagreements import teacher_disagreements

            review = teacher_disagreements(
                spec=spec,
                golden=golden,
                probabilities=dict(zip(golden_labels, probs)),
                decided=dict(zip(golden_labels, decided)),
                rationales=candidate["rationale"],
                frames=frames,
                manifest=manifest,
            )
            if not f1["value"] >= bars.min_f1:
                reasons.append(f"teacher F1 {f1['value']:.3f} < {bars.min_f1}")
            if not (_finite(f1["lower"]) and f1["lower"] >= bars.min_f1_lower_ci):
                reasons.append(f"teacher F1 lower 95% CI bound {f1['lower']:.3f} < {bars.min_f1_lower_ci}")
        else:
            student_bars = settings.student
            teacher = read_predictions(teacher_predictions, spec, role="teacher")
            t_probs, t_decided = aligned(golden_labels, teacher, threshold=spec.decision_threshold, role="teacher")
            t_block = _metric_block(labels, t_probs, t_decided, samples=samples, seed=seed)
            result["metrics"]["teacher"] = t_block
            curves["teacher"] = {"labels": labels, "probabilities": t_probs, "decided": t_decided}
            retention = f1["value"] / t_block["f1"]["value"] if t_block["f1"]["value"] > 0 else float("nan")
            result["metrics"]["f1_retention"] = retention
            if not (_finite(retention) and retention >= student_bars.min_f1_retention):
                reasons.append(
                    f"F1 retention {retention:.3f} < {student_bars.min_f1_retention} "
                    f"(student {f1['value']:.3f} vs teacher {t_block['f1']['value']:.3f})"
                )

            student_latency = student_latency_s_per_item
            if student_latency is None and model_meta is not None:
                student_latency = model_meta.latency_s_per_item
            teacher_latency = (
                teacher_latency_s_per_item
                if teacher_latency_s_per_item is not None
                else (teacher_latency_from_stats(teacher_stats) if teacher_stats else None)
            )
            result["metrics"]["latency"] = {
                "student_s_per_item": student_latency,
                "teacher_s_per_item": teacher_latency,
            }
            if not (
                _finite(student_latency) and _finite(teacher_latency) and teacher_latency > 0 and student_latency > 0
            ):
                reasons.append(
                    f"latency unknown (student {student_latency}, teacher {teacher_latency} s/item): "
                    f"cannot check the {student_bars.max_latency_ratio} ratio"
                )
            else:
                ratio = student_latency / teacher_latency
                result["metrics"]["latency"]["ratio"] = ratio
                if ratio > student_bars.max_latency_ratio:
                    reasons.append(f"latency ratio student/teacher {ratio:.2e} > {student_bars.max_latency_ratio}")

            if baseline:
                base = read_predictions(baseline, spec, role="baseline")
                b_cut = baseline_threshold if baseline_threshold is not None else spec.decision_threshold
                b_probs, b_decided = aligned(golden_labels, base, threshold=b_cut, role="baseline")
                comparison = metrics.paired_f1_comparison(
                    labels, decided, b_decided, alpha=student_bars.regression_alpha, samples=samples, seed=seed
                )
                result["metrics"]["vs_baseline"] = {k: v for k, v in comparison.__dict__.items() if k != "extra"}
                if comparison.regression:
                    reasons.append(
                        "significant F1 regression vs the promoted model: "
                        f"{comparison.candidate_f1:.3f} vs {comparison.baseline_f1:.3f} "
                        f"(p={comparison.p_value:.3f} < {student_bars.regression_alpha})"
                    )
    except GateProblem as problem:
        reasons.append(str(problem))

    result["passed"] = not reasons
    result["reasons"] = reasons
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    gate_json = write_gate(out_dir, GateResult.model_validate(_jsonable(result)))
    (out_dir / METRICS_FILE).write_text(json.dumps(_jsonable(result["metrics"]), indent=2, sort_keys=True))
    from .disagreements import DISAGREEMENTS_FILE, write_disagreements
    from .report import write_report

    if review is not None:
        write_disagreements(out_dir, review[0])
    else:  # a rerun into the same folder must not leave an earlier run's list beside this gate.json
        (out_dir / DISAGREEMENTS_FILE).unlink(missing_ok=True)
    write_report(
        out_dir / REPORT_FILE,
        result=result,
        curves=curves,
        spec=spec,
        disagreements=review[0] if review else None,
        thumbnails=review[1] if review else None,
    )
    return {
        "passed": result["passed"],
        "reasons": reasons,
        "gate": gate,
        "candidate_digest": result["candidate_digest"],
        "gate_json": gate_json,
        "report": str(out_dir / REPORT_FILE),
        "metrics": result["metrics"],
        "curves": curves,
        "disagreements": str(out_dir / DISAGREEMENTS_FILE) if review else None,
    }


def _slice_values(metadata: str, column: str, golden: dict[str, int]) -> list[str]:
    table = tables.read_table(metadata, name=f"metadata '{metadata}'")
    if column not in table.column_names or "video_id" not in table.column_names:
        raise SilversetInputError(f"metadata '{metadata}'", f"needs columns 'video_id' and '{column}'")
    lookup = dict(zip(table.column("video_id").to_pylist(), table.column(column).to_pylist()))
    return [str(lookup.get(v, "(missing)")) for v in golden]


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value
