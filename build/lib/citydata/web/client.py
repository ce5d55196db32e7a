"""Who is on the other end of a connection: the peer's address, and — only when the peer is one
of the configured proxies (``CITYDATA_TRUSTED_PROXIES``) — the client address and scheme it
forwards. Anybody can send ``X-Forwarded-For``; it means something only from a proxy we run."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache

from starlette.requests import HTTPConnection
from starlette.types import Scope

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=16)
def networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(e, strict=False) for e in entries)


def _within(address: str, trusted: Iterable[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in trusted)


def peer(scope: Scope) -> str:
    client = scope.get("client")
    return client[0] if client else ""


def _header(scope: Scope, name: bytes) -> str:
    values = [v.decode("latin-1") for k, v in scope.get("headers", []) if k == name]
    return ",".join(values)


def client_address(scope: Scope, trusted: tuple[str, ...]) -> str:
    """The peer, or behind trusted proxies the right-most address in ``X-Forwarded-For`` that is
    not one of them (each proxy appends the address it saw; only the last hops are ours)."""
    address = peer(scope)
    trusted_nets = networks(trusted)
    if not trusted_nets or not _within(address, trusted_nets):
        return address
    hops = [h.strip() for h in _header(scope, b"x-forwarded-for").split(",") if h.strip()]
    for hop in reversed(hops):
        if not _within(hop, trusted_nets):
            return hop if _valid(hop) else address
    return address


def _valid(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def scheme(scope: Scope, trusted: tuple[str, ...]) -> str:
    own = scope.get("scheme", "http")
    trusted_nets = networks(trusted)
    if trusted_nets and _within(peer(scope), trusted_nets):
        forwarded = _header(scope, b"x-forwarded-proto").split(",")[0].strip().lower()
        if forwarded in {"http", "https"}:
            return forwarded
    return own


def _trusted(connection: HTTPConnection) -> tuple[str, ...]:
    return connection.app.state.settings.trusted_proxies


def client_ip(connection: HTTPConnection) -> str:
    return client_address(connection.scope, _trusted(connection))


def request_scheme(connection: HTTPConnection) -> str:
    return scheme(connection.scope, _trusted(connection))
