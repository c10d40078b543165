# Pure: the gateway's own answers, decided without a socket.

from __future__ import annotations

import pytest

from proxy._errors import BadGateway, ClientProtocolError, NoBackendAvailable, NoRoute, PermanentRedirect
from proxy.routing._answer import error_answer, refusal


def test_a_no_route_answer_keeps_the_connection() -> None:
    answer = error_answer(NoRoute("no route for '/x'"))
    assert (answer.status, answer.reason, answer.closing) == (404, b"Not Found", False)
    assert answer.body == b"404 Not Found: no route for '/x'\n"
    assert answer.headers == [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"33")]


@pytest.mark.parametrize("status", [400, 408, 413, 414, 431, 501, 505])
def test_client_errors_that_leave_the_framing_in_doubt_close(status: int) -> None:
    answer = error_answer(ClientProtocolError("bad", status=status))
    assert answer.closing and (b"connection", b"close") in answer.headers


@pytest.mark.parametrize(("draining", "body_unread"), [(True, False), (False, True)])
def test_draining_or_an_unread_body_closes(draining: bool, body_unread: bool) -> None:
    assert error_answer(BadGateway("x"), draining=draining, body_unread=body_unread).closing


def test_a_refused_head_always_closes_and_says_why() -> None:
    answer = error_answer(NoRoute(), head_refused=True)
    assert answer.closing and answer.body == b"404 Not Found: \n"


def test_retry_after_and_location() -> None:
    assert (b"retry-after", b"5") in error_answer(NoBackendAvailable("held", retry_after=5)).headers
    redirect = error_answer(PermanentRedirect(b"/app/?q"))
    assert redirect.status == 308 and (b"location", b"/app/?q") in redirect.headers and not redirect.closing


def test_a_refusal_is_the_answer_as_bytes_and_its_record() -> None:
    data, exchange = refusal(ClientProtocolError("target too long", status=414), now=12.5)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 414 URI Too Long\r\n") and b"\r\nconnection: close" in head.lower()
    assert body == b"414 URI Too Long: target too long\n"
    assert (exchange.started, exchange.status, exchange.bytes_out) == (12.5, 414, len(body))
