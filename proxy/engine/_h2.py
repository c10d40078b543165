# One HTTP/2 client connection the engine serves, to its end: its socket
# (a Transport, plain or TLS) in the engine's epoll set, its frames through
# the mux (protocol/_h2_mux.py: the session, compiled with --parser fast,
# the streams, the bounds), and each stream served one of two ways:
# - the commonest request (no body, routed to a backend by decide(), as the
#   engine's HTTP/1.1 takes it) on the engine itself: an H2Leg
#   (_h2leg.py) under the same StreamShell an HTTP/1.1 request gets, on
#   the engine's backend pools, with no trio task;
# - any other (a body, a hold, a wake, the gateway's own answer, a request
#   the engine hands back) in a trio task of the trio path's (TaskStreams,
#   gateway/_h2.py), over this connection: the reference, as for HTTP/1.1.
#
# Rules (the mux's own are in protocol/_h2_mux.py):
# - what the session has to send is written before more is read: while
#   bytes wait for the socket, the client is not read (a client that does
#   not read stops being read), and streams wait for their bytes to go out
#   before they take more from their backends (`blocked`);
# - idle (no stream) for the keep-alive timeout (the head timeout before the
#   first request): GOAWAY NO_ERROR and close;
# - drain: GOAWAY with the last stream taken; streams in flight finish,
#   later ones are refused, then the connection closes;
# - the client's end of the socket, or a write that fails: every stream
#   stops (the legs' backend connections close, the tasks are cancelled).

from __future__ import annotations

import logging
import select
import time
from typing import TYPE_CHECKING, Protocol

import trio

from .._errors import ClientProtocolError
from ..protocol import _events as ev
from ..protocol._h2_body import RequestBody
from ..protocol._h2_guard import H2Bounds
from ..protocol._h2_mux import H2Mux, MuxStream
from ..protocol._h2session import PyH2Session
from ..routing._retry import Waiting
from ..tls._session import TlsFailed, TlsSession
from ._handover import EngineParts, Front, HandBack, TaskStreams
from ._h2cycle import H2CYCLE_C, resume
from ._h2leg import H2Leg
from ._loop import Timed
from ._stream_shell import StreamShell, forward
from ._transport import Transport

if TYPE_CHECKING:
    from ._upstream import Upstream

__all__ = ["NativeH2"]

log = logging.getLogger("fastroute")

_IN = select.EPOLLIN | select.EPOLLRDHUP
_OUT = select.EPOLLOUT
_GONE = select.EPOLLERR | select.EPOLLHUP


class Starting(Protocol):
    """A stream the engine serves itself (an H2Leg, or the compiled cycle's), once the mux has it."""

    def start(self) -> None:
        """Its first step: to a backend."""


