# What crosses between the engine and the trio path, both ways: the trio
# path's side of a connection as the engine uses it (ClientStream, Front),
# what a connection uses of its engine (EngineParts), and what goes back
# when the engine stops serving a connection (HandBack).

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import trio

from ..protocol import _events as ev
from ..protocol._head import RequestHead
from ..routing._retry import Waiting

if TYPE_CHECKING:
    from .._config import Config
    from .._errors import ClientProtocolError
    from ..protocol._h2_body import RequestBody
    from ..protocol._h2_mux import MuxStream, Session
    from ._host import Host
    from ._loop import Loop
    from ._upstream import Pools

__all__ = ["ClientStream", "EngineParts", "Front", "HandBack", "StreamHost", "TaskStreams"]


class ClientStream(Protocol):
    """The trio path's stream of a client connection (gateway/_http.HttpStream), as the engine uses it."""

    stream: trio.abc.Stream  # a socket stream, or the gateway's TLS stream (its `session` and `socket`)
    pending: bytearray  # read and not answered yet: what the engine starts from
    response_extra: list[tuple[bytes, bytes]]  # fields added to every proxied response (HSTS)
    unanswered: bool  # the client sent what was not answered: the close is staged

    def start_request(self, conn: ev.Connection, head: RequestHead) -> None: ...

    def response_spliced(self) -> None: ...

    def reusable(self) -> bool: ...


class Front(Protocol):
    """The trio path's side of a connection the engine serves (gateway/_connection.ClientConnection)."""

    @property
    def client(self) -> ClientStream: ...

    @property
    def client_ip(self) -> str: ...

    @property
    def trusted(self) -> bool: ...

    @property
    def http2(self) -> bool: ...  # the listener serves HTTP/2


class StreamHost(Protocol):
    """An HTTP/2 connection whose streams run as trio-path tasks (_h2.NativeH2, gateway/_h2.H2Server):
    what a stream task uses of it."""

    @property
    def conn(self) -> Session: ...  # the connection's session

    @property
    def secure(self) -> bool: ...  # over TLS

    @property
    def response_extra(self) -> list[tuple[bytes, bytes]]: ...  # fields added to every response (HSTS)

    @property
    def nursery(self) -> trio.Nursery: ...  # where its stream tasks run

    async def flush(self) -> None:
        """What the session wrote, to the socket. Raises trio.BrokenResourceError: the client is gone."""

    async def window_opened(self) -> None:
        """Until a flow-control window may have opened."""

    def stream_over(self, stream: MuxStream) -> None:
        """`stream`'s task ends (its leftovers were reset): the connection takes note."""


class TaskStreams(Protocol):
    """The trio path's stream tasks (gateway/_h2.TrioStreams): how an HTTP/2 connection the engine
    serves has a stream served that the engine does not serve itself."""

    def start(self, host: StreamHost, stream_id: int, request: ev.Request, body: RequestBody,
              answer: ClientProtocolError | None, ended: bool, resend: HandBack | None = None) -> MuxStream:
        """The stream, served from now in a task of `host`'s nursery (with `answer`: refused with it;
        with `resend`: a request the engine began, to be routed again)."""
        ...


class EngineParts(Protocol):
    """What a connection uses of its engine (_engine.Engine)."""

    gateway: Host
    config: Config
    loop: Loop
    pools: Pools
    served: int
    handed_back: int
    laned: int
    cycled: int
    handshakes: int


class HandBack:
    """The connection goes on in the trio path, from these bytes (read, not answered).

    Over TLS, `unsent` is ciphertext the session wrote that the socket did not
    take yet: it goes out before anything else.
    """

    __slots__ = ("pending", "unsent", "plain", "failures", "waiting", "h2")

    def __init__(self, pending: bytes, unsent: bytes = b"", *, plain: bool = False, failures: int = 0,
                 waiting: Waiting | None = None, h2: bool = False) -> None:
        self.pending = pending
        self.unsent = unsent
        self.plain = plain  # a plain HTTP client on the TLS port, before any handshake: `pending` is what it sent
        # The request in `pending` failed on a backend (`failures` times) and may be sent again once the
        # backends it tried left the table (routing/_retry.WAIT): the trio path waits, then routes it.
        self.failures = failures
        self.waiting = waiting
        self.h2 = h2  # the client speaks HTTP/2 (ALPN h2, or the preface `pending` starts with)
