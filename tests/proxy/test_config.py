from __future__ import annotations

from pathlib import Path

import pytest

from proxy._config import (
    Address,
    Route,
    Tls,
    TlsPair,
    check_listen_overlap,
    check_no_http2,
    load_routes_file,
    merge_routes,
    parse_address,
    routes_from_flags,
    tls_from_flags,
)
from proxy._errors import ConfigError


@pytest.mark.parametrize(
    ("text", "address"),
    [("127.0.0.1:80", Address("127.0.0.1", 80)), ("[::1]:8000", Address("::1", 8000)),
     ("backend.test:65535", Address("backend.test", 65535))],
)
def test_parse_address(text: str, address: Address) -> None:
    assert parse_address(text) == address
    assert str(address) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [("nohost", "HOST:PORT"), (":80", "HOST:PORT"), ("a:", "HOST:PORT"), ("a:0", "1-65535"),
     ("a:65536", "1-65535"), ("a:x", "1-65535"), ("::1:80", "IPv6"), ("[::1:80", "unclosed"),
     ("[nope]:80", "not an IPv6")],
)
def test_parse_address_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        parse_address(text)
    assert repr(text) in str(caught.value) and "\n" not in str(caught.value)


def test_route_flags_make_pools() -> None:
    routes = routes_from_flags(["/a=h:1", "/b/=h:2", "/a/=h:3", "/a=h:1"])
    assert routes == (
        Route("/a", (Address("h", 1), Address("h", 3)), source="--route"),
        Route("/b", (Address("h", 2),), source="--route"),
    )


@pytest.mark.parametrize("flag", ["/a", "a=h:1", "/a b=h:1", "/a=h", "=h:1", "api.example.com=h:1"])
def test_bad_route_flag(flag: str) -> None:
    with pytest.raises(ConfigError, match="--route"):
        routes_from_flags([flag])


def test_route_flags_with_hosts() -> None:
    routes = routes_from_flags(["API.Example.com./v1=h:1", "api.example.com/v1/=h:2", "*.example.com/=h:3",
                                "/v1=h:4", "b\u00fccher.example/=h:5", "*.b\u00fccher.example/=h:6", "[::1]/=h:7"])
    assert [(r.host, r.prefix, [a.port for a in r.backends]) for r in routes] == [
        ("api.example.com", "/v1", [1, 2]), ("*.example.com", "/", [3]), (None, "/v1", [4]),
        ("xn--bcher-kva.example", "/", [5]), ("*.xn--bcher-kva.example", "/", [6]), ("[::1]", "/", [7])]
    assert [r.name for r in routes[:3]] == ["api.example.com/v1", "*.example.com/", "/v1"]


@pytest.mark.parametrize(("flag", "message"), [
    pytest.param("api.example.com:8080/=h:1", "has a port", id="port"),
    pytest.param("a..b/=h:1", "invalid label", id="empty_label"),
    pytest.param("a.*.b/=h:1", "'\\*'", id="inner_star"),
    pytest.param("xn--a\u00df/=h:1", "invalid host", id="bad_idn"),
])
def test_bad_route_hosts(flag: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        routes_from_flags([flag])
    assert "--route" in str(caught.value) and "\n" not in str(caught.value)


def test_routes_file_hosts(tmp_path: Path) -> None:
    path = write(tmp_path, """
[[routes]]
host = "Shop.Example.com"
prefix = "/"
backends = ["10.0.0.1:8000"]

[[routes]]
prefix = "/"
backends = ["10.0.0.2:8000"]
""")
    assert [(r.host, r.prefix) for r in load_routes_file(path)] == [("shop.example.com", "/"), (None, "/")]
    twice = write(tmp_path, """
[[routes]]
host = "shop.example.com"
prefix = "/"
backends = ["10.0.0.1:8000"]

[[routes]]
host = "SHOP.example.com."
prefix = "/"
backends = ["10.0.0.2:8000"]
""")
    with pytest.raises(ConfigError, match="'shop.example.com/' is already routed"):
        load_routes_file(twice)
    bad = write(tmp_path, '[[routes]]\nhost = 5\nprefix = "/"\nbackends = ["10.0.0.1:8000"]\n')
    with pytest.raises(ConfigError, match="host must be str"):
        load_routes_file(bad)


def test_the_same_prefix_on_two_hosts_is_two_routes() -> None:
    a = Route("/", (Address("h", 1),), source="x", host="a.example")
    b = Route("/", (Address("h", 2),), source="y", host="b.example")
    assert merge_routes([a], [b]) == (a, b)
    with pytest.raises(ConfigError, match="'a.example/' is routed twice"):
        merge_routes([a], [Route("/", (), source="z", host="a.example")])


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "routes.toml"
    path.write_text(text)
    return path


def test_routes_file(tmp_path: Path) -> None:
    path = write(tmp_path, """
[[routes]]
prefix = "/steve/foo/"
backends = ["10.0.0.1:8000", "[fd00::1]:8000"]
strip_prefix = true

[[routes]]
prefix = "/"
backends = ["10.0.0.2:8000"]
""")
    routes = load_routes_file(path)
    assert [(r.prefix, r.backends, r.strip_prefix) for r in routes] == [
        ("/steve/foo", (Address("10.0.0.1", 8000), Address("fd00::1", 8000)), True),
        ("/", (Address("10.0.0.2", 8000),), False),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("[[routes]\n", "not valid TOML", id="syntax"),
        pytest.param("routes = 1\n", "array of tables", id="not_array"),
        pytest.param("[other]\n", "unknown key 'other'", id="unknown_top"),
        pytest.param('[[routes]]\nbackends = ["a:1"]\n', "'prefix' is missing", id="no_prefix"),
        pytest.param('[[routes]]\nprefix = "/a"\n', "'backends'", id="no_backends"),
        pytest.param('[[routes]]\nprefix = "/a"\nbackends = []\n', "'backends'", id="empty_backends"),
        pytest.param('[[routes]]\nprefix = "/a"\nbackends = ["a"]\n', "HOST:PORT", id="bad_backend"),
        pytest.param('[[routes]]\nprefix = "a"\nbackends = ["a:1"]\n', "start with '/'", id="bad_prefix"),
        pytest.param('[[routes]]\nprefix = 1\nbackends = ["a:1"]\n', "must be str", id="prefix_not_str"),
        pytest.param('[[routes]]\nprefix = "/a"\nbackends = ["a:1"]\nstrip_prefix = "yes"\n', "true or false",
                     id="strip_not_bool"),
        pytest.param('[[routes]]\nprefix = "/a"\nbackends = ["a:1"]\nport = 1\n', "unknown key 'port'",
                     id="unknown_key"),
        pytest.param('[[routes]]\nprefix = "/a"\nbackends = ["a:1"]\n[[routes]]\nprefix = "/a/"\nbackends = ["b:1"]\n',
                     "already routed", id="duplicate"),
    ],
)
def test_routes_file_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        load_routes_file(write(tmp_path, text))
    assert "\n" not in str(caught.value) and "routes" in str(caught.value)


