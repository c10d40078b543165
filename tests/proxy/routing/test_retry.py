# The retry and failover rules, without sockets: what the relay is told to
# do after each kind of failure.

from __future__ import annotations

import pytest

from proxy._config import Address
from proxy._errors import BadGateway, NoBackendAvailable, UpstreamConnectError, UpstreamConnectTimeout
from proxy.routing._pool import EJECT_BASE, BackendState
from proxy.routing._retry import (
    MAX_FAILED_CONNECTS,
    NEXT,
    REROUTE,
    REROUTES,
    REROUTES_NOT_READY,
    Attempts,
    Reroutes,
)

A = BackendState(Address("10.0.0.1", 8000))


def backends(count: int) -> list[BackendState]:
    return [BackendState(Address(f"10.0.0.{i + 1}", 8000)) for i in range(count)]


def test_a_failed_connect_tries_another_backend_then_gives_the_error() -> None:
    first, second = backends(2)
    attempts = Attempts("/x", b"GET")
    error = UpstreamConnectError("refused", refused=True)
    assert attempts.connect_failed(first, error, booting=False, now=100.0) is NEXT
    assert first.down_until == 100.0 + EJECT_BASE  # out of rotation
    last = UpstreamConnectTimeout("slow")
    assert attempts.connect_failed(second, last, booting=False, now=100.0) is last
    assert attempts.tried == [first, second]
    assert MAX_FAILED_CONNECTS == 2


def test_a_booting_backend_is_not_a_failure_and_the_request_is_routed_again() -> None:
    first, second = backends(2)
    attempts = Attempts("/x", b"POST")
    error = UpstreamConnectError("refused", refused=True)
    assert attempts.connect_failed(first, error, booting=True, now=1.0) is NEXT
    assert attempts.connect_failed(second, error, booting=True, now=1.0) is NEXT
    assert first.down_until == 0.0 and second.down_until == 0.0  # still in rotation
    assert attempts.none_left((first, second), now=1.0) is REROUTE


def test_no_backend_left_after_a_failure_gives_the_last_error() -> None:
    (only,) = backends(1)
    attempts = Attempts("/x", b"GET")
    error = UpstreamConnectError("reset")
    assert attempts.connect_failed(only, error, booting=False, now=1.0) is NEXT
    assert attempts.none_left((only,), now=1.0) is error


@pytest.mark.parametrize(
    ("down_for", "retry_after"),
    [pytest.param(0.2, 1, id="under_a_second"), pytest.param(7.5, 8, id="rounded_up")],
)
def test_every_backend_out_of_rotation_is_503_until_the_first_is_back(down_for: float, retry_after: int) -> None:
    pool = backends(2)
    pool[0].down_until = 10.0 + down_for
    pool[1].down_until = 10.0 + down_for + 3
    step = Attempts("/x", b"GET").none_left(tuple(pool), now=10.0)
    assert isinstance(step, NoBackendAvailable) and step.retry_after == retry_after


def test_an_empty_pool_is_503() -> None:
    step = Attempts("/x", b"GET").none_left((), now=0.0)
    assert isinstance(step, NoBackendAvailable) and step.retry_after == 5


@pytest.mark.parametrize("method", [b"GET", b"HEAD", b"PUT", b"DELETE", b"OPTIONS"])
def test_a_stale_pooled_connection_is_retried_once_for_an_idempotent_method(method: bytes) -> None:
    attempts = Attempts("/x", method)
    assert attempts.stale(A) is NEXT
    assert isinstance(attempts.stale(A), BadGateway)


@pytest.mark.parametrize("method", [b"POST", b"PATCH"])
def test_a_stale_pooled_connection_is_502_for_any_other_method(method: bytes) -> None:
    assert isinstance(Attempts("/x", method).stale(A), BadGateway)


def test_reroutes_are_bounded() -> None:
    reroutes = Reroutes()
    assert all(reroutes.backend_left() is None for _ in range(REROUTES))
    assert isinstance(reroutes.backend_left(), BadGateway)
    assert all(reroutes.backends_booting() is None for _ in range(REROUTES_NOT_READY))
    assert isinstance(reroutes.backends_booting(), BadGateway)
