"""Rater evaluation on simulated raters of known accuracy: does `evaluate --raters` recover what was simulated?

A synthetic truth (prevalence ``--prevalence``) is labelled by three raters who each flip the true label with
probability 1 - accuracy (0.75, 0.82, 0.90 by default) and each skip a video with probability 1 - ``--coverage``
(so votes are missing, as in a real golden set), and by a teacher of accuracy 0.88. Every replicate writes a
golden set v2 (``golden.golden_rows``) and the teacher's scores to Parquet and runs ``raters.run``, the code
behind ``silverset evaluate --raters``. Two golden sets per replicate:

- ``adjudicated``: an expert adjudicates every video to the truth. Each rater's reference is then the truth, so
  the measured accuracy must cover the simulated one within its 95% bootstrap CI, and the teacher's likewise;
  F1 and the teacher-minus-mean-rater F1 are compared with their analytic values.
- ``majority``: no expert; the resolved label is the strict majority of the votes and only ties are adjudicated
  (to the truth), as in the studio. A rater is scored against the majority of the OTHER raters, which is noisy,
  so the measured accuracy is NOT the simulated one: it is compared with its exact expectation (enumerated over
  every vote pattern), and the inclusive score (counting the rater's own vote) with its own, to show the bias.

Agreement figures need no expert: Cohen's kappa per pair is compared with the analytic value for independent
raters, (p_o - p_e) / (1 - p_e); Fleiss' kappa (modal count = 3 votes) and Krippendorff's alpha with their
large-sample values from the same enumeration. The bar is |measured - analytic| <= 0.05. Both scenarios use the
same seeds, hence the same votes: their agreement figures are identical (adjudication changes no vote).

What it shows: the estimators and CIs are unbiased where the reference is the truth, and the leave-one-out
scores are what theory predicts for a noisy reference. What it does not show: real raters (correlated errors,
class-dependent accuracy, raters who learn), or that the teacher beats human raters on any real attribute.
Writes ``rater_agreement.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

RATERS = {"r75": 0.75, "r82": 0.82, "r90": 0.90}
TEACHER_ACCURACY = 0.88
KAPPA_TOLERANCE = 0.05


# ---------------------------------------------------------------- simulation


def simulate(*, n: int, prevalence: float, coverage: float, seed: int, scenario: str):
    """(votes {video: {rater: vote}}, resolved, how, teacher decisions, truth) for one replicate."""
    rng = np.random.default_rng(seed)
    truth = (rng.random(n) < prevalence).astype(int)
    votes, resolved, how = {}, {}, {}
    for j in range(n):
        video = f"v{j:05d}"
        voters = {
            r: int(truth[j] if rng.random() < a else 1 - truth[j]) for r, a in RATERS.items() if rng.random() < coverage
        }
        if not voters:  # every golden video has at least one vote: draw one rater
            r = list(RATERS)[rng.integers(len(RATERS))]
            voters = {r: int(truth[j] if rng.random() < RATERS[r] else 1 - truth[j])}
        votes[video] = voters
        ones = sum(voters.values())
        if scenario == "adjudicated" or ones * 2 == len(voters):
            resolved[video], how[video] = int(truth[j]), "adjudicated"
        else:
            resolved[video] = int(ones * 2 > len(voters))
            how[video] = "single" if len(voters) == 1 else ("unanimous" if ones in (0, len(voters)) else "majority")
    teacher = {f"v{j:05d}": int(truth[j] if rng.random() < TEACHER_ACCURACY else 1 - truth[j]) for j in range(n)}
    return votes, resolved, how, teacher, truth


# ---------------------------------------------------------------- analytic values


def _patterns(coverage: float, prevalence: float):
    """Every (probability, truth, {rater: vote}) pattern of one video, including the one-vote redraw when all skip."""
    names = list(RATERS)
    for truth, pt in ((1, prevalence), (0, 1 - prevalence)):
        for states in itertools.product((None, True, False), repeat=len(names)):  # None = skipped, True = correct
            p = pt
            for r, s in zip(names, states):
                a = RATERS[r]
                p *= (1 - coverage) if s is None else coverage * (a if s else 1 - a)
            voters = {r: (truth if s else 1 - truth) for r, s in zip(names, states) if s is not None}
            if voters:
                yield p, truth, voters
                continue
            for r in names:  # all skipped: one rater drawn uniformly
                a = RATERS[r]
                for correct, pc in ((True, a), (False, 1 - a)):
                    yield p / len(names) * pc, truth, {r: truth if correct else 1 - truth}


def expected(coverage: float, prevalence: float, scenario: str) -> dict:
    """Large-sample expectations of the report's figures (ratios of expectations) by exact enumeration."""
    acc_num = {r: 0.0 for r in RATERS}
    acc_den = {r: 0.0 for r in RATERS}
    inc_num = {r: 0.0 for r in RATERS}
    inc_den = {r: 0.0 for r in RATERS}
    teacher_match = 0.0
    values = ones = disagreement = 0.0  # Krippendorff: pairable values, their ones, weighted disagreeing pairs
    full_pairs = full_n = full_ones = 0.0  # Fleiss on videos with all three votes
    for p, truth, voters in _patterns(coverage, prevalence):
        k = sum(voters.values())
        m = len(voters)
        tie = k * 2 == m
        adjudicated = scenario == "adjudicated" or tie
        resolved = truth if adjudicated else int(k * 2 > m)
        # teacher vs resolved: independent of the votes given the truth
        teacher_match += p * (TEACHER_ACCURACY if resolved == truth else 1 - TEACHER_ACCURACY)
        for r, vote in voters.items():
            inc_num[r] += p * (vote == resolved)
            inc_den[r] += p
            if adjudicated:
                ref = resolved
            else:
                others = [v for q, v in voters.items() if q != r]
                if len(others) < 2 or sum(others) * 2 == len(others):
                    continue
                ref = int(sum(others) * 2 > len(others))
            acc_num[r] += p * (vote == ref)
            acc_den[r] += p
        if m >= 2:
            values += p * m
            ones += p * k
            disagreement += p * 2 * k * (m - k) / (m - 1)
        if m == len(RATERS):
            full_pairs += p * (k * (k - 1) + (m - k) * (m - k - 1)) / (m * (m - 1))
            full_n += p
            full_ones += p * k / m
    d_o = disagreement / values
    share = ones / values
    d_e = 2 * share * (1 - share)
    pi = full_ones / full_n
    fleiss_pe = pi**2 + (1 - pi) ** 2
    fleiss_po = full_pairs / full_n
    return {
        "rater_accuracy": {r: acc_num[r] / acc_den[r] for r in RATERS},
        "rater_accuracy_including_own_vote": {r: inc_num[r] / inc_den[r] for r in RATERS},
        "teacher_accuracy": teacher_match,
        "krippendorff_alpha": 1 - d_o / d_e,
        "fleiss_kappa": (fleiss_po - fleiss_pe) / (1 - fleiss_pe),
    }


