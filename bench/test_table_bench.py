# Route table speed: `make bench` (pytest bench --benchmark-only).
#
# Each lookup benchmark runs the whole fixed path mix (1,000 paths) per
# round, so the per-lookup time is the reported time / 1,000. The yardstick
# is a plain dict keyed by the first path segment. Figures: bench/README.md.
# `python bench/test_table_bench.py [c|py] [routes]` loops for a profiler.

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from routes_data import FirstSegmentDict, make_paths, make_routes  # noqa: E402

SIZES = [10, 1_000, 100_000]
_cache: dict[int, tuple[dict[str, int], list[bytes]]] = {}


def data(size: int) -> tuple[dict[str, int], list[bytes]]:
    if size not in _cache:
        routes = make_routes(size)
        _cache[size] = (routes, make_paths(routes))
    return _cache[size]


def run_mix(lookup: Callable[[bytes], object], paths: list[bytes]) -> int:
    hits = 0
    for path in paths:
        if lookup(path) is not None:
            hits += 1
    return hits


@pytest.mark.parametrize("size", SIZES)
def test_lookup(benchmark, table_cls: type, size: int) -> None:  # type: ignore[no-untyped-def]
    routes, paths = data(size)
    table = table_cls(routes)
    benchmark.group = f"lookup x1000, {size} routes"
    hits = benchmark(run_mix, table.lookup, paths)
    assert hits > len(paths) // 2


@pytest.mark.parametrize("size", SIZES)
def test_lookup_dict_yardstick(benchmark, size: int) -> None:  # type: ignore[no-untyped-def]
    routes, paths = data(size)
    table = FirstSegmentDict(routes)
    benchmark.group = f"lookup x1000, {size} routes"
    benchmark(run_mix, table.lookup, paths)


@pytest.mark.parametrize("size", [10_000, 100_000])
def test_build(benchmark, table_cls: type, size: int) -> None:  # type: ignore[no-untyped-def]
    routes, _ = data(size)
    benchmark.group = f"build, {size} routes"
    table = benchmark.pedantic(table_cls, args=(routes,), rounds=5, iterations=1, warmup_rounds=1)
    assert len(table) == size


if __name__ == "__main__":
    import fastroute

    kind = sys.argv[1] if len(sys.argv) > 1 else "c"
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
    cls = fastroute.PyRouteTable if kind == "py" else fastroute.RouteTable
    routes, paths = data(size)
    table = cls(routes)
    for _ in range(2_000):
        run_mix(table.lookup, paths)
