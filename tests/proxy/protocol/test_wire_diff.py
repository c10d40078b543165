# Differential: the fast connection (_fastconn.py over the compiled wire
# functions, and over the pure-Python ones) against h11, the reference, on
# the same bytes, fed whole and split. Two properties:
# - whatever the fast parser accepts, h11 accepts and reads the same: same
#   events, same body bytes, same framing (where the body ends);
# - whatever it refuses, h11 refuses too, unless the input has one of the
#   features where the fast parser is deliberately stricter (listed in
#   proxy/protocol/_wire.py's comment); the generators tag every such feature they
#   put in, and the corpus names it per case.
# Responses (backend side) and request bodies (client side: the request
# heads themselves are compared with h11 in test_head_fuzz.py).

from __future__ import annotations

import os
from typing import Any

import h11
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import proxy.protocol._wire
from proxy.protocol import _events as ev
from proxy.protocol import _fastconn
from proxy._config import Limits
from proxy.protocol._fastconn import FastConnection
from proxy.protocol._h11conn import _event_in
from proxy.protocol._head import check_head, find_head

EXAMPLES = int(os.environ.get("FASTROUTE_FUZZ_EXAMPLES", "400"))
MAX_HEAD = 64 * 1024


@pytest.fixture(params=["c", "py"])
def wire_impl(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the fast connection over the compiled wire functions, then over the specification."""
    if request.param == "c":
        from ...conftest import compiled_wire

        module: Any = compiled_wire()
    else:
        module = proxy.protocol._wire
    for name in ("ChunkedDecoder", "parse_response_head", "response_framing"):
        monkeypatch.setattr(_fastconn, name, getattr(module, name))
    return str(request.param)


def _pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, start = [], 0
    for point in [*points, len(data)]:
        if point > start:  # an empty piece would mean EOF
            out.append(data[start:point])
        start = point
    return out


def _normal(events: list[Any]) -> list[Any]:
    """Events as comparable tuples; consecutive Data merged (the two parsers cut bodies differently)."""
    out: list[Any] = []
    for event in events:
        if event[0] == "data" and out and out[-1][0] == "data":
            out[-1] = ("data", out[-1][1] + event[1])
        elif event[0] != "data" or event[1]:
            out.append(event)
    return out


def read_response(conn: Any, pieces: list[bytes]) -> tuple[list[Any], str | None]:
    """Feed `pieces` then EOF to a connection speaking _events.py; (events so far, the error or None)."""
    events: list[Any] = []
    try:
        for piece in [*pieces, b""]:
            conn.receive_data(piece)
            while True:
                event = conn.next_event()
                if event is ev.NEED_DATA:
                    break
                kind = type(event)
                if kind is ev.InformationalResponse or kind is ev.Response:
                    name = "info" if kind is ev.InformationalResponse else "response"
                    events.append((name, event.status_code, event.reason, event.http_version, event.headers))
                elif kind is ev.Data:
                    events.append(("data", event.data))
                else:
                    events.append(("end",) if kind is ev.EndOfMessage else ("closed",))
                    return events, None
    except ev.RemoteProtocolError as error:
        return events, str(error)
    return events, None


def fast_response(method: bytes, pieces: list[bytes]) -> Any:
    conn = FastConnection.client(max_head=MAX_HEAD)
    conn.send(ev.Request(method, b"/", [(b"host", b"x")]))
    conn.send(ev.END_OF_MESSAGE)
    events, error = read_response(conn, pieces)
    return ("error", error) if error is not None else ("ok", _normal(events))


class _H11:
    """Raw h11, the reference: the adapter's event translation (_h11conn._event_in), none of its policy."""

    def __init__(self, method: bytes) -> None:
        self.conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
        self.conn.send(h11.Request(method=method, target="/", headers=[("host", "x")]))
        self.conn.send(h11.EndOfMessage())

    def receive_data(self, data: bytes) -> None:
        self.conn.receive_data(data)

    def next_event(self) -> Any:
        try:
            return _event_in(self.conn.next_event())
        except (h11.RemoteProtocolError, h11.LocalProtocolError) as error:
            raise ev.RemoteProtocolError(str(error)) from error


def h11_response(method: bytes, pieces: list[bytes]) -> Any:
    reference = _H11(method)
    events, error = read_response(reference, pieces)
    if error is None:
        return ("ok", _normal(events))
    if all(e[0] == "info" for e in events) and "state=SEND_RESPONSE" in error \
            and not reference.conn.trailing_data[0]:
        # The backend closed before a final response: h11 raises, the
        # fast connection says CONNECTION_CLOSED; the relay reads both
        # as "no response" (a stale pooled connection, or 502).
        return ("ok", _normal([*events, ("closed",)]))
    return ("error", error)


def compare(fast: Any, reference: Any, stricter: set[str], what: bytes) -> None:
    if fast[0] == "ok":
        assert reference == fast, f"h11 reads {what!r} differently"
    elif reference[0] == "ok":
        assert stricter, f"only the fast parser refuses {what!r} ({fast[1]}), with no stricter rule in it"


# --- responses: a grammar with the stricter features tagged ------------------

TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCXYZ0123456789-!#$%&'*+.^_`|~", min_size=1, max_size=12)


@st.composite
def responses(draw: Any) -> tuple[bytes, bytes, set[str]]:
    """(method, response bytes, the stricter features in it)."""
    tags: set[str] = set()
    method = draw(st.sampled_from([b"GET", b"HEAD", b"POST"]))
    version = draw(st.sampled_from([b"1.1", b"1.1", b"1.0", b"1.2", b"2.0"]))
    if version not in (b"1.0", b"1.1"):
        tags.add("version")
    status = draw(st.sampled_from([b"100", b"103", b"200", b"204", b"206", b"304", b"404", b"500", b"099", b"2x0"]))
    reason = draw(st.sampled_from([b" OK", b"", b" ", b" Not\tFound ", b" caf\xc3\xa9", b" a\x01b", b" a\x00b"]))
    if b"\x01" in reason:
        tags.add("control")
    lines = [b"HTTP/" + version + b" " + status + reason]
    framing = draw(st.sampled_from(["length", "chunked", "close", "both", "length_twice", "long_length", "gzip"]))
    body_len = draw(st.integers(0, 20))
    body = draw(st.binary(min_size=body_len, max_size=body_len))
    headers: list[bytes] = []
    if framing in ("length", "both", "length_twice"):
        headers.append(b"Content-Length: %d" % body_len)
    if framing == "length_twice":
        headers.append(draw(st.sampled_from([b"Content-Length: %d" % body_len, b"content-length: %d" % (body_len + 1),
                                             b"Content-Length: %d, %d" % (body_len, body_len)])))
    if framing == "long_length":
        headers.append(b"Content-Length: " + b"0" * 19 + b"%d" % body_len)
        tags.add("length_digits")
    if framing in ("chunked", "both"):
        headers.append(draw(st.sampled_from([b"Transfer-Encoding: chunked", b"transfer-encoding:  Chunked \t"])))
    if framing == "both":
        tags.add("both")
    if framing == "gzip":
        headers.append(b"Transfer-Encoding: gzip, chunked")
    for _ in range(draw(st.integers(0, 3))):
        name = draw(TOKEN).encode()
        value = draw(st.sampled_from([b"v", b" v ", b"", b"a b", b"\tx\t", b"a\x01b", b"a\x7fb", b"\x00", b"a\x0bb"]))
        if b"\x01" in value or b"\x7f" in value:
            tags.add("control")
        headers.append(name + b":" + value)
    if draw(st.booleans()):
        headers.append(draw(st.sampled_from([b"Connection: close", b"Connection: keep-alive"])))
    if draw(st.integers(0, 9)) == 0:
        headers.insert(draw(st.integers(0, len(headers))), b" folded")
        tags.add("obs_fold")
    eol = b"\r\n"
    if draw(st.integers(0, 9)) == 0:
        eol = b"\n"
        tags.add("bare_lf")
    head = eol.join(lines + headers) + eol + eol
    if framing in ("chunked", "both", "gzip"):
        body = draw(chunked_bodies(body, tags))
    return method, head + body, tags


@st.composite
def chunked_bodies(draw: Any, data: bytes, tags: set[str]) -> bytes:
    out = b""
    rest = data
    while rest:
        n = draw(st.integers(1, len(rest)))
        size = draw(st.sampled_from([b"%x" % n, b"%X" % n, b"00%x" % n, b"0" * 17 + b"%x" % n]))
        if len(size) > 16:
            tags.add("chunk_line")
        ext = draw(st.sampled_from([b"", b"", b";a=b", b";x", b" \t", b";a\x01", b" ;a"]))
        if ext == b";a\x01":
            tags.add("chunk_line")
        out += size + ext + b"\r\n" + rest[:n] + draw(st.sampled_from([b"\r\n", b"\r\n", b"\n", b"x\r\n"]))
        rest = rest[n:]
    out += b"0\r\n"
    out += draw(st.sampled_from([b"", b"X-T: 1\r\n", b"Content-Length: 9\r\n", b"bad\r\n"]))
    if b"Content-Length" in out.rsplit(b"0\r\n", 1)[-1]:
        tags.add("framing_trailer")
    out += b"\r\n" + draw(st.sampled_from([b"", b"HTTP/1.1 200 OK\r\n"]))
    return out


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(responses(), st.lists(st.integers(0, 400), max_size=4))
def test_responses_agree_with_h11(wire_impl: str, case: tuple[bytes, bytes, set[str]], cuts: list[int]) -> None:
    method, raw, tags = case
    pieces = _pieces(raw, cuts)
    compare(fast_response(method, pieces), h11_response(method, pieces), tags, raw)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=120), st.sampled_from([b"GET", b"HEAD"]))
