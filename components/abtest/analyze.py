"""A/B analysis over exposure/outcome/covariate logs: per-metric lift with CIs, CUPED, SRM, and CBPS balance
for the non-randomized triggered-vs-not comparison. Writes result.json, report.html and errors.parquet.

Exposures are either one row per user (user_id, arm, optional triggered) or the index server's own
exposure log (a folder of ``exposures-*.parquet``, one row per request, components/abtest/exposure.py),
which is reduced to one row per user here: a user triggered if any request triggered. The server computes
and logs the trigger in control too (without serving), so a log also gives the randomized comparison of
triggered users across arms: the effect on the users restricted retrieval reaches."""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from silverset.components.common.errors import SilversetInputError
from silverset.components.common.tables import ErrorRow, write_errors

from . import cbps, lift
from .experiment import ARMS, CONTROL, TREATMENT

_LOGGER = logging.getLogger(__name__)

STAGE = "abtest"
RESULT_FILE = "result.json"
REPORT_FILE = "report.html"


class AnalysisOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    alpha: float = Field(0.05, gt=0.0, lt=1.0)
    treatment_share: float = Field(0.5, gt=0.0, lt=1.0, description="the configured split, for the SRM test")
    metrics: tuple[str, ...] | None = Field(None, description="outcome columns to analyse; default every numeric one")
    bootstrap_samples: int = Field(1000, ge=0, le=100_000, description="0 skips the bootstrap check")
    seed: int = 0
    srm_threshold: float = Field(0.001, gt=0.0, lt=1.0)
    cuped_prefix: str = Field("pre_", description="covariate '<prefix><metric>' is <metric>'s pre-period value")
    trigger_column: str = Field("triggered", description="exposure column marking users who got restricted retrieval")
    estimand: Literal["ATT", "ATE"] = "ATT"
    over_identified: bool = False
    smd_threshold: float = Field(0.1, gt=0.0)
    missing_outcome: Literal["drop", "zero"] = Field(
        "drop", description="exposed users without an outcome row: drop them (to errors.parquet) or count them as 0"
    )
    experiment_id: str | None = Field(
        None, description="exposure-log rows of this experiment only (required when the log holds several)"
    )


class MetricResult(BaseModel):
    metric: str
    estimate: lift.LiftEstimate
    bootstrap: lift.BootstrapCheck | None = None
    cuped: lift.LiftEstimate | None = None
    cuped_adjustment: lift.CupedAdjustment | None = None


class ObservationalResult(BaseModel):
    """CBPS-weighted comparison of users who triggered restricted retrieval vs those who did not (treatment arm)."""

    comparison: str
    estimand: str
    over_identified: bool
    converged: bool
    n_triggered: int
    n_not_triggered: int
    effective_control_size: float  # (sum w)^2 / sum w^2 over not-triggered users: small = poor overlap
    balance: list[cbps.CovariateBalance]
    max_abs_smd_before: float
    max_abs_smd_after: float
    smd_threshold: float
    balance_passed: bool
    effects: list[cbps.WeightedEffect]


class TriggeredPopulation(BaseModel):
    """Triggered users of both arms compared (randomized: the server logs the trigger in control without serving)."""

    n_treatment: int
    n_control: int
    srm: lift.SampleRatioCheck  # a trigger that depends on the arm shows up here
    metrics: list[MetricResult]


class AnalysisResult(BaseModel):
    users_in: int
    users_analysed: int
    errors: int
    srm: lift.SampleRatioCheck
    metrics: list[MetricResult]
    observational: ObservationalResult | None = None
    triggered_population: TriggeredPopulation | None = None
    control_served: int = 0  # control users the server served restricted results to (must be 0)
    notes: list[str] = []

    @property
    def passed(self) -> bool:
        return (
            not self.srm.mismatch
            and self.control_served == 0
            and (self.observational is None or self.observational.balance_passed)
        )

    def failures(self) -> list[str]:
        reasons = []
        if self.control_served:
            reasons.append(
                f"{self.control_served} control user(s) were served restricted retrieval: the server broke the split"
            )
        if self.srm.mismatch:
            reasons.append(
                f"sample ratio mismatch: {self.srm.n_treatment} treatment vs {self.srm.n_control} control "
                f"for a {self.srm.expected_treatment_share:.0%} split (chi-square p = {self.srm.p_value:.2g})"
            )
        if self.observational is not None and not self.observational.balance_passed:
            bad = [
                b.covariate for b in self.observational.balance if abs(b.smd_after) >= self.observational.smd_threshold
            ]
            reasons.append(
                f"CBPS balance: |SMD| >= {self.observational.smd_threshold} after weighting for {', '.join(bad)}"
            )
        return reasons


