"""Training the learned trigger (``silverset affinity train``): logistic regression on history features,
its held-out AUC against the rule's score, and the decision threshold.

Inputs: users from the index server's exposure log, their outcomes table (an engagement label column and
a ``history`` list column of video ids, oldest first) and the student's scores of those videos. The model
predicts the label from ``affinity.history_features``; the rule's score is the spec's affinity (share of
history videos >= the vocabulary's ``min_probability``, or their mean score).

Threshold: equal reach. The model triggers the same share of users as the rule does at the spec's
``serving.trigger_threshold`` (its quantile over the training users' model probabilities), so a lift
comparison of the two triggers compares whom they reach, not how many.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from silverset.components.common.errors import SilversetInputError
from silverset.components.common.spec import AttributeSpec, load_spec

from .affinity import DEFAULT_HALF_LIFE, FEATURE_NAMES, AffinityModel, history_features

_LOGGER = logging.getLogger(__name__)


STAGE = "affinity_train"


class TrainOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    label: str = Field("attribute_engagement", description="outcome column: 1 = the user engaged with the attribute")
    arm: str = Field(
        "control",
        pattern="^(control|treatment|all)$",
        description="users whose label trains the model; control's was not changed by serving",
    )
    test_share: float = Field(0.3, gt=0.0, lt=1.0)
    bootstrap_samples: int = Field(1000, ge=100, le=100_000)
    half_life: float = Field(DEFAULT_HALF_LIFE, gt=0.0)
    l2: float = Field(1.0, gt=0.0, description="inverse regularization strength C of the logistic regression")
    seed: int = 0


class AucReport(BaseModel):
    """Held-out AUCs with percentile-bootstrap CIs (users resampled, the same resamples for both scores)."""

    model: float
    model_ci: tuple[float, float]
    rule: float
    rule_ci: tuple[float, float]
    difference: float
    difference_ci: tuple[float, float]
    test_users: int
    test_positives: int


def score_lookup(scores, *, attribute: str | None, label: str) -> dict[str, float]:
    """video_id -> student probability from a scores table (or an index's history.parquet) as pandas."""
    for column in ("video_id", "probability"):
        if column not in scores.columns:
            raise SilversetInputError(label, f"missing required column '{column}'")
    if attribute is not None and "attribute" in scores.columns:
        scores = scores[scores["attribute"] == attribute]
        if scores.empty:
            raise SilversetInputError(label, f"has no scores of attribute '{attribute}'")
    if scores["video_id"].duplicated().any():
        raise SilversetInputError(label, "has more than one score per video; pass one attribute version's scores")
    return dict(zip(scores["video_id"].astype(str), scores["probability"].astype(np.float64)))


def feature_matrix(
    histories, lookup: dict[str, float], *, min_probability: float, affinity: str, half_life: float = DEFAULT_HALF_LIFE
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features float [n, F], rule score float [n], known history length int [n]) for lists of video ids.

    Unknown videos are skipped, as the server skips them."""
    feats, rule, known = [], [], []
    for history in histories:
        p = np.array([lookup[v] for v in (history if history is not None else []) if v in lookup], dtype=np.float64)
        feats.append(history_features(p, min_probability, half_life=half_life))
        if not p.size:
            rule.append(0.0)
        else:
            rule.append(float(np.mean(p >= min_probability)) if affinity == "share" else float(p.mean()))
        known.append(p.size)
    return np.vstack(feats) if feats else np.zeros((0, len(FEATURE_NAMES))), np.array(rule), np.array(known)


def paired_auc(y: np.ndarray, model_score: np.ndarray, rule_score: np.ndarray, *, samples: int, seed: int) -> AucReport:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    n = len(y)
    stats = []
    for _ in range(samples):
        idx = rng.integers(0, n, n)
        if y[idx].min() == y[idx].max():
            continue
        a, b = roc_auc_score(y[idx], model_score[idx]), roc_auc_score(y[idx], rule_score[idx])
        stats.append((a, b, a - b))
    lo, hi = np.percentile(np.array(stats), [2.5, 97.5], axis=0)
    m, r = roc_auc_score(y, model_score), roc_auc_score(y, rule_score)
    return AucReport(
        model=m,
        model_ci=(lo[0], hi[0]),
        rule=r,
        rule_ci=(lo[1], hi[1]),
        difference=m - r,
        difference_ci=(lo[2], hi[2]),
        test_users=n,
        test_positives=int(y.sum()),
    )


def fit(
    x: np.ndarray, y: np.ndarray, rule: np.ndarray, *, spec: AttributeSpec, options: TrainOptions = TrainOptions()
) -> tuple[AffinityModel, AucReport]:
    """Fit on a stratified train split, report held-out AUC vs the rule, pick the equal-reach threshold."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    if len(y) < 20 or y.min() == y.max() or min(y.sum(), (1 - y).sum()) < 5:
        raise SilversetInputError(
            "training users",
            f"need at least 20 users with both labels (5 of each); got {len(y)} users, {int(y.sum())} positive",
        )
    train, test = train_test_split(
        np.arange(len(y)), test_size=options.test_share, stratify=y, random_state=options.seed
    )
    mean = x[train].mean(axis=0)
    scale = x[train].std(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    clf = LogisticRegression(C=options.l2, max_iter=1000).fit((x[train] - mean) / scale, y[train])
    model = AffinityModel(
        coefficients=tuple(float(c) for c in clf.coef_[0]),
        intercept=float(clf.intercept_[0]),
        scaler_mean=tuple(map(float, mean)),
        scaler_scale=tuple(map(float, scale)),
        threshold=0.5,
        half_life=options.half_life,
    )
    auc = paired_auc(
        y[test], model.probabilities(x[test]), rule[test], samples=options.bootstrap_samples, seed=options.seed
    )
    reach = float(np.mean(rule >= spec.serving.trigger_threshold))
    probs = model.probabilities(x)
    threshold = float(np.quantile(probs, 1 - reach)) if 0 < reach < 1 else (1.0 if reach == 0 else 0.0)
    training = {
        "users": int(len(y)),
        "train_users": int(len(train)),
        "test_users": int(len(test)),
        "positives": int(y.sum()),
        "label": options.label,
        "arm": options.arm,
        "attribute": spec.name,
        "attribute_version": spec.version,
        "min_probability": spec.vocabulary.min_probability,
        "rule": spec.serving.affinity,
        "rule_trigger_threshold": spec.serving.trigger_threshold,
        "threshold_rule": "equal reach: the model triggers "
        "the share of users the rule triggers at serving.trigger_threshold",
        "reach": reach,
        "auc": auc.model_dump(mode="json"),
        "seed": options.seed,
    }
    model = AffinityModel(
        coefficients=model.coefficients,
        intercept=model.intercept,
        scaler_mean=model.scaler_mean,
        scaler_scale=model.scaler_scale,
        threshold=min(max(threshold, 0.0), 1.0),
        half_life=options.half_life,
        training=training,
    )
    return model, auc


class AffinityTrainSummary(BaseModel):
    """The trained model's record (also in the model file's ``training``), its threshold, and what was left out."""

    model_config = ConfigDict(frozen=True)

    users: int  # training users (logged users with a label and a known history video)
    train_users: int
    test_users: int
    positives: int
    label: str
    arm: str
    attribute: str
    attribute_version: int
    min_probability: float
    rule: str  # the spec's affinity: share | mean_score
    rule_trigger_threshold: float
    threshold_rule: str
    reach: float  # share of users the rule triggers (the model triggers the same share)
    auc: AucReport
    seed: int
    threshold: float  # the model's decision threshold
    errors: int  # logged users left out (no label, no known history video)
    errors_table: str
    model_path: str


def run(
    *,
    exposures: str | Path,
    outcomes: str | Path,
    scores: str | Path,
    attribute_spec: AttributeSpec | str | Path,
    model_path: str | Path,
    options: TrainOptions = TrainOptions(),
    experiment_id: str | None = None,
) -> AffinityTrainSummary:
    """Train from files and write the model JSON to ``model_path`` (left-out users beside it, .errors.parquet)."""
    from silverset.components.common.tables import ErrorRow, errors_table, read_table, write_table

    from .analyze import _check_unique, is_exposure_log, read_log, user_exposures
    from .exposure import read_exposures

    spec = attribute_spec if isinstance(attribute_spec, AttributeSpec) else load_spec(attribute_spec)
    out = model_path
    if not is_exposure_log(exposures):
        raise SilversetInputError(f"exposures '{exposures}'", "is not an exposure-log folder (exposures-*.parquet)")
    users = user_exposures(read_exposures(exposures), label=f"exposures '{exposures}'", experiment_id=experiment_id)
    if options.arm != "all":
        users = users[users["arm"] == options.arm]
    out_frame = read_log(outcomes, "outcomes")
    _check_unique(out_frame, f"outcomes '{outcomes}'")
    for column in (options.label, "history"):
        if column not in out_frame.columns:
            raise SilversetInputError(
                f"outcomes '{outcomes}'",
                f"missing required column '{column}'"
                + (" (the user's history: a list of video ids, oldest first)" if column == "history" else ""),
            )
    merged = users.merge(out_frame[["user_id", options.label, "history"]], on="user_id", how="left")
    no_label = merged[options.label].isna()
    errors = [
        ErrorRow(
            key=u,
            stage=STAGE,
            error_type="missing_label",
            uri=str(outcomes),
            message=f"no '{options.label}' value for a logged user",
        )
        for u in merged.loc[no_label, "user_id"]
    ]
    merged = merged[~no_label]
    labels = merged[options.label].to_numpy()
    if not set(np.unique(labels)) <= {0, 1, True, False}:
        raise SilversetInputError(f"outcomes '{outcomes}'", f"column '{options.label}' must be 0/1")
    lookup = score_lookup(read_table(scores).to_pandas(), attribute=spec.name, label=f"scores '{scores}'")
    x, rule, known = feature_matrix(
        merged["history"],
        lookup,
        min_probability=spec.vocabulary.min_probability,
        affinity=spec.serving.affinity,
        half_life=options.half_life,
    )
    keep = known > 0
    errors += [
        ErrorRow(
            key=u,
            stage=STAGE,
            error_type="no_known_history",
            uri=str(outcomes),
            message="no history video has a score: nothing to learn from",
        )
        for u in merged.loc[~keep, "user_id"]
    ]
    if errors:
        reasons = Counter(e.error_type for e in errors)
        _LOGGER.warning(
            "affinity %s: %d of %d logged users left out of training and written to %s (%s); first: %s",
            spec.key,
            len(errors),
            len(users),
            Path(str(out)).with_suffix(".errors.parquet").name,
            ", ".join(f"{k} {n}" for k, n in sorted(reasons.items())),
            ", ".join(str(e.key) for e in errors[:5]),
        )
    _LOGGER.info(
        "affinity %s: training on %d users (%d positive)",
        spec.key,
        int(keep.sum()),
        int(labels[keep].astype(np.int64).sum()),
    )
    model, _ = fit(x[keep], labels[keep].astype(np.int64), rule[keep], spec=spec, options=options)
    model.save(out)
    errors_path = Path(str(out)).with_suffix(".errors.parquet")
    write_table(errors_table(errors), errors_path)
    _LOGGER.info("affinity %s: model written to %s (threshold %.3f)", spec.key, out, model.threshold)
    return AffinityTrainSummary(
        **model.training,
        errors=len(errors),
        errors_table=str(errors_path),
        threshold=model.threshold,
        model_path=str(out),
    )
