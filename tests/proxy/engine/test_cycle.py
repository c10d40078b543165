# The compiled cycle's pure parts against what they stand for: its states
# are _cycle.py's, and forward_of() says Forward exactly where decide()
# does (the cycle routes with it; anything else goes to the general path,
# which calls decide()). The cycle's exchanges themselves are compared with
# the trio path in test_differential.py.

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastroute import HostTable
from proxy._config import Route
from proxy.engine import _cycle, _loop, _states
from proxy.routing._decide import Forward, decide

from ...conftest import compiled_cycle


def compiled_routing() -> Any:  # Any: a compiled module, untyped
    """engine/_route_c.pyx, the cycle's routing compiled (skips, or fails in CI, as compiled_cycle)."""
    compiled_cycle()
    from proxy.engine import _route_c  # type: ignore[attr-defined]  # (compiled only)

    return _route_c


def test_the_states_are_the_same_numbers() -> None:
    compiled = compiled_cycle()
    assert compiled.STATES == {name: state for state, name in _states.NAMES.items()}
    from proxy.engine import _dispatch_c  # type: ignore[attr-defined]

    assert _dispatch_c.BATCH == _loop.MAX_EVENTS


def test_the_hand_overs_are_the_same_numbers() -> None:
    assert compiled_cycle().STEPS == _cycle.STEPS
    assert sorted(_cycle.STEPS.values()) == list(range(len(_cycle.STEPS)))
    assert _cycle.STEPS["SERVED"] == 0  # the compiled batch compares with it (_dispatch_c.pyx)


def test_the_cycle_calls_nothing_of_the_connection() -> None:
    """The compiled cycle is functions over the connection's fields that return what came of a step,
    which the connection carries out (issue 39: a function the connection calls, not a base class that
    calls back up): it calls methods of the fields' collaborators only, never one of the connection's."""
    source = (Path(_cycle.__file__).with_name("_cycle_c.pyx")).read_text()
    assert re.findall(r"\bself\.(\w+)\(", source) == []
    called = set(re.findall(r"\bc\.(\w+(?:\.\w+)?)\(", source))
    assert called == {"transport.send_tls"}  # (the loop's and the pools' dicts: _route_c.pyx's LoopParts)


def test_the_loop_dispatches_with_the_compiled_batch_unless_told_not_to() -> None:
    if _cycle.CYCLE_COMPILED:
        from proxy.engine import _dispatch_c  # type: ignore[attr-defined]

        assert _loop.dispatch is _dispatch_c.dispatch
    else:
        assert _loop.dispatch is _loop._dispatch


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


def forward_of(table: HostTable, target: bytes, host: bytes | None = None) -> object:
    return compiled_routing().forward_of(table, host, target)


@pytest.mark.parametrize(("strip", "served", "target", "expected"), [
    pytest.param(False, True, b"/app/x", "/app", id="forwarded"),
    pytest.param(False, False, b"/app/x", None, id="no_backend_holds"),
    pytest.param(False, True, b"/nothing", None, id="no_route"),
    pytest.param(True, True, b"/app", None, id="strip_prefix_without_slash_redirects"),
    pytest.param(True, True, b"/app?q", None, id="strip_prefix_without_slash_and_query_redirects"),
    pytest.param(True, True, b"/app/", "/app", id="strip_prefix_with_slash_forwarded"),
])
def test_forward_of_cases(strip: bool, served: bool, target: bytes, expected: str | None) -> None:
    table = HostTable({(None, "/app"): Pool(Route("/app", (), strip_prefix=strip), ("b",) if served else ())})
    found = forward_of(table, target)
    assert (None if found is None else found[0]) == expected


@given(st.dictionaries(st.tuples(st.sampled_from([None, "a.example", "*.example"]), st.sampled_from(PREFIXES)),
                       st.tuples(st.booleans(), st.booleans()), max_size=6),
       st.sampled_from(PATHS), st.sampled_from([None, b"a.example", b"A.Example.:80", b"b.example", b"other"]),
       st.booleans(), st.booleans())
@settings(max_examples=int(os.environ.get("FASTROUTE_FUZZ_EXAMPLES", "300")), deadline=None)
def test_forward_of_says_forward_where_decide_does(routes: dict[tuple[str | None, str], tuple[bool, bool]],
                                                    target: bytes, host: bytes | None, complete: bool,
                                                    can_wake: bool) -> None:
    table = HostTable({(name, prefix): Pool(Route(prefix, (), strip_prefix=strip, host=name), ("b",) if served else ())
                       for (name, prefix), (strip, served) in routes.items()})
    decision = decide(table, target, host=host, now=100.0, arrived=100.0, hold=10.0,  # type: ignore[arg-type]
                      routes_complete=complete, can_wake=can_wake)
    found = forward_of(table, target, host)
    if type(decision) is Forward:
        assert found == (decision.prefix, decision.pool)
    else:
        assert found is None


# --- the loop's interest and the pools, compiled (Loop.watch, Pools.take and keep, Pool.pick) ---

@given(st.lists(st.tuples(st.integers(0, 3), st.sampled_from([0.0, 5.0, 10.0])), max_size=5),
       st.sampled_from([0.0, 5.0, 7.0, 20.0]), st.integers(0, 6))