def f1_of(accuracy: float, prevalence: float) -> float:
    """F1 of a symmetric-noise labeller against the truth: tp = p a, fp = (1-p)(1-a), fn = p (1-a)."""
    tp, fp, fn = prevalence * accuracy, (1 - prevalence) * (1 - accuracy), prevalence * (1 - accuracy)
    return 2 * tp / (2 * tp + fp + fn)


# ---------------------------------------------------------------- one replicate


def replicate(
    *, work: Path, spec: str, n: int, prevalence: float, coverage: float, seed: int, scenario: str, samples: int
) -> dict:
    import pyarrow as pa

    from silverset.components.common import golden, schemas, tables
    from silverset.components.evaluate import raters

    votes, resolved, how, teacher, truth = simulate(
        n=n, prevalence=prevalence, coverage=coverage, seed=seed, scenario=scenario
    )
    at = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    table = golden.golden_rows(
        attribute="red_dominant",
        version=1,
        classes=("negative", "positive"),
        votes=votes,
        resolved=resolved,
        how=how,
        labeled_at={v: at for v in resolved},
    )
    tables.write_table(table, work / "golden.parquet", schemas.GOLDEN)
    ids = list(teacher)
    tables.write_table(
        pa.table(
            {
                "video_id": ids,
                "attribute": ["red_dominant"] * n,
                "attribute_version": pa.array([1] * n, pa.int32()),
                "probability": pa.array([0.9 if teacher[v] else 0.1 for v in ids], pa.float32()),
                "model_digest": ["sim"] * n,
            }
        ),
        work / "teacher.parquet",
        schemas.SCORES,
    )
    started = time.perf_counter()
    report = raters.run(
        attribute=spec,
        golden=str(work / "golden.parquet"),
        predictions=str(work / "teacher.parquet"),
        out=str(work / "eval"),
        options=raters.RaterOptions(samples=samples, seed=seed),
    )
    seconds = time.perf_counter() - started
    return {
        "report": report,
        "seconds": seconds,
        "golden_rows": table.num_rows,
        "prevalence_observed": float(truth.mean()),
    }


def _est(e) -> dict:
    return {"value": round(e.value, 4), "lower": round(e.lower, 4), "upper": round(e.upper, 4)}


