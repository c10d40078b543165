from __future__ import annotations

from pathlib import Path

import pytest

from proxy._config import Address, Route, load_routes_file, merge_routes, parse_address, routes_from_flags
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


@pytest.mark.parametrize("flag", ["/a", "a=h:1", "/a b=h:1", "/a=h"])
def test_bad_route_flag(flag: str) -> None:
    with pytest.raises(ConfigError, match="--route"):
        routes_from_flags([flag])


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
