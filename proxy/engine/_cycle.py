# The cycle: the state of one client connection of the native engine, and
# the commonest exchange on it served whole by compiled code (_cycle_c.pyx)
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
# (_transport.py): the reads through the general path's
# _read_head, the writes through Transport.send_tls, the rest of a write the
# socket did not take left to the general path as ciphertext.
#
# At any step that is not so, the cycle stops and hands over, through one
# call, NativeClient.resume(kind, ...): the general path
# (_exchange.NativeClient, this class's subclass) goes on from exactly
# there. The kinds (RESUMES):
#
#   ROUTED   routed to a backend (or none was up), nothing sent: the
#            general path connects, or takes the pooled connection;
#   SENDING  the backend took part of the request head: it writes the rest;
#   READ     the request went out; a read of the response (or its error)
#            that is not the lane's: the general path reads the response;
#   LANE     a lane response went out in part (the client took no more, or
#            its body goes on past the cycle's rules): on as the lane.
#
# The general path is the cycle's reference: the
# engine's differential test (tests/proxy/engine) compares both with the
# trio path, and FASTROUTE_NO_EXTENSIONS=1 runs the engine without the
# cycle (this module's Cycle, which serves nothing itself).

from __future__ import annotations

from typing import TYPE_CHECKING

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

__all__ = ["CYCLE_COMPILED", "LANE", "READ", "RESUMES", "ROUTED", "SENDING", "Cycle"]

# How the cycle hands over (NativeClient.resume); _cycle_c.pyx says the same (a test checks).
ROUTED, SENDING, READ, LANE = range(4)
RESUMES = {"ROUTED": ROUTED, "SENDING": SENDING, "READ": READ, "LANE": LANE}

_ATTRIBUTES = (
    "engine", "front", "fd", "state", "done", "result", "inbuf", "outbuf", "started", "timed", "leg",
    "head", "head_bytes", "arrived", "pool", "prefix", "upstream", "counted", "counted_route",
    "reading", "eof", "lane_left", "lane_keep", "fast", "client_ip_b", "status", "body_out", "body_length",
    "tls", "transport", "extra", "handshake",
)


class PyCycle:
    """The cycle without compiled code: every readiness goes to the general path.

    Its attributes are the state of the connection, which _exchange.NativeClient
    sets and documents.
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
    client_ip_b: bytes
    status: int
    body_out: int
    body_length: int
    tls: TlsSession | None
    transport: Transport
    extra: list[tuple[bytes, bytes]]
    handshake: Handshake | None

    def configure(self) -> None:
        """The cycle's own fields (it reads nothing of the engine's configuration: it serves nothing)."""
        # The exchange the cycle serves (state FAST). The checked head of the request it routed; None
        # when it read it as plain (protocol/_lane.plain_request: check_head accepts it as it is), then
        # made on a hand-over (NativeClient._routed_head).
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

    def ready(self, fd: int, mask: int) -> None:
        """`fd` is ready for `mask` (select.EPOLL* bits)."""
        self._ready(fd, mask)  # type: ignore[attr-defined]

    def parse(self) -> None:
        """The head in inbuf, if it is whole."""
        self._parse()  # type: ignore[attr-defined]


if TYPE_CHECKING:
    Cycle = PyCycle
else:
    Cycle = PyCycle if CYCLE_C is None else CYCLE_C.Cycle
