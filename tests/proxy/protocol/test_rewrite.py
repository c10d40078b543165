from __future__ import annotations

import pytest

from proxy.protocol._rewrite import VIA, is_upgrade_request, request_headers, response_headers, strip_target


def rewrite(headers, **kw):  # type: ignore[no-untyped-def]
    kw.setdefault("client_ip", "192.0.2.1")
    kw.setdefault("trusted", False)
    kw.setdefault("upstream_host", b"10.0.0.5:8000")
    return request_headers([(n.encode(), v.encode()) for n, v in headers], **kw)


def names(headers):  # type: ignore[no-untyped-def]
    return [n for n, _ in headers]


@pytest.mark.parametrize(
    ("target", "prefix", "expected"),
    [
        pytest.param(b"/steve/foo/x", "/steve/foo", b"/x", id="below"),
        pytest.param(b"/steve/foo", "/steve/foo", b"/", id="exact"),
        pytest.param(b"/steve/foo/", "/steve/foo", b"/", id="trailing_slash"),
        pytest.param(b"/steve/foo?q=1", "/steve/foo", b"/?q=1", id="query"),
        pytest.param(b"/steve/foo/x?q=/a", "/steve/foo", b"/x?q=/a", id="deeper_query"),
        pytest.param(b"/anything", "/", b"/anything", id="root_strips_nothing"),
        pytest.param("/caf\u00e9/x".encode(), "/caf\u00e9", b"/x", id="utf8_prefix"),
    ],
)
def test_strip_target(target: bytes, prefix: str, expected: bytes) -> None:
    assert strip_target(target, prefix) == expected


def test_hop_by_hop_and_connection_named_fields_are_dropped() -> None:
    out = rewrite([
        ("host", "a"), ("connection", "keep-alive, X-Secret"), ("x-secret", "s"), ("keep-alive", "1"),
        ("proxy-connection", "x"), ("te", "trailers"), ("trailer", "x"), ("transfer-encoding", "chunked"),
        ("upgrade", "h2c"), ("x-normal", "n"),
    ])
    assert set(names(out)) == {b"host", b"x-normal", b"x-forwarded-for", b"x-forwarded-proto",
                               b"x-forwarded-host", b"via"}


def test_upgrade_is_kept_when_relaying_one() -> None:
    headers = [(b"host", b"a"), (b"connection", b"Upgrade"), (b"upgrade", b"websocket")]
    assert is_upgrade_request(headers)
    out = request_headers(headers, client_ip="1.2.3.4", trusted=False, upstream_host=b"x", upgrade=True)
    assert (b"connection", b"upgrade") in out and (b"upgrade", b"websocket") in out


def test_upgrade_needs_connection_upgrade() -> None:
    assert not is_upgrade_request([(b"upgrade", b"websocket")])
    assert not is_upgrade_request([(b"connection", b"upgrade")])


def test_untrusted_forwarded_fields_are_replaced() -> None:
    out = dict(rewrite([("host", "app.test"), ("x-forwarded-for", "6.6.6.6"), ("x-forwarded-proto", "https"),
                        ("x-forwarded-host", "evil"), ("x-forwarded-prefix", "/evil"), ("forwarded", "for=x")]))
    assert out[b"x-forwarded-for"] == b"192.0.2.1"
    assert out[b"x-forwarded-proto"] == b"http"
    assert out[b"x-forwarded-host"] == b"app.test"
    assert b"x-forwarded-prefix" not in out and b"forwarded" not in out


def test_trusted_forwarded_fields_are_appended_or_kept() -> None:
    out = rewrite([("host", "inner"), ("x-forwarded-for", "203.0.113.9, 10.1.1.1"), ("x-forwarded-for", "10.2.2.2"),
                   ("x-forwarded-proto", "https"), ("x-forwarded-host", "outer.test"), ("forwarded", "for=x")],
                  trusted=True)
    d = dict(out)
    assert d[b"x-forwarded-for"] == b"203.0.113.9, 10.1.1.1, 10.2.2.2, 192.0.2.1"
    assert d[b"x-forwarded-proto"] == b"https"
    assert d[b"x-forwarded-host"] == b"outer.test"
    assert d[b"forwarded"] == b"for=x"


