#!/usr/bin/env python3
"""The benchmark pass of CI: short, and judged only by ratios within the run.

    .venv/bin/python bench/ci.py [--json bench-ci.json]

Runs the in-process benchmarks (route lookups compiled and twin, head
checks compiled and twin, one proxied request under each parser) briefly
with pytest-benchmark, and the whole exchange on each --io path (a gateway
process under wrk: its CPU per request, bench/test_exchange_bench.py),
saves its JSON, and fails (exit 1, one line per
floor broken) only when a ratio measured in this run falls below a floor.
Never an absolute time: the machine that runs it may be anything. The
floors are generous, so that only a real loss (the extension not used, say)
breaks them; each names the figure it guards. Compare two commits with the
saved JSON files: `.venv/bin/pytest-benchmark compare a.json b.json`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

# (what, faster benchmark, slower benchmark, floor of slower/faster), by name as pytest-benchmark saves it.
FLOORS = [
    ("compiled route table over its twin, 1,000 routes",
     "test_lookup[c-1000]", "test_lookup[py-1000]", 5.0),
    ("compiled head checks over their twin",
     "test_head_check_only[c]", "test_head_check_only[py]", 1.5),
    ("one request with the fast parser over h11",
     "test_proxy_one_request[fast]", "test_proxy_one_request[h11]", 1.5),
    ("one request's HTTP work on the native engine's lane over the trio path's",
     "test_proxy_one_request_by_path[native]", "test_proxy_one_request_by_path[trio]", 1.5),
    # Issue 17's floor: the native exchange at least 3x cheaper than the trio one (measured 5.6x).
    ("the gateway's CPU per whole exchange, trio path over the native engine",
     "test_whole_exchange_by_path[native]:gateway_cpu_us_per_request",
     "test_whole_exchange_by_path[trio]:gateway_cpu_us_per_request", 3.0),
]
SELECTED = ["test_table_bench.py::test_lookup", "test_request_bench.py::test_head_check_only",
            "test_request_bench.py::test_proxy_one_request", "test_request_bench.py::test_proxy_one_request_by_path",
            "test_exchange_bench.py::test_whole_exchange_by_path"]


def medians(report: dict[str, object]) -> dict[str, float]:
    found: dict[str, float] = {}
    for bench in report["benchmarks"]:  # type: ignore[union-attr]
        found[bench["name"]] = float(bench["stats"]["median"])  # type: ignore[index]
        # A figure the benchmark measured itself (the gateway's CPU per request), as "name:key".
        for key, value in bench.get("extra_info", {}).items():  # type: ignore[attr-defined]
            if isinstance(value, (int, float)):
                found[f"{bench['name']}:{key}"] = float(value)  # type: ignore[index]
    return found


def broken_floors(found: dict[str, float]) -> list[str]:
    lines = []
    for what, fast, slow, floor in FLOORS:
        if fast not in found or slow not in found:
            lines.append(f"bench: {what}: {fast} or {slow} did not run")
            continue
        ratio = found[slow] / found[fast]
        print(f"bench: {what}: {ratio:.1f}x (floor {floor:g}x)")
        if ratio < floor:
            lines.append(f"bench: {what}: {ratio:.2f}x is below the floor of {floor:g}x")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=Path("bench-ci.json"), help="where the results go")
    args = parser.parse_args()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--benchmark-only",
         "--benchmark-max-time=0.2", "--benchmark-min-rounds=5", f"--benchmark-json={args.json}",
         *[str(HERE / name) for name in SELECTED]],
        cwd=HERE.parent, timeout=900,
    )
    if result.returncode != 0:
        print("bench: the benchmark run failed", file=sys.stderr)
        return 1
    broken = broken_floors(medians(json.loads(args.json.read_text())))
    for line in broken:
        print(line, file=sys.stderr)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
