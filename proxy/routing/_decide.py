# Pure: what the gateway does with a checked request head, given the table
# in force and what the request has waited for so far. The head itself was
# checked and its path normalised by protocol/_head.py. No I/O and no clock
# read (`now` is an argument), so it is tested without sockets or an event
# loop; the server only carries the decision out:
#
#   Forward(prefix, pool)      relay it to a backend of that pool;
#   Hold(until, name)          wait for the table to change, at most until
#                              `until`, then decide again;
#   Wake(name, ids)            start one of these stopped containers, then
#                              decide again (with wake_until set);
#   (name: the route's, Route.name: its host, if any, then its prefix)
#   Answer(error)              answer it with that error's status.
#
# Rules: no route is 404, unless the Docker routes are not loaded yet (the
# request holds, up to --hold, once the engine has answered; 503 at once
# while it never has: a newcomer without Docker gets an answer, not a
# wait) or the request was already holding for a route that went (503); a
# strip route's prefix without its slash is 308; a route with no backend
# holds as long as hold_deadline() says (503 after), or is woken
# (fastroute.wake), once per request.

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from .._config import Route
from .._errors import NoBackendAvailable, NoRoute, PermanentRedirect, ProxyError
from ._pool import Pool

__all__ = ["HOLD_RETRY_AFTER", "Answer", "Forward", "Hold", "Wake", "decide", "hold_deadline", "lookup_route",
           "slash_redirect"]

HOLD_RETRY_AFTER = 5  # seconds, in the 503 when a wait for a route or a backend runs out


@dataclass(frozen=True, slots=True)
class Forward:
    prefix: str
    pool: Pool  # the table's value


@dataclass(frozen=True, slots=True)
class Hold:
    until: float  # time.monotonic()
    prefix: str | None  # the name of the route waited for (Route.name); None while the routes are not loaded


@dataclass(frozen=True, slots=True)
class Wake:
    prefix: str  # the route's name (Route.name): the waker starts one container per name at a time
    ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Answer:
    error: ProxyError


class Table(Protocol):
    """A route table by host and prefix (fastroute.HostTable) whose values are pools."""

    def lookup(self, host: bytes | None, path: bytes) -> tuple[str, Pool] | None: ...


def decide(
    table: Table,
    target: bytes,
    *,
    host: bytes | None = None,
    now: float,
    arrived: float,
    hold: float,
    routes_complete: bool = True,
    engine_answered: bool = True,
    can_wake: bool = False,
    waiting_for: str | None = None,
    wake_until: float | None = None,
    wake_limit: float = 0.0,
) -> Forward | Hold | Wake | Answer:
    """What to do with a request for `target` now (see the module comment).

    Args:
        host: the request's Host as sent (None: it sent none).
        now, arrived: time.monotonic() now, and when the request's head was read.
        hold: --hold, in seconds.
        routes_complete: the table holds every source's routes.
        engine_answered: the Docker engine has answered since the gateway
            started, so routes not loaded yet are worth waiting for.
        can_wake: a waker runs (Docker is followed).
        waiting_for: the prefix this request has been holding for, if any.
        wake_until: set once this request woke its route: until when it
            waits for the woken container (wake_limit seconds after the start).
    """
    found = table.lookup(host, target)
    if found is None:
        return _unrouted(target, now=now, arrived=arrived, hold=hold, routes_complete=routes_complete,
                         engine_answered=engine_answered, waiting_for=waiting_for, woken=wake_until is not None)
    prefix, pool = found
    location = slash_redirect(pool.route, prefix, target)
    if location is not None:
        return Answer(PermanentRedirect(location))
    if pool.backends:
        return Forward(prefix, pool)
    return _no_backend(prefix, pool.route, now=now, arrived=arrived, hold=hold, can_wake=can_wake,
                       wake_until=wake_until, wake_limit=wake_limit)


def _unrouted(target: bytes, *, now: float, arrived: float, hold: float, routes_complete: bool,
              engine_answered: bool, waiting_for: str | None, woken: bool) -> Hold | Answer:
    # No route matches: 404, or a wait while Docker's routes are not loaded yet.
    if waiting_for is not None:
        why = (f"{waiting_for!r} left the route table while waking" if woken
               else f"no container serves {waiting_for!r} now")
        return Answer(NoBackendAvailable(why, retry_after=HOLD_RETRY_AFTER))
    if routes_complete:
        return Answer(_no_route(target))
    if not engine_answered:
        return Answer(NoBackendAvailable(
            f"no route for {_path(target)!r}, and the Docker engine has not answered since the gateway started",
            retry_after=HOLD_RETRY_AFTER))
    until = hold_deadline(None, arrived, hold)
    if now >= until:
        return Answer(NoBackendAvailable("the routes from Docker are not loaded yet", retry_after=HOLD_RETRY_AFTER))
    return Hold(until, None)


def _no_backend(prefix: str, route: Route, *, now: float, arrived: float, hold: float, can_wake: bool,
                wake_until: float | None, wake_limit: float) -> Hold | Wake | Answer:
    # A route with no backend now: wait for one (a woken or booting container, a held route), wake one, or 503.
    if wake_until is not None:
        if now >= wake_until:
            return Answer(NoBackendAvailable(f"the container for {prefix!r} did not serve within {wake_limit:g}s",
                                             retry_after=HOLD_RETRY_AFTER))
        return Hold(wake_until, route.name)
    if route.wake and can_wake:
        return Wake(route.name, route.wake)
    until = hold_deadline(route, arrived, hold)
    if now >= until:
        name = route.name
        why = f"no container of {name!r} is ready yet" if route.booting else f"no container serves {name!r} now"
        return Answer(NoBackendAvailable(why, retry_after=HOLD_RETRY_AFTER))
    return Hold(until, route.name)


def _no_route(target: bytes) -> NoRoute:
    return NoRoute(f"no route for {_path(target)!r}")


def _path(target: bytes) -> str:
    return target.split(b'?', 1)[0].decode('utf-8', 'replace')


def lookup_route(table: Table, target: bytes, host: bytes | None = None) -> tuple[str, Pool]:
    """Choose the route for a normalised origin-form target.

    Returns:
        (prefix, value) from the table.

    Raises:
        NoRoute: no prefix matches (404).
    """
    found = table.lookup(host, target)
    if found is None:
        raise _no_route(target)
    return found


def hold_deadline(route: Route | None, arrived: float, hold: float) -> float:
    """Until when (time.monotonic()) a request that found no backend may wait for one.

    Args:
        route: the route it matched (with no backend now), or None: no route
            matched while the Docker routes are not loaded yet.
        arrived: when the request's head was read.
        hold: --hold, in seconds.

    A booting route (a container started, not ready yet) and a request for a
    route not known yet wait up to `hold` from their arrival; a held route
    (its last container left) until its hold ends; any other route not at
    all (the deadline is already past).
    """
    if route is None or route.booting:
        return arrived + hold
    return route.hold_until if route.hold_until is not None else -math.inf


def slash_redirect(route: Route, prefix: str, target: bytes) -> bytes | None:
    """Where to send a request for exactly a strip route's prefix, without its slash; else None.

    The backend would see "/" either way, and the relative links on the page
    it sends would then resolve against the site's root, not the prefix;
    "/app?q" is sent to "/app/?q" with 308 (the method and body kept), as
    nginx does for a location with a trailing slash.
    """
    if not route.strip_prefix or prefix == "/":
        return None
    path, question, query = target.partition(b"?")
    if path != prefix.encode("utf-8"):
        return None
    return path + b"/" + question + query
