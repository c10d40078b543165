# The retry and failover rules, without sockets: what the relay is told to
# do after each kind of failure.

from __future__ import annotations

import pytest

from proxy._config import Address
from proxy._errors import BadGateway, NoBackendAvailable, UpstreamConnectError, UpstreamConnectTimeout
from proxy.routing._pool import EJECT_BASE, ERROR_LIMIT, BackendState
from proxy.routing._retry import (
    MAX_FAILED_CONNECTS,
    NEXT,
    REROUTE,
    REROUTES,
    REROUTES_NOT_READY,
    WAIT,
    Attempts,
    Reroutes,
    Waiting,
    keyed,
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


FAILED = BadGateway("backend failed before its response: socket error: [Errno 104] Connection reset by peer")


@pytest.mark.parametrize(("method", "headers"), [
    pytest.param(b"GET", [], id="GET"),
    pytest.param(b"DELETE", [], id="DELETE"),
    pytest.param(b"POST", [(b"idempotency-key", b"8e03978e")], id="POST_with_Idempotency-Key"),
])
def test_a_request_a_backend_failed_is_sent_once_more_to_another(
    method: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    bad, good = backends(2)
    attempts = Attempts("/x", method, keyed=keyed(headers))
    assert attempts.failed_after_send(bad, FAILED, body_read=False, now=1.0) is NEXT
    assert attempts.tried == [bad]  # the pick goes to another
    assert bad.errors == 1 and bad.is_up(1.0)  # one failure is not an ejection
    assert attempts.failed_after_send(good, FAILED, body_read=False, now=1.0) is FAILED  # once only


@pytest.mark.parametrize(("method", "body_read"), [
    pytest.param(b"POST", False, id="POST"),
    pytest.param(b"PATCH", False, id="PATCH"),
    pytest.param(b"PUT", True, id="PUT_whose_body_began"),
])
def test_a_request_that_may_not_go_twice_gets_the_502(method: bytes, body_read: bool) -> None:
    (bad,) = backends(1)
    attempts = Attempts("/x", method)
    assert attempts.failed_after_send(bad, FAILED, body_read=body_read, now=1.0) is FAILED
    assert bad.errors == 1  # counted all the same
    assert attempts.none_left((bad,), now=1.0) is FAILED


def test_with_no_other_backend_the_request_waits_for_the_table_once() -> None:
    # The reset usually comes a moment before the container's stop is seen:
    # WAIT, then route again, where it may hold until a new one is ready.
    (dying,) = backends(1)
    attempts = Attempts("/x", b"GET", leaving=True)
    assert attempts.failed_after_send(dying, FAILED, body_read=False, now=1.0) is NEXT
    assert attempts.none_left((dying,), now=1.0) is WAIT
    static = Attempts("/x", b"GET")  # a static backend does not leave: the resend comes at once, no wait
    assert static.failed_after_send(dying, FAILED, body_read=False, now=1.0) is NEXT
    assert static.none_left((dying,), now=1.0) is FAILED
    after = Attempts("/x", b"GET", leaving=True, waited=True)  # routed again after the wait
    assert after.failed_after_send(dying, FAILED, body_read=False, now=2.0) is FAILED
    assert after.none_left((dying,), now=2.0) is FAILED


def test_a_stale_connection_whose_new_connect_fails_waits_too() -> None:
    # A stopping container's pooled connections reset, and a new one is refused.
    (dying,) = backends(1)
    attempts = Attempts("/x", b"GET", leaving=True)
    assert attempts.stale(dying) is NEXT
    refused = UpstreamConnectError("refused", refused=True)
    assert attempts.connect_failed(dying, refused, booting=False, now=1.0) is NEXT
    assert attempts.none_left((dying,), now=1.0) is WAIT


def test_a_backend_failing_every_request_leaves_rotation_and_no_request_fails() -> None:
    bad, good = backends(2)
    for now in range(ERROR_LIMIT):
        attempts = Attempts("/x", b"GET")
        assert attempts.failed_after_send(bad, FAILED, body_read=False, now=float(now)) is NEXT
    assert bad.status(float(ERROR_LIMIT - 1)) == "ejected" and good.status(0.0) == "up"


def test_keyed_reads_the_lowercased_field_name() -> None:
    assert keyed([(b"host", b"a"), (b"idempotency-key", b"k")])
    assert not keyed([(b"host", b"a"), (b"x-idempotency-key", b"k")])


def test_a_failed_connect_waits_only_where_backends_leave_by_themselves() -> None:
    # A container's connect refused: it is usually stopping, seen a moment later.
    refused = UpstreamConnectError("refused", refused=True)
    for leaving, expected in [(True, WAIT), (False, refused)]:
        (only,) = backends(1)
        attempts = Attempts("/x", b"POST", leaving=leaving)  # nothing was sent: any method
        assert attempts.connect_failed(only, refused, booting=False, now=1.0) is NEXT
        assert attempts.none_left((only,), now=1.0) == expected


def test_after_the_wait_a_backend_still_out_gives_the_error_it_had() -> None:
    (only,) = backends(1)
    refused = UpstreamConnectError("refused", refused=True)
    only.mark_failed(1.0)
    attempts = Attempts("/x", b"GET", leaving=True, waited=True, last_error=refused)
    assert attempts.none_left((only,), now=1.5) is refused  # not a 503: nothing changed


def test_every_backend_ejected_waits_where_backends_leave_by_themselves() -> None:
    pool = tuple(backends(2))
    pool[0].mark_failed(10.0)
    pool[1].mark_failed(10.5)
    attempts = Attempts("/x", b"POST", leaving=True)
    assert attempts.none_left(pool, now=10.6) is WAIT
    assert attempts.tried == list(pool) and attempts.back_at == 10.0 + EJECT_BASE  # until they left, or one is back
    assert attempts.waiting() == Waiting(pool, None, 10.0 + EJECT_BASE)  # what it carries while it waits
    assert isinstance(Attempts("/x", b"GET").none_left(pool, now=10.6), NoBackendAvailable)
    assert isinstance(Attempts("/x", b"GET", leaving=True, waited=True).none_left(pool, now=10.6), NoBackendAvailable)
