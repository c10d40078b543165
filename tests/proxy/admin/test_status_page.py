# The admin status page in a real browser: Debian's Chromium, headless. The
# page loads, its script fills in a route created while the gateway ran, and
# the browser logs no console message (no error, no failed fetch).
#
# Without chromium this skips, saying why; with FASTROUTE_REQUIRE_DOCKER=1
# (CI, which installs it) it fails instead.

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from ...docker_support import RUN_ID, RUN_LABEL, DockerLab, require_tool, wait_for_port
from ...helpers import LOOPBACK, unused_port
from ..app.test_serve_cli import Gateway, backends  # noqa: F401 - the fixture

CHROMIUM_LIMIT = 60  # seconds for one headless page load


def chromium() -> str:
    return require_tool(("chromium", "chromium-browser"), "apt-get install chromium")


def load(url: str, profile: Path) -> tuple[str, list[str]]:
    """The page's DOM after its scripts ran, and every console message."""
    result = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--no-first-run", "--virtual-time-budget=3000", "--enable-logging=stderr", "--v=0",
         f"--user-data-dir={profile}", "--dump-dom", url],
        capture_output=True, text=True, timeout=CHROMIUM_LIMIT,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    return result.stdout, console


def test_the_status_page_shows_a_route_created_meanwhile(tmp_path: Path, backends: list[int]) -> None:  # noqa: F811
    routes = tmp_path / "routes.toml"
    routes.write_text(f'[[routes]]\nprefix = "/before"\nbackends = ["{LOOPBACK}:{backends[0]}"]\n'
                      f'[[routes]]\nprefix = "/dead"\nbackends = ["{LOOPBACK}:{unused_port()}"]\n')
    admin = unused_port()
    gateway = Gateway("--routes-file", str(routes), "--admin", f"{LOOPBACK}:{admin}")
    try:
        assert gateway.get("/before/x")[0] == 200
        assert gateway.get("/dead/x")[0] == 502  # refused: ejected, its retry some seconds away
        routes.write_text(routes.read_text() + '[[routes]]\nprefix = "/created/<b>during</b>"\n'
                          f'backends = ["{LOOPBACK}:{backends[1]}"]\n')
        gateway.proc.send_signal(signal.SIGHUP)
        probe = Gateway.__new__(Gateway)
        probe.port = admin
        for _ in range(100):
            if b"/created/" in probe.get("/routes")[1]:
                break
            subprocess.run(["sleep", "0.05"])

        dom, console = load(f"http://{LOOPBACK}:{admin}/", tmp_path / "profile")

        assert console == []
        assert "<code>/created/&lt;b&gt;during&lt;/b&gt;</code>" in dom  # as text, not as markup
        assert "<code>/before</code>" in dom
        assert "serving · 3 routes · Docker not followed" in dom
        assert re.search(r"ejected, retry in \d+\.\d s, 1 failure<", dom), dom
        assert '<section id="docker-events" hidden="">' in dom  # no empty table of events nobody follows
        assert "1</td>" in dom  # /before's one request
    finally:
        assert gateway.stop()[0] == 0


def test_with_docker_followed_the_page_shows_the_last_events(tmp_path: Path, docker_lab: DockerLab) -> None:
    admin, port = unused_port(), unused_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "proxy", "serve", "--listen", f"{LOOPBACK}:{port}", "--admin", f"{LOOPBACK}:{admin}",
         "--network", docker_lab.network, "--docker-label", f"{RUN_LABEL}={RUN_ID}", "--hold", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_for_port((LOOPBACK, admin), limit=15)
        backend = docker_lab.start_backend(labels={"fastroute.route": "/page/events"})
        probe = Gateway.__new__(Gateway)
        probe.port = admin
        for _ in range(200):
            if backend.name.encode() in probe.get("/events")[1]:
                break
            time.sleep(0.05)

        dom, console = load(f"http://{LOOPBACK}:{admin}/", tmp_path / "profile")

        assert console == []
        assert '<section id="docker-events">' in dom
        assert backend.name in dom and "<code>/page/events</code>" in dom
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err


def test_a_broken_page_would_be_seen(tmp_path: Path) -> None:
    # The check above can fail: a page whose script throws is caught.
    page = tmp_path / "broken.html"
    page.write_text("<html><body><script>undefinedFunction();</script></body></html>")
    _, console = load(page.as_uri(), tmp_path / "profile")
    assert any("undefinedFunction is not defined" in line for line in console)


def test_status_page_puts_no_data_into_html() -> None:
    from proxy.admin._status_page import STATUS_PAGE

    script = STATUS_PAGE.split("<script>", 1)[1]
    assert "innerHTML" not in script and "insertAdjacentHTML" not in script and "document.write" not in script
