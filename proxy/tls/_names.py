# Which certificate answers which server name: a pure choice over the names
# each certificate holds (its subjectAltName DNS entries, else its common
# name). No ssl, no I/O: the values chosen are whatever the caller stores
# (SSL contexts in the gateway, strings in the tests).
#
# Rules:
# - names compare in their normal form: lowercase ASCII, no trailing dot
#   (an internationalised name is in a certificate in its A-label form);
# - an exact name wins over a wildcard; "*.example.com" covers one label
#   ("a.example.com", not "example.com" nor "a.b.example.com", RFC 6125
#   section 6.4.3);
# - when two certificates hold the same name, the first given wins;
# - a client without SNI, or naming nothing held, gets the default (the
#   first certificate).

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Generic, TypeVar

__all__ = ["NameIndex", "normal_name"]

T = TypeVar("T")


def normal_name(name: str) -> str:
    """A DNS name as certificates and SNI are compared: lowercase, no trailing dot."""
    return name.strip().lower().rstrip(".")


class NameIndex(Generic[T]):
    """The values of several certificates, found by server name."""

    __slots__ = ("default", "_exact", "_wildcard")

    def __init__(self, entries: Sequence[tuple[Iterable[str], T]]) -> None:
        """entries: (names, value) per certificate, the default first.

        Raises:
            ValueError: no entries.
        """
        if not entries:
            raise ValueError("a NameIndex needs at least one certificate")
        self.default: T = entries[0][1]
        self._exact: dict[str, T] = {}
        self._wildcard: dict[str, T] = {}
        for names, value in entries:
            for name in names:
                name = normal_name(name)
                if name.startswith("*."):
                    self._wildcard.setdefault(name[2:], value)
                elif name:
                    self._exact.setdefault(name, value)

    def find(self, server_name: str | None) -> T | None:
        """The value of the certificate holding `server_name`, or None."""
        if not server_name:
            return None
        name = normal_name(server_name)
        found = self._exact.get(name)
        if found is not None:
            return found
        _, dot, parent = name.partition(".")
        return self._wildcard.get(parent) if dot and parent else None

    def choose(self, server_name: str | None) -> T:
        """find(server_name), else the default."""
        found = self.find(server_name)
        return self.default if found is None else found

    def covers(self, host: str) -> bool:
        """Whether a certificate (not the default by fallback) holds `host`."""
        return self.find(host) is not None

    def names(self) -> list[str]:
        """Every name held, wildcards as "*.parent", sorted."""
        return sorted([*self._exact, *(f"*.{parent}" for parent in self._wildcard)])
