"""Cost curves (issue 19, part 5): how each stage's cost grows with its work, through Silverset's real entry points.

    python -m benchmarks.cost_curves --out benchmarks/results [--quick] [--only frames,scoring,index,pipeline]
                                     [--n 1000,5000] [--max-point-s 1500]

Stages and scale points (``--quick``: tiny scales, a smoke run of under a minute per stage, except the pipeline's
200 and 300 videos, minutes each: at 120 videos the demo's student gate fails, at 40 its teacher gate):

- frames: videos/s framing 100, 1,000, 5,000 synthetic videos (2 s, 160x120, 15 fps; K=8 at 112 px) with the
  frames stage's Beam pipeline (DirectRunner), once whole and as 2 shards run one after another (kfp.local runs
  a ParallelFor's shards on this one machine); the shards' union row count is checked against the single run's.
- scoring: items/min scoring 100k, 1M, 5M 384-d embeddings with the MLP student through Beam RunInference
  (``score.bulk.run``), whole and as 2 shards (``score.shards.run_shard``) one after another.
- index: build seconds (the build-time tuning grid as the pipeline runs it), peak RSS and single-thread QPS +
  recall@10 on held-out queries at 100k, 1M, 3M 128-d clustered vectors (``index.build.build_index``).
- pipeline: ``pipelines.demo.run_demo`` (the kfp.local pipeline) at 200, 1,000, 5,000 videos with shards 1 and 2:
  pipeline wall seconds and seconds per kfp.local task.

Each point runs in its own child process (peak RSS from ``ru_maxrss``; its data is freed when it exits). Before a
point starts, its seconds are extrapolated from the stage's smaller points (log-log fit); a point predicted to
take more than ``--max-point-s`` is recorded as skipped with that prediction, never invented. For each curve
``log(cost) = a + b log(n)`` is fitted and the growth named (``benchmarks._cost_growth``); a PNG per curve is
written beside the JSON (``cost_curves_<stage>*.png``). Each run of ``--only`` merges its stages into
``<out>/cost_curves.json`` (a stage rerun replaces that stage; ``--n`` reruns single points of it). The machine
is shared: ``os.getloadavg()`` before and after every point is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if not __package__:  # run as a file, the repository root is not importable: say how to run it
    raise SystemExit("run from the repository root as a module: python -m benchmarks.cost_curves")

from benchmarks import _cost_growth as growth  # noqa: E402 - after the guard

STAGES = ("frames", "scoring", "index", "pipeline")
SCALES = {
    "full": {"frames": [100, 1_000, 5_000], "scoring": [100_000, 1_000_000, 5_000_000],
             "index": [100_000, 1_000_000, 3_000_000], "pipeline": [200, 1_000, 5_000]},
    "quick": {"frames": [10, 30, 60], "scoring": [20_000, 50_000, 100_000], "index": [20_000, 40_000, 80_000],
              "pipeline": [200, 300]},
}  # fmt: skip
PIPELINE_SHARDS = (1, 2)
FRAMES_CLIP = {"duration_s": 2.0, "width": 160, "height": 120, "k": 8}
SHARDS = 2
RESULT_FILE = "result.json"  # the child writes its result here, beside (not in) its work folder
JSON_NAME = "cost_curves.json"


def machine() -> dict:
    return {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "note": "2 cores shared with other engineers' jobs while this ran: see the load averages per point",
    }


# ---------------------------------------------------------------------------------------------- child processes


def run_child(task: dict, *, log: Path) -> dict:
    """Run ``task`` (stage, n, work, ...) in a child process; its result with the child's peak RSS added."""
    result_file = Path(f"{task['work']}.{RESULT_FILE}")
    result_file.unlink(missing_ok=True)
    command = [sys.executable, "-m", "benchmarks.cost_curves", "--child", json.dumps(task)]
    root = Path(__file__).resolve().parents[1]
    load_before = list(os.getloadavg())
    with log.open("a") as output:  # the child's stdout and stderr both (kfp.local prints on stdout)
        done = subprocess.run(command, cwd=root, stdout=output, stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0 or not result_file.exists():
        tail = log.read_text()[-3000:] if log.exists() else ""
        raise RuntimeError(f"{task['stage']} at n={task['n']} failed (exit {done.returncode}); log tail:\n{tail}")
    result = json.loads(result_file.read_text())
    result["loadavg_before"] = [round(x, 2) for x in load_before]
    result["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    return result


def child_main(task: dict) -> None:
    from benchmarks import _cost_stages as stages

    work = Path(task["work"])
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    stage, n = task["stage"], task["n"]
    if stage == "frames":
        result = stages.measure_frames(n=n, work=work, shards=SHARDS, **FRAMES_CLIP)
    elif stage == "scoring":
        result = stages.measure_scoring(n=n, work=work, shards=SHARDS)
    elif stage == "index":
        result = stages.measure_index(
            n=n, work=work, data=task["data"], budget_s=task.get("budget_s"), grid=task.get("grid")
        )
    elif stage == "pipeline":
        result = stages.measure_pipeline(n=n, work=work, shards=task["shards"], teacher_dir=Path(task["teacher"]))
    else:
        raise SystemExit(f"unknown stage {stage!r}")
    result["peak_rss_mib"] = stages.peak_rss_mib()
    shutil.rmtree(work, ignore_errors=True)
    Path(f"{task['work']}.{RESULT_FILE}").write_text(json.dumps(result))
    print("COST_CURVES_RESULT " + json.dumps(result), flush=True)  # also on stdout, for a reader of the log


# ------------------------------------------------------------------------------------------------------- curves


def predicted_seconds(points: list[dict], n: int) -> float | None:
    """Seconds a point at ``n`` would take (its child's wall seconds where recorded), extrapolated from the largest
    measured point with the log-log fit's exponent, at least 1 (linear): fixed costs do not shrink a larger point."""
    measured = sorted((p["n"], p.get("child_wall_seconds") or p["seconds"]) for p in points if p.get("seconds"))
    if not measured:
        return None
    exponent = 1.0
    if len({m[0] for m in measured}) >= 2:
        exponent = max(growth.fit_growth([m[0] for m in measured], [m[1] for m in measured])["exponent_b"], 1.0)
    largest_n, largest_s = measured[-1]
    return largest_s * (n / largest_n) ** exponent


def chosen_grid(points: list[dict]) -> dict:
    """The build-time configuration the tuner chose at the largest point of ``points`` (the index stage's grid
    runs), as a one-point grid (``TuningOptions`` fields): leaves as a factor of the default sqrt(n) leaves,
    dimensions per block, reorder quantization."""
    from silverset.components.index import ann

    tuned = [p for p in points if p.get("chosen", {}).get("num_leaves")]
    if not tuned:
        raise RuntimeError("--index-chosen-grid: run the index stage with its grid first (no tuned point measured)")
    point = max(tuned, key=lambda p: p["n"])
    base = ann.choose_parameters(point["n"], 128, k=10, brute_force_below=1).num_leaves
    chosen = point["chosen"]
    return {
        "leaves_factors": [round(chosen["num_leaves"] / base, 3)],
        "dimensions_per_block": [chosen["dimensions_per_block"]],
        "reorder_quantize": [chosen["reorder_quantize"]],
        "chosen_at_n": point["n"],
    }


def curve(points: list[dict], value) -> tuple[list[float], list[float]]:
    pairs = sorted((p["n"], value(p)) for p in points if value(p))
    return [p[0] for p in pairs], [p[1] for p in pairs]


def fitted(n: list[float], cost: list[float]) -> dict | None:
    """The growth fit of one curve, its statement and the marginal cost per unit between consecutive points."""
    if len(set(n)) < 2:
        return None
    fit = growth.fit_growth(n, cost)
    fit["statement"] = growth.describe(fit)
    fit["points"] = [[x, y] for x, y in zip(n, cost)]
    fit["marginal_cost_per_unit"] = [
        float(f"{(c2 - c1) / (n2 - n1):.4g}") for (n1, c1), (n2, c2) in zip(zip(n, cost), zip(n[1:], cost[1:]))
    ]
    return fit


def analyse(stage: str, entry: dict, out: Path, *, name: str = "") -> None:
    """Fit each curve of ``entry`` (growth) and write its PNGs beside the JSON (``plots``)."""
    points = entry["points"]
    series: dict[str, dict] = {}  # plot file -> {title, ylabel, series: label -> (n, cost)}
    fits: dict = {}
    if stage in ("frames", "scoring"):
        unit = "videos" if stage == "frames" else "384-d embeddings"
        single = curve(points, lambda p: p.get("seconds"))
        sharded = curve(points, lambda p: p.get("sharded", {}).get("seconds"))
        fits = {"seconds_single_run": fitted(*single), f"seconds_{SHARDS}_shards_in_sequence": fitted(*sharded)}
        series[f"cost_curves_{stage}.png"] = {
            "title": f"{stage}: wall seconds vs {unit} (Beam DirectRunner)",
            "ylabel": "seconds",
            "xlabel": unit,
            "series": {"single run": single, f"{SHARDS} shards, one after another": sharded},
        }
    elif stage == "index":
        build = curve(points, lambda p: p.get("seconds"))
        memory = curve(points, lambda p: p.get("peak_rss_delta_mib_build"))
        query = curve(points, lambda p: 1e3 / p["rate"] if p.get("rate") else None)
        fits = {
            "build_seconds": fitted(*build),
            "build_peak_rss_delta_mib": fitted(*memory),
            "query_ms_single_thread": fitted(*query),
        }
        what = "tuning grid" if "chosen" not in name else "the configuration chosen at the largest grid point"
        for suffix, data, title, ylabel in (
            ("", build, f"index build ({what} + final build + write) seconds vs vectors", "seconds"),
            ("_memory", memory, "index build peak RSS over the loaded vectors (MiB)", "MiB"),
            ("_query", query, "single-thread query time (ms) at the served parameters", "ms per query"),
        ):
            series[f"cost_curves_{name or stage}{suffix}.png"] = {
                "title": title,
                "ylabel": ylabel,
                "xlabel": "128-d vectors",
                "series": {"index": data},
            }
    elif stage == "pipeline":
        totals, per_task = {}, {}
        for shards in PIPELINE_SHARDS:
            mine = [p for p in points if p.get("shards") == shards]
            totals[f"pipeline seconds, shards={shards}"] = curve(mine, lambda p: p.get("seconds"))
            fits[f"pipeline_seconds_shards_{shards}"] = fitted(*totals[f"pipeline seconds, shards={shards}"])
            tasks = sorted({t for p in mine for t in p.get("pipeline_tasks", {})})
            for task in tasks:
                data = curve(mine, lambda p, t=task: p.get("pipeline_tasks", {}).get(t, {}).get("seconds"))
                fits.setdefault(f"task_seconds_shards_{shards}", {})[task] = fitted(*data)
                if shards == max(PIPELINE_SHARDS) and len(data[0]) >= 2:
                    per_task[task] = data
        series["cost_curves_pipeline.png"] = {
            "title": "local pipeline (kfp.local, run_demo): wall seconds vs videos",
            "ylabel": "seconds",
            "xlabel": "videos",
            "series": totals,
        }
        series["cost_curves_pipeline_tasks.png"] = {
            "title": f"kfp.local task seconds (summed over shards) vs videos, shards={max(PIPELINE_SHARDS)}",
            "ylabel": "seconds",
            "xlabel": "videos",
            "series": per_task,
        }
    entry["growth"] = fits
    entry["plots"] = []
    for name, plot in series.items():
        usable = {label: data for label, data in plot["series"].items() if len(set(data[0])) >= 2}
        if usable:
            growth.plot_curve(
                out / name, title=plot["title"], series=usable, xlabel=plot["xlabel"], ylabel=plot["ylabel"]
            )
            entry["plots"].append(name)


# --------------------------------------------------------------------------------------------------------- stages


def measure_stage(
    stage: str, scales: list[int], *, args, work: Path, previous: dict, grid_points: list[dict] | None = None
) -> dict:
    """Measure ``scales`` of ``stage`` (each point a child process), keeping ``previous`` points not rerun."""
    log = work / f"{stage}.log"
    variants: list[dict] = [{}]
    if stage == "pipeline":
        variants = [{"shards": int(s)} for s in args.pipeline_shards.split(",")]
        (work / "teacher").mkdir(parents=True, exist_ok=True)

    def rerun(point: dict) -> bool:  # a previous point or skip this run measures again
        return point["n"] in scales and any(all(point.get(k) == v for k, v in var.items()) for var in variants)

    entry = {
        "scales": "quick" if args.quick else "full",
        "points": [p for p in previous.get("points", []) if not rerun(p)],
        "skipped": [s for s in previous.get("skipped", []) if not rerun(s)],
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if stage == "index":
        entry["config"] = {"dimension": 128, "held_out_queries": 300, "spec": "red_dominant (recall_target 0.95)"}
    for variant in variants:
        for n in sorted(scales):
            done = [p for p in entry["points"] if all(p.get(k) == v for k, v in variant.items())]
            guess = predicted_seconds(done, n)
            if guess is not None and guess > args.max_point_s:
                entry["skipped"].append(
                    {
                        "n": n,
                        **variant,
                        "reason": f"predicted {guess:.0f} s from the measured points (log-log fit, growth at least "
                        f"linear) > --max-point-s {args.max_point_s:.0f}",
                        "predicted_seconds": round(guess, 1),
                        **({"note": args.skip_note} if args.skip_note else {}),
                    }
                )
                print(f"[cost_curves] {stage} n={n} {variant}: skipped, predicted {guess:.0f} s", flush=True)
                continue
            tag = "".join(f"-{k}{v}" for k, v in variant.items())  # a folder (and result file) per shard setting
            task = {"stage": stage, "n": n, "work": str(work / f"{stage}-{n}{tag}"), **variant}
            if stage == "pipeline":
                task["teacher"] = str(work / "teacher")
            if stage == "index":
                from benchmarks._cost_stages import INDEX_QUERIES, clustered_chunks

                data = work / f"index-{n}.npy"
                if not data.exists():
                    clustered_chunks(data, n=n + INDEX_QUERIES, d=128)
                task.update(data=str(data), budget_s=args.index_budget_s)
                if grid_points is not None:
                    task["grid"] = chosen_grid(grid_points)
            print(f"[cost_curves] {stage} n={n} {variant} ...", flush=True)
            started = time.perf_counter()
            try:
                point = run_child(task, log=log)
            except RuntimeError as error:
                entry["skipped"].append({"n": n, **variant, "reason": f"failed: {str(error)[-1500:]}"})
                print(f"[cost_curves] {error}", flush=True)
                continue
            finally:
                if stage == "index":
                    (work / f"index-{n}.npy").unlink(missing_ok=True)
            point["child_wall_seconds"] = round(time.perf_counter() - started, 1)
            if point.get("status", "SUCCEEDED") != "SUCCEEDED":  # a failed pipeline's seconds are not its cost
                entry["skipped"].append({"n": n, **variant, "reason": f"pipeline {point['status']}", "point": point})
                print(f"[cost_curves] {stage} n={n} {variant}: pipeline {point['status']}", flush=True)
                continue
            entry["points"].append(point)
            print(f"[cost_curves] {stage} n={n} {variant}: {point['seconds']} s, {point['rate']} {point['rate_unit']}")
    entry["points"].sort(key=lambda p: (p.get("shards", 0), p["n"]))
    entry["finished_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return entry


def _point_key(point: dict) -> tuple:
    return point["n"], point.get("shards")


def merge_write(path: Path, stages: dict, *, quick: bool) -> dict:
    """Merge ``stages`` into the JSON at ``path`` (re-read now: another --only run may have written it)."""
    report = json.loads(path.read_text()) if path.exists() else {}
    report.update(
        {
            "benchmark": "cost_curves",
            "what": __doc__.split("\n\n", 1)[0].strip(),
            "machine": machine(),
            "caveats": [
                "one run per point on a 2-core machine shared with other engineers' jobs (1-min load average 2-7 "
                "during these runs, recorded per point): wall seconds carry that noise, ratios within a point "
                "(single vs sharded) more than across points",
                "sharded runs go one shard after another (as kfp.local runs a ParallelFor here, DirectRunner "
                "in-process): they show sharding's overhead, not the speed-up of shards on separate pods",
                "a growth statement from 2 points (index with its grid, pipeline) is a slope, not a test of the shape",
                "index QPS is wall-clock queries/s of one thread; at 3M it was measured under a load average of ~6",
            ],
            "how": "each point in its own child process; seconds are wall seconds of the stage's entry point, "
            "excluding imports and the data generation (recorded beside them); peak_rss_mib is the child's "
            "ru_maxrss (self) and that of the processes it waited for (children: kfp.local's task processes)",
        }
    )
    for key, entry in stages.items():  # points another run wrote meanwhile (same scales) are kept unless rerun here
        written = report.setdefault("stages", {}).get(key, {})
        if written.get("scales") == entry.get("scales"):
            ours = {_point_key(p) for p in entry["points"]} | {_point_key(p) for p in entry["skipped"]}
            entry["points"] += [p for p in written.get("points", []) if _point_key(p) not in ours]
            measured = {_point_key(p) for p in entry["points"]}
            entry["skipped"] += [
                p for p in written.get("skipped", []) if _point_key(p) not in ours and _point_key(p) not in measured
            ]
            entry["points"].sort(key=lambda p: (p.get("shards", 0), p["n"]))
        report["stages"][key] = entry
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv: list[str] | None = None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="benchmarks/results", help=f"folder for {JSON_NAME} and the PNGs")
    parser.add_argument("--quick", action="store_true", help="tiny scales (a smoke run)")
    parser.add_argument("--only", default=",".join(STAGES), help="comma-separated stages to run")
    parser.add_argument("--n", default="", help="comma-separated scale points to (re)run; default: all of the stage")
    parser.add_argument("--max-point-s", type=float, default=1500.0, help="skip a point predicted to take longer")
    parser.add_argument(
        "--index-budget-s", type=float, default=None, help="index tuning grid budget (default: the build's own)"
    )
    parser.add_argument(
        "--index-chosen-grid",
        action="store_true",
        help="build each index point with the configuration the tuner chose at the largest smaller point (one "
        "build-time configuration instead of the grid): for a size where the grid does not fit the time",
    )
    parser.add_argument(
        "--pipeline-shards", default="1,2", help="pipeline shard settings to run, in this order (default 1,2)"
    )
    parser.add_argument("--skip-note", default="", help="why --max-point-s was set where it is (kept with a skip)")
    parser.add_argument("--analyse-only", action="store_true", help="refit and replot the JSON's stages, no runs")
    parser.add_argument("--work", default="", help="scratch folder (default: a new temporary folder, removed)")
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child_main(json.loads(args.child))
        return None
    from silverset.components.common.errors import SilversetInputError

    stages = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in stages if s not in STAGES]
    if unknown or not stages:
        raise SilversetInputError("--only", f"{', '.join(unknown) or 'nothing'}: expected some of {', '.join(STAGES)}")
    try:
        points = [int(x) for x in args.n.split(",") if x.strip()]
    except ValueError:
        raise SilversetInputError("--n", f"expected comma-separated integers, got {args.n!r}") from None
    out = Path(args.out)
    path = out / JSON_NAME
    report: dict = {}
    if args.analyse_only:  # refit and replot the stages already in the JSON, measuring nothing
        if not path.exists():
            raise SilversetInputError(f"--out '{out}'", f"has no {JSON_NAME} to analyse")
        report = merge_write(path, {}, quick=args.quick)  # the header (what, how, caveats) as this version says
        for key, entry in report["stages"].items():
            if key.split("_chosen_config")[0] in stages:
                analyse(key.split("_chosen_config")[0], entry, out, name=key)
        path.write_text(json.dumps(report, indent=2) + "\n")
        return report
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="silverset-cost-curves-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        for stage in stages:
            existing = json.loads(path.read_text()).get("stages", {}) if path.exists() else {}
            key = "index_chosen_config" if stage == "index" and args.index_chosen_grid else stage
            previous = existing.get(key, {})
            if previous.get("scales") != ("quick" if args.quick else "full"):
                previous = {}
            scales = SCALES["quick" if args.quick else "full"][stage]
            if points:
                scales = [n for n in scales if n in points] or points
            grid_points = existing.get("index", {}).get("points", []) if key == "index_chosen_config" else None
            entry = measure_stage(stage, scales, args=args, work=work, previous=previous, grid_points=grid_points)
            if grid_points is not None:
                entry["note"] = (
                    "every point built with the one build-time configuration the tuner chose at the largest n of "
                    "the index stage (its grid did not fit the time at the largest n); query-time knobs still tuned"
                )
            report = merge_write(path, {key: entry}, quick=args.quick)
            analyse(stage, report["stages"][key], out, name=key)  # the merged points
            path.write_text(json.dumps(report, indent=2) + "\n")
            print(json.dumps({key: report["stages"][key]["growth"]}, indent=1), flush=True)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    return report


if __name__ == "__main__":
    try:
        main()
    except Exception as error:  # a bad flag: exit 2 with the message
        from silverset.components.common.errors import SilversetInputError

        if isinstance(error, SilversetInputError):
            print(f"error: {error}", file=sys.stderr)
            raise SystemExit(2) from None
        raise
