"""One staging table per resource class: the accepted rows exactly as sent (text), each with the
batch and source row it came from. Created on first use from the class's fields; the unit and
class of a row are its batch's.

A batch's changes are written by a BatchWriter in one transaction, on a worker thread, so the
next chunk of the file is read and validated while this one is written. On SQLite the rows go in
through an ADBC-written spool file (see _SpooledSqliteTransaction); on PostgreSQL through COPY."""

from __future__ import annotations

import re
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy import (
    Column,
    Connection,
    Engine,
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
from citydata.mechanisms import changes

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
        Column(BATCH, Integer, nullable=False),
        Column(ROW, Integer, nullable=False),
        *[Column(f.name, Text) for f in rc.fields],
        # No index: a batch's rows arrive together and lie together, and keeping even a BRIN
        # index up to date cost a seventh of PostgreSQL's COPY; on SQLite an index would stop
        # the spool's rows being copied over record by record (see _SpooledSqliteTransaction).
    )


def create_or_extend(conn: Connection, table: Table) -> Table:
    """Create ``table``, or add the columns it has gained since it was created."""
    table.create(conn, checkfirst=True)
    existing = {c["name"] for c in conn.dialect.get_columns(conn, table.name)}
    for column in table.columns:
        if column.name not in existing:  # e.g. a field added to the class after its first batch
            kind = column.type.compile(dialect=conn.dialect)
            conn.exec_driver_sql(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}')
    return table


def ensure_table(conn: Connection, rc: ResourceClass) -> Table:
    table = create_or_extend(conn, staging_table(rc))
    conn.exec_driver_sql(f"DROP INDEX IF EXISTS ix_{table.name}_batch")  # see staging_table
    return table


def sqlite_layout(conn: Connection, name: str) -> tuple[str, list[str]]:
    """A SQLite table's CREATE statement as stored, and its columns in their stored order
    (a column added later comes last, wherever its field sits in the class)."""
    ddl = conn.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    ).scalar_one()
    return ddl, [row[1] for row in conn.exec_driver_sql(f'PRAGMA table_info("{name}")')]


def insert_frame(conn: Connection, table: Table, frame: pl.DataFrame, plain: bool = False) -> None:
    """Bulk insert inside the caller's transaction: COPY on PostgreSQL, executemany elsewhere.
    ``plain``: no text in ``frame`` holds a backslash, tab, carriage return or line break, so
    COPY's text format (read a sixth faster than CSV) takes it as it is."""
    if frame.height == 0:
        return
    columns = [c.name for c in table.columns if c.name in frame.columns]
    frame = frame.select(columns)
    raw = conn.connection.driver_connection
    if conn.dialect.name == "postgresql":
        names = ", ".join(f'"{c}"' for c in columns)
        text = {"separator": "\t", "quote_style": "never", "null_value": "\\N"}
        # CSV's own NULL is an unquoted empty field; Polars quotes an empty string (""), and
        # any other text (a department's literal \N included) is just text.
        csv = {"quote_style": "necessary"}
        with raw.cursor().copy(
            f"COPY {table.name} ({names}) FROM STDIN" + ("" if plain else " WITH (FORMAT csv)")
        ) as copy:
            # Polars hands the rows over in pieces as it writes them: the server is already
            # parsing the first while the last are being formatted.
            frame.write_csv(_Pieces(copy), include_header=False, **(text if plain else csv))
    else:
        frame = frame.with_columns(  # SQLite keeps naive UTC, as SQLAlchemy writes it
            pl.col(c).dt.convert_time_zone("UTC").dt.replace_time_zone(None)
            for c, dtype in frame.schema.items()
            if isinstance(dtype, pl.Datetime) and dtype.time_zone
        )
        marks = ", ".join("?" for _ in columns)
        names = ", ".join(f'"{c}"' for c in columns)
        cursor = raw.cursor()
        cursor.executemany(
            f"INSERT INTO {table.name} ({names}) VALUES ({marks})", frame.iter_rows()
        )


class _Pieces:
    """A COPY as the file Polars writes to: ``write`` must answer with the bytes taken."""

    def __init__(self, copy: Any):
        self.copy = copy

    def write(self, data: bytes) -> int:
        self.copy.write(data)
        return len(data)


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