# ---------------------------------------------------------------------------------------------- log reading


def read_log(path: str | Path, name: str):
    """A log as a pandas DataFrame from Parquet (file or folder) or CSV; ``user_id`` is read as text."""
    import pandas as pd
    import pyarrow.csv as pacsv

    from silverset.components.common.tables import read_table

    label = f"{name} '{path}'"
    p = str(path)
    if p.endswith(".csv"):
        if not Path(p).exists():
            raise SilversetInputError(label, "file not found")
        try:
            table = pacsv.read_csv(p, convert_options=pacsv.ConvertOptions(column_types={"user_id": "string"}))
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for malformed CSV
            raise SilversetInputError(label, f"not a readable CSV: {exc}") from None
    else:
        table = read_table(p, name=label)
    frame: pd.DataFrame = table.to_pandas()
    if "user_id" not in frame.columns:
        raise SilversetInputError(label, "missing required column 'user_id'")
    if frame["user_id"].isna().any():
        raise SilversetInputError(label, f"column 'user_id' has {int(frame['user_id'].isna().sum())} null value(s)")
    frame["user_id"] = frame["user_id"].astype(str)
    return frame


def _examples(values) -> str:
    values = list(values)
    shown = ", ".join(repr(v) for v in values[:5])
    return shown + (f" and {len(values) - 5} more" if len(values) > 5 else "")


def check_exposures(frame, *, label: str = "exposures", trigger_column: str = "triggered"):
    """One row per user with arm in {control, treatment}; raises naming the problem otherwise."""
    if "arm" not in frame.columns:
        raise SilversetInputError(label, "missing required column 'arm'")
    arms = frame["arm"].astype(str)
    unknown = sorted(set(arms) - set(ARMS))
    if unknown or frame["arm"].isna().any():
        raise SilversetInputError(
            label, f"column 'arm' must be 'control' or 'treatment'; found {_examples(unknown or ['<null>'])}"
        )
    frame = frame.assign(arm=arms)
    arms_per_user = frame.groupby("user_id")["arm"].nunique()
    both = arms_per_user[arms_per_user > 1].index
    if len(both):
        raise SilversetInputError(
            label,
            f"{len(both)} user(s) exposed in both arms, e.g. {_examples(both)}: the split "
            "is broken (check the salt and the bucketing service)",
        )
    duplicated = frame["user_id"][frame["user_id"].duplicated()].unique()
    if len(duplicated):
        raise SilversetInputError(
            label,
            f"{len(duplicated)} duplicate exposure(s): expected one row per user (the first "
            f"exposure), e.g. {_examples(duplicated)}",
        )
    if trigger_column in frame.columns:
        values = frame[trigger_column]
        if values.isna().any() or not set(values.astype(object).unique()) <= {True, False, 0, 1}:
            raise SilversetInputError(label, f"column '{trigger_column}' must be true/false (or 1/0) for every user")
        frame = frame.assign(**{trigger_column: values.astype(bool)})
    return frame


def _check_unique(frame, label: str) -> None:
    duplicated = frame["user_id"][frame["user_id"].duplicated()].unique()
    if len(duplicated):
        raise SilversetInputError(
            label,
            f"{len(duplicated)} user(s) have more than one row, e.g. {_examples(duplicated)}; "
            "aggregate to one row per user first",
        )


def _numeric_columns(frame, label: str, wanted: tuple[str, ...] | None, *, exclude: tuple[str, ...] = ()) -> list[str]:
    import pandas as pd

    if wanted is not None:
        missing = [m for m in wanted if m not in frame.columns]
        if missing:
            raise SilversetInputError(label, f"missing required column(s) {_examples(missing)}")
        for m in wanted:
            if not (pd.api.types.is_numeric_dtype(frame[m]) or pd.api.types.is_bool_dtype(frame[m])):
                raise SilversetInputError(label, f"column '{m}' is {frame[m].dtype}, expected numbers")
        return list(wanted)
    columns = [
        c
        for c in frame.columns
        if c != "user_id"
        and c not in exclude
        and (pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c]))
    ]
    if not columns:
        raise SilversetInputError(label, "has no numeric metric columns besides 'user_id'")
    return columns


