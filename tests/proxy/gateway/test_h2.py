# HTTP/2 to clients, frame by frame, on real sockets (tests/h2_support.py's
# client over h2): the preface on a plain listener, the mapping to HTTP/1.1
# backends (RFC 9113 section 8), malformed requests, the bounds and the
# known attacks, drain and idle. The real clients (curl, nghttp, h2load,
# httpx) are test_h2_clients.py's.

from __future__ import annotations

import h2.errors
import h2.events
import h2.settings
import pytest
import trio
import hpack
from hyperframe.frame import (
    ContinuationFrame, Frame, GoAwayFrame, HeadersFrame, PingFrame, RstStreamFrame, SettingsFrame,
)

from proxy._config import Address
from proxy.gateway._server import Gateway

from ...h2_support import PREFACE, H2Client, H2Reply
from ...helpers import LOOPBACK, Backend, BackendExchange, Client, Seen, raw_exchange, route, start_backend, start_gateway

pytestmark = pytest.mark.usefixtures("clients_closed")

ERR = h2.errors.ErrorCodes


async def connect(gateway: Gateway, **kw: object) -> H2Client:
    return await H2Client.connect(gateway.addresses[0], **kw)


def seen_headers(seen: Seen) -> dict[str, str]:
    return {n.decode(): v.decode() for n, v in seen.headers}


# --- the preface, and requests as HTTP/1.1 backends see them ---------------------


async def test_prior_knowledge_on_the_plain_listener_reaches_the_backend_as_http11(nursery: trio.Nursery) -> None:
    backend = await start_backend(nursery)
    gateway = await start_gateway(nursery, [route("/", backend)])
    client = await connect(gateway)
    reply = await client.request("GET", "/a?b=1", [("accept", "x/y"), ("cookie", "a=1"), ("cookie", "b=2")],
                                 authority="api.test:8080")
    assert (reply.status, reply.ended) == (200, True)
    seen = backend.seen[0]
    assert (seen.method, seen.target) == (b"GET", b"/a?b=1")
    headers = seen_headers(seen)
    assert headers["host"] == "api.test:8080"  # :authority becomes Host
    assert headers["cookie"] == "a=1; b=2"  # joined (RFC 9113 section 8.2.3)
    assert headers["x-forwarded-proto"] == "http"
    assert headers["via"] == "2 fastroute"  # the protocol it came in (RFC 9110 section 7.6.3)
    assert seen.headers[0][0] == b"host"
    # The same connection carries the next request.
    again = await client.request("GET", "/second")
    assert again.status == 200 and backend.seen[1].target == b"/second"
    assert client.goaway is None


@pytest.mark.parametrize("split", [1, 7, 24], ids=["byte_at_a_time", "seven", "whole"])
async def test_the_preface_is_told_apart_however_it_arrives(nursery: trio.Nursery, split: int) -> None:
    backend = await start_backend(nursery)
    gateway = await start_gateway(nursery, [route("/", backend)])
    stream = await trio.open_tcp_stream(*gateway.addresses[0])
    client = H2Client(stream)
    data = client.conn.data_to_send()
    assert data.startswith(PREFACE)
    for at in range(0, len(PREFACE), split):
        await stream.send_all(data[at:min(at + split, len(PREFACE))])
        await trio.sleep(0)  # each piece its own read, as far as the loop goes
    await stream.send_all(data[len(PREFACE):])
    reply = await client.request("GET", "/x")
    assert reply.status == 200


