from __future__ import annotations

import pytest

from fastroute import RouteTable
from proxy._decide import decide
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
