# Pure: the fast parser's wire functions (proxy/protocol/_wire.py and the compiled
# twin, both through the `wire` fixture): response heads, framing, chunked
# bodies. Chunked bodies are fed whole and byte by byte.

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.protocol._events import END_OF_MESSAGE, RemoteProtocolError
from proxy.protocol._wire import BODY_CHUNKED, BODY_CLOSE, BODY_LENGTH, BODY_NONE, MAX_CHUNK_LINE


@pytest.mark.parametrize(("raw", "expected"), [
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", (b"1.1", 200, b"OK", [(b"content-length", b"5")]),
                 id="plain"),
    pytest.param(b"HTTP/1.0 404 Not Found\r\n\r\n", (b"1.0", 404, b"Not Found", []), id="http_1_0"),
    pytest.param(b"HTTP/1.1 204\r\n\r\n", (b"1.1", 204, b"", []), id="no_reason"),
    pytest.param(b"HTTP/1.1 200 \r\n\r\n", (b"1.1", 200, b"", []), id="empty_reason"),
    pytest.param(b"HTTP/1.1 599 a b\tc \r\n\r\n", (b"1.1", 599, b"a b\tc ", []), id="reason_kept_as_is"),
    pytest.param(b"HTTP/1.1 101 Switching\r\nUpgrade: ws\r\n\r\n", (b"1.1", 101, b"Switching", [(b"upgrade", b"ws")]),
                 id="informational"),
    pytest.param(b"HTTP/1.1 200 OK\r\nX-A:  a b \t\r\nX-Empty:\r\nSET-Cookie: c=1\r\n\r\n",
                 (b"1.1", 200, b"OK", [(b"x-a", b"a b"), (b"x-empty", b""), (b"set-cookie", b"c=1")]),
                 id="values_trimmed_names_lowercased"),
    pytest.param(b"HTTP/1.1 200 OK\r\nX: caf\xc3\xa9\r\n\r\n", (b"1.1", 200, b"OK", [(b"x", b"caf\xc3\xa9")]),
                 id="obs_text_value"),
])
def test_response_heads_read(wire: Any, raw: bytes, expected: tuple[Any, ...]) -> None:
    assert wire.parse_response_head(raw) == expected


@pytest.mark.parametrize("raw", [
    pytest.param(b"HTTP/1.1 200 OK\nX: 1\r\n\r\n", id="bare_lf"),
    pytest.param(b"HTTP/1.1 200 OK\r\nX: 1\r2\r\n\r\n", id="bare_cr"),
    pytest.param(b"HTTP/1.1 200 OK\r\nX: 1\r\n 2\r\n\r\n", id="obs_fold"),
    pytest.param(b"HTTP/2.0 200 OK\r\n\r\n", id="http_2"),
    pytest.param(b"HTTP/1.2 200 OK\r\n\r\n", id="http_1_2"),
    pytest.param(b"http/1.1 200 OK\r\n\r\n", id="lowercase_http"),
    pytest.param(b"ICY 200 OK\r\n\r\n", id="not_http"),
    pytest.param(b"HTTP/1.1 20\r\n\r\n", id="two_digit_status"),
    pytest.param(b"HTTP/1.1 2000\r\n\r\n", id="four_digit_status"),
    pytest.param(b"HTTP/1.1 099 X\r\n\r\n", id="status_below_100"),
    pytest.param(b"HTTP/1.1 2x0 X\r\n\r\n", id="status_not_digits"),
    pytest.param(b"HTTP/1.1  200 X\r\n\r\n", id="two_spaces"),
    pytest.param(b"HTTP/1.1 200 O\x01K\r\n\r\n", id="control_in_reason"),
    pytest.param(b"HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n", id="nul_in_value"),
    pytest.param(b"HTTP/1.1 200 OK\r\nX: a\x7fb\r\n\r\n", id="del_in_value"),
    pytest.param(b"HTTP/1.1 200 OK\r\nX : 1\r\n\r\n", id="space_before_colon"),
    pytest.param(b"HTTP/1.1 200 OK\r\n: 1\r\n\r\n", id="empty_name"),
    pytest.param(b"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", id="no_colon"),
    pytest.param(b"HTTP/1.1 200 OK\r\nX(: 1\r\n\r\n", id="name_not_a_token"),
    pytest.param(b"HTTP/1.1 200 OK\r\n\r\n\r\n", id="blank_line_inside"),
    pytest.param(b"HTTP/1.1 200 OK\r\n", id="unterminated"),
])
def test_malformed_response_heads_are_502(wire: Any, raw: bytes) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        wire.parse_response_head(raw)
    assert caught.value.status_hint == 502


