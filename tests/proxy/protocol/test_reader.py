# The request head as both paths read it (protocol/_reader.py): whole or
# byte by byte, the same head at the same place; what may not be served is
# raised, never half-taken.

from __future__ import annotations

import pytest

from proxy._config import Limits
from proxy._errors import ClientProtocolError
from proxy.protocol._errors import Refused
from proxy.protocol._reader import next_head

LIMITS = Limits(max_target=100, max_header_bytes=300, max_headers=10)
GET = b"GET /a/b?c HTTP/1.1\r\nHost: example.test\r\n\r\n"


def test_a_whole_head_is_checked_and_located() -> None:
    buffer = bytearray(b"\r\n\r\n" + GET + b"NEXT")
    found = next_head(buffer, LIMITS)
    assert found is not None
    head, end = found
    assert (head.method, head.target, end) == (b"GET", b"/a/b?c", len(GET))
    assert buffer == GET + b"NEXT"  # the empty lines before it dropped; nothing else taken


def test_byte_by_byte_gives_the_same_head_at_the_same_place() -> None:
    data = b"\r\n" + GET + b"NEXT"
    buffer = bytearray()
    for index, byte in enumerate(data):
        buffer.append(byte)
        found = next_head(buffer, LIMITS)
        if found is not None:
            break
    assert found is not None and index == len(b"\r\n" + GET) - 1
    head, end = found
    assert head.target == b"/a/b?c" and buffer[:end] == GET


def test_an_unfinished_head_is_none_and_left_in_place() -> None:
    buffer = bytearray(GET[:-2])
    assert next_head(buffer, LIMITS) is None
    assert buffer == GET[:-2]


@pytest.mark.parametrize(("data", "status"), [
    pytest.param(b"GET /" + b"a" * 200 + b" HTTP/1.1\r\n", 414, id="target_too_long"),
    pytest.param(b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505, id="version"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: y\r\n\r\n", 400, id="field_name"),
    pytest.param(b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 20 + b"\r\n", 431, id="too_many_fields"),
])
def test_a_head_that_cannot_be_served_raises_its_status(data: bytes, status: int) -> None:
    with pytest.raises(ClientProtocolError) as raised:
        next_head(bytearray(data), LIMITS)
    assert raised.value.status == status


def test_a_tls_client_hello_is_refused_without_an_answer() -> None:
    with pytest.raises(Refused):
        next_head(bytearray(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"), LIMITS)
