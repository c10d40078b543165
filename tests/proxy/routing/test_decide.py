from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from fastroute import HostTable
from proxy._config import Route
from proxy.routing._decide import Answer, Forward, Hold, Wake, decide, hold_deadline, lookup_route
from proxy._errors import NoRoute

TABLE = HostTable({(None, "/steve/foo"): "foo", (None, "/api"): "api", ("api.example.com", "/"): "host"})


def test_routes() -> None:
    assert lookup_route(TABLE, b"/steve/foo/x") == ("/steve/foo", "foo")
    assert lookup_route(TABLE, b"/api?x") == ("/api", "api")
    assert lookup_route(TABLE, b"/api?x", b"API.example.com:8080") == ("/", "host")
    assert lookup_route(TABLE, b"/api?x", b"shop.example.com") == ("/api", "api")


def test_lookup_route_misses_with_404() -> None:
    with pytest.raises(NoRoute) as caught:
        lookup_route(TABLE, b"/steve/foobar")
    assert caught.value.status == 404
    assert "/steve/foobar" in str(caught.value)


@pytest.mark.parametrize(
    ("route", "deadline"),
    [
        pytest.param(Route("/a", (), booting=True), 100.0 + 10.0, id="booting_waits_the_hold"),
        pytest.param(Route("/a", (), hold_until=104.0), 104.0, id="held_until_the_hold_ends"),
        pytest.param(None, 100.0 + 10.0, id="routes_not_loaded_waits_the_hold"),
        pytest.param(Route("/a", ()), -math.inf, id="no_backend_no_wait"),
    ],
)
def test_hold_deadline(route: Route | None, deadline: float) -> None:
    assert hold_deadline(route, 100.0, 10.0) == deadline


# --- the decision: Forward | Hold | Wake | Answer -------------------------------------------------


@dataclass
class Pool:
    route: Route
    backends: tuple[str, ...] = ()


def table(*routes: Route, served: bool = False) -> HostTable:
    return HostTable({r.key: Pool(r, ("10.0.0.1:8000",) if served else ()) for r in routes})


def now_decide(t: HostTable, target: bytes, now: float = 100.0, **kw: object) -> object:
    return decide(t, target, now=now, arrived=100.0, hold=10.0, **kw)  # type: ignore[arg-type]


def test_a_route_with_a_backend_is_forwarded() -> None:
    decision = now_decide(table(Route("/a", ()), served=True), b"/a/x")
    assert type(decision) is Forward and decision.prefix == "/a"


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        pytest.param({}, (Answer, 404), id="no_route"),
        pytest.param({"routes_complete": False}, (Hold, 110.0), id="routes_loading_holds"),
        pytest.param({"routes_complete": False, "now": 110.0}, (Answer, 503), id="routes_never_loaded"),
        pytest.param({"routes_complete": False, "engine_answered": False}, (Answer, 503),
                     id="engine_never_answered_no_wait"),
        pytest.param({"routes_complete": True, "engine_answered": False}, (Answer, 404),
                     id="engine_never_answered_but_routes_complete"),
        pytest.param({"waiting_for": "/gone"}, (Answer, 503), id="held_route_went"),
    ],
)
def test_no_route(kwargs: dict[str, object], expected: tuple[type, object]) -> None:
    decision = now_decide(table(), b"/x", **kwargs)
    assert type(decision) is expected[0]
    assert (decision.error.status if type(decision) is Answer else decision.until) == expected[1]  # type: ignore[union-attr]


def test_a_known_route_still_holds_while_the_engine_never_answered() -> None:
    # Only a request for a route nobody knows is answered at once: a static
    # route waiting for its backend holds as it always does.
    booting = table(Route("/a", (), booting=True))
    assert now_decide(booting, b"/a", routes_complete=False, engine_answered=False) == Hold(110.0, "/a")


def test_a_strip_route_without_its_slash_is_answered_with_a_redirect() -> None:
    decision = now_decide(table(Route("/a", (), strip_prefix=True), served=True), b"/a?q")
    assert type(decision) is Answer and decision.error.status == 308


def test_a_booting_route_holds_for_the_hold_then_503() -> None:
    booting = table(Route("/a", (), booting=True))
    assert now_decide(booting, b"/a") == Hold(110.0, "/a")
    decision = now_decide(booting, b"/a", now=110.0)
    assert type(decision) is Answer and decision.error.status == 503 and "is ready yet" in str(decision.error)


def test_a_held_route_holds_until_its_hold_ends() -> None:
    assert now_decide(table(Route("/a", (), hold_until=104.0)), b"/a") == Hold(104.0, "/a")
    assert type(now_decide(table(Route("/a", ())), b"/a")) is Answer  # no hold: 503 at once


def test_a_wake_route_is_woken_once_then_waited_for() -> None:
    sleepy = table(Route("/a", (), wake=("c1",)))
    assert now_decide(sleepy, b"/a", can_wake=True) == Wake("/a", ("c1",))
    assert type(now_decide(sleepy, b"/a")) is Answer  # no waker: nothing starts it
    assert now_decide(sleepy, b"/a", can_wake=True, wake_until=130.0) == Hold(130.0, "/a")
    late = now_decide(sleepy, b"/a", now=130.0, can_wake=True, wake_until=130.0, wake_limit=30.0)
    assert type(late) is Answer and "did not serve within 30s" in str(late.error)


def test_holds_and_wakes_name_the_route_with_its_host() -> None:
    held = Route("/", (), host="api.example.com", hold_until=200.0)
    sleeping = Route("/", (), host="shop.example.com", wake=("c1",))
    t = HostTable({held.key: Pool(held, ()), sleeping.key: Pool(sleeping, ())})
    assert decide(t, b"/x", host=b"api.example.com", now=100.0, arrived=100.0, hold=10.0) == \
        Hold(200.0, "api.example.com/")
    assert decide(t, b"/x", host=b"shop.example.com", now=100.0, arrived=100.0, hold=10.0, can_wake=True) == \
        Wake("shop.example.com/", ("c1",))
