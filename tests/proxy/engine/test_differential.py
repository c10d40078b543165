# The native engine against the trio path, the reference: the same client
# bytes (the connection fuzz corpus, smuggling attempts included, and
# requests for every kind of response), sent whole and a byte at a time to
# a gateway on each path, must give the same bytes back to the client and
# the same requests to the backend.

from __future__ import annotations

import os
import shutil
import ssl
import socket
import tempfile
from collections.abc import Iterator
from functools import cache
from typing import Any
from pathlib import Path

import h11
import pytest
import trio
import trustme
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy._config import Address, Tls, TlsPair
from proxy.engine._pipe import SPLICE_MIN

from ...conftest import chosen_compiled_cycle
from ...helpers import (
    LOOPBACK, Backend, BackendExchange, Seen, raw_exchange, reset, route, start_backend, start_gateway,
)
from ..gateway.test_connection_fuzz import CONNECTION_PIECES
from ..gateway.test_hardening import send_slowly

# Short, so that a case waiting for one is quick; longer under a sanitizer
# (.ci/asan), where a head sent byte by byte can take most of 0.3 s.
SLOW = float(os.environ.get("FASTROUTE_TEST_SLOWDOWN", "1"))
TIMEOUTS = {"request_head": 0.3 * SLOW, "keepalive": 0.3 * SLOW, "body_idle": 0.3 * SLOW}
RESPONSES = [
    b"GET /cl HTTP/1.1\r\nHost: x\r\n\r\n", b"GET /chunked HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /none HTTP/1.1\r\nHost: x\r\n\r\n", b"HEAD /cl HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /close HTTP/1.1\r\nHost: x\r\n\r\n", b"GET /interim HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /cl HTTP/1.0\r\n\r\n", b"GET /cl HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"DELETE /cl HTTP/1.1\r\nHost: x\r\nConnection: close, x-drop\r\nX-Drop: 1\r\nX_Under: 2\r\n\r\n",
    b"GET /cl HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: upgrade\r\n\r\n",
    # The engine's lane (protocol/_lane.py) and its edges: the body after
    # the head in a later read, the head itself in two reads (the general
    # path then), bytes past the body (the connection is not reused), a
    # body long enough to splice, and the same connection again after each.
    b"GET /late-body HTTP/1.1\r\nHost: x\r\n\r\nGET /cl HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /split-head HTTP/1.1\r\nHost: x\r\n\r\nGET /cl HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /split-like-a-head HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /past-body HTTP/1.1\r\nHost: x\r\n\r\nGET /cl HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /long HTTP/1.1\r\nHost: x\r\n\r\nGET /cl HTTP/1.1\r\nHost: x\r\n\r\n",
    # The compiled cycle's (_cycle.py): the response whole in one read, on a
    # pooled connection; and what it leaves to the general path.
    b"GET /one-write HTTP/1.1\r\nHost: x\r\n\r\nGET /one-write HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /one-write HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    b"HEAD /one-write HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /one-write HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, x-drop\r\nX-Drop: 1\r\n\r\n",
    # A backend that reads the request and resets (routing/_retry.py): a GET
    # is sent once more (the second time answered, or 502), a POST is not.
    b"GET /reset-first HTTP/1.1\r\nHost: x\r\n\r\nGET /cl HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /reset HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /reset HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
]
LONG = SPLICE_MIN + 300 * 1024  # long enough to be spliced
NARROW = 4096  # bytes: a client socket's send buffer that a long response overflows at once


async def in_pieces(exchange: BackendExchange, length: int, cuts: list[int], extra: bytes = b"",
                    note: str = "") -> None:
    """A response with a body of `length` bytes, written in pieces cut at `cuts` (offsets into its body;
    negative: into its head), a moment apart, so that each piece is its own read at the gateway;
    `extra` after the body."""
    conn = exchange.conn
    headers = [("x-note", note)] if note else []
    data = conn.send(h11.Response(status_code=200, headers=[*headers, ("server", "raw"),
                                                            ("content-length", str(length))]))
    if note:
        cuts = [data.index(note.encode()) - len(data)]  # the second read starts inside a field value
    cuts = [len(data) + cut for cut in cuts]
    data += conn.send(h11.Data(data=b"x" * length)) + conn.send(h11.EndOfMessage()) + extra
    for start, end in zip([0, *cuts], [*cuts, len(data)]):
        await exchange.stream.send_all(data[start:end])
        await trio.sleep(0.02)