def is_exposure_log(path: str | Path) -> bool:
    """True for a folder holding the index server's exposure files."""
    from .exposure import exposure_files

    return Path(path).is_dir() and bool(exposure_files(path))


def user_exposures(table, *, label: str = "exposures", experiment_id: str | None = None):
    """The server's per-request exposure rows (``EXPOSURE_SCHEMA``) as one row per user, a pandas DataFrame.

    Columns: user_id, arm, triggered (any request triggered), served (any request served), affinity (of the
    first request), requests. Refuses an empty log, a log of several experiments without ``experiment_id``,
    and users seen in both arms.
    """
    frame = table.to_pandas()
    ids = sorted(frame["experiment_id"].unique())
    if experiment_id is not None:
        frame = frame[frame["experiment_id"] == experiment_id]
        if frame.empty:
            raise SilversetInputError(label, f"has no rows of experiment {experiment_id!r} (found {_examples(ids)})")
    elif len(ids) > 1:
        raise SilversetInputError(
            label, f"holds {len(ids)} experiments ({_examples(ids)}); choose one with --experiment-id"
        )
    if frame.empty:
        raise SilversetInputError(label, "has no exposure rows yet")
    frame = frame.sort_values(["ts", "request_id"], kind="stable")
    check_exposures(frame[["user_id", "arm"]].drop_duplicates(), label=label, trigger_column="-")
    grouped = frame.groupby("user_id", sort=False)
    users = grouped.agg(
        arm=("arm", "first"),
        triggered=("triggered", "any"),
        served=("served", "any"),
        affinity=("affinity", "first"),
        requests=("request_id", "size"),
    ).reset_index()
    users["user_id"] = users["user_id"].astype(str)
    return users


# ---------------------------------------------------------------------------------------------- analysis


def analyze_arrays(
    *,
    treatment: np.ndarray,
    outcomes: dict[str, np.ndarray],
    covariates: dict[str, np.ndarray] | None = None,
    triggered: np.ndarray | None = None,
    options: AnalysisOptions = AnalysisOptions(),
    users_in: int | None = None,
    errors: int = 0,
    trigger_logged_in_control: bool = False,
    control_served: int = 0,
) -> AnalysisResult:
    """The analysis on per-user arrays, all length n: ``treatment`` bool [n], outcomes metric -> float [n],
    covariates name -> float [n] (pre-period metrics named '<cuped_prefix><metric>'), ``triggered`` bool [n].

    ``trigger_logged_in_control``: ``triggered`` is the trigger decision in both arms (the server's log), so
    triggered users are also compared across arms; otherwise it is true in treatment only."""
    tr = np.asarray(treatment, dtype=bool)
    n_t, n_c = int(tr.sum()), int((~tr).sum())
    if n_t < 2 or n_c < 2:
        raise SilversetInputError(
            "exposures", f"each arm needs at least 2 analysable users; got {n_t} treatment, {n_c} control"
        )
    srm = lift.sample_ratio_mismatch(
        n_treatment=n_t, n_control=n_c, treatment_share=options.treatment_share, threshold=options.srm_threshold
    )
    covariates = covariates or {}
    notes: list[str] = []
    metric_results = _metric_results(tr, np.ones(len(tr), dtype=bool), outcomes, covariates, options)
    population = None
    if triggered is not None and trigger_logged_in_control:
        trig = np.asarray(triggered, dtype=bool)
        n_tt, n_tc = int((trig & tr).sum()), int((trig & ~tr).sum())
        if n_tt >= 2 and n_tc >= 2:
            population = TriggeredPopulation(
                n_treatment=n_tt,
                n_control=n_tc,
                metrics=_metric_results(tr, trig, outcomes, covariates, options),
                srm=lift.sample_ratio_mismatch(
                    n_treatment=n_tt,
                    n_control=n_tc,
                    treatment_share=options.treatment_share,
                    threshold=options.srm_threshold,
                ),
            )
        else:
            notes.append(
                f"triggered-population comparison skipped: {n_tt} treatment and {n_tc} control users triggered"
            )

    observational = None
    if triggered is None:
        notes.append(f"no '{options.trigger_column}' column in the exposures: CBPS comparison skipped")
    elif not covariates:
        notes.append("no covariates given: CBPS comparison skipped")
    else:
        observational = _cbps_comparison(tr, np.asarray(triggered, dtype=bool), outcomes, covariates, options, notes)
    return AnalysisResult(
        users_in=users_in if users_in is not None else len(tr),
        users_analysed=len(tr),
        errors=errors,
        srm=srm,
        metrics=metric_results,
        observational=observational,
        triggered_population=population,
        control_served=control_served,
        notes=notes,
    )


