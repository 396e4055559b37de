"""Serving benchmark: the index server over loopback, k=10, a 1M-vector restricted index.

Target: tree+AH+reorder ScaNN index (as `silverset index build` picks it). Baseline, same server and
client: a brute-force (exact) index over the same vectors. The client runs C keep-alive connections
(http.client, one thread each) for a fixed time and reports QPS and latency percentiles.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build(workdir: Path, vectors: np.ndarray, *, brute_force: bool) -> Path:
    from silverset.components.common.spec import example_specs_dir, load_spec
    from silverset.components.index.build import BuildOptions, build_index, history_schema

    spec = load_spec(example_specs_dir() / "red_dominant.yaml")
    n, d = vectors.shape
    history = pa.table({"video_id": pa.array([f"v{i:07d}" for i in range(n)]), "probability": pa.array(np.ones(n, np.float32)),
                        "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), d)}, schema=history_schema(d))
    out = workdir / ("exact" if brute_force else "scann")
    options = BuildOptions(recall_queries=100, brute_force_below=n + 1 if brute_force else 20_000)
    build_index(history=history, errors=[], model_digest="sha256:bench", spec=spec, out=out, options=options)
    return out


def load(port: int, queries: np.ndarray, *, connections: int, seconds: float) -> dict:
    bodies = [json.dumps({"vector": q.tolist(), "k": 10}).encode() for q in queries]
    latencies: list[list[float]] = [[] for _ in range(connections)]
    errors = [0] * connections
    stop_at = time.perf_counter() + seconds

    def worker(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        j = i
        while time.perf_counter() < stop_at:
            body = bodies[j % len(bodies)]
            j += connections
            t0 = time.perf_counter()
            conn.request("POST", "/v1/attributes/red_dominant/search", body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            latencies[i].append(time.perf_counter() - t0)
            errors[i] += response.status != 200
        conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    all_lat = np.array([x for lat in latencies for x in lat]) * 1000
    return {"requests": int(all_lat.size), "errors": int(sum(errors)), "seconds": elapsed, "qps": all_lat.size / elapsed,
            "p50_ms": float(np.percentile(all_lat, 50)), "p99_ms": float(np.percentile(all_lat, 99)), "connections": connections}


def serve_and_load(index_dir: Path, queries: np.ndarray, *, connections: int, seconds: float) -> dict:
    port = free_port()
    code = ("from silverset.components.index.server import serve, ServerOptions; "
            f"serve(index_dir={str(index_dir)!r}, port={port}, options=ServerOptions(verify_digest=True))")
    server = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
                raise RuntimeError("index server did not become ready")
            time.sleep(0.5)
        load_s = time.perf_counter() - started
        load(port, queries[:50], connections=connections, seconds=2)  # warm-up
        result = load(port, queries, connections=connections, seconds=seconds)
        result["server_ready_s"] = load_s
        return result
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--workdir", default="/tmp/silverset-serving-bench")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from ann import clustered

    data = clustered(args.n + 1000, 128)
    vectors, queries = data[: args.n], data[args.n :]
    workdir = Path(args.workdir)
    results = {"benchmark": "serving", "n": args.n, "d": 128, "k": 10, "cpus": os.cpu_count(),
               "target_qps": 1000, "target_p99_ms": 20}
    t0 = time.perf_counter()
    scann_dir = build(workdir, vectors, brute_force=False)
    results["scann_build_s"] = time.perf_counter() - t0
    results["scann"] = serve_and_load(scann_dir, queries, connections=args.connections, seconds=args.seconds)
    print("scann", results["scann"], flush=True)
    exact_dir = build(workdir, vectors, brute_force=True)
    results["exact"] = serve_and_load(exact_dir, queries, connections=args.connections, seconds=min(args.seconds, 10))
    print("exact", results["exact"], flush=True)
    results["meets_target"] = results["scann"]["qps"] >= 1000 and results["scann"]["p99_ms"] < 20
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "serving.json").write_text(json.dumps(results, indent=2))
    print(f"wrote {out / 'serving.json'}")


if __name__ == "__main__":
    main()
