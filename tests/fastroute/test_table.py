# Hand-written cases for every rule of the route table, run against both
# implementations (ids "py" and "c") through the table_cls fixture.

from __future__ import annotations

import pickle
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import fastroute
from fastroute import InvalidPrefix

ROUTES = {
    "/": "root",
    "/steve/foo": "foo",
    "/steve/foo/deep/er": "deeper",
    "/api/": "api",
    "/Case": "case",
    "/caf\u00e9": "cafe",
    "/a%2Fb": "escaped",
    "/x//y": "empty-segment",
}


@pytest.mark.parametrize(
    ("path", "prefix"),
    [
        pytest.param("/steve/foo", "/steve/foo", id="exact"),
        pytest.param("/steve/foo/", "/steve/foo", id="trailing_slash"),
        pytest.param("/steve/foo/x/y?q=1", "/steve/foo", id="deeper_with_query"),
        pytest.param("/steve/foo?q", "/steve/foo", id="query_right_after"),
        pytest.param("/steve/foo#frag", "/steve/foo", id="fragment_right_after"),
        pytest.param("/steve/foo/deep/er/x", "/steve/foo/deep/er", id="longest_wins"),
        pytest.param("/steve/foo/deep", "/steve/foo", id="partial_longer_key_falls_back"),
        pytest.param("/steve/foobar", "/", id="not_a_whole_segment"),
        pytest.param("/steve", "/", id="shorter_than_key"),
        pytest.param("/", "/", id="root"),
        pytest.param("/steve/foo?x=/steve/foo/deep/er", "/steve/foo", id="query_holds_a_longer_key"),
        pytest.param("/steve/foo#/deep/er", "/steve/foo", id="fragment_holds_a_longer_key"),
        pytest.param("/steve/foo/deep?er", "/steve/foo", id="query_splits_a_segment"),
        pytest.param("/api", "/api", id="key_given_with_trailing_slash"),
        pytest.param("/api/v1", "/api", id="key_given_with_trailing_slash_deeper"),
        pytest.param("/case", "/", id="case_sensitive"),
        pytest.param("/Case/x", "/Case", id="case_exact"),
        pytest.param("/caf\u00e9/menu", "/caf\u00e9", id="unicode_str"),
        pytest.param("/caf%C3%A9/menu", "/", id="no_percent_decoding"),
        pytest.param("/a%2Fb/c", "/a%2Fb", id="escaped_slash_is_not_a_separator"),
        pytest.param("/a/b", "/", id="escaped_key_does_not_match_plain"),
        pytest.param("//steve/foo", "/", id="no_slash_collapsing"),
        pytest.param("/steve//foo", "/", id="no_inner_collapsing"),
        pytest.param("/x//y/z", "/x//y", id="empty_segment_key"),
        pytest.param("/x/y", "/", id="empty_segment_key_needs_it"),
        pytest.param("/steve/./foo", "/", id="no_dot_resolution"),
    ],
)
def test_lookup(table_cls: type, path: str, prefix: str) -> None:
    table = table_cls(ROUTES)

    assert table.lookup(path) == (prefix, ROUTES.get(prefix, ROUTES.get(prefix + "/")))
    assert table.lookup(path.encode()) == table.lookup(path)


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("", id="empty"),
        pytest.param("steve/foo", id="relative"),
        pytest.param("*", id="asterisk_form"),
        pytest.param("http://host/steve/foo", id="absolute_form"),
        pytest.param("?q", id="query_only"),
    ],
)
def test_paths_not_starting_with_a_slash_match_nothing(table_cls: type, path: str) -> None:
    assert table_cls(ROUTES).lookup(path) is None


def test_miss_without_catch_all(table_cls: type) -> None:
    table = table_cls({"/steve/foo": 1})

    assert table.lookup("/steve/foobar") is None
    assert table.lookup("/steve") is None
    assert table.lookup("/") is None


def test_empty_table(table_cls: type) -> None:
    table = table_cls({})

    assert table.lookup("/anything") is None
    assert len(table) == 0
    assert list(table) == []


def test_catch_all_alone(table_cls: type) -> None:
    table = table_cls({"/": "all"})

    assert table.lookup("/") == ("/", "all")
    assert table.lookup("/x/y/z?q#f") == ("/", "all")


