# The pure-Python route table: the readable specification.
#
# A trie over path segments. Each node maps a segment (bytes) to a child and
# may hold a result, the (prefix, value) tuple handed back by lookup(); the
# tuples are built once, so a hit allocates nothing.
#
# Lookup rules (the compiled table in _table.pyx must agree, and the tests
# check that it does):
# - the path is str or bytes; a str is matched on its UTF-8 bytes (lone
#   surrogates pass through as their "surrogatepass" bytes, so they can only
#   fail to match); anything else is a TypeError;
# - a path that does not start with "/" matches nothing (None), not even "/";
# - the query (from the first "?") and the fragment (from the first "#") are
#   cut off first; the rest is split on "/" and walked segment by segment;
# - the answer is the deepest node on that walk that holds a result, so a
#   prefix matches only on whole segments: "/steve/foo" matches "/steve/foo",
#   "/steve/foo/" and "/steve/foo/x", never "/steve/foobar";
# - bytes are compared exactly: no case folding, no %-decoding, no "//"
#   collapsing (the gateway normalises paths before it looks them up).

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Generic, TypeVar

from ._keys import Routes, normalise_prefix, normalise_routes, segments_of

__all__ = ["PyRouteTable"]

V = TypeVar("V")


class _Node:
    __slots__ = ("children", "result")

    def __init__(self) -> None:
        self.children: dict[bytes, _Node] = {}
        self.result: tuple[str, Any] | None = None  # Any: the route's value, of the caller's type


class PyRouteTable(Generic[V]):
    """An immutable longest-prefix route table over path segments.

    Args:
        routes: a mapping of prefix ("/steve/foo", "/") to any value, or an
            iterable of (prefix, value) pairs. It is copied.

    Raises:
        TypeError: a prefix is not a str.
        fastroute.InvalidPrefix: a prefix is invalid or given twice.
    """

    __slots__ = ("_routes", "_root")

    def __init__(self, routes: Routes[V] = ()) -> None:
        self._routes: dict[str, V] = normalise_routes(routes)
        self._root = _Node()
        for prefix, value in self._routes.items():
            node = self._root
            for segment in segments_of(prefix):
                child = node.children.get(segment)
                if child is None:
                    child = node.children[segment] = _Node()
                node = child
            node.result = (prefix, value)

    def lookup(self, path: str | bytes) -> tuple[str, V] | None:
        """Find the longest prefix that matches `path` on whole segments.

        Args:
            path: a request path or target, optionally with a query string
                and fragment: "/steve/foo/x?q=1".

        Returns:
            (prefix, value) for the longest matching prefix, or None.

        Raises:
            TypeError: `path` is neither str nor bytes.
        """
        if isinstance(path, str):
            raw = path.encode("utf-8", "surrogatepass")
        elif isinstance(path, bytes):
            raw = path
        else:
            raise TypeError(f"path must be str or bytes, not {type(path).__name__}")
        if not raw.startswith(b"/"):
            return None
        end = len(raw)
        for delimiter in (b"?", b"#"):
            found = raw.find(delimiter, 1, end)
            if found != -1:
                end = found
        node = self._root
        best = node.result
        for segment in raw[1:end].split(b"/"):
            child = node.children.get(segment)
            if child is None:
                break
            node = child
            if node.result is not None:
                best = node.result
        return best

    def routes(self) -> dict[str, V]:
        """A new dict of every normalised prefix and its value."""
        return dict(self._routes)

    def __len__(self) -> int:
        return len(self._routes)

    def __contains__(self, prefix: object) -> bool:
        if isinstance(prefix, bytes):
            try:
                prefix = prefix.decode("utf-8")
            except UnicodeDecodeError:
                return False
        try:
            return normalise_prefix(prefix) in self._routes
        except (TypeError, ValueError):
            return False

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._routes))

    def __reduce__(self) -> tuple[Any, ...]:  # Any: pickle's (callable, arguments)
        return (type(self), (self._routes,))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._routes!r})"