async def kinds(backend: Backend, seen: Seen, exchange: BackendExchange) -> None:
    path = seen.target.split(b"?")[0]
    if path.endswith(b"/reset") or (path.endswith(b"/reset-first") and len(backend.seen) == 1):
        await reset(backend, seen, exchange)
    elif path.endswith(b"/late-body"):
        await in_pieces(exchange, 4, [0, 2])
    elif path.endswith(b"/split-head"):
        await in_pieces(exchange, 4, [-20])
    elif path.endswith(b"/split-like-a-head"):
        # What follows the cut reads as a response head on its own: it is not one.
        await in_pieces(exchange, 4, [], note="HTTP/1.1 404 Lies")
    elif path.endswith(b"/past-body"):
        await in_pieces(exchange, 4, [], extra=b"EXTRA")
    elif path.endswith(b"/long"):
        await in_pieces(exchange, LONG, [2000, 100_000])
    elif path.endswith(b"/late-long"):  # the lane's length, the most of it after the first read
        await in_pieces(exchange, SPLICE_MIN - 1, [2000])
    elif path.endswith((b"/one-write", b"/one-write-long")):  # head and body in one write, as most servers do
        body = b"%s %s" % (seen.method, seen.target)
        if path.endswith(b"-long"):  # as long as the lane takes (a splice's length, less a little)
            body *= (SPLICE_MIN - 1) // len(body)
        await exchange.stream.send_all(
            exchange.conn.send(h11.Response(status_code=200, headers=[("content-length", str(len(body)))]))
            + (exchange.conn.send(h11.Data(data=body)) if seen.method != b"HEAD" else b"")
            + exchange.conn.send(h11.EndOfMessage()))
    elif path.endswith(b"/chunked"):
        await exchange.send(h11.Response(status_code=200, headers=[("transfer-encoding", "chunked")]),
                            h11.Data(data=b"one"), h11.Data(data=b"two"), h11.EndOfMessage())
    elif path.endswith(b"/none"):
        await exchange.send(h11.Response(status_code=204, headers=[]), h11.EndOfMessage())
    elif path.endswith(b"/close"):
        await exchange.send(h11.Response(status_code=200, headers=[("connection", "close")]),
                            h11.Data(data=b"until the end"), h11.EndOfMessage())
    elif path.endswith(b"/interim"):
        await exchange.send(h11.InformationalResponse(status_code=103, headers=[("link", "</a>")]),
                            h11.Response(status_code=200, headers=[("content-length", "2")]),
                            h11.Data(data=b"ok"), h11.EndOfMessage())
    else:
        body = b"%s %s" % (seen.method, seen.target)
        response = h11.Response(status_code=200, headers=[("content-length", str(len(body)))])
        if seen.method == b"HEAD":
            await exchange.send(response, h11.EndOfMessage())
        else:
            await exchange.send(response, h11.Data(data=body), h11.EndOfMessage())


@cache
def _pki() -> tuple[Tls, ssl.SSLContext]:
    """A certificate for both paths' TLS listeners (made once), and a client context that trusts it."""
    ca = trustme.CA(key_type=trustme.KeyType.ECDSA)
    leaf = ca.issue_cert("x", key_type=trustme.KeyType.ECDSA)
    directory = Path(tempfile.mkdtemp(prefix="fastroute-test-differential-"))
    pair = TlsPair(directory / "cert.pem", directory / "key.pem")
    leaf.cert_chain_pems[0].write_to_path(str(pair.cert))
    leaf.private_key_pem.write_to_path(str(pair.key))
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return Tls(listen=(Address(LOOPBACK, 0),), pairs=(pair,)), context


@pytest.fixture(scope="module", autouse=True)
def _pki_removed() -> Iterator[None]:
    """The certificate's directory goes with this module's tests."""
    yield
    if _pki.cache_info().currsize:
        shutil.rmtree(_pki()[0].pairs[0].cert.parent, ignore_errors=True)
        _pki.cache_clear()


