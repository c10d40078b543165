# An HTTP/2 request's header list as the checked HTTP/1.1 head, and a
# response's fields as HTTP/2 carries them (protocol/_h2_head.py; RFC 9113
# section 8), without sockets.

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy._config import Limits
from proxy._errors import ClientProtocolError
from proxy.protocol._h2_head import H2Malformed, request_head, response_fields
from proxy.protocol._head import check_head

Fields = list[tuple[bytes, bytes]]
GET: Fields = [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"app.test"), (b":path", b"/a?b=1")]


def head_of(fields: Fields, limits: Limits | None = None) -> tuple[bytes, bytes, list[tuple[bytes, bytes]]]:
    head = request_head(fields, limits or Limits())
    assert head.version == b"1.1"
    return head.method, head.target, head.headers


def test_a_get_becomes_an_http11_head_with_authority_as_host_first() -> None:
    assert head_of(GET + [(b"accept", b"*/*"), (b"user-agent", b"curl/8")]) == (
        b"GET", b"/a?b=1", [(b"host", b"app.test"), (b"accept", b"*/*"), (b"user-agent", b"curl/8")])


@pytest.mark.parametrize(("hosts", "expected"), [
    pytest.param([(b"host", b"app.test")], [(b"host", b"app.test")], id="host_equal_to_authority"),
    pytest.param([], [(b"host", b"app.test")], id="authority_alone"),
])
def test_host_is_the_authority(hosts: Fields, expected: Fields) -> None:
    assert head_of(GET + hosts)[2] == expected


def test_a_host_field_serves_when_there_is_no_authority() -> None:
    fields = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"), (b"host", b"app.test")]
    assert head_of(fields)[2] == [(b"host", b"app.test")]


def test_cookies_are_joined_where_the_first_was() -> None:
    fields = GET + [(b"a", b"1"), (b"cookie", b"x=1"), (b"b", b"2"), (b"cookie", b"y=2")]
    assert head_of(fields)[2] == [(b"host", b"app.test"), (b"a", b"1"), (b"cookie", b"x=1; y=2"), (b"b", b"2")]


def test_te_trailers_is_accepted_and_not_forwarded() -> None:
    assert head_of(GET + [(b"te", b"trailers")])[2] == [(b"host", b"app.test")]


def test_content_length_goes_on_as_sent() -> None:
    fields = [(b":method", b"POST")] + GET[1:] + [(b"content-length", b"3")]
    assert head_of(fields) == (b"POST", b"/a?b=1", [(b"host", b"app.test"), (b"content-length", b"3")])


def _without(name: bytes) -> Fields:
    return [(n, v) for n, v in GET if n != name]


