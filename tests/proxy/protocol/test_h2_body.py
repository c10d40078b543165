# An HTTP/2 request's body: its framing to an HTTP/1.1 backend and its
# length checked against the DATA received (protocol/_h2_body.py; RFC 9113
# section 8.1.1), without sockets.

from __future__ import annotations

import pytest

from proxy._config import Limits
from proxy.protocol._h2_body import CHUNKED, LENGTH, NONE, RequestBody
from proxy.protocol._h2_head import H2Malformed, request_head

POST = [(b":method", b"POST"), (b":scheme", b"https"), (b":authority", b"app.test"), (b":path", b"/p")]


def body(length: int | None, *, end_stream: bool = False) -> RequestBody:
    extra = [] if length is None else [(b"content-length", b"%d" % length)]
    return RequestBody(request_head(POST + extra, Limits()), end_stream=end_stream)


@pytest.mark.parametrize(("length", "end_stream", "framing", "fields"), [
    pytest.param(3, False, LENGTH, [], id="content_length"),
    pytest.param(None, True, NONE, [], id="headers_end_the_stream"),
    pytest.param(None, False, CHUNKED, [(b"transfer-encoding", b"chunked")], id="unknown_length"),
    pytest.param(0, True, LENGTH, [], id="zero_length_ended"),
])
def test_the_framing_to_the_backend(length: int | None, end_stream: bool, framing: str,
                                    fields: list[tuple[bytes, bytes]]) -> None:
    request = body(length, end_stream=end_stream)
    assert (request.framing, request.head_fields()) == (framing, fields)


def test_data_that_matches_the_length_passes_in_any_pieces() -> None:
    request = body(5)
    for size in (2, 0, 3):
        request.data(size)
    request.end()
    assert request.received == 5


def test_chunked_takes_any_amount() -> None:
    request = body(None)
    request.data(70000)
    request.end()


@pytest.mark.parametrize(("length", "pieces", "end_stream"), [
    pytest.param(3, [2, 2], False, id="past_the_length"),
    pytest.param(3, [2], False, id="short_at_the_end"),
    pytest.param(3, [], True, id="headers_end_a_stream_that_announced_a_body"),
    pytest.param(None, [1], True, id="data_after_the_headers_ended_it"),
    pytest.param(2, [1, 1, 1], False, id="past_the_length_later"),
])
def test_a_length_the_data_does_not_match_is_malformed(length: int | None, pieces: list[int],
                                                       end_stream: bool) -> None:
    with pytest.raises(H2Malformed):
        request = body(length, end_stream=end_stream)  # the HEADERS ended the stream: checked here
        for size in pieces:
            request.data(size)
        if not end_stream:
            request.end()


def test_past_the_length_is_refused_before_the_bytes_go_on() -> None:
    request = body(3)
    request.data(3)
    with pytest.raises(H2Malformed, match="past the Content-Length"):
        request.data(1)
