# The admin status page: one static HTML document whose script polls the
# JSON endpoints every 2 s. No build step, no external resources. Every
# value from the gateway (prefixes and names come from container labels) is
# put in the page as text (textContent), never as HTML.

from __future__ import annotations

__all__ = ["STATUS_PAGE"]

STATUS_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<link rel="icon" href="data:,">
<title>fastroute</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
  h1 { font-size: 1.3em; margin: 0 0 .2em; }
  h2 { font-size: 1.05em; margin: 1.4em 0 .4em; }
  table { border-collapse: collapse; }
  th, td { text-align: left; padding: .2em .8em .2em 0; vertical-align: top; }
  th { border-bottom: 1px solid #ccc; }
  .num { text-align: right; font-variant-numeric: tabular-nums; }
  .bad { color: #b00; }
  .muted { color: #777; }
  code { font-size: .95em; }
</style>
</head>
<body>
<h1>fastroute</h1>
<div id="health" class="muted">loading&hellip;</div>
<h2>Routes</h2>
<table>
  <thead><tr><th>prefix</th><th>source</th><th class="num">req/s</th><th class="num">requests</th>
  <th>backends</th></tr></thead>
  <tbody id="routes"></tbody>
</table>
<section id="docker-events" hidden>
<h2>Last Docker events</h2>
<table>
  <thead><tr><th>time</th><th>event</th><th>container</th></tr></thead>
  <tbody id="events"></tbody>
</table>
</section>
<script>
"use strict";
let previous = null;  // {time, totals} of the last poll, for rates

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function describeBackends(route) {
  if (route.backends.length === 0) {
    if (route.wake.length) return "stopped, a request wakes: " + route.wake.join(", ");
    if (route.held_for !== null) return "held for " + route.held_for.toFixed(1) + " s";
    if (route.booting) return "booting: requests wait for a container to be ready";
    return "none";
  }
  return route.backends.map(b => {
    let state = b.state;
    if (b.state === "ejected" && b.retry_in !== null && b.retry_in !== undefined) {
      state += ", retry in " + b.retry_in.toFixed(1) + " s";
    }
    if (b.failures) state += ", " + b.failures + (b.failures === 1 ? " failure" : " failures");
    return b.address + (b.container ? " (" + b.container + ")" : "") + " " + state +
      (b.in_flight ? ", " + b.in_flight + " in flight" : "");
  }).join("; ");
}

function showRoutes(doc) {
  const now = performance.now() / 1000;
  const totals = {};
  const body = document.getElementById("routes");
  const rows = [];
  for (const route of doc.routes) {
    totals[route.name] = route.requests;
    let rate = "";
    if (previous && previous.totals[route.name] !== undefined && now > previous.time) {
      rate = ((route.requests - previous.totals[route.name]) / (now - previous.time)).toFixed(1);
    }
    const row = document.createElement("tr");
    row.dataset.prefix = route.name;
    const prefix = cell(row, "");
    const code = document.createElement("code");
    code.textContent = route.name;
    prefix.appendChild(code);
    cell(row, route.source + (route.strip_prefix ? ", strip" : ""));
    cell(row, rate, "num");
    cell(row, String(route.requests), "num");
    cell(row, describeBackends(route), route.backends.some(b => b.state !== "up") ? "bad" : "");
    rows.push(row);
  }
  body.replaceChildren(...rows);
  previous = {time: now, totals: totals};
}

function showHealth(doc) {
  const parts = [doc.status, doc.routes + " routes"];
  if (doc.docker) {
    parts.push("Docker " + doc.docker.status +
      (doc.docker.seconds_since_event !== null ? ", last event or resync " +
        doc.docker.seconds_since_event.toFixed(1) + " s ago" : "") +
      ", " + doc.docker.reconnects + " reconnects");
  } else {
    parts.push("Docker not followed");
  }
  document.getElementById("docker-events").hidden = !doc.docker;  // no table of events nobody follows
  const health = document.getElementById("health");
  health.textContent = parts.join(" \\u00b7 ");
  health.className = doc.status === "serving" ? "muted" : "bad";
}

function showEvents(doc) {
  const rows = doc.events.map(event => {
    const row = document.createElement("tr");
    cell(row, new Date(event.time * 1000).toLocaleTimeString());
    cell(row, event.type + " " + event.event);
    cell(row, (event.name || "") + " " + event.id);
    return row;
  });
  document.getElementById("events").replaceChildren(...rows);
}

async function poll() {
  try {
    const [routes, health, events] = await Promise.all(
      ["/routes", "/healthz", "/events"].map(path => fetch(path, {cache: "no-store"}).then(r => r.json())));
    showRoutes(routes);
    showHealth(health);
    showEvents(events);
  } catch (error) {
    const health = document.getElementById("health");
    health.textContent = "cannot reach the gateway's admin endpoints: " + error;
    health.className = "bad";
  }
}

poll();
setInterval(poll, 2000);
</script>
</body>
</html>
"""