def test_bytes_path_is_matched_exactly(table_cls: type) -> None:
    table = table_cls({"/caf\u00e9": 1})

    assert table.lookup("/caf\u00e9".encode()) == ("/caf\u00e9", 1)
    assert table.lookup("/caf\u00e9".encode("latin-1")) is None
    assert table.lookup(b"/caf\xc3") is None


def test_lone_surrogate_in_path_only_fails_to_match(table_cls: type) -> None:
    table = table_cls({"/a": 1})

    assert table.lookup("/a/\udc80") == ("/a", 1)
    assert table.lookup("/\udc80") is None


def test_value_is_returned_as_given(table_cls: type) -> None:
    value = object()

    assert table_cls({"/v": value}).lookup("/v")[1] is value


@pytest.mark.parametrize("path", [None, 1, bytearray(b"/a"), memoryview(b"/a"), ["/a"]])
def test_lookup_of_something_else_is_a_type_error(table_cls: type, path: Any) -> None:
    with pytest.raises(TypeError, match="str or bytes"):
        table_cls({"/a": 1}).lookup(path)


# --- keys ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        pytest.param("", "is empty", id="empty"),
        pytest.param("steve/foo", "start with '/'", id="no_leading_slash"),
        pytest.param("/a?b", "contains '\\?'", id="question_mark"),
        pytest.param("/a#b", "contains '#'", id="hash"),
        pytest.param("/a b", "whitespace or a control character \\(U\\+0020\\)", id="space"),
        pytest.param("/a\tb", "U\\+0009", id="tab"),
        pytest.param("/a\nb", "U\\+000A", id="newline"),
        pytest.param("/a\u00a0b", "U\\+00A0", id="no_break_space"),
        pytest.param("/a\u2028b", "U\\+2028", id="line_separator"),
        pytest.param("/a\x00b", "U\\+0000", id="nul"),
        pytest.param("/a\x7fb", "U\\+007F", id="del"),
        pytest.param("/a\x85b", "U\\+0085", id="c1_control"),
        pytest.param("/a\udc80", "lone surrogate", id="lone_surrogate"),
        pytest.param("/.", "'\\.' or '\\.\\.' segment", id="dot"),
        pytest.param("/..", "segment", id="dot_dot"),
        pytest.param("/a/./b", "segment", id="inner_dot"),
        pytest.param("/a/../b", "segment", id="inner_dot_dot"),
        pytest.param("/a/..", "segment", id="trailing_dot_dot"),
        pytest.param("/a/../", "segment", id="trailing_dot_dot_slash"),
    ],
)
def test_bad_keys_are_rejected_by_name(table_cls: type, key: str, reason: str) -> None:
    with pytest.raises(InvalidPrefix, match=reason) as caught:
        table_cls({"/ok": 1, key: 2})

    assert caught.value.prefix == key
    assert repr(key) in str(caught.value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    "key", [pytest.param("/.a", id="dot_prefix"), pytest.param("/a..", id="dots_suffix"),
            pytest.param("/...", id="three_dots"), pytest.param("/%2e", id="escaped_dot")]
)
def test_dots_inside_a_segment_are_fine(table_cls: type, key: str) -> None:
    assert table_cls({key: 1}).lookup(key + "/x") == (key, 1)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param("/steve/foo", "/steve/foo/", id="trailing_slash"),
        pytest.param("/", "//", id="root_twice"),
    ],
)
def test_keys_equal_after_dropping_trailing_slash_are_rejected(
    table_cls: type, first: str, second: str
) -> None:
    with pytest.raises(InvalidPrefix, match="same route") as caught:
        table_cls({first: 1, second: 2})

    assert repr(first) in str(caught.value) and repr(second) in str(caught.value)


def test_the_same_key_twice_in_pairs_is_rejected(table_cls: type) -> None:
    with pytest.raises(InvalidPrefix, match="same route"):
        table_cls([("/a", 1), ("/a", 2)])


def test_only_one_trailing_slash_is_dropped(table_cls: type) -> None:
    table = table_cls({"/a//": 1})

    assert list(table) == ["/a/"]
    assert table.lookup("/a") is None
    assert table.lookup("/a/") == ("/a/", 1)
    assert table.lookup("/a//b") == ("/a/", 1)


