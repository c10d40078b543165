# Routes by host name (fastroute.HostTable and its twin PyHostTable): the
# key rules (normalise_host), the request host's form, the order of
# matching (exact host, then the wildcard one level up, then host-less;
# the longest prefix within each), and the compiled table against the twin
# on generated route sets and requests.

from __future__ import annotations

import os
import pickle
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastroute
from fastroute import InvalidHost, InvalidPrefix, PyHostTable, normalise_host
from fastroute._hosts import request_host


@pytest.fixture(params=["py", "c"])
def host_table(request: pytest.FixtureRequest) -> type:
    """Each host table implementation: the twin and the compiled one."""
    if request.param == "py":
        return PyHostTable
    from ..conftest import _compiled

    return _compiled("fastroute._table", "the compiled HostTable").HostTable  # type: ignore[no-any-return]


@pytest.mark.parametrize(("host", "normal"), [
    pytest.param("api.example.com", "api.example.com", id="plain"),
    pytest.param("Api.Example.COM.", "api.example.com", id="case_and_trailing_dot"),
    pytest.param("*.example.com", "*.example.com", id="wildcard"),
    pytest.param("xn--bcher-kva.example", "xn--bcher-kva.example", id="punycode"),
    pytest.param("10.0.0.5", "10.0.0.5", id="ipv4"),
    pytest.param("[::1]", "[::1]", id="ipv6"),
    pytest.param("[FE80::1]", "[fe80::1]", id="ipv6_case"),
    pytest.param("my_host", "my_host", id="underscore"),
    pytest.param("a" * 63 + ".b", "a" * 63 + ".b", id="label_63"),
])
def test_host_keys(host: str, normal: str) -> None:
    assert normalise_host(host) == normal


@pytest.mark.parametrize(("host", "reason"), [
    pytest.param("", "is empty", id="empty"),
    pytest.param(".", "is empty", id="dot"),
    pytest.param("b\u00fccher.example", "not ASCII", id="unicode"),
    pytest.param("api.example.com:8080", "port", id="port"),
    pytest.param("a.*.example.com", "'*'", id="inner_star"),
    pytest.param("*", "'*'", id="star_alone"),
    pytest.param("*example.com", "invalid label", id="star_glued"),
    pytest.param("a..b", "invalid label", id="empty_label"),
    pytest.param("-a.b", "invalid label", id="leading_hyphen"),
    pytest.param("a b", "invalid label", id="space"),
    pytest.param("a/b", "invalid label", id="slash"),
    pytest.param("a" * 64 + ".b", "invalid label", id="label_64"),
    pytest.param(".".join(["a" * 50] * 5), "longer than 253", id="too_long"),
    pytest.param("[::1", "IPv6", id="unclosed_ipv6"),
    pytest.param("[xyz]", "IPv6", id="not_ipv6"),
])
def test_invalid_host_keys(host: str, reason: str) -> None:
    with pytest.raises(InvalidHost, match="invalid route host") as caught:
        normalise_host(host)
    assert reason in caught.value.reason and caught.value.host == host


@pytest.mark.parametrize(("raw", "host"), [
    pytest.param(b"Api.Example.com", b"api.example.com", id="case"),
    pytest.param(b"api.example.com:8080", b"api.example.com", id="port"),
    pytest.param(b"api.example.com.:80", b"api.example.com", id="dot_and_port"),
    pytest.param(b"[::1]:8080", b"[::1]", id="ipv6_port"),
    pytest.param(b"[::1]", b"[::1]", id="ipv6"),
    pytest.param(b":80", None, id="port_only"),
    pytest.param(b"", None, id="empty"),
    pytest.param(None, None, id="none"),
    pytest.param("Api.example.com", b"api.example.com", id="str"),
])
def test_request_hosts(raw: bytes | str | None, host: bytes | None) -> None:
    assert request_host(raw) == host


ROUTES = {
    (None, "/"): "any",
    (None, "/shop"): "any-shop",
    ("api.example.com", "/"): "api",
    ("api.example.com", "/v1"): "api-v1",
    ("*.example.com", "/x"): "wild-x",
    ("[::1]", "/"): "v6",
}