def test_unreadable_routes_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read routes file"):
        load_routes_file(tmp_path / "missing.toml")


def test_merge_reports_a_clash() -> None:
    with pytest.raises(ConfigError, match="routed twice: by --route and by file"):
        merge_routes([Route("/a", (), source="--route")], [Route("/a", (), source="file:x")])


# --- TLS flags -------------------------------------------------------------------

TLS_ADDRESS = (Address("127.0.0.1", 8443),)


@pytest.mark.parametrize(("listen", "certs", "keys", "changes", "message"), [
    pytest.param(TLS_ADDRESS, ["a.pem"], [], {}, "1 --tls-cert and 0 --tls-key: give each certificate its key, "
                 "in the same order", id="unpaired"),
    pytest.param(TLS_ADDRESS, [], [], {}, "--listen-tls needs a certificate: --tls-cert FILE --tls-key FILE, "
                 "or --acme-email",
                 id="https_without_a_certificate"),
    pytest.param((), ["a.pem"], ["a.key"], {}, "--tls-cert needs --listen-tls HOST:PORT to serve HTTPS on",
                 id="certificate_without_https"),
    pytest.param((), [], [], {"redirect_https": True}, "--redirect-https needs --listen-tls HOST:PORT to serve "
                 "HTTPS on", id="redirect_without_https"),
    pytest.param((), [], [], {"hsts": 60}, "--hsts needs --listen-tls HOST:PORT to serve HTTPS on", id="hsts"),
    pytest.param((), [], [], {"https_port": 443}, "--https-port needs --listen-tls HOST:PORT to serve HTTPS on",
                 id="https_port"),
])
def test_tls_flags_that_do_not_fit_together(listen: tuple[Address, ...], certs: list[str], keys: list[str],
                                            changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        tls_from_flags(listen, [Path(c) for c in certs], [Path(k) for k in keys], **changes)  # type: ignore[arg-type]
    assert str(error.value) == message


def test_tls_flags_pair_certificates_and_keys_in_order() -> None:
    tls = tls_from_flags(TLS_ADDRESS, [Path("a.pem"), Path("b.pem")], [Path("a.key"), Path("b.key")], hsts=0)
    assert tls.pairs == (TlsPair(Path("a.pem"), Path("a.key")), TlsPair(Path("b.pem"), Path("b.key")))
    assert tls.hsts == 0
    assert tls_from_flags((), [], []) == Tls()


@pytest.mark.parametrize(("plain", "secure", "overlaps"), [
    pytest.param("0.0.0.0:8080", "127.0.0.1:8443", False, id="other_port"),
    pytest.param("0.0.0.0:8443", "127.0.0.1:8443", True, id="wildcard_covers_it"),
    pytest.param("127.0.0.1:8443", "127.0.0.2:8443", False, id="other_host"),
])
def test_a_port_speaks_http_or_https(plain: str, secure: str, overlaps: bool) -> None:
    if overlaps:
        with pytest.raises(ConfigError, match=f"--listen-tls {secure} overlaps --listen {plain}"):
            check_listen_overlap((parse_address(plain),), (parse_address(secure),))
    else:
        check_listen_overlap((parse_address(plain),), (parse_address(secure),))


def test_ephemeral_ports_never_overlap() -> None:
    check_listen_overlap((Address("127.0.0.1", 0),), (Address("127.0.0.1", 0),))


def test_no_http2_names_a_listener() -> None:
    listen = (parse_address("127.0.0.1:8080"), parse_address("127.0.0.1:8443"))
    check_no_http2((parse_address("127.0.0.1:8443"),), listen)
    with pytest.raises(ConfigError, match=r"--no-http2 127.0.0.1:9999 is not a --listen or --listen-tls address"):
        check_no_http2((parse_address("127.0.0.1:9999"),), listen)
