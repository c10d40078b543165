# `fastroute haproxy` on the command line: --once, and its errors.

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ...haproxy_support import HAProxy


def test_once_writes_a_checked_configuration_and_exits(tmp_path: Path, haproxy: HAProxy) -> None:
    config = tmp_path / "out.cfg"
    result = subprocess.run(
        [sys.executable, "-m", "proxy", "haproxy", "--config", str(config), "--once", "--no-docker",
         "--route", "/a=127.0.0.1:9", "--route", "/a/b=127.0.0.1:10", "--bind", "127.0.0.1:1"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    text = config.read_text()
    assert text.index("use_backend route.a.b ") < text.index("use_backend route.a ")
    assert subprocess.run([haproxy.binary, "-c", "-f", str(config)], capture_output=True).returncode == 0


@pytest.mark.parametrize(("args", "message"), [
    pytest.param(["--bind", "nonsense!"], "haproxy -c refused the new configuration", id="bad_bind"),
    pytest.param(["--haproxy-bin", "/nonexistent/haproxy"], "cannot check or install", id="no_binary"),
    pytest.param(["--route", "/a?b=127.0.0.1:9"], "invalid", id="bad_route"),
])
def test_once_errors_are_one_line_and_leave_the_file_alone(tmp_path: Path, args: list[str], message: str) -> None:
    config = tmp_path / "out.cfg"
    config.write_text("previous\n")
    result = subprocess.run(
        [sys.executable, "-m", "proxy", "haproxy", "--config", str(config), "--once", "--no-docker", *args],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert config.read_text() == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.cfg"]


def test_a_tls_bind_offers_h2_and_haproxy_accepts_it(tmp_path: Path, haproxy: HAProxy) -> None:
    import trustme

    ca = trustme.CA(key_type=trustme.KeyType.ECDSA)
    leaf = ca.issue_cert("gateway.test", key_type=trustme.KeyType.ECDSA)
    pem = tmp_path / "gateway.pem"
    pem.write_bytes(leaf.private_key_and_cert_chain_pem.bytes())
    config = tmp_path / "out.cfg"
    result = subprocess.run(
        [sys.executable, "-m", "proxy", "haproxy", "--config", str(config), "--once", "--no-docker",
         "--route", "/a=127.0.0.1:9", "--bind", f"127.0.0.1:1 ssl crt {pem}"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert f"    bind 127.0.0.1:1 ssl crt {pem} alpn h2,http/1.1\n" in config.read_text()
    check = subprocess.run([haproxy.binary, "-c", "-f", str(config)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
