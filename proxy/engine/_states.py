# Pure: the states of a client connection the engine serves, and every move
# between them, in one table. The general path (_exchange.NativeClient and
# the streams on it, _stream_shell.py) enters a state only through the
# connection's enter(), which refuses a move this table does not list (a
# bug: that connection ends, as any bug in one does). The
# compiled cycle (_cycle_c.pyx) keeps its two moves as C assignments on
# the warm path, with the same numbers; a test reads them from its source
# and finds each here, marked as the cycle's. The diagram in
# ARCHITECTURE.md is made from this table (`python -m proxy.engine._states`;
# a test keeps the two equal).

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ALLOWED", "CLOSED", "CONNECT", "FAST", "HANDSHAKE", "HEAD", "MOVES", "NAMES", "RESPONSE", "SEND",
           "SPLICE", "START", "Move", "diagram", "moved"]

HEAD = 0  # waiting for (the rest of) a request head; idle until a byte comes
CONNECT = 1  # a new backend connection is opening
SEND = 2  # the request head is being written to the backend
RESPONSE = 3  # the backend's response is read and written to the client
SPLICE = 4  # the rest of a long Content-Length body, moved in the kernel
CLOSED = 5  # done (closed, or handed back to the trio path)
FAST = 6  # the cycle sent the request; the general path's objects for it are not made yet
HANDSHAKE = 7  # a TLS client's handshake, before its first request head

NAMES = {HEAD: "HEAD", CONNECT: "CONNECT", SEND: "SEND", RESPONSE: "RESPONSE", SPLICE: "SPLICE",
         CLOSED: "CLOSED", FAST: "FAST", HANDSHAKE: "HANDSHAKE"}
START = HEAD  # a connection's state when the engine takes it


@dataclass(frozen=True, slots=True)
class Move:
    source: int
    target: int
    why: str
    cycle: bool = False  # made by the compiled cycle (the general path makes the others)


MOVES = (
    Move(HEAD, HEAD, "the first head awaited"),
    Move(HEAD, HANDSHAKE, "a TLS client, before its handshake"),
    Move(HANDSHAKE, HEAD, "the handshake made: the first head"),
    Move(HEAD, FAST, "the cycle routed the head and wrote it to a pooled connection", cycle=True),
    Move(FAST, HEAD, "the cycle wrote the whole response: the next head", cycle=True),
    Move(FAST, SEND, "the backend took part of the head: the general path writes the rest"),
    Move(FAST, RESPONSE, "the general path takes the response over"),
    Move(HEAD, CONNECT, "routed: a new backend connection"),
    Move(HEAD, SEND, "routed: a pooled backend connection"),
    Move(CONNECT, SEND, "connected (or the next backend's pooled connection)"),
    Move(CONNECT, CONNECT, "the connect failed: the next backend"),
    Move(SEND, RESPONSE, "the head is out"),
    Move(SEND, CONNECT, "the backend failed before it answered: sent again, to a new connection"),
    Move(SEND, SEND, "the backend failed before it answered: sent again, to a pooled connection"),
    Move(RESPONSE, CONNECT, "the backend failed before its first byte: sent again, to a new connection"),
    Move(RESPONSE, SEND, "the backend failed before its first byte: sent again, to a pooled connection"),
    Move(RESPONSE, SPLICE, "a long body: the rest in the kernel"),
    Move(RESPONSE, HEAD, "the response is out: the next head"),
    Move(SPLICE, HEAD, "the body is out: the next head"),
    Move(CONNECT, HEAD, "the gateway's own answer (502, 503, 504): the next head"),
    Move(SEND, HEAD, "the gateway's own answer (502, 504): the next head"),
    *(Move(state, CLOSED, "closed, or handed back to the trio path") for state in NAMES if state != CLOSED),
)
ALLOWED = frozenset((move.source, move.target) for move in MOVES)


def moved(source: int, target: int) -> int:
    """`target`, if the table lists the move from `source` to it; else a bug (AssertionError)."""
    if (source, target) not in ALLOWED:
        raise AssertionError(f"no move from {NAMES[source]} to {NAMES[target]} (engine/_states.py)")
    return target


def diagram() -> str:
    """The table as a Mermaid state diagram (ARCHITECTURE.md holds it)."""
    lines = ["stateDiagram-v2", f"    [*] --> {NAMES[START]}"]
    for move in MOVES:
        if move.target != CLOSED:
            by = " (cycle)" if move.cycle else ""
            lines.append(f"    {NAMES[move.source]} --> {NAMES[move.target]}: {move.why}{by}")
    lines.append(f"    note right of {NAMES[CLOSED]}: from every state, closed or handed back to the trio path")
    lines.append(f"    {NAMES[CLOSED]} --> [*]")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(diagram(), end="")
