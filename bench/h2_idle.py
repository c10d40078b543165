#!/usr/bin/env python3
"""Idle HTTP/2 connections: what each costs fastroute and HAProxy in memory.

N clients (9,900 by default: this machine's open-file limit is 20,000, and
fastroute keeps two descriptors for each client connection, one for its
backend connection) each open an HTTP/2 connection over TLS
(ALPN h2, the browsers' way), make one GET, read its answer and then stay
open, idle, as a browser's connection does after a page. The proxy's
resident memory (VmRSS) is read before the first connection and once all N
are idle; the difference over N is the cost of one idle connection.
fastroute: one worker, defaults; HAProxy 2.6: one thread, maxconn raised
to hold them; both with the same ECDSA P-256 certificate in front of one
nginx backend.

    .venv/bin/python bench/h2_idle.py [--connections 10000]

Bounded: N connections, each made once and closed at the end; every process
started is stopped. Raises the open-file soft limit to the hard one.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import ssl
import subprocess
import sys
import tempfile
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import BODY, free_port, nginx_conf, start, start_haproxy, stop_all  # noqa: E402
from tls_speed import certificate  # noqa: E402



def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def one(port: int, context: ssl.SSLContext, opened: list[trio.abc.Stream]) -> None:
    """One client: a TLS connection with h2, one GET answered whole, then the stream kept open."""
    stream = trio.SSLStream(await trio.open_tcp_stream("127.0.0.1", port), context, server_hostname="127.0.0.1")
    opened.append(stream)
    await stream.do_handshake()
    assert stream.selected_alpn_protocol() == "h2"
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    conn.initiate_connection()
    conn.send_headers(1, [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"127.0.0.1"),
                          (b":path", b"/")], end_stream=True)
    await stream.send_all(conn.data_to_send())
    while True:
        data = await stream.receive_some(65536)
        if not data:
            raise RuntimeError("the proxy closed a connection")
        events = conn.receive_data(data)
        pending = conn.data_to_send()
        if pending:
            await stream.send_all(pending)
        if any(isinstance(e, h2.events.StreamEnded) for e in events):
            return


async def measure(pid: int, port: int, count: int) -> tuple[int, int]:
    """(RSS before, RSS with `count` idle connections), in KiB."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the bench's own certificate
    context.set_alpn_protocols(["h2"])
    before = rss_kib(pid)
    opened: list[trio.abc.Stream] = []
    limit = trio.CapacityLimiter(200)  # handshakes in flight at once

    async def limited() -> None:
        async with limit:
            await one(port, context, opened)

    try:
        with trio.fail_after(600):  # only a hang reaches it
            async with trio.open_nursery() as nursery:
                for _ in range(count):
                    nursery.start_soon(limited)
        await trio.sleep(1)  # (whatever the proxy frees after an answer, freed)
        return before, rss_kib(pid)
    finally:
        for stream in opened:
            await trio.aclose_forcefully(stream)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=9_900)
    args = parser.parse_args()
    for tool in ("haproxy", "nginx"):
        if shutil.which(tool) is None:
            sys.exit(f"h2_idle: {tool} is not installed (apt-get install haproxy nginx-light)")
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # inherited by the proxies
    work = Path(tempfile.mkdtemp(prefix="fastroute-h2-idle-"))
    work.chmod(0o755)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        backend_port = free_port()
        conf = nginx_conf(work, f'server {{ listen 127.0.0.1:{backend_port}; location / {{ return 200 "{BODY.strip()}\\n"; }} }}')
        (work / "backend.conf").write_text(conf.replace("%s", "backend"))
        procs.append(start(["nginx", "-c", str(work / "backend.conf"), "-p", str(work)], backend_port))
        cert, key, bundle = certificate(work)
        rows = []
        haproxy_port, ours = free_port(), free_port()
        haproxy = start_haproxy(work, haproxy_port, backend_port, tls_bundle=bundle, alpn="h2,http/1.1",
                                maxconn=args.connections + 50)  # (2 descriptors each: within 20,000)
        procs.append(haproxy)
        rows.append(("HAProxy", *trio.run(measure, haproxy.pid, haproxy_port, args.connections)))
        stop_all([procs.pop()])
        fastroute = start([sys.executable, "-m", "proxy", "serve", "--no-docker", "--access-log", "off",
                           "--listen", f"127.0.0.1:{free_port()}", "--listen-tls", f"127.0.0.1:{ours}",
                           "--tls-cert", str(cert), "--tls-key", str(key), "--max-connections", str(args.connections + 100),
                           "--route", f"/=127.0.0.1:{backend_port}"], ours)
        procs.append(fastroute)
        rows.append(("fastroute", *trio.run(measure, fastroute.pid, ours, args.connections)))
        print(f"{args.connections:,} idle HTTP/2 connections over TLS (one GET each, then idle); resident memory:")
        for name, before, after in rows:
            print(f"  {name:<10} {before / 1024:7.1f} MiB before, {after / 1024:7.1f} MiB with them: "
                  f"{(after - before) / 1024:7.1f} MiB, {(after - before) * 1024 / args.connections / 1024:5.1f} KiB each")
    finally:
        stop_all(procs)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
