"""Webhook subscriptions on the change feed: a business system registers a URL with its
credential, and is told when masters of its granted class have changed — which master ids, the
kind of change, and the feed cursors before and after — never a value. It then reads the
changes through the feed (``/api/share/v1/changes``), with its credential, masked and audited
like every read.

Notices are built from committed changes only (the dispatcher reads ``master_changes`` in its
own transaction), signed and sent by ``mechanisms.webhooks`` (checked targets, backoff), and
delivered at least once: the subscription's cursor moves only when the receiver answers 2xx;
otherwise the same changes are offered again later. A subscription is claimed before it is
sent, so several server processes do not send the same notice at once."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from citydata.bases.models import MasterChange
from citydata.db.base import as_utc
from citydata.db.engine import Store
from citydata.keys import ENCRYPTED, Keys
from citydata.mechanisms.webhooks import (
    TargetRefused,
    backoff,
    post,
    resolve,
    signature,
)
from citydata.share import gateway
from citydata.share.models import ShareApplication, ShareCredential, ShareSubscription
from citydata.share.service import ShareError, current_status

MAX_PER_APPLICATION = 5
CHANGES_PER_NOTICE = 500
CLAIM = timedelta(minutes=1)  # a sender that dies mid-notice frees the subscription after this


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
    try:
        url = resolve(url, allow_hosts).url
    except TargetRefused as exc:
        raise ShareError(str(exc), exc.code) from exc
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
        claimed = session.execute(  # type: ignore[attr-defined]  # an UPDATE: a CursorResult
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
