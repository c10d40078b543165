# The compiled HTTP/2 stream (engine/_h2cycle.py): its two translations
# against the general path's (a header list as the HTTP/1.1 head
# protocol/_h2_head.request_head checks, a lane response head as the
# HTTP/2 header list the general path hands the session), and each of its
# hand-overs on real sockets: the response's forms it serves and those it
# leaves to the general path, a backend that does not answer, one that
# closes a pooled connection, a client's reset in flight. (The differential
# test against the trio path, test_h2_native.py, counts what it serves.)

from __future__ import annotations

from typing import Any

import h2.errors
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy._config import Limits
from proxy._errors import ClientProtocolError
from proxy.engine import _h2cycle
from proxy.gateway._server import Gateway
from proxy.protocol._compiled import check_head
from proxy.protocol._h2_head import request_head, response_fields
from proxy.protocol._lane import plain_request, response_head as lane_response_head
from proxy.protocol._rewrite import response_headers, with_fields
from proxy.protocol._wire import parse_response_head
from proxy.routing._record import Exchange

from ...conftest import _compiled
from ...h2_support import H2Client
from ...helpers import serve_raw, route, start_gateway
from ..protocol.test_lane import heads

CLIENTS = pytest.mark.usefixtures("clients_closed", "chosen")  # (the socket tests)


@pytest.fixture(scope="module")
def h2cycle() -> Any:
    """proxy.engine._h2cycle_c (a failure, not a skip, where FASTROUTE_REQUIRE_COMPILED=1)."""
    return _compiled("proxy.engine._h2cycle_c", "the compiled HTTP/2 stream")


@pytest.fixture
def chosen(h2cycle: Any) -> None:
    """Skip unless the engine's HTTP/2 runs the compiled stream (not set aside by FASTROUTE_NO_EXTENSIONS)."""
    if _h2cycle.H2CYCLE_C is None:
        pytest.skip("FASTROUTE_NO_EXTENSIONS is set: the engine's HTTP/2 runs without the compiled stream")

ERR = h2.errors.ErrorCodes
SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_the_hand_overs_are_the_modules(h2cycle: Any) -> None:
    assert h2cycle.HANDOVERS == _h2cycle.HANDOVERS


# --- the request: a header list as HTTP/1.1 ------------------------------------------------

_PSEUDO = [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"api.test"), (b":path", b"/a/b?c=d")]
_FIELD_NAMES = st.sampled_from([b"accept", b"x-a", b"X-A", b"cookie", b"host", b"te", b"connection", b"keep-alive",
                                b"content-length", b"x_under", b"", b"a b", b":path", b":status", b"via",
                                b"x-forwarded-for", b"user-agent"])
_FIELD_VALUES = st.one_of(st.sampled_from([b"1", b"a b", b" a", b"a ", b"\ta", b"", b"trailers", b"api.test",
                                           b"a\x00b", b"a\rb", b"a\nb", b"\xff", b"keep-alive"]),
                          st.binary(max_size=8))
_PATHS = st.sampled_from([b"/a/b?c=d", b"/", b"*", b"a", b"", b"/%7e", b"/a/../b", b"//a", b"/a#f", b"/a b"])
_METHODS = st.sampled_from([b"GET", b"HEAD", b"DELETE", b"OPTIONS", b"CONNECT", b"get", b"G T", b""])


@st.composite
def header_lists(draw: st.DrawFn) -> list[tuple[bytes, bytes]]:
    """Header lists, half of them as plain as the cycle takes but for what the draws change."""
    def often(usual: bytes, others: st.SearchStrategy[bytes]) -> bytes:
        return usual if draw(st.booleans()) else draw(others)

    pseudo = [(b":method", often(b"GET", _METHODS)), (b":scheme", b"https"),
              (b":authority", often(b"api.test", st.sampled_from([b"API.test:8443", b"[::1]", b"", b"a b",
                                                                  b"10.0.0.1"]))),
              (b":path", often(b"/a/b?c=d", _PATHS))]
    pseudo = draw(st.permutations(pseudo))
    if draw(st.integers(0, 4)) == 0:
        del pseudo[draw(st.integers(0, 3))]
    regular = draw(st.lists(st.tuples(_FIELD_NAMES, _FIELD_VALUES), max_size=4))
    fields = pseudo + regular
    if draw(st.integers(0, 4)) == 0:  # a pseudo-header out of place, or twice
        fields.insert(draw(st.integers(0, len(fields))), draw(st.sampled_from(_PSEUDO)))
    return fields


