# The client's transport (engine/_transport.py) alone: a socketpair, plain
# or with a real OpenSSL client on the other end after a real handshake;
# no loop, no gateway. Plaintext in and out either way; what the socket
# does not take waits, and goes out with the next flush.

from __future__ import annotations

import socket
import ssl
from pathlib import Path

from proxy.engine._handshake import DONE, Handshake
from proxy.engine._transport import Transport
from proxy.tls._session import TlsSession

from ..tls.tls_support import Pki
from .test_handshake import NAME, pair, server_context, shake  # noqa: F401 (pair: the fixture, shared)

ROUNDS_MAX = 100_000  # reads and flushes to move 8 MiB; more is a loop that never ends


def test_plain_reads_and_writes(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    transport = Transport(server.fileno(), None)
    assert transport.receive() is None  # nothing yet: it would block
    client.sendall(b"ping")
    assert transport.receive() == b"ping"
    out = bytearray(b"pong")
    assert transport.waiting(out) and transport.flush(out) == 4
    assert not transport.waiting(out) and client.recv(10) == b"pong"
    client.shutdown(socket.SHUT_WR)
    assert transport.receive() == b""  # the client's end


def test_what_the_socket_does_not_take_waits_for_the_next_flush(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    transport = Transport(server.fileno(), None)
    out = bytearray(b"x" * (8 << 20))  # more than a socketpair holds
    sent = transport.flush(out)
    assert 0 < sent < 8 << 20 and len(out) == (8 << 20) - sent and transport.waiting(out)
    client.setblocking(False)
    got = 0
    for _ in range(ROUNDS_MAX):
        if not transport.waiting(out):
            break
        try:
            got += len(client.recv(1 << 20))
        except BlockingIOError:
            pass
        transport.flush(out)
    client.setblocking(True)
    while got < 8 << 20:
        got += len(client.recv(1 << 20))
    assert got == 8 << 20


def tls_pair(pki: Pki, server: socket.socket, sock: socket.socket
             ) -> tuple[Transport, ssl.SSLObject, ssl.MemoryBIO, ssl.MemoryBIO]:
    """A transport over a session whose handshake with a real client is made."""
    session = TlsSession(server_context(pki, NAME))
    transport = Transport(server.fileno(), session)
    handshake = Handshake(server.fileno(), session, transport.unsent, None)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = pki.client_context().wrap_bio(incoming, outgoing, server_hostname=NAME)
    assert shake(handshake, client, outgoing, incoming, sock) == DONE
    return transport, client, incoming, outgoing


def client_reads(client: ssl.SSLObject, incoming: ssl.MemoryBIO, sock: socket.socket, size: int) -> bytes:
    """What the client decrypts of `size` plaintext bytes the transport wrote."""
    got = bytearray()
    while len(got) < size:
        try:
            got += client.read(size - len(got))
        except ssl.SSLWantReadError:
            incoming.write(sock.recv(65536))
    return bytes(got)


def test_tls_reads_and_writes_plaintext(tmp_path: Path, pair: tuple[socket.socket, socket.socket]) -> None:
    server, sock = pair
    transport, client, incoming, outgoing = tls_pair(Pki(tmp_path), server, sock)
    client.write(b"GET / HTTP/1.1\r\n\r\n")
    sock.sendall(outgoing.read())
    assert transport.receive() == b"GET / HTTP/1.1\r\n\r\n"
    out = bytearray(b"HTTP/1.1 200 OK\r\n\r\n")
    assert transport.flush(out) > 0 and not out and not transport.waiting(out)
    assert client_reads(client, incoming, sock, 19) == b"HTTP/1.1 200 OK\r\n\r\n"
    # The compiled cycle's write: encrypted and written whole.
    assert transport.send_tls(b"more", bytearray())
    assert client_reads(client, incoming, sock, 4) == b"more"


def test_tls_a_record_in_pieces_reads_nothing_until_whole(tmp_path: Path,
                                                          pair: tuple[socket.socket, socket.socket]) -> None:
    server, sock = pair
    transport, client, _, outgoing = tls_pair(Pki(tmp_path), server, sock)
    client.write(b"hello")
    record = outgoing.read()
    sock.sendall(record[:3])
    assert transport.receive() is None
    sock.sendall(record[3:])
    assert transport.receive() == b"hello"


def test_tls_ciphertext_the_socket_does_not_take_waits(tmp_path: Path,
                                                       pair: tuple[socket.socket, socket.socket]) -> None:
    server, sock = pair
    transport, client, incoming, _ = tls_pair(Pki(tmp_path), server, sock)
    size = 8 << 20
    assert not transport.send_tls(b"y" * size, bytearray())  # more than a socketpair holds
    assert transport.unsent and transport.waiting(bytearray())
    out = bytearray()
    got = bytearray()
    sock.setblocking(False)
    for _ in range(ROUNDS_MAX):
        if len(got) >= size:
            break
        transport.flush(out)
        try:
            incoming.write(sock.recv(1 << 20))
        except BlockingIOError:
            continue
        try:
            while True:
                got += client.read(1 << 20)
        except ssl.SSLWantReadError:
            pass
    assert bytes(got) == b"y" * size and not transport.unsent


def test_tls_the_close_notify_goes_after_what_waits(tmp_path: Path, pair: tuple[socket.socket, socket.socket]) -> None:
    server, sock = pair
    transport, client, incoming, _ = tls_pair(Pki(tmp_path), server, sock)
    transport.send_now(b"bye")
    transport.close_notify()
    assert client_reads(client, incoming, sock, 3) == b"bye"
    sock.setblocking(False)
    try:
        incoming.write(sock.recv(65536))
    except BlockingIOError:
        pass
    assert client.read(10) == b""  # the close_notify: a clean end
