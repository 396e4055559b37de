"""Raters vs teacher on a per-rater golden set: each rater's and the teacher's F1, and inter-rater agreement.

Contract. Inputs are a golden set v2 (``golden.read_golden_set``: each rater's vote and each video's resolved label)
and the teacher's decisions on every golden video. ``run`` writes ``raters.json`` (RaterReport.as_dict()) and
returns the RaterReport.

What each score is measured against (say it when quoting the figures):
- teacher: the resolved label (adjudication wins, else strict majority) of every golden video.
- rater, ``reference = "adjudicated_or_leave_one_out"``: on an adjudicated video, the adjudicator's decision; on
  any other video, the strict majority of the OTHER raters' votes when at least ``min_other_votes`` (2) others
  voted and they do not tie; videos without such a reference are left out of that rater's score. A rater scored
  against a resolution that counts their own vote is biased upward; that inclusive score is also reported
  (``vs_resolved``), labelled as such, and never used for the comparison.
- ``teacher_minus_mean_rater``: the mean over raters of (teacher F1 - rater F1), each pair scored against the
  same rater's references on the same videos, with a paired percentile bootstrap over videos (one resample of
  videos for every term) and a two-sided bootstrap p-value.
Agreement uses every video with at least two votes: percent agreement (mean share of agreeing rater pairs per
video, and the share of unanimous videos), Cohen's kappa per rater pair on the videos both rated
(scikit-learn), Fleiss' kappa on the videos with the modal number of votes only, since it needs an equal count
per video (statsmodels), and Krippendorff's alpha (nominal), which handles missing votes natively
(``krippendorff``). The teacher's Cohen's kappa with each rater is reported beside them.
Binary attributes: class 1 is the positive class for precision, recall and F1.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from dataclasses import asdict, dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from silverset.components.common.errors import SilversetInputError
from silverset.components.common.golden import GoldenSet, read_golden_set
from silverset.components.common.spec import load_spec

from . import metrics

_LOGGER = logging.getLogger(__name__)
RATERS_FILE = "raters.json"
REFERENCE = "adjudicated_or_leave_one_out"
MISSING = -1


class RaterOptions(BaseModel):
    """How raters are scored. samples/seed default to the spec's gate settings when not given."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    samples: int | None = Field(default=None, ge=100)
    seed: int | None = None
    min_other_votes: int = Field(default=2, ge=1)
    confidence: float = Field(default=metrics.CONFIDENCE, gt=0.5, lt=1.0)


@dataclass(frozen=True)
class Scores:
    """precision, recall, F1 and accuracy with bootstrap CIs on ``n`` videos (``positives`` by the reference)."""

    n: int
    positives: int
    precision: metrics.Estimate
    recall: metrics.Estimate
    f1: metrics.Estimate
    accuracy: metrics.Estimate


@dataclass(frozen=True)
class RaterScore:
    """One rater: scored against their references (adjudicated or leave-one-out), and the teacher on the same videos."""

    rater: str
    votes: int
    adjudicated_references: int
    leave_one_out_references: int
    scores: Scores
    teacher_same_videos: Scores
    teacher_kappa: float | None
    vs_resolved: Scores  # against the resolved label, which may count the rater's own vote: biased upward


@dataclass(frozen=True)
class PairAgreement:
    """Two raters on the videos both voted on."""

    rater_a: str
    rater_b: str
    n: int
    percent_agreement: float | None
    cohen_kappa: float | None


@dataclass(frozen=True)
class Agreement:
    """Inter-rater agreement over videos with at least two votes."""

    videos: int
    percent_agreement: float | None  # mean share of agreeing rater pairs per video
    unanimous_share: float | None
    pairs: list[PairAgreement]
    fleiss_kappa: float | None
    fleiss_votes_per_video: int | None  # Fleiss uses only the videos with this (modal) number of votes
    fleiss_videos: int
    krippendorff_alpha: float | None


