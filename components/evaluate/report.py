"""A self-contained HTML gate report (PR curve, calibration plot, confusion matrix, and for the teacher gate the
golden items it disagrees on) a person opens from the KFP UI: no external resources, every user text escaped."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import numpy as np

from . import metrics
from .disagreements import Disagreements, html_section

METRIC_ROWS = ("precision", "recall", "f1", "accuracy", "average_precision", "roc_auc", "ece")


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _figures(curves: dict[str, Any]) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures: dict[str, str] = {}
    fig, ax = plt.subplots(figsize=(4.5, 4))
    for role, c in curves.items():
        pr = metrics.pr_curve(c["labels"], c["probabilities"])
        ax.step(np.r_[0, pr["recall"]], np.r_[1, pr["precision"]], where="post", label=role)
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title="Precision-recall on the golden set")
    ax.legend()
    figures["pr_curve"] = _png(fig)

    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    for role, c in curves.items():
        bins = metrics.calibration_bins(c["labels"], c["probabilities"])
        ok = np.array(bins["count"]) > 0
        ax.plot(np.array(bins["mean_probability"])[ok], np.array(bins["positive_rate"])[ok], marker="o", label=role)
    ax.set(
        xlabel="mean predicted probability",
        ylabel="share of golden positives",
        xlim=(0, 1),
        ylim=(0, 1),
        title="Calibration (10 bins)",
    )
    ax.legend()
    figures["calibration"] = _png(fig)

    if "candidate" in curves:
        c = curves["candidate"]
        tn, fp, fn, tp = metrics.confusion_counts(c["labels"], c["decided"])
        matrix = np.array([[tn, fp], [fn, tp]])
        fig, ax = plt.subplots(figsize=(3.5, 3.2))
        ax.imshow(matrix, cmap="Blues")
        for (i, j), v in np.ndenumerate(matrix):
            ax.text(j, i, str(v), ha="center", va="center", color="black", fontsize=14)
        ax.set(
            xticks=[0, 1],
            yticks=[0, 1],
            xticklabels=["pred 0", "pred 1"],
            yticklabels=["human 0", "human 1"],
            title="Confusion matrix (candidate)",
        )
        figures["confusion_matrix"] = _png(fig)
    return figures


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "n/a"
    return f"{value:.3f}" if isinstance(value, float) else html.escape(str(value))


def write_report(
    path: str | Path,
    *,
    result: dict[str, Any],
    curves: dict[str, Any],
    spec: Any,
    disagreements: Disagreements | None = None,
    thumbnails: dict[str, list[str]] | None = None,
) -> None:
    """Write the report for one gate result (as in gate.json), its golden-set curves and, when given, the
    teacher-vs-golden disagreements (``thumbnails``: video_id -> JPEG data: URIs)."""
    verdict = "PASSED" if result["passed"] else "FAILED"
    colour = "#1a7f37" if result["passed"] else "#cf222e"
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(spec.key)} {result['gate']} gate</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f4f4f4}img{margin:6px}"
        "td.title,td.rationale{text-align:left;max-width:28em}td.thumbs{white-space:nowrap}"
        "img.thumb{margin:1px;vertical-align:middle}"
        ".none{color:#888}</style></head><body>",
        f"<h1>{html.escape(spec.title)} ({html.escape(spec.key)}): {result['gate']} gate "
        f"<span style='color:{colour}'>{verdict}</span></h1>",
        f"<p>candidate digest: <code>{html.escape(str(result.get('candidate_digest')))}</code>; "
        f"threshold: {_fmt(result.get('threshold'))}</p>",
    ]
    if result["reasons"]:
        parts.append(
            "<h2>Reasons</h2><ul>" + "".join(f"<li>{html.escape(r)}</li>" for r in result["reasons"]) + "</ul>"
        )
    roles = [r for r in ("candidate", "teacher") if r in result["metrics"]]
    if roles:
        parts.append(
            "<h2>Golden-set metrics (95% bootstrap CI)</h2><table><tr><th>metric</th>"
            + "".join(f"<th>{r}</th>" for r in roles)
            + "</tr>"
        )
        for name in METRIC_ROWS:
            cells = []
            for r in roles:
                m = result["metrics"][r][name]
                cells.append(f"<td>{_fmt(m['value'])} [{_fmt(m['lower'])}, {_fmt(m['upper'])}]</td>")
            parts.append(f"<tr><th>{name}</th>{''.join(cells)}</tr>")
        parts.append(
            "".join(
                "<tr><th>n (pos/neg)</th>"
                + "".join(
                    f"<td>{result['metrics'][r]['n']} "
                    f"({result['metrics'][r]['positives']}/{result['metrics'][r]['negatives']})</td>"
                    for r in roles
                )
                + "</tr>"
            )
        )
        parts.append("</table>")
    for key in ("f1_retention", "latency", "vs_baseline"):
        if key in result["metrics"]:
            value = result["metrics"][key]
            text = ", ".join(f"{k}={_fmt(v)}" for k, v in value.items()) if isinstance(value, dict) else _fmt(value)
            parts.append(f"<p><b>{key}</b>: {text}</p>")
    for column, slices in result["metrics"].get("slices", {}).items():
        parts.append(
            f"<h2>By {html.escape(column)}</h2>"
            "<table><tr><th>value</th><th>n</th><th>precision</th><th>recall</th><th>F1</th></tr>"
        )
        for value, m in slices.items():
            parts.append(
                f"<tr><th>{html.escape(value)}</th><td>{m['n']}</td>"
                + "".join(
                    f"<td>{_fmt(m[k]['value'])} [{_fmt(m[k]['lower'])}, {_fmt(m[k]['upper'])}]</td>"
                    for k in ("precision", "recall", "f1")
                )
                + "</tr>"
            )
        parts.append("</table>")
    if curves:
        for name, uri in _figures(curves).items():
            parts.append(f"<img alt='{name}' id='{name}' src='{uri}'>")
    if disagreements is not None:
        parts.append(html_section(disagreements, thumbnails=thumbnails))
    parts.append("</body></html>")
    Path(path).write_text("\n".join(parts), encoding="utf-8")
