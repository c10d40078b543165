# One response, backend to client, as both paths relay it (sans-IO): which
# of the backend's events go on to the client and rewritten how, when the
# response is whole, when the rest of its body may move in the kernel, and
# what a failure means at each point. The trio path (gateway/_response.py)
# and the engine (engine/_exchange.py) only move the bytes and wait; the
# rules are here, once.
#
# Rules:
# - 1xx responses go on rewritten, MAX_INTERIM_RESPONSES at most; a 101
#   only when the client asked to upgrade, and it ends the relay (TUNNEL:
#   the shell opens the tunnel);
# - the final head goes on rewritten (response_headers: no hop-by-hop
#   field), with the gateway's own fields (HSTS) and, while the gateway
#   drains, Connection: close;
# - a body of a known length from splice_from bytes on (not for HEAD,
#   204, 304) moves in the kernel once what the parser holds went on
#   (SPLICE: the shell splices splice_left bytes);
# - a failure before the final head went on is the gateway's answer
#   (Failed.answer: a 502), or a retry when nothing of the response came
#   (early_failure); after it, the client connection is cut (Failed.answer
#   is None): a truncated body is never framed as whole.

from __future__ import annotations

from typing import Final

from .._errors import BadGateway, ProxyError
from ..protocol import _events as ev
from ..protocol._head import body_length
from ..protocol._reader import MAX_INTERIM_RESPONSES
from ..protocol._rewrite import response_headers, with_fields
from ._record import Exchange

__all__ = ["END", "MORE", "SPLICE", "STALE", "TUNNEL", "UNANSWERED", "Failed", "ResponseRelay", "early_failure"]

# What ResponseRelay.pull returns: what the shell does once the events it gave went to the client.
MORE: Final = 0  # read the backend again
END: Final = 1  # the response is whole
SPLICE: Final = 2  # move the body's last splice_left bytes in the kernel
TUNNEL: Final = 3  # the client's upgrade was accepted: the 101 is in `switch`

# What early_failure says of a backend that failed before its response.
STALE: Final = "stale"  # a pooled connection that was dead: try again, nothing happened
UNANSWERED: Final = "unanswered"  # it took the request and said nothing: the retry rules decide

CLOSED_SILENT = "backend closed the connection without a response"


class Failed(Exception):
    """The response cannot go on: `answer` is the gateway's answer (nothing of the response went on), or
    None (the client connection is cut); `why` says what happened."""

    def __init__(self, why: str, answer: ProxyError | None) -> None:
        super().__init__(why)
        self.why = why
        self.answer = answer


def early_failure(answer: ProxyError, *, received: int, reused: bool, body_started: bool) -> str | ProxyError:
    """What a failure before the response head means (`answer`, the 502 to give otherwise).

    Args:
        received: bytes of the response read from the backend.
        reused: the backend connection came from the pool.
        body_started: a byte of the request body was read from the client.

    Returns:
        STALE (send again, nothing was lost), UNANSWERED (the backend took the
        request and said nothing) or `answer`.
    """
    if received:
        return answer
    if reused and not body_started:
        return STALE
    return UNANSWERED


class ResponseRelay:
    """The rules of one response (see the module's header); `exchange` records its status and bytes."""

    __slots__ = ("exchange", "extra", "upgrade", "splice_from", "interim", "head_out", "splice_left", "switch")

    def __init__(self, exchange: Exchange, extra: list[tuple[bytes, bytes]], *, upgrade: bool = False,
                 splice_from: int | None = None) -> None:
        """Args:
            exchange: the request's record (its method is read; its status and bytes_out set).
            extra: fields added to the final head (HSTS).
            upgrade: the client asked to upgrade (a 101 may go on).
            splice_from: the length from which a body may be spliced; None: never.
        """
        self.exchange = exchange
        self.extra = extra
        self.upgrade = upgrade
        self.splice_from = splice_from
        self.interim = 0  # 1xx responses gone on
        self.head_out = False  # the final head went on
        self.splice_left = 0  # of a body to splice: bytes the parser has not given yet
        self.switch: ev.InformationalResponse | None = None  # the 101 the client asked for (TUNNEL)

    def pull(self, conn: ev.Connection, out: list[ev.Event], draining: bool) -> int:
        """The backend parser `conn`'s events until it needs bytes or the response ends; what goes on to
        the client appended to `out`. Returns MORE, END, SPLICE or TUNNEL.

        Raises:
            Failed: the backend broke the protocol, closed early, or sent what may not go on.
        """
        exchange = self.exchange
        try:
            while True:
                event = conn.next_event()
                kind = type(event)
                if kind is ev.Data:
                    size = len(event.data)  # type: ignore[union-attr]
                    exchange.bytes_out += size
                    out.append(event)  # type: ignore[arg-type]
                    if self.splice_left:
                        self.splice_left -= size
                elif kind is ev.EndOfMessage:
                    out.append(ev.END_OF_MESSAGE)
                    return END
                elif kind is ev.Response:
                    out.append(self._head(event, draining))  # type: ignore[arg-type]
                elif kind is ev.InformationalResponse:
                    if self._interim(event, out):  # type: ignore[arg-type]
                        return TUNNEL
                elif kind is ev.ConnectionClosed:
                    raise self.closed()
                elif event is ev.NEED_DATA:
                    return SPLICE if self.splice_left > 0 else MORE
                else:
                    raise self._failed(f"unexpected {kind.__name__} in the response")
        except ev.RemoteProtocolError as error:
            raise self._failed(str(error)) from None

    def closed(self) -> Failed:
        """The failure of a backend that closed before the response was whole."""
        if self.head_out:
            return Failed("backend closed during its response body", None)
        return Failed(CLOSED_SILENT, BadGateway(CLOSED_SILENT))

    def broke(self, why: str) -> Failed:
        """The failure of a backend whose socket failed (`why`: "socket error: ...") before the response
        was whole."""
        return self._failed(why)

    def _failed(self, why: str) -> Failed:
        if self.head_out:
            return Failed(f"backend failed during its response body: {why}", None)
        return Failed(why, BadGateway(f"backend failed before its response: {why}"))

    def _head(self, event: ev.Response, draining: bool) -> ev.Response:
        exchange = self.exchange
        status = event.status_code
        headers = with_fields(response_headers(event.headers), self.extra)
        if draining:  # the connection's last response
            headers.append((b"connection", b"close"))
        exchange.status = status
        self.head_out = True
        splice_from = self.splice_from
        if splice_from is not None and exchange.method != b"HEAD" and status not in (204, 304):
            length = body_length(event.headers)
            if length is not None and length >= splice_from:
                self.splice_left = length
        return ev.Response(status, headers, event.reason)

    def _interim(self, event: ev.InformationalResponse, out: list[ev.Event]) -> bool:
        """A 1xx on to the client; True for the 101 the client asked for."""
        self.interim += 1
        if self.interim > MAX_INTERIM_RESPONSES:
            raise Failed("too many 1xx", BadGateway(f"backend sent over {MAX_INTERIM_RESPONSES} 1xx responses"))
        if event.status_code == 101:
            if not self.upgrade:
                raise Failed("101 unasked", BadGateway("backend switched protocols unasked"))
            self.switch = event
            return True
        out.append(ev.InformationalResponse(event.status_code, response_headers(event.headers), event.reason))
        return False
