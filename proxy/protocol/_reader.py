# Pure: reading an HTTP/1.1 connection's messages, for both paths (the trio
# path's gateway/_connection.py and _response.py, and the engine's
# engine/_exchange.py): where the next request head ends and whether it may
# be served, and how many interim responses a response may have. The shells
# only wait for bytes and carry out what these say.

from __future__ import annotations

from .._config import Limits
from ._compiled import check_head
from ._head import RequestHead, find_head

__all__ = ["MAX_INTERIM_RESPONSES", "next_head"]

MAX_INTERIM_RESPONSES = 16  # 1xx responses before a final one; more is a broken backend (502)


def next_head(buffer: bytearray, limits: Limits) -> tuple[RequestHead, int] | None:
    """The next request's checked head and where it ends in `buffer`, or None until it is whole.

    Empty lines before it are dropped from `buffer` (RFC 9112 section 2.2);
    nothing else is taken from it.

    Raises:
        Refused: the bytes are not HTTP (a TLS ClientHello): close, with no answer.
        ClientProtocolError: the head cannot be served: answer it
            (routing/_answer.refusal), then close.
    """
    while buffer[:2] == b"\r\n":
        del buffer[:2]
    end = find_head(buffer, limits)
    if end is None:
        return None
    return check_head(bytes(buffer[:end]), limits), end