async def tls_exchange(gateway: Any, data: bytes, *, slowly: bool) -> bytes:
    """raw_exchange or send_slowly over HTTPS (byte by byte: a TLS record per byte).

    It reads while it sends, as an HTTPS client does: a client that sends
    on past the gateway's end of the connection (past its own "Connection:
    close", which RFC 9112 section 9.6 forbids) may be reset, on either path
    depending on how soon the gateway closed, and trio.SSLStream then fails
    every call; what it read before that is its reply.
    """
    host, port = gateway.tls_addresses[0]
    stream = trio.SSLStream(await trio.open_tcp_stream(host, port), _pki()[1], server_hostname="x")
    received = bytearray()

    async def receive() -> None:
        try:
            while chunk := await stream.receive_some(65536):
                received.extend(chunk)
        except trio.BrokenResourceError:
            pass

    try:
        await stream.do_handshake()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(receive)
            for piece in ([data[i : i + 1] for i in range(len(data))] if slowly else [data]):
                try:
                    await stream.send_all(piece)
                except trio.BrokenResourceError:
                    break
            nursery.cancel_scope.deadline = trio.current_time() + (5 if slowly else 2)
    except trio.BrokenResourceError:
        pass
    finally:
        await trio.aclose_forcefully(stream)
    return bytes(received)


Outcome = tuple[bytes, list[tuple[bytes, bytes, tuple[tuple[bytes, bytes], ...], bytes]], int]
CYCLED: list[int] = []  # exchanges the engine's compiled cycle served whole, per native run


async def through_both(data: bytes, *, slowly: bool, secure: bool, narrow: bool = False) -> list[Outcome]:
    """(what the client got, what the backend saw, how many connections it had) on the trio path, then
    on the engine; over HTTPS when `secure`; with `narrow`, the gateway's client sockets take NARROW
    bytes at a time (their send buffer, inherited from the listener's)."""
    outcomes = []
    async with trio.open_nursery() as nursery:
        for io in ("trio", "native"):
            backend = await start_backend(nursery, "b", kinds)
            gateway = await start_gateway(nursery, [route("/", backend)], io=io, timeouts=TIMEOUTS,
                                          **({"tls": _pki()[0]} if secure else {}))
            assert (gateway.engine is not None) == (io == "native")
            if narrow:
                for listener in gateway._listeners:
                    listener.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, NARROW)
            if secure:
                reply = await tls_exchange(gateway, data, slowly=slowly)
            else:
                # (Read until the gateway closes, at the keep-alive timeout after the last response: the
                # limit is a bound only a hang reaches, longer for a narrow socket's long responses.)
                reply = await (send_slowly(gateway, data) if slowly
                               else raw_exchange(gateway, data, read_limit=30.0 if narrow else 2.0))
            # An HTTP/1.0 request without Host gets the backend's address: each path has its own backend.
            ours = str(backend.address).encode()
            seen = [(s.method, s.target, tuple((n, v.replace(ours, b"BACKEND")) for n, v in s.headers), s.body)
                    for s in backend.seen]
            outcomes.append((reply.replace(ours, b"BACKEND"), seen, backend.connections))
            if gateway.engine is not None:
                CYCLED.append(gateway.engine.cycled)
        nursery.cancel_scope.cancel()
    return outcomes


def check(data: bytes, *, slowly: bool, connections: bool = False, secure: bool = False, narrow: bool = False) -> None:
    """The same on both paths; with `connections`, the same backend connections too.

    (Only where the engine serves every request: the two paths keep their
    own pools, so one handed back opens its own connection.)
    """
    (trio_reply, trio_seen, trio_conns), (native_reply, native_seen, native_conns) = trio.run(
        lambda: through_both(data, slowly=slowly, secure=secure, narrow=narrow))
    assert native_seen == trio_seen
    assert native_reply == trio_reply
    if connections:
        assert native_conns == trio_conns


@pytest.mark.parametrize("data", RESPONSES + [b"".join(RESPONSES[:6])], ids=list(range(len(RESPONSES) + 1)))
@pytest.mark.parametrize("slowly", [False, True], ids=["whole", "byte_by_byte"])
@pytest.mark.parametrize("secure", [False, True], ids=["http", "https"])
def test_every_kind_of_response_the_same_on_both_paths(data: bytes, slowly: bool, secure: bool) -> None:
    check(data, slowly=slowly, connections=True, secure=secure)


@pytest.mark.parametrize("data", [b"\r\n", b"\r\n\r\n", b"\r\nGET /one-write HTTP/1.1\r\nHost: x\r\n\r\n\r\n"],
                         ids=["crlf", "two_crlf", "crlf_around_a_request"])