@pytest.mark.parametrize(("host", "path", "expected"), [
    pytest.param(b"api.example.com", b"/v1/users", ("/v1", "api-v1"), id="exact_longest"),
    pytest.param(b"API.example.com.:8443", b"/other", ("/", "api"), id="exact_normalised"),
    pytest.param(b"api.example.com", b"/x", ("/", "api"), id="exact_before_wildcard"),
    pytest.param(b"api.example.com", b"/shop", ("/", "api"), id="exact_before_hostless"),
    pytest.param(b"a.example.com", b"/x/1", ("/x", "wild-x"), id="wildcard"),
    pytest.param(b"a.example.com", b"/shop", ("/shop", "any-shop"), id="wildcard_miss_then_hostless"),
    pytest.param(b"a.b.example.com", b"/x", ("/", "any"), id="wildcard_one_level_only"),
    pytest.param(b"example.com", b"/x", ("/", "any"), id="wildcard_not_the_apex"),
    pytest.param(b"other.test", b"/shop/1", ("/shop", "any-shop"), id="unknown_host"),
    pytest.param(None, b"/v1", ("/", "any"), id="no_host"),
    pytest.param(b"[::1]:80", b"/v1", ("/", "v6"), id="ipv6_literal"),
    pytest.param(b"api.example.com", b"v1", None, id="not_a_path"),
    pytest.param("api.example.com", "/v1", ("/v1", "api-v1"), id="str_arguments"),
    pytest.param(b"x" * 2000 + b".example.com", b"/x", ("/x", "wild-x"), id="very_long_host"),
])
def test_lookups(host_table: type, host: Any, path: Any, expected: Any) -> None:
    assert host_table(ROUTES).lookup(host, path) == expected


def test_without_host_routes_the_host_is_not_read(host_table: type) -> None:
    table = host_table({(None, "/a"): 1})
    assert table.lookup(12345, b"/a/b") == ("/a", 1)  # no host route: the host is never looked at
    with pytest.raises(TypeError, match="host must be"):
        host_table(ROUTES).lookup(12345, b"/a")


def test_the_table_as_a_collection(host_table: type) -> None:
    table = host_table(ROUTES)
    assert len(table) == len(ROUTES) and set(table) == set(ROUTES) and table.routes() == ROUTES
    assert ("API.Example.com.", "/v1/") in table and (None, "/shop") in table
    assert ("api.example.com", "/nope") not in table and ("bad host", "/") not in table and "x" not in table
    assert pickle.loads(pickle.dumps(table)).lookup(b"a.example.com", b"/x") == ("/x", "wild-x")
    assert type(table).__name__ in repr(table)


@pytest.mark.parametrize(("routes", "error"), [
    pytest.param({("a.example", "/"): 1, ("A.example.", "/"): 2}, InvalidPrefix, id="same_route_twice"),
    pytest.param({("a b", "/"): 1}, InvalidHost, id="bad_host"),
    pytest.param({("a.example", "x"): 1}, InvalidPrefix, id="bad_prefix"),
    pytest.param({"/": 1}, TypeError, id="not_a_pair"),
    pytest.param({(1, "/"): 1}, TypeError, id="host_not_str"),
])
def test_invalid_route_sets(host_table: type, routes: Any, error: type) -> None:
    with pytest.raises(error):
        host_table(routes)


_HOSTS = ["a.example", "b.example", "x.a.example", "*.a.example", "*.example", "[::1]", "10.0.0.1", None]
_REQUEST_HOSTS = st.one_of(
    st.none(),
    st.builds(lambda label, base, dot, port, upper: ((label + "." if label else "") + base + dot + port).encode()
              if not upper else ((label + "." if label else "") + base + dot + port).upper().encode(),
              st.sampled_from(["", "x", "y", "x.y"]), st.sampled_from(["a.example", "example", "b.example", "[::1]"]),
              st.sampled_from(["", "."]), st.sampled_from(["", ":80", ":"]), st.booleans()),
    st.binary(max_size=12),
)
_PATHS = st.sampled_from([b"/", b"/a", b"/a/b", b"/b", b"/a/b/c?q", b"x", b""])


@given(st.dictionaries(st.tuples(st.sampled_from(_HOSTS), st.sampled_from(["/", "/a", "/a/b", "/b"])),
                       st.integers(), max_size=10),
       st.lists(st.tuples(_REQUEST_HOSTS, _PATHS), max_size=20))
@settings(max_examples=int(os.environ.get("FASTROUTE_FUZZ_EXAMPLES", "300")), deadline=None)
def test_the_compiled_host_table_answers_as_the_twin(routes: dict[Any, int], requests: list[Any]) -> None:
    from ..conftest import _compiled

    compiled = _compiled("fastroute._table", "the compiled HostTable").HostTable(routes)
    twin = PyHostTable(routes)
    for host, path in requests:
        assert compiled.lookup(host, path) == twin.lookup(host, path), (host, path)


def test_the_package_exports_the_compiled_host_table() -> None:
    assert fastroute.HostTable.__module__ == ("fastroute._table" if fastroute.COMPILED else "fastroute._hosttable_py")
