# One line per request on stderr: text (the default), JSON, or nothing.

from __future__ import annotations

import json
import sys
import time
from typing import TextIO

from ..routing._record import Exchange

__all__ = ["AccessLog"]


class AccessLog:
    __slots__ = ("_format", "_out")

    def __init__(self, format: str = "text", out: TextIO | None = None) -> None:
        if format not in ("text", "json", "off"):
            raise ValueError(f"access log format must be text, json or off, not {format!r}")
        self._format = format
        self._out = out

    @property
    def enabled(self) -> bool:
        """Whether write() writes anything."""
        return self._format != "off"

    def write(self, client: str, exchange: Exchange) -> None:
        if self._format == "off":
            return
        now = time.time()
        duration = time.monotonic() - exchange.started
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
        method = exchange.method.decode("ascii", "replace")
        path = exchange.target.decode("ascii", "replace")
        if self._format == "json":
            line = json.dumps({
                "time": stamp, "client": client, "method": method, "path": path,
                "status": exchange.status, "bytes_in": exchange.bytes_in, "bytes_out": exchange.bytes_out,
                "duration": round(duration, 6), "backend": exchange.backend, "protocol": exchange.protocol,
            })
        else:
            line = (
                f"{stamp} {client} {method} {path} {exchange.status} {exchange.bytes_in} "
                f"{exchange.bytes_out} {duration:.6f} {exchange.backend} {exchange.protocol}"
            )
        out = self._out or sys.stderr
        out.write(line + "\n")
        out.flush()
