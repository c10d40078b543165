# The admin status page in a real browser: Debian's Chromium, headless. The
# page loads with a route created while the gateway ran, and the browser
# logs no console message (no error, no failed fetch). Then, driven over
# the DevTools protocol (tests/browser_support.py): the values of a known
# request pattern read from the DOM, under load, with and without
# JavaScript, at a phone's width, and merged across --workers.
#
# Without chromium this skips, saying why; with FASTROUTE_REQUIRE_DOCKER=1
# (CI, which installs it) it fails instead.

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from html.parser import HTMLParser
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from fastroute import __version__

from ...browser_support import QUIET, Browser
from ...docker_support import RUN_ID, RUN_LABEL, DockerLab, require_tool, wait_for_port
from ...helpers import LOOPBACK, unused_port
from ..app.test_serve_cli import Gateway, backends  # noqa: F401 - the fixture

CHROMIUM_LIMIT = 60  # seconds for one headless page load


def chromium() -> str:
    return require_tool(("chromium", "chromium-browser"), "apt-get install chromium")


@pytest.fixture
def has_chromium() -> None:
    """Skips (or fails, in CI) before the test starts anything, when there is no Chromium."""
    chromium()


@pytest.fixture
def browsers(tmp_path: Path, has_chromium: None) -> Iterator[Callable[..., Browser]]:
    """Opens a headless Chromium (a profile of its own under tmp_path); each is closed after the test."""
    opened: list[Browser] = []

    def open_one(name: str, *, javascript: bool = True) -> Browser:
        opened.append(Browser(tmp_path / name, javascript=javascript))
        return opened[-1]

    yield open_one
    for browser in opened:
        browser.close()


def load(url: str, profile: Path) -> tuple[str, list[str]]:
    """The page's DOM after its scripts ran, and every console message."""
    result = subprocess.run(
        [chromium(), *QUIET, "--virtual-time-budget=3000", "--enable-logging=stderr", "--v=0",
         f"--user-data-dir={profile}", "--dump-dom", url],
        capture_output=True, text=True, timeout=CHROMIUM_LIMIT,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    return result.stdout, console


def test_the_status_page_shows_a_route_created_meanwhile(
    tmp_path: Path, backends: list[int], has_chromium: None  # noqa: F811
) -> None:
    routes = tmp_path / "routes.toml"
    routes.write_text(f'[[routes]]\nprefix = "/before"\nbackends = ["{LOOPBACK}:{backends[0]}"]\n'
                      f'[[routes]]\nprefix = "/dead"\nbackends = ["{LOOPBACK}:{unused_port()}"]\n')
    admin = unused_port()
    gateway = Gateway("--routes-file", str(routes), "--admin", f"{LOOPBACK}:{admin}", *STILL)
    try:
        assert gateway.get("/before/x")[0] == 200
        assert gateway.get("/dead/x")[0] == 502  # refused: ejected
        routes.write_text(routes.read_text() + '[[routes]]\nprefix = "/created/<b>during</b>"\n'
                          f'backends = ["{LOOPBACK}:{backends[1]}"]\n')
        gateway.proc.send_signal(signal.SIGHUP)
        probe = Gateway.__new__(Gateway)
        probe.port = admin
        deadline = time.monotonic() + 60  # only a hang reaches it
        while b"/created/" not in probe.get("/routes")[1]:
            assert time.monotonic() < deadline, "SIGHUP did not bring the new route in"
            time.sleep(0.05)

        dom, console = load(f"http://{LOOPBACK}:{admin}/", tmp_path / "profile")

        assert console == []
        assert "<code>/created/&lt;b&gt;during&lt;/b&gt;</code>" in dom  # as text, not as markup
        assert "<code>/before</code>" in dom
        assert "serving · 3 routes · Docker not followed" in dom
        assert re.search(r"ejected, retry in \d{3}\.\d s, 1 failure<", dom), dom
        assert 'id="docker-events"' not in dom  # no empty table of events nobody follows
        assert "1</td>" in dom  # /before's one request
    finally:
        assert gateway.stop()[0] == 0


@contextmanager
def following_docker(lab: DockerLab, *flags: str) -> Iterator[tuple[Gateway, Gateway]]:
    """`fastroute serve` following this test's containers: (its gateway, its admin), stopped after."""
    admin, port = unused_port(), unused_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "proxy", "serve", "--listen", f"{LOOPBACK}:{port}", "--admin", f"{LOOPBACK}:{admin}",
         "--network", lab.network, "--docker-label", f"{RUN_LABEL}={RUN_ID}", "--hold", "0", *flags],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_for_port((LOOPBACK, admin), limit=60)
        gateway, probe = Gateway.__new__(Gateway), Gateway.__new__(Gateway)
        gateway.port, probe.port = port, admin
        yield gateway, probe
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err


