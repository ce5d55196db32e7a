"""Batches and their rejected rows. Staged rows live in one table per class (see staging.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from citydata.db.base import Base, BigId, utcnow


class Batch(Base):
    __tablename__ = "batches"
    __table_args__ = (Index("ix_batches_class_hash", "class_code", "file_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    class_code: Mapped[str] = mapped_column(ForeignKey("resource_classes.code"), index=True)
    unit_code: Mapped[str] = mapped_column(ForeignKey("units.code"), index=True)
    file_name: Mapped[str] = mapped_column(String(300))
    file_hash: Mapped[str] = mapped_column(String(64))
    mode: Mapped[str] = mapped_column(String(10))  # append | upsert | replace | delete
    status: Mapped[str] = mapped_column(String(12))  # running | committed | failed | interrupted
    submitted_by: Mapped[str] = mapped_column(String(64), default="")
    worker: Mapped[str] = mapped_column(String(80), default="")  # host:pid while running
    rows_read: Mapped[int] = mapped_column(default=0)
    rows_accepted: Mapped[int] = mapped_column(default=0)
    rows_rejected: Mapped[int] = mapped_column(default=0)
    rows_removed: Mapped[int] = mapped_column(default=0)
    message: Mapped[str] = mapped_column(Text, default="")
    report: Mapped[dict] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class Reject(Base):
    """One failed check of one row: the department fixes and resubmits from these."""

    __tablename__ = "batch_rejects"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"), index=True)
    row: Mapped[int]
    field: Mapped[str] = mapped_column(String(64))
    rule: Mapped[str] = mapped_column(String(32))
    value: Mapped[str | None] = mapped_column(Text)