@pytest.mark.parametrize(("method", "status", "headers", "expected"), [
    pytest.param(b"GET", 200, [(b"content-length", b"5")], (BODY_LENGTH, 5, True), id="length"),
    pytest.param(b"GET", 200, [(b"content-length", b"5, 5")], (BODY_LENGTH, 5, False), id="repeated_identical_length"),
    pytest.param(b"GET", 200, [(b"content-length", b"5"), (b"content-length", b"5")], (BODY_LENGTH, 5, False),
                 id="two_identical_lengths"),
    pytest.param(b"GET", 200, [(b"content-length", b"05")], (BODY_LENGTH, 5, True), id="leading_zero_kept"),
    pytest.param(b"GET", 200, [(b"transfer-encoding", b"chunked")], (BODY_CHUNKED, 0, True), id="chunked"),
    pytest.param(b"GET", 200, [(b"transfer-encoding", b"Chunked")], (BODY_CHUNKED, 0, False), id="chunked_capital"),
    pytest.param(b"GET", 200, [], (BODY_CLOSE, 0, True), id="until_close"),
    pytest.param(b"HEAD", 200, [(b"content-length", b"5")], (BODY_NONE, 0, True), id="head"),
    pytest.param(b"GET", 204, [], (BODY_NONE, 0, True), id="204"),
    pytest.param(b"GET", 304, [(b"content-length", b"5")], (BODY_NONE, 0, True), id="304"),
    pytest.param(b"GET", 200, [(b"content-length", b"0")], (BODY_LENGTH, 0, True), id="empty"),
])
def test_response_framing(wire: Any, method: bytes, status: int, headers: Any, expected: tuple[int, int, bool]) -> None:
    assert wire.response_framing(method, status, headers) == expected


def test_canonical_framing_keeps_one_length_where_the_first_was() -> None:
    from proxy.protocol._wire import canonical_framing

    headers = [(b"x", b"1"), (b"content-length", b"5, 5"), (b"y", b"2"), (b"content-length", b"5")]
    assert canonical_framing(headers) == [(b"x", b"1"), (b"content-length", b"5"), (b"y", b"2")]
    assert canonical_framing([(b"transfer-encoding", b"CHUNKED")]) == [(b"transfer-encoding", b"chunked")]


@pytest.mark.parametrize("headers", [
    pytest.param([(b"content-length", b"5"), (b"transfer-encoding", b"chunked")], id="both"),
    pytest.param([(b"transfer-encoding", b"gzip")], id="other_coding"),
    pytest.param([(b"transfer-encoding", b"gzip, chunked")], id="coding_list"),
    pytest.param([(b"transfer-encoding", b"chunked"), (b"transfer-encoding", b"chunked")], id="two_codings"),
    pytest.param([(b"content-length", b"5, 6")], id="conflicting_list"),
    pytest.param([(b"content-length", b"5"), (b"content-length", b"6")], id="conflicting_headers"),
    pytest.param([(b"content-length", b"")], id="empty_length"),
    pytest.param([(b"content-length", b"+5")], id="signed_length"),
    pytest.param([(b"content-length", b"0x10")], id="hex_length"),
    pytest.param([(b"content-length", b"1" * 19)], id="19_digit_length"),
])
def test_bad_framing_is_502(wire: Any, headers: Any) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        wire.response_framing(b"GET", 200, headers)
    assert caught.value.status_hint == 502


def decode(wire: Any, data: bytes, split: bool) -> tuple[bytes, bytes]:
    """Decode a chunked body; returns (body, bytes left after it). Raises if malformed or incomplete."""
    decoder = wire.ChunkedDecoder()
    buffer = bytearray()
    body = b""
    pieces = [data[i : i + 1] for i in range(len(data))] if split else [data]
    for index, piece in enumerate(pieces):
        buffer += piece
        while True:
            out = decoder.next(buffer)
            if out is None:
                break
            if out is END_OF_MESSAGE:
                return body, bytes(buffer) + b"".join(pieces[index + 1 :])
            assert isinstance(out, bytes) and out
            body += out
    raise AssertionError("incomplete")


