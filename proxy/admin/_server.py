# The admin listener (--admin HOST:PORT, off by default, never the public
# one): what the gateway is doing, for people and machines.
#
#   GET /         the status page (HTML rendered here; its script only reloads it)
#   GET /routes   JSON: every prefix, its backends (address, state, requests
#                 in flight for that route, container), where the route came
#                 from, its answers by status class, p50/p99, bytes and chart
#                 history; the gateway's version, uptime, addresses, timeouts;
#                 Docker's warnings (containers skipped, labels routed without)
#   GET /healthz  200 while serving (503 while draining), with the Docker
#                 watcher's state and the seconds since its last event or resync
#   GET /metrics  Prometheus text format
#   GET /events   JSON: the last Docker events the watcher applied
#   GET /activity JSON: requests in flight and idle time per backend (for the
#                 other workers of --workers N, before an idle stop)
#
# GET and HEAD only, one request per connection, a deadline per connection
# (_http.py): a small surface for a private port.

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from fastroute import __version__

from .._config import Address
from .._json import JsonObject
from ..routing._stats import HISTORY_SLOT, HISTORY_SLOTS, Stats, quantile
from ._http import AdminListener, json_body
from ._metrics import render
from ._status_page import render_page

if TYPE_CHECKING:
    from ..gateway._server import Gateway
    from ..routing._pool import BackendState

__all__ = ["AdminServer", "activity", "health", "routes_document"]

