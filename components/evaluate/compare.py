"""Two definitions of one attribute compared on its golden set: ``silverset attribute compare A.yaml B.yaml``.

The configured teacher labels the golden items under each definition (``annotate.run`` over a manifest of the golden
items, one labels folder per definition under ``out/labels/``: a rerun resumes, and a Gemini teacher's answer cache,
``out/.teacher-cache`` unless ``--cache`` names another, e.g. the one an earlier annotate run filled, means an answer
already paid for is never asked again). Both definitions are scored against the same resolved golden labels with the
gate's metrics code: precision, recall and F1 with seeded percentile bootstrap CIs, and the paired bootstrap
difference F1(B) - F1(A) with its 95% CI on the same resamples. Items whose teacher decision flips between A and B are
listed with both rationales. Writes ``compare.json`` (:class:`CompareReport`) and ``compare.html``.

A and B must be versions of one attribute with the same classes: that is when the golden set carries across versions
(``golden.read_golden_set``); anything else is refused with a SilversetInputError before the teacher runs.
"""

from __future__ import annotations

import html
import json
import logging
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict

from silverset.components.common import schemas, tables
from silverset.components.common.digest import sha256_json
from silverset.components.common.errors import SilversetInputError
from silverset.components.common.spec import AttributeSpec, load_spec
from silverset.components.teacher.annotate import AnnotateOptions

from . import metrics

_LOGGER = logging.getLogger(__name__)

COMPARE_FILE = "compare.json"
COMPARE_REPORT = "compare.html"
GOLDEN_MANIFEST = "golden_manifest.parquet"
CONFIDENCE = 0.95


class MetricEstimate(BaseModel):
    """A metric on the golden set and its percentile bootstrap CI."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    value: float
    lower: float | None
    upper: float | None


class DefinitionResult(BaseModel):
    """One definition's teacher labels on the golden items, scored against the resolved labels."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spec: str  # the YAML path as given
    key: str  # name@vN
    prompt_hash: str
    teacher_id: str
    labels: str  # the labels folder
    precision: MetricEstimate
    recall: MetricEstimate
    f1: MetricEstimate
    confusion_matrix: dict[str, int]  # tn, fp, fn, tp
    labelled_now: int  # golden items the teacher labelled in this run (cache hits included, resumed items not)
    teacher_requests: int  # API requests this run sent (Gemini; 0 for local teachers, and for cached answers)
    cache_hits: int  # answers replayed from the Gemini answer cache
    resumed: int  # items an earlier compare run had already labelled into ``labels``


class F1Difference(BaseModel):
    """F1(B) - F1(A) on the same golden items; CI from a paired bootstrap (the same resamples for both)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    value: float
    lower: float | None
    upper: float | None
    share_b_at_least_a: float  # share of resamples where B's F1 >= A's
    verdict: Literal["B better", "B worse", "no significant difference"]


class FlippedItem(BaseModel):
    """A golden item whose teacher decision differs between the two definitions."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    video_id: str
    title: str | None
    resolved_label: int
    label_a: int
    label_b: int
    probability_a: float
    probability_b: float
    rationale_a: str | None
    rationale_b: str | None
    right: Literal["A", "B"]  # the definition whose decision matches the resolved label


