# Pure: the bounds one HTTP/2 client connection is held to, whichever
# HTTP/2 stack reads its frames, so that both paths (h2 on the trio path,
# libnghttp2 in the engine) answer abuse the same way. The clock is an
# argument; every count is bounded whatever the client sends.
#
# Rules (RFC 9113 section 10.5, and the known attacks):
# - streams: at most max_concurrent_streams open at once (our SETTINGS say
#   so); one more is refused with RST_STREAM REFUSED_STREAM, never queued;
# - Rapid Reset (CVE-2023-44487): a stream the client resets still counts
#   against a budget of resets (a token bucket: resets_per_second, burst
#   reset_burst); past it the connection ends with GOAWAY
#   ENHANCE_YOUR_CALM, so many HEADERS + RST_STREAM cannot become many
#   backend requests;
# - control floods (PING, SETTINGS, and frames that cost a reply or work
#   but carry no request: empty DATA, PRIORITY, WINDOW_UPDATE of 0): the
#   same kind of budget (control_per_second, control_burst); past it,
#   GOAWAY ENHANCE_YOUR_CALM: replies are never queued without bound.

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ENHANCE_YOUR_CALM", "OK", "REFUSED_STREAM", "Bucket", "Guard", "H2Bounds"]

OK = 0
REFUSED_STREAM = 0x7  # RFC 9113 section 7: refuse this stream (the client may retry it elsewhere)
ENHANCE_YOUR_CALM = 0xB  # end the connection (GOAWAY)


@dataclass(frozen=True, slots=True)
class H2Bounds:
    max_concurrent_streams: int = 100
    resets_per_second: float = 100.0  # streams the client may reset, on average
    reset_burst: int = 1000  # and at once
    control_per_second: float = 100.0  # PING, SETTINGS and other frames that carry no request
    control_burst: int = 1000


class Bucket:
    """A token bucket: `rate` tokens a second, `burst` at most; take() says whether one was left."""

    __slots__ = ("rate", "burst", "tokens", "at")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.at = now

    def take(self, now: float) -> bool:
        self.tokens = min(float(self.burst), self.tokens + (now - self.at) * self.rate)  # `now` is monotonic
        self.at = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


class Guard:
    """One client connection's bounds: each call says OK, REFUSED_STREAM (that stream) or
    ENHANCE_YOUR_CALM (the connection)."""

    __slots__ = ("bounds", "open", "_resets", "_control")

    def __init__(self, bounds: H2Bounds, now: float) -> None:
        self.bounds = bounds
        self.open = 0  # streams open now (opened, not closed or reset)
        self._resets = Bucket(bounds.resets_per_second, bounds.reset_burst, now)
        self._control = Bucket(bounds.control_per_second, bounds.control_burst, now)

    def stream_opened(self) -> int:
        """A client's HEADERS opened a stream."""
        if self.open >= self.bounds.max_concurrent_streams:
            return REFUSED_STREAM
        self.open += 1
        return OK

    def stream_closed(self) -> None:
        """A stream that stream_opened() counted ended (answered, or reset by us)."""
        self.open -= 1

    def stream_reset(self, now: float) -> int:
        """The client reset a stream stream_opened() counted."""
        self.open -= 1
        return OK if self._resets.take(now) else ENHANCE_YOUR_CALM

    def control_frame(self, now: float) -> int:
        """A frame that carries no request and costs a reply or work (PING, SETTINGS, ...)."""
        return OK if self._control.take(now) else ENHANCE_YOUR_CALM
