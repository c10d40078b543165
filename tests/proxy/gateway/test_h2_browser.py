# Chromium over TLS gets HTTP/2 from the gateway: a page with many assets,
# and the status page put behind the gateway, arrive over h2 on one
# connection each, every asset whole.

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ...browser_support import Browser, chromium
from ...helpers import LOOPBACK, unused_port
from ..app.test_serve_cli import Gateway
from ..tls.tls_support import Pki

ASSETS = 40


class _Site(BaseHTTPRequestHandler):
    """A page that names ASSETS images, and the images."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path.endswith("/page"):
            images = "".join(f'<img src="asset/{i}.svg" width="8" height="8">' for i in range(ASSETS))
            body, kind = f"<!doctype html><title>many</title>{images}".encode(), "text/html"
        else:
            body = b'<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><rect width="8" height="8"/></svg>'
            kind = "image/svg+xml"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def site() -> Iterator[int]:
    server = ThreadingHTTPServer((LOOPBACK, 0), _Site)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


PROTOCOLS = """JSON.stringify({
  page: performance.getEntriesByType("navigation")[0].nextHopProtocol,
  assets: performance.getEntriesByType("resource").map(r => r.nextHopProtocol),
  whole: [...document.images].filter(i => i.complete && i.naturalWidth === 8).length,
})"""


def test_chromium_gets_a_page_its_assets_and_the_status_page_over_h2(tmp_path: Path, site: int) -> None:
    chromium()
    issued = Pki(tmp_path).issue("gateway.test")
    admin, tls = unused_port(), unused_port()
    routes = tmp_path / "routes.toml"
    routes.write_text(f'[[routes]]\nprefix = "/site"\nbackends = ["{LOOPBACK}:{site}"]\n\n'
                      f'[[routes]]\nprefix = "/status"\nbackends = ["{LOOPBACK}:{admin}"]\nstrip_prefix = true\n')
    gateway = Gateway("--listen-tls", f"{LOOPBACK}:{tls}", "--tls-cert", str(issued.pair.cert),
                      "--tls-key", str(issued.pair.key), "--routes-file", str(routes), "--admin", f"{LOOPBACK}:{admin}")
    browser = Browser(tmp_path / "profile", flags=("--ignore-certificate-errors",))  # the test CA's leaf
    try:
        browser.open(f"https://{LOOPBACK}:{tls}/site/page")
        seen = json.loads(browser.evaluate(PROTOCOLS))
        assert (seen["page"], set(seen["assets"]), seen["whole"]) == ("h2", {"h2"}, ASSETS)
        assert len(seen["assets"]) >= ASSETS  # (and the favicon it asks for)
        browser.open(f"https://{LOOPBACK}:{tls}/status/")
        assert browser.evaluate('performance.getEntriesByType("navigation")[0].nextHopProtocol') == "h2"
        assert browser.evaluate('document.querySelector("h1").textContent') == "fastroute"
        summary = browser.evaluate('document.querySelector("[data-item=protocols]").textContent')
        assert summary.startswith("HTTP/2 "), summary  # the page's own request is one of them
        assert browser.console == []
    finally:
        browser.close()
        code, err = gateway.stop()
    assert code == 0
    assert err.count(" HTTP/2\n") >= ASSETS + 2, err[-2000:]  # the access log: the page, its assets, the status page
