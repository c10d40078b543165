"""The rules of one response, backend to client (routing/_response_rules.py), with no socket: a real
backend parser fed bytes, whole and byte by byte, and what the rules pass on and answer."""

from __future__ import annotations

import pytest

from proxy._config import Limits
from proxy._errors import BadGateway, ProxyError
from proxy.protocol import _events as ev
from proxy.protocol._fastconn import FastConnection
from proxy.protocol._head import RequestHead, check_head
from proxy.protocol._reader import MAX_INTERIM_RESPONSES
from proxy.routing._record import Exchange
from proxy.routing._response_rules import (
    END, MORE, SPLICE, STALE, TUNNEL, UNANSWERED, Failed, ResponseRelay, early_failure,
)

HSTS = [(b"strict-transport-security", b"max-age=60")]


def relayed(response: bytes, *, method: bytes = b"GET", upgrade: bool = False, splice_from: int | None = None,
            draining: bool = False, bytewise: bool = False, eof: bool = False) -> tuple[list[ev.Event], int, ResponseRelay]:
    """What the rules pass on of `response` (fed whole, or a byte at a time), and the last outcome."""
    conn = FastConnection.client(max_head=16 * 1024)
    conn.expect_response(method)
    relay = ResponseRelay(Exchange(0.0, method=method), HSTS, upgrade=upgrade, splice_from=splice_from)
    out: list[ev.Event] = []
    outcome = MORE
    pieces = [response[i:i + 1] for i in range(len(response))] if bytewise else [response]
    for piece in pieces + ([b""] if eof else []):
        conn.receive_data(piece)
        outcome = relay.pull(conn, out, draining)
        if outcome != MORE:
            break
    return out, outcome, relay


def wire(events: list[ev.Event]) -> bytes:
    """The bytes a client gets for `events` (a server connection that read a GET)."""
    conn, _ = FastConnection.for_request(_get_head(), b"", max_head=16 * 1024)
    assert type(conn.next_event()) is ev.EndOfMessage
    return b"".join(conn.send(event) for event in events)


def _get_head() -> RequestHead:
    return check_head(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", Limits())


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive, x-drop\r\nX-Drop: 1\r\nX-Keep: 2\r\n\r\nhello"


@pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "bytewise"])
def test_a_response_goes_on_rewritten_and_ends(bytewise: bool) -> None:
    out, outcome, relay = relayed(OK, bytewise=bytewise)
    assert outcome == END and relay.head_out
    assert wire(out) == (b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-keep: 2\r\n"
                         b"strict-transport-security: max-age=60\r\n\r\nhello")
    assert relay.exchange.status == 200 and relay.exchange.bytes_out == 5


def test_while_draining_the_response_says_close() -> None:
    out, outcome, _ = relayed(OK, draining=True)
    head = out[0]
    assert outcome == END and isinstance(head, ev.Response)
    assert head.headers[-1] == (b"connection", b"close")


def test_a_body_in_pieces_asks_for_more() -> None:
    conn = FastConnection.client(max_head=16 * 1024)
    conn.expect_response(b"GET")
    relay = ResponseRelay(Exchange(0.0), [])
    out: list[ev.Event] = []
    conn.receive_data(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhe")
    assert relay.pull(conn, out, False) == MORE
    conn.receive_data(b"llo")
    assert relay.pull(conn, out, False) == END
    assert b"".join(e.data for e in out if isinstance(e, ev.Data)) == b"hello"


LONG = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 100


@pytest.mark.parametrize(("method", "response", "splice_from", "spliced"), [
    pytest.param(b"GET", LONG, 1000, 900, id="long"),
    pytest.param(b"GET", LONG, 1001, 0, id="short_of_the_bound"),
    pytest.param(b"GET", LONG, None, 0, id="not_here"),
    pytest.param(b"HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", 1000, 0, id="head"),
    pytest.param(b"GET", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 1000\r\n\r\n", 1000, 0, id="not_modified"),
    pytest.param(b"GET", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 1, 0, id="chunked"),
])
def test_a_long_body_of_known_length_is_spliced(method: bytes, response: bytes, splice_from: int | None,
                                                spliced: int) -> None:
    _, outcome, relay = relayed(response, method=method, splice_from=splice_from)
    assert relay.splice_left == spliced
    assert (outcome == SPLICE) == bool(spliced)


def test_interim_responses_go_on_rewritten() -> None:
    out, outcome, relay = relayed(b"HTTP/1.1 100 Continue\r\nX-Drop: 1\r\nConnection: x-drop\r\n\r\n" + OK)
    assert outcome == END and relay.interim == 1
    assert wire(out).startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n")


def test_too_many_interim_responses_are_the_gateways_502() -> None:
    _, outcome, _ = relayed(b"HTTP/1.1 103 Early Hints\r\n\r\n" * MAX_INTERIM_RESPONSES + OK)
    assert outcome == END  # as many as allowed
    with pytest.raises(Failed) as failed:
        relayed(b"HTTP/1.1 103 Early Hints\r\n\r\n" * (MAX_INTERIM_RESPONSES + 1) + OK)
    assert isinstance(failed.value.answer, BadGateway)
    assert "1xx" in str(failed.value.answer)


def test_a_switch_goes_on_only_when_asked() -> None:
    switch = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"
    with pytest.raises(Failed) as failed:
        relayed(switch)
    assert isinstance(failed.value.answer, BadGateway) and "unasked" in str(failed.value.answer)
    out, outcome, relay = relayed(switch, upgrade=True)
    assert outcome == TUNNEL and out == [] and relay.switch is not None and relay.switch.status_code == 101


@pytest.mark.parametrize(("response", "answered"), [
    pytest.param(b"", True, id="nothing"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Le", True, id="half_a_head"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhe", False, id="half_a_body"),
])
def test_a_backend_that_closes_early(response: bytes, answered: bool) -> None:
    with pytest.raises(Failed) as failed:
        relayed(response, eof=True)
    assert (failed.value.answer is not None) == answered  # after the head: the connection is cut
    if answered:
        assert failed.value.answer.status == 502  # type: ignore[union-attr]


def test_a_protocol_error_before_and_after_the_head() -> None:
    with pytest.raises(Failed) as before:
        relayed(b"HTTP/1.1 200 OK\nbare: lf\r\n\r\n")
    assert isinstance(before.value.answer, BadGateway)
    with pytest.raises(Failed) as after:
        relayed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
    assert after.value.answer is None and "during its response body" in after.value.why


def test_a_socket_that_breaks() -> None:
    relay = ResponseRelay(Exchange(0.0), [])
    before = relay.broke("socket error: reset")
    assert isinstance(before.answer, BadGateway) and "before its response: socket error: reset" in str(before.answer)
    relay.head_out = True
    assert relay.broke("socket error: reset").answer is None


@pytest.mark.parametrize(("received", "reused", "body_started", "meaning"), [
    pytest.param(0, True, False, STALE, id="pooled_and_dead"),
    pytest.param(0, True, True, UNANSWERED, id="pooled_but_the_body_began"),
    pytest.param(0, False, False, UNANSWERED, id="new_and_silent"),
    pytest.param(10, True, False, "answer", id="said_something"),
])
def test_what_an_early_failure_means(received: int, reused: bool, body_started: bool, meaning: str) -> None:
    answer: ProxyError = BadGateway("x")
    got = early_failure(answer, received=received, reused=reused, body_started=body_started)
    assert got is (answer if meaning == "answer" else meaning)
