# The TLS side of an accepted connection, in the trio shell: tell a TLS
# ClientHello from plain HTTP sent to the HTTPS port, then the handshake.
# The caller bounds both with the request head timeout, so a client that
# never finishes a handshake holds its connection slot no longer than that.
#
# A first byte other than a TLS handshake record's (0x16) is a plain HTTP
# client on the wrong port: it gets a short 400 in plain text and a close
# (nginx answers 497 there, a code of its own; 400 is the standard one).

from __future__ import annotations

import logging
import socket
import ssl

import trio

from ._http import MAX_RECV

__all__ = ["PLAIN_ON_TLS_PORT", "accept_tls"]

log = logging.getLogger("fastroute")

TLS_HANDSHAKE_RECORD = 0x16
_BODY = b"This port speaks HTTPS: use an https:// address.\n"
PLAIN_ON_TLS_PORT = (b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\n"
                     b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_BODY), _BODY))


async def accept_tls(stream: trio.SocketStream, context: ssl.SSLContext) -> trio.SSLStream[trio.SocketStream] | None:
    """The handshaken TLS stream over `stream`, or None when the connection is to be closed.

    None: the client closed, sent plain HTTP (answered here), or failed the
    handshake (logged at debug: a scanner, a client that distrusts us).
    """
    sock = stream.socket
    try:
        first = await sock.recv(1, socket.MSG_PEEK)
    except OSError:
        return None
    if not first:
        return None
    if first[0] != TLS_HANDSHAKE_RECORD:
        try:
            await sock.recv(MAX_RECV)  # the request, so that closing does not reset the answer away
            await stream.send_all(PLAIN_ON_TLS_PORT)
            sock.shutdown(socket.SHUT_WR)
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        return None
    tls = trio.SSLStream(stream, context, server_side=True)
    try:
        await tls.do_handshake()
    except (trio.BrokenResourceError, trio.ClosedResourceError) as error:
        log.debug("TLS handshake failed: %s", error.__cause__ or error)
        return None
    return tls
