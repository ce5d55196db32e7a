"""Master records of the base databases, their links to staged rows, field-level provenance,
versions for as-of queries, and the review queue of uncertain matches."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from citydata.db.base import Base, BigId, utcnow


class Master(Base):
    """One real person, legal person, house …: its golden record and where it stands."""

    __tablename__ = "masters"
    __table_args__ = (UniqueConstraint("base", "key", name="uq_masters_base_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    base: Mapped[str] = mapped_column(String(20), index=True)
    key: Mapped[str | None] = mapped_column(String(64))  # the deterministic key, when known
    name: Mapped[str | None] = mapped_column(String(200), index=True)  # for search by name
    version: Mapped[int] = mapped_column(default=1)
    record: Mapped[dict] = mapped_column(default=dict)  # attribute -> golden value
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    merged_into: Mapped[int | None]  # set when a later run folded this master into another


class MasterLink(Base):
    """A staged row and the master it was resolved to."""

    __tablename__ = "master_links"
    __table_args__ = (UniqueConstraint("base", "batch_id", "row", name="uq_master_links_row"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    base: Mapped[str] = mapped_column(String(20))
    master_id: Mapped[int] = mapped_column(BigId, ForeignKey("masters.id"), index=True)
    class_code: Mapped[str] = mapped_column(String(64))
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"))
    row: Mapped[int]
    method: Mapped[str] = mapped_column(String(10))  # key | match | review | new
    weight: Mapped[float | None]


class MasterValue(Base):
    """One value an attribute of a master was given by some source; ``chosen`` marks the golden
    one. The provenance is the most authoritative row that carries the value."""

    __tablename__ = "master_values"
    __table_args__ = (Index("ix_master_values_master_attribute", "master_id", "attribute"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    master_id: Mapped[int] = mapped_column(BigId, ForeignKey("masters.id"))
    attribute: Mapped[str] = mapped_column(String(64))
    value: Mapped[str] = mapped_column(Text)
    chosen: Mapped[bool] = mapped_column(default=False)
    rows: Mapped[int] = mapped_column(default=1)  # how many source rows carry it
    unit_code: Mapped[str] = mapped_column(String(32))
    class_code: Mapped[str] = mapped_column(String(64))
    batch_id: Mapped[int]
    row: Mapped[int]
    observed_at: Mapped[datetime]


class MasterVersion(Base):
    """Each golden record a master has had, with the time it held: as-of queries read these."""

    __tablename__ = "master_versions"

    master_id: Mapped[int] = mapped_column(BigId, ForeignKey("masters.id"), primary_key=True)
    version: Mapped[int] = mapped_column(primary_key=True)
    record: Mapped[dict] = mapped_column(default=dict)
    valid_from: Mapped[datetime]
    valid_to: Mapped[datetime | None]


class MasterEvent(Base):
    """Masters made, merged or split by a run."""

    __tablename__ = "master_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    base: Mapped[str] = mapped_column(String(20), index=True)
    kind: Mapped[str] = mapped_column(String(10))  # created | merged | split | retired
    master_id: Mapped[int] = mapped_column(BigId)
    other_id: Mapped[int | None] = mapped_column(BigId)
    detail: Mapped[dict] = mapped_column(default=dict)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class MatchReview(Base):
    """An uncertain match (between the two thresholds), or a row whose key contradicts it,
    waiting for, or decided by, a steward."""

    __tablename__ = "match_reviews"
    __table_args__ = (
        UniqueConstraint("base", "batch_id", "row", "master_id", name="uq_match_reviews_pair"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    base: Mapped[str] = mapped_column(String(20), index=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"))
    row: Mapped[int]
    class_code: Mapped[str] = mapped_column(String(64))
    master_id: Mapped[int] = mapped_column(BigId, ForeignKey("masters.id"))
    probability: Mapped[float]
    # match: the model was unsure; key_conflict: the row carries the master's key, but its
    # name, birth date or sex say it is someone else (a parent's number on a child's record)
    reason: Mapped[str] = mapped_column(String(16), default="match", server_default="match")
    status: Mapped[str] = mapped_column(String(10), default="pending", index=True)
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ThemeRefresh(Base):
    """Each materialisation of a theme database: when, how many rows, from which definition."""

    __tablename__ = "theme_refreshes"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    class_code: Mapped[str] = mapped_column(String(64))
    rows: Mapped[int]
    definition_hash: Mapped[str] = mapped_column(String(64))
    refreshed_at: Mapped[datetime] = mapped_column(default=utcnow)


class MasterChange(Base):
    """A master's published record changed (``upsert``) or went away (``delete``), written in the
    run's own transaction. The id is the cursor of the sharing service's change feed."""

    __tablename__ = "master_changes"
    __table_args__ = (Index("ix_master_changes_base_id", "base", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    base: Mapped[str] = mapped_column(String(20))
    master_id: Mapped[int] = mapped_column(BigId)
    kind: Mapped[str] = mapped_column(String(8))
    at: Mapped[datetime] = mapped_column(default=utcnow)
