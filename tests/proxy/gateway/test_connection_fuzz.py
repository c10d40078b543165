# A whole connection, fuzzed with hypothesis (bounded): whatever a client
# sends, the gateway answers or closes, logs no bug, and keeps serving; and
# the backend receives exactly the requests a reference reading of the same
# bytes finds, in order, never one that was smuggled inside another's body.
#
# The reference (`expected_targets`): the head checks of proxy/protocol
# (the specification the gateway is tested against elsewhere) decide which
# heads are accepted; h11, a separate implementation, decides where each
# body ends. It stops where the gateway must stop: at a rejected or
# incomplete head, an incomplete body, "Connection: close" or HTTP/1.0.

from __future__ import annotations

import logging

import h11
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy._config import Limits
from proxy._errors import ClientProtocolError
from proxy.protocol._head import Refused, check_head, find_head

from ...helpers import fetch, raw_exchange
from .test_hardening import gateway_with_backend

SMUGGLER = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
CONNECTION_PIECES = [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
    b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", b"3\r\nabc\r\n", b"0\r\n\r\n",
    # a request hidden in a body, by length and by chunks: it must never reach the backend as one
    b"POST /hides HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(SMUGGLER), SMUGGLER),
    b"POST /hides HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n"
    % (len(SMUGGLER), SMUGGLER),
    b"GET /smuggled HTTP/1.1\r\n", b"Host: x\r\n", b"Content-Length: 5\r\n", b"Transfer-Encoding: chunked\r\n",
    b"\r\n", b"\n", b" folded\r\n", b"GET /%2e%2e/x HTTP/1.1\r\n", b"HTTP/1.0", b"\x00", b"\x16\x03\x01", b"zz\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", b"GET http://x/a HTTP/1.1\r\nHost: x\r\n\r\n", b"Connection: close\r\n",
]
LIMITS = Limits()


def expected_targets(data: bytes) -> list[bytes]:
    """The targets a correct gateway forwards for `data`, in order (see the module comment)."""
    targets = []
    buffer = data
    while True:
        while buffer[:2] == b"\r\n":
            buffer = buffer[2:]
        try:
            end = find_head(buffer, LIMITS)
            if end is None:
                return targets
            head = check_head(buffer[:end], LIMITS)
        except (ClientProtocolError, Refused):
            return targets
        reader = h11.Connection(h11.SERVER)
        reader.receive_data(head.encode() + buffer[end:])
        try:
            if type(reader.next_event()) is not h11.Request:
                return targets
            while True:
                event = reader.next_event()
                if event is h11.NEED_DATA:
                    return targets  # the body never ends: the gateway times it out
                if type(event) is h11.EndOfMessage:
                    break
        except h11.RemoteProtocolError:
            return targets  # a malformed body: 400, and the connection ends
        if head.target != b"*":  # OPTIONS * is answered by the gateway itself
            targets.append(head.target)
        if head.version == b"1.0" or any(n == b"connection" and b"close" in v.lower() for n, v in head.headers):
            return targets
        buffer = reader.trailing_data[0]


@given(st.lists(st.sampled_from(CONNECTION_PIECES), min_size=1, max_size=8))
@settings(max_examples=60, deadline=None)
def test_any_connection_leaves_the_gateway_serving(pieces: list[bytes]) -> None:
    data = b"".join(pieces)

    async def scenario() -> None:
        async with trio.open_nursery() as nursery:
            gateway, backend = await gateway_with_backend(nursery, timeouts={"request_head": 0.5, "body_idle": 0.5})
            records: list[logging.LogRecord] = []
            handler = logging.Handler()
            handler.emit = records.append  # type: ignore[method-assign]
            logging.getLogger("fastroute").addHandler(handler)
            try:
                await raw_exchange(gateway, data, read_limit=1.0)
                assert not [r for r in records if r.getMessage().startswith("bug:")]
                assert [seen.target for seen in backend.seen] == expected_targets(data)
                assert (await fetch(gateway, "GET", "/after")).status == 200
            finally:
                logging.getLogger("fastroute").removeHandler(handler)
                nursery.cancel_scope.cancel()

    trio.run(scenario)


def test_the_reference_finds_a_request_hidden_in_a_body_is_not_one() -> None:
    for hides in CONNECTION_PIECES[5:7]:
        assert expected_targets(hides + b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n") == [b"/hides", b"/next"]