def check(report, *, scenario: str, prevalence: float, coverage: float) -> dict:
    """Measured vs simulated/analytic figures of one report, with pass flags."""
    from silverset.components.evaluate.raters import analytic_cohen_kappa

    exp = expected(coverage, prevalence, scenario)
    out: dict = {"raters": {}, "pairs": {}}
    for score in report.per_rater:
        acc = score.scores.accuracy
        target = RATERS[score.rater] if scenario == "adjudicated" else exp["rater_accuracy"][score.rater]
        inc_target = exp["rater_accuracy_including_own_vote"][score.rater]
        row = {
            "simulated_accuracy": RATERS[score.rater],
            "expected_accuracy_vs_reference": round(target, 4),
            "measured_accuracy": _est(acc),
            "covered": bool(acc.lower <= target <= acc.upper),
            "n": score.scores.n,
            "expected_accuracy_including_own_vote": round(inc_target, 4),
            "measured_accuracy_including_own_vote": _est(score.vs_resolved.accuracy),
            "covered_including_own_vote": bool(
                score.vs_resolved.accuracy.lower <= inc_target <= score.vs_resolved.accuracy.upper
            ),
        }
        if scenario == "adjudicated":
            f1 = f1_of(RATERS[score.rater], prevalence)
            row.update(
                {
                    "analytic_f1": round(f1, 4),
                    "measured_f1": _est(score.scores.f1),
                    "f1_covered": bool(score.scores.f1.lower <= f1 <= score.scores.f1.upper),
                }
            )
        out["raters"][score.rater] = row
    t = report.teacher.accuracy
    t_target = exp["teacher_accuracy"]
    out["teacher"] = {
        "simulated_accuracy": TEACHER_ACCURACY,
        "expected_accuracy_vs_resolved": round(t_target, 4),
        "measured_accuracy": _est(t),
        "covered": bool(t.lower <= t_target <= t.upper),
    }
    if scenario == "adjudicated":
        diff = float(np.mean([f1_of(TEACHER_ACCURACY, prevalence) - f1_of(a, prevalence) for a in RATERS.values()]))
        d = report.teacher_minus_mean_rater
        out["teacher_minus_mean_rater_f1"] = {
            "analytic": round(diff, 4),
            "measured": round(d.value, 4),
            "lower": round(d.lower, 4),
            "upper": round(d.upper, 4),
            "p_value": d.p_value,
            "covered": bool(d.lower <= diff <= d.upper),
        }
    a = report.agreement
    for pair in a.pairs:
        analytic = analytic_cohen_kappa(
            accuracy_a=RATERS[pair.rater_a], accuracy_b=RATERS[pair.rater_b], prevalence=prevalence
        )
        out["pairs"][f"{pair.rater_a}/{pair.rater_b}"] = {
            "n": pair.n,
            "cohen_kappa": round(pair.cohen_kappa, 4),
            "analytic": round(analytic, 4),
            "abs_error": round(abs(pair.cohen_kappa - analytic), 4),
            "within_tolerance": bool(abs(pair.cohen_kappa - analytic) <= KAPPA_TOLERANCE),
        }
    out["fleiss_kappa"] = {
        "value": round(a.fleiss_kappa, 4),
        "analytic": round(exp["fleiss_kappa"], 4),
        "videos": a.fleiss_videos,
        "votes_per_video": a.fleiss_votes_per_video,
        "within_tolerance": bool(abs(a.fleiss_kappa - exp["fleiss_kappa"]) <= KAPPA_TOLERANCE),
    }
    out["krippendorff_alpha"] = {
        "value": round(a.krippendorff_alpha, 4),
        "analytic": round(exp["krippendorff_alpha"], 4),
        "within_tolerance": bool(abs(a.krippendorff_alpha - exp["krippendorff_alpha"]) <= KAPPA_TOLERANCE),
    }
    out["percent_agreement"] = round(a.percent_agreement, 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=int, default=5000)
    parser.add_argument("--replicates", type=int, default=20)
    parser.add_argument("--samples", type=int, default=1000, help="Bootstrap resamples per report.")
    parser.add_argument("--prevalence", type=float, default=0.35)
    parser.add_argument("--coverage", type=float, default=0.85, help="Chance that a rater votes on a video.")
    parser.add_argument("--quick", action="store_true", help="600 videos, 4 replicates, 300 resamples.")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()
    if args.quick:
        args.videos, args.replicates, args.samples = 600, 4, 300
    from silverset.components.common.spec import example_specs_dir

    spec = str(example_specs_dir() / "red_dominant.yaml")
    result: dict = {
        "benchmark": "rater_agreement",
        "config": {
            "videos": args.videos,
            "replicates": args.replicates,
            "bootstrap_samples": args.samples,
            "prevalence": args.prevalence,
            "coverage": args.coverage,
            "raters": RATERS,
            "teacher_accuracy": TEACHER_ACCURACY,
            "kappa_tolerance": KAPPA_TOLERANCE,
            "quick": args.quick,
            "python": platform.python_version(),
        },
        "scenarios": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for scenario in ("adjudicated", "majority"):
            runs = []
            for seed in range(args.replicates):
                work = Path(tmp) / scenario / str(seed)
                work.mkdir(parents=True)
                done = replicate(
                    work=work,
                    spec=spec,
                    n=args.videos,
                    prevalence=args.prevalence,
                    coverage=args.coverage,
                    seed=seed,
                    scenario=scenario,
                    samples=args.samples,
                )
                checked = check(done["report"], scenario=scenario, prevalence=args.prevalence, coverage=args.coverage)
                runs.append(
                    {"seed": seed, "seconds": round(done["seconds"], 3), "golden_rows": done["golden_rows"], **checked}
                )
            result["scenarios"][scenario] = {"first_replicate": runs[0], "summary": _summary(runs)}
            print(scenario, json.dumps(result["scenarios"][scenario]["summary"], indent=1))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "rater_agreement.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out / 'rater_agreement.json'}")


