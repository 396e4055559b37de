"""A running experiment at a glance from the exposure log: counts per arm, SRM, trigger shares, interim lifts.

Read while the test runs (``silverset abtest status``): only finalized exposure files are read, so a
status taken mid-write is consistent, merely a little behind. Interim lifts are plain differences in
means with unadjusted CIs; looking at them repeatedly inflates false positives, so the decision is
``abtest analyze`` at the planned sample size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict

from silverset.components.common.errors import SilversetInputError

from .experiment import ARMS, CONTROL, TREATMENT, ExperimentConfig, load_experiment
from .lift import LiftEstimate, SampleRatioCheck, difference_in_means, sample_ratio_mismatch


class ArmStatus(BaseModel):
    model_config = ConfigDict(frozen=True)

    requests: int
    users: int
    triggered_users: int
    triggered_share: float | None  # triggered users / users; None before any user
    served_users: int


class ExperimentStatus(BaseModel):
    """What ``status`` reports. ``healthy`` is false on a sample ratio mismatch, a control user served, or arms
    that disagree with the experiment's hash (a server running another config)."""

    model_config = ConfigDict(frozen=True)

    experiment_id: str
    attribute: str
    expected_treatment_share: float
    exposure_files: int
    other_experiment_rows: int  # rows of other experiments in the same folder, ignored
    arms: dict[str, ArmStatus]
    srm: SampleRatioCheck | None  # None before both arms have users
    control_served_users: int
    arm_mismatch_users: int  # users logged in an arm their hash does not give
    users_in_both_arms: int  # users logged in both arms (left out of the per-arm counts and lifts)
    trigger_sources: dict[str, int]  # requests decided by "rule" / "model"
    index_versions: list[str]
    first_ts: str | None
    last_ts: str | None
    lifts: dict[str, LiftEstimate] = {}  # all exposed users with outcomes (intention to treat)
    triggered_lifts: dict[str, LiftEstimate] = {}  # triggered users of both arms (control's trigger is logged too)
    users_without_outcomes: int = 0
    notes: list[str] = []

    @property
    def healthy(self) -> bool:
        return (
            not (self.srm is not None and self.srm.mismatch)
            and self.control_served_users == 0
            and self.arm_mismatch_users == 0
            and self.users_in_both_arms == 0
        )

    def problems(self) -> list[str]:
        found = []
        if self.srm is not None and self.srm.mismatch:
            found.append(
                f"sample ratio mismatch: {self.srm.n_treatment} treatment vs {self.srm.n_control} control users for "
                f"a {self.expected_treatment_share:.0%} split (chi-square p = {self.srm.p_value:.2g})"
            )
        if self.control_served_users:
            found.append(f"{self.control_served_users} control user(s) were served restricted retrieval")
        if self.users_in_both_arms:
            found.append(f"{self.users_in_both_arms} user(s) logged in both arms (two configs serving at once?)")
        if self.arm_mismatch_users:
            found.append(f"{self.arm_mismatch_users} user(s) logged in an arm the experiment's salt does not give them")
        return found


def status(
    exposure_dir: str | Path,
    experiment: ExperimentConfig | str | Path,
    *,
    outcomes: str | Path | None = None,
    metrics: tuple[str, ...] | None = None,
    alpha: float = 0.05,
) -> dict:
    """Status of ``experiment`` from the exposure log in ``exposure_dir`` (and an optional outcomes table).

    Users are counted once (their arm, triggered/served if any request was). Outcomes: user_id plus one
    numeric column per metric (``metrics`` chooses; default all numeric columns not starting with ``pre_``).
    Returns ``ExperimentStatus.model_dump(mode="json")`` plus ``healthy`` and ``problems``.
    """
    result = experiment_status(exposure_dir, experiment, outcomes=outcomes, metrics=metrics, alpha=alpha)
    return {**result.model_dump(mode="json"), "healthy": result.healthy, "problems": result.problems()}


