"""Sharing (共享): applications and every decision on them, the credentials of the consumer's
business systems, and their webhook subscriptions. (The audit log is ``citydata.audit``.)"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from citydata.db.base import Base, BigId, utcnow

STATUS = {
    "pending": "待审核",
    "more_info": "需补充材料",
    "approved": "已批准",
    "rejected": "已驳回",
    "refused": "不予共享",
    "revoked": "已撤销",
    "expired": "已过期",  # shown, never stored: an approval past its validity
}


class ShareApplication(Base):
    """A consumer unit's request for some fields of one resource class (channel ``share``), or a
    registered user's request for a 有条件开放 dataset's data (channel ``open``, no unit).
    Kept for ever."""

    __tablename__ = "share_applications"

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(8), default="share", server_default="share")
    consumer_code: Mapped[str | None] = mapped_column(ForeignKey("units.code"), index=True)
    class_code: Mapped[str] = mapped_column(ForeignKey("resource_classes.code"), index=True)
    provider_code: Mapped[str] = mapped_column(String(32), index=True)
    fields: Mapped[list] = mapped_column(default=list)  # requested
    unmasked: Mapped[list] = mapped_column(default=list)  # requested in clear
    granted: Mapped[list] = mapped_column(default=list)
    granted_unmasked: Mapped[list] = mapped_column(default=list)
    purpose: Mapped[str] = mapped_column(Text)
    legal_basis: Mapped[str] = mapped_column(Text)
    system_name: Mapped[str] = mapped_column(String(100))
    daily_volume: Mapped[int] = mapped_column(default=10000)
    valid_until: Mapped[date]
    status: Mapped[str] = mapped_column(String(12), index=True)
    due_date: Mapped[date | None]  # the provider's answer is due (有条件共享)
    reason: Mapped[str] = mapped_column(Text, default="")  # of the latest decision
    applicant: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(64))


class ShareDecision(Base):
    """Every step of an application — submitted, approved, rejected, asked, revoked — with its
    reason. Nothing here is ever updated or deleted."""

    __tablename__ = "share_decisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("share_applications.id"), index=True)
    action: Mapped[str] = mapped_column(String(16))
    by: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    reason: Mapped[str] = mapped_column(Text, default="")
    fields: Mapped[list] = mapped_column(default=list)


class ShareCredential(Base):
    """A business system's key for one application. Only hashes are stored; during a rotation
    the previous secret stays valid until ``previous_until``."""

    __tablename__ = "share_credentials"

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("share_applications.id"), index=True)
    key_id: Mapped[str] = mapped_column(String(16), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    previous_hash: Mapped[str | None] = mapped_column(String(64))
    previous_until: Mapped[datetime | None]
    ip_allow: Mapped[list] = mapped_column(default=list)  # addresses or networks; empty = any
    rate_per_minute: Mapped[int] = mapped_column(default=6000)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    rotated_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class ShareSubscription(Base):
    """A business system's webhook on the change feed of the class its application grants.
    Notices say only what changed (master ids, kind, cursor), never a value; the system then
    reads through the feed with its credential. ``cursor`` is the last change notified and
    acknowledged; a failed notice is retried from there with exponential backoff."""

    __tablename__ = "share_subscriptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("share_applications.id"), index=True)
    key_id: Mapped[str] = mapped_column(String(16))  # the credential that subscribed
    url: Mapped[str] = mapped_column(String(500))
    # The receiver checks each notice's HMAC with it, so the platform must keep it (unlike a
    # credential's secret, which only the caller needs in clear) — encrypted with the
    # installation's key (citydata.keys), which is not in the database.
    signing_secret: Mapped[str] = mapped_column(String(300))
    cursor: Mapped[int] = mapped_column(BigId, default=0)  # a master_changes id
    failures: Mapped[int] = mapped_column(default=0)  # in a row; reset by a delivered notice
    next_attempt_at: Mapped[datetime | None]
    last_status: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]