def routes_document(gateway: Gateway, now: float | None = None) -> JsonObject:
    """The /routes JSON: the table in force, backend by backend."""
    now = time.monotonic() if now is None else now
    names, waking = _container_names(gateway)
    stats = gateway.stats
    totals = stats.route_totals() if stats is not None else {}
    slot = int(now // HISTORY_SLOT)
    classes: dict[str, dict[str, int]] = {}
    if stats is not None:
        for (name, status_class), count in sorted(stats.requests.items()):
            classes.setdefault(name, {})[status_class] = count
    routes: list[JsonObject] = []
    every = [*gateway.registry.states.values(), *(s for s in gateway.retired if s.outstanding)]
    for upstream in gateway.table.routes().values():
        route = upstream.route
        # Backends that left this route (a container stopping) with its requests still in flight.
        draining = [s for s in every if s.in_flight.get(route.name) and s not in upstream.backends]
        routes.append({
            **_route_stats(stats, classes, route.name, slot),
            "name": route.name,  # the host, if any, then the prefix: what logs and metrics call it
            "host": route.host,
            "prefix": route.prefix,
            "source": route.source,
            "strip_prefix": route.strip_prefix,
            "requests": totals.get(route.name, 0),
            "held_for": round(route.hold_until - now, 3) if route.hold_until and not upstream.backends else None,
            "booting": route.booting,  # no container ready yet, one starting: requests wait
            "wake": [waking.get(cid, cid[:12]) for cid in route.wake],
            "backends": [_backend(gateway, state, route.name, names, now) for state in upstream.backends]
            + [_backend(gateway, state, route.name, names, now, draining=True) for state in draining],
        })
    routes.sort(key=lambda r: r["prefix"])
    unrouted = _route_stats(stats, classes, "", slot)
    return {
        "routes": routes,
        "unrouted_requests": totals.get("", 0),
        "unrouted": {"status": unrouted["status"], "history": unrouted["history"]},
        "protocols": dict(sorted(stats.protocols.items())) if stats is not None else {},  # requests by protocol
        "swaps": gateway.swaps,
        # Containers and services skipped, and labels routed without (discovery/_container.py).
        "warnings": list(gateway.watcher.warnings) if gateway.watcher is not None else [],
        "history_slot": HISTORY_SLOT,  # seconds per point of "history"
        "history_end": slot,  # the slot number of its last point (time.monotonic() // history_slot)
        "gateway": _gateway(gateway),
    }


def _container_names(gateway: Gateway) -> tuple[dict[Address, str], dict[str, str]]:
    """The containers' names by address, and by id (the stopped ones a request may wake)."""
    names: dict[Address, str] = {}
    waking: dict[str, str] = {}
    if gateway.watcher is not None:
        for container in gateway.watcher.containers.containers.values():
            waking[container.id] = container.name
            if container.address is not None:
                names[container.address] = container.name
    return names, waking


def _backend(gateway: Gateway, state: BackendState, route: str, names: dict[Address, str], now: float, *,
             draining: bool = False) -> JsonObject:
    """One backend of a route in /routes; `draining`: it left the route with requests in flight."""
    return {
        "address": str(state.address),
        "container": names.get(state.address),
        "state": "draining" if draining else state.status(now),  # up | ejected | retrying | draining
        "retry_in": (round(state.down_until - now, 3) if not draining and not state.is_up(now)
                     and not state.check_down else None),
        "last_check": round(now - state.last_check, 3) if not draining and state.last_check else None,  # s ago
        "down_for": round(now - state.down_since, 3) if not draining and state.check_down else None,
        "in_flight": state.in_flight.get(route, 0),  # this route's requests
        "in_flight_all_routes": state.outstanding,
        "idle_connections": 0 if draining else gateway.idle_upstreams(state),
        "failures": state.failures,
    }


def _gateway(gateway: Gateway) -> JsonObject:
    """The gateway's own entry in /routes."""
    config = gateway.config
    return {
        "version": __version__,
        "started": gateway.started,  # the Unix time it started
        "uptime": round(time.time() - gateway.started, 1),
        "listen": [f"http://{host}:{port}" for host, port in gateway.addresses]
        + [f"https://{host}:{port}" for host, port in gateway.tls_addresses],
        "connections": gateway.connections,
        "timeouts": {name: getattr(config.timeouts, name) for name in config.timeouts.__dataclass_fields__},
        "io": config.io,
    }


def _route_stats(stats: Stats | None, classes: dict[str, dict[str, int]], name: str, slot: int) -> JsonObject:
    # A route's answers for the status page: counts by status class, p50 and
    # p99 in seconds, body bytes both ways, and its chart's history.
    if stats is None:
        return {"status": {}, "latency_buckets": [], "p50": None, "p99": None, "bytes_in": 0, "bytes_out": 0,
                "history": None}
    counts = stats.buckets.get(name)
    history = stats.history.get(name)
    requests, errors = history.series(slot) if history is not None else ([0] * HISTORY_SLOTS, [0] * HISTORY_SLOTS)
    return {
        "status": classes.get(name, {}),
        "latency_buckets": counts or [],  # routing/_stats.BUCKETS, then +Inf: what --workers merging adds up
        "p50": None if counts is None else _rounded(quantile(counts, 0.5)),
        "p99": None if counts is None else _rounded(quantile(counts, 0.99)),
        "bytes_in": stats.bytes_in.get(name, 0),
        "bytes_out": stats.bytes_out.get(name, 0),
        "history": {"requests": requests, "errors": errors},
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def activity(gateway: Gateway, now: float | None = None) -> JsonObject:
    """The /activity JSON: per backend address, requests in flight and seconds since the last one ended.

    What the other workers of `--workers N` ask before stopping an idle
    container (_waker.py): a worker sees only its own requests.
    """
    now = time.monotonic() if now is None else now
    return {"backends": {
        str(state.address): {
            "in_flight": state.outstanding,
            "idle_for": round(now - state.last_done, 3) if state.last_done else None,
        } for state in gateway.registry.states.values()
    }}


def health(gateway: Gateway, now: float | None = None) -> tuple[int, JsonObject]:
    """The /healthz status and document."""
    now = time.monotonic() if now is None else now
    watcher = gateway.watcher
    docker = None
    if watcher is not None:
        docker = {
            "status": watcher.status,
            "engine": watcher.engine or None,  # "Podman 4.3.1", once it answered
            "seconds_since_event": round(now - watcher.last_event, 3) if watcher.last_event else None,
            "reconnects": watcher.reconnects,
        }
    if gateway.draining:
        status = "draining"
    elif not gateway.listening:
        status = "starting"  # waiting for its first Docker listing: not accepting connections yet
    else:
        status = "serving"
    return (200 if status == "serving" else 503), {"status": status, "routes": len(gateway.table), "docker": docker}


class AdminServer(AdminListener):
    """Serves the admin endpoints of one gateway (see AdminListener for where)."""

    def __init__(self, gateway: Gateway, address: Address | None, *, unix_path: str | None = None) -> None:
        super().__init__(address, unix_path=unix_path)
        self.gateway = gateway

    async def respond(self, method: bytes, target: bytes) -> tuple[int, str, bytes]:
        if method not in (b"GET", b"HEAD"):
            return 405, "text/plain", b"405 only GET and HEAD\n"
        path = target.split(b"?", 1)[0]
        gateway = self.gateway
        if path == b"/":
            events = list(gateway.watcher.recent)[::-1] if gateway.watcher is not None else []
            page = render_page(routes_document(gateway), health(gateway)[1], events)
            return 200, "text/html; charset=utf-8", page.encode()
        if path == b"/routes":
            return 200, "application/json", json_body(routes_document(gateway))
        if path == b"/healthz":
            status, document = health(gateway)
            return status, "application/json", json_body(document)
        if path == b"/metrics":
            if gateway.stats is None:
                return 404, "text/plain", b"404 metrics are off\n"
            body, content_type = render(gateway)
            return 200, content_type, body
        if path == b"/events":
            events = list(gateway.watcher.recent) if gateway.watcher is not None else []
            return 200, "application/json", json_body({"events": events[::-1]})
        if path == b"/activity":
            return 200, "application/json", json_body(activity(gateway))
        return 404, "text/plain", b"404 not an admin endpoint\n"