@settings(max_examples=int(os.environ.get("FASTROUTE_FUZZ_EXAMPLES", "300")), deadline=None)
def test_the_compiled_pick_is_pool_pick(states: list[tuple[int, float]], now: float, start: int) -> None:
    from proxy._config import parse_address
    from proxy.routing._pool import BackendState
    from proxy.routing._pool import Pool as RealPool

    def pool() -> RealPool:
        backends = []
        for i, (outstanding, down_until) in enumerate(states):
            backend = BackendState(parse_address(f"10.0.0.{i + 1}:8000"))
            backend.outstanding, backend.down_until = outstanding, down_until
            backends.append(backend)
        return RealPool(Route("/", ()), tuple(backends), next_index=start % len(backends) if backends else 0)

    python, compiled = pool(), pool()
    picked, compiled_picked = python.pick(now), compiled_routing().pick(compiled, now)
    index = None if picked is None else python.backends.index(picked)
    assert index == (None if compiled_picked is None else compiled.backends.index(compiled_picked))
    assert python.next_index == compiled.next_index


class _Engine:
    """What ConnectionFields.configure reads, with a real loop and real pools."""

    def __init__(self, max_idle: int) -> None:
        from proxy._config import Config, Limits
        from proxy.engine._upstream import Pools

        self.config = Config(limits=Limits(max_idle_upstream=max_idle))
        self.gateway = None
        self.loop = _loop.Loop()
        self.pools = Pools(self.loop)


def _kernel_masks(epoll_fd: int) -> dict[int, int]:
    """The epoll set as the kernel has it: descriptor -> mask (/proc's fdinfo of the epoll descriptor)."""
    masks = {}
    with open(f"/proc/self/fdinfo/{epoll_fd}") as info:
        for line in info:
            if line.startswith("tfd:"):
                fields = line.split()
                masks[int(fields[1])] = int(fields[3], 16)
    return masks


def _state(engine: _Engine, upstreams: list[object]) -> object:
    """What the loop, the kernel's epoll set and the pools hold, by each upstream's place in `upstreams`."""
    place = {u.fd: i for i, u in enumerate(upstreams)}  # type: ignore[attr-defined]
    loop, pools = engine.loop, engine.pools
    return ({place[fd]: (mask, type(loop._handlers[fd]).__name__) for fd, mask in loop._masks.items()},
            {place[fd]: mask for fd, mask in _kernel_masks(loop.fileno).items()},
            {str(b.address): [place[u.fd] for u in idle] for b, idle in pools._idle.items()},
            sorted(place[fd] for fd in pools._by_fd),
            [u.sock.fileno() == -1 for u in upstreams], [u.reused for u in upstreams])  # type: ignore[attr-defined]


_OPS = st.lists(st.tuples(st.sampled_from(["keep", "take", "age", "retire", "watch"]), st.integers(0, 5)),
                max_size=25)


@pytest.mark.parametrize("ops", [
    pytest.param([("keep", 0), ("keep", 2), ("age", 2), ("take", 0), ("take", 0)], id="aged_closed"),
    pytest.param([("watch", 1), ("watch", 4), ("watch", 1), ("keep", 1), ("take", 1)], id="masks"),
    pytest.param([("keep", 0), ("keep", 2), ("keep", 4), ("retire", 1), ("keep", 1)], id="full_and_retired"),
])
def test_the_compiled_pools_and_watch_cases(ops: list[tuple[str, int]]) -> None:
    test_the_compiled_pools_and_watch_are_the_loops_and_pools.hypothesis.inner_test(ops, 2)  # type: ignore[attr-defined]


@given(_OPS, st.integers(0, 3))
@settings(max_examples=int(os.environ.get("FASTROUTE_FUZZ_EXAMPLES", "300")) // 3, deadline=None)
def test_the_compiled_pools_and_watch_are_the_loops_and_pools(ops: list[tuple[str, int]], max_idle: int) -> None:
    import socket

    from proxy._config import parse_address
    from proxy.engine._upstream import Upstream
    from proxy.routing._pool import BackendState

    compiled = compiled_cycle()
    runs = []
    for implementation in ("python", "compiled"):
        engine = _Engine(max_idle)
        cycle = compiled.ConnectionFields()
        cycle.engine = engine
        cycle.configure()
        backends = [BackendState(parse_address(f"10.0.0.{i}:8000")) for i in (1, 2)]
        pairs = [socket.socketpair() for _ in range(6)]
        upstreams = [Upstream(a, backends[i % 2]) for i, (a, _) in enumerate(pairs)]
        kept: set[int] = set()
        watched: dict[int, int] = {}
        results = []
        try:
            for op, i in ops:
                upstream = upstreams[i]
                if op == "keep" and i not in kept and upstream.sock.fileno() != -1:
                    kept.add(i)
                    if implementation == "python":
                        engine.pools.keep(upstream, max_idle)
                    else:
                        cycle.pools_keep(upstream)
                elif op == "take":
                    backend = backends[i % 2]
                    taken = engine.pools.take(backend) if implementation == "python" else cycle.pools_take(backend)
                    results.append(None if taken is None else upstreams.index(taken))
                    if taken is not None:
                        kept.discard(upstreams.index(taken))
                elif op == "age":
                    upstream.idle_since -= 1000.0
                elif op == "retire":
                    backends[i % 2].retired = True
                elif op == "watch" and upstream.sock.fileno() != -1 and i not in kept:
                    watched[i] = watched.get(i, -1) + 1
                    mask = (1, 4, 0)[watched[i] % 3]  # EPOLLIN, EPOLLOUT, none: a change each time
                    if implementation == "python":
                        engine.loop.watch(upstream.fd, cycle, mask)
                    else:
                        cycle.loop_watch(upstream.fd, cycle, mask)
            runs.append((results, _state(engine, upstreams)))
        finally:
            for a, b in pairs:
                a.close()
                b.close()
    assert runs[0] == runs[1]


def test_the_compiled_idle_mask_is_the_pools() -> None:
    from proxy.engine._upstream import IDLE_MASK

    assert compiled_cycle().IDLE_MASK == IDLE_MASK
