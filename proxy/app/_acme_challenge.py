# The HTTP-01 answers, as a backend of the gateway's own: a small HTTP/1.1
# server on a loopback port that answers GET /.well-known/acme-challenge/TOKEN
# with the key authorisation the store holds (any worker's store: they
# share the directory), 404 otherwise. The routes name it for every host
# ACME is asked about (RouteSources), as Traefik's internal router does, so
# both --io paths forward the CA's request to it with no special case.

from __future__ import annotations

import logging
from pathlib import Path

import h11
import trio

from ..gateway._listen import open_listeners
from .._config import Address
from ..tls._redirect import ACME_CHALLENGE_PREFIX
from ..acme._store import read_challenge

__all__ = ["ChallengeServer"]

log = logging.getLogger("fastroute")

READ_LIMIT = 10.0  # seconds for a request to arrive


class ChallengeServer:
    def __init__(self, challenges: Path) -> None:
        self.challenges = challenges
        self.address: Address | None = None
        self.answered = 0  # challenges answered (tests read it)

    async def serve(self, *, task_status: trio.TaskStatus[Address] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await open_listeners(Address("127.0.0.1", 0))
        self.address = Address("127.0.0.1", listeners[0].socket.getsockname()[1])
        task_status.started(self.address)
        await trio.serve_listeners(self._connection, listeners)

    async def _connection(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            with trio.move_on_after(READ_LIMIT):
                while True:
                    event = conn.next_event()
                    if event is h11.NEED_DATA:
                        conn.receive_data(await stream.receive_some(16384))
                        continue
                    if type(event) is not h11.Request:
                        return
                    body = self._answer(event.method, event.target)
                    status = 200 if body is not None else 404
                    body = body if body is not None else b"no such challenge\n"
                    await stream.send_all(conn.send(h11.Response(status_code=status, headers=[
                        ("content-type", "text/plain"), ("content-length", str(len(body))),
                        ("connection", "close")])) + conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage()))
                    return
        except (trio.BrokenResourceError, h11.ProtocolError):
            pass
        finally:
            await trio.aclose_forcefully(stream)

    def _answer(self, method: bytes, target: bytes) -> bytes | None:
        if method not in (b"GET", b"HEAD") or not target.startswith(ACME_CHALLENGE_PREFIX):
            return None
        token = target[len(ACME_CHALLENGE_PREFIX):].partition(b"?")[0].decode("ascii", "replace")
        body = read_challenge(self.challenges, token)
        if body is not None:
            self.answered += 1
            log.info("ACME: answered the HTTP-01 challenge %s", token)
        return body
