from __future__ import annotations

import math

import pytest

from fastroute import RouteTable
from proxy._config import Route
from proxy.routing._decide import decide, hold_deadline
from proxy._errors import NoRoute

TABLE = RouteTable({"/steve/foo": "foo", "/api": "api"})


def test_routes() -> None:
    assert decide(TABLE, b"/steve/foo/x") == ("/steve/foo", "foo")
    assert decide(TABLE, b"/api?x") == ("/api", "api")


def test_no_route() -> None:
    with pytest.raises(NoRoute) as caught:
        decide(TABLE, b"/steve/foobar")
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
