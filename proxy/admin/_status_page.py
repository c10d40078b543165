# The admin status page, rendered on the server from the /routes, /healthz
# and /events documents (merged ones under --workers), so that it is a
# whole page without JavaScript: a table per route with its chart as inline
# SVG. With JavaScript it fetches itself every 2 s and swaps the new
# <main> in; there is one renderer, this one. Pure: documents in, text out.
#
# Rules:
# - every value from the gateway is escaped (html.escape) before it goes in:
#   prefixes, host names and container names come from labels;
# - no external resources, no build step: the style and the script are
#   here, and the charts are SVG drawn from the route's history;
# - narrow screens (phones) get one card per route instead of a table row.

from __future__ import annotations

import time
from html import escape

from .._json import JsonObject

__all__ = ["render_page"]

CHART_WIDTH = 120  # px, the chart's viewBox
CHART_HEIGHT = 28

_STYLE = """
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1em; color: #222; }
  h1 { font-size: 1.3em; margin: 0 0 .2em; }
  h2 { font-size: 1.05em; margin: 1.4em 0 .4em; }
  table { border-collapse: collapse; }
  th, td { text-align: left; padding: .25em .7em .25em 0; vertical-align: top; }
  th { border-bottom: 1px solid #ccc; font-weight: 600; }
  tbody tr { border-bottom: 1px solid #eee; }
  .num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
  .bad, .state-ejected, .state-retrying, .state-unhealthy { color: #b00; }
  .state-booting, .state-held, .state-draining { color: #a60; }
  .muted, .source { color: #777; }
  .source { font-size: .9em; }
  ul.backends { margin: 0; padding: 0; list-style: none; }
  svg.chart { display: block; }
  svg.chart .req { fill: #4a7bd0; }
  svg.chart .err { fill: #d33; }
  dl.summary { display: flex; flex-wrap: wrap; gap: .2em 1.6em; margin: .6em 0; }
  dl.summary div { display: flex; gap: .4em; }
  dl.summary dt { color: #777; }
  dl.summary dd { margin: 0; font-variant-numeric: tabular-nums; }
  code { font-size: .95em; overflow-wrap: anywhere; }
  @media (max-width: 720px) {
    table.routes, table.routes tbody, table.routes tr, table.routes td { display: block; }
    table.routes thead { display: none; }
    table.routes tr { padding: .5em 0; }
    table.routes td { padding: .1em 0; text-align: left; }
    table.routes td[data-label]::before { content: attr(data-label) ": "; color: #777; }
  }
"""

_SCRIPT = """
"use strict";
// Fetch this page again every 2 s and swap its <main> in: the server renders it.
async function refresh() {
  try {
    const answer = await fetch(location.pathname, {cache: "no-store"});
    const page = new DOMParser().parseFromString(await answer.text(), "text/html");
    const fresh = page.querySelector("main");
    if (fresh) document.querySelector("main").replaceWith(document.adoptNode(fresh));
  } catch (error) {
    const health = document.getElementById("health");
    health.textContent = "cannot reach the gateway's admin endpoints: " + error;
    health.className = "bad";
  }
}
setInterval(refresh, 2000);
"""


def _number(value: int) -> str:
    return f"{value:,}"


def _bytes(count: int) -> str:
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("kB", 1 << 10)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} B"


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"


def chart(history: dict[str, list[int]] | None, slot: float) -> str:
    """A route's requests (blue) and errors (red) per slot as an SVG bar chart, the newest on the right."""
    requests = (history or {}).get("requests") or []
    errors = (history or {}).get("errors") or []
    if not requests:
        return '<span class="muted">–</span>'
    top = max(max(requests), 1)
    width = CHART_WIDTH / len(requests)
    bars = []
    for index, (count, failed) in enumerate(zip(requests, errors)):
        x = index * width
        if count:
            height = max(1.0, CHART_HEIGHT * count / top)
            bars.append(f'<rect class="req" x="{x:.2f}" y="{CHART_HEIGHT - height:.2f}" '
                        f'width="{max(width - 0.4, 0.5):.2f}" height="{height:.2f}"/>')
        if failed:
            height = max(1.0, CHART_HEIGHT * failed / top)
            bars.append(f'<rect class="err" x="{x:.2f}" y="{CHART_HEIGHT - height:.2f}" '
                        f'width="{max(width - 0.4, 0.5):.2f}" height="{height:.2f}"/>')
    minutes = len(requests) * slot / 60
    title = (f"{sum(requests):,} requests, {sum(errors):,} errors in the last {minutes:g} min "
             f"({slot:g} s a bar)")
    return (f'<svg class="chart" role="img" width="{CHART_WIDTH}" height="{CHART_HEIGHT}" '
            f'viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}" data-requests="{",".join(map(str, requests))}" '
            f'data-errors="{",".join(map(str, errors))}"><title>{escape(title)}</title>'
            f'<rect x="0" y="{CHART_HEIGHT - 0.5}" width="{CHART_WIDTH}" height="0.5" fill="#ccc"/>'
            + "".join(bars) + "</svg>")


