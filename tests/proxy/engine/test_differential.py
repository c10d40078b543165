# The native engine against the trio path, the reference: the same client
# bytes (the connection fuzz corpus, smuggling attempts included, and
# requests for every kind of response), sent whole and a byte at a time to
# a gateway on each path, must give the same bytes back to the client and
# the same requests to the backend.

from __future__ import annotations

import h11
import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from ...helpers import Backend, BackendExchange, Seen, raw_exchange, route, start_backend, start_gateway
from ..gateway.test_connection_fuzz import CONNECTION_PIECES
from ..gateway.test_hardening import send_slowly

TIMEOUTS = {"request_head": 0.3, "keepalive": 0.3, "body_idle": 0.3}
RESPONSES = [
    b"GET /cl HTTP/1.1\r\nHost: x\r\n\r\n", b"GET /chunked HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /none HTTP/1.1\r\nHost: x\r\n\r\n", b"HEAD /cl HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /close HTTP/1.1\r\nHost: x\r\n\r\n", b"GET /interim HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /cl HTTP/1.0\r\n\r\n", b"GET /cl HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"DELETE /cl HTTP/1.1\r\nHost: x\r\nConnection: close, x-drop\r\nX-Drop: 1\r\nX_Under: 2\r\n\r\n",
    b"GET /cl HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: upgrade\r\n\r\n",
]


async def kinds(backend: Backend, seen: Seen, exchange: BackendExchange) -> None:
    path = seen.target.split(b"?")[0]
    if path.endswith(b"/chunked"):
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


Outcome = tuple[bytes, list[tuple[bytes, bytes, tuple[tuple[bytes, bytes], ...], bytes]]]


async def through_both(data: bytes, *, slowly: bool) -> list[Outcome]:
    """(what the client got, what the backend saw) on the trio path, then on the engine."""
    outcomes = []
    async with trio.open_nursery() as nursery:
        for io in ("trio", "native"):
            backend = await start_backend(nursery, "b", kinds)
            gateway = await start_gateway(nursery, [route("/", backend)], io=io, timeouts=TIMEOUTS)
            assert (gateway.engine is not None) == (io == "native")
            reply = await (send_slowly(gateway, data) if slowly else raw_exchange(gateway, data, read_limit=2.0))
            # An HTTP/1.0 request without Host gets the backend's address: each path has its own backend.
            ours = str(backend.address).encode()
            seen = [(s.method, s.target, tuple((n, v.replace(ours, b"BACKEND")) for n, v in s.headers), s.body)
                    for s in backend.seen]
            outcomes.append((reply.replace(ours, b"BACKEND"), seen))
        nursery.cancel_scope.cancel()
    return outcomes


def check(data: bytes, *, slowly: bool) -> None:
    (trio_reply, trio_seen), (native_reply, native_seen) = trio.run(lambda: through_both(data, slowly=slowly))
    assert native_seen == trio_seen
    assert native_reply == trio_reply


@pytest.mark.parametrize("data", RESPONSES + [b"".join(RESPONSES[:6])], ids=list(range(len(RESPONSES) + 1)))
@pytest.mark.parametrize("slowly", [False, True], ids=["whole", "byte_by_byte"])
def test_every_kind_of_response_the_same_on_both_paths(data: bytes, slowly: bool) -> None:
    check(data, slowly=slowly)


@given(st.lists(st.sampled_from(CONNECTION_PIECES + RESPONSES), min_size=1, max_size=6), st.booleans())
@settings(max_examples=40, deadline=None)
def test_any_connection_the_same_on_both_paths(pieces: list[bytes], slowly: bool) -> None:
    check(b"".join(pieces), slowly=slowly)
