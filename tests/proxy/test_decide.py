from __future__ import annotations

import pytest

from fastroute import RouteTable
from proxy._config import Limits
from proxy._decide import decide
from proxy._errors import ClientProtocolError, NoRoute

TABLE = RouteTable({"/steve/foo": "foo", "/api": "api"})
LIMITS = Limits(max_target=50, max_headers=4, max_header_bytes=200)


def run(target: bytes = b"/steve/foo/x", *, method: bytes = b"GET", version: bytes = b"1.1",
        headers: list[tuple[bytes, bytes]] | None = None) -> tuple[str, object]:
    return decide(TABLE, method, target, version, headers or [(b"host", b"a")], LIMITS)


def test_routes() -> None:
    assert run() == ("/steve/foo", "foo")
    assert run(b"/api?x") == ("/api", "api")


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        pytest.param({"version": b"2.0"}, 505, id="http2"),
        pytest.param({"version": b"0.9"}, 505, id="http09"),
        pytest.param({"target": b"/" + b"a" * 50}, 414, id="long_target"),
        pytest.param({"headers": [(b"x-%d" % i, b"1") for i in range(5)]}, 431, id="too_many_headers"),
        pytest.param({"headers": [(b"x", b"v" * 200)]}, 431, id="header_bytes"),
        pytest.param({"method": b"CONNECT", "target": b"/a"}, 501, id="connect"),
        pytest.param({"target": b"http://a/steve/foo"}, 400, id="absolute_form"),
        pytest.param({"target": b"*", "method": b"OPTIONS"}, 400, id="asterisk"),
    ],
)
def test_rejects(kwargs: dict, status: int) -> None:  # type: ignore[type-arg]
    with pytest.raises(ClientProtocolError) as caught:
        run(**kwargs)
    assert caught.value.status == status


def test_limits_are_inclusive() -> None:
    assert run(b"/steve/foo/" + b"a" * 39)[0] == "/steve/foo"  # exactly 50 bytes
    assert run(headers=[(b"x-%d" % i, b"1") for i in range(4)])[0] == "/steve/foo"


def test_no_route() -> None:
    with pytest.raises(NoRoute) as caught:
        run(b"/steve/foobar")
    assert caught.value.status == 404
