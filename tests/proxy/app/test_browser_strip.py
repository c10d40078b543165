# A page behind a strip route, opened in a real browser (Debian's Chromium,
# headless) at its prefix without the slash, as a user types it: the
# gateway's 308 to the prefix with the slash makes the page's relative links
# resolve under the prefix, so its script loads and runs.

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ...helpers import LOOPBACK
from .test_serve_cli import Gateway
from ..admin.test_status_page import load

PAGE = b'<!doctype html><html><body><p id="state">script not run</p><script src="app.js"></script></body></html>'
SCRIPT = b'document.getElementById("state").textContent = "script ran from " + document.currentScript.src;'


class _App(BaseHTTPRequestHandler):
    """A web app that thinks it lives at "/": a page and its script, linked relatively."""

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        body, kind = {"/": (PAGE, "text/html"), "/app.js": (SCRIPT, "text/javascript")}.get(
            self.path, (b"not found", "text/plain"))
        self.send_response(200 if body != b"not found" else 404)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def app() -> Iterator[int]:
    server = ThreadingHTTPServer((LOOPBACK, 0), _App)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_a_page_under_a_strip_route_opened_without_the_slash_loads_its_relative_links(
    tmp_path: Path, app: int
) -> None:
    routes = tmp_path / "routes.toml"
    routes.write_text(f'[[routes]]\nprefix = "/webapp-s"\nbackends = ["{LOOPBACK}:{app}"]\nstrip_prefix = true\n')
    gateway = Gateway("--routes-file", str(routes))
    try:
        dom, console = load(f"http://{LOOPBACK}:{gateway.port}/webapp-s", tmp_path / "profile")
    finally:
        assert gateway.stop()[0] == 0

    assert f"script ran from http://{LOOPBACK}:{gateway.port}/webapp-s/app.js" in dom
    assert console == []