def _rate(history: dict[str, list[int]] | None, slot: float) -> str:
    # Requests per second over the last whole slot (the newest one is still filling).
    requests = (history or {}).get("requests") or []
    return f"{requests[-2] / slot:.1f}" if len(requests) >= 2 else "–"


def _backend(backend: JsonObject) -> str:
    state = str(backend["state"])
    words = [state]
    if backend.get("retry_in") is not None and state == "ejected":
        words[0] += f", retry in {backend['retry_in']:.1f} s"
    if state == "unhealthy" and backend.get("down_for") is not None:
        words[0] += f" for {_duration(float(backend['down_for']))}"
    if backend.get("last_check") is not None:
        words.append(f"checked {float(backend['last_check']):.1f} s ago")
    failures = int(backend.get("failures") or 0)
    if failures:
        words.append(f"{failures} failure" + ("" if failures == 1 else "s"))
    in_flight = int(backend.get("in_flight") or 0)
    if in_flight:
        words.append(f"{in_flight} in flight")
    name = backend.get("container")
    label = (f"{escape(str(name))} <span class=\"muted\">{escape(str(backend['address']))}</span>" if name
             else escape(str(backend["address"])))
    return f'<li class="state-{escape(state)}">{label} · {escape(", ".join(words))}</li>'


def _backends(route: JsonObject) -> str:
    if not route["backends"]:
        if route.get("wake"):
            return ('<span class="state-held">stopped, a request wakes: '
                    f'{escape(", ".join(map(str, route["wake"])))}</span>')
        if route.get("held_for") is not None:
            return f'<span class="state-held">held for {route["held_for"]:.1f} s</span>'
        if route.get("booting"):
            return '<span class="state-booting">booting: requests wait for a container to be ready</span>'
        return '<span class="muted">none</span>'
    return '<ul class="backends">' + "".join(_backend(b) for b in route["backends"]) + "</ul>"


def _row(route: JsonObject, slot: float) -> str:
    status = route.get("status") or {}
    source = str(route["source"]) + (", strip" if route.get("strip_prefix") else "")
    cells = [
        f'<td><code>{escape(str(route.get("name", route["prefix"])))}</code>'
        f'<div class="source">{escape(source)}</div></td>',
        f'<td data-label="last minutes">{chart(route.get("history"), slot)}</td>',
        f'<td class="num" data-label="req/s">{_rate(route.get("history"), slot)}</td>',
        f'<td class="num" data-label="requests">{_number(int(route["requests"]))}</td>',
    ]
    for status_class in ("2xx", "3xx", "4xx", "5xx"):
        count = int(status.get(status_class, 0))
        bad = ' bad' if status_class == "5xx" and count else ''
        cells.append(f'<td class="num{bad}" data-label="{status_class}" data-class="{status_class}">'
                     f'{_number(count)}</td>')
    cells += [
        f'<td class="num" data-label="p50">{_ms(route.get("p50"))}</td>',
        f'<td class="num" data-label="p99">{_ms(route.get("p99"))}</td>',
        f'<td class="num" data-label="in / out">{_bytes(int(route.get("bytes_in") or 0))} / '
        f'{_bytes(int(route.get("bytes_out") or 0))}</td>',
        f'<td data-label="backends">{_backends(route)}</td>',
    ]
    return f'<tr data-prefix="{escape(str(route.get("name", route["prefix"])))}">' + "".join(cells) + "</tr>"


