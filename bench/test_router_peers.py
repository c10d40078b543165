# fastroute.RouteTable against the other Python ways to find the longest
# route prefix on whole path segments: `make bench` (pytest bench
# --benchmark-only -k peers), or `python bench/test_router_peers.py` for
# one table with ratios. Figures: bench/README.md.
#
# Same keys (10,000, bench/routes_data.py) and the same 5,000 paths for
# every peer, each used the way its documentation describes for this:
#   - marisa-trie: Trie.prefixes(path), the keys that prefix the path,
#     filtered to those ending at a segment boundary, the longest kept;
#   - pygtrie: StringTrie(separator="/").longest_prefix(path), whole segments;
#   - http-router: a route per key and per key + "/{tail:path}", deepest
#     keys first (it answers with the first route that matches, in order);
#   - a dict walk: the path's prefixes at each "/", longest first, in a dict.
# Before timing, every peer must give RouteTable's answer for every path.
# The query string takes no part (RouteTable drops it; the peers are given
# the path without it, which is what a caller would do).
#
# 5,000 distinct paths on purpose: http-router caches 1,024 answers (functools.lru_cache).

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from routes_data import make_paths, make_routes  # noqa: E402
from test_table_bench import run_mix  # noqa: E402 - the same loop over the paths

import fastroute  # noqa: E402

KEYS = 10_000
PATHS = 5_000
Answer = tuple[str, int] | None


def data() -> tuple[dict[str, int], list[str]]:
    routes = make_routes(KEYS)
    paths: list[str] = []
    seed = 0
    while len(paths) < PATHS:  # distinct paths: the fixed mix of routes_data, with other seeds
        seen = set(paths)
        paths += [p.decode() for p in make_paths(routes, seed=seed) if p.decode() not in seen]
        seed += 1
    paths = paths[:PATHS]
    random.Random(KEYS).shuffle(paths)
    return routes, paths


def _path_only(path: str) -> str:
    return path.partition("?")[0]


def fastroute_lookup(routes: dict[str, int]) -> Callable[[str], Answer]:
    return fastroute.RouteTable(routes).lookup


def marisa_lookup(routes: dict[str, int]) -> Callable[[str], Answer]:
    import marisa_trie

    trie = marisa_trie.Trie(list(routes))

    def lookup(path: str) -> Answer:
        path = _path_only(path)
        best = None
        for key in trie.prefixes(path):
            if len(key) == len(path) or path[len(key)] == "/":
                if best is None or len(key) > len(best):
                    best = key
        return None if best is None else (best, routes[best])

    return lookup


def pygtrie_lookup(routes: dict[str, int]) -> Callable[[str], Answer]:
    import pygtrie

    trie = pygtrie.StringTrie(separator="/")
    for key, value in routes.items():
        trie[key] = (key, value)

    def lookup(path: str) -> Answer:
        step = trie.longest_prefix(_path_only(path))
        return step.value if step else None

    return lookup


def http_router_lookup(routes: dict[str, int]) -> Callable[[str], Answer]:
    from http_router import Router

    router = Router(trim_last_slash=True)
    for key in sorted(routes, key=lambda k: -k.count("/")):  # deepest first: it takes the first match
        router.route(key, key + "/{tail:path}")((key, routes[key]))
    not_found = router.NotFoundError

    def lookup(path: str) -> Answer:
        try:
            answer: Answer = router(_path_only(path)).target
        except not_found:
            return None
        return answer

    return lookup


def dict_walk_lookup(routes: dict[str, int]) -> Callable[[str], Answer]:
    def lookup(path: str) -> Answer:
        path = _path_only(path).rstrip("/")
        while path:
            value = routes.get(path)
            if value is not None:
                return (path, value)
            path = path[: path.rfind("/")]
        return None

    return lookup


PEERS: dict[str, Callable[[dict[str, int]], Callable[[str], Answer]]] = {
    "fastroute": fastroute_lookup,
    "marisa-trie": marisa_lookup,
    "dict-walk": dict_walk_lookup,
    "pygtrie": pygtrie_lookup,
    "http-router": http_router_lookup,
}


def checked(name: str, routes: dict[str, int], paths: list[str]) -> Callable[[str], Answer]:
    """The peer's lookup, once it agreed with RouteTable on every path."""
    reference = fastroute.RouteTable(routes)
    lookup = PEERS[name](routes)
    for path in paths:
        expected = reference.lookup(path)
        assert lookup(path) == expected, (name, path, lookup(path), expected)
    return lookup


_data: tuple[dict[str, int], list[str]] | None = None


def _cached() -> tuple[dict[str, int], list[str]]:
    global _data
    if _data is None:
        _data = data()
    return _data


def _params() -> list[Any]:
    import pytest

    return [pytest.param(name, id=name) for name in PEERS]


if "pytest" in sys.modules:
    import pytest

    @pytest.mark.parametrize("peer", _params())
    def test_peers_lookup(benchmark: Any, peer: str) -> None:
        routes, paths = _cached()
        lookup = checked(peer, routes, paths)
        benchmark.group = f"peers: lookup x{PATHS}, {KEYS} keys"
        if peer == "http-router":  # about 0.5 ms a lookup: a few rounds say enough
            hits = benchmark.pedantic(run_mix, args=(lookup, paths), rounds=2, iterations=1)
        else:
            hits = benchmark(run_mix, lookup, paths)
        assert hits > PATHS // 2


def main() -> int:
    routes, paths = _cached()
    print(f"{KEYS:,} keys, {PATHS:,} paths, fastroute compiled: {fastroute.COMPILED}; "
          "ns per lookup (best of 3, one Python call each), and the ratio to fastroute:")
    timings = {}
    for name in PEERS:
        lookup = checked(name, routes, paths)
        best = min(_timed(lookup, paths) for _ in range(3 if name != "http-router" else 1))
        timings[name] = best / len(paths) * 1e9
    for name, ns in timings.items():
        print(f"  {name:12s} {ns:12,.0f} ns   {ns / timings['fastroute']:8.1f}x")
    return 0


def _timed(lookup: Callable[[str], Answer], paths: list[str]) -> float:
    started = time.perf_counter()
    run_mix(lookup, paths)
    return time.perf_counter() - started


if __name__ == "__main__":
    raise SystemExit(main())
