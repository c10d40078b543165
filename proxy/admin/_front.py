# The admin listener of `serve --workers N --admin HOST:PORT`: a process of
# its own (forked by the supervisor, _workers.py) that serves the admin
# endpoints on HOST:PORT by asking every worker on its Unix socket and
# merging the answers (_merge.py). Each worker counts only the
# requests the kernel gave it; this is where they add up.
#
# Rules:
# - every worker is asked at once, each with WORKER_DEADLINE; one that does
#   not answer is left out (and /healthz says "degraded");
# - /events comes from the first worker that answers (each follows the same
#   engine); the status page is the same page, fed by the merged documents.
# The workers use the same sockets among themselves: a worker about to stop
# a container it woke (idle) first asks the others (peer_idle_for).

from __future__ import annotations

import json
import logging
import math
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import h11
import trio

from ._server import AdminServer
from ._merge import merge_health, merge_metrics, merge_routes
from .._config import Address
from .._errors import ConfigError
from ._metrics import TEXT_FORMAT
from ._status_page import STATUS_PAGE

__all__ = ["AdminFront", "peer_idle_for", "run_front"]

log = logging.getLogger("fastroute.admin")

WORKER_DEADLINE = 2.0  # seconds for one worker's answer
MAX_WORKER_ANSWER = 16 * 1024 * 1024  # bytes


async def ask(path: str, target: bytes) -> tuple[int, bytes] | None:
    """GET `target` from the admin socket at `path`: (status, body), or None if it did not answer."""
    try:
        with trio.fail_after(WORKER_DEADLINE):
            stream = await trio.open_unix_socket(path)
            try:
                conn = h11.Connection(h11.CLIENT)
                await stream.send_all(conn.send(h11.Request(method="GET", target=target, headers=[
                    ("host", "worker"), ("connection", "close")])) + conn.send(h11.EndOfMessage()))
                status, body = 0, bytearray()
                while True:
                    event = conn.next_event()
                    if event is h11.NEED_DATA:
                        conn.receive_data(await stream.receive_some(65536))
                    elif type(event) is h11.Response:
                        status = event.status_code
                    elif type(event) is h11.Data:
                        body += event.data
                        if len(body) > MAX_WORKER_ANSWER:
                            return None
                    elif type(event) is h11.EndOfMessage:
                        return status, bytes(body)
                    else:
                        return None
            finally:
                await trio.aclose_forcefully(stream)
    except (OSError, trio.TooSlowError, trio.BrokenResourceError, h11.ProtocolError):
        return None


def peer_idle_for(sockets: list[str]) -> Callable[[Address], Awaitable[float]]:
    """For a worker's Waker: how long `address` has been idle on every other worker.

    0.0 while any has a request in flight to it, or when one does not answer
    (it may be busy: do not stop on a guess); math.inf if none ever used it.
    """
    async def idle_for(address: Address) -> float:
        shortest = math.inf
        for path in sockets:
            answer = await ask(path, b"/activity")
            if answer is None or answer[0] != 200:
                return 0.0
            backend = json.loads(answer[1])["backends"].get(str(address))
            if backend is None:
                continue
            if backend["in_flight"]:
                return 0.0
            if backend["idle_for"] is not None:
                shortest = min(shortest, float(backend["idle_for"]))
        return shortest

    return idle_for


class AdminFront(AdminServer):
    """The admin endpoints on `address`, merged from the workers' admin sockets."""

    def __init__(self, address: Address, sockets: list[str]) -> None:
        super().__init__(None, address)
        self.sockets = sockets

    async def _ask_all(self, target: bytes) -> list[tuple[int, bytes] | None]:
        answers: list[tuple[int, bytes] | None] = [None] * len(self.sockets)

        async def one(index: int, path: str) -> None:
            answers[index] = await ask(path, target)

        async with trio.open_nursery() as nursery:
            for index, path in enumerate(self.sockets):
                nursery.start_soon(one, index, path)
        return answers

    async def respond(self, method: bytes, target: bytes) -> tuple[int, str, bytes]:
        if method not in (b"GET", b"HEAD"):
            return 405, "text/plain", b"405 only GET and HEAD\n"
        path = target.split(b"?", 1)[0]
        if path == b"/":
            return 200, "text/html; charset=utf-8", STATUS_PAGE.encode()
        if path not in (b"/routes", b"/healthz", b"/metrics", b"/events"):
            return 404, "text/plain", b"404 not an admin endpoint\n"
        answers = await self._ask_all(path)
        if path == b"/healthz":
            status, document = merge_health([
                (answer[0], json.loads(answer[1])) if answer is not None else None for answer in answers])
            return status, "application/json", _json(document)
        good = [body for answer in answers if answer is not None and answer[0] == 200 for body in [answer[1]]]
        if not good:
            return 503, "text/plain", b"503 no worker answered\n"
        if path == b"/metrics":
            return 200, TEXT_FORMAT, merge_metrics([body.decode() for body in good])
        if path == b"/routes":
            return 200, "application/json", _json(merge_routes([json.loads(body) for body in good]))
        return 200, "application/json", good[0]  # /events


def _json(document: Any) -> bytes:
    return json.dumps(document, indent=1).encode() + b"\n"


async def _serve_front(front: AdminFront) -> None:
    await front.listen()  # before the nursery: a ConfigError stays one line
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(front.serve)
            log.info("admin endpoints on %s (merging %d workers)",
                     ", ".join(f"{h}:{p}" for h, p in front.addresses), len(front.sockets))
            async for _ in signals:
                nursery.cancel_scope.cancel()
                break


def run_front(address: Address, sockets: list[str]) -> int:
    """Blocking: serve the merged admin endpoints until SIGTERM or SIGINT. Returns the exit status."""
    from ..app._serve import ignore_late_stops

    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the supervisor passes SIGHUP on to reload routes
    ignore_late_stops()
    front = AdminFront(address, sockets)
    try:
        trio.run(_serve_front, front)
    except ConfigError as error:
        log.error("%s", error)
        return 1
    return 0
