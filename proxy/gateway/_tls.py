# The TLS side of an accepted connection, in the trio shell: tell a TLS
# ClientHello from plain HTTP sent to the HTTPS port, then the handshake.
# The caller bounds both with the request head timeout, so a client that
# never finishes a handshake holds its connection slot no longer than that.
# With --io native the engine does the same itself (engine/_exchange.py,
# HANDSHAKE) and hands a plain HTTP client back for refuse_plain(); this
# is the trio path's, and the reference for the engine's.
#
# A first byte other than a TLS handshake record's (0x16) is a plain HTTP
# client on the wrong port: it gets a short 400 in plain text and a close
# (nginx answers 497 there, a code of its own; 400 is the standard one).

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Callable

import trio

from ..tls._hello import HANDSHAKE_RECORD, RECORD_HEADER, Hello, acme_validation, parse_client_hello, record_length
from ..tls._session import TlsSession
from ._http import MAX_RECV
from ._tlsstream import TlsStream

__all__ = ["PLAIN_ON_TLS_PORT", "accept_tls", "refuse_plain"]

log = logging.getLogger("fastroute")

PEEK_AGAIN = 0.005  # seconds before peeking again at a ClientHello that came in pieces
_BODY = b"This port speaks HTTPS: use an https:// address.\n"
PLAIN_ON_TLS_PORT = (b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\n"
                     b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_BODY), _BODY))


async def accept_tls(stream: trio.SocketStream, context: ssl.SSLContext,
                     acme_challenge: Callable[[str], ssl.SSLContext | None] | None = None,
                     ) -> TlsStream | None:
    """The handshaken TLS stream over `stream`, or None when the connection is to be closed.

    None: the client closed, sent plain HTTP (answered here), failed the
    handshake (logged at debug: a scanner, a client that distrusts us), or
    was a CA's TLS-ALPN-01 validation, answered by the handshake alone with
    the context acme_challenge(name) gives (RFC 8737 section 3).
    """
    sock = stream.socket
    try:
        first = await sock.recv(1, socket.MSG_PEEK)
    except OSError:
        return None
    if not first:
        return None
    if first[0] != HANDSHAKE_RECORD:
        try:
            await sock.recv(MAX_RECV)  # the request, so that closing does not reset the answer away
        except OSError:
            return None
        await refuse_plain(stream)
        return None
    validation = None
    if acme_challenge is not None:
        validation = acme_validation(await _peek_hello(sock), acme_challenge)
    tls = TlsStream(stream, TlsSession(validation or context))
    try:
        await tls.do_handshake()
    except (trio.BrokenResourceError, trio.ClosedResourceError) as error:
        log.debug("TLS handshake failed: %s", error.__cause__ or error)
        return None
    if validation is not None:
        log.info("ACME: answered a TLS-ALPN-01 challenge")
        await trio.aclose_forcefully(tls)
        return None
    return tls


async def refuse_plain(stream: trio.SocketStream) -> None:
    """The answer to plain HTTP on the TLS port (its request read), and our end of the connection."""
    try:
        await stream.send_all(PLAIN_ON_TLS_PORT)
        stream.socket.shutdown(socket.SHUT_WR)
    except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
        pass


async def _peek_hello(sock: trio.socket.SocketType) -> Hello | None:
    """The ClientHello, left in the socket for OpenSSL. It nearly always comes in one segment;
    else look again shortly (the caller's head timeout bounds it)."""
    need = RECORD_HEADER
    while True:
        try:
            data = await sock.recv(need, socket.MSG_PEEK)
        except OSError:
            return None
        if not data:
            return None
        total = record_length(data)
        if total is not None and total > need:
            need = total
            continue
        if len(data) >= need:
            return parse_client_hello(data)
        await trio.sleep(PEEK_AGAIN)
