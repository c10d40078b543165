#!/usr/bin/env python3
"""ACME speed against a real CA, in one run: from `docker run` of a
container labelled with a new host name (fastroute.host) returning, to the
first HTTPS request to that name answered by the container through
fastroute with a certificate that verifies against the CA's root. Pebble
(Debian's, on loopback, validating immediately: PEBBLE_VA_NOSLEEP) stands in
for Let's Encrypt, so the figure is fastroute's part plus Pebble's; a real
CA adds its own validation delay (seconds).

    .venv/bin/python bench/acme_speed.py [--rounds 5] [--challenge http-01|tls-alpn-01]

Uses the test backend image (built on first use), labels every container it
starts with fastroute.bench=<run> and removes them all at the end.
"""

from __future__ import annotations

import argparse
import ssl
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import docker
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from proxy._config import Acme, Address, Discovery, Tls  # noqa: E402
from proxy.app._serve import serve  # noqa: E402
from tests.docker_support import build_backend_image  # noqa: E402
from tests.helpers import Client, make_config, unused_port  # noqa: E402
from tests.pebble_support import run_pebble  # noqa: E402

RUN = uuid.uuid4().hex[:8]
LABEL = f"fastroute.bench={RUN}"


async def https_ok(address: tuple[str, int], context: ssl.SSLContext, name: str) -> bool:
    try:
        stream = await trio.open_tcp_stream(*address)
    except OSError:
        return False
    tls = trio.SSLStream(stream, context, server_hostname=name)
    try:
        await tls.do_handshake()
        reply = await Client(tls).request("GET", "/", host=name)  # type: ignore[arg-type]
        return reply.status == 200
    except (trio.BrokenResourceError, OSError):
        return False
    finally:
        await trio.aclose_forcefully(tls)


async def measure(client: Any, image: str, network: str, rounds: int, challenge: str, work: Path) -> list[float]:
    plain, secure = unused_port(), unused_port()
    times = []
    with run_pebble(work, http_port=plain, tls_port=secure) as pebble:
        config = make_config(
            listen=(Address("127.0.0.1", plain),), docker=True, docker_labels=(LABEL,),
            discovery=Discovery(network=network, hold=0),
            tls=Tls(listen=(Address("127.0.0.1", secure),), acme=Acme(
                "ops@example.test", work / "acme", pebble.directory, pebble.ca_bundle, challenge=challenge)))
        context = ssl.create_default_context(cadata=pebble.root_pem().decode())
        async with trio.open_nursery() as nursery:
            await nursery.start(serve, config)
            for i in range(rounds):
                name = f"app{i}-{RUN}.example.test"
                labels = {"fastroute.bench": RUN, "fastroute.host": name, "fastroute.route": "/"}
                container = await trio.to_thread.run_sync(
                    lambda: client.containers.run(image, detach=True, labels=labels, network=network))
                started = time.perf_counter()
                with trio.fail_after(60):
                    while not await https_ok(("127.0.0.1", secure), context, name):
                        await trio.sleep(0.01)
                times.append(time.perf_counter() - started)
                await trio.to_thread.run_sync(lambda c=container: c.remove(force=True))
            nursery.cancel_scope.cancel()
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--challenge", choices=["http-01", "tls-alpn-01"], default="http-01")
    args = parser.parse_args()
    client = docker.from_env()
    image = build_backend_image(client)
    network = client.networks.create(f"fastroute-bench-{RUN}", labels={"fastroute.bench": RUN})
    try:
        times = trio.run(measure, client, image, network.name, args.rounds, args.challenge,
                         Path(tempfile.mkdtemp(prefix="fastroute-bench-acme-")))
        print(f"docker run -> first valid HTTPS answer ({args.challenge}, Pebble): median "
              f"{statistics.median(times) * 1000:.0f} ms, min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f} "
              f"({len(times)} rounds)")
    finally:
        for container in client.containers.list(all=True, filters={"label": LABEL}):
            container.remove(force=True)
        network.remove()
        client.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