@dataclass(frozen=True)
class Difference:
    """Paired bootstrap of mean over raters of (teacher F1 - rater F1), same references and videos per term."""

    value: float | None
    lower: float | None
    upper: float | None
    p_value: float | None
    raters: int
    teacher_f1_mean: float | None
    rater_f1_mean: float | None


@dataclass(frozen=True)
class RaterReport:
    """What ``silverset evaluate --raters`` writes to raters.json."""

    attribute: str
    attribute_version: int
    golden_carried_from: int | None
    reference: str
    videos: int
    raters: list[str]
    teacher: Scores
    per_rater: list[RaterScore]
    teacher_minus_mean_rater: Difference
    agreement: Agreement
    samples: int
    seed: int
    min_other_votes: int
    confidence: float

    def as_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


# ---------------------------------------------------------------- arrays


def vote_matrix(golden_set: GoldenSet) -> tuple[list[str], list[str], np.ndarray]:
    """(videos in file order, raters sorted, votes int64 [raters, videos] with MISSING where a rater did not vote)."""
    videos = list(golden_set.resolved)
    raters = list(golden_set.raters)
    votes = np.full((len(raters), len(videos)), MISSING, dtype=np.int64)
    row = {r: i for i, r in enumerate(raters)}
    for j, video in enumerate(videos):
        for rater, vote in golden_set.votes.get(video, {}).items():
            votes[row[rater], j] = vote
    return videos, raters, votes


def references(
    votes: np.ndarray, resolved: np.ndarray, adjudicated: np.ndarray, *, n_classes: int, min_other_votes: int
) -> np.ndarray:
    """int64 [raters, videos]: each rater's reference label per video, MISSING where there is none.

    votes: int [R, V] (MISSING = no vote); resolved: int [V]; adjudicated: bool [V]. An adjudicated video's
    reference is its resolved label; otherwise the strict majority of the other raters' votes, when at least
    ``min_other_votes`` others voted. A rater who did not vote gets no reference.
    """
    counts = np.stack([(votes == k).sum(axis=0) for k in range(n_classes)])  # [K, V]
    ref = np.full(votes.shape, MISSING, dtype=np.int64)
    for r in range(votes.shape[0]):
        others = counts - np.stack([(votes[r] == k) for k in range(n_classes)]).astype(np.int64)
        total = others.sum(axis=0)
        top = others.argmax(axis=0)
        strict = others.max(axis=0) * 2 > total
        majority = np.where((total >= min_other_votes) & strict, top, MISSING)
        ref[r] = np.where(adjudicated, resolved, majority)
        ref[r, votes[r] == MISSING] = MISSING
    return ref


def _resample_weights(n: int, *, samples: int, seed: int) -> np.ndarray:
    """float64 [samples + 1, n]: row 0 all ones (the point estimate), then each resample's draw count per video."""
    idx = metrics.bootstrap_indices(n, samples=samples, seed=seed)
    weights = np.zeros((samples + 1, n))
    weights[0] = 1.0
    np.add.at(weights, (np.repeat(np.arange(1, samples + 1), n), idx.ravel()), 1.0)
    return weights


def _scores_draws(weights: np.ndarray, reference: np.ndarray, decided: np.ndarray) -> dict[str, np.ndarray]:
    """precision/recall/f1/accuracy [samples + 1, m] for m decision rows vs reference rows [m, V] (MISSING skipped)."""
    valid = (reference != MISSING) & (decided != MISSING)
    ref, dec = reference == 1, decided == 1
    tp = weights @ (valid & ref & dec).T.astype(np.float64)
    fp = weights @ (valid & ~ref & dec).T.astype(np.float64)
    fn = weights @ (valid & ref & ~dec).T.astype(np.float64)
    n = weights @ valid.T.astype(np.float64)
    agree = weights @ (valid & (reference == decided)).T.astype(np.float64)
    precision, recall, f1 = metrics._prf(tp, fp, fn)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(n > 0, agree / n, np.nan)
    return {"precision": precision, "recall": recall, "f1": f1, "accuracy": accuracy, "n": n}


