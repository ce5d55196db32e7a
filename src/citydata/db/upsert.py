"""An insert that gives way to a row already there, on either store."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table


def insert_new(conn: Connection, table: Table, values: dict[str, Any]) -> bool:
    """Insert ``values`` unless a row with the same key exists; True when it was inserted.
    Two processes inserting at once: one wins, the other is told it did not."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    # RETURNING rather than rowcount: SQLAlchemy reports -1 rows for this statement on psycopg
    key = list(table.primary_key.columns)[0]
    statement = insert(table).values(values).on_conflict_do_nothing().returning(key)
    return conn.execute(statement).first() is not None