class NativeH2(H2Mux):
    """One client's HTTP/2 connection on the engine (see the rules above)."""

    def __init__(self, engine: EngineParts, front: Front, tasks: TaskStreams, nursery: trio.Nursery, *,
                 secure: bool) -> None:
        config = engine.config
        super().__init__(config.parser, config.limits, H2Bounds(), time.monotonic())
        self.engine = engine
        self.front = front
        self.tasks = tasks  # the trio path's stream tasks
        self.nursery = nursery  # where they run
        self.secure = secure  # accepted on a --listen-tls address
        stream = front.client.stream
        self.fd: int = stream.socket.fileno()  # type: ignore[attr-defined]
        session = getattr(stream, "session", None)
        self.tls = session if isinstance(session, TlsSession) else None
        self.transport = Transport(self.fd, self.tls)
        self.response_extra = front.client.response_extra  # fields added to every response (HSTS)
        self.client_ip_b = front.client_ip.encode("ascii")  # (X-Forwarded-For)
        # The compiled HTTP/2 stream (_h2cycle.py) serves what it can of an untrusted client's, on
        # the compiled session (it hands the session packed header lists).
        compiled = not isinstance(self.conn, PyH2Session)
        self._cycle = H2CYCLE_C if H2CYCLE_C is not None and compiled and not front.trusted else None
        self.out = bytearray()  # what the session wrote that the socket did not take yet
        self.blocked: dict[int, H2Leg] = {}  # streams whose bytes wait (flush)
        self.starting: list[Starting] = []  # streams opened by the bytes being received, to start after them
        self.timed = Timed()
        self.spare_timed: list[Timed] = []  # of ended compiled streams, for the next (_h2cycle_c.pyx)
        self.done = trio.Event()
        self.closed = False
        self.backlogged = False  # bytes wait for the socket (it took less than was written)
        self._deferred = False  # the socket's write waits for the end of the loop's batch
        self._writing = False  # write() runs
        self._again = False  # and is to run once more
        self.first = True  # no stream came yet
        self._written = trio.Event()  # the socket took what waited (stream tasks wait for it)
        self._window = trio.Event()  # a window may have opened

    # --- the start, and the end ---------------------------------------------------------

    def start(self, pending: bytes) -> None:
        """Serve from `pending` (what was read of the connection and not served)."""
        engine = self.engine
        engine.loop.tick()
        data = pending
        if self.tls is not None:
            try:
                decrypted = self.transport.decrypted()
            except OSError:
                self._close()
                return
            data += decrypted or b""
        engine.loop.watch(self.fd, self, _IN)
        self._idle()
        if engine.gateway.draining:
            self.drain()
        if data and not self._receive(data):
            return
        self.write()

    def drain(self) -> None:
        """The gateway drains: GOAWAY with the last stream taken (once); the connection ends when its
        streams did."""
        if self.closed or self.goaway is not None:
            return
        super().drain()
        self.write()
        if self.over():
            self._end()

    def fail(self) -> None:
        """Close at once (a handler raised: a bug, logged; or the trio task was cancelled)."""
        self._close()

    def _end(self) -> None:
        """The last GOAWAY, as far as the socket takes it now, then the close."""
        if self.closed:
            return
        self.close()
        data = bytes(self.out) + self.conn.data_to_send()
        self.out.clear()
        self.transport.send_now(data)
        self._close()

    def _close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.starting.clear()
        loop = self.engine.loop
        loop.cancel(self.timed)
        loop.forget(self.fd)
        for stream in list(self.streams.values()):
            if not stream.reset:
                stream.cancel(by_client=False)  # the legs' backends close; the tasks see the end
        if self.tls is not None and self.tls.established:
            self.transport.close_notify()
        self._written.set()
        self._window.set()
        self.done.set()  # the trio task cancels the stream tasks and closes the socket

    def _idle(self) -> None:
        """No stream: the connection's deadline (the head timeout before the first, then keep-alive)."""
        timeouts = self.engine.config.timeouts
        loop = self.engine.loop
        loop.at(loop.now + (timeouts.request_head if self.first else timeouts.keepalive), self, self.timed)

    # --- the loop's handler ------------------------------------------------------------

    def ready(self, fd: int, mask: int) -> None:
        if mask & _IN or mask & _GONE:
            try:
                data = self.transport.receive()
            except OSError:
                self._close()
                return
            if data is not None:
                if not data:
                    self._close()  # the client is gone: every stream stops
                    return
                if not self._receive(data):
                    return
        self.write()
        if self.over():
            self._end()

    def _receive(self, data: bytes) -> bool:
        """The client's bytes through the mux, then the legs they opened started; False: the
        connection ended."""
        if not self.receive(data, time.monotonic()):
            log.debug("HTTP/2 client broke the protocol or a bound; ending the connection")
            self._end()
            return False
        starting = self.starting
        while starting and not self.closed:
            starting.pop(0).start()
        return not self.closed

    def expired(self) -> None:
        """Idle for its time (no stream): GOAWAY NO_ERROR."""
        if not self.closed and not self.streams:
            self._end()

    # --- the mux's decisions --------------------------------------------------------------

    def fast(self, stream_id: int, fields: list[tuple[bytes, bytes]]) -> MuxStream | None:
        """The compiled stream, for a request it serves (_h2cycle.py); it starts after the mux."""
        if self._cycle is None:
            return None
        stream = self._cycle.open(self, stream_id, fields)
        if stream is not None:
            self._busy()
            self.starting.append(stream)
        return stream  # type: ignore[no-any-return]

    def resume(self, fast: MuxStream, kind: int, handed: object, upstream: Upstream | None,
               deadline: float | None) -> None:
        """The compiled stream `fast` hands over: an H2Leg goes on from where it stopped."""
        resume(self, fast, kind, handed, upstream, deadline)

    def _busy(self) -> None:
        self.first = False
        if not self.streams:
            self.engine.loop.cancel(self.timed)  # not idle

    def open(self, stream_id: int, request: ev.Request, body: RequestBody, answer: ClientProtocolError | None,
             ended: bool) -> MuxStream:
        """The request's stream: on the engine if it is the commonest kind, else a trio task."""
        self._busy()
        decision = forward(self.engine, request.target, request.headers) if answer is None and ended else None
        if decision is not None:
            leg = H2Leg(self, stream_id, request, body)
            leg.shell = StreamShell(leg, leg.encoder, request, b"", decision.prefix, decision.pool, time.monotonic())
            self.starting.append(leg)  # its first step once the mux has it among its streams
            return leg
        self.engine.handed_back += 1
        return self.tasks.start(self, stream_id, request, body, answer, ended)

    def to_task(self, leg: H2Leg, waiting: Waiting | None, failures: int) -> None:
        """`leg`'s request, not sent anywhere, goes on in a trio task (its place in `streams` and in
        the guard's count passes to it)."""
        self.engine.handed_back += 1
        resend = HandBack(b"", failures=failures, waiting=waiting)
        self.streams[leg.stream_id] = self.tasks.start(self, leg.stream_id, leg.request, leg.body, None, True,
                                                       resend)

    def leg_over(self, leg: MuxStream) -> None:
        """`leg`'s exchange ended (answered, reset, or stopped)."""
        self.finished(leg)
        self._stream_over()
        self.write()  # its last frames, or its RST_STREAM

    def stream_done(self, stream: MuxStream) -> None:
        """A compiled stream ended whole, its frames written already (_h2cycle_c.pyx)."""
        self.finished(stream)
        if not self.streams:
            self._stream_over()

    def stream_over(self, stream: MuxStream) -> None:
        """A stream task ends (what it left was reset)."""
        self.finished(stream)
        self.engine.loop.tick()  # (outside a batch)
        self._stream_over()
        self.write()

    def _stream_over(self) -> None:
        if self.streams or self.closed:
            return
        if self.over():
            self._end()
        else:
            self._idle()

    def window_changed(self) -> None:
        self._window.set()
        self._window = trio.Event()

    # --- writing --------------------------------------------------------------------------

    def write(self) -> None:
        """What the session has to send, framed now, and written to the socket (at the end of the
        loop's batch, once for every stream that added to it; at once outside a batch, or while
        bytes wait for the socket); the streams that waited go on once their bytes are framed and
        nothing waits for the socket. A write asked for while one runs (a stream that went on
        wrote) is made by it."""
        if self._writing:
            self._again = True
            return
        self._writing = True
        try:
            self._again = True
            while self._again and not self.closed:
                self._again = False
                self._write_once()
        finally:
            self._writing = False

    def _write_once(self) -> None:
        data = self.conn.data_to_send()
        if data:
            if self.out or not isinstance(data, bytearray):
                self.out += data
            else:
                self.out = data  # the session's own buffer (protocol/_h2session_c.pyx): not copied again
        if self.transport.waiting(self.out):
            loop = self.engine.loop
            if loop.batching and not self.backlogged:
                if not self._deferred:
                    self._deferred = True
                    loop.defer(self)
            else:
                self._send()
                if self.closed:
                    return
        blocked = self.blocked
        if blocked and not self.backlogged:
            session = self.conn
            for stream_id, leg in list(blocked.items()):
                if blocked.get(stream_id) is leg and not session.pending(stream_id):
                    del blocked[stream_id]
                    leg.unblocked()

    def deferred(self) -> None:
        """The loop's batch is over: what its streams framed goes out."""
        self._deferred = False
        if not self.closed:
            self.write()

    def _send(self) -> None:
        """`out` to the socket as far as it takes it; the socket watched for what comes next (reads
        only once nothing waits)."""
        out = self.out
        transport = self.transport
        try:
            transport.flush(out)
        except (OSError, TlsFailed):
            self._close()
            return
        if transport.waiting(out):
            self.backlogged = True
            self.engine.loop.watch(self.fd, self, _OUT)
            return
        self.backlogged = False
        self.engine.loop.watch(self.fd, self, _IN)
        self._written.set()
        self._written = trio.Event()

    # --- what a stream task uses of its connection (gateway/_h2stream.Mux) ---------------------

    async def flush(self) -> None:
        """What the session wrote, to the socket; until the socket took it.

        Raises:
            trio.BrokenResourceError: the client is gone.
        """
        self.write()
        while not self.closed and self.backlogged:
            await self._written.wait()
        if self.closed:
            raise trio.BrokenResourceError("the HTTP/2 connection closed")

    async def window_opened(self) -> None:
        """Until a window may have opened (the caller looks again)."""
        if not self.closed:
            await self._window.wait()