def _scores(draws: dict[str, np.ndarray], column: int, *, positives: int, confidence: float) -> Scores:
    n = int(draws["n"][0, column])
    estimates = {}
    for name in ("precision", "recall", "f1", "accuracy"):
        values = draws[name][:, column]
        if n == 0:
            estimates[name] = metrics.Estimate(float("nan"), float("nan"), float("nan"))
        else:
            estimates[name] = metrics.Estimate(float(values[0]), *metrics._interval(values[1:], confidence))
    return Scores(n=n, positives=positives, **estimates)


# ---------------------------------------------------------------- agreement


def cohen_kappa(a: np.ndarray, b: np.ndarray, *, n_classes: int) -> float | None:
    """Cohen's kappa of two vote vectors (scikit-learn); None when undefined (< 2 items, or chance agreement 1)."""
    if len(a) < 2:
        return None
    from sklearn.metrics import cohen_kappa_score

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = cohen_kappa_score(a, b, labels=list(range(n_classes)))
    return float(value) if math.isfinite(value) else None


def fleiss_kappa_modal(votes: np.ndarray, *, n_classes: int) -> tuple[float | None, int | None, int]:
    """(Fleiss' kappa, votes per video m, videos used) over the videos with the modal number m >= 2 of votes.

    Fleiss' kappa needs the same number of ratings per item; videos with another number of votes are left out.
    Ties for the mode go to the larger m. statsmodels computes it.
    """
    per_video = (votes != MISSING).sum(axis=0)
    rated = per_video[per_video >= 2]
    if rated.size == 0:
        return None, None, 0
    values, counts = np.unique(rated, return_counts=True)
    m = int(values[counts == counts.max()].max())
    keep = per_video == m
    table = np.stack([(votes[:, keep] == k).sum(axis=0) for k in range(n_classes)], axis=1)  # [videos, classes]
    from statsmodels.stats.inter_rater import fleiss_kappa

    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore")
        value = float(fleiss_kappa(table, method="fleiss"))
    return (value if math.isfinite(value) else None), m, int(keep.sum())


def krippendorff_alpha(votes: np.ndarray, *, n_classes: int) -> float | None:
    """Krippendorff's alpha, nominal, on votes [raters, videos] (MISSING = no vote); None when undefined."""
    data = np.where(votes == MISSING, np.nan, votes.astype(np.float64))
    data = data[:, (votes != MISSING).sum(axis=0) >= 2]
    if data.shape[1] == 0:
        return None
    import krippendorff

    try:
        with np.errstate(invalid="ignore", divide="ignore"):
            value = float(
                krippendorff.alpha(
                    reliability_data=data, level_of_measurement="nominal", value_domain=list(range(n_classes))
                )
            )
    except ValueError:  # one value in the whole domain, or no pairable values
        return None
    return value if math.isfinite(value) else None


def agreement(votes: np.ndarray, raters: list[str], *, n_classes: int) -> Agreement:
    """Inter-rater agreement over the videos with at least two votes (see the module docstring)."""
    voted = votes != MISSING
    multi = voted.sum(axis=0) >= 2
    sub = votes[:, multi]
    percent = unanimous = None
    if sub.shape[1]:
        counts = np.stack([(sub == k).sum(axis=0) for k in range(n_classes)])  # [K, V]
        total = counts.sum(axis=0)
        percent = float(np.mean((counts * (counts - 1)).sum(axis=0) / (total * (total - 1))))
        unanimous = float(np.mean(counts.max(axis=0) == total))
    pairs = []
    for a, b in combinations(range(len(raters)), 2):
        both = voted[a] & voted[b]
        n = int(both.sum())
        pairs.append(
            PairAgreement(
                rater_a=raters[a],
                rater_b=raters[b],
                n=n,
                percent_agreement=float(np.mean(votes[a, both] == votes[b, both])) if n else None,
                cohen_kappa=cohen_kappa(votes[a, both], votes[b, both], n_classes=n_classes),
            )
        )
    fleiss, m, fleiss_videos = fleiss_kappa_modal(votes, n_classes=n_classes)
    return Agreement(
        videos=int(multi.sum()),
        percent_agreement=percent,
        unanimous_share=unanimous,
        pairs=pairs,
        fleiss_kappa=fleiss,
        fleiss_votes_per_video=m,
        fleiss_videos=fleiss_videos,
        krippendorff_alpha=krippendorff_alpha(votes, n_classes=n_classes),
    )


