# The TLS handshake stage (engine/_handshake.py) alone: a socketpair and a
# real OpenSSL client on the other end, no loop, no gateway. Each step says
# what came of it; every end is reached: DONE, PLAIN, CLOSE, ANSWERED.

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxy.engine._handshake import ANSWERED, CLOSE, DONE, PLAIN, READING, Handshake
from proxy.tls._hello import ACME_TLS_ALPN
from proxy.tls._session import TlsSession

from ..tls.tls_support import Pki

NAME = "app.example.test"
CHALLENGED = "new.example.test"
STEPS_MAX = 20  # a handshake takes a few; more is a loop that never ends


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    server, client = socket.socketpair()
    server.setblocking(False)
    yield server, client
    server.close()
    client.close()


def server_context(pki: Pki, name: str, alpn: list[str] | None = None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    issued = pki.issue(name)
    context.load_cert_chain(issued.pair.cert, issued.pair.key)
    if alpn:
        context.set_alpn_protocols(alpn)
    return context


def shake(handshake: Handshake, client: ssl.SSLObject, outgoing: ssl.MemoryBIO, incoming: ssl.MemoryBIO,
          sock: socket.socket) -> int:
    """Both sides' flights back and forth until the stage reaches an end."""
    for _ in range(STEPS_MAX):
        try:
            client.do_handshake()
        except ssl.SSLWantReadError:
            pass
        sock.sendall(outgoing.read())
        step = handshake.step()
        if step not in (READING,):
            return step
        sock.setblocking(False)
        try:
            incoming.write(sock.recv(65536))
        except BlockingIOError:
            pass
        sock.setblocking(True)
    raise AssertionError("no end within the steps")


def test_a_client_handshake_is_done_with_its_session(pki: Pki, pair: tuple[socket.socket, socket.socket]) -> None:
    server, sock = pair
    session = TlsSession(server_context(pki, NAME))
    handshake = Handshake(server.fileno(), session, bytearray(), None)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = pki.client_context().wrap_bio(incoming, outgoing, server_hostname=NAME)
    assert handshake.step() == READING  # nothing sent yet
    assert shake(handshake, client, outgoing, incoming, sock) == DONE
    assert handshake.tls is session and session.established and not handshake.validating


def test_a_plain_http_client_is_told_at_its_first_byte(pair: tuple[socket.socket, socket.socket]) -> None:
    server, sock = pair
    handshake = Handshake(server.fileno(), TlsSession(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)), bytearray(), None)
    sock.sendall(b"GET / HTTP/1.1\r\n")
    assert handshake.step() == PLAIN and handshake.plain == b"GET / HTTP/1.1\r\n"


def test_a_handshake_openssl_refuses_ends_it(pki: Pki, pair: tuple[socket.socket, socket.socket]) -> None:
    server, sock = pair
    handshake = Handshake(server.fileno(), TlsSession(server_context(pki, NAME)), bytearray(), None)
    sock.sendall(b"\x16\x03\x01\x00\x05hello")  # a handshake record that is no ClientHello
    assert handshake.step() == CLOSE


def test_a_client_that_leaves_ends_it(pki: Pki, pair: tuple[socket.socket, socket.socket]) -> None:
    server, sock = pair
    handshake = Handshake(server.fileno(), TlsSession(server_context(pki, NAME)), bytearray(), None)
    sock.shutdown(socket.SHUT_WR)
    assert handshake.step() == CLOSE


@pytest.mark.parametrize("validating", [True, False], ids=["validation", "client"])
def test_with_acme_on_the_hello_says_validation_or_client(
        pki: Pki, pair: tuple[socket.socket, socket.socket], validating: bool) -> None:
    server, sock = pair
    validation = server_context(pki, CHALLENGED, [ACME_TLS_ALPN])
    session = TlsSession(server_context(pki, NAME))
    handshake = Handshake(server.fileno(), session, bytearray(),
                          lambda name: validation if name == CHALLENGED else None)
    context = pki.client_context()
    if validating:
        context.set_alpn_protocols([ACME_TLS_ALPN])
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = context.wrap_bio(incoming, outgoing, server_hostname=CHALLENGED if validating else NAME)
    assert shake(handshake, client, outgoing, incoming, sock) == (ANSWERED if validating else DONE)
    assert handshake.validating is validating and (handshake.tls is session) is not validating
