"""Credentials of business systems that call the platform: ``<prefix>_<key id>_<secret>``,
only the SHA-256 of the whole kept (they are long and random: a slow hash buys nothing), a
rotation keeping the previous secret alive for a grace period, an optional IP allow-list.

A domain keeps them in its own table with the columns ``secret_hash``, ``previous_hash``,
``previous_until`` and ``ip_allow`` (share_credentials for the sharing API; the service
platform's docking credentials alike) and uses these functions on its rows."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from citydata.db.base import as_utc

ROTATION_GRACE = timedelta(hours=24)


class Held(Protocol):
    secret_hash: str
    previous_hash: str | None
    previous_until: datetime | None
    ip_allow: list


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class Presented:
    """A credential as sent: ``Authorization: Bearer <prefix>_<key id>_<secret>``."""

    key_id: str
    whole: str


def parse(prefix: str, authorization: str) -> Presented | None:
    scheme, _, presented = authorization.partition(" ")
    presented = presented.strip()
    parts = presented.split("_", 2)  # the secret itself may contain "_"
    if scheme.lower() != "bearer" or len(parts) != 3 or parts[0] != prefix or not parts[2]:
        return None
    return Presented(parts[1], presented)


def new_key_id() -> str:
    return secrets.token_hex(6)


def new_secret(prefix: str, key_id: str) -> str:
    return f"{prefix}_{key_id}_{secrets.token_urlsafe(32)}"


def rotate(held: Any, prefix: str, key_id: str, now: datetime, grace: timedelta) -> str:
    """A new secret for ``held``; the old one keeps working for ``grace``. Returns the new one."""
    secret = new_secret(prefix, key_id)
    held.previous_hash, held.previous_until = held.secret_hash, now + grace
    held.secret_hash = digest(secret)
    return secret


def matches(held: Held, presented: str, now: datetime) -> bool:
    """The current secret, or the previous one within its grace period; constant time."""
    found = digest(presented)
    if hmac.compare_digest(held.secret_hash, found):
        return True
    return bool(
        held.previous_hash
        and held.previous_until
        and as_utc(held.previous_until) > now
        and hmac.compare_digest(held.previous_hash, found)
    )


def networks(ip_allow: list[str]) -> list[str]:
    """An allow-list as networks (ValueError naming a bad entry)."""
    return [str(ipaddress.ip_network(n, strict=False)) for n in ip_allow]


def ip_allowed(held: Held, client_ip: str) -> bool:
    if not held.ip_allow:
        return True
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(n) for n in held.ip_allow)
