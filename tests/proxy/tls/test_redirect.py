from __future__ import annotations

import pytest

from proxy.tls._redirect import https_location

HELD = {"api.example.com", "a.shop.com"}


@pytest.mark.parametrize(("host", "target", "port", "expected"), [
    pytest.param(b"api.example.com", b"/x?y=1", 443, b"https://api.example.com/x?y=1", id="default_port"),
    pytest.param(b"api.example.com", b"/", 8443, b"https://api.example.com:8443/", id="other_port"),
    pytest.param(b"API.example.com.:8080", b"/", 443, b"https://api.example.com/", id="normal_form_no_port"),
    pytest.param(b"other.com", b"/", 443, None, id="no_certificate_holds_it"),
    pytest.param(None, b"/", 443, None, id="no_host"),
    pytest.param(b"[::1]:8080", b"/", 443, None, id="an_address"),
    pytest.param(b"api.example.com", b"/.well-known/acme-challenge/abc", 443, None, id="acme_challenge"),
    pytest.param(b"api.example.com", b"/.well-known/acme-challengeX", 443, b"https://api.example.com/"
                 b".well-known/acme-challengeX", id="only_the_challenge_directory"),
    pytest.param(b"api.example.com", b"*", 443, None, id="options_star"),
])
def test_https_location(host: bytes | None, target: bytes, port: int, expected: bytes | None) -> None:
    assert https_location(host, target, port, HELD.__contains__) == expected
