# The one contract between a client connection of the engine and the
# streams on it: what a stream (_stream_shell.StreamShell, one request
# from its route to its response's last byte) may ask of the connection
# that owns the client's socket, its buffers and the state (_exchange.
# NativeClient for HTTP/1.1). A stream never reaches past it.

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from ..protocol import _events as ev

if TYPE_CHECKING:
    from ..routing._retry import Waiting
    from ..tls._session import TlsSession
    from ._handover import EngineParts, Front

__all__ = ["ClientEncoder", "Connection"]


class ClientEncoder(Protocol):
    """The client's side of one exchange, as a stream writes its response (protocol/_fastconn.py's
    FastConnection for HTTP/1.1, engine/_h2leg.py's for an HTTP/2 stream)."""

    @property
    def keep_alive(self) -> bool: ...  # the client's connection may carry another request after this one

    @property
    def trailing_data(self) -> tuple[bytes, bool]: ...  # what the client sent past the request

    def send(self, event: ev.Event) -> bytes:
        """The response's `event`, as bytes for outbuf (or as the protocol carries it: then b"")."""
        ...


class Connection(Protocol):
    """What a stream needs of the client connection it answers on."""

    engine: EngineParts
    front: Front
    fd: int  # the client's socket
    tls: TlsSession | None
    extra: list[tuple[bytes, bytes]]  # fields added to every response (HSTS)
    outbuf: bytearray  # bytes for the client: the connection writes them (flush)

    @property
    def state(self) -> int: ...

    @property
    def plain(self) -> bool:
        """The response's bytes go to the client's socket as they are (no TLS, no HTTP/2 frames): the
        splice may move them."""

    def enter(self, state: int) -> None:
        """Enter `state`: a move engine/_states.py lists."""

    def deadline(self, seconds: float) -> None:
        """The exchange's one deadline, `seconds` from now."""

    def flush(self) -> None:
        """Write `outbuf`, then tell the stream how far it went (StreamShell.flushed)."""

    def watch(self, *, writing: bool) -> None:
        """Watch the client's socket for reads as the connection does, and for writes if `writing`."""

    def abort(self, why: str) -> None:
        """Close the client's connection (the response cannot go on)."""

    def fail(self) -> None:
        """Close the client's connection at once (a handler raised: a bug, logged)."""

    def hand_back_request(self, waiting: Waiting | None = None, failures: int = 0) -> None:
        """Hand the request, not sent anywhere, back to the trio path."""

    def finished(self) -> None:
        """The response is out: the next request, or the close."""
