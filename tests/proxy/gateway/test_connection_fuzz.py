# A whole connection, fuzzed with hypothesis (bounded): whatever a client
# sends, the gateway answers or closes, logs no bug, passes no smuggled or
# dot-segment request to a backend, and keeps serving.

from __future__ import annotations

import logging

import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from ...helpers import fetch, raw_exchange
from .test_hardening import gateway_with_backend


CONNECTION_PIECES = [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
    b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", b"3\r\nabc\r\n", b"0\r\n\r\n",
    b"GET /smuggled HTTP/1.1\r\n", b"Host: x\r\n", b"Content-Length: 5\r\n", b"Transfer-Encoding: chunked\r\n",
    b"\r\n", b"\n", b" folded\r\n", b"GET /%2e%2e/x HTTP/1.1\r\n", b"HTTP/1.0", b"\x00", b"\x16\x03\x01", b"zz\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", b"GET http://x/a HTTP/1.1\r\nHost: x\r\n\r\n", b"Connection: close\r\n",
]


@given(st.lists(st.sampled_from(CONNECTION_PIECES), min_size=1, max_size=8))
@settings(max_examples=60, deadline=None)
def test_any_connection_leaves_the_gateway_serving(pieces: list[bytes]) -> None:
    # Whatever a connection sends, the gateway answers or closes, logs no bug,
    # and the backend sees only well-formed requests it was really sent.
    async def scenario() -> None:
        async with trio.open_nursery() as nursery:
            gateway, backend = await gateway_with_backend(nursery, timeouts={"request_head": 0.5, "body_idle": 0.5})
            records: list[logging.LogRecord] = []
            handler = logging.Handler()
            handler.emit = records.append  # type: ignore[method-assign]
            logging.getLogger("fastroute").addHandler(handler)
            try:
                await raw_exchange(gateway, b"".join(pieces), read_limit=1.0)
                assert not [r for r in records if r.getMessage().startswith("bug:")]
                for seen in backend.seen:
                    assert seen.target.startswith(b"/") and b".." not in seen.target
                    assert seen.target != b"/smuggled" or b"GET /smuggled HTTP/1.1\r\nHost: x\r\n" in b"".join(pieces)
                assert (await fetch(gateway, "GET", "/after")).status == 200
            finally:
                logging.getLogger("fastroute").removeHandler(handler)
                nursery.cancel_scope.cancel()

    trio.run(scenario)
