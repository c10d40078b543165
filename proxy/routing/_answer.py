# Pure: the gateway's own answers (a refused head, no route, a failed
# backend, a redirect) as one decision: status, reason, headers, body, and
# whether the client connection ends with it. The server only writes it.
#
# Rules:
# - a short text/plain body: "STATUS REASON: detail";
# - the connection ends after 400, 408, 413, 414, 431, 501 and 505 (what
#   follows the request on the connection cannot be trusted), while
#   draining, and when the request's body was not read (its framing is in
#   doubt); it then says "Connection: close";
# - Retry-After when the error carries one; Location for a redirect.

from __future__ import annotations

from dataclasses import dataclass

from .._errors import REASONS, PermanentRedirect, ProxyError
from ..protocol._wire import encode_response_head
from ._record import Exchange

__all__ = ["Answer", "CLOSING_STATUSES", "error_answer", "refusal"]

CLOSING_STATUSES = frozenset({400, 408, 413, 414, 431, 501, 505})


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    reason: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    closing: bool


def error_answer(error: ProxyError, *, draining: bool = False, body_unread: bool = False,
                 head_refused: bool = False) -> Answer:
    """The answer to `error`.

    Args:
        draining: the gateway is draining (this is the connection's last answer).
        body_unread: the request's body was not read.
        head_refused: the request head itself was refused: the connection
            always ends (nothing after it can be framed).
    """
    status = error.status
    reason = REASONS.get(status, error.reason)
    body = f"{status} {reason}: {error.detail}\n" if error.detail or head_refused else f"{status} {reason}\n"
    closing = head_refused or status in CLOSING_STATUSES or draining or body_unread
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    if error.retry_after is not None:
        headers.append((b"retry-after", str(error.retry_after).encode()))
    if isinstance(error, PermanentRedirect):
        headers.append((b"location", error.location))
    if closing:
        headers.append((b"connection", b"close"))
    return Answer(status, reason.encode(), headers, body.encode(), closing)


def refusal(error: ProxyError, now: float) -> tuple[bytes, Exchange]:
    """A refused request head's answer, as bytes for the client, and its record (`now`: time.monotonic())."""
    answer = error_answer(error, head_refused=True)
    exchange = Exchange(now)
    exchange.status = answer.status
    exchange.bytes_out = len(answer.body)
    return encode_response_head(answer.status, answer.reason, answer.headers) + answer.body, exchange
