# Headless Chromium driven over the DevTools protocol through a pipe
# (--remote-debugging-pipe: JSON messages ending in NUL, on fds 3 and 4), so a
# test can set the window's width, load a page and ask the page's own DOM
# and layout, with no WebSocket library and no driver binary.

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from .docker_support import require_tool

LIMIT = 30.0  # seconds for one answer from the browser

# Headless, as root, on a machine with no way out: no sandbox (root), no
# GPU, and none of Chromium's own background traffic (updates, sync), whose
# refused connections only slow it down.
QUIET = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")


def chromium() -> str:
    return require_tool(("chromium", "chromium-browser"), "apt-get install chromium")


class Browser:
    """One headless Chromium with one page (tab); close() ends it."""

    def __init__(self, profile: Path, *, javascript: bool = True, flags: tuple[str, ...] = ()) -> None:
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def onto_3_and_4() -> None:
            # In the child: Chromium reads commands on fd 3 and writes answers on fd 4. Moved
            # up first, so that neither pipe end is overwritten by the other's dup2.
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_browser_r, from_browser_w)]
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        self.log = profile.parent / f"{profile.name}-chromium.log"
        every = [*QUIET, *flags, "--remote-debugging-pipe", f"--user-data-dir={profile}", "about:blank"]
        if not javascript:
            every.insert(0, "--blink-settings=scriptEnabled=false")
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([chromium(), *every], stdout=subprocess.DEVNULL, stderr=log,
                                         pass_fds=(3, 4), preexec_fn=onto_3_and_4)
        for fd in (to_browser_r, from_browser_w):
            os.close(fd)
        self._buffer = b""
        self._next = 0
        self.console: list[str] = []  # console messages and uncaught exceptions of the page
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self._session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Runtime.enable", session=True)
        self.call("Page.enable", session=True)

    def _send(self, message: dict[str, Any]) -> None:
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")

    def _receive(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            chunk = os.read(self._from_browser, 65536)
            if not chunk:
                raise RuntimeError(f"Chromium ended: {self.log.read_text(errors='replace')[-2000:]}")
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        found: dict[str, Any] = json.loads(message)
        return found

    def call(self, method: str, *, session: bool = False, **params: Any) -> dict[str, Any]:
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params}
        if session:
            message["sessionId"] = self._session
        self._send(message)
        deadline = time.monotonic() + LIMIT
        while time.monotonic() < deadline:
            answer = self._receive()
            if answer.get("method") == "Runtime.consoleAPICalled":
                self.console.append(" ".join(str(a.get("value", a.get("description", "")))
                                             for a in answer["params"]["args"]))
            elif answer.get("method") == "Runtime.exceptionThrown":
                self.console.append(answer["params"]["exceptionDetails"].get("text", "exception"))
            if answer.get("id") == self._next:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                result: dict[str, Any] = answer.get("result", {})
                return result
        raise TimeoutError(f"no answer to {method} within {LIMIT:g}s")

    def width(self, pixels: int, height: int = 844) -> None:
        """Lay the page out as a phone of this width would (mobile viewport)."""
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=pixels, height=height,
                  deviceScaleFactor=1, mobile=True)

    def open(self, url: str) -> None:
        self.call("Page.navigate", session=True, url=url)
        deadline = time.monotonic() + LIMIT
        while self.evaluate("document.readyState") != "complete":
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not load")
            time.sleep(0.05)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (it may return a JSON-able value)."""
        answer = self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True)
        if "exceptionDetails" in answer:
            raise RuntimeError(f"{expression}: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    def screenshot(self, path: Path) -> None:
        import base64

        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", session=True)["data"]))

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except (RuntimeError, TimeoutError, OSError):
            pass
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
