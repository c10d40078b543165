# Pure: the fast connection writes what h11 writes and goes through the same
# states. Each exchange is played on a FastConnection and on an
# H11Connection (h11 behind the same interface) and the bytes and states
# compared; reading is compared with h11 in test_wire_diff.py.

from __future__ import annotations

from typing import Any

import pytest

from proxy.protocol import _events as ev
from proxy._config import Limits
from proxy.protocol._fastconn import FastConnection
from proxy.protocol._h11conn import H11Connection
from proxy.protocol._head import check_head

MAX_HEAD = 64 * 1024
CONNECTIONS = [FastConnection, H11Connection]


def server(cls: Any, raw: bytes) -> tuple[Any, Any]:
    end = raw.index(b"\r\n\r\n") + 4
    return cls.for_request(check_head(raw[:end], Limits()), raw[end:], max_head=MAX_HEAD)  # type: ignore[no-any-return]


def states(conn: Any) -> tuple[Any, Any]:
    return conn.our_state, conn.their_state


def play_response(cls: Any, raw: bytes, response: ev.Response, body: list[bytes]) -> tuple[bytes, list[Any]]:
    conn, _ = server(cls, raw)
    seen = [states(conn)]
    while type(conn.next_event()) is not ev.EndOfMessage:
        pass
    seen.append(states(conn))
    out = conn.send(response)
    seen.append(states(conn))
    for piece in body:
        out += conn.send(ev.Data(piece))
    out += conn.send(ev.END_OF_MESSAGE)
    seen.append(states(conn))
    return out, seen


REQUESTS = {
    "get_1_1": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    "get_1_0": b"GET / HTTP/1.0\r\n\r\n",
    "head_1_1": b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n",
    "head_1_0": b"HEAD / HTTP/1.0\r\n\r\n",
    "close": b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    "post_length": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
    "post_chunked": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
}
RESPONSES = {
    "length": (ev.Response(200, [(b"content-length", b"5"), (b"x-a", b"1")], b"OK"), [b"hel", b"lo"]),
    "no_length": (ev.Response(200, [(b"x-a", b"1")], b"OK"), [b"hel", b"", b"lo"]),
    "no_content": (ev.Response(204, [], b"No Content"), []),
    "not_modified": (ev.Response(304, [(b"etag", b'"x"')], b""), []),
    "draining": (ev.Response(200, [(b"content-length", b"2"), (b"connection", b"close")], b"OK"), [b"hi"]),
    "empty": (ev.Response(200, [(b"content-length", b"0")], b"OK"), []),
}


@pytest.mark.parametrize("request_name", list(REQUESTS))
@pytest.mark.parametrize("response_name", list(RESPONSES))
def test_responses_are_written_as_h11_writes_them(request_name: str, response_name: str) -> None:
    raw = REQUESTS[request_name]
    response, body = RESPONSES[response_name]
    if request_name.startswith("head"):
        body = []
    fast = play_response(FastConnection, raw, response, body)
    reference = play_response(H11Connection, raw, response, body)
    assert fast == reference


@pytest.mark.parametrize("response_name", list(RESPONSES))
def test_an_http_1_0_client_asking_for_keep_alive_gets_it_where_h11_closes(response_name: str) -> None:
    # The one place the fast connection deliberately differs from h11, which
    # never keeps an HTTP/1.0 connection open (RFC 9112 appendix C.2.2 lets it).
    raw = b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    response, body = RESPONSES[response_name]
    fast, fast_states = play_response(FastConnection, raw, response, body)
    reference, reference_states = play_response(H11Connection, raw, response, body)
    assert reference_states[-1] == (ev.MUST_CLOSE, ev.MUST_CLOSE)
    if response_name in ("no_length", "draining"):  # no length, or the response closes: as h11 in the end
        # (h11, closing from the start, re-spells the response's own "connection: close")
        assert (fast.lower(), fast_states[-2:]) == (reference.lower(), reference_states[-2:])
        return
    assert fast_states[-1] == (ev.DONE, ev.DONE)
    head, _, rest = fast.partition(b"\r\n\r\n")
    assert head.endswith(b"\r\nConnection: keep-alive")
    assert reference.replace(b"Connection: close\r\n", b"") == head.removesuffix(b"\r\nConnection: keep-alive") \
        + b"\r\n\r\n" + rest


