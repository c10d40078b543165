# One request's tries on its pool (routing/_stream.py), without sockets:
# each step's action, as both paths carry it out.

from __future__ import annotations

from proxy._config import Address, Route
from proxy._errors import BadGateway, NoBackendAvailable, UpstreamConnectError, UpstreamConnectTimeout
from proxy.routing._pool import BackendState, Pool
from proxy.routing._record import Exchange
from proxy.routing._retry import REROUTE, Attempts, Waiting
from proxy.routing._stream import Stream

NOW = 100.0


def stream_of(count: int, *, method: bytes = b"GET", containers: bool = False,
              booting: frozenset[Address] = frozenset()) -> Stream:
    addresses = tuple(Address(f"10.0.0.{i + 1}", 8000) for i in range(count))
    route = Route("/x", addresses, source="docker:fastroute" if containers else "static")
    pool = Pool(route, tuple(BackendState(a) for a in addresses))
    attempts = Attempts("/x", method, leaving=route.containers)
    return Stream(Exchange(NOW, method=method), pool, attempts, not_ready=lambda address: address in booting)


def test_the_first_try_is_a_backend_and_the_record_names_it() -> None:
    stream = stream_of(2)
    backend = stream.next_backend(NOW)
    assert isinstance(backend, BackendState) and backend in stream.pool.backends
    assert stream.exchange.backend == str(backend.address)


def test_no_backend_at_all_is_a_503() -> None:
    action = stream_of(0).next_backend(NOW)
    assert isinstance(action, NoBackendAvailable) and action.status == 503


def test_a_failed_connect_tries_the_next_backend_then_answers_and_counts() -> None:
    stream = stream_of(3)
    first = stream.next_backend(NOW)
    assert isinstance(first, BackendState)
    second = stream.connect_failed(first, UpstreamConnectError("refused", refused=True), NOW)
    assert isinstance(second, BackendState) and second is not first
    timeout = UpstreamConnectTimeout("slow")
    assert stream.connect_failed(second, timeout, NOW) is timeout  # two failed connects at most
    assert (stream.exchange.connect_errors, stream.exchange.connect_timeouts) == (1, 1)


def test_a_container_booting_again_is_no_failure_and_is_routed_again() -> None:
    (address,) = stream_of(1).pool.route.backends
    stream = stream_of(1, booting=frozenset({address}))
    only = stream.next_backend(NOW)
    assert isinstance(only, BackendState)
    assert stream.connect_failed(only, UpstreamConnectError("refused", refused=True), NOW) is REROUTE
    assert stream.exchange.connect_errors == 0 and only.is_up(NOW)


def test_a_stale_pooled_connection_is_tried_once_more() -> None:
    stream = stream_of(1)
    only = stream.next_backend(NOW)
    assert isinstance(only, BackendState)
    assert stream.stale(only, NOW) is only  # a new connection to the same backend
    again = stream.stale(only, NOW)
    assert isinstance(again, BadGateway)


def test_a_backend_that_took_a_get_and_failed_gives_way_to_another() -> None:
    stream = stream_of(2)
    first = stream.next_backend(NOW)
    assert isinstance(first, BackendState)
    failure = BadGateway("reset")
    second = stream.unanswered(first, failure, body_read=False, now=NOW)
    assert isinstance(second, BackendState) and second is not first
    assert stream.unanswered(second, failure, body_read=False, now=NOW) is failure  # once per request
    assert stream.exchange.backend_failures == 2


def test_a_post_that_failed_after_it_was_sent_is_answered() -> None:
    stream = stream_of(2, method=b"POST")
    first = stream.next_backend(NOW)
    assert isinstance(first, BackendState)
    failure = BadGateway("reset")
    assert stream.unanswered(first, failure, body_read=False, now=NOW) is failure


def test_a_container_that_failed_with_none_left_makes_the_request_wait() -> None:
    stream = stream_of(1, containers=True)
    only = stream.next_backend(NOW)
    assert isinstance(only, BackendState)
    failure = BadGateway("reset")
    waiting = stream.unanswered(only, failure, body_read=False, now=NOW)
    assert isinstance(waiting, Waiting)
    assert waiting.tried == (only,) and waiting.error is failure


def test_none_left_when_the_cycle_found_no_backend_up() -> None:
    stream = stream_of(1)
    (only,) = stream.pool.backends
    only.mark_failed(NOW)
    action = stream.none_left(NOW)
    assert isinstance(action, NoBackendAvailable) and action.retry_after is not None
