"""Webhooks: signed, value-free notices POSTed to a URL a caller registered, with retries.

A webhook URL is the caller's, and the server connects to it: unchecked, it is a way to make
the server reach what only the server can reach (SSRF) — its own ports, the internal network,
a cloud's metadata address — and to learn from the outcome what is there. So the host is
resolved, every address must be public unless an administrator allows the host
(CITYDATA_WEBHOOK_ALLOW_HOSTS), the connection goes to the address that was checked (a name
that resolves differently a moment later gains nothing), and the outcome recorded says only
"delivered", an HTTP status, or "not delivered".

Notices are signed with the subscription's secret (HMAC-SHA256 over the timestamp and the body,
as Stripe and GitHub sign theirs); a refused notice is offered again after 10 s, 20 s, 40 s …
up to an hour. Which notices are due, and what they say, is the subscribing domain's."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

FIRST_RETRY = timedelta(seconds=10)
LAST_RETRY = timedelta(hours=1)
TIMEOUT_SECONDS = 5


class TargetRefused(ValueError):
    """A URL notices may not go to; ``code``: bad_url or url_not_allowed."""

    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Target:
    url: str
    scheme: str
    host: str
    port: int
    path: str
    address: str  # the checked address the connection goes to


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        address = mapped
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def resolve(url: object, allow_hosts: Iterable[str] = ()) -> Target:
    """The URL's host resolved and checked; TargetRefused when it may not be reached."""
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in {"http", "https"} or not parts.hostname:
        raise TargetRefused("url 应为 http:// 或 https:// 开头的完整地址", "bad_url")
    if len(url) > 500:
        raise TargetRefused("url 过长（最多 500 个字符）", "bad_url")
    if parts.username or parts.password:
        raise TargetRefused("url 不能含用户名或密码", "bad_url")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise TargetRefused("url 的端口无效", "bad_url") from exc
    host = parts.hostname.lower()
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError) as exc:
        raise TargetRefused("url 的主机名无法解析", "bad_url") from exc
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in found]
    allowed = host in {h.lower() for h in allow_hosts}
    if not addresses or (not allowed and not all(_public(a) for a in addresses)):
        raise TargetRefused(
            "url 指向本机、内网或保留地址，不能接收通知（如确需，请管理员将该主机加入白名单）",
            "url_not_allowed",
        )
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(url, parts.scheme, host, port, path, str(addresses[0]))


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to a checked address, verifying the certificate against the URL's host name."""

    def __init__(self, target: Target, timeout: float):
        super().__init__(target.host, target.port, timeout=timeout)
        self._target = target
        self._context = ssl.create_default_context()

    def connect(self) -> None:
        raw = socket.create_connection((self._target.address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self._target.host)


def post(
    url: str, body: bytes, headers: dict[str, str], allow_hosts: Iterable[str] = ()
) -> tuple[bool, str]:
    """(delivered, what happened). Only a 2xx answer counts as delivered; the host is checked
    again now and the connection made to the address checked."""
    try:
        target = resolve(url, allow_hosts)
    except TargetRefused:
        return False, "未送达：地址不允许或无法解析"
    if target.scheme == "https":
        conn: http.client.HTTPConnection = _PinnedHTTPS(target, TIMEOUT_SECONDS)
    else:
        conn = http.client.HTTPConnection(target.address, target.port, timeout=TIMEOUT_SECONDS)
    try:
        conn.request("POST", target.path, body, {**headers, "Host": target.host})
        status = conn.getresponse().status
    except (OSError, http.client.HTTPException):
        return False, "未送达"
    finally:
        conn.close()
    return 200 <= status < 300, f"HTTP {status}"


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """What the receiver recomputes: HMAC-SHA256 of ``timestamp.body`` under the secret."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def backoff(failures: int) -> timedelta:
    return min(FIRST_RETRY * 2 ** (failures - 1), LAST_RETRY)
