"""The two golden-set gates, each written as gate.json (``common.artifacts.GateResult``) + metrics.json +
report.html under its ``out_dir``:

- ``check_teacher``: the teacher's labels against the golden set (F1 and its lower CI bound above the spec's
  bars); also writes disagreements.json, the golden items where the teacher and the resolved label differ.
- ``check_student``: the student's scores against the golden set and the teacher on the same items (F1
  retention, latency ratio, no significant regression vs the promoted model).

Both return a :class:`GateSummary` and share the loading, metrics and writing (``_Check``). A gate fails closed: a
missing or too-small golden set, an attribute-version mismatch, golden items without a prediction, NaN
probabilities, or a missing latency each fail it with a reason; nothing passes by default. gate.json is the typed
"blessing" the pipeline's ``dsl.If``, approval and deploy read.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal, TypeGuard

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

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
    from silverset.components.common.artifacts import read_stage_stats  # stats/shard-*.json: ShardStats

    seconds = items = 0.0
    for stats in read_stage_stats(labels_dir):
        if "timed_items" in stats.model_fields_set:
            seconds += stats.timed_seconds
            items += stats.timed_items
            continue
        seconds += stats.seconds
        done = stats.processed if "processed" in stats.model_fields_set else stats.items
        items += done - stats.cache_hits
    return seconds / items if items > 0 and seconds > 0 else None


def _finite(value: float | None) -> TypeGuard[float]:
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


class TeacherGateOptions(BaseModel):
    """Tunables of the teacher check (its bars are the spec's ``gates.teacher``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    threshold: float | None = Field(None, ge=0.0, le=1.0)  # decision threshold for the labels; None: the spec's
    slice_column: str | None = None  # per-slice metrics by this column of the ``metadata`` table


class StudentGateOptions(BaseModel):
    """Tunables of the student check (its bars are the spec's ``gates.student``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    threshold: float | None = Field(None, ge=0.0, le=1.0)  # None: the model's, else the spec's
    baseline_threshold: float | None = Field(None, ge=0.0, le=1.0)  # None: the spec's
    slice_column: str | None = None


class GoldenCurve(BaseModel):
    """The candidate on the golden items, in golden order: what the ROC curve and confusion matrix are drawn from."""

    model_config = ConfigDict(frozen=True)

    labels: tuple[int, ...]  # resolved human label, 0 | 1
    probabilities: tuple[float, ...]
    decided: tuple[int, ...]  # the candidate's decision, 0 | 1


class GateSummary(BaseModel):
    """What a gate check produced: the gate.json it wrote (``result``) and the paths of its files."""

    model_config = ConfigDict(frozen=True)

    result: GateResult
    gate_result: str  # gate.json
    report: str  # report.html
    metrics_file: str  # metrics.json
    disagreements: str | None = None  # disagreements.json (teacher check only)
    candidate_curve: GoldenCurve | None = None  # None when the gate failed before the candidate was scored

    @property
    def passed(self) -> bool:
        return self.result.passed

    @property
    def reasons(self) -> list[str]:
        return self.result.reasons

    @property
    def candidate_digest(self) -> str | None:
        return self.result.candidate_digest


class _Check:
    """One gate check under way: the gate.json fields, the reasons it fails, the curves the report draws."""

    def __init__(self, spec: AttributeSpec, *, kind: GateKind):
        self.spec = spec
        self.reasons: list[str] = []
        self.curves: dict[str, Any] = {}
        self.result: dict[str, Any] = {
            "gate": kind,
            "attribute": spec.name,
            "attribute_version": spec.version,
            "spec_content_hash": spec.content_hash,
            "candidate_digest": None,
            "metrics": {},
        }

    def golden(self, golden_set: str | None) -> tuple[GoldenSet, dict[str, int], np.ndarray]:
        """The golden set, its resolved labels (video_id -> 0|1) and those labels as int [n]; too small fails."""
        golden = _golden_set(golden_set, self.spec)
        resolved = dict(golden.resolved)
        # The version the golden labels were given for: the spec's own, or an earlier one with the same classes.
        self.result["golden_version"] = golden.carried_from or self.spec.version
        labels = np.array(list(resolved.values()), dtype=np.int64)
        n_pos, n_neg = int(labels.sum()), int(len(labels) - labels.sum())
        bars = self.spec.gates.teacher
        if n_pos < bars.min_positives or n_neg < bars.min_negatives:
            raise GateProblem(
                f"golden set too small: {n_pos} positives / {n_neg} negatives, "
                f"need {bars.min_positives} / {bars.min_negatives}"
            )
        return golden, resolved, labels

    def candidate(
        self,
        candidate: dict[str, Any],
        resolved: dict[str, int],
        labels: np.ndarray,
        *,
        threshold: float,
        metadata: str | None,
        slice_column: str | None,
    ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """Score the candidate's predictions on the golden items: (probabilities, decisions, metric block)."""
        settings = self.spec.gates
        if self.result["candidate_digest"] is None and len(candidate["model_digest"]) == 1:
            self.result["candidate_digest"] = next(iter(candidate["model_digest"]))
        probs, decided = aligned(resolved, candidate, threshold=threshold, role="candidate")
        block = _metric_block(labels, probs, decided, samples=settings.bootstrap_samples, seed=settings.seed)
        self.result["metrics"]["candidate"] = block
        self.result["threshold"] = threshold
        self.result["best_f1_threshold_on_golden"] = metrics.select_threshold(labels, probs)
        self.curves["candidate"] = {"labels": labels, "probabilities": probs, "decided": decided}
        if metadata and slice_column:
            self.result["metrics"]["slices"] = {
                slice_column: slice_metrics(
                    labels,
                    probs,
                    decided,
                    _slice_values(metadata, slice_column, resolved),
                    samples=settings.bootstrap_samples,
                    seed=settings.seed,
                )
            }
        return probs, decided, block

    def finish(self, out_dir: str, *, review: tuple[Any, dict[str, list[str]]] | None = None) -> GateSummary:
        """Write gate.json, metrics.json, report.html (+ disagreements.json with a ``review``) under ``out_dir``."""
        from .disagreements import DISAGREEMENTS_FILE, write_disagreements
        from .report import write_report

        self.result["passed"] = not self.reasons
        self.result["reasons"] = self.reasons
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        result = GateResult.model_validate(_jsonable(self.result))
        gate_json = write_gate(out, result)
        (out / METRICS_FILE).write_text(json.dumps(_jsonable(self.result["metrics"]), indent=2, sort_keys=True))
        if review is not None:
            write_disagreements(out, review[0])
        else:  # a rerun into the same folder must not leave an earlier run's list beside this gate.json
            (out / DISAGREEMENTS_FILE).unlink(missing_ok=True)
        write_report(
            out / REPORT_FILE,
            result=self.result,
            curves=self.curves,
            spec=self.spec,
            disagreements=review[0] if review else None,
            thumbnails=review[1] if review else None,
        )
        curve = self.curves.get("candidate")
        return GateSummary(
            result=result,
            gate_result=gate_json,
            report=str(out / REPORT_FILE),
            metrics_file=str(out / METRICS_FILE),
            disagreements=str(out / DISAGREEMENTS_FILE) if review else None,
            candidate_curve=None
            if curve is None
            else GoldenCurve(
                labels=tuple(int(v) for v in curve["labels"]),
                probabilities=tuple(float(v) for v in curve["probabilities"]),
                decided=tuple(int(v) for v in curve["decided"]),
            ),
        )


def check_teacher(
    *,
    attribute_spec: str,
    golden_set: str | None,
    predictions: str | None,
    out_dir: str,
    frames_uri: str | None = None,
    manifest_uri: str | None = None,
    metadata: str | None = None,
    options: TeacherGateOptions = TeacherGateOptions(),
) -> GateSummary:
    """The teacher gate: the teacher's labels ``predictions`` on the golden set, written under ``out_dir``.

    Passes when F1 and its lower 95% CI bound are above the spec's bars and the golden set has enough positives
    and negatives. Also writes disagreements.json (golden items where the teacher and the resolved label differ)
    and lists them in the report, with thumbnails from the ``frames_uri`` table and titles from ``manifest_uri``.
    ``metadata``: a table with video_id and ``options.slice_column`` for per-slice metrics.
    """
    from .disagreements import teacher_disagreements

    spec = load_spec(attribute_spec)
    check = _Check(spec, kind="teacher")
    review = None
    try:
        _, resolved, labels = check.golden(golden_set)
        candidate = read_predictions(predictions, spec, role="candidate")
        threshold = options.threshold if options.threshold is not None else spec.decision_threshold
        probs, decided, block = check.candidate(
            candidate, resolved, labels, threshold=threshold, metadata=metadata, slice_column=options.slice_column
        )
        review = teacher_disagreements(
            spec=spec,
            golden=str(golden_set),
            probabilities=dict(zip(resolved, probs)),
            decided=dict(zip(resolved, decided)),
            rationales=candidate["rationale"],
            frames=frames_uri,
            manifest=manifest_uri,
        )
        bars, f1 = spec.gates.teacher, block["f1"]
        if not f1["value"] >= bars.min_f1:
            check.reasons.append(f"teacher F1 {f1['value']:.3f} < {bars.min_f1}")
        if not (_finite(f1["lower"]) and f1["lower"] >= bars.min_f1_lower_ci):
            check.reasons.append(f"teacher F1 lower 95% CI bound {f1['lower']:.3f} < {bars.min_f1_lower_ci}")
    except GateProblem as problem:
        check.reasons.append(str(problem))
    return check.finish(out_dir, review=review)


def check_student(
    *,
    attribute_spec: str,
    golden_set: str | None,
    predictions: str | None,
    model_dir: str | None,
    out_dir: str,
    teacher_predictions: str | None,
    baseline: str | None = None,
    teacher_stats: str | None = None,
    teacher_latency_s_per_item: float | None = None,
    student_latency_s_per_item: float | None = None,
    metadata: str | None = None,
    options: StudentGateOptions = StudentGateOptions(),
) -> GateSummary:
    """The student gate: the student's scores ``predictions`` on the golden set, written under ``out_dir``.

    Passes on F1 retention vs ``teacher_predictions`` on the same golden items, the latency ratio student/teacher
    (student: ``student_latency_s_per_item``, else ``model_dir``'s metadata; teacher:
    ``teacher_latency_s_per_item``, else the teacher labels folder ``teacher_stats``' shard stats), and no
    significant F1 regression vs ``baseline`` (paired bootstrap) when given. ``model_dir`` (the candidate
    MODELDIR, digest verified) names the candidate and gives its threshold; without it the candidate digest comes
    from the predictions' ``model_digest`` column.
    """
    spec = load_spec(attribute_spec)
    check = _Check(spec, kind="student")
    settings = spec.gates
    bars, samples, seed = settings.student, settings.bootstrap_samples, settings.seed
    try:
        model_meta = None
        if model_dir:
            try:
                model_meta = read_model_metadata(model_dir)
            except SilversetInputError as exc:
                raise GateProblem(f"candidate model unusable: {exc}") from None
            check.result["candidate_digest"] = model_meta.model_digest
            if (model_meta.attribute, model_meta.attribute_version) != (spec.name, spec.version):
                raise GateProblem(
                    f"attribute version mismatch: model is for {model_meta.attribute}"
                    f"@v{model_meta.attribute_version}, spec is {spec.key}"
                )
        _, resolved, labels = check.golden(golden_set)
        candidate = read_predictions(predictions, spec, role="candidate")
        if model_meta and candidate["model_digest"] and candidate["model_digest"] != {model_meta.model_digest}:
            raise GateProblem(
                "candidate predictions were made by a different model than the candidate model (model_digest differs)"
            )
        threshold = options.threshold
        if threshold is None:
            threshold = model_meta.threshold if model_meta else spec.decision_threshold
        _, decided, block = check.candidate(
            candidate, resolved, labels, threshold=threshold, metadata=metadata, slice_column=options.slice_column
        )
        f1 = block["f1"]

        teacher = read_predictions(teacher_predictions, spec, role="teacher")
        t_probs, t_decided = aligned(resolved, teacher, threshold=spec.decision_threshold, role="teacher")
        t_block = _metric_block(labels, t_probs, t_decided, samples=samples, seed=seed)
        check.result["metrics"]["teacher"] = t_block
        check.curves["teacher"] = {"labels": labels, "probabilities": t_probs, "decided": t_decided}
        retention = f1["value"] / t_block["f1"]["value"] if t_block["f1"]["value"] > 0 else float("nan")
        check.result["metrics"]["f1_retention"] = retention
        if not (_finite(retention) and retention >= bars.min_f1_retention):
            check.reasons.append(
                f"F1 retention {retention:.3f} < {bars.min_f1_retention} "
                f"(student {f1['value']:.3f} vs teacher {t_block['f1']['value']:.3f})"
            )

        student_latency = student_latency_s_per_item
        if student_latency is None and model_meta is not None:
            student_latency = model_meta.latency_s_per_item
        teacher_latency = teacher_latency_s_per_item
        if teacher_latency is None and teacher_stats:
            teacher_latency = teacher_latency_from_stats(teacher_stats)
        latency: dict[str, Any] = {"student_s_per_item": student_latency, "teacher_s_per_item": teacher_latency}
        check.result["metrics"]["latency"] = latency
        if _finite(student_latency) and _finite(teacher_latency) and teacher_latency > 0 and student_latency > 0:
            latency["ratio"] = ratio = student_latency / teacher_latency
            if ratio > bars.max_latency_ratio:
                check.reasons.append(f"latency ratio student/teacher {ratio:.2e} > {bars.max_latency_ratio}")
        else:
            check.reasons.append(
                f"latency unknown (student {student_latency}, teacher {teacher_latency} s/item): "
                f"cannot check the {bars.max_latency_ratio} ratio"
            )

        if baseline:
            base = read_predictions(baseline, spec, role="baseline")
            b_cut = options.baseline_threshold if options.baseline_threshold is not None else spec.decision_threshold
            _, b_decided = aligned(resolved, base, threshold=b_cut, role="baseline")
            comparison = metrics.paired_f1_comparison(
                labels, decided, b_decided, alpha=bars.regression_alpha, samples=samples, seed=seed
            )
            check.result["metrics"]["vs_baseline"] = {k: v for k, v in comparison.__dict__.items() if k != "extra"}
            if comparison.regression:
                check.reasons.append(
                    "significant F1 regression vs the promoted model: "
                    f"{comparison.candidate_f1:.3f} vs {comparison.baseline_f1:.3f} "
                    f"(p={comparison.p_value:.3f} < {bars.regression_alpha})"
                )
    except GateProblem as problem:
        check.reasons.append(str(problem))
    return check.finish(out_dir)


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
