"""One staging table per resource class: the accepted rows exactly as sent (text), each with the
batch and source row it came from. Created on first use from the class's fields; the unit and
class of a row are its batch's."""

from __future__ import annotations

import io
import re

import polars as pl
from sqlalchemy import (
    Column,
    Connection,
    Integer,
    MetaData,
    Table,
    Text,
    delete,
    func,
    select,
    tuple_,
)

from citydata.catalog.models import ResourceClass

_staging_metadata = MetaData()
BATCH, ROW = "_batch_id", "_row"


def table_name(class_code: str) -> str:
    return "stg_" + re.sub(r"[^0-9a-zA-Z]+", "_", class_code).strip("_").lower()


def staging_table(rc: ResourceClass) -> Table:
    name = table_name(rc.code)
    if name in _staging_metadata.tables:
        table = _staging_metadata.tables[name]
        if [c.name for c in table.columns][2:] == [f.name for f in rc.fields]:
            return table
        _staging_metadata.remove(
            table
        )  # the class gained fields: redefine (new columns added below)
    return Table(
        name,
        _staging_metadata,
        Column(BATCH, Integer, nullable=False, index=True),
        Column(ROW, Integer, nullable=False),
        *[Column(f.name, Text) for f in rc.fields],
    )


def ensure_table(conn: Connection, rc: ResourceClass) -> Table:
    table = staging_table(rc)
    table.create(conn, checkfirst=True)
    existing = {c["name"] for c in conn.dialect.get_columns(conn, table.name)}
    for column in table.columns:
        if column.name not in existing:  # a field added to the class after its first batch
            conn.exec_driver_sql(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" TEXT')
    return table


def insert_frame(conn: Connection, table: Table, frame: pl.DataFrame) -> None:
    """Bulk insert inside the caller's transaction: COPY on PostgreSQL, executemany elsewhere."""
    if frame.height == 0:
        return
    columns = [c.name for c in table.columns if c.name in frame.columns]
    frame = frame.select(columns)
    raw = conn.connection.driver_connection
    if conn.dialect.name == "postgresql":
        buffer = io.StringIO()
        frame.write_csv(buffer, include_header=False, null_value="\\N", quote_style="necessary")
        names = ", ".join(f'"{c}"' for c in columns)
        with raw.cursor().copy(
            f"COPY {table.name} ({names}) FROM STDIN WITH (FORMAT csv, NULL '\\N')"
        ) as copy:
            copy.write(buffer.getvalue())
    else:
        marks = ", ".join("?" for _ in columns)
        names = ", ".join(f'"{c}"' for c in columns)
        cursor = raw.cursor()
        cursor.executemany(
            f"INSERT INTO {table.name} ({names}) VALUES ({marks})", frame.iter_rows()
        )


def delete_keys(conn: Connection, table: Table, keys: list[str], frame: pl.DataFrame) -> int:
    """Remove staged rows whose business key appears in ``frame``; returns how many went."""
    if frame.height == 0 or not keys:
        return 0
    removed = 0
    values = frame.select(keys).unique().rows()
    for start in range(0, len(values), 500):
        chunk = values[start : start + 500]
        if len(keys) == 1:
            where = table.c[keys[0]].in_([v[0] for v in chunk])
        else:
            where = tuple_(*[table.c[k] for k in keys]).in_(chunk)
        removed += conn.execute(delete(table).where(where)).rowcount
    return removed


def clear(conn: Connection, table: Table) -> int:
    return conn.execute(delete(table)).rowcount


def count(conn: Connection, table: Table, batch_id: int | None = None) -> int:
    query = select(func.count()).select_from(table)
    if batch_id is not None:
        query = query.where(table.c[BATCH] == batch_id)
    return conn.execute(query).scalar() or 0
