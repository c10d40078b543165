# The compiled cycle's pure parts against what they stand for: its states
# are _cycle.py's, and forward_of() says Forward exactly where decide()
# does (the cycle routes with it; anything else goes to the general path,
# which calls decide()). The cycle's exchanges themselves are compared with
# the trio path in test_differential.py.

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastroute import RouteTable
from proxy._config import Route
from proxy.engine import _cycle, _loop
from proxy.routing._decide import Forward, decide

from ...conftest import compiled_cycle


def test_the_states_are_the_same_numbers() -> None:
    compiled = compiled_cycle()
    assert compiled.STATES == {name: getattr(_cycle, name) for name in compiled.STATES}
    assert set(compiled.STATES) == {"HEAD", "CONNECT", "SEND", "RESPONSE", "SPLICE", "CLOSED", "FAST"}
    assert compiled.BATCH == _loop.MAX_EVENTS


def test_the_loop_dispatches_with_the_compiled_batch_unless_told_not_to() -> None:
    assert _loop.dispatch is (compiled_cycle().dispatch if _cycle.CYCLE_COMPILED else _loop._dispatch)


@pytest.mark.parametrize(("environment", "compiled"), [
    pytest.param({}, True, id="default"),
    pytest.param({"FASTROUTE_NO_EXTENSIONS": "1"}, False, id="forced_python"),
])
def test_the_engine_uses_the_compiled_cycle_unless_told_not_to(environment: dict[str, str], compiled: bool) -> None:
    if compiled:
        compiled_cycle()
    env = {k: v for k, v in os.environ.items() if k != "FASTROUTE_NO_EXTENSIONS"} | environment
    out = subprocess.run(
        [sys.executable, "-c", "import proxy.engine._cycle as c, proxy.engine._exchange as e; "
         "print(c.CYCLE_COMPILED, e.NativeClient.__mro__[1].__module__)"],
        capture_output=True, text=True, env=env, timeout=60, check=True,
    ).stdout.split()
    assert out == [str(compiled), "proxy.engine._cycle_c" if compiled else "proxy.engine._cycle"]


@dataclass
class Pool:
    route: Route
    backends: tuple[str, ...] = ()


PREFIXES = ["/", "/a", "/a/b", "/app", "/steve/foo"]
PATHS = [b"/", b"/a", b"/a/", b"/a/b", b"/a/bc", b"/app", b"/app/", b"/app?q=1", b"/a?x", b"/steve/foo",
         b"/steve/foo/x", b"/steve/foobar", b"/b", b"/a/b?c"]


def forward_of(table: RouteTable, target: bytes) -> object:
    return compiled_cycle().forward_of(table, target)


@pytest.mark.parametrize(("strip", "served", "target", "expected"), [
    pytest.param(False, True, b"/app/x", "/app", id="forwarded"),
    pytest.param(False, False, b"/app/x", None, id="no_backend_holds"),
    pytest.param(False, True, b"/nothing", None, id="no_route"),
    pytest.param(True, True, b"/app", None, id="strip_prefix_without_slash_redirects"),
    pytest.param(True, True, b"/app?q", None, id="strip_prefix_without_slash_and_query_redirects"),
    pytest.param(True, True, b"/app/", "/app", id="strip_prefix_with_slash_forwarded"),
])
def test_forward_of_cases(strip: bool, served: bool, target: bytes, expected: str | None) -> None:
    table = RouteTable({"/app": Pool(Route("/app", (), strip_prefix=strip), ("b",) if served else ())})
    found = forward_of(table, target)
    assert (None if found is None else found[0]) == expected


@given(st.dictionaries(st.sampled_from(PREFIXES), st.tuples(st.booleans(), st.booleans()), max_size=5),
       st.sampled_from(PATHS), st.booleans(), st.booleans())
@settings(max_examples=int(os.environ.get("FASTROUTE_FUZZ_EXAMPLES", "300")), deadline=None)
def test_forward_of_says_forward_where_decide_does(routes: dict[str, tuple[bool, bool]], target: bytes,
                                                    complete: bool, can_wake: bool) -> None:
    table = RouteTable({prefix: Pool(Route(prefix, (), strip_prefix=strip), ("b",) if served else ())
                        for prefix, (strip, served) in routes.items()})
    decision = decide(table, target, now=100.0, arrived=100.0, hold=10.0, routes_complete=complete,  # type: ignore[arg-type]
                      can_wake=can_wake)
    found = forward_of(table, target)
    if type(decision) is Forward:
        assert found == (decision.prefix, decision.pool)
    else:
        assert found is None
