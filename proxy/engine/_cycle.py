# The cycle: the commonest exchange on a client connection of the native
# engine, served whole by compiled functions (_cycle_c.pyx) over the
# connection's typed fields (ConnectionFields, which _exchange.NativeClient
# is built on),
# with no Python object made per request besides the head's bytes and its
# target (a plain head, protocol/_lane.plain_request, read into offsets),
# or the checked head (any other head the cycle serves):
#
#   HEAD  -> a whole head in one read, checked; no body, no upgrade, no
#            Connection but keep-alive, HTTP/1.1, not HEAD; decide() would
#            say Forward; a backend up with a pooled connection (the pick,
#            the pool and the loop's interest compiled: Pool.pick,
#            Pools.take/keep and Loop.watch over the same dicts)
#   FAST  -> the lane's request head (protocol/_lane.py) written whole;
#            the response's first read holds a head of the lane's kind and
#            no more than its body (short of a splice's length), written
#            whole to the client, and any rest of the body as it comes
#   HEAD  -> the backend connection pooled again, the next head.
#
# Over TLS the same steps, the client's bytes going through the session
# (_transport.py): the reads through the general path's _read_head, the
# writes through Transport.send_tls, the rest of a write the socket did not
# take left to the general path as ciphertext.
#
# The connection calls the cycle (ready() when a socket is ready, parse()
# for a head in its buffer); the cycle calls nothing of the connection's.
# It returns SERVED, or, at the first step that is not as above, the kind
# of hand-over, with what comes with it in the fields' `handed`; the
# connection carries it out with one call, NativeClient.resume(kind), and
# the general path goes on from exactly there. The kinds (STEPS):
#
#   ROUTED      routed to a backend (or none was up), nothing sent: the
#               general path connects, or takes the pooled connection;
#   SENDING     the backend took part of the request head: it writes the
#               rest;
#   READ        the request went out; a read of the response (or its
#               error) that is not the lane's: the general path reads the
#               response;
#   LANE        a lane response went out in part (the client took no
#               more, or its body goes on past the cycle's rules): on as
#               the lane;
#   READY       a readiness the cycle does not serve: the general path's;
#   PARSE       a head the cycle does not read (an empty line first, not
#               whole yet, refused): the general path reads it;
#   ROUTE       a checked head the cycle does not forward: the general
#               path routes it (or hands it back to the trio path);
#   READ_AHEAD  bytes after the request in flight: kept for after it;
#   CLOSE       the client closed, or the gateway drains between requests.
#
# The general path is the cycle's reference: the
# engine's differential test (tests/proxy/engine) compares both with the
# trio path, and FASTROUTE_NO_EXTENSIONS=1 runs the engine without the
# cycle (this module's twins: fields in slots, and steps that serve nothing
# themselves).

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._native import CYCLE_C, CYCLE_COMPILED

if TYPE_CHECKING:
    import trio

    from ..protocol._head import RequestHead
    from ..routing._pool import Pool
    from ..tls._session import TlsSession
    from ._handover import EngineParts, Front, HandBack
    from ._handshake import Handshake
    from ._loop import Timed
    from ._stream_shell import StreamShell
    from ._transport import Transport
    from ._upstream import Upstream

__all__ = ["CLOSE", "CYCLE_COMPILED", "LANE", "PARSE", "READ", "READY", "READ_AHEAD", "ROUTE", "ROUTED", "SENDING",
           "SERVED", "STEPS", "ConnectionFields", "parse", "ready"]

# What a step of the cycle comes to (NativeClient.resume carries out all but SERVED); _cycle_c.pxd says
# the same (a test checks).
SERVED, ROUTED, SENDING, READ, LANE, READY, PARSE, ROUTE, READ_AHEAD, CLOSE = range(10)
STEPS = {"SERVED": SERVED, "ROUTED": ROUTED, "SENDING": SENDING, "READ": READ, "LANE": LANE, "READY": READY,
         "PARSE": PARSE, "ROUTE": ROUTE, "READ_AHEAD": READ_AHEAD, "CLOSE": CLOSE}

_ATTRIBUTES = (
    "engine", "front", "fd", "state", "done", "result", "inbuf", "outbuf", "started", "timed", "leg",
    "head", "head_bytes", "arrived", "pool", "prefix", "upstream", "counted", "counted_route",
    "reading", "eof", "lane_left", "lane_keep", "fast", "client_ip_b", "status", "body_out", "body_length",
    "tls", "transport", "extra", "handshake", "handed", "http2",
)


class PyConnectionFields:
    """One client connection's fields, without compiled code (_cycle_c.pxd types them).

    _exchange.NativeClient sets and documents the connection's; configure() the
    cycle's own exchange's.
    """

    __slots__ = _ATTRIBUTES

    engine: EngineParts
    front: Front
    fd: int
    state: int
    done: trio.Event
    result: HandBack | None
    inbuf: bytearray
    outbuf: bytearray
    started: bool
    timed: Timed
    leg: StreamShell | None
    head: RequestHead | None
    head_bytes: bytes
    arrived: float
    pool: Pool | None
    prefix: str
    upstream: Upstream | None
    counted: bool
    counted_route: str
    reading: bool
    eof: bool
    lane_left: int
    lane_keep: bool
    fast: bool
    http2: bool
    client_ip_b: bytes
    status: int
    body_out: int
    body_length: int
    tls: TlsSession | None
    transport: Transport
    extra: list[tuple[bytes, bytes]]
    handshake: Handshake | None
    handed: Any  # Any: what comes with a hand-over, of the kind's type (_cycle_c.pxd lists them)

    def configure(self) -> None:
        """The cycle's own fields (it reads nothing of the engine's configuration: it serves nothing)."""
        # The exchange the cycle serves (state FAST). The checked head of the request it routed; None
        # when it read it as plain (protocol/_lane.plain_request: check_head accepts it as it is), then
        # made on a hand-over (NativeClient._take_over).
        self.head = None
        self.head_bytes = b""  # the request's head as the client sent it
        self.arrived = 0.0  # time.monotonic() when the cycle routed it
        self.pool = None  # its route's pool, and the prefix it matched
        self.prefix = ""
        self.upstream = None  # its backend connection, counted on the backend for counted_route
        self.counted = False
        self.counted_route = ""
        self.lane_left = -1  # body bytes of its response still to come (-1: not in the lane)
        self.lane_keep = False  # the backend keeps its connection after that response
        self.status = 0  # of a lane response the cycle passes on in several reads
        self.body_out = 0  # its body bytes written so far
        self.body_length = 0  # its Content-Length
        self.handed = None  # what comes with a hand-over


def py_ready(fields: PyConnectionFields, fd: int, mask: int) -> int:
    """`fd` is ready for `mask`: the general path's (the twin serves nothing itself)."""
    return READY


def py_parse(fields: PyConnectionFields) -> int:
    """The head in inbuf: the general path reads it."""
    return PARSE


if TYPE_CHECKING:
    ConnectionFields = PyConnectionFields
    ready = py_ready
    parse = py_parse
elif CYCLE_C is None:
    ConnectionFields, ready, parse = PyConnectionFields, py_ready, py_parse
else:
    ConnectionFields, ready, parse = CYCLE_C.ConnectionFields, CYCLE_C.ready, CYCLE_C.parse