@pytest.mark.parametrize("split", [False, True], ids=["whole", "bytewise"])
@pytest.mark.parametrize(("data", "body", "rest"), [
    pytest.param(b"5\r\nhello\r\n0\r\n\r\n", b"hello", b"", id="one_chunk"),
    pytest.param(b"0\r\n\r\n", b"", b"", id="empty"),
    pytest.param(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\nGET / HTTP/1.1\r\n", b"abcde", b"GET / HTTP/1.1\r\n",
                 id="next_request_kept"),
    pytest.param(b"A\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n", b"0123456789" * 2, b"", id="hex_either_case"),
    pytest.param(b"5;name=value;x\r\nhello\r\n0;last\r\n\r\n", b"hello", b"", id="extensions"),
    pytest.param(b"5 \t\r\nhello\r\n0\r\n\r\n", b"hello", b"", id="trailing_whitespace"),
    pytest.param(b"005\r\nhello\r\n0\r\n\r\n", b"hello", b"", id="leading_zeros"),
    pytest.param(b"5\r\nhello\r\n0\r\nX-T: 1\r\nX-U:\r\n\r\n", b"hello", b"", id="trailers_dropped"),
])
def test_chunked_bodies(wire: Any, data: bytes, body: bytes, rest: bytes, split: bool) -> None:
    assert decode(wire, data, split) == (body, rest)


@pytest.mark.parametrize("split", [False, True], ids=["whole", "bytewise"])
@pytest.mark.parametrize("data", [
    pytest.param(b"5\r\nhelloX\r\n0\r\n\r\n", id="data_longer_than_size"),
    pytest.param(b"5\r\nhell\r\n0\r\n\r\n", id="data_shorter_than_size"),
    pytest.param(b"G\r\n", id="not_hex"),
    pytest.param(b"\r\n", id="no_size"),
    pytest.param(b"-5\r\n", id="negative"),
    pytest.param(b"0x5\r\n", id="0x_prefix"),
    pytest.param(b"5 ;x\r\nhello\r\n", id="space_before_extension"),
    pytest.param(b"1" * 17 + b"\r\n", id="17_hex_digits"),
    pytest.param(b"5;a\x01b\r\nhello\r\n", id="control_in_extension"),
    pytest.param(b"5\nhello\r\n0\r\n\r\n", id="bare_lf_after_size"),
    pytest.param(b"5;a\rb\r\nhello\r\n", id="bare_cr_in_extension"),
    pytest.param(b"5;" + b"x" * MAX_CHUNK_LINE + b"\r\n", id="size_line_too_long"),
    pytest.param(b"0\r\nno colon\r\n\r\n", id="malformed_trailer"),
    pytest.param(b"0\r\nX-T: a\x00\r\n\r\n", id="nul_in_trailer"),
    pytest.param(b"0\r\nContent-Length: 5\r\n\r\n", id="length_trailer"),
    pytest.param(b"0\r\ntransfer-encoding: chunked\r\n\r\n", id="coding_trailer"),
    pytest.param(b"0\r\n" + b"X: y\r\n" * 3000 + b"\r\n", id="trailers_too_long"),
])
def test_malformed_chunked_bodies_are_refused(wire: Any, data: bytes, split: bool) -> None:
    with pytest.raises(RemoteProtocolError):
        decode(wire, data, split)


@settings(max_examples=500, deadline=None)
@given(data=st.binary(max_size=200), cut=st.integers(min_value=0, max_value=200))
def test_both_implementations_agree_on_any_bytes(data: bytes, cut: int) -> None:
    # Random bytes, with the chunk shapes mixed in often: same pieces (or
    # same error) from the specification and the compiled twin.
    from ...conftest import compiled_wire
    import proxy.protocol._wire

    compiled = compiled_wire()

    def outcome(module: Any, raw: bytes) -> Any:
        try:
            head = module.parse_response_head(raw)
        except RemoteProtocolError as error:
            head = ("error", str(error))
        try:
            chunked = decode(module, raw, split=False)
        except RemoteProtocolError as error:
            chunked = ("error", str(error))
        except AssertionError:
            chunked = "incomplete"
        return head, chunked

    for raw in (data, b"HTTP/1.1 200 OK\r\n" + data[:cut] + b"\r\n\r\n", b"%x\r\n" % cut + data + b"\r\n0\r\n\r\n"):
        assert outcome(proxy.protocol._wire, raw) == outcome(compiled, raw)
