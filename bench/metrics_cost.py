#!/usr/bin/env python3
"""The cost of metrics on the hot path: requests/s with and without --admin.

    .venv/bin/python bench/metrics_cost.py [--seconds 10] [--rounds 3]

One nginx backend (one worker, 19-byte answer) and `fastroute serve` in front
of it, without --admin (nothing is counted) and with --admin (every request
counted, and the admin port scraped once a second, as Prometheus would),
alternating for --rounds rounds of `wrk -t1 -c32 -d<seconds>` each; prints
each run and the ratio of the medians.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.compare import free_port, gateway_over_nginx, wrk  # noqa: E402


def scrape_every_second(port: int, stop: threading.Event) -> None:
    while not stop.wait(1.0):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            response.read()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    runs: dict[str, list[float]] = {"off": [], "on": []}
    for _ in range(args.rounds):
        for mode in ("off", "on"):
            admin = free_port()
            extra = ["--admin", f"127.0.0.1:{admin}"] if mode == "on" else []
            with gateway_over_nginx(*extra) as (port, _):
                wrk(port, 32, 2)  # warm up: pooled backend connections, caches
                stop = threading.Event()
                scraper = threading.Thread(target=scrape_every_second, args=(admin, stop), daemon=True)
                if mode == "on":
                    scraper.start()
                result = wrk(port, 32, args.seconds)
                stop.set()
                if mode == "on":
                    scraper.join()
            runs[mode].append(result["rps"])
            print(f"metrics {mode:>3}: {result['rps']:,.0f} req/s")
    off, on = statistics.median(runs["off"]), statistics.median(runs["on"])
    print(f"\nmedian without --admin {off:,.0f} req/s, with --admin {on:,.0f} req/s: "
          f"ratio {on / off:.3f} (cost {100 * (1 - on / off):.1f}%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
