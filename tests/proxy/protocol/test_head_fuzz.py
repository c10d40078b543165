# Fuzzing the request-head checks with hypothesis (bounded here; raise
# FASTROUTE_FUZZ_EXAMPLES to run longer by hand). Properties:
# - only ClientProtocolError or Refused ever escape, on any bytes;
# - the decision is the same whatever way the bytes are split;
# - a head the checks accept, h11 accepts too, with the same method, target
#   and headers (so nothing the checks vouched for is read differently).

from __future__ import annotations

import os
from typing import Any

import h11
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy._config import Limits
from proxy._errors import ClientProtocolError
from proxy.protocol._head import Refused, check_head, find_head

EXAMPLES = int(os.environ.get("FASTROUTE_FUZZ_EXAMPLES", "300"))
LIMITS = Limits(max_target=200, max_header_bytes=1000, max_headers=20)

PIECES = [
    b"GET", b"POST", b"OPTIONS", b"CONNECT", b" ", b"  ", b"\t", b"/", b"//", b"/a", b"/%2e%2e", b"/%2f", b"%",
    b"*", b"http://x/", b"?", b"#", b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"\r\n", b"\n", b"\r", b":",
    b"Host", b"host: x", b"Content-Length", b"Transfer-Encoding", b"chunked", b"0", b"3", b"+3", b",", b"\x00",
    b"\x7f", b"\x16\x03", b"a", b"\xc3\xa9",
    # round two: bare line ends around the size limits, underscored and Connection-named fields
    b"\n\n", b"X-Long: " + b"y" * 150, b"X_Forwarded_For: 6", b"Connection: host", b"Connection: content-length",
    b"Upgrade: h2c",
]
heads = st.lists(st.sampled_from(PIECES), max_size=30).map(b"".join)
valid_ish = st.builds(
    lambda method, target, fields: method + b" " + target + b" HTTP/1.1\r\nHost: x\r\n" + b"".join(fields) + b"\r\n",
    st.sampled_from([b"GET", b"POST", b"PUT", b"OPTIONS"]),
    st.sampled_from([b"/", b"/a/b?c", b"//a", b"/%61", b"*", b"http://x/y"]),
    st.lists(st.sampled_from([b"Content-Length: 3\r\n", b"Transfer-Encoding: chunked\r\n", b"X-A: 1\r\n",
                              b"X-B:\t2 \r\n", b"Connection: close\r\n"]), max_size=4),
)


def decide(data: bytes, cuts: list[int]) -> tuple[str, object]:
    buffer = b""
    points = sorted(set(c % (len(data) + 1) for c in cuts)) + [len(data)]
    start = 0
    for point in points:
        buffer += data[start:point]
        start = point
        try:
            end = find_head(buffer, LIMITS)
            if end is None:
                continue
            head = check_head(buffer[:end], LIMITS)
        except ClientProtocolError as error:
            return ("error", error.status)
        except Refused:
            return ("refused", None)
        return ("ok", head)
    return ("incomplete", None)


@given(st.one_of(heads, valid_ish), st.lists(st.integers(0, 400), max_size=5))
@settings(max_examples=EXAMPLES, deadline=None)
def test_any_bytes_get_one_answer_whatever_the_split(data: bytes, cuts: list[int]) -> None:
    whole = decide(data, [])
    split = decide(data, cuts)
    if whole[0] == "ok" and split[0] == "ok":
        assert whole[1] == split[1]
    else:
        assert whole[0] == split[0] and whole[1] == split[1]


@given(valid_ish)
@settings(max_examples=EXAMPLES, deadline=None)
def test_what_the_checks_accept_h11_reads_the_same(data: bytes) -> None:
    kind, head = decide(data, [])
    if kind != "ok":
        return
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(head.encode())  # type: ignore[union-attr]
    event = conn.next_event()
    assert type(event) is h11.Request
    assert event.method == head.method and event.target == head.target  # type: ignore[union-attr]
    assert list(event.headers) == head.headers  # type: ignore[union-attr]


@given(st.one_of(heads, valid_ish, st.binary(max_size=300)))
@settings(max_examples=EXAMPLES, deadline=None)
def test_the_compiled_checks_agree_with_the_specification(data: bytes) -> None:
    from proxy.protocol import _head
    from ...conftest import compiled_head

    compiled = compiled_head()

    def outcome(check: Any) -> tuple[str, object]:
        end = data.find(b"\r\n\r\n")
        if end == -1:
            return ("incomplete", None)
        try:
            return ("ok", check(data[: end + 4], LIMITS))
        except ClientProtocolError as error:
            return ("error", (error.status, error.detail))

    assert outcome(compiled.check_head) == outcome(_head.check_head)
    target = data.split(b" ")[1] if data.count(b" ") >= 2 else data

    def normal(function: Any) -> tuple[str, object]:
        try:
            return ("ok", function(target))
        except ClientProtocolError as error:
            return ("error", (error.status, error.detail))

    assert normal(compiled.normalise_path) == normal(_head.normalise_path)
