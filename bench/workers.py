#!/usr/bin/env python3
"""Requests/s against the number of worker processes (--workers).

    .venv/bin/python bench/workers.py [--seconds 10] [--rounds 2] [--max-workers 2]

One nginx backend (one worker, 19-byte answer) and `fastroute serve
--workers N` in front of it, N from 1 to --max-workers, alternating for
--rounds rounds of `wrk -t1 -c32 -d<seconds>`; prints each run and the
ratio of each N's median to one worker's. On this 2-core machine wrk and
nginx share the cores with the workers, so the gain is capped well below Nx;
on a bigger machine, pin wrk and nginx apart (taskset) and raise --max-workers.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.compare import gateway_over_nginx, wrk  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-workers", type=int, default=2)
    args = parser.parse_args()
    runs: dict[int, list[float]] = {n: [] for n in range(1, args.max_workers + 1)}
    for _ in range(args.rounds):
        for n in runs:
            with gateway_over_nginx("--workers", str(n)) as (port, _):
                wrk(port, 32, 2)  # warm up
                result = wrk(port, 32, args.seconds)
            runs[n].append(result["rps"])
            print(f"--workers {n}: {result['rps']:,.0f} req/s, p50 {result.get('p50', 0):,.0f} us")
    one = statistics.median(runs[1])
    print()
    for n, values in runs.items():
        print(f"--workers {n}: median {statistics.median(values):,.0f} req/s, {statistics.median(values) / one:.2f}x one worker")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