def test_with_docker_followed_the_page_shows_the_last_events(
    tmp_path: Path, docker_lab: DockerLab, has_chromium: None
) -> None:
    with following_docker(docker_lab) as (_, probe):
        backend = docker_lab.start_backend(labels={"fastroute.route": "/page/events"})
        deadline = time.monotonic() + 60  # only a hang reaches it
        while backend.name.encode() not in probe.get("/events")[1]:
            assert time.monotonic() < deadline, "the container's start is not among the events"
            time.sleep(0.05)

        dom, console = load(f"http://{LOOPBACK}:{probe.port}/", tmp_path / "profile")

        assert console == []
        assert '<section id="docker-events">' in dom
        assert backend.name in dom and "<code>/page/events</code>" in dom


def test_a_backend_that_resets_every_request_fails_no_get_and_the_page_shows_it_ejected(
    tmp_path: Path, docker_lab: DockerLab, has_chromium: None
) -> None:
    with following_docker(docker_lab, *STILL) as (gateway, probe):
        good = docker_lab.start_backend(labels={"fastroute.route": "/flaky"})
        # It accepts, and resets each connection (the request read or not), as a crash-looping server does.
        bad = docker_lab.start_backend(labels={"fastroute.route": "/flaky"}, environment={"SERVER": "reset"})
        deadline = time.monotonic() + 60  # only a hang reaches it
        while not all(f'"{b.ip}:8000"'.encode() in probe.get("/routes")[1] for b in (good, bad)):
            assert time.monotonic() < deadline, "the two containers are not both routed"
            time.sleep(0.05)

        replies = [gateway.get("/flaky/") for _ in range(60)]

        assert [status for status, _ in replies] == [200] * 60
        assert all(f"host={good.name}".encode() in body for _, body in replies)
        dom, console = load(f"http://{LOOPBACK}:{probe.port}/", tmp_path / "profile")
        assert console == []
        assert re.search(rf'<li class="state-ejected">{bad.name} <span class="muted">{bad.ip}:8000</span> · '
                         r"ejected, retry in \d+\.\d s", dom), dom
        assert f'<li class="state-up">{good.name} ' in dom


def test_a_broken_page_would_be_seen(tmp_path: Path, has_chromium: None) -> None:
    # The check above can fail: a page whose script throws is caught.
    page = tmp_path / "broken.html"
    page.write_text("<html><body><script>undefinedFunction();</script></body></html>")
    _, console = load(page.as_uri(), tmp_path / "profile")
    assert any("undefinedFunction is not defined" in line for line in console)


ROW_CELLS = """JSON.stringify(Object.fromEntries([...document.querySelectorAll("#routes tr")].map(row =>
  [row.dataset.prefix, Object.fromEntries([...row.children].map((td, i) =>
    [td.dataset.label || "route", td.dataset.label === "last minutes" ? "" : td.textContent.trim()]))])))"""
CHARTS = """JSON.stringify(Object.fromEntries([...document.querySelectorAll("#routes tr")].map(row => {
  const svg = row.querySelector("svg.chart");
  const sum = name => svg.dataset[name].split(",").map(Number).reduce((a, b) => a + b, 0);
  return [row.dataset.prefix, {requests: sum("requests"), errors: sum("errors"),
    bars: svg.dataset.requests.split(",").length, red: svg.querySelectorAll("rect.err").length}];
})))"""
SUMMARY = """JSON.stringify(Object.fromEntries([...document.querySelectorAll("#summary dd")].map(dd =>
  [dd.dataset.item, dd.textContent])))"""


def known_pattern(gateway: Gateway) -> None:
    """7 answers from /ok, 3 failures from /dead (refused: 502, then 503 while a worker has it ejected),
    2 requests for no route (404)."""
    assert [gateway.get("/ok/x")[0] for _ in range(7)] == [200] * 7
    assert all(gateway.get("/dead/x")[0] in (502, 503) for _ in range(3))
    assert [gateway.get("/nowhere")[0] for _ in range(2)] == [404] * 2


# A refused backend stays ejected (ten minutes) while the page is read, however long the browser takes.
STILL = ("--eject-time", "600")


