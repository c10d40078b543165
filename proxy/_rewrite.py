# Pure header and target rewriting between the client and the backend.
#
# Rules (RFC 9110 section 7.6.1 for hop-by-hop fields):
# - never forwarded, either way: Connection and every field it names,
#   Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding (framing is
#   chosen anew on each side by the HTTP layer), and Upgrade, except when
#   relaying an upgrade (then Upgrade and "Connection: upgrade" are kept);
# - Host is passed through (HTTP/1.0 clients without Host get the backend's);
# - X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host, X-Forwarded-Prefix
#   and Forwarded from an untrusted client are dropped and set anew; from a
#   client in --trusted-proxies, X-Forwarded-For is appended to and the
#   others are kept when present;
# - Via gets "1.1 fastroute" appended (RFC 9110 section 7.6.3).
# Header names arrive lowercased (h11 does that) and are bytes.

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = [
    "VIA",
    "has_token",
    "is_upgrade_request",
    "request_headers",
    "response_headers",
    "strip_target",
]

Header = tuple[bytes, bytes]

VIA = b"1.1 fastroute"
_ALWAYS_HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"transfer-encoding", b"upgrade"}
)
_FORWARDED = frozenset(
    {b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-forwarded-prefix", b"forwarded"}
)


def has_token(headers: Iterable[Header], name: bytes, token: bytes) -> bool:
    """Whether a comma-separated header `name` lists `token` (lowercase), e.g. Connection: close."""
    for key, value in headers:
        if key == name and token in (item.strip(b" \t").lower() for item in value.split(b",")):
            return True
    return False


def _connection_tokens(headers: Iterable[Header]) -> set[bytes]:
    tokens: set[bytes] = set()
    for name, value in headers:
        if name == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b",") if t.strip())
    return tokens


def is_upgrade_request(headers: Sequence[Header]) -> bool:
    """An Upgrade header, and "upgrade" among the Connection tokens."""
    return b"upgrade" in _connection_tokens(headers) and any(name == b"upgrade" for name, _ in headers)


def _drop_hop_by_hop(headers: Sequence[Header], keep_upgrade: bool) -> tuple[list[Header], list[bytes]]:
    tokens = _connection_tokens(headers)
    dropped = _ALWAYS_HOP_BY_HOP | tokens
    upgrades = []
    kept = []
    for name, value in headers:
        if name == b"upgrade":
            upgrades.append(value)
        if name not in dropped:
            kept.append((name, value))
    if keep_upgrade:
        return kept, upgrades
    return kept, []


def request_headers(
    headers: Sequence[Header],
    *,
    client_ip: str,
    trusted: bool,
    upstream_host: bytes,
    prefix: str | None = None,
    upgrade: bool = False,
) -> list[Header]:
    """The header list to send upstream for a client's request.

    Args:
        headers: the client's headers, names lowercased.
        client_ip: the client's address, for X-Forwarded-For.
        trusted: the client is in --trusted-proxies.
        upstream_host: Host to send when the client sent none (HTTP/1.0).
        prefix: the stripped route prefix, for X-Forwarded-Prefix; None if not stripped.
        upgrade: relay the client's Upgrade (WebSocket and the like).
    """
    kept, upgrades = _drop_hop_by_hop(headers, upgrade)
    out: list[Header] = []
    forwarded_for = []
    host = None
    proto = forwarded_host = forwarded_prefix = None
    via = []
    for name, value in kept:
        if name in _FORWARDED:
            if trusted:
                if name == b"x-forwarded-for":
                    forwarded_for.append(value)
                elif name == b"x-forwarded-proto":
                    proto = value
                elif name == b"x-forwarded-host":
                    forwarded_host = value
                elif name == b"x-forwarded-prefix":
                    forwarded_prefix = value
                else:
                    out.append((name, value))
            continue
        if name == b"via":
            via.append(value)
            continue
        if name == b"host":
            host = value
        out.append((name, value))
    if host is None:
        host = upstream_host
        out.append((b"host", host))
    forwarded_for.append(client_ip.encode("ascii"))
    out.append((b"x-forwarded-for", b", ".join(forwarded_for)))
    out.append((b"x-forwarded-proto", proto or b"http"))
    out.append((b"x-forwarded-host", forwarded_host or host))
    if prefix is not None:
        ours = prefix.encode("utf-8")
        if forwarded_prefix:
            ours = forwarded_prefix.rstrip(b"/") + (ours if ours != b"/" else b"")
        out.append((b"x-forwarded-prefix", ours))
    out.append((b"via", b", ".join([*via, VIA])))
    if upgrades:
        out.append((b"connection", b"upgrade"))
        out.extend((b"upgrade", value) for value in upgrades)
    return out


def response_headers(headers: Sequence[Header], *, upgrade: bool = False) -> list[Header]:
    """The header list to send the client for a backend's response."""
    kept, upgrades = _drop_hop_by_hop(headers, upgrade)
    if upgrades:
        kept.append((b"connection", b"upgrade"))
        kept.extend((b"upgrade", value) for value in upgrades)
    return kept


def strip_target(target: bytes, prefix: str) -> bytes:
    """Remove a matched route prefix from a request target.

    "/steve/foo/x?q" -> "/x?q"; "/steve/foo" -> "/"; "/steve/foo?q" -> "/?q".
    The prefix must be the one RouteTable.lookup matched for `target`.
    """
    if prefix == "/":
        return target
    rest = target[len(prefix.encode("utf-8")) :]
    if not rest.startswith(b"/"):
        rest = b"/" + rest
    return rest
