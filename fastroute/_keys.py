# Route prefixes: what a valid key is and its one normal form.
#
# Both table implementations call `normalise_routes` before they build, so
# they accept, reject and normalise keys identically by construction; the
# differential tests then only have to compare lookups.
#
# Rules, in the order they are checked:
# - a key is a str; anything else is a TypeError;
# - it is not empty and starts with "/";
# - it holds no whitespace (str.isspace), no control character (C0, DEL,
#   C1), no lone surrogate, and neither "?" nor "#" (they start the query
#   and the fragment of a request target, so a key holding them could never
#   match);
# - no segment is "." or ".." (RFC 3986 section 3.3 dot-segments; the
#   gateway resolves them before lookup, so such a key could never match);
# - one trailing "/" is dropped: "/steve/foo/" is "/steve/foo"; "/" stays.
#   Only one: empty segments are kept as they are ("/a//" is "/a/", whose
#   segments are "a" and ""), because lookups do not collapse "//" either;
# - two keys with the same normal form are an error naming both.

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar, Union

from ._errors import InvalidPrefix

__all__ = ["normalise_prefix", "normalise_routes", "segments_of"]

V = TypeVar("V")
Routes = Union[Mapping[str, V], Iterable[tuple[str, V]]]

# `\s` in a str pattern matches exactly the characters for which
# str.isspace() is true (checked over every code point in the tests).
_BAD_CHARACTER = re.compile(r"[\s\x00-\x1f\x7f-\x9f\ud800-\udfff?#]")
_DOT_SEGMENT = re.compile(r"/\.\.?(?=/|\Z)")


def _describe(character: str) -> str:
    if character in "?#":
        return f"contains {character!r}"
    if "\ud800" <= character <= "\udfff":
        return f"contains a lone surrogate (U+{ord(character):04X})"
    return f"contains whitespace or a control character (U+{ord(character):04X})"


def normalise_prefix(prefix: object) -> str:
    """Return the normal form of one route prefix.

    Args:
        prefix: a path prefix such as "/steve/foo" or "/".

    Returns:
        The prefix without its trailing slash ("/" stays "/").

    Raises:
        TypeError: `prefix` is not a str.
        InvalidPrefix: `prefix` breaks one of the rules above.
    """
    if not isinstance(prefix, str):
        raise TypeError(f"route prefix must be str, not {type(prefix).__name__}: {prefix!r}")
    if not prefix:
        raise InvalidPrefix(prefix, "is empty")
    if prefix[0] != "/":
        raise InvalidPrefix(prefix, "does not start with '/'")
    bad = _BAD_CHARACTER.search(prefix)
    if bad is not None:
        raise InvalidPrefix(prefix, _describe(bad.group()))
    if _DOT_SEGMENT.search(prefix) is not None:
        raise InvalidPrefix(prefix, "has a '.' or '..' segment")
    if len(prefix) > 1 and prefix[-1] == "/":
        return prefix[:-1]
    return prefix


def normalise_routes(routes: Routes[V]) -> dict[str, V]:
    """Validate and normalise every key of a route mapping.

    Args:
        routes: a mapping of prefix to value, or an iterable of pairs.

    Returns:
        A new dict from normalised prefix to value, in the given order.

    Raises:
        TypeError: a key is not a str, or `routes` is not a mapping or pairs.
        InvalidPrefix: a key is invalid, or two keys normalise alike.
    """
    items: Iterable[tuple[Any, V]]  # Any: the caller's keys, checked to be str below
    items = routes.items() if isinstance(routes, Mapping) else routes
    normalised: dict[str, V] = {}
    original: dict[str, object] = {}
    for key, value in items:
        prefix = normalise_prefix(key)
        if prefix in normalised:
            raise InvalidPrefix(
                key, f"is the same route as {original[prefix]!r} (both are {prefix!r})"
            )
        normalised[prefix] = value
        original[prefix] = key
    return normalised


def segments_of(prefix: str) -> list[bytes]:
    """The path segments of a normalised prefix, as UTF-8 bytes ("/" has none)."""
    if prefix == "/":
        return []
    return prefix[1:].encode("utf-8").split(b"/")