def routes_file(tmp_path: Path, backends: list[int]) -> Path:  # noqa: F811
    routes = tmp_path / "routes.toml"
    routes.write_text(f'[[routes]]\nprefix = "/ok"\nbackends = ["{LOOPBACK}:{backends[0]}"]\n'
                      f'[[routes]]\nprefix = "/dead"\nbackends = ["{LOOPBACK}:{unused_port()}"]\n'
                      f'[[routes]]\nprefix = "/busy"\nbackends = ["{LOOPBACK}:{backends[1]}"]\n')
    return routes


def load_busy(gateway: Gateway, stop: threading.Event, answered: threading.Event) -> None:
    """GET /busy/x until `stop` is set (bounded: at most 300 s and 50,000 requests); `answered` once one was."""
    deadline = time.monotonic() + 300
    for _ in range(50_000):
        if stop.is_set() or time.monotonic() > deadline:
            return
        gateway.get("/busy/x")
        answered.set()


def test_the_page_shows_a_known_pattern_under_load_with_and_without_javascript(
    tmp_path: Path, backends: list[int], browsers: Callable[..., Browser]  # noqa: F811
) -> None:
    admin = unused_port()
    browser = browsers("js")
    plain = browsers("nojs", javascript=False)
    gateway = Gateway("--routes-file", str(routes_file(tmp_path, backends)), "--admin", f"{LOOPBACK}:{admin}", *STILL)
    stop, answered = threading.Event(), threading.Event()
    busy = threading.Thread(target=load_busy, args=(gateway, stop, answered), daemon=True)
    try:
        known_pattern(gateway)
        busy.start()
        assert answered.wait(60)  # the load is on before the page is read (60 s: only a hang reaches it)
        url = f"http://{LOOPBACK}:{admin}/"
        browser.width(1280, 900)
        browser.open(url)
        rows = json.loads(browser.evaluate(ROW_CELLS))
        assert (rows["/ok"]["requests"], rows["/ok"]["2xx"], rows["/ok"]["5xx"]) == ("7", "7", "0")
        assert (rows["/dead"]["requests"], rows["/dead"]["5xx"]) == ("3", "3")
        assert re.fullmatch(r"\d+\.\d ms", rows["/ok"]["p50"]) and rows["/ok"]["p99"] != "–"
        assert "ejected" in rows["/dead"]["backends"] and "1 failure" in rows["/dead"]["backends"]
        assert rows["/ok"]["in / out"].endswith("B") and rows["/ok"]["in / out"] != "0 B / 0 B"
        charts = json.loads(browser.evaluate(CHARTS))
        assert charts["/ok"] == {"requests": 7, "errors": 0, "bars": 60, "red": 0}
        assert charts["/dead"]["requests"] == charts["/dead"]["errors"] == 3 and charts["/dead"]["red"] >= 1
        summary = json.loads(browser.evaluate(SUMMARY))
        assert summary["unknown routes (404)"] == "2" and summary["version"] == __version__
        assert summary["listening"] == f"http://{LOOPBACK}:{gateway.port}"
        busy_before = int(rows["/busy"]["requests"].replace(",", ""))
        assert busy_before > 0  # the load is on while the page is read

        # Without JavaScript: the same table, as the server rendered it.
        plain.width(1280, 900)
        plain.open(url)
        still = json.loads(plain.evaluate(ROW_CELLS))
        for prefix in ("/ok", "/dead"):
            assert {k: v for k, v in still[prefix].items() if k not in ("req/s", "backends")} == \
                {k: v for k, v in rows[prefix].items() if k not in ("req/s", "backends")}

        # With JavaScript the page follows: five more answers show within a refresh or two.
        assert [gateway.get("/ok/x")[0] for _ in range(5)] == [200] * 5
        deadline = time.monotonic() + 60  # it refreshes every 2 s: only a hang reaches this
        while json.loads(browser.evaluate(ROW_CELLS))["/ok"]["2xx"] != "12":
            assert time.monotonic() < deadline, "the page did not refresh"
            time.sleep(0.2)
        assert int(json.loads(browser.evaluate(ROW_CELLS))["/busy"]["requests"].replace(",", "")) > busy_before
        assert browser.console == [] and plain.console == []
        browser.screenshot(tmp_path / "desktop.png")
    finally:
        stop.set()
        if busy.is_alive():
            busy.join(30)
        assert gateway.stop()[0] == 0


LAYOUT = """JSON.stringify({
  overflow: document.documentElement.scrollWidth > window.innerWidth,
  width: window.innerWidth,
  head: getComputedStyle(document.querySelector("table.routes thead")).display,
  stacked: [...document.querySelectorAll("#routes tr")].every(row =>
    row.children[1].getBoundingClientRect().top > row.children[0].getBoundingClientRect().top),
  inline: [...document.querySelectorAll("#routes tr")].every(row =>
    row.children[1].getBoundingClientRect().top === row.children[0].getBoundingClientRect().top),
})"""


