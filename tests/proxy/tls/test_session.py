# The sans-IO TLS session (tls/_session.py), with no socket: a client
# SSLObject over its own memory BIOs, the bytes moved between the two by
# hand.

from __future__ import annotations

import ssl
import tracemalloc
from pathlib import Path

import pytest
import trustme

from proxy._config import TlsPair
from proxy.tls._context import TICKETS, server_context
from proxy.tls._session import RECORD_MAX, TlsFailed, TlsSession

NAME = "api.example.test"


class Pair:
    """A TlsSession and a client, wired by hand."""

    def __init__(self, version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3) -> None:
        ca = trustme.CA(key_type=trustme.KeyType.ECDSA)
        server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert(NAME, key_type=trustme.KeyType.ECDSA).configure_cert(server_context)
        client_context = ssl.create_default_context()
        ca.configure_trust(client_context)
        client_context.minimum_version = client_context.maximum_version = version
        self.session = TlsSession(server_context)
        self.client_in, self.client_out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.client = client_context.wrap_bio(self.client_in, self.client_out, server_hostname=NAME)

    def to_server(self) -> None:
        self.session.receive(self.client_out.read())

    def to_client(self) -> None:
        self.client_in.write(self.session.outgoing())

    def handshake(self) -> None:
        for _ in range(10):
            try:
                self.client.do_handshake()
            except ssl.SSLWantReadError:
                pass
            else:
                if self.session.handshake():
                    return
            self.to_server()
            self.session.handshake()
            self.to_client()
        raise AssertionError("no handshake in 10 flights")


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["1.2", "1.3"])
def test_bytes_go_both_ways_after_a_handshake(version: ssl.TLSVersion) -> None:
    pair = Pair(version)
    pair.handshake()
    pair.client.write(b"GET / HTTP/1.1\r\n\r\n")
    pair.to_server()
    assert pair.session.read(1000) == b"GET / HTTP/1.1\r\n\r\n"
    assert pair.session.read(1000) is None  # nothing more yet
    pair.session.write(b"HTTP/1.1 200 OK\r\n\r\n")
    pair.to_client()
    assert pair.client.read(1000) == b"HTTP/1.1 200 OK\r\n\r\n"


def test_read_all_takes_every_record_received() -> None:
    pair = Pair()
    pair.handshake()
    for part in (b"a" * 100, b"b" * RECORD_MAX, b"c"):  # three writes: at least three records
        pair.client.write(part)
    pair.to_server()
    assert pair.session.read_all(1 << 30) == b"a" * 100 + b"b" * RECORD_MAX + b"c"
    assert pair.session.read_all(1 << 30) is None


def test_read_all_stops_at_its_limit() -> None:
    pair = Pair()
    pair.handshake()
    pair.client.write(b"x" * 3000)
    pair.to_server()
    assert pair.session.read_all(1000) == b"x" * 1000
    assert pair.session.read_all(1 << 30) == b"x" * 2000


def test_read_all_allocates_by_what_came_not_by_its_limit() -> None:
    # SSLObject.read(n) allocates n bytes before it reads: a read with a
    # limit of 1 GiB once cost a mapping of that size per call.
    pair = Pair()
    pair.handshake()
    pair.client.write(b"GET / HTTP/1.1\r\n\r\n")
    pair.to_server()
    tracemalloc.start()
    try:
        assert pair.session.read_all(1 << 30) == b"GET / HTTP/1.1\r\n\r\n"
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * RECORD_MAX


def test_the_peers_end_reads_as_empty_with_or_without_close_notify() -> None:
    pair = Pair()
    pair.handshake()
    try:
        pair.client.unwrap()
    except ssl.SSLWantReadError:
        pass
    pair.to_server()
    assert pair.session.read(100) == b""  # a close_notify

    ragged = Pair()
    ragged.handshake()
    ragged.session.receive(b"")  # the stream ended with none
    assert ragged.session.read(100) == b""


def test_a_record_that_does_not_decrypt_fails() -> None:
    pair = Pair()
    pair.handshake()
    pair.client.write(b"hello")
    record = bytearray(pair.client_out.read())
    record[-1] ^= 1
    pair.session.receive(bytes(record))
    with pytest.raises(TlsFailed):
        pair.session.read(100)


def test_a_handshake_that_ends_early_or_is_not_tls_fails() -> None:
    pair = Pair()
    pair.session.receive(b"")
    with pytest.raises(TlsFailed):
        pair.session.handshake()

    garbage = Pair()
    garbage.session.receive(b"GET / HTTP/1.1\r\n\r\n")
    with pytest.raises(TlsFailed):
        garbage.session.handshake()


def test_tls_1_3_tickets_come_with_the_handshake() -> None:
    pair = Pair()
    pair.handshake()
    pair.to_client()
    with pytest.raises(ssl.SSLWantReadError):
        pair.client.read(100)  # which takes in the tickets
    assert pair.client.session is not None and pair.client.session.has_ticket


def test_close_writes_close_notify_and_unsent_and_unread_tell_what_waits() -> None:
    pair = Pair()
    pair.handshake()
    pair.to_client()
    pair.client.write(b"abc")
    pair.to_server()
    assert pair.session.unread > 0
    assert pair.session.read(10) == b"abc"
    assert pair.session.unread == 0
    pair.session.close()
    assert pair.session.unsent()
    pair.to_client()
    assert not pair.session.unsent()
    assert pair.client.read(10) == b""  # the client sees a clean end


def test_the_gateways_contexts_send_one_ticket_per_tls_1_3_handshake(tmp_path: Path) -> None:
    ca = trustme.CA(key_type=trustme.KeyType.ECDSA)
    leaf = ca.issue_cert(NAME, key_type=trustme.KeyType.ECDSA)
    pair = TlsPair(tmp_path / "cert.pem", tmp_path / "key.pem")
    leaf.cert_chain_pems[0].write_to_path(str(pair.cert))
    leaf.private_key_pem.write_to_path(str(pair.key))
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    tickets = []

    def seen(_conn: object, direction: str, _version: object, content_type: object, msg_type: object,
             _data: bytes) -> None:
        if direction == "read" and content_type == ssl._TLSContentType.HANDSHAKE \
                and msg_type == ssl._TLSMessageType.NEWSESSION_TICKET:
            tickets.append(1)

    client_context._msg_callback = seen  # type: ignore[attr-defined]  # (the standard library's test hook)
    pair_ = Pair.__new__(Pair)
    pair_.session = TlsSession(server_context(pair))
    pair_.client_in, pair_.client_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    pair_.client = client_context.wrap_bio(pair_.client_in, pair_.client_out, server_hostname=NAME)
    pair_.handshake()
    pair_.to_client()
    with pytest.raises(ssl.SSLWantReadError):
        pair_.client.read(100)
    assert pair_.client.version() == "TLSv1.3"
    assert len(tickets) == TICKETS == 1
