#!/usr/bin/env python3
"""Normal clients' latency with and without 1,000 slowloris connections.

    .venv/bin/python bench/slowloris.py [--slow 1000] [--requests 2000]

Starts an nginx backend and `fastroute serve --no-docker` (subprocess), then
measures --requests sequential requests on one keep-alive connection (p50,
p99), first alone, then while --slow other connections each trickle their
request head, one byte a second (the gateway runs with a 120 s head timeout
so none is cut off during the run). Prints both and the p99 ratio (issue 6
asks for at most 2x). Slow bodies and slow readers are covered by tests.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.compare import gateway_over_nginx  # noqa: E402


def measure(port: int, count: int) -> list[float]:
    times = []
    with socket.create_connection(("127.0.0.1", port)) as sock:
        for _ in range(count):
            started = time.perf_counter()
            sock.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
            data = b""
            while not data.endswith(b"hello from backend\n"):
                data += sock.recv(65536)
            times.append(time.perf_counter() - started)
    return times


def summary(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    return statistics.median(ordered) * 1e6, ordered[int(len(ordered) * 0.99)] * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slow", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    slow: list[socket.socket] = []
    stop = threading.Event()
    # A 120 s head timeout: no slow connection is cut off during the run.
    with gateway_over_nginx("--request-head-timeout", "120") as (port, _):
        try:
            measure(port, 200)  # warm up
            alone = summary(measure(port, args.requests))
            for _ in range(args.slow):
                sock = socket.create_connection(("127.0.0.1", port))
                sock.sendall(b"GET /slow HTTP/1.1\r\n")
                slow.append(sock)

            def trickle() -> None:  # one more header byte per connection per second, until stop
                while not stop.wait(1.0):
                    for sock in slow:
                        try:
                            sock.send(b"X")
                        except OSError:
                            pass

            threading.Thread(target=trickle, daemon=True).start()
            time.sleep(1.5)
            crowded = summary(measure(port, args.requests))
        finally:
            stop.set()
            for sock in slow:
                sock.close()
    print(f"{args.requests} sequential requests on one connection, nginx backend, one gateway process")
    print(f"alone:                 p50 {alone[0]:.0f} us, p99 {alone[1]:.0f} us")
    print(f"with {args.slow} slowloris: p50 {crowded[0]:.0f} us, p99 {crowded[1]:.0f} us")
    print(f"p99 ratio: {crowded[1] / alone[1]:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