async def test_a_broken_preface_and_a_late_one_get_505(nursery: trio.Nursery) -> None:
    backend = await start_backend(nursery)
    gateway = await start_gateway(nursery, [route("/", backend)])
    broken = await raw_exchange(gateway, b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n")
    assert broken.startswith(b"HTTP/1.1 505 ")
    # After an HTTP/1.1 request, the preface is no longer HTTP/2's.
    client = await Client.connect(gateway)
    assert (await client.request("GET", "/x")).status == 200
    await client.stream.send_all(PREFACE)
    rest = b""
    while chunk := await client.stream.receive_some(65536):
        rest += chunk
    assert rest.startswith(b"HTTP/1.1 505 ")
    assert len(backend.seen) == 1


async def test_bodies_go_with_their_length_or_chunked_and_responses_come_whole(nursery: trio.Nursery) -> None:
    async def answer(backend: object, seen: Seen, exchange: BackendExchange) -> None:
        size = int(seen.target.rsplit(b"/", 1)[1])
        await exchange.respond(200, bytes(range(256)) * (size // 256) + b"x" * (size % 256))

    backend = await start_backend(nursery, handler=answer)
    gateway = await start_gateway(nursery, [route("/", backend)])
    client = await connect(gateway)
    body = bytes(range(256)) * 1000  # past the stream's window: the client waits for WINDOW_UPDATE
    sized = await client.request("POST", "/up/0", [("content-length", str(len(body)))], body=body)
    unsized = await client.request("POST", "/up/0", body=body)
    assert (sized.status, unsized.status) == (200, 200)
    assert [s.body for s in backend.seen] == [body, body]
    assert seen_headers(backend.seen[0])["content-length"] == str(len(body))
    assert seen_headers(backend.seen[1])["transfer-encoding"] == "chunked"
    # A response past the client's windows and frame size.
    big = await client.request("GET", "/down/1000000")
    assert big.status == 200 and len(big.body) == 1_000_000 and big.body[:256] == bytes(range(256))
    head = await client.request("HEAD", "/down/10")
    assert (head.status, head.body, head.ended) == (200, b"", True)


async def test_responses_keep_no_connection_specific_field(nursery: trio.Nursery) -> None:
    async def answer(backend: object, seen: Seen, exchange: BackendExchange) -> None:
        await exchange.respond(200, b"ok", [(b"keep-alive", b"timeout=5"), (b"x-kept", b"1")])

    backend = await start_backend(nursery, handler=answer)
    gateway = await start_gateway(nursery, [route("/", backend)])
    client = await connect(gateway)
    reply = await client.request("GET", "/x")
    names = {n for n, _ in reply.headers}
    assert b"x-kept" in names and not names & {b"connection", b"keep-alive", b"transfer-encoding"}


async def test_a_missing_route_is_the_same_404_as_over_http11(nursery: trio.Nursery) -> None:
    backend = await start_backend(nursery)
    gateway = await start_gateway(nursery, [route("/a", backend)])
    client = await connect(gateway)
    reply = await client.request("GET", "/b")
    assert (reply.status, reply.ended) == (404, True)
    assert reply.body  # the gateway's own short answer
    assert client.goaway is None  # the connection goes on


# --- malformed requests: the stream reset, nothing forwarded ----------------------


@pytest.mark.parametrize("fields", [
    pytest.param([("Upper", "x")], id="uppercase_name"),
    pytest.param([("connection", "keep-alive")], id="connection_specific"),
    pytest.param([("te", "gzip")], id="te_not_trailers"),
    pytest.param([("x-a", " padded")], id="value_whitespace"),
    pytest.param([("host", "other.test")], id="host_differs_from_authority"),
])
async def test_a_malformed_request_resets_its_stream_and_the_connection_goes_on(
        nursery: trio.Nursery, fields: list[tuple[str, str]]) -> None:
    backend = await start_backend(nursery)
    gateway = await start_gateway(nursery, [route("/", backend)])
    client = await connect(gateway)
    bad = await client.request("GET", "/bad", fields)
    assert (bad.reset, bad.status) == (ERR.PROTOCOL_ERROR, 0)
    good = await client.request("GET", "/good")
    assert good.status == 200
    assert [s.target for s in backend.seen] == [b"/good"]


@pytest.mark.parametrize(("declared", "sent"), [(5, b"123456"), (5, b"1234")], ids=["past", "short"])
async def test_a_body_that_breaks_its_content_length_never_reaches_the_backend_as_another_length(
        nursery: trio.Nursery, declared: int, sent: bytes) -> None:
    backend = await start_backend(nursery)
    gateway = await start_gateway(nursery, [route("/", backend)])
    client = await connect(gateway)
    reply = await client.request("POST", "/x", [("content-length", str(declared))], body=sent)
    assert reply.reset == ERR.PROTOCOL_ERROR
    assert all(len(s.body) == declared for s in backend.seen)  # what reached it (if any) was never longer
    assert (await client.request("GET", "/after")).status == 200


async def test_what_http11_refuses_gets_the_same_status(nursery: trio.Nursery) -> None:
    backend = await start_backend(nursery)
    gateway = await start_gateway(nursery, [route("/", backend)], limits={"max_target": 100})
    client = await connect(gateway)
    reply = await client.request("GET", "/" + "a" * 200)
    assert reply.status == 414
    stream_id = client.conn.get_next_available_stream_id()  # CONNECT names only :authority (RFC 9113 section 8.5)
    client.conn.send_headers(stream_id, [(b":method", b"CONNECT"), (b":authority", b"a.test:443")])
    client.replies[stream_id] = H2Reply()
    await client.flush()
    assert (await client.reply(stream_id)).status == 501
    assert backend.seen == []


# --- bounds and attacks: answered, and another client keeps being served -----------


class Held:
    """A backend that holds every request until released; the test waits for the requests it holds."""

    def __init__(self) -> None:
        self.release = trio.Event()
        self.count = 0
        self._arrived = trio.Event()

    async def handler(self, backend: object, seen: Seen, exchange: BackendExchange) -> None:
        self.count += 1
        self._arrived.set()
        await self.release.wait()
        await exchange.respond(200, b"late")

    async def wait_for(self, count: int) -> None:
        while self.count < count:
            self._arrived = trio.Event()
            await self._arrived.wait()


async def held(nursery: trio.Nursery) -> tuple[Backend, Held]:
    hold = Held()
    return await start_backend(nursery, handler=hold.handler), hold


async def test_streams_past_the_concurrent_limit_are_refused_not_queued(nursery: trio.Nursery) -> None:
    backend, hold = await held(nursery)
    gateway = await start_gateway(nursery, [route("/", backend)])
    client = await connect(gateway)
    ids = [client.start("GET", f"/{i}") for i in range(101)]
    await client.flush()
    await client.until(lambda: client.replies[ids[-1]].reset is not None)
    assert client.replies[ids[-1]].reset == ERR.REFUSED_STREAM
    await hold.wait_for(100)
    hold.release.set()
    for stream_id in ids[:-1]:
        assert (await client.reply(stream_id)).status == 200
    assert client.goaway is None


async def goaway_after(gateway: Gateway, data: bytes) -> H2Client:
    """A client whose connection the gateway ended with GOAWAY after `data` (sent after the preface)."""
    client = await connect(gateway)
    await client.receive_once()  # the gateway's SETTINGS
    try:
        await client.send_raw(data)
        await client.until(lambda: client.goaway is not None)
    except trio.BrokenResourceError:
        pass
    assert client.goaway is not None
    return client


async def test_rapid_reset_ends_the_connection_and_never_becomes_many_backend_requests(nursery: trio.Nursery) -> None:
    backend, hold = await held(nursery)
    gateway = await start_gateway(nursery, [route("/", backend)])
    encoder = hpack.Encoder()
    data = b""
    for i in range(3000):
        stream_id = 1 + 2 * i
        headers = encoder.encode([(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"a.test"),
                                  (b":path", b"/r")])
        reset = RstStreamFrame(stream_id)
        reset.error_code = ERR.CANCEL
        data += HeadersFrame(stream_id, headers, flags=["END_HEADERS", "END_STREAM"]).serialize() + reset.serialize()
    client = await goaway_after(gateway, data)
    assert client.goaway is not None and client.goaway.error_code == ERR.ENHANCE_YOUR_CALM
    assert len(backend.seen) <= 100
    hold.release.set()
    probe = await connect(gateway)
    assert (await probe.request("GET", "/probe")).status == 200


async def test_a_ping_flood_ends_the_connection_and_others_are_served(nursery: trio.Nursery) -> None:
    backend = await start_backend(nursery)
    gateway = await start_gateway(nursery, [route("/", backend)])
    flood = b"".join(PingFrame(0, opaque_data=i.to_bytes(8, "big")).serialize() for i in range(5000))
    client = await goaway_after(gateway, flood)
    assert client.goaway is not None and client.goaway.error_code == ERR.ENHANCE_YOUR_CALM
    pongs = [e for e in client.events if isinstance(e, h2.events.PingAckReceived)]
    assert len(pongs) < 5000
    probe = await connect(gateway)
    assert (await probe.request("GET", "/probe")).status == 200


async def test_a_zero_window_reader_is_cut_off_and_others_are_served(nursery: trio.Nursery) -> None:
    async def big(backend: object, seen: Seen, exchange: BackendExchange) -> None:
        await exchange.respond(200, b"z" * 1_000_000)

    backend = await start_backend(nursery, handler=big)
    gateway = await start_gateway(nursery, [route("/", backend)], timeouts={"body_idle": 0.5})
    stuck = await connect(gateway, settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
    stuck.auto_ack = False
    stream_id = stuck.start("GET", "/big")
    await stuck.flush()
    probe = await connect(gateway)
    assert (await probe.request("GET", "/probe")).status == 200
    reply = await stuck.reply(stream_id)  # the stalled response is reset once the body timeout passes
    assert reply.reset == ERR.INTERNAL_ERROR and not reply.body


# --- the connection's end ---------------------------------------------------------


async def test_drain_sends_goaway_lets_the_stream_in_flight_finish_and_refuses_later_ones(
        nursery: trio.Nursery) -> None:
    backend, hold = await held(nursery)
    gateway = await start_gateway(nursery, [route("/", backend)])
    client = await connect(gateway)
    first = client.start("GET", "/in-flight")
    await client.flush()
    await hold.wait_for(1)
    nursery.start_soon(gateway.drain)
    await client.until(lambda: client.goaway is not None)
    assert client.goaway is not None
    assert (client.goaway.error_code, client.goaway.last_stream_id) == (ERR.NO_ERROR, first)
    hold.release.set()
    reply = await client.reply(first)
    assert (reply.status, reply.body) == (200, b"late")
    await client.until(lambda: False)  # then the gateway closes the connection
    assert client.closed


async def test_an_idle_connection_gets_goaway_and_closes(nursery: trio.Nursery) -> None:
    backend = await start_backend(nursery)
    gateway = await start_gateway(nursery, [route("/", backend)], timeouts={"keepalive": 0.2})
    client = await connect(gateway)
    assert (await client.request("GET", "/x")).status == 200
    await client.until(lambda: False)
    assert client.goaway is not None and client.goaway.error_code == ERR.NO_ERROR


async def test_no_http2_on_a_plain_listener_leaves_the_preface_to_http11(nursery: trio.Nursery) -> None:
    backend = await start_backend(nursery)
    gateway = await start_gateway(nursery, [route("/", backend)], no_http2=(Address(LOOPBACK, 0),))
    answer = await raw_exchange(gateway, PREFACE)
    assert answer.startswith(b"HTTP/1.1 505 ")
    assert backend.seen == []


async def frames_after(gateway: Gateway, data: bytes) -> list[Frame]:
    """The frames the gateway sends after a client's preface, SETTINGS and `data`, read raw (frames on
    streams no h2 client opened included) until a GOAWAY, a RST_STREAM or the end of the connection."""
    stream = await trio.open_tcp_stream(*gateway.addresses[0])
    frames: list[Frame] = []
    try:
        await stream.send_all(PREFACE + SettingsFrame(0).serialize() + data)
        buffer = b""
        while not any(isinstance(f, (GoAwayFrame, RstStreamFrame)) for f in frames):
            try:
                chunk = await stream.receive_some(65536)
            except trio.BrokenResourceError:
                break
            if not chunk:
                break
            buffer += chunk
            while len(buffer) >= 9:
                frame, length = Frame.parse_frame_header(memoryview(buffer[:9]))
                if len(buffer) < 9 + length:
                    break
                frame.parse_body(memoryview(buffer[9:9 + length]))
                frames.append(frame)
                buffer = buffer[9 + length:]
    finally:
        await trio.aclose_forcefully(stream)
    return frames


async def test_an_hpack_bomb_is_refused_as_it_decodes(nursery: trio.Nursery) -> None:
    backend = await start_backend(nursery)
    gateway = await start_gateway(nursery, [route("/", backend)])
    encoder = hpack.Encoder()
    # One 4 KB field into the dynamic table, then referenced by its index: 1 byte on the wire each,
    # 4 KB decoded each, far past the header list size the gateway announced.
    block = encoder.encode([(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"a.test"),
                            (b":path", b"/"), (b"x-bomb", b"b" * 4000)])
    block += bytes([0x80 | 62]) * 2000  # the table's newest entry (index 62), again and again
    assert len(block) <= 16384  # one frame
    frames = await frames_after(gateway, HeadersFrame(1, block, flags=["END_HEADERS", "END_STREAM"]).serialize())
    ends = [(type(f).__name__, f.error_code) for f in frames if isinstance(f, (GoAwayFrame, RstStreamFrame))]
    # The connection ends (h2), or the stream (libnghttp2, the list held by _h2session_c.pyx): never a request.
    assert ends in ([("GoAwayFrame", ERR.ENHANCE_YOUR_CALM)], [("RstStreamFrame", ERR.ENHANCE_YOUR_CALM)]), ends
    assert backend.seen == []
    probe = await connect(gateway)
    assert (await probe.request("GET", "/probe")).status == 200


async def test_a_continuation_flood_ends_the_connection(nursery: trio.Nursery) -> None:
    backend = await start_backend(nursery)
    gateway = await start_gateway(nursery, [route("/", backend)])
    data = HeadersFrame(1, b"", flags=[]).serialize()  # no END_HEADERS: CONTINUATION must follow
    data += b"".join(ContinuationFrame(1, b"").serialize() for _ in range(10_000))  # empty, without end
    frames = await frames_after(gateway, data)
    codes = [f.error_code for f in frames if isinstance(f, GoAwayFrame)]
    assert codes in ([ERR.PROTOCOL_ERROR], [ERR.ENHANCE_YOUR_CALM]), codes  # h2's code; libnghttp2's
    assert backend.seen == []


async def test_the_session_follows_the_parser() -> None:
    """--parser fast: libnghttp2's session (compiled); --parser h11: h2's, the reference. (The h11 run of
    this module, test_parser_h11.py, and the default one each use theirs: a mix-up fails here.)"""
    from proxy.protocol._h2_mux import session_for
    from proxy.protocol._h2session import H2Options, PyH2Session

    from ...conftest import _compiled

    compiled = _compiled("proxy.protocol._h2session_c", "the libnghttp2 HTTP/2 session").H2Session
    assert type(session_for("h11", H2Options())) is PyH2Session
    assert type(session_for("fast", H2Options())) is compiled
