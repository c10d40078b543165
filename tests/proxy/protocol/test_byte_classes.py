# The byte classes of the compiled modules (one definition, _bytes.h) against
# the pure-Python specifications, for every byte: a token's bytes (method,
# field name), a hex digit (a path's escapes, a chunk size), a control byte
# (field values), the unreserved bytes an escape is decoded to.

from __future__ import annotations

from typing import Any

import pytest

from proxy._config import Limits
from proxy.protocol import _head, _wire

from ...conftest import compiled_head, compiled_wire

BYTES = [bytes([b]) for b in range(256)]


def outcome(call: Any, *args: Any) -> Any:
    try:
        result = call(*args)
    except Exception as error:  # noqa: BLE001 - what is compared is the kind of refusal
        return type(error).__name__, getattr(error, "status", None)
    return getattr(result, "target", result), getattr(result, "headers", None)


def head(field_name: bytes = b"x-a", value: bytes = b"v", target: bytes = b"/") -> bytes:
    return b"GET " + target + b" HTTP/1.1\r\nhost: h\r\n" + field_name + b": " + value + b"\r\n\r\n"


@pytest.mark.parametrize("byte", BYTES, ids=[f"{b:02x}" for b in range(256)])
def test_the_head_checks_agree_on_every_byte(byte: bytes) -> None:
    compiled = compiled_head()
    limits = Limits()
    for raw in (head(field_name=b"x" + byte), head(value=b"a" + byte + b"b"),
                head(target=b"/%4" + byte), head(target=b"/%" + byte + b"1"),
                head(target=b"/a%" + f"{byte[0]:02X}".encode() + b"b")):
        assert outcome(compiled.check_head, raw, limits) == outcome(_head.check_head, raw, limits), raw


@pytest.mark.parametrize("byte", BYTES, ids=[f"{b:02x}" for b in range(256)])
def test_the_wire_functions_agree_on_every_byte(byte: bytes) -> None:
    compiled = compiled_wire()
    response = b"HTTP/1.1 200 OK\r\nx" + byte + b": v\r\ny: a" + byte + b"b\r\n\r\n"
    assert outcome(compiled.parse_response_head, response) == outcome(_wire.parse_response_head, response)

    def chunk(module: Any) -> Any:
        buffer = bytearray(b"1" + byte + b"\r\n" + b"x" * 32 + b"\r\n0\r\n\r\n")
        return outcome(module.ChunkedDecoder().next, buffer)

    assert chunk(compiled) == chunk(_wire)