@pytest.mark.parametrize(
    ("trusted", "given", "expected"),
    [(False, "/outer", b"/steve/foo"), (True, "/outer", b"/outer/steve/foo"), (True, "/outer/", b"/outer/steve/foo")],
)
def test_forwarded_prefix(trusted: bool, given: str, expected: bytes) -> None:
    out = dict(rewrite([("host", "a"), ("x-forwarded-prefix", given)], trusted=trusted, prefix="/steve/foo"))
    assert out[b"x-forwarded-prefix"] == expected


def test_via_is_appended() -> None:
    out = dict(rewrite([("host", "a"), ("via", "1.0 edge")]))
    assert out[b"via"] == b"1.0 edge, " + VIA


def test_host_passes_through_or_is_the_backend_for_http_1_0() -> None:
    assert dict(rewrite([("host", "app.test")]))[b"host"] == b"app.test"
    assert dict(rewrite([]))[b"host"] == b"10.0.0.5:8000"


def test_response_headers() -> None:
    out = response_headers([(b"connection", b"close, x-a"), (b"x-a", b"1"), (b"keep-alive", b"5"),
                            (b"transfer-encoding", b"chunked"), (b"content-type", b"text/plain")])
    assert out == [(b"content-type", b"text/plain")]


# --- hardening, round two ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("upgrade", "offered"),
    [
        pytest.param("h2c", None, id="h2c_alone"),
        pytest.param("H2C", None, id="h2c_any_case"),
        pytest.param("h2c, websocket", b"websocket", id="h2c_and_websocket"),
        pytest.param("websocket", b"websocket", id="websocket"),
    ],
)
def test_h2c_is_never_offered_upstream(upgrade: str, offered: bytes | None) -> None:
    headers = [(b"host", b"a"), (b"connection", b"Upgrade, HTTP2-Settings"), (b"upgrade", upgrade.encode()),
               (b"http2-settings", b"AAMAAABkAARAAAAAAAIAAAAA")]
    assert is_upgrade_request(headers) is (offered is not None)
    out = request_headers(headers, client_ip="1.2.3.4", trusted=False, upstream_host=b"x",
                          upgrade=is_upgrade_request(headers))
    assert [v for n, v in out if n == b"upgrade"] == ([offered] if offered else [])
    assert b"http2-settings" not in names(out)
    assert ((b"connection", b"upgrade") in out) is (offered is not None)


def test_http2_settings_is_dropped_even_when_connection_does_not_name_it() -> None:
    assert b"http2-settings" not in names(rewrite([("host", "a"), ("http2-settings", "AAMA")]))


@pytest.mark.parametrize("token", ["host", "Host", "content-length", "host, content-length, x-a"])
def test_connection_tokens_never_remove_host_or_content_length(token: str) -> None:
    out = rewrite([("host", "h"), ("connection", token), ("content-length", "5"), ("x-a", "1")])
    assert (b"host", b"h") in out and (b"content-length", b"5") in out
    assert dict(out)[b"x-forwarded-host"] == b"h"
    assert (b"x-a" in names(out)) is ("x-a" not in token)  # other named fields still go


def test_a_response_keeps_its_content_length_whatever_connection_says() -> None:
    out = response_headers([(b"content-length", b"5"), (b"connection", b"content-length, x-b"), (b"x-b", b"1")])
    assert out == [(b"content-length", b"5")]


def test_underscored_names_are_dropped_by_default() -> None:
    out = rewrite([("host", "a"), ("x_forwarded_for", "6.6.6.6"), ("x_forwarded_prefix", "/evil"),
                   ("my_header", "1"), ("my-header", "2")])
    assert names(out).count(b"my-header") == 1 and not any(b"_" in n for n in names(out))
    assert dict(out)[b"x-forwarded-for"] == b"192.0.2.1"


def test_allow_underscores_keeps_them_but_never_the_forwarded_spellings() -> None:
    out = rewrite([("host", "a"), ("x_forwarded_for", "6.6.6.6"), ("X_Forwarded_Prefix".lower(), "/evil"),
                   ("forwarded", "x"), ("x-forwarded_host", "evil"), ("my_header", "1")], allow_underscores=True)
    assert (b"my_header", b"1") in out
    assert not any(n.replace(b"_", b"-") in (b"x-forwarded-for", b"x-forwarded-prefix", b"x-forwarded-host")
                   and b"_" in n for n in names(out))
    assert dict(out)[b"x-forwarded-host"] == b"a"
