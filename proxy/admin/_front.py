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
# The workers are asked through _peers.py, as they ask each other.

from __future__ import annotations

import json
import logging

import trio

from .._config import Address
from ._merge import merge_health, merge_metrics, merge_routes
from ._metrics import TEXT_FORMAT
from ._peers import ask
from ._http import AdminListener, json_body
from ._status_page import render_page

__all__ = ["AdminFront"]

log = logging.getLogger("fastroute.admin")

class AdminFront(AdminListener):
    """The admin endpoints on `address`, merged from the workers' admin sockets."""

    def __init__(self, address: Address, sockets: list[str]) -> None:
        super().__init__(address)
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
            return await self._page()
        if path not in (b"/routes", b"/healthz", b"/metrics", b"/events"):
            return 404, "text/plain", b"404 not an admin endpoint\n"
        answers = await self._ask_all(path)
        if path == b"/healthz":
            status, document = merge_health([
                (answer[0], json.loads(answer[1])) if answer is not None else None for answer in answers])
            return status, "application/json", json_body(document)
        good = [body for answer in answers if answer is not None and answer[0] == 200 for body in [answer[1]]]
        if not good:
            return 503, "text/plain", b"503 no worker answered\n"
        if path == b"/metrics":
            return 200, TEXT_FORMAT, merge_metrics([body.decode() for body in good])
        if path == b"/routes":
            return 200, "application/json", json_body(merge_routes([json.loads(body) for body in good]))
        return 200, "application/json", good[0]  # /events

    async def _page(self) -> tuple[int, str, bytes]:
        # The status page from the merged documents, as the workers' own pages are made.
        routes, health, events = await self._ask_all(b"/routes"), await self._ask_all(b"/healthz"), None
        good = [json.loads(a[1]) for a in routes if a is not None and a[0] == 200]
        if not good:
            return 503, "text/plain", b"503 no worker answered\n"
        for answer in await self._ask_all(b"/events"):
            if answer is not None and answer[0] == 200:
                events = json.loads(answer[1])["events"]
                break
        _, merged_health = merge_health([(a[0], json.loads(a[1])) if a is not None else None for a in health])
        page = render_page(merge_routes(good), merged_health, events or [])
        return 200, "text/html; charset=utf-8", page.encode()