def _metric_results(
    tr: np.ndarray, keep: np.ndarray, outcomes, covariates, options: AnalysisOptions
) -> list[MetricResult]:
    """Per-metric lift (+ bootstrap check, + CUPED on '<cuped_prefix><metric>') over the users in ``keep``."""
    results = []
    t, c = tr & keep, ~tr & keep
    for i, (metric, values) in enumerate(outcomes.items()):
        y = np.asarray(values, dtype=np.float64)
        estimate = lift.difference_in_means(y[t], y[c], metric=metric, alpha=options.alpha)
        result = MetricResult(metric=metric, estimate=estimate)
        if options.bootstrap_samples:
            result.bootstrap = lift.bootstrap_check(
                y[t], y[c], estimate, samples=options.bootstrap_samples, seed=options.seed + i
            )
        pre_name = f"{options.cuped_prefix}{metric}"
        if pre_name in covariates:
            x = np.asarray(covariates[pre_name], dtype=np.float64)
            result.cuped, result.cuped_adjustment = lift.cuped(
                y[t], y[c], x[t], x[c], metric=metric, covariate=pre_name, alpha=options.alpha
            )
        results.append(result)
    return results


def _cbps_comparison(
    tr, triggered, outcomes, covariates, options: AnalysisOptions, notes: list[str]
) -> ObservationalResult | None:
    names = list(covariates)
    x = np.column_stack([np.asarray(covariates[k], dtype=np.float64) for k in names])[tr]
    t = triggered[tr]
    if t.sum() < 2 or (~t).sum() < 2:
        notes.append(
            f"CBPS comparison skipped: {int(t.sum())} triggered and {int((~t).sum())} not-triggered treatment users"
        )
        return None
    fitted = cbps.fit(x, t, names=names, estimand=options.estimand, over_identified=options.over_identified)
    effects = [
        cbps.weighted_effect(fitted, x, t, np.asarray(y, dtype=np.float64)[tr], metric=m, alpha=options.alpha)
        for m, y in outcomes.items()
    ]
    max_after = fitted.max_abs_smd()
    return ObservationalResult(
        comparison=f"treatment-arm users with {options.trigger_column} vs without (non-randomized)",
        estimand=options.estimand,
        over_identified=options.over_identified,
        converged=fitted.converged,
        n_triggered=int(t.sum()),
        n_not_triggered=int((~t).sum()),
        effective_control_size=float(fitted.weights[~t].sum() ** 2 / np.sum(fitted.weights[~t] ** 2)),
        balance=fitted.balance,
        max_abs_smd_before=max((abs(b.smd_before) for b in fitted.balance), default=0.0),
        max_abs_smd_after=max_after,
        smd_threshold=options.smd_threshold,
        balance_passed=bool(fitted.converged and max_after < options.smd_threshold),
        effects=effects,
    )


