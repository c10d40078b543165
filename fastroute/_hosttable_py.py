# The pure-Python host table: the readable specification of the compiled
# HostTable (_table.pyx), which must give the same answers.
#
# A route is a (host, path prefix) pair; host None serves every host.
# lookup(host, path) tries, in order, and returns the first that matches:
#   1. the routes of the request's exact host (longest prefix, as RouteTable);
#   2. the wildcard routes of its parent ("*.example.com" for a.example.com);
#   3. the host-less routes.
# Hosts are compared in the form of _hosts.request_host (no port, lowercase,
# no trailing dot); keys are normalised by _hosts.normalise_host.

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Generic, TypeVar

from ._hosts import HostRoutes, group_by_host, normalise_host, normalise_host_routes, request_host, wildcard_suffix
from ._keys import normalise_prefix
from ._table_py import PyRouteTable

__all__ = ["PyHostTable"]

V = TypeVar("V")


class PyHostTable(Generic[V]):
    """An immutable route table by host name, then longest path prefix.

    Args:
        routes: a mapping of (host or None, prefix) to any value, or an
            iterable of such pairs. It is copied.

    Raises:
        TypeError: a key is not a (host or None, prefix) pair of str.
        fastroute.InvalidHost, fastroute.InvalidPrefix: a part of a key is
            invalid, or two keys normalise alike.
    """

    __slots__ = ("_routes", "_exact", "_wild", "_anywhere")

    def __init__(self, routes: HostRoutes[V] = ()) -> None:
        self._routes = normalise_host_routes(routes)
        exact, wild, anywhere = group_by_host(self._routes)
        self._exact = {host: PyRouteTable(group) for host, group in exact.items()}
        self._wild = {suffix: PyRouteTable(group) for suffix, group in wild.items()}
        self._anywhere: PyRouteTable[V] = PyRouteTable(anywhere)

    def lookup(self, host: bytes | str | None, path: str | bytes) -> tuple[str, V] | None:
        """The route for a request to `host` (its Host header as sent, port and all; None: none sent).

        Returns:
            (prefix, value) of the route that serves `path` on `host`, or None.

        Raises:
            TypeError: `path` is neither str nor bytes.
        """
        key = request_host(host) if (self._exact or self._wild) else None
        if key is not None:
            table = self._exact.get(key)
            if table is not None:
                found = table.lookup(path)
                if found is not None:
                    return found
            suffix = wildcard_suffix(key)
            if suffix is not None:
                table = self._wild.get(suffix)
                if table is not None:
                    found = table.lookup(path)
                    if found is not None:
                        return found
        return self._anywhere.lookup(path)

    @property
    def by_host(self) -> bool:
        """Whether any route names a host (else lookup() never reads the host)."""
        return bool(self._exact or self._wild)

    def routes(self) -> dict[tuple[str | None, str], V]:
        """A new dict of every normalised (host, prefix) and its value."""
        return dict(self._routes)

    def __len__(self) -> int:
        return len(self._routes)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, tuple) or len(key) != 2:
            return False
        try:
            pair = (None if key[0] is None else normalise_host(key[0]), normalise_prefix(key[1]))
        except (TypeError, ValueError):
            return False
        return pair in self._routes

    def __iter__(self) -> Iterator[tuple[str | None, str]]:
        return iter(list(self._routes))

    def __reduce__(self) -> tuple[Any, ...]:  # Any: pickle's (callable, arguments)
        return (type(self), (self._routes,))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._routes!r})"
