# HTTP/2 to clients with the real clients users run: curl (--http2 over
# TLS, --http2-prior-knowledge on a plain listener), nghttp, h2load and
# httpx, over both listeners; each request reaches the HTTP/1.1 backend.

from __future__ import annotations

import json
import ssl
from pathlib import Path

import httpx
import pytest
import trio

from proxy._config import Address, Tls
from proxy.gateway._server import Gateway

from ...docker_support import require_tool
from ...helpers import LOOPBACK, Backend, route, start_backend, start_gateway
from ..tls.tls_support import Pki

pytestmark = pytest.mark.usefixtures("clients_closed")

NAME = "api.example.test"


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


def ca_file(pki: Pki, tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    pki.ca.cert_pem.write_to_path(str(path))
    return path


async def tls_gateway(nursery: trio.Nursery, pki: Pki, **changes: object) -> tuple[Gateway, Backend]:
    backend = await start_backend(nursery)
    issued = pki.issue(NAME)
    tls = Tls(listen=(Address(LOOPBACK, 0),), pairs=(issued.pair,))
    gateway = await start_gateway(nursery, [route("/", backend)], tls=tls, **changes)
    return gateway, backend


async def gateway_base(nursery: trio.Nursery, pki: Pki, *, secure: bool) -> tuple[str, Backend]:
    """A gateway over one backend; the URL of its TLS listener, or its plain one."""
    if secure:
        gateway, backend = await tls_gateway(nursery, pki)
        host, port = gateway.tls_addresses[0]
        return f"https://{host}:{port}", backend
    backend = await start_backend(nursery)
    gateway = await start_gateway(nursery, [route("/", backend)])
    host, port = gateway.addresses[0]
    return f"http://{host}:{port}", backend


def resolve(gateway: Gateway) -> list[str]:
    host, port = gateway.tls_addresses[0]
    return ["--resolve", f"{NAME}:{port}:{host}"]


async def run(*args: str) -> str:
    result = await trio.run_process(list(args), capture_stdout=True, capture_stderr=True, check=False)
    assert result.returncode == 0, (args, result.stdout[-2000:], result.stderr[-2000:])
    return result.stdout.decode()


async def test_curl_with_prior_knowledge_on_the_plain_listener(nursery: trio.Nursery, tmp_path: Path) -> None:
    curl = require_tool(("curl",), "apt-get install curl")
    backend = await start_backend(nursery)
    gateway = await start_gateway(nursery, [route("/", backend)])
    host, port = gateway.addresses[0]
    body = tmp_path / "body"
    body.write_bytes(b"b" * 300_000)
    # (One invocation per request: Debian's curl 7.88 fails the second request on a reused
    # prior-knowledge connection, against HAProxy as here; nghttp below reuses one.)
    get = await run(curl, "-s", "--http2-prior-knowledge", "-w", "\\n%{http_version} %{http_code}",
                    f"http://{host}:{port}/get")
    post = await run(curl, "-s", "--http2-prior-knowledge", "--data-binary", f"@{body}",
                     "-w", "\\n%{http_version} %{http_code}", f"http://{host}:{port}/post")
    assert get.splitlines()[1] == "2 200" and post.splitlines()[1] == "2 200", (get[-300:], post[-300:])
    assert json.loads(get.splitlines()[0])["target"] == "/get"
    assert json.loads(post.splitlines()[0])["body_length"] == 300_000
    assert [s.target for s in backend.seen] == [b"/get", b"/post"]
    assert backend.seen[1].body == b"b" * 300_000


async def test_curl_negotiates_h2_over_tls_and_http11_when_asked(nursery: trio.Nursery, pki: Pki,
                                                                 tmp_path: Path) -> None:
    curl = require_tool(("curl",), "apt-get install curl")
    gateway, backend = await tls_gateway(nursery, pki)
    port = gateway.tls_addresses[0][1]
    url = f"https://{NAME}:{port}/x"
    common = [curl, "-s", "-o", "/dev/null", "--cacert", str(ca_file(pki, tmp_path)), *resolve(gateway),
              "-w", "%{http_version} %{http_code}"]
    assert await run(*common, "--http2", url) == "2 200"
    assert await run(*common, "--http1.1", url) == "1.1 200"
    forwarded = [dict(s.headers)[b"x-forwarded-proto"] for s in backend.seen]
    assert forwarded == [b"https", b"https"]


@pytest.mark.parametrize("secure", [False, True], ids=["h2c", "tls"])
async def test_nghttp_fetches_many_streams_on_one_connection(nursery: trio.Nursery, pki: Pki, secure: bool) -> None:
    nghttp = require_tool(("nghttp",), "apt-get install nghttp2-client")
    base, backend = await gateway_base(nursery, pki, secure=secure)
    urls = [f"{base}/asset/{i}" for i in range(20)]
    out = await run(nghttp, "-ns", *urls)  # -s: the statistics, one line per stream with its status
    assert out.count(" 200 ") == 20, out[-2000:]
    assert sorted(s.target for s in backend.seen) == sorted(f"/asset/{i}".encode() for i in range(20))


@pytest.mark.parametrize("secure", [False, True], ids=["h2c", "tls"])
async def test_h2load_every_request_succeeds(nursery: trio.Nursery, pki: Pki, secure: bool) -> None:
    h2load = require_tool(("h2load",), "apt-get install nghttp2-client")
    base, _ = await gateway_base(nursery, pki, secure=secure)
    out = await run(h2load, "-n", "400", "-c", "4", "-m", "10", f"{base}/load")
    assert "400 succeeded, 0 failed, 0 errored" in out, out[-2000:]
    assert "400 2xx" in out, out[-2000:]


async def test_httpx_multiplexes_concurrent_requests_over_h2(nursery: trio.Nursery, pki: Pki) -> None:
    gateway, backend = await tls_gateway(nursery, pki)
    host, port = gateway.tls_addresses[0]
    context = ssl.create_default_context()
    pki.ca.configure_trust(context)
    context.check_hostname = False
    replies: list[httpx.Response] = []
    async with httpx.AsyncClient(http2=True, verify=context) as client:
        async def one(i: int) -> None:
            replies.append(await client.post(f"https://{host}:{port}/r/{i}", content=b"x" * i * 1000,
                                             headers={"host": NAME}))

        async with trio.open_nursery() as inner:
            for i in range(50):
                inner.start_soon(one, i)
    assert {r.http_version for r in replies} == {"HTTP/2"}
    assert sorted(r.json()["body_length"] for r in replies) == [i * 1000 for i in range(50)]
    assert len(backend.seen) == 50