def run(
    *,
    exposures: str | Path,
    outcomes: str | Path,
    out_dir: str | Path,
    covariates: str | Path | None = None,
    options: AnalysisOptions = AnalysisOptions(),
) -> AnalysisSummary:
    """Analyse logs into ``out_dir`` (result.json, report.html, lift.png, balance.png, errors.parquet).

    Exposures: one row per user (user_id, arm, optional triggered), or the index server's exposure-log
    folder (reduced by ``user_exposures``). Outcomes: user_id + numeric metrics, one row per user; without
    ``covariates``, its '<cuped_prefix>*' columns are the pre-period covariates. Covariates: user_id +
    numeric pre-period values. Outcome rows of users never exposed, and
    exposed users lacking outcomes (with ``missing_outcome='drop'``) or covariates, go to errors.parquet:
    exposed users + orphan outcome rows == analysed users + errors. Returns a small summary; the result's
    gates (SRM, balance) are in ``summary.passed`` and ``summary.failures``.
    """
    from .report import write_report

    started = time.perf_counter()
    from_log = is_exposure_log(exposures)
    if from_log:
        from .exposure import read_exposures

        exp = user_exposures(
            read_exposures(exposures), label=f"exposures '{exposures}'", experiment_id=options.experiment_id
        )
        exp = (
            exp.rename(columns={"triggered": options.trigger_column}) if options.trigger_column != "triggered" else exp
        )
    else:
        exp = check_exposures(read_log(exposures, "exposures"), trigger_column=options.trigger_column)
    out_frame = read_log(outcomes, "outcomes")
    _check_unique(out_frame, f"outcomes '{outcomes}'")
    inline_covariates: list[str] = []
    if covariates is None:
        inline_covariates = [
            c for c in _numeric_columns(out_frame, f"outcomes '{outcomes}'", None) if c.startswith(options.cuped_prefix)
        ]
    metrics = _numeric_columns(out_frame, f"outcomes '{outcomes}'", options.metrics, exclude=tuple(inline_covariates))
    error_rows: list[ErrorRow] = []

    exposed = set(exp["user_id"])
    orphans = out_frame[~out_frame["user_id"].isin(exposed)]
    error_rows += [
        ErrorRow(
            key=u,
            stage=STAGE,
            error_type="not_exposed",
            uri=str(outcomes),
            message="outcome row for a user with no exposure record",
        )
        for u in orphans["user_id"]
    ]
    merged = exp.merge(out_frame[["user_id", *metrics, *inline_covariates]], on="user_id", how="left")
    bad_outcome = merged[metrics].isna().any(axis=1)
    if options.missing_outcome == "zero":
        no_row = ~merged["user_id"].isin(set(out_frame["user_id"]))
        merged.loc[no_row, metrics] = 0.0
        bad_outcome = merged[metrics].isna().any(axis=1)
    error_rows += [
        ErrorRow(
            key=u,
            stage=STAGE,
            error_type="missing_outcome",
            uri=str(outcomes),
            message=f"no value for metric(s) {', '.join(metrics)}",
        )
        for u in merged.loc[bad_outcome, "user_id"]
    ]
    merged = merged[~bad_outcome]

    cov_names: list[str] = list(inline_covariates)
    if inline_covariates:
        bad_cov = merged[cov_names].isna().any(axis=1)
        error_rows += [
            ErrorRow(
                key=u,
                stage=STAGE,
                error_type="missing_covariates",
                uri=str(outcomes),
                message="a null pre-period covariate for an exposed user",
            )
            for u in merged.loc[bad_cov, "user_id"]
        ]
        merged = merged[~bad_cov]
    if covariates is not None:
        cov_frame = read_log(covariates, "covariates")
        _check_unique(cov_frame, f"covariates '{covariates}'")
        cov_names = _numeric_columns(cov_frame, f"covariates '{covariates}'", None)
        merged = merged.merge(cov_frame[["user_id", *cov_names]], on="user_id", how="left")
        bad_cov = merged[cov_names].isna().any(axis=1)
        error_rows += [
            ErrorRow(
                key=u,
                stage=STAGE,
                error_type="missing_covariates",
                uri=str(covariates),
                message="no covariate row (or a null covariate) for an exposed user",
            )
            for u in merged.loc[bad_cov, "user_id"]
        ]
        merged = merged[~bad_cov]

    _LOGGER.info("abtest: %d exposed users, metrics %s, %d covariates", len(exp), ", ".join(metrics), len(cov_names))
    if error_rows:
        reasons = Counter(e.error_type for e in error_rows)
        _LOGGER.warning(
            "abtest: %d user row(s) left out of the analysis and written to the errors table (%s); first: %s",
            len(error_rows),
            ", ".join(f"{k} {n}" for k, n in sorted(reasons.items())),
            ", ".join(str(e.key) for e in error_rows[:5]),
        )
    treatment = (merged["arm"] == TREATMENT).to_numpy()
    result = analyze_arrays(
        treatment=treatment,
        outcomes={m: merged[m].to_numpy(dtype=np.float64) for m in metrics},
        covariates={c: merged[c].to_numpy(dtype=np.float64) for c in cov_names},
        triggered=merged[options.trigger_column].to_numpy() if options.trigger_column in merged.columns else None,
        options=options,
        users_in=len(exp) + len(orphans),
        errors=len(error_rows),
        trigger_logged_in_control=from_log,
        control_served=int(((exp["arm"] == CONTROL) & exp["served"]).sum()) if from_log else 0,
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_errors(out, error_rows)
    (out / RESULT_FILE).write_text(json.dumps(result.model_dump(mode="json"), indent=2) + "\n", encoding="utf-8")
    write_report(result, out)
    summary = summarize(result, out)
    for note in result.notes:
        _LOGGER.info("abtest: %s", note)
    if not result.passed:
        _LOGGER.warning("abtest: the analysis's checks failed: %s", "; ".join(summary.failures))
    _LOGGER.info(
        "abtest: %d of %d users analysed, %d errors, SRM p %.3g, checks %s, in %.1f s; report %s",
        result.users_analysed,
        result.users_in,
        result.errors,
        result.srm.p_value,
        "passed" if result.passed else "failed",
        time.perf_counter() - started,
        summary.report,
    )
    return summary


class LiftSummary(BaseModel):
    """One metric's lift (its CUPED estimate when there is one): relative and absolute, with 95% CIs."""

    model_config = ConfigDict(frozen=True)

    relative_lift: float
    ci: tuple[float, float]  # of the relative lift
    difference: float
    difference_ci: tuple[float, float]
    method: str
    p_value: float | None = None


class TriggeredUsers(BaseModel):
    model_config = ConfigDict(frozen=True)

    treatment: int
    control: int
    srm_p_value: float


class AnalysisSummary(BaseModel):
    """What ``run`` wrote and the few numbers the demo, the pipeline and the CLI print (result.json has it all)."""

    model_config = ConfigDict(frozen=True)

    users_in: int
    users_analysed: int
    errors: int  # users_in == users_analysed + errors
    srm_p_value: float
    srm_mismatch: bool
    lifts: dict[str, LiftSummary]  # metric -> intent-to-treat lift
    passed: bool  # the analysis's own checks (SRM, balance, control never served)
    failures: list[str]
    result: str  # result.json
    report: str  # report.html
    control_served: int = 0  # control users the server served (exposure logs only): must be 0
    triggered_users: TriggeredUsers | None = None  # with a trigger column: the triggered population
    triggered_lifts: dict[str, LiftSummary] = Field(default_factory=dict)
    cbps_max_abs_smd_before: float | None = None  # with covariates: balance before/after CBPS weighting
    cbps_max_abs_smd_after: float | None = None
    cbps_balance_passed: bool | None = None


def _lift_summary(m: MetricResult) -> LiftSummary:
    est = m.cuped or m.estimate
    return LiftSummary(
        relative_lift=est.relative_lift,
        ci=(est.relative_lift_ci.low, est.relative_lift_ci.high),
        difference=est.difference,
        difference_ci=(est.difference_ci.low, est.difference_ci.high),
        method=est.method,
        p_value=est.p_value,
    )


def summarize(result: AnalysisResult, out_dir: str | Path) -> AnalysisSummary:
    """The few numbers the demo and the pipeline print."""
    fields: dict = {}
    if result.triggered_population is not None:
        pop = result.triggered_population
        fields["triggered_users"] = TriggeredUsers(
            treatment=pop.n_treatment, control=pop.n_control, srm_p_value=pop.srm.p_value
        )
        fields["triggered_lifts"] = {m.metric: _lift_summary(m) for m in pop.metrics}
    if result.observational is not None:
        fields["cbps_max_abs_smd_before"] = result.observational.max_abs_smd_before
        fields["cbps_max_abs_smd_after"] = result.observational.max_abs_smd_after
        fields["cbps_balance_passed"] = result.observational.balance_passed
    return AnalysisSummary(
        users_in=result.users_in,
        users_analysed=result.users_analysed,
        errors=result.errors,
        srm_p_value=result.srm.p_value,
        srm_mismatch=result.srm.mismatch,
        lifts={m.metric: _lift_summary(m) for m in result.metrics},
        passed=result.passed,
        failures=result.failures(),
        result=str(Path(out_dir) / RESULT_FILE),
        report=str(Path(out_dir) / REPORT_FILE),
        control_served=result.control_served,
        **fields,
    )


__all__ = [
    "AnalysisOptions",
    "AnalysisResult",
    "AnalysisSummary",
    "analyze_arrays",
    "run",
    "summarize",
    "read_log",
    "check_exposures",
    "is_exposure_log",
    "user_exposures",
    "CONTROL",
    "TREATMENT",
]
