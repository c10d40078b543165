from __future__ import annotations

import pytest

from proxy.tls._names import NameIndex

INDEX = NameIndex([(["api.example.com", "www.example.com"], "first"), (["*.shop.com", "shop.com"], "shop"),
                   (["api.example.com", "*.example.com"], "later")])


@pytest.mark.parametrize(("name", "expected"), [
    pytest.param("api.example.com", "first", id="exact"),
    pytest.param("API.Example.COM.", "first", id="case_and_trailing_dot"),
    pytest.param("shop.com", "shop", id="apex_by_its_own_name"),
    pytest.param("a.shop.com", "shop", id="wildcard"),
    pytest.param("a.b.shop.com", None, id="wildcard_covers_one_label"),
    pytest.param("other.example.com", "later", id="wildcard_of_a_later_certificate"),
    pytest.param("example.com", None, id="wildcard_not_its_parent"),
    pytest.param("", None, id="empty"),
    pytest.param(None, None, id="no_sni"),
    pytest.param(".", None, id="just_a_dot"),
])
def test_find(name: str | None, expected: str | None) -> None:
    assert INDEX.find(name) == expected
    assert INDEX.choose(name) == (expected or "first")
    assert INDEX.covers(name or "") == (expected is not None)


def test_the_first_certificate_holding_a_name_wins_and_is_the_default() -> None:
    assert INDEX.default == "first"
    assert INDEX.find("api.example.com") == "first"  # "later" holds it too


def test_names() -> None:
    assert INDEX.names() == ["*.example.com", "*.shop.com", "api.example.com", "shop.com", "www.example.com"]


def test_no_certificate_is_refused() -> None:
    with pytest.raises(ValueError):
        NameIndex([])
