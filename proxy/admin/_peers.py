# The workers of `serve --workers N` ask each other (and the admin front asks
# them) over their admin Unix sockets: one GET, one answer, a deadline. A
# worker that does not answer in time is "no answer", never an error.

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable

import h11
import trio

from .._config import Address

__all__ = ["MAX_WORKER_ANSWER", "WORKER_DEADLINE", "ask", "peer_idle_for"]

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
