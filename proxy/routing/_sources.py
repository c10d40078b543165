# Where routes come from: static ones (--route flags, the routes file) and
# Docker's, merged into one list for whatever serves them (a RouteSink: the
# gateway's table, or an HAProxy configuration). The flow is one way: the
# watcher hands Docker's routes to RouteSources.set_docker, which hands the
# merged list to its sink's set_routes.

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from .._config import Address, Config, Route, load_routes_file, merge_routes
from ..acme._plan import wanted_names
from .._errors import ConfigError

__all__ = ["ACME_CHALLENGE_ROUTE", "RouteSink", "RouteSources", "load_routes"]

ACME_CHALLENGE_ROUTE = "/.well-known/acme-challenge"

log = logging.getLogger("fastroute")


def load_routes(config: Config) -> tuple[Route, ...]:
    """Every static route: --route flags, then the routes file.

    Raises:
        ConfigError: the file is unreadable or invalid, or a prefix is routed twice.
    """
    from_file = load_routes_file(config.routes_file) if config.routes_file is not None else ()
    return merge_routes(config.routes, from_file)


class RouteSink(Protocol):
    """What serves the merged routes: the Gateway (its table) or HAProxySync (its configuration)."""

    def set_routes(self, routes: Sequence[Route]) -> None: ...


class RouteSources:
    """Static routes (flags, file) and Docker's, merged into one table.

    A static route wins over a Docker route for the same host and prefix; the
    clash is logged once.
    """

    def __init__(self, sink: RouteSink, static: tuple[Route, ...]) -> None:
        self.sink = sink
        self.static = static
        self.docker: tuple[Route, ...] = ()
        self._clashes: set[tuple[str | None, str]] = set()
        # ACME: the backend answering HTTP-01 challenges, routed for every
        # name ACME is asked about (`names`, from the merged routes).
        self.challenges: Address | None = None
        self.held: Callable[[str], bool] = lambda name: False  # a --tls-cert file holds the name
        self.names: list[str] = []

    def set_static(self, routes: tuple[Route, ...]) -> None:
        self.static = routes
        self._swap()

    def set_docker(self, routes: tuple[Route, ...]) -> None:
        self.docker = routes
        self._swap()

    def _swap(self) -> None:
        taken = {route.key: route for route in self.static}
        merged = list(self.static)
        for route in self.docker:
            if route.key in taken:
                if route.key not in self._clashes:
                    self._clashes.add(route.key)
                    log.warning(
                        "%r is routed by %s and by Docker (%s); the static route wins",
                        route.name, taken[route.key].source, route.source,
                    )
                continue
            merged.append(route)
        if self.challenges is not None:
            merged = self._with_challenges(merged, self.challenges)
        self.sink.set_routes(merged)

    def _with_challenges(self, routes: list[Route], challenges: Address) -> list[Route]:
        """The routes, and one to the challenge backend per ACME name (over any route of that host
        and prefix: the CA must reach it)."""
        self.names = wanted_names((route.host for route in routes), self.held)
        ours = {(name, ACME_CHALLENGE_ROUTE): Route(ACME_CHALLENGE_ROUTE, (challenges,), host=name, source="acme")
                for name in self.names}
        return [route for route in routes if route.key not in ours] + list(ours.values())

    def reload(self, config: Config) -> bool:
        try:
            routes = load_routes(config)
        except ConfigError as error:
            log.error("reload failed, keeping the current routes: %s", error)
            return False
        self.set_static(routes)
        log.info("reloaded: %d static routes", len(routes))
        return True