def test_empty_lines_the_same_on_both_paths(data: bytes) -> None:
    # Empty lines do not start a head: the connection closes at the
    # keep-alive timeout with nothing said (the cycle once answered 408).
    check(data, slowly=False)


@pytest.mark.parametrize("slowly", [False, True], ids=["whole", "byte_by_byte"])
@pytest.mark.parametrize("secure", [False, True], ids=["http", "https"])
def test_keep_alive_requests_the_same_through_the_compiled_cycle(slowly: bool, secure: bool) -> None:
    chosen_compiled_cycle()  # skips (or fails in CI) when not built or set aside
    CYCLED.clear()
    # The first request connects (the general path); the others find a
    # pooled connection: the cycle's, whole, from end to end.
    check(b"GET /one-write?1 HTTP/1.1\r\nHost: x\r\n\r\n" + b"GET /one-write?2 HTTP/1.1\r\nHost: x\r\nX_Under: 1\r\n"
          b"Connection: keep-alive\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n" * 3
          + b"GET /one-write?3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", slowly=slowly, connections=True,
          secure=secure)
    assert CYCLED == [3]  # not the last: "Connection: close" is the general path's


@pytest.mark.parametrize("slowly", [False, True], ids=["whole", "byte_by_byte"])
@pytest.mark.parametrize("secure", [False, True], ids=["http", "https"])
def test_a_body_in_later_reads_the_same_through_the_compiled_cycle(slowly: bool, secure: bool) -> None:
    chosen_compiled_cycle()
    CYCLED.clear()
    # The head alone, then the body in two reads: the cycle passes each on;
    # bytes past the body, and a body long enough to splice, are the
    # general path's (the connection is not reused; the kernel moves it).
    check(b"GET /one-write HTTP/1.1\r\nHost: x\r\n\r\n" + b"GET /late-body HTTP/1.1\r\nHost: x\r\n\r\n" * 2
          + b"GET /past-body HTTP/1.1\r\nHost: x\r\n\r\nGET /long HTTP/1.1\r\nHost: x\r\n\r\n"
          + b"GET /late-body HTTP/1.1\r\nHost: x\r\n\r\n", slowly=slowly, connections=True, secure=secure)
    # Over TLS nothing is spliced: the long body goes through the lane, and its backend connection
    # comes back to the pool for the last request, which the cycle serves.
    assert CYCLED == ([3] if secure else [2])


def test_a_lane_response_the_client_socket_takes_in_parts_the_same_through_the_compiled_cycle() -> None:
    chosen_compiled_cycle()
    CYCLED.clear()
    # Long responses through a socket that takes NARROW bytes at a time: the cycle writes part of
    # one, then hands over (resume, LANE: with what the socket did not take, in one write; or with a
    # read of the body in hand, in later ones); the general path finishes it as the lane.
    check(b"GET /one-write HTTP/1.1\r\nHost: x\r\n\r\n" + b"GET /one-write-long HTTP/1.1\r\nHost: x\r\n\r\n" * 2
          + b"GET /late-long HTTP/1.1\r\nHost: x\r\n\r\n" + b"GET /one-write HTTP/1.1\r\nHost: x\r\n\r\n",
          slowly=False, connections=True, narrow=True)
    assert CYCLED == [1]  # the last only: the three long ones were handed over


def test_an_empty_line_after_the_last_request_the_same_on_both_paths() -> None:
    # Found by the test below: a lone CR (the first half of an empty line,
    # byte by byte) started the request head's timeout on the trio path, and
    # whether its 408 came before the client closed was a matter of timing.
    # An empty line starts no head (RFC 9112 section 2.2): no 408 on either.
    check(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nPOST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc\r\n",
          slowly=True)


@given(st.lists(st.sampled_from(CONNECTION_PIECES + RESPONSES), min_size=1, max_size=6), st.booleans())
@settings(max_examples=40, deadline=None)
def test_any_connection_the_same_on_both_paths(pieces: list[bytes], slowly: bool) -> None:
    check(b"".join(pieces), slowly=slowly)


@given(st.lists(st.sampled_from(CONNECTION_PIECES + RESPONSES), min_size=1, max_size=6), st.booleans())
@settings(max_examples=15, deadline=None)
def test_any_connection_over_https_the_same_on_both_paths(pieces: list[bytes], slowly: bool) -> None:
    check(b"".join(pieces), slowly=slowly, secure=True)
