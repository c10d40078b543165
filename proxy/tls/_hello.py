# What a TLS ClientHello asks for, read before the handshake: the server
# name (SNI) and the ALPN protocols. Pure: bytes in, a Hello out. The
# gateway peeks at the first record (it stays in the socket for OpenSSL)
# to tell a CA's TLS-ALPN-01 validation (RFC 8737: ALPN "acme-tls/1") from
# a client's handshake, which Python's SNI callback cannot see.
#
# Layout (RFC 8446 sections 4.1.2 and 5.1, RFC 6066 section 3, RFC 7301
# section 3.1): a record header (type 22, version, length), a handshake
# header (type 1, 24-bit length), then version, random, session id, cipher
# suites, compression methods and the extensions. Anything that does not
# parse is "not known" (None): the handshake then goes the usual way.

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["ACME_TLS_ALPN", "HANDSHAKE_RECORD", "RECORD_HEADER", "Hello", "acme_validation", "parse_client_hello", "record_length"]

ACME_TLS_ALPN = "acme-tls/1"
RECORD_HEADER = 5  # bytes
HANDSHAKE_RECORD = 22  # a record's first byte: a TLS client's first record is one; a plain HTTP client's is a letter
_HANDSHAKE, _CLIENT_HELLO = HANDSHAKE_RECORD, 1
_SERVER_NAME, _ALPN = 0, 16


@dataclass(frozen=True, slots=True)
class Hello:
    server_name: str | None
    alpn: tuple[str, ...]


def record_length(data: bytes | bytearray) -> int | None:
    """The whole first record's length (header included), once its header is in `data`; None before."""
    if len(data) < RECORD_HEADER:
        return None
    return RECORD_HEADER + int.from_bytes(data[3:5], "big")


class _Short(Exception):
    pass


class _Reader:
    __slots__ = ("data", "at", "end")

    def __init__(self, data: bytes, at: int, end: int) -> None:
        self.data, self.at, self.end = data, at, end

    def take(self, n: int) -> bytes:
        if self.at + n > self.end:
            raise _Short
        piece = self.data[self.at : self.at + n]
        self.at += n
        return piece

    def number(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def block(self, length_bytes: int) -> _Reader:
        n = self.number(length_bytes)
        if self.at + n > self.end:
            raise _Short
        inner = _Reader(self.data, self.at, self.at + n)
        self.at += n
        return inner

    def left(self) -> bool:
        return self.at < self.end


def parse_client_hello(data: bytes) -> Hello | None:
    """The SNI name and ALPN list of the ClientHello in the first record of `data`, or None
    (not a ClientHello, cut short, or spread over more than one record)."""
    total = record_length(data)
    if total is None or data[0] != _HANDSHAKE or len(data) < total:
        return None
    try:
        record = _Reader(data, RECORD_HEADER, total)
        if record.number(1) != _CLIENT_HELLO:
            return None
        body = record.block(3)
        body.take(2 + 32)  # legacy version, random
        body.block(1)  # session id
        body.block(2)  # cipher suites
        body.block(1)  # compression methods
        if not body.left():
            return Hello(None, ())
        extensions = body.block(2)
        name: str | None = None
        alpn: list[str] = []
        while extensions.left():
            kind = extensions.number(2)
            content = extensions.block(2)
            if kind == _SERVER_NAME:
                names = content.block(2)
                while names.left():
                    name_type = names.number(1)
                    value = names.block(2)
                    if name_type == 0:  # host_name
                        name = value.take(value.end - value.at).decode("ascii", "replace")
            elif kind == _ALPN:
                protocols = content.block(2)
                while protocols.left():
                    protocol = protocols.block(1)
                    alpn.append(protocol.take(protocol.end - protocol.at).decode("ascii", "replace"))
        return Hello(name, tuple(alpn))
    except _Short:
        return None


def acme_validation(hello: Hello | None,
                    acme_challenge: Callable[[str], ssl.SSLContext | None]) -> ssl.SSLContext | None:
    """The context answering a CA's TLS-ALPN-01 validation, if `hello` is one (RFC 8737 section 3)."""
    if hello is not None and hello.server_name and ACME_TLS_ALPN in hello.alpn:
        return acme_challenge(hello.server_name)
    return None
