# One server-side TLS connection as bytes in and bytes out: OpenSSL's state
# (an ssl.SSLObject) over two memory BIOs, with no socket and no event loop.
# Both shells drive it: the trio path's stream (gateway/_tlsstream.py) and
# the native engine (engine/_exchange.py), which takes a connection over
# from the trio path and hands it back with the same session, so either may
# serve any request of it.
#
# Rules:
# - whoever moves ciphertext to the socket takes it with outgoing(), in the
#   order OpenSSL wrote it; a read may produce some too (a TLS 1.3 KeyUpdate
#   answer), so a shell flushes after reads as after writes;
# - renegotiation is off in every context (tls/_context.py), so a write
#   never needs a read, and a read never needs anything but more ciphertext;
# - the end of the peer's stream, with or without its close_notify, reads as
#   b"": HTTP/1.1 frames its own messages (RFC 9112 section 9.8 allows the
#   "incomplete close" most clients make), so a missing close_notify is not
#   an attack on anything this gateway reads.
# - session tickets go out with the handshake's last flight, as OpenSSL
#   writes them (and as HAProxy and nginx send them): an HTTP client always
#   reads after its request, so they never wait on a client that does not.

from __future__ import annotations

import ssl

__all__ = ["TlsFailed", "TlsSession"]

RECORD_MAX = 16 * 1024  # bytes: the most plaintext one TLS record carries (RFC 8446 section 5.1)


class TlsFailed(Exception):
    """The peer broke the TLS protocol, or the handshake failed (the cause is the ssl.SSLError).

    Nothing to answer over a broken session: the connection closes.
    """


class TlsSession:
    """A server-side TLS session over memory BIOs."""

    __slots__ = ("ssl_object", "established", "closed", "_incoming", "_outgoing", "_eof")

    def __init__(self, context: ssl.SSLContext) -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self.ssl_object = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self._eof = False  # the peer's stream ended (receive_eof)
        self.established = False  # the handshake is done
        self.closed = False  # our close_notify is written (close()): whoever closes first, the other need not

    def receive(self, data: bytes | bytearray | memoryview) -> None:
        """Ciphertext from the peer (b"" is its end, as receive_eof())."""
        if not data:
            self.receive_eof()
            return
        self._incoming.write(data)

    def receive_eof(self) -> None:
        if not self._eof:
            self._eof = True
            self._incoming.write_eof()

    def handshake(self) -> bool:
        """Go on with the handshake: True when it is done, False when it needs more ciphertext.

        Raises TlsFailed (the handshake failed, or the peer's stream ended in it).
        """
        try:
            self.ssl_object.do_handshake()
        except ssl.SSLWantReadError:
            if self._eof:
                raise TlsFailed("the peer closed during the TLS handshake") from None
            return False
        except (ssl.SSLError, ssl.CertificateError) as error:
            raise TlsFailed(f"TLS handshake failed: {error}") from error
        self.established = True
        return True

    def read(self, limit: int) -> bytes | None:
        """Plaintext, up to `limit` bytes: b"" at the peer's end, None when more ciphertext is needed.

        Raises TlsFailed (a record that does not decrypt, an alert).
        """
        try:
            return self.ssl_object.read(limit)
        except ssl.SSLWantReadError:
            return b"" if self._eof else None
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            return b""  # a close_notify, or the stream ended without one (see the header)
        except ssl.SSLError as error:
            raise TlsFailed(f"TLS failed: {error}") from error

    def read_all(self, limit: int) -> bytes | None:
        """As read(), but every record already received (OpenSSL gives one a call), up to `limit`.

        What a shell that waits on the socket's readiness needs: plaintext left
        inside OpenSSL would not make the socket readable again. Read a record
        at a time: SSLObject.read(n) allocates n bytes first, whatever comes.
        """
        first = self.read(min(limit, RECORD_MAX))
        if not first:
            return first
        parts = [first]
        size = len(first)
        while size < limit:
            more = self.read(min(limit - size, RECORD_MAX))
            if not more:
                break  # None: all read; b"": the end comes at the next read
            parts.append(more)
            size += len(more)
        return first if len(parts) == 1 else b"".join(parts)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Plaintext for the peer (encrypted at once; take it with outgoing())."""
        if not data:
            return  # SSLObject.write(b"") would be taken for an end of the stream
        try:
            self.ssl_object.write(data)
        except ssl.SSLError as error:
            raise TlsFailed(f"TLS failed: {error}") from error

    def close(self) -> None:
        """Our close_notify (take it with outgoing()); no wait for the peer's. Once only."""
        if self.closed:
            return
        self.closed = True
        try:
            self.ssl_object.unwrap()
        except ssl.SSLError:
            pass  # SSLWantReadError: it waits for the peer's, which we do not; or broken already

    def outgoing(self) -> bytes:
        """The ciphertext written since the last call, for the socket."""
        return self._outgoing.read()

    def unsent(self) -> bool:
        return self._outgoing.pending > 0

    @property
    def unread(self) -> int:
        """Ciphertext received and not decrypted yet."""
        return self._incoming.pending
