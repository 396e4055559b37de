"""Serving benchmark: the index server over loopback, k=10, a 1M-vector restricted index, 2 shared cores.

Variants, measured one after another in one run with the same client and queries:

- ``scann``: the server as shipped (pure-ASGI search path, leaves_to_search tuned at load), 1 worker;
- ``scann_2_workers``: the same, ``serve(workers=2)`` (index loaded once, forked);
- ``scann_manifest_leaves``: 1 worker, ``tune_leaves=False`` (the build's leaves_to_search), to separate
  the HTTP-path gain from the ScaNN-parameter gain;
- ``before``: the server module as of ``--before-commit`` (FastAPI route + BaseHTTPMiddleware), same index;
- ``exact``: baseline, brute-force (exact) index over the same vectors, shipped server.

The load generator is a separate process: one thread, ``selectors`` over C persistent keep-alive sockets,
pre-encoded request bytes, a minimal response parser, so it costs far less CPU per request than the
server. Reported per variant: QPS, latency percentiles, server and client CPU milliseconds per request
(from /proc and getrusage), and the 1-minute load average before and after (the machine is shared).
Indexes are cached in ``--workdir`` and rebuilt only when missing.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import selectors
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
SEARCH_PATH = "/v1/attributes/red_dominant/search"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build(workdir: Path, vectors: np.ndarray, *, brute_force: bool) -> tuple[Path, bool]:
    """Build (or reuse) the benchmark index. Returns (folder, reused)."""
    from silverset.components.common.spec import example_specs_dir, load_spec
    from silverset.components.index.build import BuildOptions, build_index, history_schema, read_index_manifest

    n, d = vectors.shape
    out = workdir / ("exact" if brute_force else "scann")
    algorithm = "brute_force" if brute_force else "tree_ah"
    if (out / "manifest.json").is_file():
        m = read_index_manifest(out)
        if m.count == n and m.dimensions == d and m.parameters["algorithm"] == algorithm:
            return out, True
    spec = load_spec(example_specs_dir() / "red_dominant.yaml")
    history = pa.table({"video_id": pa.array([f"v{i:07d}" for i in range(n)]), "probability": pa.array(np.ones(n, np.float32)),
                        "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), d)}, schema=history_schema(d))
    options = BuildOptions(recall_queries=100, brute_force_below=n + 1 if brute_force else 20_000)
    build_index(history=history, errors=[], model_digest="sha256:bench", spec=spec, out=out, options=options)
    return out, False


# --- load generator (runs in its own process: `serving.py --client ...`) ---------------------------------

def client_main(port: int, queries_path: str, connections: int, seconds: float, warmup: float) -> None:
    """Closed loop: each connection sends its next request as soon as the previous answer is complete."""
    queries = np.load(queries_path)
    requests = []
    for q in queries:
        body = json.dumps({"vector": q.tolist(), "k": 10}).encode()
        requests.append(b"POST " + SEARCH_PATH.encode() + b" HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    selector = selectors.DefaultSelector()
    for i in range(connections):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        state = {"buffer": b"", "sent_at": time.perf_counter(), "next": i}
        sock.sendall(requests[i % len(requests)])
        selector.register(sock, selectors.EVENT_READ, state)
    latencies, errors, measuring = [], 0, False
    started = time.perf_counter()
    measure_from, measure_until = started + warmup, started + warmup + seconds
    cpu0 = None
    while True:
        now = time.perf_counter()
        if not measuring and now >= measure_from:
            measuring, cpu0, t0 = True, resource.getrusage(resource.RUSAGE_SELF), now
            print("MEASURING", flush=True)  # the parent samples the server's CPU at this line and at the result
        if now >= measure_until:
            break
        for key, _ in selector.select(1.0):
            state = key.data
            state["buffer"] += key.fileobj.recv(65536)
            head_end = state["buffer"].find(b"\r\n\r\n")
            if head_end < 0:
                continue
            head = state["buffer"][:head_end]
            length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
            if len(state["buffer"]) < head_end + 4 + length:
                continue
            state["buffer"] = state["buffer"][head_end + 4 + length :]
            done = time.perf_counter()
            if measuring:
                latencies.append(done - state["sent_at"])
                errors += not head.startswith(b"HTTP/1.1 200")
            state["next"] += connections
            state["sent_at"] = done
            key.fileobj.sendall(requests[state["next"] % len(requests)])
    elapsed = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    lat = np.array(latencies) * 1000
    client_cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    print(json.dumps({"requests": int(lat.size), "errors": int(errors), "seconds": elapsed, "qps": lat.size / elapsed,
                      "p50_ms": float(np.percentile(lat, 50)), "p90_ms": float(np.percentile(lat, 90)),
                      "p99_ms": float(np.percentile(lat, 99)), "connections": connections,
                      "client_cpu_ms_per_request": 1000 * client_cpu / max(1, lat.size)}), flush=True)


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


def server_command(index_dir: Path, port: int, *, workers: int, tune_leaves: bool, before_source: Path | None) -> list[str]:
    options = f"ServerOptions(verify_digest=False, tune_leaves={tune_leaves})"
    if before_source is None:
        code = (f"from silverset.components.index.server import serve, ServerOptions; "
                f"serve(index_dir={str(index_dir)!r}, port={port}, options={options}, workers={workers})")
    else:  # the old module, loaded inside the package so its relative imports resolve
        code = ("import importlib.util, sys; "
                f"spec = importlib.util.spec_from_file_location('silverset.components.index._server_before', {str(before_source)!r}); "
                "m = importlib.util.module_from_spec(spec); sys.modules[spec.name] = m; spec.loader.exec_module(m); "
                f"m.serve(index_dir={str(index_dir)!r}, port={port}, options=m.ServerOptions(verify_digest=False))")
    return [sys.executable, "-c", code]


def measure(index_dir: Path, queries_path: Path, *, connections: int, seconds: float, workers: int = 1,
            tune_leaves: bool = True, before_source: Path | None = None) -> dict:
    import http.client

    port = free_port()
    server = subprocess.Popen(server_command(index_dir, port, workers=workers, tune_leaves=tune_leaves, before_source=before_source),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        started = time.perf_counter()
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                c.request("GET", "/readyz")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            if server.poll() is not None or time.perf_counter() - started > 600:
                raise RuntimeError(f"index server did not become ready: {server.stderr.read().decode()[-2000:]}")
            time.sleep(0.5)
        ready_s = time.perf_counter() - started
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", "/v1/attributes")
        served_with = (json.loads(c.getresponse().read()).get("red_dominant") or {}).get("served_with")
        load_before = os.getloadavg()[0]
        client = subprocess.Popen([sys.executable, __file__, "--client", str(port), str(queries_path), str(connections), str(seconds)],
                                  stdout=subprocess.PIPE, text=True)
        assert client.stdout.readline().strip() == "MEASURING"
        cpu0 = process_tree_cpu_s(server.pid)
        result = json.loads(client.stdout.readline())
        cpu1 = process_tree_cpu_s(server.pid)
        client.wait(timeout=60)
        result.update({"server_cpu_ms_per_request": 1000 * (cpu1 - cpu0) / max(1, result["requests"]),
                       "server_cpu_cores": (cpu1 - cpu0) / result["seconds"], "workers": workers,
                       "load_average_1m_before": load_before, "load_average_1m_after": os.getloadavg()[0],
                       "server_ready_s": ready_s, "served_with": served_with})
        return result
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workdir", default="/tmp/silverset-serving-bench")
    parser.add_argument("--before-commit", default="57ae842", help="commit whose components/index/server.py is the 'before' variant")
    parser.add_argument("--client", nargs=4, metavar=("PORT", "QUERIES", "CONNECTIONS", "SECONDS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        port, queries_path, connections, seconds = args.client
        client_main(int(port), queries_path, int(connections), float(seconds), warmup=2.0)
        return

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from ann import clustered

    data = clustered(args.n + 1000, 128)
    vectors, queries = data[: args.n], data[args.n :]
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    queries_path = workdir / "queries.npy"
    np.save(queries_path, queries)
    results = {"benchmark": "serving", "n": args.n, "d": 128, "k": 10, "cpus": os.cpu_count(), "target_qps": 1000, "target_p99_ms": 20,
               "load_average_at_start": list(os.getloadavg()),
               "http": "httptools" if importlib.util.find_spec("httptools") else "h11",
               "loop": "uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
               "json": "orjson" if importlib.util.find_spec("orjson") else "json"}
    t0 = time.perf_counter()
    scann_dir, results["scann_index_reused"] = build(workdir, vectors, brute_force=False)
    results["scann_build_s"] = time.perf_counter() - t0
    before_source = workdir / "server_before.py"
    before_source.write_bytes(subprocess.run(["git", "show", f"{args.before_commit}:components/index/server.py"], cwd=ROOT,
                                             check=True, capture_output=True).stdout)
    results["before_commit"] = args.before_commit
    common = {"connections": args.connections, "seconds": args.seconds}
    for name, kwargs in [("scann", {}), ("before", {"before_source": before_source}), ("scann_2_workers", {"workers": 2}),
                         ("scann_manifest_leaves", {"tune_leaves": False})]:
        results[name] = measure(scann_dir, queries_path, **common, **kwargs)
        print(name, results[name], flush=True)
    exact_dir, results["exact_index_reused"] = build(workdir, vectors, brute_force=True)
    results["exact"] = measure(exact_dir, queries_path, connections=args.connections, seconds=min(args.seconds, 10))
    print("exact", results["exact"], flush=True)
    results["load_average_at_end"] = list(os.getloadavg())
    best = max(("scann", "scann_2_workers"), key=lambda v: results[v]["qps"])
    results["best_variant"] = best
    results["meets_target"] = results[best]["qps"] >= 1000 and results[best]["p99_ms"] < 20
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "serving.json").write_text(json.dumps(results, indent=2))
    print(f"wrote {out / 'serving.json'}")


if __name__ == "__main__":
    main()
