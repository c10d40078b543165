# The client's side of a connection the engine serves: its socket, plain
# or TLS. Reads give plaintext and writes take it, so the connection above
# never asks which.
#
# TLS: a connection comes with its session (tls/_session.py, over the trio
# path's TLS stream), the handshake made or not (_handshake.py makes it).
# Reads take ciphertext from the socket into the session and every whole
# record's plaintext out of it at once: none may stay inside OpenSSL, where
# no readiness would say so. Writes encrypt what waits whole; the
# ciphertext the socket did not take waits in `unsent`, as plaintext waits
# in the connection's outbuf. Nothing is spliced over TLS. A hand-back
# carries `unsent`, which goes out before anything the trio path writes
# with the same session.

from __future__ import annotations

from ..tls._session import TlsFailed, TlsSession
from ._socket import read, write

__all__ = ["Transport"]

_TLS_READ_ALL = 1 << 30  # no limit: plaintext left in the session would wait for a readiness that never comes


class Transport:
    """The client's socket `fd`, and its TLS session (None: plain)."""

    __slots__ = ("fd", "tls", "unsent")

    def __init__(self, fd: int, tls: TlsSession | None) -> None:
        self.fd = fd
        self.tls = tls
        self.unsent = bytearray()  # ciphertext for the client not written yet (TLS only)

    def receive(self) -> bytes | None:
        """One read from the client: the bytes, b"" at its end, None when it would block (as read()).

        Over TLS, the plaintext of every record received whole (None while a
        record is in pieces). Raises OSError when the client is gone, or
        broke TLS.
        """
        data = read(self.fd)
        if self.tls is None or data is None:
            return data
        self.tls.receive(data)
        return self.decrypted()

    def decrypted(self) -> bytes | None:
        """What the session holds, read whole (b"": the client's close_notify). Raises OSError as receive()."""
        tls = self.tls
        assert tls is not None
        try:
            data = tls.read_all(_TLS_READ_ALL)
        except TlsFailed as error:
            raise ConnectionAbortedError(str(error)) from error
        if tls.unsent():  # a TLS 1.3 KeyUpdate's answer: out with the next write
            self.unsent += tls.outgoing()
        return data

    def waiting(self, out: bytearray) -> bool:
        """Bytes wait for the client: plaintext in `out`, or ciphertext."""
        return bool(out or self.unsent)

    def flush(self, out: bytearray) -> int:
        """What waits for the client, written as far as the socket takes it: `out` (plaintext, taken
        whole over TLS: encrypted into `unsent`), then the ciphertext.

        Returns the bytes the socket took. Raises OSError (the client is
        gone) or TlsFailed.
        """
        tls = self.tls
        if tls is not None:
            if out:
                tls.write(out)
                out.clear()
                self.unsent += tls.outgoing()
            out = self.unsent
        if not out:
            return 0
        sent = write(self.fd, out)
        del out[:sent]
        return sent

    def send_now(self, data: bytes) -> None:
        """`data` and what waits before it, as far as the socket takes it now, and no more (the last
        words before a close)."""
        try:
            if self.tls is not None:
                self.tls.write(data)
                data = bytes(self.unsent) + self.tls.outgoing()
            write(self.fd, data)
        except (OSError, TlsFailed):
            pass

    def send_tls(self, data: bytes, out: bytearray) -> bool:
        """The compiled cycle's write to a TLS client: `data` encrypted, and what the socket takes written.

        False: the rest waits for the connection's next flush, as ciphertext
        in `unsent` (or as `data` in `out` when TLS failed, where the flush
        fails again; so does a socket error, which it meets again).
        """
        tls = self.tls
        assert tls is not None
        try:
            tls.write(data)
        except TlsFailed:
            out += data
            return False
        unsent = self.unsent
        if unsent:  # a KeyUpdate's answer first
            unsent += tls.outgoing()
            pending: bytes | bytearray = unsent
        else:
            pending = tls.outgoing()
        try:
            sent = write(self.fd, pending)
        except OSError:
            sent = 0
        if sent == len(pending):
            unsent.clear()
            return True
        if unsent:
            del unsent[:sent]
        else:
            unsent += memoryview(pending)[sent:]
        return False

    def close_notify(self) -> None:
        """Our close_notify, if the socket takes it now (with what waits before it); the trio task then
        closes the socket, with no close_notify of its own (the session says it is written)."""
        tls = self.tls
        assert tls is not None
        tls.close()
        unsent = self.unsent
        unsent += tls.outgoing()
        try:
            write(self.fd, unsent)
        except OSError:
            pass
        unsent.clear()