@pytest.mark.parametrize("fields", [
    pytest.param(GET + [(b"Accept", b"x")], id="uppercase_name"),
    pytest.param(GET + [(b"bad name", b"x")], id="name_not_a_token"),
    pytest.param([GET[0], (b"accept", b"x")] + GET[1:], id="pseudo_after_regular"),
    pytest.param([(b"te", b"trailers")] + GET, id="pseudo_after_te"),
    pytest.param(GET + [(b":status", b"200")], id="response_pseudo_in_a_request"),
    pytest.param(GET[:1] + [(b":protocol", b"websocket")] + GET[1:], id="unknown_pseudo"),
    pytest.param(GET + [(b":path", b"/other")], id="path_twice"),
    pytest.param(_without(b":method"), id="no_method"),
    pytest.param(_without(b":scheme"), id="no_scheme"),
    pytest.param(_without(b":path"), id="no_path"),
    pytest.param(_without(b":path") + [(b":path", b"")], id="empty_path"),
    pytest.param(_without(b":path") + [(b":path", b"http://app.test/a")], id="absolute_path"),
    pytest.param(_without(b":authority") + [(b":path", b"/")][:0], id="no_authority_no_host"),
    pytest.param(GET + [(b"host", b"other.test")], id="host_differs_from_authority"),
    pytest.param(GET + [(b"connection", b"close")], id="connection"),
    pytest.param(GET + [(b"keep-alive", b"5")], id="keep_alive"),
    pytest.param(GET + [(b"proxy-connection", b"close")], id="proxy_connection"),
    pytest.param(GET + [(b"transfer-encoding", b"chunked")], id="transfer_encoding"),
    pytest.param(GET + [(b"upgrade", b"websocket")], id="upgrade"),
    pytest.param(GET + [(b"te", b"gzip")], id="te_not_trailers"),
    pytest.param(GET + [(b"x", b"a\r\nhost: evil.test")], id="crlf_in_a_value"),
    pytest.param(GET + [(b"x", b"1\nTransfer-Encoding: chunked")], id="lf_in_a_value"),
    pytest.param(GET + [(b"x", b"a\x00b")], id="nul_in_a_value"),
    pytest.param(GET + [(b"x\r\ny", b"1")], id="crlf_in_a_name"),
    pytest.param(GET + [(b"x", b" padded")], id="leading_space"),
    pytest.param(GET + [(b"x", b"padded\t")], id="trailing_tab"),
])
def test_a_malformed_request_is_refused_as_malformed(fields: Fields) -> None:
    with pytest.raises(H2Malformed) as raised:
        request_head(fields, Limits())
    assert raised.value.status == 400


@pytest.mark.parametrize(("fields", "limits", "status"), [
    pytest.param([(b":method", b"CONNECT"), (b":authority", b"app.test:443")], Limits(), 501, id="connect"),
    pytest.param(_without(b":path") + [(b":path", b"/" + b"a" * 9000)], Limits(max_target=8192), 414, id="long_path"),
    pytest.param(GET + [(b"x-%d" % i, b"1") for i in range(101)], Limits(max_headers=100), 431, id="many_fields"),
    pytest.param(_without(b":path") + [(b":path", b"/a/../b")], Limits(), 400, id="dot_segment"),
    pytest.param(GET + [(b"content-length", b"x")], Limits(), 400, id="bad_content_length"),
    pytest.param(GET + [(b"content-length", b"1"), (b"content-length", b"2")], Limits(), 400, id="two_lengths"),
])
def test_http11s_rules_answer_the_rest(fields: Fields, limits: Limits, status: int) -> None:
    with pytest.raises(ClientProtocolError) as raised:
        request_head(fields, limits)
    assert type(raised.value) is ClientProtocolError and raised.value.status == status


def test_a_response_keeps_no_connection_specific_field() -> None:
    headers = [(b"Content-Type", b"text/plain"), (b"Connection", b"keep-alive"), (b"Keep-Alive", b"timeout=5"),
               (b"Transfer-Encoding", b"chunked"), (b"Upgrade", b"h2c"), (b"Proxy-Connection", b"x"),
               (b"TE", b"trailers"), (b"Set-Cookie", b"a=1"), (b"Set-Cookie", b"b=2")]
    assert response_fields(404, headers) == [(b":status", b"404"), (b"content-type", b"text/plain"),
                                              (b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")]


_NAMES = st.from_regex(rb"[a-z][a-z0-9\-]{0,15}", fullmatch=True).filter(
    lambda n: n not in (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade", b"te",
                        b"host", b"content-length", b"cookie"))
_VALUES = st.from_regex(rb"([!-~]([ !-~]{0,30}[!-~])?)?", fullmatch=True)


@given(st.lists(st.tuples(_NAMES, _VALUES), max_size=20))
@settings(max_examples=200)
def test_any_well_formed_list_is_forwarded_field_for_field(extra: Fields) -> None:
    head = request_head(GET + extra, Limits())
    assert head.headers == [(b"host", b"app.test")] + extra
    # and the head it stands for reads back the same through the HTTP/1.1 checks
    assert check_head(head.encode(), Limits()).headers == head.headers
