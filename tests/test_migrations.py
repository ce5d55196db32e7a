"""Upgrades from every released schema: a database made at each revision (0001 … the one before
head) is filled — every table it has, two rows each, their foreign keys pointing at each other,
and a department's staged table beside them — then upgraded to head, on SQLite and PostgreSQL.
Every row must still be there with every value it had in the columns that remain."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    create_engine,
    select,
)
from sqlalchemy.engine import Engine

from citydata.migrations import alembic_config, current_revision, head_revision


def released() -> list[str]:
    """Every revision, oldest first."""
    script = ScriptDirectory.from_config(alembic_config(create_engine("sqlite://")))
    return [r.revision for r in reversed(list(script.walk_revisions()))]


HEAD = released()[-1]
STAGED = "stg_101001_00001"  # a department's staged rows live outside the migrations


def value(table: Table, column, n: int) -> Any:
    """A value the column accepts, different per row and per column."""
    kind = column.type
    tag = f"{table.name[:12]}{column.name[:10]}{n}"
    if isinstance(kind, Boolean):
        return n % 2 == 1
    if isinstance(kind, Integer):
        return n if column.primary_key else 1000 * n + len(column.name)
    if isinstance(kind, Float | Numeric):
        return 1.5 * n
    if isinstance(kind, DateTime):
        return datetime(2026, 1, n, 3, 4, 5, tzinfo=UTC if kind.timezone else None)
    if isinstance(kind, Date):
        return date(2026, 2, n)
    if isinstance(kind, JSON):
        return {"值": [n, tag]}
    if isinstance(kind, LargeBinary):
        return bytes([n, 0, 255])
    if isinstance(kind, String | Text):
        length = getattr(kind, "length", None) or 40
        text = f"{n}值{tag}"
        return text[:length]
    return None


def fill(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    """Two rows in every table of the schema as it stands, parents before children."""
    meta = MetaData()
    meta.reflect(engine)
    rows: dict[str, list[dict[str, Any]]] = {}
    with engine.begin() as conn:
        for table in meta.sorted_tables:
            if table.name in {"alembic_version", "spatial_ref_sys"}:
                continue
            made = []
            for n in (11, 12):  # past any row a migration puts in itself (the audit head)
                row = {}
                for column in table.columns:
                    row[column.name] = value(table, column, n)
                for fk in table.foreign_key_constraints:
                    parent = rows.get(fk.referred_table.name)
                    for element in fk.elements:
                        if parent:
                            row[element.parent.name] = parent[n - 11][element.column.name]
                        else:  # a table pointing at itself: the first row points nowhere
                            row[element.parent.name] = None
                row = {k: v for k, v in row.items() if v is not None}
                made.append(row)
            conn.execute(table.insert(), made)
            rows[table.name] = made
        conn.exec_driver_sql(f"CREATE TABLE {STAGED} (_batch_id INTEGER, _row INTEGER, name TEXT)")
        conn.exec_driver_sql(f"INSERT INTO {STAGED} VALUES (1, 1, '张三'), (1, 2, '李四')")
    if engine.dialect.name == "postgresql":  # ids were given: sequences go on after them
        with engine.begin() as conn:
            for table in meta.sorted_tables:
                pk = list(table.primary_key.columns)
                if len(pk) == 1 and isinstance(pk[0].type, Integer) and table.name in rows:
                    conn.exec_driver_sql(
                        f"SELECT setval(pg_get_serial_sequence('{table.name}', '{pk[0].name}'), "
                        f"1000) WHERE pg_get_serial_sequence('{table.name}', '{pk[0].name}') "
                        "IS NOT NULL"
                    )
    return rows


def same(a: Any, b: Any) -> bool:
    if isinstance(a, datetime) and isinstance(b, datetime):
        strip = lambda d: (d.astimezone(UTC) if d.tzinfo else d).replace(tzinfo=None)  # noqa: E731
        return strip(a) == strip(b)
    if isinstance(b, Decimal):
        return float(b) == a
    return a == b


@pytest.mark.parametrize("revision", released()[:-1])
def test_a_database_of_every_released_schema_upgrades_with_its_data(revision, empty_url):
    engine = create_engine(empty_url)
    try:
        command.upgrade(alembic_config(engine), revision)
        assert current_revision(engine) == revision
        rows = fill(engine)
        tables = MetaData()
        tables.reflect(engine)
        assert set(rows) == set(tables.tables) - {"alembic_version", "spatial_ref_sys", STAGED}
        command.upgrade(alembic_config(engine), "head")
        assert current_revision(engine) == head_revision(engine) == HEAD

        meta = MetaData()
        meta.reflect(engine)
        lost = []
        with engine.connect() as conn:
            for name, made in rows.items():
                table = meta.tables[name]
                for row in made:
                    key = [c for c in table.primary_key.columns if c.name in row]
                    found = (
                        conn.execute(select(table).where(*[c == row[c.name] for c in key]))
                        .mappings()
                        .first()
                    )
                    if found is None:
                        lost.append((name, {c.name: row[c.name] for c in key}, "row"))
                        continue
                    for column, was in row.items():
                        if column in found and not same(was, found[column]):
                            lost.append((name, column, was, found[column]))
            staged = conn.exec_driver_sql(f"SELECT name FROM {STAGED} ORDER BY _row").all()
        assert lost == []
        assert [r[0] for r in staged] == ["张三", "李四"]
    finally:
        engine.dispose()