class _DirectTransaction:
    """PostgreSQL (and any other server): every change goes straight into one transaction on the
    store's engine, the bulk rows by COPY."""

    def __init__(self, engine: Engine):
        self.conn = engine.connect()
        self.txn = self.conn.begin()
        self.removed = 0

    def clear(self, table: Table) -> None:
        self.removed += clear(self.conn, table)

    def remove_keys(self, table: Table, keys: list[str], frame: pl.DataFrame) -> None:
        self.removed += delete_keys(self.conn, table, keys, frame)

    def add(self, table: Table, frame: pl.DataFrame, plain: bool = False) -> None:
        insert_frame(self.conn, table, frame, plain)

    def finish(self, table: Table, key: int, values: dict[str, Any]) -> None:
        self.conn.execute(
            table.update().where(table.c.id == key).values(**values, rows_removed=self.removed)
        )
        changes.mark(self.conn, "ingest")  # a batch committed: summaries of it are stale
        self.txn.commit()
        self.conn.close()
        changes.announce("ingest")

    def rollback(self) -> None:
        self.txn.rollback()
        self.conn.close()


class _SpooledSqliteTransaction:
    """SQLite: chunks are spooled through ADBC (Arrow bound straight into prepared statements,
    ~3x faster than executemany) into a scratch SQLite file while the next chunk is validated;
    at the end one transaction on the store's own connection applies them with INSERT ... SELECT
    from the attached spool. The spool is a separate file that only ADBC has open until it is
    closed: two SQLite libraries must never hold the same file at once.

    The staging table's spool is made with the table's own CREATE statement, so the final
    ``INSERT INTO t SELECT * FROM spool.t`` is SQLite's transfer case: records are copied as
    they are, not decoded and built again (half the time of a listed-column copy)."""

    def __init__(self, engine: Engine, staged: Table, layout: tuple[str, list[str]]):
        import adbc_driver_sqlite.dbapi

        self.engine = engine
        database = engine.url.database
        near = Path(database).resolve().parent if database not in (None, "", ":memory:") else None
        self.folder = tempfile.TemporaryDirectory(prefix="citydata-spool-", dir=near)
        self.path = Path(self.folder.name) / "spool.db"
        self.spool = adbc_driver_sqlite.dbapi.connect(str(self.path), autocommit=True)
        self.cur = self.spool.cursor()
        self.cur.execute("PRAGMA journal_mode = OFF")  # scratch data: no journal, no fsync
        self.cur.execute("PRAGMA synchronous = OFF")
        self.staged = staged
        ddl, self.staged_columns = layout
        self.cur.execute(ddl)
        self.staged_rows = 0
        self.spooled: dict[str, list[str]] = {}  # other tables than the keys -> columns
        self.removed = 0
        self.cleared: Table | None = None
        self.key_table: tuple[Table, list[str]] | None = None

    def _spool(self, name: str, frame: pl.DataFrame, mode: str = "create_append") -> None:
        # String views as they are (the driver binds them): no copy into Arrow's older layout.
        arrow = frame.to_arrow(compat_level=pl.CompatLevel.newest())
        self.cur.adbc_ingest(name, arrow, mode=mode)

    def clear(self, table: Table) -> None:
        self.cleared = table

    def remove_keys(self, table: Table, keys: list[str], frame: pl.DataFrame) -> None:
        if frame.height and keys:
            self.key_table = (table, keys)
            self._spool("_keys", frame.select(keys))

    def add(self, table: Table, frame: pl.DataFrame, plain: bool = False) -> None:
        if not frame.height:
            return
        if table is self.staged:  # every column, in the stored order (fields not sent: null)
            self._spool(
                table.name,
                frame.select(
                    c if c in frame.columns else pl.lit(None, pl.String).alias(c)
                    for c in self.staged_columns
                ),
                mode="append",
            )
            self.staged_rows += frame.height
        else:
            columns = [c.name for c in table.columns if c.name in frame.columns]
            self._spool(table.name, frame.select(columns))
            self.spooled.setdefault(table.name, columns)

    def finish(self, table: Table, key: int, values: dict[str, Any]) -> None:
        self.spool.close()
        with self.engine.connect() as conn:
            conn.exec_driver_sql("ATTACH DATABASE ? AS spool", (str(self.path),))
            conn.commit()
            try:
                if self.cleared is not None:
                    self.removed += conn.execute(delete(self.cleared)).rowcount
                if self.key_table is not None:
                    target, keys = self.key_table
                    names = ", ".join(f'"{k}"' for k in keys)
                    self.removed += conn.exec_driver_sql(
                        f"DELETE FROM main.{target.name} WHERE ({names}) IN "
                        f"(SELECT {names} FROM spool._keys)"
                    ).rowcount
                if self.staged_rows:
                    name = self.staged.name
                    conn.exec_driver_sql(f"INSERT INTO main.{name} SELECT * FROM spool.{name}")
                for name, columns in self.spooled.items():
                    listed = ", ".join(f'"{c}"' for c in columns)
                    conn.exec_driver_sql(
                        f"INSERT INTO main.{name} ({listed}) SELECT {listed} FROM spool.{name}"
                    )
                conn.execute(
                    table.update()
                    .where(table.c.id == key)
                    .values(**values, rows_removed=self.removed)
                )
                changes.mark(conn, "ingest")  # a batch committed: summaries of it are stale
                conn.commit()
            finally:
                conn.rollback()
                conn.exec_driver_sql("DETACH DATABASE spool")
                conn.commit()
        self.folder.cleanup()
        changes.announce("ingest")

    def rollback(self) -> None:
        with suppress(Exception):
            self.spool.close()
        self.folder.cleanup()