def test_an_interim_response_and_a_switch() -> None:
    raw = b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: ws\r\nConnection: upgrade\r\n\r\nearly"
    outs = []
    for cls in CONNECTIONS:
        conn, _ = server(cls, raw)
        assert conn.next_event() is ev.END_OF_MESSAGE
        out = conn.send(ev.InformationalResponse(100, [], b"Continue"))
        out += conn.send(ev.InformationalResponse(101, [(b"upgrade", b"ws"), (b"connection", b"upgrade")], b"Switching"))
        outs.append((out, states(conn), conn.trailing_data[0]))
    assert outs[0] == outs[1]
    assert outs[0][1] == (ev.SWITCHED_PROTOCOL, ev.SWITCHED_PROTOCOL) and outs[0][2] == b"early"


def play_request(cls: Any, request: ev.Request, body: list[bytes], response: bytes) -> tuple[bytes, list[Any], bool]:
    conn = cls.client(max_head=MAX_HEAD)
    seen = [states(conn)]
    out = conn.send(request)
    for piece in body:
        out += conn.send(ev.Data(piece))
    out += conn.send(ev.END_OF_MESSAGE)
    seen.append(states(conn))
    conn.receive_data(response)
    while type(conn.next_event()) is not ev.EndOfMessage:
        pass
    seen.append(states(conn))
    reusable = states(conn) == (ev.DONE, ev.DONE)
    if reusable:
        conn.start_next_cycle()
        seen.append(states(conn))
    return out, seen, reusable