@SETTINGS
@given(fields=header_lists())
def test_a_header_list_the_cycle_writes_is_the_head_the_general_path_checks(h2cycle: Any,
                                                                           fields: list[tuple[bytes, bytes]]) -> None:
    limits = Limits()
    head = h2cycle.http11(fields)
    if head is None or plain_request(head, limits) is None:
        return  # the general path's, whatever it makes of it
    assert request_head(fields, limits) == check_head(head, limits)


def test_the_plainest_list_is_the_cycles_and_others_are_not(h2cycle: Any) -> None:
    head = h2cycle.http11([*_PSEUDO, (b"accept", b"*/*")])
    assert head == b"GET /a/b?c=d HTTP/1.1\r\nhost: api.test\r\naccept: */*\r\n\r\n"
    assert plain_request(head, Limits()) == b"/a/b?c=d"  # and plain: the cycle's
    for extra in [(b"cookie", b"a=1"), (b"host", b"api.test"), (b"te", b"trailers"), (b"Accept", b"*/*"),
                  (b"connection", b"keep-alive"), (b"accept", b" x"), (b":path", b"/")]:
        assert h2cycle.http11([*_PSEUDO, extra]) is None, extra
    with pytest.raises(ClientProtocolError):  # (the general path's 501: never the cycle's)
        request_head([(b":method", b"CONNECT"), *_PSEUDO[1:]], Limits())


# --- the response: a lane head as HTTP/2's header list ------------------------------------

_EXTRA = st.sampled_from([[], [(b"strict-transport-security", b"max-age=600")], [(b"server", b"fastroute")]])


@SETTINGS
@given(head=heads(), extra=_EXTRA)
def test_a_lane_head_is_the_header_list_the_general_path_gives_the_session(h2cycle: Any, head: bytes,
                                                                           extra: list[tuple[bytes, bytes]]) -> None:
    lane = lane_response_head(head)
    cycled = h2cycle.response_fields(head, extra)
    if lane is None or head.count(b"\r\n") > 256:  # (256 lines or more: past those read in place)
        assert cycled is None
        return
    assert cycled is not None and cycled[:3] == lane[:3]
    _, parsed_status, _, headers = parse_response_head(head)
    general = response_fields(parsed_status, with_fields(response_headers(headers), extra))
    assert cycled[3] == general


@pytest.mark.parametrize(("head", "extra", "fields"), [
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nServer: x\r\n\r\n", [(b"server", b"fastroute")],
                 [(b":status", b"200"), (b"content-length", b"3"), (b"server", b"x")], id="backends_field_wins"),
    pytest.param(b"HTTP/1.1 404 Nope\r\nContent-Length: 0\r\nConnection: x-a, keep-alive\r\nX-A: 1\r\nKeep-Alive: t\r\n"
                 b"X-B: \r\n\r\n", [(b"strict-transport-security", b"max-age=1")],
                 [(b":status", b"404"), (b"content-length", b"0"), (b"x-b", b""),
                  (b"strict-transport-security", b"max-age=1")], id="hop_by_hop_gone_extra_added"),
])
def test_lane_heads_as_header_lists(h2cycle: Any, head: bytes, extra: list[tuple[bytes, bytes]],
                                    fields: list[tuple[bytes, bytes]]) -> None:
    cycled = h2cycle.response_fields(head, extra)
    assert cycled is not None
    assert cycled[3] == fields


# --- the hand-overs, on sockets ---------------------------------------------------------

async def read_head(stream: trio.SocketStream, buffer: bytearray) -> bytes | None:
    """The next request head a raw backend reads (None: the gateway closed the connection)."""
    while b"\r\n\r\n" not in buffer:
        data = await stream.receive_some(65536)
        if not data:
            return None
        buffer += data
    end = buffer.index(b"\r\n\r\n") + 4
    head = bytes(buffer[:end])
    del buffer[:end]
    return head


