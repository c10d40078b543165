# Every way a proxied exchange can fail, each with the HTTP status the client
# gets and who is at fault. Raised by the pure modules and the trio shell
# alike; the connection handler turns them into the proxy's own answers.

from __future__ import annotations

__all__ = [
    "BadGateway",
    "ClientProtocolError",
    "ConfigError",
    "GatewayTimeout",
    "NoBackendAvailable",
    "NoRoute",
    "PayloadTooLarge",
    "PermanentRedirect",
    "ProxyError",
    "RequestTimeout",
    "UpstreamConnectError",
]


class ConfigError(Exception):
    """The command line or a routes file is wrong; the message is one line for stderr."""


class ProxyError(Exception):
    """A request the proxy answers itself, with `status` and a short `reason`."""

    status = 500
    reason = "Internal Server Error"

    def __init__(self, detail: str = "", *, status: int | None = None, retry_after: int | None = None) -> None:
        if status is not None:
            self.status = status
        self.detail = detail
        self.retry_after = retry_after  # seconds, for a Retry-After header
        super().__init__(f"{self.status} {detail or self.reason}")


# --- the client's fault -------------------------------------------------------


class ClientProtocolError(ProxyError):
    """Malformed or unsupported request (400, 413, 414, 431, 501, 505)."""

    status = 400
    reason = "Bad Request"


class PayloadTooLarge(ClientProtocolError):
    status = 413
    reason = "Content Too Large"


class RequestTimeout(ProxyError):
    status = 408
    reason = "Request Timeout"


class NoRoute(ProxyError):
    status = 404
    reason = "Not Found"


class PermanentRedirect(ProxyError):
    """Not an error: the request is answered with 308 to `location` (a prefix without its slash)."""

    status = 308
    reason = "Permanent Redirect"

    def __init__(self, location: bytes) -> None:
        super().__init__(f"see {location.decode('ascii', 'replace')}")
        self.location = location


# --- the backend's fault --------------------------------------------------------


class NoBackendAvailable(ProxyError):
    """The route exists but every backend is out of rotation."""

    status = 503
    reason = "Service Unavailable"


class BadGateway(ProxyError):
    """The backend refused, reset, or answered something that is not HTTP."""

    status = 502
    reason = "Bad Gateway"


class UpstreamConnectError(BadGateway):
    """No connection to the backend could be made (nothing was sent).

    refused: the backend's host answered with a refusal (nothing listens on
    the port yet, or any more), rather than a reset, a timeout or no route.
    """

    def __init__(self, detail: str = "", *, refused: bool = False) -> None:
        super().__init__(detail)
        self.refused = refused


class UpstreamConnectTimeout(UpstreamConnectError):
    """The backend did not accept the connection within the connect timeout."""


class GatewayTimeout(ProxyError):
    status = 504
    reason = "Gateway Timeout"


REASONS = {
    308: "Permanent Redirect",
    400: "Bad Request",
    404: "Not Found",
    408: "Request Timeout",
    413: "Content Too Large",
    414: "URI Too Long",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    505: "HTTP Version Not Supported",
}
