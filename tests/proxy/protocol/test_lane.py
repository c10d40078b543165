# The native engine's fast lane (proxy/protocol/_lane.py and _lane_c.pyx):
# - the twin makes the bytes the general path makes (two fast connections
#   and the rewrite rules, as the engine drives them) for every head of the
#   lane's kind, and declines every other head;
# - the compiled lane gives the twin's result for every input: hand-written
#   cases first, then generated heads (status lines, names and values near
#   every rule of parse_response_head, the framing and Connection fields).

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.protocol import _events as ev
from proxy.protocol import _lane
from proxy.protocol._fastconn import FastConnection
from proxy.protocol._head import RequestHead
from proxy._config import Limits
from proxy.protocol._rewrite import request_headers, response_headers

EXAMPLES = int(os.environ.get("FASTROUTE_FUZZ_EXAMPLES", "400"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(params=["py", "c"])
def lane(request: pytest.FixtureRequest) -> Any:
    """Each implementation of the lane: the twin and the compiled one."""
    if request.param == "py":
        return _lane
    from ...conftest import _compiled

    return _compiled("proxy.protocol._lane_c", "the compiled fast lane")


def general_response(head: bytes, body: bytes) -> tuple[int, bytes, bool] | None:
    """What the engine's general path writes to an HTTP/1.1 keep-alive GET client: (status, bytes, backend kept)."""
    upstream = FastConnection.client(max_head=64 * 1024)
    upstream.send(ev.Request(b"GET", b"/", [(b"host", b"x")]))
    upstream.send(ev.END_OF_MESSAGE)
    client, _ = FastConnection.for_request(RequestHead(b"GET", b"/", b"1.1", [(b"host", b"x")], 0), b"",
                                           max_head=64 * 1024)
    client.next_event()
    upstream.receive_data(head + body)
    out = b""
    try:
        event = upstream.next_event()
    except ev.RemoteProtocolError:
        return None
    assert type(event) is ev.Response, event
    out += client.send(ev.Response(event.status_code, response_headers(event.headers), event.reason))
    while True:
        event = upstream.next_event()
        if type(event) is ev.EndOfMessage:
            break
        assert type(event) is ev.Data, event
        out += client.send(event)
    return event_status(head), out, upstream.their_state is ev.DONE


def event_status(head: bytes) -> int:
    return int(head[9:12])


SIMPLE = b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\n"


@pytest.mark.parametrize("head", [
    pytest.param(SIMPLE, id="nginx"),
    pytest.param(b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\nConnection: close\r\n\r\n", id="close"),
    pytest.param(b"HTTP/1.1 200\r\ncontent-length: 3\r\n\r\n", id="no_reason"),
    pytest.param(b"HTTP/1.1 599 X\r\nCONTENT-LENGTH:3   \r\nX-A:\t b \t\r\n\r\n", id="odd_spacing"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: x-a, , Keep-Alive\r\nX-A: 1\r\n"
                 b"Keep-Alive: t=5\r\nTE: x\r\nX-B: 2\r\n\r\n", id="named_by_connection"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: content-length, host\r\nHost: h\r\n\r\n",
                 id="never_by_connection"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 003\r\n\r\n", id="leading_zeros"),
])
def test_the_twin_is_the_general_path(head: bytes) -> None:
    expected = general_response(head, b"abc")
    result = _lane.response_head(head)
    assert result is not None and expected is not None
    status, length, keep, client_head = result
    assert (status, client_head + b"abc", keep) == expected
    assert length == 3


@pytest.mark.parametrize("head", [
    pytest.param(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\n", id="http10"),
    pytest.param(b"HTTP/1.1 100 Continue\r\n\r\n", id="interim"),
    pytest.param(b"HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n", id="204"),
    pytest.param(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 3\r\n\r\n", id="304"),
    pytest.param(b"HTTP/1.1 600 X\r\nContent-Length: 3\r\n\r\n", id="600"),
    pytest.param(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", id="chunked"),
    pytest.param(b"HTTP/1.1 200 OK\r\n\r\n", id="until_close"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", id="two_lengths"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\n", id="length_list"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 1234567890123456789\r\n\r\n", id="length_19_digits"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\n", id="length_sign"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 3\nX: y\r\n\r\n", id="bare_lf"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX: a\rb\r\n\r\n", id="bare_cr"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n X: y\r\n\r\n", id="obs_fold"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX : y\r\n\r\n", id="space_before_colon"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX: a\x01b\r\n\r\n", id="control_in_value"),
    pytest.param(b"HTTP/1.1 200 O\x7fK\r\nContent-Length: 3\r\n\r\n", id="control_in_reason"),
    pytest.param(b"HTTP/1.1 020 OK\r\nContent-Length: 3\r\n\r\n", id="status_leading_zero"),
    pytest.param(b"HTTP/1.1 200OK\r\nContent-Length: 3\r\n\r\n", id="no_space_after_status"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n", id="unfinished"),
    pytest.param(b"\r\n\r\n", id="empty"),
])
def test_other_heads_are_declined(lane: Any, head: bytes) -> None:
    assert lane.response_head(head) is None


@pytest.mark.parametrize("head", [pytest.param(SIMPLE, id="nginx"), pytest.param(
    b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(300)) + b"Content-Length: 3\r\n\r\n",
    id="300_fields")])
def test_compiled_lane_reads_heads_as_the_twin(lane: Any, head: bytes) -> None:
    assert lane.response_head(head) == _lane.response_head(head)


# --- generated heads ---------------------------------------------------------

_NAMES = st.sampled_from([b"Content-Length", b"content-length", b"Transfer-Encoding", b"Connection", b"connection",
                          b"Keep-Alive", b"TE", b"Trailer", b"Upgrade", b"Proxy-Connection", b"HTTP2-Settings",
                          b"Host", b"X-A", b"x-b", b"Server", b"X_C", b"", b"X A", b"X:"])
_VALUES = st.one_of(
    st.sampled_from([b"3", b"003", b"3, 3", b" 3 ", b"close", b"Keep-Alive", b"x-a, close", b"X-A", b"host",
                     b"content-length", b"chunked", b"", b"\t", b"a\x01b", b"a\x7f", b"\xff\xfe", b"a\tb"]),
    st.binary(max_size=12),
)
_STATUS_LINES = st.one_of(
    st.sampled_from([b"HTTP/1.1 200 OK", b"HTTP/1.1 200", b"HTTP/1.1 200 ", b"HTTP/1.1 599 x", b"HTTP/1.1 600 x",
                     b"HTTP/1.1 204 No", b"HTTP/1.1 101 S", b"HTTP/1.0 200 OK", b"HTTP/1.1 0200 OK",
                     b"HTTP/1.1 2x0 OK", b"HTTP/1.1 200\tOK", b"HTTP/1.1 200 O\tK", b"HTTP/2.0 200 OK", b"HTTP/1.1"]),
    st.binary(max_size=20).map(lambda tail: b"HTTP/1.1 " + tail),
)


@st.composite
def heads(draw: st.DrawFn) -> bytes:
    lines = [draw(_STATUS_LINES)]
    for _ in range(draw(st.integers(0, 8))):
        lines.append(draw(_NAMES) + b":" + draw(st.sampled_from([b"", b" ", b"\t", b"  "])) + draw(_VALUES))
    if draw(st.booleans()):
        lines.insert(draw(st.integers(1, len(lines))), b"Content-Length: 3")
    return b"\r\n".join(lines) + b"\r\n\r\n"


@SETTINGS
@given(head=heads())
def test_generated_heads_the_compiled_lane_reads_as_the_twin(lane: Any, head: bytes) -> None:
    assert lane.response_head(head) == _lane.response_head(head)


@SETTINGS
@given(head=heads())
def test_generated_heads_the_twin_takes_the_general_path_writes_the_same(head: bytes) -> None:
    result = _lane.response_head(head)
    if result is None:
        return
    status, length, keep, client_head = result
    assert general_response(head, b"x" * length) == (status, client_head + b"x" * length, keep)


# --- the request head ----------------------------------------------------------

def general_request(method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], **rewrite: Any) -> bytes:
    """What the engine's general path writes upstream for an untrusted client's bodyless request."""
    upstream = FastConnection.client(max_head=64 * 1024)
    prefix = rewrite["prefix"]
    out = upstream.send(ev.Request(method, target, request_headers(
        headers, client_ip=rewrite["client_ip"].decode(), trusted=False, upstream_host=rewrite["upstream_host"],
        prefix=None if prefix is None else prefix.decode(), allow_underscores=rewrite["allow_underscores"],
        scheme=b"https" if rewrite.get("secure") else b"http", received=rewrite.get("received", b"1.1"))))
    return out + upstream.send(ev.END_OF_MESSAGE)


_REQUEST_NAMES = st.sampled_from([b"host", b"connection", b"keep-alive", b"te", b"upgrade", b"x-forwarded-for",
                                  b"x-forwarded-proto", b"x-forwarded-host", b"x-forwarded-prefix", b"forwarded",
                                  b"x_forwarded_for", b"x_custom", b"via", b"user-agent", b"accept", b"x-a",
                                  b"content-length", b"proxy-connection", b"http2-settings", b"trailer"])
_REQUEST_VALUES = st.one_of(
    st.sampled_from([b"", b"a", b"close", b"keep-alive, x-a", b"X-A , Accept", b"host, content-length",
                     b"1.0 other", b"10.0.0.1", b"upgrade", b"x_custom"]),
    st.binary(max_size=10).map(lambda v: bytes(c for c in v if c >= 0x20 and c != 0x7F).strip(b" \t")),
)


def _bodyless(header: tuple[bytes, bytes]) -> tuple[bytes, bytes]:
    return (header[0], b"0") if header[0] == b"content-length" else header  # the lane's requests have no body


@SETTINGS
@given(headers=st.lists(st.tuples(_REQUEST_NAMES, _REQUEST_VALUES).map(_bodyless), max_size=10),
       prefix=st.sampled_from([None, b"/", b"/steve/foo", "/caf\u00e9".encode()]),
       allow_underscores=st.booleans(), method=st.sampled_from([b"GET", b"DELETE"]), secure=st.booleans(),
       received=st.sampled_from([b"1.1", b"2"]))
def test_request_heads_are_the_general_paths(lane: Any, headers: list[tuple[bytes, bytes]], prefix: bytes | None,
                                             allow_underscores: bool, method: bytes, secure: bool,
                                             received: bytes) -> None:
    rewrite = {"client_ip": b"10.1.2.3", "upstream_host": b"172.17.0.5:8000", "prefix": prefix,
               "allow_underscores": allow_underscores, "secure": secure, "received": received}
    assert lane.request_head(method, b"/x?y", headers, **rewrite) == general_request(method, b"/x?y", headers,
                                                                                     **rewrite)


# --- a plain request, read once -------------------------------------------------

_LIMITS = Limits(max_target=100, max_header_bytes=300, max_headers=10)


def _head(*lines: bytes) -> bytes:
    return b"\r\n".join(lines) + b"\r\n\r\n"


@pytest.mark.parametrize(("head", "target"), [
    pytest.param(_head(b"GET /a HTTP/1.1", b"Host: x"), b"/a", id="plain"),
    pytest.param(_head(b"GET / HTTP/1.1", b"Host: x:8080", b"Connection: Keep-Alive", b"User-Agent: c/1",
                       b"Accept: */*"), b"/", id="browserish"),
    pytest.param(_head(b"DELETE /a/b/?q=%zz/..//x HTTP/1.1", b"host:x"), b"/a/b/?q=%zz/..//x", id="query_as_is"),
    pytest.param(_head(b"GET /a/.b/..c/b.. HTTP/1.1", b"Host: x"), b"/a/.b/..c/b..", id="dots_in_names"),
    pytest.param(_head(b"GET /a HTTP/1.1", b"Host: x", b"X-A: a\tb "), b"/a", id="tab_in_value"),
    pytest.param(_head(b"GET /a HTTP/1.1", b"Host: x:"), b"/a", id="empty_port"),
    # not plain: check_head refuses it, or it needs normalising, or it asks for more than a forward
    pytest.param(_head(b"GET /a HTTP/1.1"), None, id="no_host"),
    pytest.param(_head(b"GET /a HTTP/1.1", b"Host: x", b"host: x"), None, id="two_hosts"),
    pytest.param(_head(b"GET /a HTTP/1.1", b"Host: "), None, id="empty_host"),
    pytest.param(_head(b"GET /a HTTP/1.1", b"Host: [::1]"), None, id="ip_literal"),
    pytest.param(_head(b"GET /a HTTP/1.1", b"Host: x:8a"), None, id="bad_port"),
    pytest.param(_head(b"GET /a HTTP/1.0", b"Host: x"), None, id="http10"),
    pytest.param(_head(b"HEAD /a HTTP/1.1", b"Host: x"), None, id="head"),
    pytest.param(_head(b"OPTIONS * HTTP/1.1", b"Host: x"), None, id="asterisk"),
    pytest.param(_head(b"GET http://x/a HTTP/1.1", b"Host: x"), None, id="absolute_form"),
    pytest.param(_head(b"GET /%61 HTTP/1.1", b"Host: x"), None, id="percent"),
    pytest.param(_head(b"GET //a HTTP/1.1", b"Host: x"), None, id="double_slash"),
    pytest.param(_head(b"GET /a/ HTTP/1.1", b"Host: x"), b"/a/", id="trailing_slash"),
    pytest.param(_head(b"GET /a// HTTP/1.1", b"Host: x"), None, id="trailing_double_slash"),
    pytest.param(_head(b"GET /a/./b HTTP/1.1", b"Host: x"), None, id="dot"),
    pytest.param(_head(b"GET /a/.. HTTP/1.1", b"Host: x"), None, id="dot_dot_last"),
    pytest.param(_head(b"GET /a?b#c HTTP/1.1", b"Host: x"), None, id="fragment"),
    pytest.param(_head(b"GET /a\\b HTTP/1.1", b"Host: x"), None, id="backslash"),
    pytest.param(_head(b"GET /a HTTP/1.1", b"Host: x", b"Connection: close"), None, id="close"),
    pytest.param(_head(b"GET /a HTTP/1.1", b"Host: x", b"Connection: keep-alive, x-a"), None, id="connection_list"),
    pytest.param(_head(b"GET /a HTTP/1.1", b"Host: x", b"Keep-Alive: 5"), None, id="keep_alive_field"),
    pytest.param(_head(b"GET /a HTTP/1.1", b"Host: x", b"Content-Length: 0"), None, id="content_length"),
    pytest.param(_head(b"GET /a HTTP/1.1", b"Host: x", b"Expect: 100-continue"), None, id="expect"),
    pytest.param(_head(b"GET /a HTTP/1.1", b"Host: x", b"Upgrade: websocket"), None, id="upgrade"),
    pytest.param(_head(b"GET /a HTTP/1.1", b"Host: x", b"X-Forwarded-For: 1.2.3.4"), None, id="forwarded_for"),
    pytest.param(_head(b"GET /a HTTP/1.1", b"Host: x", b"Via: 1.1 other"), None, id="via"),
    pytest.param(_head(b"GET /a HTTP/1.1", b"Host: x", b"X_A: 1"), None, id="underscore"),
    pytest.param(_head(b"GET /a HTTP/1.1", b"Host: x", b" X-A: 1"), None, id="obs_fold"),
    pytest.param(_head(b"GET /a HTTP/1.1", b"Host: x", b"X-A: a\x00b"), None, id="nul"),
    pytest.param(b"GET /a HTTP/1.1\r\nHost: x\rX: y\r\n\r\n", None, id="bare_cr"),
    pytest.param(b"GET /a HTTP/1.1\r\nHost: x\nX: y\r\n\r\n", None, id="bare_lf"),
    pytest.param(b"GET /a HTTP/1.1\r\nHost: x\r\r\n\r\n", None, id="cr_before_the_end"),
    pytest.param(_head(b"GET /" + b"a" * 100 + b" HTTP/1.1", b"Host: x"), None, id="long_target"),
    pytest.param(_head(b"GET /a HTTP/1.1", b"Host: x", *[b"X-%d: 1" % i for i in range(10)]), None,
                 id="too_many_fields"),
    pytest.param(_head(b"GET /a HTTP/1.1", b"Host: x", b"X: " + b"v" * 300), None, id="field_bytes"),
    pytest.param(_head(b"GET  /a HTTP/1.1", b"Host: x"), None, id="double_space"),
    pytest.param(_head(b"GET /a HTTP/1.1 ", b"Host: x"), None, id="space_after_version"),
    pytest.param(b"GET /a HTTP/1.1\r\n\r\n", None, id="no_fields"),
    pytest.param(b"GET /a HTTP/1.1\r\nHost: x\r\n", None, id="not_a_whole_head"),
])
def test_plain_requests(lane: Any, head: bytes, target: bytes | None) -> None:
    assert lane.plain_request(head, _LIMITS) == target


def test_plain_requests_have_a_bounded_number_of_fields(lane: Any) -> None:
    fields = [b"X-%d: 1" % i for i in range(_lane.PLAIN_MAX_FIELDS)]
    limits = Limits(max_headers=1000, max_header_bytes=100_000)
    assert lane.plain_request(_head(b"GET /a HTTP/1.1", b"Host: x", *fields[1:]), limits) == b"/a"
    assert lane.plain_request(_head(b"GET /a HTTP/1.1", b"Host: x", *fields), limits) is None


# Generated heads: a plain head, or one a rule or two away from it (each choice is mostly the plain one).
_PLAIN_METHODS = st.sampled_from([b"GET"] * 30 + [b"POST", b"HEAD", b"CONNECT", b"OPTIONS", b"get", b"G(T"])
_PLAIN_TARGETS = st.sampled_from(
    [b"/", b"/a", b"/a/b?c=d", b"/a:b@c!$&'()*+,;=~", b"/a/.b", b"/a..", b"/" + b"a" * 99] * 8
    + [b"//a", b"/a//b", b"/./a", b"/a/..", b"/%61", b"/a#f", b"/a?b#c", b"/a?%zz", b"*", b"http://x/a", b"/a\\b",
       b"/a?b/c?d", b"/caf\xc3\xa9", b"/" + b"a" * 100, b"/a b", b"/a%", b"", b"a"])
_PLAIN_VERSIONS = st.sampled_from([b"HTTP/1.1"] * 40 + [b"HTTP/1.0", b"HTTP/1.2", b"http/1.1", b"HTTP/1.1 "])
_PLAIN_NAMES = st.sampled_from(
    [b"User-Agent", b"Accept", b"X-A", b"X-Via", b"Accept-Encoding", b"connection", b"Connection"] * 12
    + [b"Host", b"x_a", b"Via", b"Forwarded", b"X-Forwarded-For", b"x-forwarded-prefix", b"Content-Length",
       b"Transfer-Encoding", b"Upgrade", b"Expect", b"TE", b"Keep-Alive", b"Trailer", b"Proxy-Connection",
       b"HTTP2-Settings", b"X(A)", b" X-A", b""])
_PLAIN_VALUES = st.sampled_from(
    [b"x", b"a:80", b"keep-alive", b"Keep-Alive", b"a\tb", b" v ", b"a.b-c~%", b"0"] * 8
    + [b"[::1]", b"", b"close", b"keep-alive, close", b"a\x00b", b"v" * 150, b"x:8a", b"x:", b"a b", b"\x7f"])
_PLAIN_SEPARATORS = st.sampled_from([b": "] * 20 + [b":", b":\t", b" :", b":  "])
_PLAIN_ENDS = st.sampled_from([b"\r\n"] * 80 + [b"\n", b"\r"])


@st.composite
def plain_heads(draw: st.DrawFn) -> bytes:
    out = draw(_PLAIN_METHODS) + draw(st.sampled_from([b" "] * 30 + [b"  "])) + draw(_PLAIN_TARGETS) + b" "
    out += draw(_PLAIN_VERSIONS)
    fields = [(draw(st.sampled_from([b"Host"] * 20 + [b"host", b"HOST"])), draw(st.sampled_from(
        [b"x", b"example.com:8080", b"a.b-c~%"] * 10 + [b"", b"[::1]", b"x:8a", b"x:", b"a b"])))]
    for _ in range(draw(st.integers(0, 8))):
        fields.insert(draw(st.integers(0, len(fields))), (draw(_PLAIN_NAMES), draw(_PLAIN_VALUES)))
    for name, value in fields:
        out += draw(_PLAIN_ENDS) + name + draw(_PLAIN_SEPARATORS) + value
    return out + b"\r\n\r\n"


_PLAIN_HEADS = st.one_of(plain_heads(), st.binary(max_size=200).map(lambda data: data + b"\r\n\r\n"))


@SETTINGS
@given(head=_PLAIN_HEADS)
def test_generated_requests_the_compiled_scan_reads_as_the_twin(lane: Any, head: bytes) -> None:
    target = _lane.plain_request(head, _LIMITS)
    assert lane.plain_request(head, _LIMITS) == target
    if target is None:
        return
    for stripped, prefix, secure in [(target, None, False), (b"/x", b"/steve/foo", False), (target, None, True)]:
        rewrite = {"limits": _LIMITS, "client_ip": b"10.1.2.3", "prefix": prefix, "secure": secure}
        assert lane.plain_upstream_head(head, stripped, **rewrite) == _lane.plain_upstream_head(head, stripped, **rewrite)


@SETTINGS
@given(head=_PLAIN_HEADS)
def test_a_plain_request_is_what_the_general_path_checks_and_writes(head: bytes) -> None:
    from proxy.protocol._head import check_head

    target = _lane.plain_request(head, _LIMITS)
    if target is None:
        return
    checked = check_head(head, _LIMITS)
    assert checked.target == target
    # What the cycle forwards whole (its _plain): HTTP/1.1, not HEAD, not *, no body, upgrade or Expect,
    # Connection only keep-alive.
    assert checked.version == b"1.1" and checked.method != b"HEAD" and checked.target != b"*"
    for name, value in checked.headers:
        assert name not in (b"content-length", b"transfer-encoding", b"upgrade", b"expect")
        assert name != b"connection" or value.lower() == b"keep-alive"
    for secure in (False, True):
        rewrite = {"client_ip": b"10.1.2.3", "upstream_host": b"172.17.0.5:8000", "prefix": b"/steve",
                   "allow_underscores": False, "secure": secure}
        assert _lane.plain_upstream_head(head, b"/x", limits=_LIMITS, client_ip=b"10.1.2.3", prefix=b"/steve",
                                         secure=secure) == general_request(checked.method, b"/x", checked.headers,
                                                                          **rewrite)
