"""Closed-loop HTTP load generator over raw keep-alive sockets, run in its own process by the serving benchmarks.

``python -m benchmarks._loadgen PORT PATH BODIES CONNECTIONS SECONDS [--warmup S] [--drain]``: one thread,
``selectors`` over CONNECTIONS persistent sockets to 127.0.0.1:PORT; each sends ``POST PATH`` with the next body of
BODIES (one JSON body per line) as soon as its previous answer is complete. After ``--warmup`` seconds it prints
``MEASURING`` (the parent samples the server's CPU there and at the result line), measures for SECONDS, then prints
one JSON line: requests, errors, seconds, qps, p50/p90/p99 ms, connections, client CPU ms per request, and
``answered_incl_warmup`` (every 200, warm-up included). ``--drain`` first collects the answers still in flight, so
``answered_incl_warmup`` counts every request the server answered.

Raw sockets rather than an HTTP client library: the client's own CPU per request stays far below the server's.
"""

from __future__ import annotations

import argparse
import json
import resource
import selectors
import socket
import time
from pathlib import Path

import numpy as np


def _request(path: str, body: bytes) -> bytes:
    return (
        b"POST " + path.encode() + b" HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


def _complete_answer(buffer: bytes) -> tuple[bytes, int] | None:
    """(head, total length) of the first complete HTTP answer in ``buffer``, or None while it is incomplete."""
    head_end = buffer.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    head = buffer[:head_end]
    length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
    total = head_end + 4 + length
    return (head, total) if len(buffer) >= total else None


def run(
    *, port: int, path: str, bodies: list[bytes], connections: int, seconds: float, warmup: float, drain: bool
) -> dict:
    """Drive the closed loop and return the result dict (see the module docstring); prints MEASURING on the way."""
    requests = [_request(path, body) for body in bodies]
    selector = selectors.DefaultSelector()
    for i in range(connections):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        state = {"buffer": b"", "sent_at": time.perf_counter(), "next": i}
        sock.sendall(requests[i % len(requests)])
        selector.register(sock, selectors.EVENT_READ, state)
    latencies, errors, answered, measuring = [], 0, 0, False
    started = time.perf_counter()
    measure_from, measure_until = started + warmup, started + warmup + seconds
    cpu0 = t0 = None
    while True:
        now = time.perf_counter()
        if not measuring and now >= measure_from:
            measuring, cpu0, t0 = True, resource.getrusage(resource.RUSAGE_SELF), now
            print("MEASURING", flush=True)
        if now >= measure_until:
            break
        for key, _ in selector.select(1.0):
            state = key.data
            state["buffer"] += key.fileobj.recv(65536)
            answer = _complete_answer(state["buffer"])
            if answer is None:
                continue
            head, total = answer
            state["buffer"] = state["buffer"][total:]
            done = time.perf_counter()
            ok = head.startswith(b"HTTP/1.1 200")
            answered += ok
            if measuring:
                latencies.append(done - state["sent_at"])
                errors += not ok
            state["next"] += connections
            state["sent_at"] = done
            key.fileobj.sendall(requests[state["next"] % len(requests)])
    elapsed = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    if drain:  # stop sending; collect the answers still in flight
        deadline, pending = time.perf_counter() + 10, connections
        while pending and time.perf_counter() < deadline:
            for key, _ in selector.select(1.0):
                key.data["buffer"] += key.fileobj.recv(65536)
                answer = _complete_answer(key.data["buffer"])
                if answer is not None:
                    answered += answer[0].startswith(b"HTTP/1.1 200")
                    selector.unregister(key.fileobj)
                    pending -= 1
    lat = np.array(latencies) * 1000
    client_cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    return {
        "requests": int(lat.size),
        "errors": int(errors),
        "answered_incl_warmup": int(answered),
        "seconds": elapsed,
        "qps": lat.size / elapsed,
        "p50_ms": float(np.percentile(lat, 50)),
        "p90_ms": float(np.percentile(lat, 90)),
        "p99_ms": float(np.percentile(lat, 99)),
        "connections": connections,
        "client_cpu_ms_per_request": 1000 * client_cpu / max(1, lat.size),
    }


def command(
    *, port: int, path: str, bodies: Path, connections: int, seconds: float, warmup: float = 2.0, drain: bool = False
) -> list[str]:
    """The argv (after the Python executable) that runs this load generator; run it from the repository root."""
    return [
        "-m",
        "benchmarks._loadgen",
        str(port),
        path,
        str(bodies),
        str(connections),
        str(seconds),
        "--warmup",
        str(warmup),
        *(["--drain"] if drain else []),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("path", help="request path, e.g. /v1/attributes/red_dominant/search")
    parser.add_argument("bodies", type=Path, help="one JSON request body per line")
    parser.add_argument("connections", type=int)
    parser.add_argument("seconds", type=float)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--drain", action="store_true")
    args = parser.parse_args(argv)
    bodies = args.bodies.read_bytes().splitlines()
    print(
        json.dumps(
            run(
                port=args.port,
                path=args.path,
                bodies=bodies,
                connections=args.connections,
                seconds=args.seconds,
                warmup=args.warmup,
                drain=args.drain,
            )
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
