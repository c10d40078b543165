# The `fastroute` command's entry point. The distribution installs the
# router library alone, with no dependencies; the gateway's come with the
# `gateway` extra. Without them, the command says in one line what to
# install (and --version still answers), before it imports anything that
# needs them.

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence

from fastroute import __version__

__all__ = ["GATEWAY_MODULES", "main", "missing"]

GATEWAY_MODULES = ("trio", "h11", "docker", "prometheus_client", "idna", "cryptography", "acme")


def missing() -> list[str]:
    """The gateway's dependencies that cannot be imported here."""
    return [name for name in GATEWAY_MODULES if importlib.util.find_spec(name) is None]


def main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    gone = missing()
    if gone:
        if args == ["--version"]:
            print(f"fastroute {__version__}")
            return 0
        print(f"fastroute: error: the gateway needs {', '.join(gone)}, which are not installed: "
              "pip install 'fastroute[gateway]'", file=sys.stderr)
        return 1
    from ._cli import main as cli_main

    return cli_main(argv)
