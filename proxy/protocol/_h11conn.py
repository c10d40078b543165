# `--parser h11`: h11.Connection behind the interface of _events.py, for
# comparison with the fast connection and as a fallback. Every event and
# state is translated on the way through, and h11's protocol errors become
# ours. One rule of its own: a response with both Content-Length and
# Transfer-Encoding is refused (h11 lets Transfer-Encoding win; the fast
# connection refuses it in _wire.py).

from __future__ import annotations

from typing import Any

import h11

from . import _events as ev
from ._head import RequestHead

__all__ = ["H11Connection"]

_STATES = {
    h11.IDLE: ev.IDLE,
    h11.SEND_RESPONSE: ev.SEND_RESPONSE,
    h11.SEND_BODY: ev.SEND_BODY,
    h11.DONE: ev.DONE,
    h11.MUST_CLOSE: ev.MUST_CLOSE,
    h11.CLOSED: ev.CLOSED,
    h11.ERROR: ev.ERROR,
    getattr(h11, "MIGHT_SWITCH_PROTOCOL"): ev.MIGHT_SWITCH_PROTOCOL,  # not in h11's __all__
    h11.SWITCHED_PROTOCOL: ev.SWITCHED_PROTOCOL,
}


def _event_in(event: Any) -> ev.Event | ev.State:  # Any: any of h11's events and sentinels
    kind = type(event)
    if kind is h11.Data:
        return ev.Data(event.data)
    if kind is h11.EndOfMessage:
        return ev.END_OF_MESSAGE
    if kind is h11.Response or kind is h11.InformationalResponse:
        cls = ev.Response if kind is h11.Response else ev.InformationalResponse
        return cls(event.status_code, list(event.headers), event.reason, event.http_version)
    if kind is h11.Request:
        return ev.Request(event.method, event.target, list(event.headers), event.http_version)
    if kind is h11.ConnectionClosed:
        return ev.CONNECTION_CLOSED
    if event is h11.NEED_DATA or event is h11.PAUSED:
        return ev.NEED_DATA
    raise AssertionError(f"unexpected h11 event {event!r}")


def _event_out(event: ev.Event) -> Any:  # Any: one of h11's events
    if type(event) is ev.Data:
        return h11.Data(data=event.data)
    if type(event) is ev.EndOfMessage:
        return h11.EndOfMessage()
    if type(event) is ev.Response:
        return h11.Response(status_code=event.status_code, headers=event.headers, reason=event.reason)
    if type(event) is ev.InformationalResponse:
        return h11.InformationalResponse(status_code=event.status_code, headers=event.headers, reason=event.reason)
    if type(event) is ev.Request:
        return h11.Request(method=event.method, target=event.target, headers=event.headers)
    raise ev.LocalProtocolError(f"cannot send {event!r}")


class H11Connection:
    """h11.Connection, speaking the events of _events.py."""

    __slots__ = ("_conn",)

    def __init__(self, role: Any, *, max_head: int) -> None:  # Any: h11.CLIENT or h11.SERVER, sentinel classes
        self._conn = h11.Connection(role, max_incomplete_event_size=max_head)

    @classmethod
    def for_request(cls, head: RequestHead, rest: bytes, *, max_head: int) -> tuple[H11Connection, ev.Request]:
        """A server connection for the checked request `head` (h11 parses it again)."""
        conn = cls(h11.SERVER, max_head=max_head)
        conn._conn.receive_data(head.encode() + rest)
        event = conn.next_event()
        assert type(event) is ev.Request, event
        return conn, event

    @classmethod
    def client(cls, *, max_head: int) -> H11Connection:
        return cls(h11.CLIENT, max_head=max_head)

    @property
    def our_state(self) -> ev.State:
        return _STATES[self._conn.our_state]

    @property
    def their_state(self) -> ev.State:
        return _STATES[self._conn.their_state]

    @property
    def trailing_data(self) -> tuple[bytes, bool]:
        return self._conn.trailing_data

    def receive_data(self, data: bytes) -> None:
        self._conn.receive_data(data)

    def next_event(self) -> ev.Event | ev.State:
        try:
            event = _event_in(self._conn.next_event())
        except h11.RemoteProtocolError as error:
            raise ev.RemoteProtocolError(str(error), error.error_status_hint) from error
        if type(event) is ev.Response:
            framing = {name for name, _ in event.headers if name in (b"content-length", b"transfer-encoding")}
            if len(framing) == 2:
                # RFC 9112 section 6.1: a sender must not send both; a proxy
                # that picks one (h11 lets Transfer-Encoding win) can disagree
                # with the next hop about where the body ends. The fast
                # connection refuses it in its parser (_wire.py).
                raise ev.RemoteProtocolError("both Content-Length and Transfer-Encoding in a response", 502)
        return event

    def send(self, event: ev.Event) -> bytes:
        try:
            return self._conn.send(_event_out(event)) or b""
        except h11.LocalProtocolError as error:
            raise ev.LocalProtocolError(str(error)) from error

    def start_next_cycle(self) -> None:
        try:
            self._conn.start_next_cycle()
        except h11.LocalProtocolError as error:
            raise ev.LocalProtocolError(str(error)) from error