class BatchWriter:
    """Applies one batch to its staging table in one transaction: all of it, or nothing.

    Every database call runs, in order, on one worker thread; ``write`` returns as soon as the
    previous chunk is written, so reading and validating overlap with writing."""

    def __init__(self, engine: Engine, rc: ResourceClass, mode: str, keys: list[str]):
        with engine.begin() as conn:  # DDL first, on its own: an empty table changes no data
            self.table = ensure_table(conn, rc)
            if engine.dialect.name == "sqlite":
                self.layout = sqlite_layout(conn, self.table.name)
        self.mode, self.keys = mode, keys
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="batch-writer")
        self._last: Future | None = None
        self.txn: Any = None  # a _SpooledSqliteTransaction or a _DirectTransaction, once open
        # Opened on the worker, like every later step: the first chunk is read and validated
        # meanwhile (loading the ADBC driver alone took a quarter of a second).
        self._run(self._open, engine)

    def _open(self, engine: Engine) -> None:
        if engine.dialect.name == "sqlite":
            self.txn = _SpooledSqliteTransaction(engine, self.table, self.layout)
        else:
            self.txn = _DirectTransaction(engine)
        if self.mode == "replace":
            self.txn.clear(self.table)

    @property
    def removed(self) -> int:
        return self.txn.removed

    def _run(self, fn, *args) -> None:
        if self._last is not None:
            self._last.result()  # surfaces the previous call's error here, in order
        self._last = self._pool.submit(fn, *args)

    def _write(
        self, accepted: pl.DataFrame, rejects: pl.DataFrame, reject_table: Table, plain: bool
    ) -> None:
        if self.mode in {"upsert", "delete"}:
            self.txn.remove_keys(self.table, self.keys, accepted)
        if self.mode != "delete":
            self.txn.add(self.table, accepted, plain)
        self.txn.add(reject_table, rejects, plain)

    def write(
        self,
        accepted: pl.DataFrame,
        rejects: pl.DataFrame,
        reject_table: Table,
        plain: bool = False,
    ) -> None:
        """Queue a chunk's rows; ``plain`` as for ``insert_frame``."""
        self._run(self._write, accepted, rejects, reject_table, plain)

    def commit(self, batch_table: Table, batch_id: int, values: dict[str, Any]) -> None:
        """Mark the batch with ``values`` (and the count of rows it removed) and commit."""
        # Looked up on the worker: with no chunk written, the worker may still be opening txn.
        self._run(lambda: self.txn.finish(batch_table, batch_id, values))
        self._last.result()
        self._last = None

    def __enter__(self) -> BatchWriter:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Roll back whatever was not committed, and stop the worker."""
        try:
            if self._last is not None:
                with suppress(Exception):  # the caller is already handling the first error
                    self._last.result()
                if self.txn is not None:
                    with suppress(Exception):
                        self._pool.submit(self.txn.rollback).result()
        finally:
            self._pool.shutdown()
