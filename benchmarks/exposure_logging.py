"""Exposure-logging benchmark: does the experiment's exposure log slow the index server's hot path?

One run, one index, one set of requests, variants measured in alternation (ABAB... on a shared machine):

- ``logging``: the server as shipped with ``--experiment`` and ``--exposure-log`` (arm, trigger, exposure
  row appended per request, Parquet files written by a background thread);
- ``no_logging`` (the baseline): the same experiment, with ``ExposureLog.append`` replaced by a no-op in
  the server process, so only the logging differs;
- ``no_experiment`` (reference): no experiment at all; every triggered request is searched, so it does
  more ScaNN work than the two above (control is not searched) and is not the logging baseline.

Requests: ``{"user_id", "history": 20 video ids, "k": 10}`` over keep-alive loopback connections, closed
loop, from a separate client process (as in ``serving.py``, whose index builder and CPU accounting
are reused). Reported per run: QPS, p50/p99 latency, server CPU ms per request; per variant the
median over runs; the logging/no_logging ratios; and a correctness check: rows in the exposure log
equal the requests the server answered (read after a graceful shutdown).

A second, quieter measure (``in_process``): the search handler called directly in one process, 1000-request
blocks alternating logging on and off (the log detached from the handler); per request the calling
thread's CPU (the hot path) and the process CPU (adding the writer thread). On a shared, loaded machine the
HTTP figures swing by 2x between runs of the same variant; the in-process CPU difference is the figure to read.

What it does not show: cost with a slow or remote filesystem under the log folder (files are written off
the request path, but a full disk makes rows queue in memory), or with forked workers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

if not __package__:  # run as a file, the repository root is not importable: say how to run it
    raise SystemExit("run from the repository root as a module: python -m benchmarks.exposure_logging")

from benchmarks import _loadgen, serving  # noqa: E402 - after the guard; index builder and CPU accounting
from tests.helpers.ports import free_port, wait_ready  # noqa: E402

SEARCH_PATH = serving.SEARCH_PATH
NO_OP_APPEND = (
    "import silverset.components.abtest.exposure as exposure; exposure.ExposureLog.append = lambda self, row: None; "
)


def request_bodies(n_videos: int, *, users: int, history: int, seed: int) -> list[bytes]:
    """One search body per simulated user: a random history of ``history`` video ids, k=10."""
    rng = np.random.default_rng(seed)
    return [
        json.dumps(
            {"user_id": f"user-{u}", "history": [f"v{i:07d}" for i in rng.integers(0, n_videos, history)], "k": 10}
        ).encode()
        for u in range(users)
    ]


def server_code(index_dir: Path, port: int, *, variant: str, experiment: Path, log_dir: Path, max_rows: int) -> str:
    if variant == "no_experiment":
        options = "ServerOptions(verify_digest=False)"
    else:
        options = (
            f"ServerOptions(verify_digest=False, experiment={str(experiment)!r}, exposure_log={str(log_dir)!r}, "
            f"exposure_max_rows={max_rows})"
        )
    return (
        (NO_OP_APPEND if variant == "no_logging" else "")
        + "from silverset.components.index.server import serve, ServerOptions; "
        + f"serve(index_dir={str(index_dir)!r}, port={port}, options={options})"
    )


def measure(
    index_dir: Path,
    bodies_path: Path,
    *,
    variant: str,
    experiment: Path,
    log_dir: Path,
    connections: int,
    seconds: float,
    max_rows: int,
) -> dict:
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            server_code(index_dir, port, variant=variant, experiment=experiment, log_dir=log_dir, max_rows=max_rows),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_ready(port, server, timeout_s=600, poll_s=0.5)
        client = subprocess.Popen(
            [
                sys.executable,
                *_loadgen.command(
                    port=port,
                    path=SEARCH_PATH,
                    bodies=bodies_path,
                    connections=connections,
                    seconds=seconds,
                    drain=True,
                ),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert client.stdout.readline().strip() == "MEASURING"
        cpu0 = serving.process_tree_cpu_s(server.pid)
        result = json.loads(client.stdout.readline())
        cpu1 = serving.process_tree_cpu_s(server.pid)
        client.wait(timeout=60)
        result.update(
            {
                "server_cpu_ms_per_request": 1000 * (cpu1 - cpu0) / max(1, result["requests"]),
                "load_average_1m": os.getloadavg()[0],
            }
        )
    finally:
        server.terminate()  # SIGTERM: uvicorn shuts down gracefully and the lifespan closes (flushes) the log
        try:
            result_code = server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            result_code = None
    result["server_exit_code"] = result_code
    if variant == "logging":
        from silverset.components.abtest.exposure import exposure_files, read_exposures

        result["exposure_rows"] = read_exposures(log_dir).num_rows
        result["exposure_files"] = len(exposure_files(log_dir))
        result["rows_match_answers"] = result["exposure_rows"] == result["answered_incl_warmup"]
    return result


def in_process(
    index_dir: Path, bodies: list[bytes], *, experiment: Path, log_dir: Path, max_rows: int, blocks: int, per_block: int
) -> dict:
    """The search handler called directly (no HTTP, no client), blocks alternating logging on and off in one process.

    Logging off = the same experiment with the handler's exposure log detached, so the only difference is
    building and appending the row. Per request: wall and calling-thread CPU (the hot path) and process
    CPU (adds the writer thread's Parquet work).
    """
    from fastapi.testclient import TestClient

    from silverset.components.abtest.exposure import read_exposures
    from silverset.components.index.server import ServerOptions, create_app

    app = create_app(
        index_dir,
        ServerOptions(
            verify_digest=False, experiment=str(experiment), exposure_log=str(log_dir), exposure_max_rows=max_rows
        ),
        poll=False,
    )
    samples: dict[str, dict[str, list[float]]] = {
        v: {"wall_us": [], "thread_cpu_us": [], "process_cpu_us": []} for v in ("logging", "no_logging")
    }
    with TestClient(app):  # runs the lifespan: index loaded, exposure log opened (and closed, flushed, on exit)
        search, log = app.search, app.search.exposures
        for i in range(200):  # warm-up
            search("red_dominant", bodies[i % len(bodies)], None)
        for block in range(blocks):
            for variant in ("logging", "no_logging") if block % 2 == 0 else ("no_logging", "logging"):
                search.exposures = log if variant == "logging" else None
                w0, t0, p0 = time.perf_counter(), time.thread_time(), time.process_time()
                for i in range(per_block):
                    status, _ = search("red_dominant", bodies[(block * per_block + i) % len(bodies)], None)
                    assert status == 200
                w1, t1, p1 = time.perf_counter(), time.thread_time(), time.process_time()
                for key, value in (("wall_us", w1 - w0), ("thread_cpu_us", t1 - t0), ("process_cpu_us", p1 - p0)):
                    samples[variant][key].append(1e6 * value / per_block)
        search.exposures = log
    result: dict = {"blocks": blocks, "requests_per_block": per_block}
    for variant, metrics in samples.items():
        result[variant] = {key: float(np.median(values)) for key, values in metrics.items()}
    result["added_us_per_request"] = {
        key: result["logging"][key] - result["no_logging"][key] for key in result["logging"]
    }
    result["added_share"] = {
        key: result["added_us_per_request"][key] / result["no_logging"][key] for key in result["logging"]
    }
    result["exposure_rows"] = read_exposures(log_dir).num_rows
    result["rows_match_requests"] = result["exposure_rows"] == blocks * per_block + 200
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--n", type=int, default=200_000, help="vectors in the index")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of every variant")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--history", type=int, default=20, help="video ids per request's history")
    parser.add_argument(
        "--max-rows",
        type=int,
        default=2000,
        help="rows per exposure file: small, so the writer thread works during the measured seconds",
    )
    parser.add_argument("--workdir", default="/tmp/silverset-exposure-bench")
    parser.add_argument("--blocks", type=int, default=20, help="in-process: alternating blocks per variant")
    parser.add_argument("--per-block", type=int, default=1000, help="in-process: requests per block")
    args = parser.parse_args()

    import shutil

    from benchmarks.ann import clustered
    from silverset.components.abtest.experiment import create_experiment
    from silverset.components.common.spec import example_specs_dir, load_spec

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    index_dir, reused = serving.build(workdir, clustered(args.n, 128), brute_force=False)
    build_s = time.perf_counter() - t0
    experiment = create_experiment(
        spec=load_spec(example_specs_dir() / "red_dominant.yaml"),
        salt="bench",
        treatment_share=0.5,
        out_dir=workdir / "experiment",
    )
    bodies_path = workdir / "bodies.jsonl"
    bodies_path.write_bytes(b"\n".join(request_bodies(args.n, users=5000, history=args.history, seed=0)) + b"\n")
    results: dict = {
        "benchmark": "exposure_logging",
        "n": args.n,
        "d": 128,
        "k": 10,
        "history": args.history,
        "cpus": os.cpu_count(),
        "connections": args.connections,
        "seconds_per_run": args.seconds,
        "index_reused": reused,
        "index_build_s": build_s,
        "experiment_id": experiment.experiment_id,
        "treatment_share": experiment.treatment_share,
        "exposure_max_rows": args.max_rows,
        "load_average_at_start": list(os.getloadavg()),
        "runs": {"logging": [], "no_logging": [], "no_experiment": []},
    }
    log_dir = workdir / "log-in-process"
    shutil.rmtree(log_dir, ignore_errors=True)
    results["in_process"] = in_process(
        index_dir,
        request_bodies(args.n, users=5000, history=args.history, seed=0),
        experiment=workdir / "experiment" / "experiment.json",
        log_dir=log_dir,
        max_rows=args.max_rows,
        blocks=args.blocks,
        per_block=args.per_block,
    )
    print("in_process", json.dumps(results["in_process"]), flush=True)
    for round_ in range(args.rounds):
        for variant in (
            ("no_logging", "logging", "no_experiment")
            if round_ % 2 == 0
            else ("logging", "no_logging", "no_experiment")
        ):
            log_dir = workdir / f"log-{variant}-{round_}"
            shutil.rmtree(log_dir, ignore_errors=True)
            run = measure(
                index_dir,
                bodies_path,
                variant=variant,
                experiment=workdir / "experiment" / "experiment.json",
                log_dir=log_dir,
                connections=args.connections,
                seconds=args.seconds,
                max_rows=args.max_rows,
            )
            results["runs"][variant].append(run)
            print(
                variant,
                round_,
                {k: run.get(k) for k in ("qps", "p50_ms", "p99_ms", "server_cpu_ms_per_request", "exposure_files")},
                flush=True,
            )
    for variant, runs in results["runs"].items():
        results[variant] = {
            k: float(np.median([r[k] for r in runs])) for k in ("qps", "p50_ms", "p99_ms", "server_cpu_ms_per_request")
        }
        results[variant]["errors"] = sum(r["errors"] for r in runs)
    results["logging_vs_no_logging"] = {
        "qps_ratio": results["logging"]["qps"] / results["no_logging"]["qps"],
        "p99_ratio": results["logging"]["p99_ms"] / results["no_logging"]["p99_ms"],
        "server_cpu_ms_per_request_added": results["logging"]["server_cpu_ms_per_request"]
        - results["no_logging"]["server_cpu_ms_per_request"],
        "qps_range_no_logging": [
            min(r["qps"] for r in results["runs"]["no_logging"]),
            max(r["qps"] for r in results["runs"]["no_logging"]),
        ],
        "qps_range_logging": [
            min(r["qps"] for r in results["runs"]["logging"]),
            max(r["qps"] for r in results["runs"]["logging"]),
        ],
    }
    results["exposure_rows_match_answers"] = all(r["rows_match_answers"] for r in results["runs"]["logging"])
    results["load_average_at_end"] = list(os.getloadavg())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "exposure_logging.json").write_text(json.dumps(results, indent=2))
    print(
        json.dumps(
            {
                k: results[k]
                for k in (
                    "in_process",
                    "logging",
                    "no_logging",
                    "no_experiment",
                    "logging_vs_no_logging",
                    "exposure_rows_match_answers",
                )
            },
            indent=2,
        )
    )
    print(f"wrote {out / 'exposure_logging.json'}")


if __name__ == "__main__":
    main()