class CompareReport(BaseModel):
    """The content of ``compare.json``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    attribute: str
    golden: str
    golden_version: int  # the version whose golden labels were used
    n: int
    positives: int
    bootstrap_samples: int
    seed: int
    a: DefinitionResult
    b: DefinitionResult
    f1_difference: F1Difference
    flipped: list[FlippedItem]


def write_compare(out_dir: str | Path, report: CompareReport) -> Path:
    path = Path(out_dir) / COMPARE_FILE
    path.write_text(json.dumps(report.model_dump(), indent=2, ensure_ascii=False), encoding="utf-8")
    return path


def read_compare(uri: str | Path) -> CompareReport:
    """Read a ``compare.json`` (the file, or the folder holding it)."""
    path = Path(uri)
    path = path / COMPARE_FILE if path.is_dir() else path
    if not path.is_file():
        raise SilversetInputError(f"compare '{uri}'", "does not exist (silverset attribute compare writes it)")
    return CompareReport.model_validate_json(path.read_text(encoding="utf-8"))


# ---------------------------------------------------------------- checks


def check_comparable(a: AttributeSpec, b: AttributeSpec, *, a_name: str, b_name: str) -> None:
    """Refuse two specs the golden set does not carry between: another attribute, or other classes."""
    if a.name != b.name:
        raise SilversetInputError(
            b_name,
            f"is attribute '{b.name}', {a_name} is '{a.name}': compare takes two "
            "definitions of one attribute (one golden set)",
        )
    if a.label_type != b.label_type or tuple(a.classes) != tuple(b.classes):
        raise SilversetInputError(
            b_name,
            f"has classes {list(b.classes)} ({b.label_type.value}), {a_name} has "
            f"{list(a.classes)} ({a.label_type.value}): the golden set carries across "
            "definitions only when the classes are unchanged",
        )


def _teacher_of(spec: AttributeSpec, options: AnnotateOptions) -> tuple[str, str | None]:
    teacher = options.teacher or spec.teacher.backend
    return teacher, (options.gemini.model or spec.teacher.model) if teacher == "gemini" else None


def _labels_folder(out: Path, spec: AttributeSpec, options: AnnotateOptions) -> Path:
    """One labels folder per (definition, teacher settings): a changed definition or teacher never reuses labels."""
    teacher, model = _teacher_of(spec, options)
    settings = sha256_json(
        {
            "teacher": teacher,
            "model": model,
            "checkpoint": options.checkpoint,
            "temperature": options.temperature,
            "runtime": options.runtime,
            "precision": options.precision,
            "threshold_logit": options.threshold_logit,
        }
    )
    return out / "labels" / f"{spec.name}-v{spec.version}-{spec.prompt_hash[:12]}-{teacher}-{settings[:8]}"


# ---------------------------------------------------------------- run


def _golden_manifest(out: Path, video_ids: list[str], manifest: str | None) -> tuple[str, dict[str, str | None]]:
    """Write the manifest of the golden items the teacher labels; (its path, video_id -> title).

    Rows come from ``manifest`` (uri, title, description); a golden item it lacks (or every item, without one)
    gets a placeholder uri and no text, which a text teacher reports as an error row.
    """
    rows: dict[str, dict] = {}
    if manifest:
        from silverset.components.common.manifest import read_manifest

        table, _ = read_manifest(manifest, stage="compare")
        wanted = set(video_ids)
        for row in table.select(["video_id", "uri", "title", "description"]).to_pylist():
            if row["video_id"] in wanted:
                rows[row["video_id"]] = row
    placeholder = {"uri": None, "title": None, "description": None}
    out_rows = [rows.get(v, {**placeholder, "video_id": v, "uri": f"golden:{v}"}) for v in video_ids]
    path = out / GOLDEN_MANIFEST
    tables.write_table(pa.Table.from_pylist(out_rows, schema=schemas.MANIFEST), path, schemas.MANIFEST)
    return str(path), {r["video_id"]: r["title"] for r in out_rows}


def _label_golden(
    *,
    spec_path: str,
    spec: AttributeSpec,
    manifest: str,
    frames: str | None,
    out: Path,
    options: AnnotateOptions,
    video_ids: list[str],
) -> tuple[dict[str, dict], dict, Path]:
    """Run the teacher over the golden manifest with one definition; ({video_id: labels row}, stats, folder)."""
    from silverset.components.teacher.annotate import run as annotate

    folder = _labels_folder(out, spec, options)
    summary = annotate(
        attribute_spec=spec_path, manifest_uri=manifest, out_dir=str(folder), frames_uri=frames, options=options
    )
    rows = {
        r["video_id"]: r
        for r in tables.read_table(folder, schemas.LABELS, name=f"labels '{folder}'").to_pylist()
        if r["prompt_hash"] == spec.prompt_hash
    }
    missing = [v for v in video_ids if v not in rows]
    if missing:
        errors = {e["key"]: f"{e['error_type']}: {e['message']}" for e in tables.read_errors(folder).to_pylist()}
        examples = "; ".join(f"{v} ({errors.get(v, 'not labelled')})" for v in missing[:3])
        raise SilversetInputError(
            f"teacher on {spec_path}",
            f"{len(missing)} of {len(video_ids)} golden items got no label (e.g. {examples}); "
            "a rerun retries transient errors",
        )
    return rows, summary.stats.to_dict(), folder


def _estimate(e: metrics.Estimate) -> MetricEstimate:
    finite = lambda x: float(x) if np.isfinite(x) else None  # noqa: E731
    return MetricEstimate(value=float(e.value), lower=finite(e.lower), upper=finite(e.upper))


def run(
    *,
    a: str,
    b: str,
    golden: str,
    out: str,
    manifest: str | None = None,
    frames: str | None = None,
    options: AnnotateOptions = AnnotateOptions(),
) -> CompareReport:
    """Compare definitions ``a`` and ``b`` (spec YAML paths) on the golden set at ``golden``; write under ``out``.

    Raises SilversetInputError for specs of different attributes or classes, different teachers (without
    ``options.teacher``), an unusable golden set, or golden items the teacher could not label.
    """
    from silverset.components.common.golden import read_golden_set

    spec_a, spec_b = load_spec(a), load_spec(b)
    check_comparable(spec_a, spec_b, a_name=a, b_name=b)
    if _teacher_of(spec_a, options) != _teacher_of(spec_b, options):
        raise SilversetInputError(
            b,
            f"names teacher {_teacher_of(spec_b, options)}, {a} names "
            f"{_teacher_of(spec_a, options)}; give --teacher (and --model) so both "
            "definitions go to one teacher",
        )
    golden_set = read_golden_set(golden, spec=spec_a)
    if not golden_set.resolved:
        raise SilversetInputError(f"golden set '{golden}'", f"has no labels for {spec_a.name}")
    ids = list(golden_set.resolved)
    labels = np.array([golden_set.resolved[v] for v in ids], dtype=np.int64)

    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    if options.gemini.cache_dir is None:  # one cache for both definitions and every rerun
        options = options.model_copy(
            update={"gemini": options.gemini.model_copy(update={"cache_dir": str(out_dir / ".teacher-cache")})}
        )
    golden_manifest, titles = _golden_manifest(out_dir, ids, manifest)

    samples, seed = spec_a.gates.bootstrap_samples, spec_a.gates.seed
    results, decided, rows_of = {}, {}, {}
    for side, path, spec in (("a", a, spec_a), ("b", b, spec_b)):
        rows, stats, folder = _label_golden(
            spec_path=path,
            spec=spec,
            manifest=golden_manifest,
            frames=frames,
            out=out_dir,
            options=options,
            video_ids=ids,
        )
        probs = np.array([rows[v]["probability"] for v in ids], dtype=np.float64)
        decided[side] = np.array([rows[v]["label"] for v in ids], dtype=np.int64)
        rows_of[side] = rows
        est = metrics.bootstrap_metrics(labels, probs, decided[side], samples=samples, seed=seed)
        tn, fp, fn, tp = metrics.confusion_counts(labels, decided[side])
        results[side] = DefinitionResult(
            spec=path,
            key=spec.key,
            prompt_hash=spec.prompt_hash,
            teacher_id=rows[ids[0]]["teacher_id"],
            labels=str(folder),
            precision=_estimate(est["precision"]),
            recall=_estimate(est["recall"]),
            f1=_estimate(est["f1"]),
            confusion_matrix={"tn": tn, "fp": fp, "fn": fn, "tp": tp},
            labelled_now=int(stats["processed"]),
            teacher_requests=int(stats["requests"]),
            cache_hits=int(stats["cache_hits"]),
            resumed=int(stats["resumed"]),
        )
        _LOGGER.info(
            "%s: F1 %.3f, %d teacher requests, %d cache hits, %d resumed",
            spec.key,
            est["f1"].value,
            stats["requests"],
            stats["cache_hits"],
            stats["resumed"],
        )

    paired = metrics.paired_f1_comparison(
        labels, decided["b"], decided["a"], alpha=(1 - CONFIDENCE) / 2, samples=samples, seed=seed
    )
    lower = paired.delta_lower if np.isfinite(paired.delta_lower) else None
    upper = paired.delta_upper if np.isfinite(paired.delta_upper) else None
    verdict = (
        "B better"
        if lower is not None and lower > 0
        else "B worse"
        if upper is not None and upper < 0
        else "no significant difference"
    )
    difference = F1Difference(
        value=paired.delta, lower=lower, upper=upper, share_b_at_least_a=paired.p_value, verdict=verdict
    )

    flipped = []
    for i, vid in enumerate(ids):
        if decided["a"][i] == decided["b"][i]:
            continue
        ra, rb = rows_of["a"][vid], rows_of["b"][vid]
        flipped.append(
            FlippedItem(
                video_id=vid,
                title=titles.get(vid),
                resolved_label=int(labels[i]),
                label_a=int(decided["a"][i]),
                label_b=int(decided["b"][i]),
                probability_a=float(ra["probability"]),
                probability_b=float(rb["probability"]),
                rationale_a=ra["rationale"],
                rationale_b=rb["rationale"],
                right="B" if decided["b"][i] == labels[i] else "A",
            )
        )
    flipped.sort(key=lambda f: (-abs(f.probability_b - f.probability_a), f.video_id))

    report = CompareReport(
        attribute=spec_a.name,
        golden=golden,
        golden_version=golden_set.carried_from or spec_a.version,
        n=len(ids),
        positives=int(labels.sum()),
        bootstrap_samples=samples,
        seed=seed,
        a=results["a"],
        b=results["b"],
        f1_difference=difference,
        flipped=flipped,
    )
    write_compare(out_dir, report)
    thumbnails = {}
    if frames and flipped:
        from .disagreements import read_thumbnails

        thumbnails = read_thumbnails(frames, [f.video_id for f in flipped])[1]
    (out_dir / COMPARE_REPORT).write_text(compare_html(report, thumbnails=thumbnails), encoding="utf-8")
    return report


# ---------------------------------------------------------------- HTML


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _ci(m: MetricEstimate) -> str:
    return f"{_num(m.value)} [{_num(m.lower)}, {_num(m.upper)}]"


def _text(value: str | None) -> str:
    return html.escape(value, quote=True) if value else "&mdash;"


def compare_html(report: CompareReport, *, thumbnails: dict[str, list[str]] | None = None) -> str:
    """A self-contained page: metrics side by side, the paired difference, the flipped items (all text escaped)."""
    thumbnails = thumbnails or {}
    a, b, d = report.a, report.b, report.f1_difference
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(report.attribute)}: {html.escape(a.key)} vs {html.escape(b.key)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f4f4f4}"
        "td.text{text-align:left;max-width:26em}td.thumbs{white-space:nowrap}img{margin:1px;vertical-align:middle}"
        "</style></head><body>",
        f"<h1>{html.escape(report.attribute)}: definition A ({html.escape(a.key)}) vs B ({html.escape(b.key)})</h1>",
        f"<p>Golden set <code>{html.escape(report.golden)}</code> (labels of v{report.golden_version}): "
        f"{report.n} items, {report.positives} positive. 95% percentile bootstrap CIs, "
        f"{report.bootstrap_samples} resamples, "
        f"seed {report.seed}.</p>",
        "<table id='metrics'><tr><th></th><th>A</th><th>B</th></tr>",
        f"<tr><th>spec</th><td>{html.escape(a.spec)}</td><td>{html.escape(b.spec)}</td></tr>",
        f"<tr><th>teacher</th><td>{html.escape(a.teacher_id)}</td><td>{html.escape(b.teacher_id)}</td></tr>",
    ]
    for name in ("f1", "precision", "recall"):
        parts.append(f"<tr><th>{name}</th><td>{_ci(getattr(a, name))}</td><td>{_ci(getattr(b, name))}</td></tr>")
    for side in ("tp", "fp", "fn", "tn"):
        parts.append(f"<tr><th>{side}</th><td>{a.confusion_matrix[side]}</td><td>{b.confusion_matrix[side]}</td></tr>")
    for label, field in (
        ("labelled in this run", "labelled_now"),
        ("teacher API requests", "teacher_requests"),
        ("answer-cache hits", "cache_hits"),
        ("resumed from an earlier run", "resumed"),
    ):
        parts.append(f"<tr><th>{label}</th><td>{getattr(a, field)}</td><td>{getattr(b, field)}</td></tr>")
    parts.append("</table>")
    parts.append(
        f"<p id='difference'><b>F1(B) &minus; F1(A)</b> = {_num(d.value)} [{_num(d.lower)}, {_num(d.upper)}] "
        f"(paired bootstrap; B &ge; A in {d.share_b_at_least_a:.1%} of resamples): <b>{d.verdict}</b></p>"
    )
    parts.append(f"<h2>Flipped items ({len(report.flipped)})</h2>")
    if report.flipped:
        parts.append(
            "<table id='flipped'><tr><th>frames</th><th>video</th><th>title</th><th>resolved</th>"
            "<th>A</th><th>B</th><th>right</th><th>rationale A</th><th>rationale B</th></tr>"
        )
        for f in report.flipped:
            images = "".join(
                f"<img alt='frame' src='{html.escape(u, quote=True)}'>" for u in thumbnails.get(f.video_id, [])
            )
            parts.append(
                f"<tr data-video-id='{html.escape(f.video_id, quote=True)}'>"
                f"<td class='thumbs'>{images or '&mdash;'}</td>"
                f"<td><code>{html.escape(f.video_id)}</code></td><td class='text'>{_text(f.title)}</td>"
                f"<td>{f.resolved_label}</td><td>{f.label_a} (p={f.probability_a:.3f})</td>"
                f"<td>{f.label_b} (p={f.probability_b:.3f})</td><td>{f.right}</td>"
                f"<td class='text'>{_text(f.rationale_a)}</td><td class='text'>{_text(f.rationale_b)}</td></tr>"
            )
        parts.append("</table>")
    else:
        parts.append("<p>The teacher decides every golden item the same way under both definitions.</p>")
    parts.append("</body></html>")
    return "\n".join(parts)
