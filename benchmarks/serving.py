"""Serving benchmark: the index server over loopback, k=10, d=128, against a bare ASGI endpoint under the same client.

Goals (issue 19, part 4): >= 2,500 QPS with p99 < 10 ms with 2 workers, and within 1.5x of a bare ASGI
endpoint's QPS under the same client.

Variants, all started once and measured in ``--rounds`` rounds whose order rotates, with the same client and
queries:

- ``scann_1_worker`` / ``scann_2_workers``: the server as shipped (``serve``: raw-ASGI search path), index
  loaded once and, for 2 workers, forked;
- ``bare_asgi_1_worker`` / ``bare_asgi_2_workers``: the reference, a raw ASGI app that reads the request body
  and answers a fixed body (the bytes of a real search answer, so response size is the same), run by the same
  ``supervisor.run_app`` (same uvicorn config, socket and pre-fork) as the index server.

The load generator (``benchmarks._loadgen``) is a separate process: one thread, ``selectors`` over C persistent
keep-alive sockets, pre-encoded request bytes, so it costs far less CPU per request than the server.
Reported per variant: median QPS and latency percentiles over rounds (and every round), server and client CPU
milliseconds per request (from /proc and getrusage), the 1-minute load average around each measurement (the
machine is shared), and the QPS ratio bare/scann per round. ``--profile`` adds the server's in-process cost per
request by part (JSON parse + validation, query build, ScaNN search, response build + encode, metrics) over
the same queries. Default 200k vectors (a few minutes here, index built with a one-point tuning grid);
``--full`` 1M. Indexes are cached in ``--workdir`` and rebuilt only when missing. The load generator is
``benchmarks._loadgen``; run from the repository root: ``python -m benchmarks.serving``. ``--quick``: one
round of 2 s per variant, written to serving_quick.json (a smoke check; the committed serving.json is the full run).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent

if not __package__:  # run as a file, the repository root is not importable: say how to run it
    raise SystemExit("run from the repository root as a module: python -m benchmarks.serving")

from benchmarks import _loadgen  # noqa: E402 - after the guard
from tests.helpers.ports import free_port, wait_ready  # noqa: E402

ATTRIBUTE = "red_dominant"
SEARCH_PATH = f"/v1/attributes/{ATTRIBUTE}/search"
# One build point (the default parameters; the query-time knobs are still measured): the whole grid at 1M is
# ~600 s here, and this benchmark measures the HTTP path around ScaNN, not the tuning.
ONE_POINT_GRID = {
    "leaves_factors": (1.0,),
    "dimensions_per_block": (2,),
    "reorder_quantize": ("float32",),
    "timed_queries": 100,
    "passes": 1,
}


def build(
    workdir: Path, vectors: np.ndarray, *, brute_force: bool = False, one_point_grid: bool = False
) -> tuple[Path, bool]:
    """Build (or reuse) the benchmark index over ``vectors`` (float32 [n, d]). Returns (folder, reused)."""
    from silverset.components.common.spec import example_specs_dir, load_spec
    from silverset.components.index.build import BuildOptions, build_index, history_schema
    from silverset.components.index.tuning import TuningOptions

    n, d = vectors.shape
    out = workdir / ("exact" if brute_force else "scann-one-point" if one_point_grid else "scann")
    algorithm = "brute_force" if brute_force else "tree_ah"
    if (out / "manifest.json").is_file():
        m = json.loads((out / "manifest.json").read_text())
        if m["count"] == n and m["dimensions"] == d and m["parameters"]["algorithm"] == algorithm:
            return out, True
    spec = load_spec(example_specs_dir() / "red_dominant.yaml")
    history = pa.table(
        {
            "video_id": pa.array([f"v{i:07d}" for i in range(n)]),
            "probability": pa.array(np.ones(n, np.float32)),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), d),
        },
        schema=history_schema(d),
    )
    options = BuildOptions(
        recall_queries=100,
        brute_force_below=n + 1 if brute_force else 20_000,
        grid=TuningOptions(**ONE_POINT_GRID) if one_point_grid else TuningOptions(),
    )
    build_index(history=history, errors=[], model_digest="sha256:bench", spec=spec, out=out, options=options)
    return out, False


# --- server side ------------------------------------------------------------------------------------------


def process_tree_cpu_s(pid: int) -> float:
    """utime + stime (seconds) of ``pid`` and its live children (forked workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


BARE_APP = """
import sys
from silverset.components.index.supervisor import run_app
body = open(sys.argv[1], "rb").read()
head = {"type": "http.response.start", "status": 200,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]}
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:  # read the whole request body, as any real endpoint must
        message = await receive()
        more = message.get("more_body", False)
    await send(head)
    await send({"type": "http.response.body", "body": body})
run_app(app, port=int(sys.argv[2]), workers=int(sys.argv[3]))
"""


def server_command(kind: str, index_dir: Path, port: int, *, workers: int, body_file: Path) -> list[str]:
    if kind == "bare_asgi":
        return [sys.executable, "-c", BARE_APP, str(body_file), str(port), str(workers)]
    code = (
        f"from silverset.components.index.server import serve, ServerOptions; "
        f"serve(index_dir={str(index_dir)!r}, port={port}, options=ServerOptions(verify_digest=False), "
        f"workers={workers})"
    )
    return [sys.executable, "-c", code]


def start(
    kind: str, index_dir: Path, *, workers: int, body_file: Path, site: str | None = None
) -> tuple[subprocess.Popen, int, float]:
    """Start a server process and wait until it answers; ``site``: a folder put first on its PYTHONPATH."""
    port = free_port()
    env = dict(os.environ)
    if site is not None:
        env["PYTHONPATH"] = os.pathsep.join([site, *filter(None, [env.get("PYTHONPATH")])])
    server = subprocess.Popen(
        server_command(kind, index_dir, port, workers=workers, body_file=body_file),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    started = time.perf_counter()
    wait_ready(port, server, timeout_s=600, path="/healthz" if kind == "bare_asgi" else "/readyz")
    return server, port, time.perf_counter() - started


def stop(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()


def measure(server: subprocess.Popen, port: int, bodies_path: Path, *, connections: int, seconds: float) -> dict:
    load_before = os.getloadavg()[0]
    client = subprocess.Popen(
        [
            sys.executable,
            *_loadgen.command(
                port=port, path=SEARCH_PATH, bodies=bodies_path, connections=connections, seconds=seconds, warmup=1.0
            ),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert client.stdout.readline().strip() == "MEASURING"
    cpu0 = process_tree_cpu_s(server.pid)
    result = json.loads(client.stdout.readline())
    cpu1 = process_tree_cpu_s(server.pid)
    client.wait(timeout=60)
    result.update(
        {
            "server_cpu_ms_per_request": 1000 * (cpu1 - cpu0) / max(1, result["requests"]),
            "server_cpu_cores": (cpu1 - cpu0) / result["seconds"],
            "load_average_1m_before": load_before,
            "load_average_1m_after": os.getloadavg()[0],
        }
    )
    return result


def one_answer(port: int, query: np.ndarray) -> bytes:
    import http.client

    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request(
        "POST",
        SEARCH_PATH,
        body=json.dumps({"vector": query.tolist(), "k": 10}),
        headers={"Content-Type": "application/json"},
    )
    response = c.getresponse()
    body = response.read()
    assert response.status == 200, body
    return body


def profile_search_path(index_dir: Path, queries: np.ndarray, *, repeats: int = 3) -> dict:
    """Microseconds per request of each part of the search path, in this process, over ``queries`` (median of repeats).

    Parts: the whole ``_SearchEndpoint`` call (what the ASGI layer calls), and separately JSON parse + validation,
    the query array, the ScaNN call with its leaves/reorder settings, and the response (hits -> JSON bytes).
    """
    import orjson

    from silverset.components.index.search import SearchRequest
    from silverset.components.index.server import ServerOptions, create_app

    app = create_app(index_dir, ServerOptions(verify_digest=False), poll=False)
    app.state.registry.refresh()
    endpoint, index = app.search, app.state.registry.get(ATTRIBUTE)
    bodies = [orjson.dumps({"vector": q.tolist(), "k": 10}) for q in queries]

    def per_request_us(fn) -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            for b in bodies:
                fn(b)
            times.append((time.perf_counter() - start) / len(bodies) * 1e6)
        return round(statistics.median(times), 1)

    vectors = [np.asarray(orjson.loads(b)["vector"], dtype=np.float32) for b in bodies]
    hits = [index.search(v, 10) for v in vectors]
    it = iter(range(10**9))

    def response(found) -> bytes:  # the reply the endpoint builds for a plain vector search
        return endpoint.dumps(
            {
                "results": [{"video_id": h.video_id, "score": h.score} for h in found],
                "index_version": index.version,
                "triggered": True,
                "affinity": None,
                "trigger_source": None,
                "served": bool(found),
            }
        )

    out = {
        "whole_endpoint_call": per_request_us(lambda b: endpoint(ATTRIBUTE, b)),
        "json_parse_and_validate": per_request_us(endpoint.parse),
        "pydantic_parse_and_validate_before": per_request_us(SearchRequest.model_validate_json),
        "scann_search_and_hits": per_request_us(lambda b: index.search(vectors[next(it) % len(vectors)], 10)),
        "response_bytes": per_request_us(lambda b: response(hits[next(it) % len(hits)])),
        "requests": len(bodies),
        "note": "in-process, no HTTP; the ASGI/uvicorn layer is the rest of server_cpu_ms_per_request",
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--full", action="store_true", help="1M vectors (the issue's size)")
    parser.add_argument(
        "--full-grid", action="store_true", help="build with the whole ScaNN tuning grid (~600 s at 1M)"
    )
    parser.add_argument("--seconds", type=float, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument(
        "--profile", action="store_true", help="also the in-process cost of each part of the search path"
    )
    parser.add_argument("--workdir", default="/tmp/silverset-serving-bench")
    parser.add_argument(
        "--quick", action="store_true", help="one 2 s round per variant, to serving_quick.json (a smoke check)"
    )
    parser.add_argument(
        "--fast-http-site",
        help="a folder holding httptools and uvloop (pip install --target DIR "
        "httptools "
        "uvloop): also measure both 2-worker servers with them, which uvicorn then picks",
    )
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.rounds = 2.0, 1
    n = 1_000_000 if args.full else args.n

    from benchmarks.ann import clustered

    data = clustered(n + 1000, 128)
    vectors, queries = data[:n], data[n:]
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    bodies_path = workdir / "bodies.jsonl"
    bodies_path.write_bytes(b"\n".join(json.dumps({"vector": q.tolist(), "k": 10}).encode() for q in queries) + b"\n")
    results: dict = {
        "benchmark": "serving",
        "n": n,
        "size_run": "1M (--full)" if args.full else f"{n:,} vectors",
        "d": 128,
        "k": 10,
        "cpus": os.cpu_count(),
        "goals": {"qps_2_workers": 2500, "p99_ms_2_workers": 10, "bare_over_scann_qps_at_most": 1.5},
        "load_average_at_start": list(os.getloadavg()),
        "http": "httptools" if importlib.util.find_spec("httptools") else "h11",
        "loop": "uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        "json": "orjson" if importlib.util.find_spec("orjson") else "json",
        "connections": args.connections,
        "seconds_per_measurement": args.seconds,
        "rounds": args.rounds,
    }
    started = time.perf_counter()
    (workdir / str(n)).mkdir(exist_ok=True)
    index_dir, results["index_reused"] = build(workdir / str(n), vectors, one_point_grid=not args.full_grid)
    results["index_build_s"] = round(time.perf_counter() - started, 1)
    manifest = json.loads((index_dir / "manifest.json").read_text())
    results["index"] = {
        "folder": str(index_dir),
        "parameters": manifest["parameters"],
        "tuning_grid": "whole grid" if args.full_grid else f"one point: {ONE_POINT_GRID}",
    }

    body_file = workdir / "bare_body.json"
    body_file.unlink(missing_ok=True)
    variants = {
        "scann_1_worker": ("scann", 1, None),
        "bare_asgi_1_worker": ("bare_asgi", 1, None),
        "scann_2_workers": ("scann", 2, None),
        "bare_asgi_2_workers": ("bare_asgi", 2, None),
    }
    if args.fast_http_site:
        variants.update(
            {
                "scann_2_workers_httptools_uvloop": ("scann", 2, args.fast_http_site),
                "bare_asgi_2_workers_httptools_uvloop": ("bare_asgi", 2, args.fast_http_site),
            }
        )
    servers: dict = {}
    try:
        for name in [v for v in variants if v.startswith("scann")] + [v for v in variants if v.startswith("bare")]:
            kind, workers, site = variants[name]
            if kind == "bare_asgi" and not body_file.exists():  # the bare endpoint answers the bytes of a real answer
                body_file.write_bytes(one_answer(servers["scann_1_worker"][1], queries[0]))
                results["response_bytes"] = body_file.stat().st_size
            servers[name] = start(kind, index_dir, workers=workers, body_file=body_file, site=site)
        results["server_ready_s"] = {name: round(s[2], 2) for name, s in servers.items()}
        rounds: dict = {name: [] for name in variants}
        names = list(variants)
        for r in range(args.rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:  # rotate the order each round
                server, port, _ = servers[name]
                rounds[name].append(
                    measure(server, port, bodies_path, connections=args.connections, seconds=args.seconds)
                )
                last = {k: round(v, 3) if isinstance(v, float) else v for k, v in rounds[name][-1].items()}
                print(name, json.dumps(last), flush=True)
    finally:
        for server, _, _ in servers.values():
            stop(server)

    for name, runs in rounds.items():
        results[name] = {
            "median_qps": round(statistics.median(x["qps"] for x in runs), 1),
            "median_p50_ms": round(statistics.median(x["p50_ms"] for x in runs), 3),
            "median_p99_ms": round(statistics.median(x["p99_ms"] for x in runs), 3),
            "median_server_cpu_ms_per_request": round(
                statistics.median(x["server_cpu_ms_per_request"] for x in runs), 4
            ),
            "errors": sum(x["errors"] for x in runs),
            "rounds": runs,
        }
    for workers in ("1_worker", "2_workers", "2_workers_httptools_uvloop"):
        if f"scann_{workers}" not in rounds:
            continue
        bare, scann = rounds[f"bare_asgi_{workers}"], rounds[f"scann_{workers}"]
        per_round = [b["qps"] / s["qps"] for b, s in zip(bare, scann)]
        results[f"bare_over_scann_qps_{workers}"] = {
            "median_of_rounds": round(statistics.median(per_round), 3),
            "per_round": [round(x, 3) for x in per_round],
        }
    cpu = {name: results[name]["median_server_cpu_ms_per_request"] for name in variants}
    results["gap"] = {
        "server_cpu_ms_per_request": cpu,
        "search_path_over_bare_cpu_ms": {
            w: round(cpu[f"scann_{w}"] - cpu[f"bare_asgi_{w}"], 4)
            for w in ("1_worker", "2_workers", "2_workers_httptools_uvloop")
            if f"scann_{w}" in cpu
        },
        "explanation": "both servers are CPU-bound on the same 2 shared cores, so the QPS ratio follows the ratio of "
        "server CPU per request: bare = the HTTP layer alone (uvicorn + h11, or httptools/uvloop); "
        "scann = the same layer + validation + the ScaNN search (search_path_us_per_request with "
        "--profile). With ScaNN's own single-query time s and the bare cost b per request, the ratio "
        "cannot go below (b + s) / b however lean the Python around the search is.",
    }
    two = results["scann_2_workers"]
    results["goals_met"] = {
        "qps_2_workers_at_least_2500": two["median_qps"] >= 2500,
        "p99_2_workers_under_10_ms": two["median_p99_ms"] < 10,
        "within_1.5x_of_bare_asgi_2_workers": results["bare_over_scann_qps_2_workers"]["median_of_rounds"] <= 1.5,
    }
    if args.profile:
        results["search_path_us_per_request"] = profile_search_path(index_dir, queries)
    results["load_average_at_end"] = list(os.getloadavg())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written = out / ("serving_quick.json" if args.quick else "serving.json")
    written.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k not in variants}, indent=2))
    print(f"wrote {written}")


if __name__ == "__main__":
    main()
