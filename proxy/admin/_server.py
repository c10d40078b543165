# The admin listener (--admin HOST:PORT, off by default, never the public
# one): what the gateway is doing, for people and machines.
#
#   GET /         the status page (plain HTML and a little JavaScript)
#   GET /routes   JSON: every prefix, its backends (address, state, requests
#                 in flight, container) and where the route came from
#   GET /healthz  200 while serving (503 while draining), with the Docker
#                 watcher's state and the seconds since its last event or resync
#   GET /metrics  Prometheus text format
#   GET /events   JSON: the last Docker events the watcher applied
#   GET /activity JSON: requests in flight and idle time per backend (for the
#                 other workers of --workers N, before an idle stop)
#
# One request per connection (Connection: close), GET and HEAD only, a
# 5-second deadline per connection: a small surface for a private port.

from __future__ import annotations

import json
import logging
import os
import socket
import time
from typing import Any

import h11
import trio

from .._config import Address
from .._errors import ConfigError
from ._metrics import render
from ._status_page import STATUS_PAGE

__all__ = ["AdminServer", "activity", "health", "routes_document"]

log = logging.getLogger("fastroute.admin")

ADMIN_DEADLINE = 5.0  # seconds for one admin connection, request to response
MAX_ADMIN_HEAD = 8 * 1024  # bytes


def routes_document(gateway: Any, now: float | None = None) -> dict[str, Any]:
    """The /routes JSON: the table in force, backend by backend."""
    now = time.monotonic() if now is None else now
    names: dict[Any, str] = {}
    waking: dict[str, str] = {}
    if gateway.watcher is not None:
        for container in gateway.watcher.containers.containers.values():
            waking[container.id] = container.name
            if container.address is not None:
                names[container.address] = container.name
    totals = gateway.stats.route_totals() if gateway.stats is not None else {}
    routes = []
    for prefix, upstream in gateway.table.routes().items():
        route = upstream.route
        routes.append({
            "prefix": prefix,
            "source": route.source,
            "strip_prefix": route.strip_prefix,
            "requests": totals.get(prefix, 0),
            "held_for": round(route.hold_until - now, 3) if route.hold_until and not upstream.backends else None,
            "booting": route.booting,  # no container ready yet, one starting: requests wait
            "wake": [waking.get(cid, cid[:12]) for cid in route.wake],
            "backends": [{
                "address": str(state.address),
                "container": names.get(state.address),
                "state": "up" if state.is_up(now) else "ejected",
                "in_flight": state.outstanding,
                "idle_connections": len(state.idle),
                "failures": state.failures,
            } for state in upstream.backends],
        })
    routes.sort(key=lambda r: r["prefix"])
    return {"routes": routes, "unrouted_requests": totals.get("", 0), "swaps": gateway.swaps}


def activity(gateway: Any, now: float | None = None) -> dict[str, Any]:
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


def health(gateway: Any, now: float | None = None) -> tuple[int, dict[str, Any]]:
    """The /healthz status and document."""
    now = time.monotonic() if now is None else now
    watcher = gateway.watcher
    docker = None
    if watcher is not None:
        docker = {
            "status": watcher.status,
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


class AdminServer:
    """Serves the admin endpoints of one gateway on its own address.

    With `unix_path` (a worker of `serve --workers N`), on that Unix socket
    instead, for the admin front (_front.py) to ask.
    """

    def __init__(self, gateway: Any, address: Address | None, *, unix_path: str | None = None) -> None:
        self.gateway = gateway
        self.address = address
        self.unix_path = unix_path
        self.addresses: list[tuple[str, int]] = []
        self._listeners: list[trio.SocketListener] = []

    async def listen(self) -> None:
        """Raises ConfigError: the address cannot be listened on."""
        if self.unix_path is not None:
            try:  # a worker started again: its predecessor's socket file is still there
                os.unlink(self.unix_path)
            except FileNotFoundError:
                pass
            sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            await sock.bind(self.unix_path)
            sock.listen(64)
            self._listeners = [trio.SocketListener(sock)]
            return
        assert self.address is not None
        try:
            self._listeners = await trio.open_tcp_listeners(self.address.port, host=self.address.host)
        except OSError as error:
            raise ConfigError(f"cannot listen on --admin {self.address}: {error.strerror or error}") from None
        self.addresses = [listener.socket.getsockname()[:2] for listener in self._listeners]

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled (listening first unless listen() did).

        task_status.started() gets the bound addresses.
        """
        if not self._listeners:
            await self.listen()
        task_status.started(self.addresses)
        await trio.serve_listeners(self._connection, self._listeners)

    async def _connection(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_ADMIN_HEAD)
        try:
            with trio.move_on_after(ADMIN_DEADLINE):
                while True:
                    event = conn.next_event()
                    if event is h11.NEED_DATA:
                        data = await stream.receive_some(65536)
                        if not data:
                            return
                        conn.receive_data(data)
                        continue
                    break
                if type(event) is not h11.Request:
                    return
                status, content_type, body = await self.respond(event.method, event.target)
                headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode()),
                           (b"cache-control", b"no-store"), (b"connection", b"close")]
                await stream.send_all(conn.send(h11.Response(status_code=status, headers=headers)))
                if event.method != b"HEAD":
                    await stream.send_all(conn.send(h11.Data(data=body)))
                await stream.send_all(conn.send(h11.EndOfMessage()))
        except h11.RemoteProtocolError:
            pass
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        except Exception:
            log.exception("bug: unexpected error on an admin connection")
        finally:
            await trio.aclose_forcefully(stream)

    async def respond(self, method: bytes, target: bytes) -> tuple[int, str, bytes]:
        """(status, content type, body) for one admin request."""
        return self._answer(method, target)

    def _answer(self, method: bytes, target: bytes) -> tuple[int, str, bytes]:
        if method not in (b"GET", b"HEAD"):
            return 405, "text/plain", b"405 only GET and HEAD\n"
        path = target.split(b"?", 1)[0]
        gateway = self.gateway
        if path == b"/":
            return 200, "text/html; charset=utf-8", STATUS_PAGE.encode()
        if path == b"/routes":
            return 200, "application/json", _json(routes_document(gateway))
        if path == b"/healthz":
            status, document = health(gateway)
            return status, "application/json", _json(document)
        if path == b"/metrics":
            if gateway.stats is None:
                return 404, "text/plain", b"404 metrics are off\n"
            body, content_type = render(gateway)
            return 200, content_type, body
        if path == b"/events":
            events = list(gateway.watcher.recent) if gateway.watcher is not None else []
            return 200, "application/json", _json({"events": events[::-1]})
        if path == b"/activity":
            return 200, "application/json", _json(activity(gateway))
        return 404, "text/plain", b"404 not an admin endpoint\n"


def _json(document: Any) -> bytes:
    return json.dumps(document, indent=1).encode() + b"\n"