def test_on_a_phones_width_each_route_is_a_card_and_nothing_overflows(
    tmp_path: Path, backends: list[int], browsers: Callable[..., Browser]  # noqa: F811
) -> None:
    admin = unused_port()
    browser = browsers("phone")
    gateway = Gateway("--routes-file", str(routes_file(tmp_path, backends)), "--admin", f"{LOOPBACK}:{admin}", *STILL)
    try:
        known_pattern(gateway)
        browser.width(390)
        browser.open(f"http://{LOOPBACK}:{admin}/")
        phone = json.loads(browser.evaluate(LAYOUT))
        assert phone == {"overflow": False, "width": 390, "head": "none", "stacked": True, "inline": False}
        browser.screenshot(tmp_path / "phone.png")
        browser.width(1280, 900)
        browser.open(f"http://{LOOPBACK}:{admin}/")
        desktop = json.loads(browser.evaluate(LAYOUT))
        assert desktop == {"overflow": False, "width": 1280, "head": "table-header-group", "stacked": False,
                           "inline": True}
        assert browser.console == []
    finally:
        assert gateway.stop()[0] == 0


def test_with_workers_the_page_adds_every_workers_requests_up(
    tmp_path: Path, backends: list[int], browsers: Callable[..., Browser]  # noqa: F811
) -> None:
    admin = unused_port()
    browser = browsers("workers")
    gateway = Gateway("--routes-file", str(routes_file(tmp_path, backends)), "--admin", f"{LOOPBACK}:{admin}", *STILL,
                      "--workers", "2")
    try:
        # New connections, which the kernel spreads over both workers.
        known_pattern(gateway)
        browser.open(f"http://{LOOPBACK}:{admin}/")
        rows = json.loads(browser.evaluate(ROW_CELLS))
        assert (rows["/ok"]["2xx"], rows["/dead"]["5xx"]) == ("7", "3")
        assert json.loads(browser.evaluate(CHARTS))["/ok"]["requests"] == 7
        summary = json.loads(browser.evaluate(SUMMARY))
        assert summary["workers"] == "2" and summary["unknown routes (404)"] == "2"
        assert "2 of 2 workers serving" in browser.evaluate("document.getElementById('health').textContent")
    finally:
        assert gateway.stop()[0] == 0


@given(st.text(min_size=1, max_size=30))
@example("<b>bold</b>")
@example("<script>alert(1)</script>")
@example('"><img src=x onerror=alert(1)>')
@example("&amp;<")
def test_every_value_from_labels_is_text_not_markup(name: str) -> None:
    from proxy.admin._status_page import render_page

    class Tags(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.tags: set[str] = set()
            self.text = ""

        def handle_starttag(self, tag: str, attrs: Any) -> None:
            self.tags.add(tag)

        def handle_data(self, data: str) -> None:
            self.text += data

    backend = {"address": "10.0.0.1:8000", "container": name, "state": "up", "retry_in": None, "in_flight": 0,
               "failures": 0}
    route = {"name": "/" + name, "prefix": "/" + name, "source": name, "strip_prefix": False, "requests": 1,
             "held_for": None, "booting": False, "wake": [name], "backends": [backend], "status": {"2xx": 1},
             "p50": 0.01, "p99": 0.02, "bytes_in": 0, "bytes_out": 0, "history": {"requests": [1], "errors": [0]}}
    event = {"time": 0, "type": "container", "event": name, "id": name, "name": name}
    page = render_page({"routes": [route], "unrouted_requests": 0, "swaps": 1,
                        "warnings": [f"container {name} (abc): label fastroute.idle-timeout={name!r} is not a "
                                     "positive number of seconds; routed without it"]},
                       {"status": "serving", "routes": 1,
                       "docker": {"status": name, "engine": name, "seconds_since_event": 1.0,
                                  "reconnects": 0}}, [event])
    parsed = Tags()
    parsed.feed(page)
    assert parsed.tags <= {"html", "head", "meta", "link", "title", "style", "body", "main", "h1", "h2", "div",
                           "dl", "dt", "dd", "table", "thead", "tbody", "tr", "th", "td", "code", "svg", "rect",
                           "ul", "li", "span", "section", "script"}
    assert page.count("<script>") == 1 and page.count("<li ") == 1
    assert name in parsed.text or name.strip() == "" or "\r" in name  # (HTML folds CR and trims nothing else)
    assert '<section id="warnings"><h2>Warnings</h2>' in page and "routed without it</li>" in page