def _summary(runs: list[dict]) -> dict:
    """Across replicates: how often each CI covered its target (~0.95 expected), worst kappa/alpha errors."""

    def rate(flags):
        return round(float(np.mean(flags)), 3)

    summary = {
        "replicates": len(runs),
        "rater_accuracy_ci_coverage": {r: rate([run["raters"][r]["covered"] for run in runs]) for r in RATERS},
        "rater_accuracy_including_own_vote_ci_coverage": {
            r: rate([run["raters"][r]["covered_including_own_vote"] for run in runs]) for r in RATERS
        },
        "mean_measured_accuracy": {
            r: round(float(np.mean([run["raters"][r]["measured_accuracy"]["value"] for run in runs])), 4)
            for r in RATERS
        },
        "expected_accuracy_vs_reference": {r: runs[0]["raters"][r]["expected_accuracy_vs_reference"] for r in RATERS},
        "teacher_accuracy_ci_coverage": rate([run["teacher"]["covered"] for run in runs]),
        "teacher_mean_measured_accuracy": round(
            float(np.mean([run["teacher"]["measured_accuracy"]["value"] for run in runs])), 4
        ),
        # bias: the mean over replicates of (measured - analytic); spread: its SD (the tolerance is 0.05)
        "cohen_kappa_by_pair": {
            pair: {
                "analytic": runs[0]["pairs"][pair]["analytic"],
                "mean_measured": round(float(np.mean([run["pairs"][pair]["cohen_kappa"] for run in runs])), 4),
                "sd_measured": round(float(np.std([run["pairs"][pair]["cohen_kappa"] for run in runs], ddof=1)), 4)
                if len(runs) > 1
                else None,
            }
            for pair in runs[0]["pairs"]
        },
        "fleiss_kappa_mean_error": round(
            float(np.mean([run["fleiss_kappa"]["value"] - run["fleiss_kappa"]["analytic"] for run in runs])), 4
        ),
        "krippendorff_alpha_mean_error": round(
            float(
                np.mean([run["krippendorff_alpha"]["value"] - run["krippendorff_alpha"]["analytic"] for run in runs])
            ),
            4,
        ),
        "cohen_kappa_max_abs_error": max(p["abs_error"] for run in runs for p in run["pairs"].values()),
        "cohen_kappa_within_tolerance": rate([p["within_tolerance"] for run in runs for p in run["pairs"].values()]),
        "fleiss_kappa_max_abs_error": round(
            max(abs(run["fleiss_kappa"]["value"] - run["fleiss_kappa"]["analytic"]) for run in runs), 4
        ),
        "krippendorff_alpha_max_abs_error": round(
            max(abs(run["krippendorff_alpha"]["value"] - run["krippendorff_alpha"]["analytic"]) for run in runs), 4
        ),
        "mean_seconds_per_report": round(float(np.mean([run["seconds"] for run in runs])), 3),
    }
    if "teacher_minus_mean_rater_f1" in runs[0]:
        summary["teacher_minus_mean_rater_f1_ci_coverage"] = rate(
            [run["teacher_minus_mean_rater_f1"]["covered"] for run in runs]
        )
        summary["rater_f1_ci_coverage"] = {r: rate([run["raters"][r]["f1_covered"] for run in runs]) for r in RATERS}
    return summary


if __name__ == "__main__":
    main()
