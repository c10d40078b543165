# Command line: parse arguments, then hand a Config to the right runner.
# Errors in the arguments are one line on stderr and exit status 2.

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from fastroute import __version__

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (and exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="fastroute",
        description="A Docker-aware HTTP gateway: a request for /owner/image/... "
        "goes to a running container of owner/image on port 8000.",
    )
    parser.add_argument("--version", action="version", version=f"fastroute {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    return 0
