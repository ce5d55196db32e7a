"""The audit log's tables: one entry per audited read, whose records it delivered, the chain's
head, and what retention removed from inside the kept chain.

On PostgreSQL entries and subjects are partitioned by month of ``at`` (in the city's time):
retention drops whole months, and their keys carry ``at`` (the partition key), so they hold no
foreign key between them and ``request_id`` is indexed, not unique (a UUID4 needs no
constraint)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from citydata.db.base import Base, BigId


class AuditEntry(Base):
    """One call of the sharing API, written before its data is returned. ``entry_hash`` covers
    the entry and the previous entry's hash, so an edited, removed or reordered entry shows."""

    __tablename__ = "audit_entries"
    __table_args__ = (Index("ix_audit_entries_unit_class_at", "consumer_code", "class_code", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)  # the chain's order
    at: Mapped[datetime]
    request_id: Mapped[str] = mapped_column(String(36), index=True)
    key_id: Mapped[str | None] = mapped_column(String(16), index=True)
    consumer_code: Mapped[str | None] = mapped_column(String(32))
    system_name: Mapped[str | None] = mapped_column(String(100))
    application_id: Mapped[int | None]
    class_code: Mapped[str | None] = mapped_column(String(40))
    action: Mapped[str] = mapped_column(String(16))
    fields: Mapped[list] = mapped_column(default=list)
    query: Mapped[dict] = mapped_column(default=dict)  # keys or filter, cursor
    end_user: Mapped[str] = mapped_column(String(100), default="")  # X-Citydata-User-Id
    case_id: Mapped[str] = mapped_column(String(100), default="")  # X-Citydata-Case-Id
    client_ip: Mapped[str] = mapped_column(
        String(64), default=""
    )  # behind trusted proxies: forwarded
    peer_ip: Mapped[str | None] = mapped_column(String(64))  # the connection's own address
    rows: Mapped[int] = mapped_column(default=0)
    subjects: Mapped[list] = mapped_column(default=list)  # master ids whose records left
    outcome: Mapped[str] = mapped_column(String(32))  # ok, or the error code
    status_code: Mapped[int]
    response_hash: Mapped[str] = mapped_column(String(64), default="")
    prev_hash: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64))


class AuditSubject(Base):
    """Whose record an audited call delivered: "who read this person's data?" is one lookup."""

    __tablename__ = "audit_subjects"

    audit_id: Mapped[int] = mapped_column(BigId, primary_key=True)  # audit_entries.id
    master_id: Mapped[int] = mapped_column(BigId, primary_key=True, index=True)
    at: Mapped[datetime]  # the entry's, so a month's subjects go with its entries


class AuditHead(Base):
    """The chain's last entry; one row, locked by each writer so the chain has one order even
    with several server processes."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    last_id: Mapped[int] = mapped_column(BigId, default=0)
    last_hash: Mapped[str] = mapped_column(String(64))
    # Where the kept chain starts once retention has pruned older entries.
    first_id: Mapped[int] = mapped_column(BigId, default=1)
    first_prev_hash: Mapped[str] = mapped_column(String(64))


class AuditRemoved(Base):
    """An entry retention removed from inside the kept chain: dropping a month's partition also
    takes the few entries of that month written after the next month's first (a call begun at
    23:59:59.9 recorded a moment later). Their hashes let `verify` step over them; the anchor
    entry that removed them holds a digest of these rows, so none can be added to hide a gap."""

    __tablename__ = "audit_removed"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)  # the entry's id
    prev_hash: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64))
    anchor_id: Mapped[int] = mapped_column(BigId, index=True)  # the retention entry that removed it
