"""Coverage of 95% CIs over repeated simulated A/B tests, and bias of the confounded triggered-vs-not comparison:
naive difference and logistic-regression IPW (baselines) vs CBPS (target), side by side on the same draws."""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np


def _ipw_att(x: np.ndarray, t: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Baseline: ATT weights from a maximum-likelihood logistic propensity; returns (estimate, max |SMD| after)."""
    from silverset.components.abtest.cbps import logistic_propensity, standardized_mean_differences

    pi = logistic_propensity(x, t)
    w = np.where(t, 1.0, pi / (1 - pi))
    estimate = float(y[t].mean() - np.average(y[~t], weights=w[~t]))
    return estimate, float(np.abs(standardized_mean_differences(x, t, w)).max())


def run_scenario(*, confounding: float, reps: int, users: int, bootstrap_reps: int, seed0: int) -> dict:
    from silverset.components.abtest import cbps, lift
    from silverset.components.abtest.analyze import AnalysisOptions, analyze_arrays
    from silverset.components.abtest.simulate import SimulationOptions, simulate

    cover = {
        k: 0
        for k in (
            "relative_lift_delta",
            "relative_lift_cuped",
            "difference_delta",
            "creation_relative_lift",
            "cbps_att",
            "cbps_att_over_identified",
        )
    }
    boot_cover = 0
    widths = {"delta": [], "cuped": []}
    att = {"naive": [], "ipw_logistic": [], "cbps": [], "cbps_over_identified": []}
    smd = {"before": [], "ipw_logistic": [], "cbps": [], "cbps_over_identified": []}
    balanced = {"ipw_logistic": 0, "cbps": 0, "cbps_over_identified": 0}
    truth = None
    start = time.perf_counter()
    for r in range(reps):
        seed = seed0 + r
        sim = simulate(SimulationOptions(users=users, seed=seed, salt=f"bench-{seed}", confounding=confounding))
        truth = sim.truth
        res = analyze_arrays(
            treatment=sim.treatment,
            outcomes=sim.outcomes,
            covariates=sim.covariates,
            options=AnalysisOptions(bootstrap_samples=0),
        )
        sc, cp = res.metrics
        t_sc = truth["satisfied_consumption"]
        cover["relative_lift_delta"] += sc.estimate.relative_lift_ci.covers(t_sc["relative_itt"])
        cover["relative_lift_cuped"] += sc.cuped.relative_lift_ci.covers(t_sc["relative_itt"])
        cover["difference_delta"] += sc.estimate.difference_ci.covers(t_sc["itt"])
        cover["creation_relative_lift"] += cp.estimate.relative_lift_ci.covers(
            truth["creation_participation"]["relative_itt"]
        )
        widths["delta"].append(sc.estimate.relative_lift_ci.width)
        widths["cuped"].append(sc.cuped.relative_lift_ci.width)
        tr = sim.treatment
        if r < bootstrap_reps:
            y = sim.outcomes["satisfied_consumption"]
            boot = lift.bootstrap_check(y[tr], y[~tr], sc.estimate, samples=500, seed=seed)
            boot_cover += boot.relative_lift_ci.covers(t_sc["relative_itt"])

        names = list(sim.covariates)
        x = np.column_stack([sim.covariates[k] for k in names])[tr]
        t = sim.triggered[tr]
        y = sim.outcomes["satisfied_consumption"][tr]
        smd["before"].append(float(np.abs(cbps.standardized_mean_differences(x, t)).max()))
        for key, over in (("cbps", False), ("cbps_over_identified", True)):
            fit = cbps.fit(x, t, names=names, over_identified=over)
            eff = cbps.weighted_effect(fit, x, t, y)
            att[key].append(eff.difference)
            smd[key].append(fit.max_abs_smd())
            balanced[key] += fit.max_abs_smd() < 0.1
            cover["cbps_att" if not over else "cbps_att_over_identified"] += (
                eff.difference_ci_low <= t_sc["att"] <= eff.difference_ci_high
            )
        att["naive"].append(float(y[t].mean() - y[~t].mean()))
        ipw, ipw_smd = _ipw_att(x, t, y)
        att["ipw_logistic"].append(ipw)
        smd["ipw_logistic"].append(ipw_smd)
        balanced["ipw_logistic"] += ipw_smd < 0.1
    true_att = truth["satisfied_consumption"]["att"]

    def bias(values):
        v = np.asarray(values)
        return {
            "mean": float(v.mean()),
            "bias": float(v.mean() - true_att),
            "sd": float(v.std(ddof=1)),
            "rmse": float(np.sqrt(np.mean((v - true_att) ** 2))),
            "bias_se": float(v.std(ddof=1) / np.sqrt(len(v))),
        }

    return {
        "confounding": confounding,
        "reps": reps,
        "users": users,
        "seconds": time.perf_counter() - start,
        "truth": {
            "relative_itt": truth["satisfied_consumption"]["relative_itt"],
            "att": true_att,
            "trigger_rate": truth["trigger_rate"],
        },
        "coverage_95": {k: v / reps for k, v in cover.items()}
        | {"relative_lift_bootstrap_percentile": boot_cover / bootstrap_reps if bootstrap_reps else None},
        "coverage_binomial_se": float(np.sqrt(0.95 * 0.05 / reps)),
        "mean_ci_width_relative_lift": {k: float(np.mean(v)) for k, v in widths.items()},
        "cuped_width_ratio": float(np.mean(widths["cuped"]) / np.mean(widths["delta"])),
        "att_estimates": {k: bias(v) for k, v in att.items()},
        "max_abs_smd_mean": {k: float(np.mean(v)) for k, v in smd.items()},
        "share_of_reps_all_smd_below_0_1": {k: v / reps for k, v in balanced.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="benchmarks/results", help="folder for abtest_coverage.json")
    parser.add_argument("--reps", type=int, default=200, help="simulations for the main (confounding 1) scenario")
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--bootstrap-reps", type=int, default=100)
    args = parser.parse_args()
    scenarios = [
        run_scenario(confounding=1.0, reps=args.reps, users=args.users, bootstrap_reps=args.bootstrap_reps, seed0=0),
        run_scenario(confounding=0.0, reps=max(args.reps // 3, 20), users=args.users, bootstrap_reps=0, seed0=10_000),
        run_scenario(confounding=2.0, reps=max(args.reps // 3, 20), users=args.users, bootstrap_reps=0, seed0=20_000),
    ]
    result = {
        "benchmark": "abtest_coverage",
        "what": "95% CI coverage over repeated simulated A/B tests (delta method, CUPED, bootstrap, CBPS) and bias of "
        "the triggered-vs-not effect: naive difference and logistic-MLE IPW (baselines) vs CBPS (target)",
        "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine()},
        "scenarios": scenarios,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "abtest_coverage.json"
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    for s in scenarios:
        a = s["att_estimates"]
        print(
            f"confounding {s['confounding']}: coverage {s['coverage_95']}; ATT bias naive {a['naive']['bias']:+.3f}, "
            f"IPW {a['ipw_logistic']['bias']:+.3f}, CBPS {a['cbps']['bias']:+.3f} (truth {s['truth']['att']}); "
            f"CUPED width x{s['cuped_width_ratio']:.2f}; {s['seconds']:.0f}s"
        )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
