# The container image for the tests, built for real from the Dockerfile.
# There is no image registry here, so its base is made here too: a minimal
# Debian root (debootstrap --variant=minbase with python3 and python3-venv,
# from the Debian archive apt uses), `docker import`ed. Both images are
# named by a hash of what went into them, and built once.
#
# The build uses BuildKit (RUN --mount for the CA bundle, passed as the
# build secret `ca` so that pip in the build trusts what the host trusts,
# and kept in no layer): Debian's docker client has it built in;
# a newer client without the buildx plugin has not, so /usr/bin/docker is
# preferred when it is there.

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from .docker_support import require_tool

__all__ = ["CA_BUNDLE", "base_image", "docker_cli", "gateway_image"]

ROOT = Path(__file__).resolve().parents[1]
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
PACKAGES = "python3,python3-venv"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
BUILD_LIMIT = 1800  # seconds for either image


def docker_cli() -> str:
    """A docker client that builds with BuildKit by itself (DOCKER_BUILDKIT=1)."""
    if os.path.exists("/usr/bin/docker"):
        return "/usr/bin/docker"
    return require_tool(("docker",), "apt-get install docker.io")


def _exists(name: str) -> bool:
    return subprocess.run([docker_cli(), "image", "inspect", name], capture_output=True).returncode == 0


def base_image() -> str:
    """The debootstrapped base, imported under a name its recipe gives."""
    recipe = f"debootstrap --variant=minbase --include={PACKAGES} {SUITE} {MIRROR}"
    name = f"fastroute-test-base:{hashlib.sha256(recipe.encode()).hexdigest()[:16]}"
    if _exists(name):
        return name
    debootstrap = require_tool(("debootstrap",), "apt-get install debootstrap")
    root = Path(tempfile.mkdtemp(prefix="fastroute-base-"))
    try:
        made = subprocess.run([debootstrap, "--variant=minbase", f"--include={PACKAGES}", SUITE, str(root), MIRROR],
                              capture_output=True, text=True, timeout=BUILD_LIMIT)
        assert made.returncode == 0, made.stdout[-3000:] + made.stderr[-3000:]
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run([docker_cli(), "import", "-", name], stdin=tar.stdout, capture_output=True,
                                  text=True, timeout=BUILD_LIMIT)
        assert tar.stdout is not None
        tar.stdout.close()
        assert tar.wait() == 0 and imported.returncode == 0, imported.stderr
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return name


def _context_hash(base: str) -> str:
    """Over the base's name and every committed file the build context holds."""
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    digest = hashlib.sha256(base.encode())
    for name in sorted({n for n in tracked.decode().split("\0") if n} | {"Dockerfile", ".dockerignore"}):
        if name.startswith(("tests/", "bench/", "examples/")) or not (ROOT / name).is_file():
            continue  # (left out by .dockerignore)
        digest.update(name.encode() + b"\0" + (ROOT / name).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def gateway_image(base: str) -> str:
    """fastroute's image, built from the Dockerfile on `base`."""
    name = f"fastroute-test-gateway:{_context_hash(base)}"
    if _exists(name):
        return name
    secret = ["--secret", f"id=ca,src={CA_BUNDLE}"] if os.path.exists(CA_BUNDLE) else []
    built = subprocess.run(
        [docker_cli(), "build", "--build-arg", f"BASE={base}", *secret, "-t", name, str(ROOT)],
        capture_output=True, text=True, timeout=BUILD_LIMIT, env={**os.environ, "DOCKER_BUILDKIT": "1"},
    )
    assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-4000:]
    return name