def experiment_status(
    exposure_dir: str | Path,
    experiment: ExperimentConfig | str | Path,
    *,
    outcomes: str | Path | None = None,
    metrics: tuple[str, ...] | None = None,
    alpha: float = 0.05,
) -> ExperimentStatus:
    """The typed form of ``status``."""
    from .analyze import read_log, user_exposures
    from .exposure import exposure_files, read_exposures

    config = experiment if isinstance(experiment, ExperimentConfig) else load_experiment(experiment)
    label = f"exposures '{exposure_dir}'"
    table = read_exposures(exposure_dir)
    frame = table.to_pandas()
    mine = frame[frame["experiment_id"] == config.experiment_id]
    notes: list[str] = []
    arms_per_user = mine.groupby("user_id")["arm"].nunique()
    in_both = set(arms_per_user[arms_per_user > 1].index)
    if in_both:  # reported as a problem; the per-user reduction below refuses such users, so leave them out
        mine = mine[~mine["user_id"].isin(in_both)]
        table = table.filter(pa.array(~frame["user_id"].isin(in_both).to_numpy()))
    if len(mine) == 0:
        notes.append(f"no exposures of experiment {config.experiment_id!r} yet")
        users = None
    else:
        users = user_exposures(table, label=label, experiment_id=config.experiment_id)
    arms = {}
    for arm in ARMS:
        rows = mine[mine["arm"] == arm]
        members = users[users["arm"] == arm] if users is not None else None
        n = 0 if members is None else len(members)
        triggered = 0 if members is None else int(members["triggered"].sum())
        arms[arm] = ArmStatus(
            requests=len(rows),
            users=n,
            triggered_users=triggered,
            triggered_share=triggered / n if n else None,
            served_users=0 if members is None else int(members["served"].sum()),
        )
    srm = None
    if arms[TREATMENT].users and arms[CONTROL].users:
        srm = sample_ratio_mismatch(
            n_treatment=arms[TREATMENT].users, n_control=arms[CONTROL].users, treatment_share=config.treatment_share
        )
    mismatched = 0
    if users is not None:
        expected = np.array([config.arm_of(u) for u in users["user_id"]])
        mismatched = int((expected != users["arm"].to_numpy()).sum())
    status_fields = dict(
        experiment_id=config.experiment_id,
        attribute=config.attribute,
        expected_treatment_share=config.treatment_share,
        exposure_files=len(exposure_files(exposure_dir)),
        other_experiment_rows=len(frame) - len(mine),
        arms=arms,
        srm=srm,
        control_served_users=arms[CONTROL].served_users,
        arm_mismatch_users=mismatched,
        users_in_both_arms=len(in_both),
        trigger_sources={str(k): int(v) for k, v in mine["trigger_source"].value_counts().items()},
        index_versions=sorted(mine["index_version"].unique().tolist()),
        first_ts=mine["ts"].min().isoformat() if len(mine) else None,
        last_ts=mine["ts"].max().isoformat() if len(mine) else None,
    )
    if outcomes is None or users is None:
        if outcomes is not None:
            notes.append("outcomes given but no exposures yet: no lifts")
        return ExperimentStatus(**status_fields, notes=notes)

    table_out = read_log(outcomes, "outcomes")
    if table_out["user_id"].duplicated().any():
        raise SilversetInputError(f"outcomes '{outcomes}'", "expected one row per user_id")
    wanted = _metric_columns(table_out, metrics, label=f"outcomes '{outcomes}'")
    merged = users.merge(table_out[["user_id", *wanted]], on="user_id", how="inner")
    lifts, triggered_lifts = {}, {}
    for metric in wanted:
        rows = merged[merged[metric].notna()]
        lift = _lift(rows, metric, alpha, notes, population="exposed")
        if lift is not None:
            lifts[metric] = lift
        lift = _lift(rows[rows["triggered"]], metric, alpha, notes, population="triggered")
        if lift is not None:
            triggered_lifts[metric] = lift
    notes.append("interim lifts: unadjusted CIs, not corrected for repeated looks; decide with 'abtest analyze'")
    return ExperimentStatus(
        **status_fields,
        lifts=lifts,
        triggered_lifts=triggered_lifts,
        users_without_outcomes=len(users) - len(merged),
        notes=notes,
    )


def _metric_columns(frame, metrics: tuple[str, ...] | None, *, label: str) -> list[str]:
    numeric = [c for c in frame.columns if c != "user_id" and np.issubdtype(frame[c].dtype, np.number)]
    if metrics:
        missing = [m for m in metrics if m not in numeric]
        if missing:
            raise SilversetInputError(label, f"no numeric column {', '.join(map(repr, missing))} (numeric: {numeric})")
        return list(metrics)
    chosen = [c for c in numeric if not c.startswith("pre_")]
    if not chosen:
        raise SilversetInputError(label, "has no numeric metric column besides user_id and pre_* covariates")
    return chosen


def _lift(rows, metric: str, alpha: float, notes: list[str], *, population: str) -> LiftEstimate | None:
    t = rows.loc[rows["arm"] == TREATMENT, metric].to_numpy(dtype=np.float64)
    c = rows.loc[rows["arm"] == CONTROL, metric].to_numpy(dtype=np.float64)
    if len(t) < 2 or len(c) < 2:
        notes.append(f"{metric} ({population}): too few users for a lift ({len(t)} treatment, {len(c)} control)")
        return None
    return difference_in_means(t, c, metric=metric, alpha=alpha, method=f"difference in means, {population} users")