@pytest.mark.parametrize("key", [b"/bytes", 1, None])
def test_a_key_that_is_not_str_is_a_type_error(table_cls: type, key: Any) -> None:
    with pytest.raises(TypeError, match="route prefix must be str"):
        table_cls({key: 1})


# --- the container protocol ---------------------------------------------------


def test_len_contains_iter_routes(table_cls: type) -> None:
    table = table_cls({"/b/": 2, "/a": 1, "/": 0})

    assert len(table) == 3
    assert list(table) == ["/b", "/a", "/"]
    assert table.routes() == {"/b": 2, "/a": 1, "/": 0}
    assert "/b" in table and "/b/" in table and b"/a" in table and "/" in table
    assert "/c" not in table
    assert "b" not in table and "" not in table and "/a?" not in table
    assert 1 not in table and None not in table and b"\xff" not in table


def test_accepts_pairs(table_cls: type) -> None:
    assert table_cls([("/a", 1), ("/b/", 2)]).routes() == {"/a": 1, "/b": 2}


def test_routes_is_a_copy(table_cls: type) -> None:
    table = table_cls({"/a": 1})

    table.routes()["/b"] = 2

    assert table.lookup("/b") is None
    assert len(table) == 1


def test_later_changes_to_the_source_mapping_do_not_leak_in(table_cls: type) -> None:
    source = {"/a": 1}
    table = table_cls(source)

    source["/b"] = 2
    del source["/a"]

    assert table.lookup("/a") == ("/a", 1)
    assert table.lookup("/b") is None


def test_has_no_way_to_change_it(table_cls: type) -> None:
    table = table_cls({"/a": 1})

    for name in ("add", "remove", "insert", "update", "__setitem__", "__delitem__"):
        assert not hasattr(table, name)
    with pytest.raises(AttributeError):
        table.anything = 1


def test_one_table_read_from_many_threads_gives_every_thread_the_same_answers(table_cls: type) -> None:
    routes = {f"/o{i}/img{j}": (i, j) for i in range(50) for j in range(20)}
    table = table_cls(routes)
    paths = [f"/o{i % 53}/img{i % 23}/x?q={i}" for i in range(5_000)]
    expected = [table.lookup(path) for path in paths]
    assert sum(answer is not None for answer in expected) > 3_000
    barrier = threading.Barrier(8)

    def read() -> list[object]:
        barrier.wait()  # all at once
        return [table.lookup(path) for path in paths]

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: read(), range(8)))
    assert all(got == expected for got in answers)


def test_pickles_to_an_equal_table(table_cls: type) -> None:
    table = table_cls({"/a": 1, "/": 0})

    copy = pickle.loads(pickle.dumps(table))

    assert type(copy) is table_cls
    assert copy.routes() == table.routes()
    assert copy.lookup("/a/x") == ("/a", 1)


def test_repr_shows_routes(table_cls: type) -> None:
    assert repr(table_cls({"/a": 1})) == f"{table_cls.__name__}({{'/a': 1}})"


def test_results_are_reused_not_rebuilt(table_cls: type) -> None:
    table = table_cls({"/a": 1})

    assert table.lookup("/a/x") is table.lookup("/a/y")


def test_many_routes_and_siblings(table_cls: type) -> None:
    routes = {f"/u{i}/s{j}": (i, j) for i in range(200) for j in range(5)}
    table = table_cls(routes)

    for i in range(200):
        for j in range(5):
            assert table.lookup(f"/u{i}/s{j}/x") == (f"/u{i}/s{j}", (i, j))
        assert table.lookup(f"/u{i}/s5") is None
        assert table.lookup(f"/u{i}") is None


def test_package_exports() -> None:
    assert set(fastroute.__all__) >= {"RouteTable", "PyRouteTable", "COMPILED", "InvalidPrefix"}
    assert issubclass(fastroute.InvalidPrefix, fastroute.FastrouteError)
    assert issubclass(fastroute.InvalidPrefix, ValueError)


def test_the_whitespace_rule_is_str_isspace_over_every_code_point() -> None:
    # _keys.py's pattern uses \s for "whitespace"; it must mean str.isspace().
    import re
    import sys

    pattern = re.compile(r"\s")
    disagree = [c for c in map(chr, range(sys.maxunicode + 1)) if bool(pattern.match(c)) != c.isspace()]
    assert disagree == []
