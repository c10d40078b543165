# The compiled table and the pure-Python twin must agree on everything:
# hypothesis generates route sets (unicode, %-escapes, empty segments, deep
# keys, invalid keys) and paths, and both tables must give the same answers
# and raise the same errors.

from __future__ import annotations

import random
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import fastroute

VALID_PIECES = list("abcxyzAZ09-_~.%2Ffe") + ["\u00e9", "\u4e2d", "\U0001f600", "%2e", "%2F"]
INVALID_PIECES = ["?", "#", " ", "\t", "\x00", "\x85", "\u2028", "."]
segments = st.lists(st.sampled_from(VALID_PIECES), max_size=6).map("".join)
valid_segments = segments.filter(lambda s: s not in (".", ".."))
any_segments = st.lists(st.sampled_from(VALID_PIECES + INVALID_PIECES), max_size=4).map("".join)


def key_from(parts: list[str], slash: bool) -> str:
    return "/" + "/".join(parts) + ("/" if slash else "")


keys = st.builds(key_from, st.lists(valid_segments, max_size=6), st.booleans())
any_keys = st.builds(key_from, st.lists(any_segments, max_size=4), st.booleans()) | st.text(max_size=8)


def compiled() -> type:
    from ..conftest import _compiled_table

    return _compiled_table()


def outcome(table_cls: type, routes: Any) -> tuple[str, Any]:
    try:
        return ("ok", table_cls(routes))
    except (TypeError, ValueError) as error:
        return ("error", (type(error), str(error)))


def assert_agree(routes: Any, paths: list[Any]) -> None:
    kind_py, py = outcome(fastroute.PyRouteTable, routes)
    kind_c, c = outcome(compiled(), routes)
    assert kind_py == kind_c
    if kind_py == "error":
        assert py == c
        return
    assert py.routes() == c.routes()
    assert list(py) == list(c)
    for path in paths:
        assert py.lookup(path) == c.lookup(path), path
        if isinstance(path, str):
            assert c.lookup(path.encode("utf-8", "surrogatepass")) == c.lookup(path)


def derived_paths(draw: Any, routes: list[str]) -> list[str]:
    paths = []
    for key in routes:
        tail = draw(st.lists(segments, max_size=3))
        path = key + ("/" + "/".join(tail) if tail else "")
        cut = draw(st.integers(0, len(path)))
        paths += [path, path[:cut], path + draw(st.sampled_from(["", "?", "?q=/a/b", "#f", "/", "//"]))]
    return paths


@st.composite
def scenarios(draw: Any) -> tuple[dict[str, int], list[str]]:
    routes = draw(st.lists(keys, max_size=40, unique_by=lambda k: k.removesuffix("/") or "/"))
    paths = derived_paths(draw, routes) + draw(st.lists(st.text(max_size=30), max_size=10))
    return {key: i for i, key in enumerate(routes)}, paths


@given(scenarios())
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_tables_agree_on_random_routes_and_paths(scenario: tuple[dict[str, int], list[str]]) -> None:
    routes, paths = scenario
    assert_agree(routes, paths)


@given(st.lists(any_keys, max_size=6), st.lists(keys, max_size=6))
@settings(max_examples=300)
def test_tables_agree_on_errors(maybe_bad: list[str], good: list[str]) -> None:
    routes = [(key, i) for i, key in enumerate(good + maybe_bad)]
    assert_agree(routes, [key + "/x" for key in good])


@given(st.lists(keys, max_size=20, unique=True), st.lists(st.binary(max_size=40), max_size=20))
@settings(max_examples=200)
def test_tables_agree_on_random_bytes_paths(routes: list[str], paths: list[bytes]) -> None:
    assert_agree({key: key for key in routes}, [b"/" + p for p in paths] + paths)


@given(st.dictionaries(st.text(max_size=12).map(lambda s: "/" + s), st.integers(), max_size=30),
       st.lists(st.text(max_size=20), max_size=20))
@settings(max_examples=300)
def test_tables_agree_on_arbitrary_text(routes: dict[str, int], paths: list[str]) -> None:
    assert_agree(routes, ["/" + p for p in paths] + paths)


def random_key(rng: random.Random) -> str:
    alphabet = "abcdefghij%2E\u00e9-"
    depth = rng.randint(0, 8)
    parts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 5))) for _ in range(depth)]
    return "/" + "/".join(parts)


@given(st.integers(0, 2**32), st.integers(1000, 5000))
@settings(max_examples=15, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate])
def test_tables_agree_on_thousands_of_routes(seed: int, size: int) -> None:
    rng = random.Random(seed)
    routes: dict[str, int] = {}
    for i in range(size):
        routes.setdefault(random_key(rng).rstrip("/") or "/", i)
    keys_list = list(routes)
    paths = []
    for _ in range(3000):
        key = rng.choice(keys_list)
        paths.append(key + rng.choice(["", "/", "/x", "?q", "/a/b/c", "x", "#/y"]))
        paths.append(random_key(rng))
    assert_agree(routes, paths)