@pytest.mark.parametrize(("request_", "body"), [
    pytest.param(ev.Request(b"GET", b"/a?b", [(b"host", b"x"), (b"x-a", b"1")]), [], id="get"),
    pytest.param(ev.Request(b"POST", b"/", [(b"host", b"x"), (b"content-length", b"5")]), [b"he", b"llo"], id="length"),
    pytest.param(ev.Request(b"POST", b"/", [(b"host", b"x"), (b"transfer-encoding", b"chunked")]), [b"he", b"", b"llo"],
                 id="chunked"),
    pytest.param(ev.Request(b"GET", b"/", [(b"host", b"x"), (b"connection", b"close")]), [], id="close"),
])
@pytest.mark.parametrize("response", [
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi", id="length"),
    pytest.param(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n", id="chunked"),
    pytest.param(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi", id="close"),
    pytest.param(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi", id="http_1_0"),
])
def test_requests_are_written_and_reused_as_h11_does(request_: ev.Request, body: list[bytes], response: bytes) -> None:
    assert play_request(FastConnection, request_, body, response) == play_request(H11Connection, request_, body, response)


@pytest.mark.parametrize("cls", CONNECTIONS, ids=["fast", "h11"])
def test_sending_off_the_framing_is_a_local_error(cls: Any) -> None:
    conn, _ = server(cls, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    conn.next_event()
    conn.send(ev.Response(200, [(b"content-length", b"2")], b"OK"))
    with pytest.raises(ev.LocalProtocolError):
        conn.send(ev.Data(b"abc"))

    conn, _ = server(cls, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    conn.next_event()
    conn.send(ev.Response(200, [(b"content-length", b"2")], b"OK"))
    conn.send(ev.Data(b"a"))
    with pytest.raises(ev.LocalProtocolError):
        conn.send(ev.END_OF_MESSAGE)

    client = cls.client(max_head=MAX_HEAD)
    with pytest.raises(ev.LocalProtocolError):
        client.send(ev.Data(b"x"))  # before any request
    client = cls.client(max_head=MAX_HEAD)  # h11's is in ERROR now
    client.send(ev.Request(b"GET", b"/", [(b"host", b"x")]))
    with pytest.raises(ev.LocalProtocolError):
        client.start_next_cycle()  # the exchange is not done


@pytest.mark.parametrize("cls", CONNECTIONS, ids=["fast", "h11"])
def test_a_body_cut_short_by_the_peer_is_a_remote_error(cls: Any) -> None:
    conn, _ = server(cls, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab")
    assert type(conn.next_event()) is ev.Data
    conn.receive_data(b"")
    with pytest.raises(ev.RemoteProtocolError):
        conn.next_event()


def test_an_oversized_response_head_is_refused() -> None:
    conn = FastConnection.client(max_head=100)
    conn.send(ev.Request(b"GET", b"/", [(b"host", b"x")]))
    conn.send(ev.END_OF_MESSAGE)
    conn.receive_data(b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 20)
    with pytest.raises(ev.RemoteProtocolError) as caught:
        conn.next_event()
    assert caught.value.status_hint == 502


def read_response(cls: Any, reads: list[bytes]) -> tuple[list[Any], bytes, tuple[bytes, bool], Any]:
    """A response read in `reads` (b"": the backend closes): its events (the body joined), and the
    connection's end."""
    conn = cls.client(max_head=MAX_HEAD)
    conn.send(ev.Request(b"GET", b"/", [(b"host", b"x")]))
    conn.send(ev.END_OF_MESSAGE)
    events: list[Any] = []
    body = b""
    for data in reads:
        conn.receive_data(data)
        while True:
            try:
                event = conn.next_event()
            except ev.RemoteProtocolError:
                return events, body, (b"", True), "error"
            if event is ev.NEED_DATA or type(event) is ev.EndOfMessage or event is ev.CONNECTION_CLOSED:
                if event is not ev.NEED_DATA:
                    events.append(type(event))
                break
            if type(event) is ev.Data:
                body += bytes(event.data)
            else:
                events.append(type(event))
        if events and events[-1] in (ev.EndOfMessage, type(ev.CONNECTION_CLOSED)):
            break
    return events, body, conn.trailing_data, states(conn)


HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n"


@pytest.mark.parametrize("reads", [
    pytest.param([HEAD, b"abcdef"], id="body_whole"),
    pytest.param([HEAD, b"abc", b"def"], id="body_in_parts"),
    pytest.param([HEAD + b"ab", b"cd", b"ef"], id="body_after_head"),
    pytest.param([HEAD, b"abcdefXY"], id="past_the_body"),
    pytest.param([HEAD, b"abc", b"defXY"], id="past_the_body_later"),
    pytest.param([HEAD, b"abc", b""], id="closed_mid_body"),
    pytest.param([b"HTTP/1.1 200 OK\r\n", b"Content-Length: 6\r\n\r\n", b"abcdef"], id="head_in_parts"),
    pytest.param([b"HTTP/1.0 200 OK\r\n\r\n", b"abc", b"def", b""], id="until_close"),
    pytest.param([b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", b"3\r\nabc\r\n", b"0\r\n\r\n"],
                 id="chunked"),
])
def test_a_response_read_in_parts_is_read_as_h11_reads_it(reads: list[bytes]) -> None:
    assert read_response(FastConnection, reads) == read_response(H11Connection, reads)


def test_a_whole_read_of_a_body_passes_on_as_it_came() -> None:
    conn = FastConnection.client(max_head=MAX_HEAD)
    conn.send(ev.Request(b"GET", b"/", [(b"host", b"x")]))
    conn.send(ev.END_OF_MESSAGE)
    conn.receive_data(HEAD)
    assert type(conn.next_event()) is ev.Response and conn.next_event() is ev.NEED_DATA
    read = bytes(b"abcdef")
    conn.receive_data(read)
    assert conn.next_event().data is read  # (not copied)
