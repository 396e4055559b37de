"""The A/B report: a self-contained HTML page with two plots (relative lift with CIs; SMD before/after CBPS)."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .analyze import AnalysisResult

LIFT_PLOT = "lift.png"
BALANCE_PLOT = "balance.png"


def _pct(value: float) -> str:
    return f"{value * 100:+.2f}%"


def plot_lifts(result: "AnalysisResult", path: Path) -> None:
    """Relative lift (%) per metric and method with its CI as an error bar; the zero line marks no effect."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = []
    for m in result.metrics:
        rows.append(
            (
                f"{m.metric}\n(difference in means)",
                m.estimate.relative_lift,
                m.estimate.relative_lift_ci.low,
                m.estimate.relative_lift_ci.high,
            )
        )
        if m.cuped is not None:
            rows.append(
                (
                    f"{m.metric}\n(CUPED)",
                    m.cuped.relative_lift,
                    m.cuped.relative_lift_ci.low,
                    m.cuped.relative_lift_ci.high,
                )
            )
    if result.observational is not None:
        for e in result.observational.effects:
            rows.append(
                (
                    f"{e.metric}\n(CBPS {e.estimand}, triggered)",
                    e.relative_lift,
                    e.relative_lift_ci_low,
                    e.relative_lift_ci_high,
                )
            )
    fig, ax = plt.subplots(figsize=(7, 0.7 * len(rows) + 1.2))
    ys = list(range(len(rows)))[::-1]
    for y, (_, mid, lo, hi) in zip(ys, rows):
        ax.errorbar(
            [mid * 100],
            [y],
            xerr=[[(mid - lo) * 100], [(hi - mid) * 100]],
            fmt="o",
            capsize=4,
            color="tab:blue" if lo > 0 or hi < 0 else "tab:gray",
        )
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(ys, [r[0] for r in rows], fontsize=8)
    ax.set_xlabel(f"relative lift, % ({1 - result.metrics[0].estimate.alpha:.0%} CI)")
    ax.set_title("Lift with confidence intervals")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_balance(result: "AnalysisResult", path: Path) -> None:
    """Love plot: |SMD| per covariate before and after CBPS weighting, with the balance threshold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    obs = result.observational
    assert obs is not None
    names = [b.covariate for b in obs.balance]
    ys = list(range(len(names)))[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(names) + 1.4))
    ax.scatter([abs(b.smd_before) for b in obs.balance], ys, marker="o", color="tab:red", label="before weighting")
    ax.scatter([abs(b.smd_after) for b in obs.balance], ys, marker="s", color="tab:green", label="after CBPS")
    ax.axvline(obs.smd_threshold, color="black", linestyle="--", linewidth=0.8, label=f"threshold {obs.smd_threshold}")
    ax.set_yticks(ys, names, fontsize=8)
    ax.set_xlabel("|standardized mean difference|")
    ax.set_title("Covariate balance: triggered vs not triggered")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_report(result: "AnalysisResult", out_dir: str | Path, *, title: str = "A/B analysis") -> Path:
    """Write lift.png, balance.png (when CBPS ran) and report.html into ``out_dir``; returns the HTML path."""
    out = Path(out_dir)
    plot_lifts(result, out / LIFT_PLOT)
    status = "PASSED" if result.passed else "FAILED: " + "; ".join(result.failures())
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p class='status'>{html.escape(status)}</p>",
        f"<p>{result.users_in} users in, {result.users_analysed} analysed, {result.errors} in errors.parquet.</p>",
        "<h2>Sample ratio</h2>",
        _table(
            ["treatment", "control", "expected share", "observed share", "chi-square", "p", "mismatch"],
            [
                [
                    str(result.srm.n_treatment),
                    str(result.srm.n_control),
                    f"{result.srm.expected_treatment_share:.4f}",
                    f"{result.srm.observed_treatment_share:.4f}",
                    f"{result.srm.chi_square:.3f}",
                    f"{result.srm.p_value:.3g}",
                    "YES" if result.srm.mismatch else "no",
                ]
            ],
        ),
        "<h2>Lift</h2>",
    ]
    rows = []
    for m in result.metrics:
        for est in [m.estimate] + ([m.cuped] if m.cuped else []):
            rows.append(
                [
                    m.metric,
                    est.method,
                    f"{est.mean_treatment:.5g}",
                    f"{est.mean_control:.5g}",
                    f"{est.difference:.4g} [{est.difference_ci.low:.4g}, {est.difference_ci.high:.4g}]",
                    f"{_pct(est.relative_lift)} [{_pct(est.relative_lift_ci.low)}, {_pct(est.relative_lift_ci.high)}]",
                    f"{est.p_value:.3g}",
                ]
            )
        if m.bootstrap:
            b = m.bootstrap
            rows.append(
                [
                    m.metric,
                    f"bootstrap check ({b.samples}x)",
                    "",
                    "",
                    f"[{b.difference_ci.low:.4g}, {b.difference_ci.high:.4g}]",
                    f"[{_pct(b.relative_lift_ci.low)}, {_pct(b.relative_lift_ci.high)}]",
                    "agrees" if b.agrees else "DISAGREES",
                ]
            )
        if m.cuped_adjustment:
            a = m.cuped_adjustment
            rows.append(
                [
                    m.metric,
                    f"CUPED on {a.covariate}",
                    "",
                    "",
                    f"theta {a.theta:.4g}",
                    f"variance -{a.variance_reduction:.1%}",
                    "",
                ]
            )
    parts.append(
        _table(
            ["metric", "method", "treatment mean", "control mean", "difference [CI]", "relative lift [CI]", "p"], rows
        )
    )
    parts.append(_img(out / LIFT_PLOT, "relative lift with confidence intervals"))
    pop = result.triggered_population
    if pop is not None:
        parts += [
            "<h2>Triggered users, both arms (randomized)</h2>",
            f"<p>The server logs its trigger decision in control without serving: {pop.n_treatment} treatment and "
            f"{pop.n_control} control users triggered (SRM p = {pop.srm.p_value:.3g}"
            f"{', MISMATCH: the trigger depends on the arm' if pop.srm.mismatch else ''}).</p>",
            _table(
                ["metric", "method", "treatment mean", "control mean", "difference [CI]", "relative lift [CI]", "p"],
                [
                    [
                        m.metric,
                        est.method,
                        f"{est.mean_treatment:.5g}",
                        f"{est.mean_control:.5g}",
                        f"{est.difference:.4g} [{est.difference_ci.low:.4g}, {est.difference_ci.high:.4g}]",
                        f"{_pct(est.relative_lift)} "
                        f"[{_pct(est.relative_lift_ci.low)}, {_pct(est.relative_lift_ci.high)}]",
                        f"{est.p_value:.3g}",
                    ]
                    for m in pop.metrics
                    for est in [m.cuped or m.estimate]
                ],
            ),
        ]
    obs = result.observational
    if obs is not None:
        plot_balance(result, out / BALANCE_PLOT)
        parts += [
            "<h2>CBPS covariate balance</h2>",
            f"<p>{html.escape(obs.comparison)}: {obs.n_triggered} triggered, {obs.n_not_triggered} not "
            f"(effective control size after weighting {obs.effective_control_size:.0f}); estimand "
            f"{obs.estimand}, {'over-identified GMM' if obs.over_identified else 'just-identified'}; balance "
            f"{'PASSED' if obs.balance_passed else 'FAILED'} (all |SMD| &lt; {obs.smd_threshold} required).</p>",
            _table(
                ["covariate", "SMD before", "SMD after"],
                [[b.covariate, f"{b.smd_before:+.3f}", f"{b.smd_after:+.4f}"] for b in obs.balance],
            ),
            _img(out / BALANCE_PLOT, "standardized mean differences before and after CBPS weighting"),
            _table(
                ["metric", "naive difference", f"CBPS {obs.estimand} [CI]", "relative [CI]"],
                [
                    [
                        e.metric,
                        f"{e.naive_difference:.4g}",
                        f"{e.difference:.4g} [{e.difference_ci_low:.4g}, {e.difference_ci_high:.4g}]",
                        f"{_pct(e.relative_lift)} [{_pct(e.relative_lift_ci_low)}, {_pct(e.relative_lift_ci_high)}]",
                    ]
                    for e in obs.effects
                ],
            ),
        ]
    if result.notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in result.notes) + "</ul>")
    style = (
        "body{font-family:sans-serif;max-width:960px;margin:2em auto}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}.status{font-weight:bold}"
    )
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body>{''.join(parts)}</body></html>"
    )
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