def _health_line(health: JsonObject) -> str:
    parts = [str(health.get("status", "")), f"{health.get('routes', 0)} routes"]
    docker = health.get("docker")
    if docker:
        since = docker.get("seconds_since_event")
        parts.append(f"{docker.get('engine') or 'Docker'} {docker['status']}" + (f", last event or resync {since:.1f} s ago"
                                                     if since is not None else "")
                     + f", {docker['reconnects']} reconnects")
    else:
        parts.append("Docker not followed")
    workers = health.get("workers")
    if workers:
        parts.append(f"{workers['serving']} of {workers['total']} workers serving")
    return " · ".join(parts)


def _summary(routes: JsonObject) -> str:
    gateway = routes.get("gateway") or {}
    total = sum(int(r["requests"]) for r in routes["routes"]) + int(routes.get("unrouted_requests", 0))
    unknown = int(((routes.get("unrouted") or {}).get("status") or {}).get("4xx", 0))
    items = [
        ("version", str(gateway.get("version", "?"))),
        ("up for", _duration(float(gateway.get("uptime", 0)))),
        ("listening", ", ".join(gateway.get("listen") or []) or "–"),
        ("requests", _number(total)),
        ("protocols", " · ".join(f"{name} {_number(int(count))}"
                                 for name, count in (routes.get("protocols") or {}).items()) or "–"),
        ("unknown routes (404)", _number(unknown)),
        ("open connections", _number(int(gateway.get("connections", 0)))),
        ("table swaps", _number(int(routes.get("swaps", 0)))),
    ]
    if routes.get("workers"):
        items.append(("workers", str(routes["workers"])))
    timeouts = gateway.get("timeouts") or {}
    if timeouts:
        items.append(("timeouts", ", ".join(f"{name.replace('_', ' ')} {value:g} s"
                                            for name, value in timeouts.items())))
    return ('<dl class="summary" id="summary">' + "".join(
        f'<div><dt>{escape(name)}</dt><dd data-item="{escape(name)}">{escape(value)}</dd></div>'
        for name, value in items) + "</dl>")


def _events(events: list[JsonObject]) -> str:
    rows = "".join(
        f"<tr><td>{escape(time.strftime('%H:%M:%S', time.localtime(float(e.get('time') or 0))))}</td>"
        f"<td>{escape(str(e.get('type', '')) + ' ' + str(e.get('event', '')))}</td>"
        f"<td>{escape(str(e.get('name') or ''))} <span class=\"muted\">{escape(str(e.get('id', '')))}</span></td></tr>"
        for e in events)
    return ('<section id="docker-events"><h2>Last Docker events</h2><table><thead><tr><th>time</th><th>event</th>'
            f'<th>container</th></tr></thead><tbody id="events">{rows}</tbody></table></section>')


def _warnings(warnings: list[str]) -> str:
    items = "".join(f"<li>{escape(str(w))}</li>" for w in warnings)
    return f'<section id="warnings"><h2>Warnings</h2><ul class="bad">{items}</ul></section>\n' if items else ""


def render_page(routes: JsonObject, health: JsonObject, events: list[JsonObject]) -> str:
    """The whole status page for these /routes, /healthz and /events documents."""
    slot = float(routes.get("history_slot") or 5.0)
    rows = "".join(_row(route, slot) for route in routes["routes"])
    serving = health.get("status") == "serving"
    head = ("<tr><th>route</th><th>last minutes</th><th class=\"num\">req/s</th><th class=\"num\">requests</th>"
            "<th class=\"num\">2xx</th><th class=\"num\">3xx</th><th class=\"num\">4xx</th><th class=\"num\">5xx</th>"
            "<th class=\"num\">p50</th><th class=\"num\">p99</th><th class=\"num\">in / out</th><th>backends</th></tr>")
    docker = _events(events) if health.get("docker") else ""  # no table of events nobody follows
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<link rel="icon" href="data:,">\n<title>fastroute</title>\n'
        f"<style>{_STYLE}</style>\n</head>\n<body>\n<main>\n<h1>fastroute</h1>\n"
        f'<div id="health" class="{"muted" if serving else "bad"}">{escape(_health_line(health))}</div>\n'
        f"{_summary(routes)}\n{_warnings(routes.get('warnings') or [])}<h2>Routes</h2>\n"
        f'<table class="routes"><thead>{head}</thead><tbody id="routes">{rows}</tbody></table>\n'
        f"{docker}\n</main>\n<script>{_SCRIPT}</script>\n</body>\n</html>\n"
    )