def test_any_bytes_the_fast_parser_accepts_h11_reads_the_same(wire_impl: str, tail: bytes, method: bytes) -> None:
    for raw in (tail, b"HTTP/1.1 200 OK\r\n" + tail, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + tail):
        fast = fast_response(method, _pieces(raw, []))
        if fast[0] == "ok":
            assert h11_response(method, _pieces(raw, [])) == fast


# Backend-side smuggling and framing vectors, each with the stricter rule it
# hits ("" where both parsers must agree).
CORPUS = [
    ("", b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 200 OK\r\n\r\n"),
    ("", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
    ("", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
    ("", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, identity\r\n\r\n"),
    ("", b"HTTP/1.1 200 OK\r\nTransfer-Encoding : chunked\r\n\r\n"),
    ("", b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"),
    ("", b"HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\nabc"),
    ("", b"HTTP/1.1 200 OK\r\nContent-Length: 0x3\r\n\r\nabc"),
    ("", b"HTTP/1.1 200 OK\r\nContent-Length: 3 3\r\n\r\nabc"),
    ("", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-3\r\nabc\r\n0\r\n\r\n"),
    ("", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n"),
    ("", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n"),
    ("", b"HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n"),
    ("", b"HTTP/1.1 200 OK\r\nX\x00: 1\r\n\r\n"),
    ("", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab"),  # closed short of the length
    ("", b"HTTP/1.1 200 OK\r\n\r\nuntil the close"),
    ("", b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nab"),
    ("", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n"),
    ("", b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"),
    ("both", b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
    ("length_digits", b"HTTP/1.1 200 OK\r\nContent-Length: 0000000000000000003\r\n\r\nabc"),
    ("", b"HTTP/1.1 200 OK\r\nContent-Length: 0000000000000000000003\r\n\r\nabc"),
    # Found by tests/fuzz/wire_atheris.py: the fast parser passed "00" on as
    # "0" where h11 keeps it.
    ("", b"HTTP/1.1 200 OK\r\nContent-Length: 00\r\n\r\n"),
    ("", b"HTTP/1.1 200 OK\r\nContent-Length: 005, 005\r\n\r\nabcde"),
    ("chunk_line", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"0" * 17 + b"3\r\nabc\r\n0\r\n\r\n"),
    ("", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;a\nb\r\nabc\r\n0\r\n\r\n"),
    ("chunk_line", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;a\x01b\r\nabc\r\n0\r\n\r\n"),
    ("chunk_line", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;a\rb\r\nabc\r\n0\r\n\r\n"),
    ("framing_trailer", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nContent-Length: 5\r\n\r\n"),
    ("bare_lf", b"HTTP/1.1 200 OK\nContent-Length: 1\n\nx"),
    ("bare_lf", b"HTTP/1.1 200 OK\r\nContent-Length: 1\n\r\nx"),
    ("obs_fold", b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n"),
    ("obs_fold", b"HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n"),
    ("control", b"HTTP/1.1 200 OK\r\nX: a\x01b\r\n\r\n"),
    ("version", b"HTTP/1.2 200 OK\r\nContent-Length: 0\r\n\r\n"),
]


@pytest.mark.parametrize("split", [False, True], ids=["whole", "bytewise"])
@pytest.mark.parametrize(("rule", "raw"), [pytest.param(r, raw, id=f"{i}_{r or 'agree'}") for i, (r, raw) in
                                            enumerate(CORPUS)])
def test_response_corpus(wire_impl: str, rule: str, raw: bytes, split: bool) -> None:
    pieces = [raw[i : i + 1] for i in range(len(raw))] if split else [raw]
    fast, reference = fast_response(b"GET", pieces), h11_response(b"GET", pieces)
    if rule:  # a stricter rule: the fast parser refuses what h11 reads
        assert fast[0] == "error" and reference[0] == "ok", (fast, reference)
    else:
        assert fast == reference or (fast[0] == reference[0] == "error"), (fast, reference)


# --- request bodies -----------------------------------------------------------

LIMITS = Limits()


def fast_request(raw: bytes, pieces_after_head: int) -> Any:
    end = find_head(raw, LIMITS)
    assert end is not None
    head = check_head(raw[:end], LIMITS)
    rest = raw[end:]
    cut = min(pieces_after_head, len(rest))
    conn, request = FastConnection.for_request(head, rest[:cut], max_head=MAX_HEAD)
    events: list[Any] = [("request", request.method)]
    try:
        for piece in (rest[cut:], b""):
            conn.receive_data(piece)
            while True:
                event = conn.next_event()
                if event is ev.NEED_DATA:
                    break
                if type(event) is ev.Data:
                    events.append(("data", event.data))
                else:
                    events.append(("end",))
                    return ("ok", _normal(events))
    except ev.RemoteProtocolError as error:
        return ("error", str(error))
    return ("ok", _normal(events))


def h11_request(raw: bytes) -> Any:
    conn = h11.Connection(h11.SERVER)
    events: list[Any] = []
    try:
        for piece in (raw, b""):
            conn.receive_data(piece)
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA or event is h11.PAUSED:
                    break
                if type(event) is h11.Request:
                    events.append(("request", event.method))
                elif type(event) is h11.Data:
                    events.append(("data", event.data))
                elif type(event) is h11.EndOfMessage:
                    events.append(("end",))
                    return ("ok", _normal(events))
                else:
                    return ("ok", _normal(events))
    except h11.RemoteProtocolError as error:
        return ("error", str(error))
    return ("ok", _normal(events))


@st.composite
def request_bodies(draw: Any) -> tuple[bytes, set[str]]:
    tags: set[str] = set()
    data = draw(st.binary(max_size=30))
    if draw(st.booleans()):
        return b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(data) + data + draw(
            st.sampled_from([b"", b"GET / HTTP/1.1\r\n"])), tags
    return b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + draw(chunked_bodies(data, tags)), tags


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(request_bodies(), st.integers(0, 60))
def test_request_bodies_agree_with_h11(wire_impl: str, case: tuple[bytes, set[str]], cut: int) -> None:
    raw, tags = case
    compare(fast_request(raw, cut), h11_request(raw), tags, raw)
