# What a client connection, on either path (gateway/_connection.py, the
# engine's _exchange.py), reads of the gateway it serves: the Gateway
# (gateway/_server.py) is the one implementation.

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import trio

from .._config import Address, Config
from ..protocol._events import ConnectionClass
from ..routing._decide import Table
from ..routing._record import Exchange

if TYPE_CHECKING:
    from ..discovery._waker import Waker

__all__ = ["Host"]


class Host(Protocol):
    """What a connection reads of the gateway it serves (the Gateway, _server.py)."""

    config: Config
    parser: ConnectionClass
    max_head: int  # bytes of a request head, for the parser
    draining: bool
    routes_complete: bool
    waker: Waker | None
    not_ready: Callable[[Address], bool] | None
    acme_challenge: Callable[[str], ssl.SSLContext | None] | None  # TLS-ALPN-01: the context answering for a name

    @property
    def table(self) -> Table: ...

    @property
    def engine_answered(self) -> bool: ...

    @property
    def table_changed(self) -> trio.Event: ...

    def record(self, client_ip: str, exchange: Exchange) -> None: ...

    def records(self) -> bool: ...

    def is_draining(self) -> bool: ...

    def is_trusted(self, ip: str) -> bool: ...
