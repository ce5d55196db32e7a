"""Webhook subscriptions on the change feed: a business system registers a URL with its
credential, and is told when masters of its granted class have changed — which master ids, the
kind of change, and the feed cursors before and after — never a value. It then reads the
changes through the feed (``/api/share/v1/changes``), with its credential, masked and audited
like every read.

Notices are built from committed changes only (the dispatcher reads ``master_changes`` in its
own transaction), signed with the subscription's secret (HMAC-SHA256 over the timestamp and the
body, as Stripe and GitHub sign theirs), and delivered at least once: the subscription's cursor
moves only when the receiver answers 2xx; otherwise the same changes are offered again after
10 s, 20 s, 40 s … up to an hour. A subscription is claimed before it is sent, so several server
processes do not send the same notice at once."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import secrets
import socket
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import orjson
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from citydata.bases.models import MasterChange
from citydata.db.base import as_utc
from citydata.db.engine import Store
from citydata.keys import ENCRYPTED, Keys
from citydata.share import gateway
from citydata.share.models import ShareApplication, ShareCredential, ShareSubscription
from citydata.share.service import ShareError, current_status

MAX_PER_APPLICATION = 5
CHANGES_PER_NOTICE = 500
FIRST_RETRY = timedelta(seconds=10)
LAST_RETRY = timedelta(hours=1)
CLAIM = timedelta(minutes=1)  # a sender that dies mid-notice frees the subscription after this
TIMEOUT_SECONDS = 5


# ---------------------------------------------------------------- where notices may go
#
# A webhook URL is the caller's, and the server connects to it: unchecked, it is a way to make
# the server reach what only the server can reach (SSRF) — its own ports, the internal network,
# a cloud's metadata address — and to learn from the outcome what is there. So the host is
# resolved, every address must be public unless an administrator allows the host
# (CITYDATA_WEBHOOK_ALLOW_HOSTS), the connection goes to the address that was checked (a name
# that resolves differently a moment later gains nothing), and the outcome recorded says only
# "delivered", an HTTP status, or "not delivered".


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
    """The URL's host resolved and checked; ShareError when it may not be reached."""
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ShareError("url 应为 http:// 或 https:// 开头的完整地址", "bad_url")
    if len(url) > 500:
        raise ShareError("url 过长（最多 500 个字符）", "bad_url")
    if parts.username or parts.password:
        raise ShareError("url 不能含用户名或密码", "bad_url")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise ShareError("url 的端口无效", "bad_url") from exc
    host = parts.hostname.lower()
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError) as exc:
        raise ShareError("url 的主机名无法解析", "bad_url") from exc
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in found]
    allowed = host in {h.lower() for h in allow_hosts}
    if not addresses or (not allowed and not all(_public(a) for a in addresses)):
        raise ShareError(
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
    except ShareError:
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


def subscription_dict(sub: ShareSubscription) -> dict:
    return {
        "id": sub.id,
        "url": sub.url,
        "cursor": gateway.feed_cursor(sub.cursor),
        "failures": sub.failures,
        "next_attempt_at": as_utc(sub.next_attempt_at).isoformat() if sub.next_attempt_at else None,
        "last_status": sub.last_status,
        "created_at": as_utc(sub.created_at).isoformat(),
        "ended_at": as_utc(sub.ended_at).isoformat() if sub.ended_at else None,
    }


def subscribe(
    session: Session,
    caller: gateway.Caller,
    res: gateway.Resource,
    url: object,
    keys: Keys,
    allow_hosts: Iterable[str] = (),
) -> tuple[ShareSubscription, str]:
    """(the subscription, its signing secret — shown once, kept encrypted). Notices start with
    the changes after this moment; earlier ones are in the feed."""
    base = gateway.feed_base(res)
    url = resolve(url, allow_hosts).url
    active = session.scalar(
        select(func.count()).where(
            ShareSubscription.application_id == caller.application_id,
            ShareSubscription.ended_at.is_(None),
        )
    )
    if active >= MAX_PER_APPLICATION:
        raise ShareError(
            f"每个申请最多 {MAX_PER_APPLICATION} 个订阅", "too_many_subscriptions", 409
        )
    latest = session.scalar(select(func.max(MasterChange.id)).where(MasterChange.base == base))
    secret = secrets.token_hex(32)
    sub = ShareSubscription(
        application_id=caller.application_id,
        key_id=caller.key_id,
        url=url,
        signing_secret=keys.encrypt(secret),
        cursor=latest or 0,
    )
    session.add(sub)
    session.flush()
    return sub, secret


def subscriptions(session: Session, application_id: int) -> list[ShareSubscription]:
    return list(
        session.scalars(
            select(ShareSubscription)
            .where(ShareSubscription.application_id == application_id)
            .order_by(ShareSubscription.id)
        )
    )


def unsubscribe(
    session: Session, caller: gateway.Caller, subscription_id: int
) -> ShareSubscription:
    sub = session.get(ShareSubscription, subscription_id)
    if sub is None or sub.application_id != caller.application_id:
        raise ShareError(f"没有订阅 {subscription_id}", "not_found", 404)
    sub.ended_at = sub.ended_at or datetime.now(UTC)
    return sub


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """What the receiver recomputes: HMAC-SHA256 of ``timestamp.body`` under the secret."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


@dataclass
class Notice:
    subscription_id: int
    url: str
    body: bytes
    headers: dict[str, str]
    last_change: int
    changes: int


def _claim_due(session: Session, now: datetime, keys: Keys) -> list[Notice]:
    """The notices due now, each subscription claimed for ``CLAIM`` by this sender."""
    due_now = or_(
        ShareSubscription.next_attempt_at.is_(None), ShareSubscription.next_attempt_at <= now
    )
    due = session.execute(
        select(ShareSubscription, ShareApplication, ShareCredential.revoked_at)
        .join(ShareApplication, ShareApplication.id == ShareSubscription.application_id)
        .outerjoin(ShareCredential, ShareCredential.key_id == ShareSubscription.key_id)
        .where(ShareSubscription.ended_at.is_(None), due_now)
        .order_by(ShareSubscription.id)
    ).all()
    notices = []
    for sub, app, revoked_at in due:
        if current_status(app, now.date()) != "approved":  # revoked or expired: no more notices
            continue
        if revoked_at is not None:  # the credential that subscribed is revoked: so is this
            continue
        try:
            base = gateway.feed_base(gateway.resource(session, app.class_code))
        except ShareError:  # the class has left the catalog or the bases: nothing to tell
            continue
        changes = gateway.feed(session, base, sub.cursor, CHANGES_PER_NOTICE)
        if not changes:
            continue
        claimed = session.execute(
            update(ShareSubscription)
            .where(ShareSubscription.id == sub.id, ShareSubscription.cursor == sub.cursor, due_now)
            .values(next_attempt_at=now + CLAIM)
            .execution_options(synchronize_session=False)  # the rows read above are not reused
        ).rowcount
        if not claimed:  # another sender has it
            continue
        body = orjson.dumps(
            {
                "subscription": sub.id,
                "class_code": app.class_code,
                "since_cursor": gateway.feed_cursor(sub.cursor),
                "cursor": gateway.feed_cursor(changes[-1].id),
                "changes": [
                    {"change": c.id, "master_id": c.master_id, "kind": c.kind} for c in changes
                ],
            }
        )
        timestamp = str(int(now.timestamp()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "citydata-webhooks",
            "X-Citydata-Subscription": str(sub.id),
            "X-Citydata-Timestamp": timestamp,
            "X-Citydata-Signature": "sha256="
            + signature(keys.decrypt(sub.signing_secret), timestamp, body),
        }
        notices.append(Notice(sub.id, sub.url, body, headers, changes[-1].id, len(changes)))
    return notices


def backoff(failures: int) -> timedelta:
    return min(FIRST_RETRY * 2 ** (failures - 1), LAST_RETRY)


@dataclass
class DispatchReport:
    delivered: int = 0
    failed: int = 0
    changes: int = 0


def dispatch(
    store: Store,
    now: datetime | None = None,
    send: Callable[[str, bytes, dict[str, str]], tuple[bool, str]] | None = None,
    *,
    keys: Keys,
    allow_hosts: Iterable[str] = (),
) -> DispatchReport:
    """One round: send every due notice, then record each outcome."""
    now = now or datetime.now(UTC)
    allowed = tuple(allow_hosts)
    send = send or (lambda url, body, headers: post(url, body, headers, allowed))
    with store.session() as session:
        notices = _claim_due(session, now, keys)
    report = DispatchReport()
    for notice in notices:
        started = time.monotonic()
        delivered, status = send(notice.url, notice.body, notice.headers)
        status = f"{status} ({(time.monotonic() - started) * 1000:.0f} ms)"
        with store.session() as session:
            sub = session.get(ShareSubscription, notice.subscription_id)
            sub.last_status = status[:200]
            if delivered:
                sub.cursor, sub.failures, sub.next_attempt_at = notice.last_change, 0, None
                report.delivered += 1
                report.changes += notice.changes
            else:
                sub.failures += 1
                sub.next_attempt_at = now + backoff(sub.failures)
                report.failed += 1
    return report


def reencrypt_secrets(session: Session, keys: Keys, only_plain: bool = False) -> int:
    """Every stored signing secret under the newest key (after a rotation), or with
    ``only_plain`` only those kept before encryption at rest. Returns how many were rewritten."""
    changed = 0
    for sub in session.scalars(select(ShareSubscription)):
        if only_plain and sub.signing_secret.startswith(ENCRYPTED):
            continue
        stored = keys.reencrypt(sub.signing_secret)
        if stored != sub.signing_secret:
            sub.signing_secret = stored
            changed += 1
    return changed
