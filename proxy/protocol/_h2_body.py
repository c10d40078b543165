# Pure: an HTTP/2 request's body as an HTTP/1.1 backend receives it, and
# the check of its length (RFC 9113 section 8.1.1), whichever HTTP/2 stack
# delivered the DATA frames.
#
# Rules:
# - framing to the backend: the client's Content-Length when it sent one;
#   no body when the HEADERS frame ended the stream; otherwise chunked
#   (the length is not known before END_STREAM);
# - a Content-Length that the DATA frames exceed, or do not reach by the
#   end of the stream, makes the request malformed (H2Malformed: the stream
#   is reset with PROTOCOL_ERROR). Past its length, no byte goes on: the
#   backend never sees another length than the one announced;
# - request trailers never become header fields: with a Content-Length
#   they are dropped (HTTP/1.1 has no trailers outside chunked); chunked,
#   they may follow the last chunk (RFC 9112 section 7.1.2).

from __future__ import annotations

from ._h2_head import H2Malformed
from ._head import RequestHead, body_length

__all__ = ["CHUNKED", "LENGTH", "NONE", "RequestBody"]

NONE, LENGTH, CHUNKED = "none", "length", "chunked"  # how the body goes to the backend


class RequestBody:
    """The body of one HTTP/2 request: its framing to the backend, and its length checked."""

    __slots__ = ("framing", "declared", "received")

    def __init__(self, head: RequestHead, *, end_stream: bool) -> None:
        """`head` is the request's checked head; `end_stream` if its HEADERS frame ended the stream."""
        self.declared = body_length(head.headers)
        self.received = 0
        if self.declared is not None:
            self.framing = LENGTH
        elif end_stream:
            self.framing = NONE
        else:
            self.framing = CHUNKED
        if end_stream:
            self.end()

    @classmethod
    def dropped(cls) -> RequestBody:
        """The body of a request the gateway answers itself: nothing of it goes on, nothing is checked."""
        body = cls.__new__(cls)
        body.framing, body.declared, body.received = CHUNKED, None, 0
        return body

    def data(self, size: int) -> None:
        """`size` more bytes of DATA came (before they go on).

        Raises:
            H2Malformed: past the declared length, or a body after a stream that had none.
        """
        self.received += size
        if self.framing == NONE and size:
            raise H2Malformed("DATA on a stream its HEADERS ended", status=400)
        if self.declared is not None and self.received > self.declared:
            raise H2Malformed(f"DATA past the Content-Length of {self.declared}", status=400)

    def end(self) -> None:
        """The stream ended (END_STREAM).

        Raises:
            H2Malformed: short of the declared length.
        """
        if self.declared is not None and self.received != self.declared:
            raise H2Malformed(f"{self.received} bytes of DATA for a Content-Length of {self.declared}", status=400)

    def head_fields(self) -> list[tuple[bytes, bytes]]:
        """The framing field the backend's request head needs besides the head's own (chunked only)."""
        return [(b"transfer-encoding", b"chunked")] if self.framing == CHUNKED else []
