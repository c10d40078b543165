# The ClientHello parser against real ClientHellos: the standard library's
# TLS client writes them into a memory BIO.

from __future__ import annotations

import ssl

import pytest

from proxy.tls._hello import Hello, parse_client_hello, record_length


def client_hello(server_name: str | None, alpn: list[str] | None) -> bytes:
    context = ssl.create_default_context()
    context.check_hostname = server_name is not None
    if alpn:
        context.set_alpn_protocols(alpn)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


@pytest.mark.parametrize(("server_name", "alpn"), [
    pytest.param("api.example.com", ["acme-tls/1"], id="acme_validation"),
    pytest.param("api.example.com", ["h2", "http/1.1"], id="browser_like"),
    pytest.param("api.example.com", None, id="no_alpn"),
    pytest.param(None, ["http/1.1"], id="no_sni"),
])
def test_a_real_client_hello(server_name: str | None, alpn: list[str] | None) -> None:
    data = client_hello(server_name, alpn)
    assert record_length(data) == len(data)
    assert parse_client_hello(data) == Hello(server_name, tuple(alpn or ()))


def test_cut_short_anywhere_is_not_known() -> None:
    data = client_hello("api.example.com", ["acme-tls/1"])
    for end in range(len(data)):
        assert parse_client_hello(data[:end]) is None


@pytest.mark.parametrize("data", [
    pytest.param(b"GET / HTTP/1.1\r\n\r\n", id="plain_http"),
    pytest.param(b"\x16\x03\x01\x00\x04\x02\x00\x00\x00", id="not_a_client_hello"),
    pytest.param(b"\x16\x03\x01\x00\x05\x01\x00\xff\xff\x03", id="length_past_the_record"),
])
def test_other_bytes_are_not_known(data: bytes) -> None:
    assert parse_client_hello(data) is None


def test_any_corruption_never_raises() -> None:
    data = bytearray(client_hello("api.example.com", ["acme-tls/1"]))
    for i in range(5, len(data)):
        for value in (0, 0xFF):
            corrupt = bytes(data[:i]) + bytes([value]) + bytes(data[i + 1:])
            result = parse_client_hello(corrupt)
            assert result is None or isinstance(result, Hello)
