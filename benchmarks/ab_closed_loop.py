"""Closed A/B loop on the demo's promoted attribute: the real index server runs the experiment, simulated users
search it, outcomes follow from what it served, the analysis reads the server's exposure log.

Per replicate (cohort seed s):
  A. rule trigger, cohort s: recovered effect vs the known one (randomized triggered-users comparison, CBPS
     on treatment users, and the naive triggered-vs-not difference as the baseline), SRM, |SMD| after CBPS;
  B. train the learned trigger on A's control users (held-out AUC vs the rule's score);
  C/D. a fresh cohort s+1 served once with the rule (baseline) and once with the model (same users, same
     outcome noise, equal reach): whole-population lift of each.
Writes ab_closed_loop.json (+ each run's folder under --workdir).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _serve_root(args) -> tuple[Path, str]:
    from silverset.components.index import pointer

    if args.serve_root:
        return Path(args.serve_root), args.attribute
    workdir = Path(args.demo_workdir)
    serve = workdir / "pipeline" / "serve"
    if pointer.read_pointer(serve, args.attribute) is None:
        from silverset.pipelines.demo import run_demo

        print(f"no live '{args.attribute}' under {serve}: building the demo ({args.videos} videos)", flush=True)
        run_demo(workdir=workdir, videos=args.videos, ab_users=2000)
    return serve, args.attribute


def _loop(name: str, **kwargs) -> dict:
    from silverset.pipelines.closed_loop import run_closed_loop

    started = time.perf_counter()
    report = run_closed_loop(**kwargs)
    report["wall_s"] = round(time.perf_counter() - started, 1)
    print(
        f"{name}: {report['requests']} requests at {report['requests_per_second']} req/s, checks {report['checks']}",
        flush=True,
    )
    return report


def replicate(*, serve_root: Path, attribute: str, spec, workdir: Path, users: int, effect: float, seed: int) -> dict:
    from silverset.components.abtest import affinity_train
    from silverset.components.abtest.experiment import create_experiment

    base = workdir / f"seed-{seed}"
    experiment = create_experiment(
        spec=spec, salt=f"closed-loop-{seed}", treatment_share=0.5, out_dir=base / "experiment"
    )
    common = dict(
        serve_root=serve_root, attribute=attribute, experiment_path=base / "experiment", users=users, effect=effect
    )
    a = _loop("A rule", out_dir=base / "A-rule", seed=seed, **common)
    result = json.loads((Path(a["paths"]["analysis"]) / "result.json").read_text())
    obs = result["observational"]
    sc_obs = next(e for e in obs["effects"] if e["metric"] == "satisfied_consumption")
    trig = a["analysis"]["triggered_lifts"]["satisfied_consumption"]
    known = a["truth"]["satisfied_consumption"]["triggered_difference"]
    served_known = a["truth"]["served_difference"]
    recovered = {
        "known_effect_per_triggered_user": known,
        "randomized_triggered": {
            "estimate": trig["difference"],
            "ci": trig["difference_ci"],
            "covers_known": trig["difference_ci"][0] <= known <= trig["difference_ci"][1],
        },
        # CBPS and the naive difference estimate the effect on treatment-arm triggered (= served) users.
        "known_effect_per_served_user": served_known,
        "cbps_att": {
            "estimate": sc_obs["difference"],
            "ci": [sc_obs["difference_ci_low"], sc_obs["difference_ci_high"]],
            "covers_known": sc_obs["difference_ci_low"] <= served_known <= sc_obs["difference_ci_high"],
        },
        "naive_triggered_vs_not_baseline": {"estimate": sc_obs["naive_difference"]},
        "srm_p_value": a["analysis"]["srm_p_value"],
        "srm_passed": a["checks"]["srm_passed"],
        "max_abs_smd_before": obs["max_abs_smd_before"],
        "max_abs_smd_after": obs["max_abs_smd_after"],
        "control_never_served": a["checks"]["control_never_served"],
        "every_request_logged": a["checks"]["every_request_logged"],
        "itt_relative_lift": a["analysis"]["lifts"]["satisfied_consumption"],
    }
    history = serve_root / attribute / "versions" / a["index_version"] / "history.parquet"
    model_path = base / "affinity_model.json"
    trained = affinity_train.run(
        exposures=a["paths"]["exposures"],
        outcomes=a["paths"]["outcomes"],
        scores=history,
        attribute_spec=spec,
        model_path=model_path,
        experiment_id=experiment.experiment_id,
        options=affinity_train.TrainOptions(bootstrap_samples=500, seed=seed),
    )
    c = _loop("C rule (fresh cohort)", out_dir=base / "C-rule", seed=seed + 1000, **common)
    d = _loop("D model (same cohort)", out_dir=base / "D-model", seed=seed + 1000, affinity_model=model_path, **common)

    def lift_of(r: dict) -> dict:
        itt = r["analysis"]["lifts"]["satisfied_consumption"]
        return {
            "itt_relative_lift": itt["relative_lift"],
            "itt_ci": itt["ci"],
            "itt_difference": itt["difference"],
            "true_itt_difference": r["truth"]["satisfied_consumption"]["itt_difference"],
            "triggered_users": r["triggered_users"],
            "served_users": r["served_users"],
            "mean_interest_triggered": r["truth"]["mean_interest_triggered"],
            "checks_passed": r["passed"],
            "requests_per_second": r["requests_per_second"],
        }

    return {
        "seed": seed,
        "recovered_effect": recovered,
        "affinity_model": {
            "auc": trained.auc.model_dump(mode="json"),
            "threshold": trained.threshold,
            "reach": trained.reach,
            "train_users": trained.users,
        },
        "trigger_comparison": {"rule_baseline": lift_of(c), "learned": lift_of(d)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--workdir", default="/tmp/silverset-ab-closed-loop")
    parser.add_argument("--serve-root", default=None, help="serve root with a live version of --attribute")
    parser.add_argument(
        "--demo-workdir", default="demo-workdir", help="used (and built if absent) without --serve-root"
    )
    parser.add_argument("--videos", type=int, default=200, help="videos when the demo has to be built")
    parser.add_argument("--attribute", default="red_dominant")
    parser.add_argument("--users", type=int, default=4000)
    parser.add_argument("--effect", type=float, default=2.0, help="minutes/day a fully interested served user gains")
    parser.add_argument("--replicates", type=int, default=3)
    args = parser.parse_args()

    from silverset.components.common.spec import example_specs_dir, load_spec

    serve_root, attribute = _serve_root(args)
    spec = load_spec(example_specs_dir() / f"{attribute}.yaml")
    workdir = Path(args.workdir)
    started = time.perf_counter()
    reps = [
        replicate(
            serve_root=serve_root,
            attribute=attribute,
            spec=spec,
            workdir=workdir,
            users=args.users,
            effect=args.effect,
            seed=s,
        )
        for s in range(args.replicates)
    ]
    learned = [r["trigger_comparison"]["learned"] for r in reps]
    rule = [r["trigger_comparison"]["rule_baseline"] for r in reps]
    summary = {
        "randomized_ci_covers_known": sum(r["recovered_effect"]["randomized_triggered"]["covers_known"] for r in reps),
        "cbps_ci_covers_known": sum(r["recovered_effect"]["cbps_att"]["covers_known"] for r in reps),
        "srm_passed": sum(r["recovered_effect"]["srm_passed"] for r in reps),
        "max_abs_smd_after_worst": max(r["recovered_effect"]["max_abs_smd_after"] for r in reps),
        "control_never_served": all(r["recovered_effect"]["control_never_served"] for r in reps),
        "replicates": len(reps),
        "auc_model_mean": float(np.mean([r["affinity_model"]["auc"]["model"] for r in reps])),
        "auc_rule_mean": float(np.mean([r["affinity_model"]["auc"]["rule"] for r in reps])),
        "itt_relative_lift_learned_mean": float(np.mean([x["itt_relative_lift"] for x in learned])),
        "itt_relative_lift_rule_mean": float(np.mean([x["itt_relative_lift"] for x in rule])),
        "true_itt_difference_learned_mean": float(np.mean([x["true_itt_difference"] for x in learned])),
        "true_itt_difference_rule_mean": float(np.mean([x["true_itt_difference"] for x in rule])),
    }
    results = {
        "benchmark": "ab_closed_loop",
        "attribute": attribute,
        "serve_root": str(serve_root),
        "users": args.users,
        "effect": args.effect,
        "wall_s": round(time.perf_counter() - started, 1),
        "summary": summary,
        "replicates": reps,
        "machine": {"python": platform.python_version(), "processor": platform.processor() or platform.machine()},
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ab_closed_loop.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