def analytic_cohen_kappa(*, accuracy_a: float, accuracy_b: float, prevalence: float) -> float:
    """Expected Cohen's kappa of two independent raters who each flip the true binary label with prob. 1 - accuracy.

    Observed agreement p_o = a_a a_b + (1 - a_a)(1 - a_b); each rater says positive with q = p a + (1 - p)(1 - a);
    chance agreement p_e = q_a q_b + (1 - q_a)(1 - q_b); kappa = (p_o - p_e) / (1 - p_e).
    """
    p_o = accuracy_a * accuracy_b + (1 - accuracy_a) * (1 - accuracy_b)
    q_a = prevalence * accuracy_a + (1 - prevalence) * (1 - accuracy_a)
    q_b = prevalence * accuracy_b + (1 - prevalence) * (1 - accuracy_b)
    p_e = q_a * q_b + (1 - q_a) * (1 - q_b)
    return (p_o - p_e) / (1 - p_e)


# ---------------------------------------------------------------- evaluation


def evaluate_raters(
    golden_set: GoldenSet,
    teacher: dict[str, int],
    *,
    n_classes: int,
    samples: int,
    seed: int,
    min_other_votes: int = 2,
    confidence: float = metrics.CONFIDENCE,
) -> RaterReport:
    """Score every rater and the teacher (decisions by video_id, one per golden video) on one golden set."""
    if n_classes != 2:
        raise SilversetInputError("golden set", f"rater scores need a binary attribute, not {n_classes} classes")
    videos, raters, votes = vote_matrix(golden_set)
    missing = [v for v in videos if v not in teacher]
    if missing:
        raise SilversetInputError(
            "teacher predictions",
            f"{len(missing)} of {len(videos)} golden videos have no teacher decision (e.g. {missing[:3]})",
        )
    resolved = np.array([golden_set.resolved[v] for v in videos], dtype=np.int64)
    decided = np.array([int(teacher[v]) for v in videos], dtype=np.int64)
    adjudicated = np.array([golden_set.how.get(v) == "adjudicated" for v in videos], dtype=bool)
    ref = references(votes, resolved, adjudicated, n_classes=n_classes, min_other_votes=min_other_votes)
    weights = _resample_weights(len(videos), samples=samples, seed=seed)
    n_r = len(raters)
    rater_draws = _scores_draws(weights, ref, votes)
    teacher_draws = _scores_draws(weights, ref, np.where(ref == MISSING, MISSING, decided[None, :]))
    inclusive_draws = _scores_draws(weights, np.broadcast_to(resolved, votes.shape), votes)
    overall = _scores_draws(weights, resolved[None, :], decided[None, :])

    per_rater = []
    for r, rater in enumerate(raters):
        scored = ref[r] != MISSING
        positives = int(np.sum(ref[r] == 1))
        per_rater.append(
            RaterScore(
                rater=rater,
                votes=int(np.sum(votes[r] != MISSING)),
                adjudicated_references=int(np.sum(scored & adjudicated)),
                leave_one_out_references=int(np.sum(scored & ~adjudicated)),
                scores=_scores(rater_draws, r, positives=positives, confidence=confidence),
                teacher_same_videos=_scores(teacher_draws, r, positives=positives, confidence=confidence),
                teacher_kappa=cohen_kappa(
                    decided[votes[r] != MISSING], votes[r, votes[r] != MISSING], n_classes=n_classes
                ),
                vs_resolved=_scores(
                    inclusive_draws, r, positives=int(np.sum(resolved[votes[r] != MISSING] == 1)), confidence=confidence
                ),
            )
        )
        if not scored.any():
            _LOGGER.warning(
                "rater %s has no reference on any video (no adjudication, fewer than %d other votes or "
                "a tie): left out of the teacher comparison",
                rater,
                min_other_votes,
            )

    scored_raters = [r for r in range(n_r) if rater_draws["n"][0, r] > 0]
    difference = Difference(
        value=None,
        lower=None,
        upper=None,
        p_value=None,
        raters=len(scored_raters),
        teacher_f1_mean=None,
        rater_f1_mean=None,
    )
    if scored_raters:
        t_f1 = teacher_draws["f1"][:, scored_raters]
        r_f1 = rater_draws["f1"][:, scored_raters]
        # a resample that drew none of a rater's videos leaves that term undefined: average the defined ones
        defined = teacher_draws["n"][:, scored_raters] > 0
        diff = np.where(defined, t_f1 - r_f1, np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a resample with no defined term: NaN, dropped below
            draws = np.nanmean(diff, axis=1)
        boot = draws[1:][np.isfinite(draws[1:])]
        lower, upper = metrics._interval(boot, confidence)
        p_value = float(min(1.0, 2 * min(np.mean(boot <= 0), np.mean(boot >= 0))))
        difference = Difference(
            value=float(draws[0]),
            lower=lower,
            upper=upper,
            p_value=p_value,
            raters=len(scored_raters),
            teacher_f1_mean=float(t_f1[0].mean()),
            rater_f1_mean=float(r_f1[0].mean()),
        )
    return RaterReport(
        attribute=golden_set.attribute,
        attribute_version=golden_set.version,
        golden_carried_from=golden_set.carried_from,
        reference=REFERENCE,
        videos=len(videos),
        raters=raters,
        teacher=_scores(overall, 0, positives=int(resolved.sum()), confidence=confidence),
        per_rater=per_rater,
        teacher_minus_mean_rater=difference,
        agreement=agreement(votes, raters, n_classes=n_classes),
        samples=samples,
        seed=seed,
        min_other_votes=min_other_votes,
        confidence=confidence,
    )


def run(
    *,
    attribute: str,
    golden: str,
    predictions: str,
    out: str,
    threshold: float | None = None,
    options: RaterOptions | None = None,
) -> RaterReport:
    """Read the golden set and the teacher's predictions, evaluate, write ``out/raters.json``; return the report.

    Decisions come from the predictions' ``label`` column, else probability >= ``threshold`` (default: the spec's
    decision threshold). Raises SilversetInputError naming the input for an unusable golden set or predictions.
    """
    from .gate import GateProblem, aligned, read_predictions

    options = options or RaterOptions()
    spec = load_spec(attribute)
    if not golden:
        raise SilversetInputError("--golden", "is required for --raters")
    golden_set = read_golden_set(golden, spec=spec)
    if not golden_set.resolved:
        raise SilversetInputError(f"golden set '{golden}'", f"has no rows for {spec.key}")
    try:
        teacher = read_predictions(predictions, spec, role="teacher")
        _, decided = aligned(
            golden_set.resolved,
            teacher,
            role="teacher",
            threshold=threshold if threshold is not None else spec.decision_threshold,
        )
    except GateProblem as problem:
        raise SilversetInputError(f"--predictions '{predictions}'", str(problem)) from None
    report = evaluate_raters(
        golden_set,
        dict(zip(golden_set.resolved, decided.tolist())),
        n_classes=len(spec.classes),
        samples=options.samples or spec.gates.bootstrap_samples,
        seed=options.seed if options.seed is not None else spec.gates.seed,
        min_other_votes=options.min_other_votes,
        confidence=options.confidence,
    )
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / RATERS_FILE).write_text(json.dumps(report.as_dict(), indent=2, sort_keys=True))
    return report


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value
