"""Webhooks after commit, for any domain: a subscription per system URL, and an outbox of
notices written in the same transaction as the change they tell of — so a notice exists exactly
when its change was committed — then sent, signed, to the checked address (``webhooks``), at
least once, with backoff. Several server processes claim notices before sending, so none is sent
twice at once."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from citydata.db.engine import Store
from citydata.keys import Keys
from citydata.mechanisms.models import WebhookNotice, WebhookSubscription
from citydata.mechanisms.webhooks import backoff, post, resolve, signature

CLAIM = timedelta(minutes=1)
BATCH = 200
MAX_SUBSCRIPTIONS = 5


class SubscriptionError(ValueError):
    def __init__(self, message: str, code: str, status: int = 400):
        super().__init__(message)
        self.code, self.status = code, status


def subscribe(
    session: Session,
    owner: str,
    url: object,
    created_by: str,
    keys: Keys,
    allow_hosts: Iterable[str] = (),
) -> tuple[WebhookSubscription, str]:
    """(the subscription, its signing secret — shown once, kept encrypted)."""
    from citydata.mechanisms.webhooks import TargetRefused

    try:
        checked = resolve(url, allow_hosts).url
    except TargetRefused as exc:
        raise SubscriptionError(str(exc), exc.code) from exc
    active = session.scalars(
        select(WebhookSubscription.id).where(
            WebhookSubscription.owner == owner, WebhookSubscription.ended_at.is_(None)
        )
    ).all()
    if len(active) >= MAX_SUBSCRIPTIONS:
        raise SubscriptionError(f"最多 {MAX_SUBSCRIPTIONS} 个订阅", "too_many_subscriptions", 409)
    secret = secrets.token_hex(32)
    sub = WebhookSubscription(
        owner=owner, url=checked, signing_secret=keys.encrypt(secret), created_by=created_by
    )
    session.add(sub)
    session.flush()
    return sub, secret


def unsubscribe(session: Session, owner: str, subscription_id: int) -> WebhookSubscription:
    sub = session.get(WebhookSubscription, subscription_id)
    if sub is None or sub.owner != owner:
        raise SubscriptionError(f"没有订阅 {subscription_id}", "not_found", 404)
    sub.ended_at = sub.ended_at or datetime.now(UTC)
    return sub


def enqueue(session: Session, owner: str, event: str, payload: dict[str, Any]) -> int:
    """A notice of ``event`` for every live subscription of ``owner``, in the caller's
    transaction. ``payload`` must carry no personal value (a case number, a status)."""
    subs = session.scalars(
        select(WebhookSubscription.id).where(
            WebhookSubscription.owner == owner, WebhookSubscription.ended_at.is_(None)
        )
    ).all()
    body = orjson.dumps({"event": event, **payload}).decode()
    for sub_id in subs:
        session.add(WebhookNotice(subscription_id=sub_id, event=event, body=body))
    return len(subs)


@dataclass
class Round:
    delivered: int = 0
    failed: int = 0


def dispatch(
    store: Store,
    keys: Keys,
    allow_hosts: Iterable[str] = (),
    now: datetime | None = None,
    send: Callable[[str, bytes, dict[str, str]], tuple[bool, str]] | None = None,
) -> Round:
    """One round: claim the due notices, send each, record the outcome."""
    now = now or datetime.now(UTC)
    allowed = tuple(allow_hosts)
    send = send or (lambda url, body, headers: post(url, body, headers, allowed))
    due = or_(WebhookNotice.next_attempt_at.is_(None), WebhookNotice.next_attempt_at <= now)
    with store.session() as session:
        rows = session.execute(
            select(WebhookNotice, WebhookSubscription)
            .join(WebhookSubscription, WebhookSubscription.id == WebhookNotice.subscription_id)
            .where(
                WebhookNotice.delivered_at.is_(None),
                WebhookSubscription.ended_at.is_(None),
                due,
            )
            .order_by(WebhookNotice.id)
            .limit(BATCH)
        ).all()
        claimed = []
        for notice, sub in rows:
            took = session.execute(  # an UPDATE: its rowcount says who claimed it
                update(WebhookNotice)
                .where(WebhookNotice.id == notice.id, WebhookNotice.delivered_at.is_(None), due)
                .values(next_attempt_at=now + CLAIM)
                .execution_options(synchronize_session=False)
            ).rowcount
            if took:
                claimed.append((notice.id, notice.body, sub.url, keys.decrypt(sub.signing_secret)))
    report = Round()
    for notice_id, body, url, secret in claimed:
        raw = body.encode()
        stamp = str(int(now.timestamp()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "citydata-webhooks",
            "X-Citydata-Notice": str(notice_id),
            "X-Citydata-Timestamp": stamp,
            "X-Citydata-Signature": "sha256=" + signature(secret, stamp, raw),
        }
        started = time.monotonic()
        ok, status = send(url, raw, headers)
        with store.session() as session:
            notice = session.get(WebhookNotice, notice_id)
            notice.attempts += 1
            notice.last_status = f"{status} ({(time.monotonic() - started) * 1000:.0f} ms)"[:200]
            if ok:
                notice.delivered_at, notice.next_attempt_at = now, None
                report.delivered += 1
            else:
                notice.next_attempt_at = now + backoff(notice.attempts)
                report.failed += 1
    return report
