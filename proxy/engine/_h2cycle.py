# The HTTP/2 cycle: the commonest stream of an HTTP/2 connection of the
# engine (_h2.NativeH2), served whole by compiled code (_h2cycle_c.pyx),
# as the HTTP/1.1 cycle (_cycle.py) serves the commonest exchange:
#
#   OPEN  -> a request whose HEADERS ended its stream, its header list of
#            the plainest kind (the four pseudo-headers first, lowercase
#            tokens, no Host, Cookie, TE or connection-specific field),
#            written as HTTP/1.1 and plain as the HTTP/1.1 cycle reads a
#            head (protocol/_lane.plain_request); an untrusted client;
#            decide() would say Forward (_route_c.forward_of)
#   SENT  -> after the mux took the bytes that opened it: a backend up with
#            a pooled connection, the lane's request head (Via: 2
#            fastroute) written whole
#   DONE  -> the response, in one read or a few kept (64 KiB at most), a
#            head of the lane's kind and its whole body: its header list
#            (protocol/_h2_head's rules)
#            and body to the session, the backend connection pooled, the
#            exchange recorded; the stream ends once its bytes are framed
#            and the socket took them (as an H2Leg's).
#
# At the first step that is not as above, the stream hands over, once: an
# H2Leg (_h2leg.py) under a StreamShell takes it from exactly there, from
# the header list checked as any other (resume(), below). The kinds
# (HANDOVERS):
#
#   ROUTED   routed (to a backend, or none was up), nothing sent: the
#            general path connects, or answers;
#   SENDING  the backend took part of the request head: it writes the rest;
#   READ     the request went out; what came of the response is not the
#            cycle's (past 64 KiB, bytes past its body, a head of another
#            kind, an error, the backend's close; or the gateway drains), or
#            its body stalled: the general path reads the response from it;
#   EXPIRED  the request went out and no response came in time: the
#            general path's 504 (or the next backend).
#
# The general path is the cycle's reference: the engine's HTTP/2
# differential test (tests/proxy/engine/test_h2_native.py) compares both
# with the trio path and counts what the cycle served (engine.cycled).
# FASTROUTE_NO_EXTENSIONS=1 runs the engine's HTTP/2 without it.

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from ._h2leg import H2Leg, LegMux
from ._native import compiled
from ._states import FAST, RESPONSE, SEND
from ._stream_shell import StreamShell

if TYPE_CHECKING:
    from ..protocol import _events as ev
    from ..protocol._h2_body import RequestBody
    from ..protocol._h2_mux import MuxStream
    from ..routing._pool import BackendState
    from ._upstream import Upstream

__all__ = ["H2CYCLE_C", "CycleMux", "ROUTED", "SENDING", "READ", "EXPIRED", "HANDOVERS", "resume"]

ROUTED, SENDING, READ, EXPIRED = 1, 2, 3, 4
HANDOVERS = {"ROUTED": ROUTED, "SENDING": SENDING, "READ": READ, "EXPIRED": EXPIRED}  # the test: _h2cycle_c's

H2CYCLE_C = compiled("_h2cycle_c", "the compiled HTTP/2 stream")  # the compiled module, or None


class CycleMux(LegMux, Protocol):
    """What a hand-over uses of its HTTP/2 connection (_h2.NativeH2): a leg's, and the mux's."""

    streams: dict[int, MuxStream]

    def request_of(self, fields: list[tuple[bytes, bytes]], *, ended: bool) -> tuple[ev.Request, RequestBody]:
        """The request a header list makes, and its body (protocol/_h2_mux.H2Mux)."""


def resume(mux: CycleMux, fast: object, kind: int, handed: object, upstream: Upstream | None,
           deadline: float | None) -> H2Leg:
    """The cycle's stream `fast` (an H2Fast) as an H2Leg of the general path, from where it stopped
    (`kind`, with `handed`; `upstream` its backend connection once its request went out, `deadline`
    its response's)."""
    stream_id: int = fast.stream_id  # type: ignore[attr-defined]
    request, body = mux.request_of(fast.fields, ended=True)  # type: ignore[attr-defined]
    leg = H2Leg(mux, stream_id, request, body)
    shell = leg.shell = StreamShell(leg, leg.encoder, request, b"", fast.prefix, fast.pool,  # type: ignore[attr-defined]
                                    fast.arrived)  # type: ignore[attr-defined]
    mux.streams[stream_id] = leg
    if kind == ROUTED:
        backend: BackendState | None = handed  # type: ignore[assignment]
        if backend is None:
            shell.no_backend()
        else:
            shell.use_backend(backend)
        return leg
    assert upstream is not None
    leg.enter(FAST)
    shell.adopt(upstream, fast.counted_route, SEND if kind == SENDING else RESPONSE)  # type: ignore[attr-defined]
    if deadline is not None:
        mux.engine.loop.at(deadline, leg, leg.timed)
    if kind == SENDING:
        assert isinstance(handed, bytes)
        upstream.pending = handed
        shell.send_request()
    elif kind == READ:
        assert isinstance(handed, tuple)
        data: bytes | None = handed[0]
        code: int = handed[1]
        if data is not None:
            shell.response_data(data)
        else:
            shell.response_failed(OSError(code, "backend connection failed"))
    else:
        shell.expired()
    return leg
