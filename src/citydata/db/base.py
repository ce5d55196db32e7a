"""Declarative base shared by every domain's models."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import JSON, BigInteger, DateTime, Integer, MetaData
from sqlalchemy.orm import DeclarativeBase

# Stable constraint names keep Alembic migrations identical on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# Ids of the tables that grow with the city (masters and their values, links and changes; audit
# entries; cases, events and their histories): 64-bit on PostgreSQL. A 32-bit sequence ends at
# 2.1 billion, which a city's audit log passes within years, and Citus gives each node its own
# range of a bigint sequence only (docs/scale.md). SQLite's INTEGER is 64-bit already, and only
# a column declared INTEGER PRIMARY KEY numbers itself there.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict: JSON, list: JSON, datetime: DateTime(timezone=True)}


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime | None) -> datetime | None:
    """A stored time as an aware UTC datetime: SQLite hands back naive UTC, PostgreSQL aware."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def advance_sequences(session, *tables) -> None:
    """After rows were inserted with their ids given (a bulk load), let PostgreSQL's id
    sequences continue after the largest id, or the next ordinary insert collides with them.
    SQLite takes max(id) + 1 by itself."""
    from sqlalchemy import text

    if session.get_bind().dialect.name != "postgresql":
        return
    for table in tables:
        name = table.__tablename__ if hasattr(table, "__tablename__") else table.name
        session.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                f"(SELECT coalesce(max(id), 0) + 1 FROM {name}), false)"
            )
        )
