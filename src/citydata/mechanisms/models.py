"""The mechanisms' own tables: idempotency keys, webhook subscriptions with their outbox, the
version of each topic of data (``changes``), the rate windows every server process counts in,
and the leases of scheduled work."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from citydata.db.base import Base, utcnow


class IdempotencyKey(Base):
    """A write already done under an ``Idempotency-Key``: a retry with the same key and the
    same request gets the stored answer; with another request, a refusal. Written in the same
    transaction as the write itself, so there is never one without the other."""

    __tablename__ = "idempotency_keys"

    scope: Mapped[str] = mapped_column(String(80), primary_key=True)  # who: a system, a user
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None]  # None: the first request is still being answered
    response: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookSubscription(Base):
    """A system's URL, told about events of its ``owner`` (e.g. ``services:csga``): what
    happened and to which record, never a value. The signing secret is kept encrypted."""

    __tablename__ = "webhook_subscriptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(80), index=True)
    url: Mapped[str] = mapped_column(String(500))
    signing_secret: Mapped[str] = mapped_column(String(300))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]


class WebhookNotice(Base):
    """One notice waiting to be delivered, or delivered: put here in the transaction of the
    change it tells of (so only committed changes are told), sent after, retried with backoff."""

    __tablename__ = "webhook_outbox"
    __table_args__ = (Index("ix_webhook_outbox_due", "delivered_at", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("webhook_subscriptions.id"), index=True)
    event: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    last_status: Mapped[str] = mapped_column(String(200), default="")


class DataChange(Base):
    """A topic of data (``ingest``, ``services`` …) and how many committed changes it has had:
    raised in each change's own transaction (``mechanisms.changes``); summaries compare it."""

    __tablename__ = "data_changes"

    topic: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[int] = mapped_column(default=0)
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)


class RateWindow(Base):
    """The calls one key has made in its current window of one scope (``share_minute`` and a
    credential, ``open_ip`` and an address …), counted by every server process alike: moved by
    one conditional UPDATE, so the last call of a window goes to exactly one of them. UNLOGGED on
    PostgreSQL: counts are worth no WAL, and a crash that empties the table costs at most one
    window (daily quotas are counted again from the audit log)."""

    __tablename__ = "rate_windows"

    scope: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    window_start: Mapped[int] = mapped_column(BigInteger)  # its first second since the epoch
    used: Mapped[int]


class ScheduledJob(Base):
    """One kind of scheduled work (webhook rounds, theme refreshes, retention …) and its lease:
    the process whose conditional UPDATE moved ``due_at`` runs the round, and no other until
    ``running_until`` has passed — once across every worker and machine."""

    __tablename__ = "scheduled_jobs"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    due_at: Mapped[datetime]
    running_until: Mapped[datetime | None]
    holder: Mapped[str] = mapped_column(String(80), default="")  # host:pid of the last runner
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    runs: Mapped[int] = mapped_column(default=0)
    failures: Mapped[int] = mapped_column(default=0)
    outcome: Mapped[str] = mapped_column(Text, default="")
