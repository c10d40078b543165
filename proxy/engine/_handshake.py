# A TLS client's handshake, as its own stage before the connection speaks
# HTTP (the engine's, when the trio path handed it the connection before
# one): each step reads what the client sent and writes our flight, and
# returns what came of it; the connection (_exchange.py) only watches the
# socket for what a step asks and goes on when it is DONE.
#
# Rules:
# - our flight goes out whole before the next of the client's is read;
# - the first byte says whether the client speaks TLS at all: a plain HTTP
#   client is PLAIN, with what it sent (the trio path answers it);
# - with ACME's TLS-ALPN-01 on (RFC 8737), the ClientHello's record is
#   gathered whole first, to tell a CA's validation (answered by the
#   handshake alone, with a session of its own: ANSWERED) from a client;
# - a failed handshake writes OpenSSL's alert, if it made one, and is CLOSE.

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable

from ..tls._hello import HANDSHAKE_RECORD, acme_validation, parse_client_hello, record_length
from ..tls._session import TlsFailed, TlsSession
from ._socket import read, write

__all__ = ["ANSWERED", "CLOSE", "DONE", "PLAIN", "READING", "WRITING", "Handshake"]

log = logging.getLogger("fastroute")

READING = 1  # waiting for the client's next bytes
WRITING = 2  # our flight waits for the socket to take the rest
DONE = 3  # established: the connection's session is `tls`
PLAIN = 4  # the client does not speak TLS: `plain` is what it sent
CLOSE = 5  # the client left, or the handshake failed
ANSWERED = 6  # an ACME TLS-ALPN-01 validation, answered by the handshake alone


class Handshake:
    """One client's handshake over socket `fd` and session `tls`; `out` holds our flight not written yet."""

    __slots__ = ("fd", "tls", "out", "challenge", "begun", "hello", "plain", "validating")

    def __init__(self, fd: int, tls: TlsSession, out: bytearray,
                 challenge: Callable[[str], ssl.SSLContext | None] | None) -> None:
        self.fd = fd
        self.tls = tls
        self.out = out
        self.challenge = challenge
        self.begun = False  # the client's first byte came
        self.hello: bytearray | None = None  # the ClientHello's record while it is gathered
        self.plain = b""
        self.validating = False  # `tls` is a TLS-ALPN-01 validation's own session, not the client's

    def step(self) -> int:
        """The handshake goes on as far as the socket lets it (one read): READING, WRITING or an end."""
        try:
            return self._step()
        except OSError:
            return CLOSE

    def _step(self) -> int:
        out = self.out
        if out:
            del out[:write(self.fd, out)]
            if out:
                return WRITING  # the client waits for it: nothing to read before it went out
        if self.tls.established:
            return self._established()
        data = read(self.fd)
        if data is None:
            return READING
        if not data:
            return CLOSE  # the client closed before or during its handshake
        if not self.begun:
            self.begun = True
            if data[0] != HANDSHAKE_RECORD:
                self.plain = data
                return PLAIN
            if self.challenge is not None:
                self.hello = bytearray()
        if self.hello is not None:
            whole = self._gather(data)
            if whole is None:
                return READING  # the rest of the ClientHello's record (the head timeout bounds the wait)
            data = whole
        tls = self.tls
        tls.receive(data)
        try:
            tls.handshake()
        except TlsFailed as error:
            log.debug("TLS handshake failed: %s", error.__cause__ or error)
            write(self.fd, tls.outgoing())  # the alert, if OpenSSL wrote one
            return CLOSE
        flight = tls.outgoing()
        if flight:
            sent = write(self.fd, flight)
            if sent < len(flight):
                out += memoryview(flight)[sent:]
                return WRITING
        return self._established() if tls.established else READING

    def _established(self) -> int:
        return ANSWERED if self.validating else DONE

    def _gather(self, data: bytes) -> bytes | None:
        """The ClientHello's record once it is whole (None before); its session chosen then."""
        hello = self.hello
        assert hello is not None
        hello += data
        total = record_length(hello)
        if total is None or len(hello) < total:
            return None
        self.hello = None
        challenge = self.challenge
        assert challenge is not None
        validation = acme_validation(parse_client_hello(bytes(hello)), challenge)
        if validation is not None:
            self.tls = TlsSession(validation)
            self.validating = True
        return bytes(hello)