WARM = b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nwarm"


async def warm_gateway(nursery: trio.Nursery, answer: Any, **config: Any) -> tuple[Gateway, H2Client]:
    """A gateway in front of a raw backend answering /warm itself (so that a backend connection is
    pooled: the cycle's) and every other request with `answer(stream, head)`."""

    async def backend(stream: trio.SocketStream) -> None:
        buffer = bytearray()
        while (head := await read_head(stream, buffer)) is not None:
            if head.startswith(b"GET /warm "):
                await stream.send_all(WARM)
            elif not await answer(stream, head):
                return

    address = await serve_raw(nursery, backend)
    gateway = await start_gateway(nursery, [route("/", address)], io="native", **config)
    client = await H2Client.connect(gateway.addresses[0])
    assert (await client.request("GET", "/warm")).body == b"warm"
    return gateway, client


def counts(gateway: Gateway) -> tuple[int, int, int]:
    engine = gateway.engine
    assert engine is not None
    return engine.served, engine.cycled, engine.handed_back


BIG = 100_000  # past what the cycle keeps of a response (READ_MAX)


@CLIENTS
@pytest.mark.parametrize(("writes", "body", "cycled"), [
    pytest.param([b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-a: 1\r\n\r\nhello"], b"hello", 1, id="one_write"),
    pytest.param([b"HTTP/1.1 201 Created\r\ncontent-length: 5\r\n\r\n", b"he", b"llo"], b"hello", 1,
                 id="head_then_body_in_parts"),
    pytest.param([b"HTTP/1.1 200 OK\r\ncon", b"tent-length: 5\r\n\r\nhello"], b"hello", 1, id="head_in_parts"),
    pytest.param([b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"], b"", 1, id="empty_body"),
    pytest.param([b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello"], b"hello", 1,
                 id="backend_closes"),
    pytest.param([b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % BIG, b"b" * BIG], b"b" * BIG, 0,
                 id="past_read_max"),
    pytest.param([b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"], b"hello", 0,
                 id="chunked"),
    pytest.param([b"HTTP/1.1 204 No Content\r\n\r\n"], b"", 0, id="no_content"),
    pytest.param([b"HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n",
                  b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"], b"hello", 0, id="interim"),
])
async def test_a_response_the_cycle_serves_or_hands_over_arrives_the_same(
        nursery: trio.Nursery, writes: list[bytes], body: bytes, cycled: int) -> None:
    async def answer(stream: trio.SocketStream, head: bytes) -> bool:
        for part in writes:
            await stream.send_all(part)
            await trio.sleep(0)  # (the parts may still arrive as one read: either way the same answer)
        return b"connection: close" not in writes[-1]

    gateway, client = await warm_gateway(nursery, answer)
    reply = await client.request("GET", "/x")
    assert (reply.status in (200, 201, 204, 404), reply.body, reply.ended) == (True, body, True)
    assert all(name not in (b"connection", b"transfer-encoding") for name, _ in reply.headers)
    assert counts(gateway) == (2, cycled, 0)
    assert (await client.request("GET", "/warm")).body == b"warm"  # and the connection goes on


@CLIENTS
async def test_a_backend_that_does_not_answer_gets_the_gateways_504(nursery: trio.Nursery) -> None:
    async def silent(stream: trio.SocketStream, head: bytes) -> bool:
        await stream.receive_some(65536)  # until the gateway closes the connection
        return False

    gateway, client = await warm_gateway(nursery, silent, timeouts={"response_head": 0.2})
    reply = await client.request("GET", "/x")
    assert reply.status == 504 and reply.ended
    assert counts(gateway) == (2, 0, 0)


@CLIENTS
async def test_a_body_that_stalls_is_the_general_paths_which_ends_the_stream(nursery: trio.Nursery) -> None:
    async def stalls(stream: trio.SocketStream, head: bytes) -> bool:
        await stream.send_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf")
        await stream.receive_some(65536)  # the rest never comes
        return False

    gateway, client = await warm_gateway(nursery, stalls, timeouts={"body_idle": 0.2})
    reply = await client.request("GET", "/x")
    # The general path relays what came, then its own idle deadline resets the stream.
    assert (reply.status, reply.body, reply.reset) == (200, b"half", ERR.INTERNAL_ERROR)
    assert counts(gateway)[1] == 0


@CLIENTS
async def test_a_pooled_connection_the_backend_closes_is_retried_on_a_new_one(nursery: trio.Nursery) -> None:
    closed_once = False

    async def closes_first(stream: trio.SocketStream, head: bytes) -> bool:
        nonlocal closed_once
        if not closed_once:  # the request was read, and not answered: the gateway may send it again
            closed_once = True
            return False
        await stream.send_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nagain")
        return True

    gateway, client = await warm_gateway(nursery, closes_first)
    reply = await client.request("GET", "/x")
    assert (reply.status, reply.body) == (200, b"again")
    assert counts(gateway) == (2, 0, 0)


@CLIENTS
async def test_a_client_reset_in_flight_closes_that_backend_connection(nursery: trio.Nursery) -> None:
    arrived, closed = trio.Event(), trio.Event()

    async def waits(stream: trio.SocketStream, head: bytes) -> bool:
        arrived.set()
        while await stream.receive_some(65536):  # until the gateway closes the connection
            pass
        closed.set()
        return False

    gateway, client = await warm_gateway(nursery, waits)
    records: list[Exchange] = []
    gateway.records = lambda: True  # type: ignore[method-assign]
    gateway.record = lambda client_ip, exchange: records.append(exchange)  # type: ignore[method-assign]
    stream_id = client.start("GET", "/x")
    await client.flush()
    with trio.fail_after(30):  # a hang's bound
        await arrived.wait()
        client.conn.reset_stream(stream_id, ERR.CANCEL)
        await client.flush()
        await closed.wait()
    assert (await client.request("GET", "/warm")).body == b"warm"
    assert client.goaway is None
    assert counts(gateway) == (2, 0, 0)  # the reset one recorded, not served
    reset, after = records
    assert (reset.target, reset.status, reset.response_started, reset.protocol) == (b"/x", 0, False, "HTTP/2")
    assert reset.backend == after.backend != "-"


@CLIENTS
async def test_a_drain_with_a_cycled_stream_in_flight_lets_it_finish(nursery: trio.Nursery) -> None:
    arrived, release = trio.Event(), trio.Event()

    async def held(stream: trio.SocketStream, head: bytes) -> bool:
        arrived.set()
        await release.wait()
        await stream.send_all(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nlate")
        return True

    gateway, client = await warm_gateway(nursery, held)
    stream_id = client.start("GET", "/x")
    await client.flush()
    with trio.fail_after(30):  # a hang's bound
        await arrived.wait()
        nursery.start_soon(gateway.drain)
        await client.until(lambda: client.goaway is not None)
    assert client.goaway is not None and client.goaway.last_stream_id == stream_id
    release.set()
    reply = await client.reply(stream_id)
    assert (reply.status, reply.body) == (200, b"late")
    await client.until(lambda: False)  # then the gateway closes the connection
    assert client.closed
    assert counts(gateway) == (2, 0, 0)  # the general path read its response (the gateway drains)


@CLIENTS
async def test_a_connections_compiled_streams_share_their_deadlines_heap_entries(nursery: trio.Nursery) -> None:
    # Each stream has a response deadline; a connection's next stream takes the Timed the last one
    # left, whose entry in the loop's heap serves its later deadline: 500 streams, no entry each.
    async def answer(stream: trio.SocketStream, head: bytes) -> bool:
        await stream.send_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        return True

    gateway, client = await warm_gateway(nursery, answer)
    engine = gateway.engine
    assert engine is not None
    before = len(engine.loop._timers)
    for _ in range(500):
        assert (await client.request("GET", "/x")).body == b"ok"
    assert counts(gateway)[1] == 500
    assert len(engine.loop._timers) <= before + 2


def test_a_head_of_more_lines_than_read_in_place_is_the_general_paths(h2cycle: Any) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n" + b"X-A: 1\r\n" * 300 + b"\r\n"
    assert lane_response_head(head) is not None  # (the lane's twin takes it)
    assert h2cycle.response_fields(head, []) is None
