"""What user SQL may touch is decided by the database, not by our parser.

Each published dataset is a view exposing ``_id`` and its public fields, nothing else. User SQL
runs on a connection of its own that can read only those views:

- **SQLite**: the file opened read-only (``mode=ro``), with an authorizer that allows a read
  only of the caller's datasets' views and of exactly the columns those views read, and denies
  every other action (writes, ``PRAGMA``, ``ATTACH``, loading extensions). A CTE named like a
  view gains nothing: the authorizer judges the table and column actually read.
- **PostgreSQL**: a login role of its own (``citydata_open_sql``: no superuser, no inherited
  rights, its own ``search_path``, read-only transactions, a statement timeout) that may
  ``SELECT`` only the views in schema ``open_sql``. A 有条件开放 dataset's view shows rows only
  to the connection the platform released it to, for the duration of the query
  (``open_sql_releases``, which the role cannot write).

A view's name carries a digest of its definition, so a change of the dataset's public fields
makes a new view and the old one is dropped; nothing stale stays readable."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url

from citydata.bases.tables import ClassTable

SCHEMA = "open_sql"  # PostgreSQL: where the views live
READER_ROLE = "citydata_open_sql"
RELEASES = "open_sql_releases"
# SQLite functions user SQL may never call, even on a read-only connection.
BLOCKED_FUNCTIONS = frozenset({"load_extension", "fts3_tokenizer", "readfile", "writefile", "edit"})
# How each database says no: SQLite's authorizer, PostgreSQL's privileges.
REFUSALS = ("not authorized", "prohibited", "permission denied")


def refused(error: BaseException) -> bool:
    """Was ``error`` the database refusing access (rather than a mistake in the query)?"""
    return any(marker in str(error) for marker in REFUSALS)


class GuardUnavailable(RuntimeError):
    """The database cannot give user SQL a connection of its own (e.g. no right to make the
    reader role); the endpoint refuses rather than run with the platform's rights."""


@dataclass(frozen=True)
class Exposure:
    """One dataset as user SQL may see it."""

    slug: str
    where: ClassTable  # the table holding its rows
    columns: tuple[str, ...]  # the public fields
    released_only: bool  # 有条件开放: rows only for a connection it was released to

    @property
    def table(self) -> str:
        return self.where.table

    def select(self, dialect: str) -> str:
        source = self.where.source(self.columns)
        stmt = select(self.where.row_id(source).label("_id"), *[source.c[c] for c in self.columns])
        compiled = stmt.compile(
            dialect=postgresql.dialect() if dialect == "postgresql" else sqlite.dialect(),
            compile_kwargs={"literal_binds": True},
        )
        return str(compiled)

    def definition(self, dialect: str) -> str:
        body = self.select(dialect)
        if dialect == "postgresql":
            body = f"SELECT * FROM ({body}) AS d"
            if self.released_only:
                body += (
                    f" WHERE EXISTS (SELECT 1 FROM public.{RELEASES} r"
                    " WHERE r.pid = pg_backend_pid() AND r.view = "
                    f"'{self.view_name(dialect)}' AND r.until > clock_timestamp())"
                )
        return body

    def view_name(self, dialect: str) -> str:
        digest = hashlib.sha256(
            repr((self.table, self.columns, self.where.order, self.released_only)).encode()
        ).hexdigest()[:10]
        return f"open_{self.slug.replace('-', '_').lower()}_{digest}"

    def qualified(self, dialect: str) -> str:
        name = self.view_name(dialect)
        return f'"{SCHEMA}"."{name}"' if dialect == "postgresql" else f'"{name}"'

    def readable_columns(self, dialect: str) -> set[tuple[str, str]]:
        """The (table, column) pairs a read through this view touches (SQLite's authorizer)."""
        name = self.view_name(dialect)
        own = {(name, c) for c in ("_id", *self.columns)} | {(name, "")}
        underlying = {(self.table, c) for c in (*self.columns, *self.where.order)}
        return own | underlying | {(self.table, "")}


class Guard:
    """Views and guarded connections for one database."""

    def __init__(self, engine: Engine, reader_url: str | None = None):
        self.engine = engine
        self.dialect = engine.dialect.name
        self._reader_url = reader_url
        self._known: set[str] = set()
        self._lock = threading.Lock()
        self._ready = False

    # ------------------------------------------------------------ views

    def ensure(self, exposures: Sequence[Exposure]) -> None:
        """Every view these datasets need exists with its current definition; older versions of
        the same datasets' views are gone."""
        wanted = {e.view_name(self.dialect): e for e in exposures}
        if wanted.keys() <= self._known:
            return
        with self._lock, self.engine.begin() as conn:
            if self.dialect == "postgresql":
                self._prepare_postgres(conn)
            existing = self._existing_views(conn)
            for name, exposure in wanted.items():
                if name in existing:
                    continue
                prefix = f"open_{exposure.slug.replace('-', '_').lower()}_"
                for stale in [v for v in existing if v.startswith(prefix) and v != name]:
                    conn.exec_driver_sql(f"DROP VIEW IF EXISTS {self._qualify(stale)}")
                    existing.discard(stale)
                conn.exec_driver_sql(
                    f"CREATE VIEW {exposure.qualified(self.dialect)} AS "
                    f"{exposure.definition(self.dialect)}"
                )
                if self.dialect == "postgresql":
                    conn.exec_driver_sql(
                        f"GRANT SELECT ON {exposure.qualified(self.dialect)} TO {READER_ROLE}"
                    )
                existing.add(name)
            self._known = set(existing)

    def _qualify(self, name: str) -> str:
        return f'"{SCHEMA}"."{name}"' if self.dialect == "postgresql" else f'"{name}"'

    def _existing_views(self, conn) -> set[str]:
        if self.dialect == "postgresql":
            found = conn.execute(
                text("SELECT table_name FROM information_schema.views WHERE table_schema = :s"),
                {"s": SCHEMA},
            )
        else:
            found = conn.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE type = 'view' AND name LIKE 'open\\_%' "
                "ESCAPE '\\'"
            )
        return {r[0] for r in found}

    # ------------------------------------------------------------ PostgreSQL's reader role

    def reader_url(self) -> str:
        """The reader's URL: given, or the platform's with the reader role's name and a password
        derived from the platform's own (whoever knows that one can read everything anyway)."""
        if self._reader_url:
            return self._reader_url
        url = make_url(self.engine.url.render_as_string(hide_password=False))
        password = _reader_password(url.password)
        url = url.set(username=READER_ROLE, password=password, drivername="postgresql")
        return url.render_as_string(hide_password=False)

    def _prepare_postgres(self, conn) -> None:
        if self._ready:
            return
        password = make_url(self.engine.url.render_as_string(hide_password=False)).password
        secret = _reader_password(password)
        try:
            with conn.begin_nested():
                exists = conn.execute(
                    text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": READER_ROLE}
                ).first()
                if exists is None and not self._reader_url:
                    conn.exec_driver_sql(
                        f"CREATE ROLE {READER_ROLE} LOGIN NOSUPERUSER NOINHERIT NOCREATEDB "
                        "NOCREATEROLE NOREPLICATION"
                    )
                if not self._reader_url:
                    quoted = (secret or "").replace("'", "''")
                    conn.exec_driver_sql(
                        f"ALTER ROLE {READER_ROLE} "
                        + (f"PASSWORD '{quoted}'" if secret else "PASSWORD NULL")
                    )
                    conn.exec_driver_sql(f"ALTER ROLE {READER_ROLE} SET search_path = {SCHEMA}")
                    conn.exec_driver_sql(
                        f"ALTER ROLE {READER_ROLE} SET default_transaction_read_only = on"
                    )
                    conn.exec_driver_sql(f"ALTER ROLE {READER_ROLE} SET statement_timeout = '30s'")
        except Exception as exc:  # no right to make roles: say so, run nothing
            raise GuardUnavailable(
                "SQL 查询未启用：数据库账号无权创建只读角色，请由数据库管理员按 docs/security.md "
                "创建，或设置 CITYDATA_OPEN_SQL_URL"
            ) from exc
        conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{SCHEMA}"')
        conn.exec_driver_sql(f'GRANT USAGE ON SCHEMA "{SCHEMA}" TO {READER_ROLE}')
        self._ready = True

    # ------------------------------------------------------------ running user SQL

    @contextlib.contextmanager
    def reader(self, exposures: Sequence[Exposure], time_limit: float) -> Iterator[Any]:
        """A cursor-like object whose ``run(sql, max_rows)`` answers (names, rows) on the
        guarded connection."""
        self.ensure(exposures)
        if self.dialect == "postgresql":
            with self._postgres(exposures, time_limit) as run:
                yield run
        else:
            with self._sqlite(exposures, time_limit) as run:
                yield run

    @contextlib.contextmanager
    def _sqlite(self, exposures: Sequence[Exposure], time_limit: float) -> Iterator[Any]:
        path = self.engine.url.database or ""
        conn = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True, check_same_thread=False)
        try:
            stored = [r[0] for r in conn.execute("SELECT name FROM sqlite_master")]
            conn.set_authorizer(sqlite_authorizer(exposures, stored, self.dialect))
            deadline = time.monotonic() + time_limit
            conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)

            def run(sql: str, max_rows: int) -> tuple[list[str], list[tuple]]:
                cursor = conn.execute(sql)
                rows = cursor.fetchmany(max_rows + 1)
                return [d[0] for d in cursor.description or []], rows

            yield run
        finally:
            conn.close()

    @contextlib.contextmanager
    def _postgres(self, exposures: Sequence[Exposure], time_limit: float) -> Iterator[Any]:
        import psycopg

        try:
            conn = psycopg.connect(self.reader_url(), connect_timeout=10)
        except psycopg.OperationalError as exc:
            raise GuardUnavailable(
                "SQL 查询未启用：无法以只读角色连接数据库（见 docs/security.md）"
            ) from exc
        released = [e.view_name(self.dialect) for e in exposures if e.released_only]
        pid = None
        try:
            if released:
                pid = conn.info.backend_pid
                self._release(pid, released, time_limit)
            conn.execute(f"SET LOCAL statement_timeout = {int(time_limit * 1000)}")

            def run(sql: str, max_rows: int) -> tuple[list[str], list[tuple]]:
                # prepare=True: the extended protocol runs exactly one statement
                cursor = conn.execute(sql, prepare=True)
                rows = cursor.fetchmany(max_rows + 1)
                return [d.name for d in cursor.description or []], rows

            yield run
        finally:
            conn.rollback()
            conn.close()
            if pid is not None:
                with self.engine.begin() as own:
                    own.execute(text(f"DELETE FROM {RELEASES} WHERE pid = :pid"), {"pid": pid})

    def _release(self, pid: int, views: Iterable[str], time_limit: float) -> None:
        until = datetime.now(UTC) + timedelta(seconds=time_limit + 5)
        with self.engine.begin() as own:
            own.execute(
                text(f"DELETE FROM {RELEASES} WHERE pid = :pid OR until < now()"), {"pid": pid}
            )
            own.execute(
                text(f"INSERT INTO {RELEASES} (pid, view, until) VALUES (:pid, :view, :until)"),
                [{"pid": pid, "view": v, "until": until} for v in views],
            )


def _reader_password(platform_password: str | None) -> str | None:
    if not platform_password:
        return None
    return hmac.new(platform_password.encode(), b"citydata-open-sql", hashlib.sha256).hexdigest()


def sqlite_authorizer(
    exposures: Sequence[Exposure], stored: Iterable[str], dialect: str = "sqlite"
):
    """Allow a SELECT to read only the views of ``exposures`` and the columns they read.
    ``stored``: the database's table and view names (a CTE's reads look like a table's count)."""
    readable: set[tuple[str, str]] = set()
    for exposure in exposures:
        readable |= exposure.readable_columns(dialect)
    stored = {name.lower() for name in stored}

    def check(
        action: int, arg1: str | None, arg2: str | None, db: str | None, _src: str | None
    ) -> int:
        if action in (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_RECURSIVE):
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_READ:
            wanted = (arg1 or "", arg2 or "")
            if db == "main" and wanted in readable:
                return sqlite3.SQLITE_OK
            # A CTE or subquery is read as (its name, "", no database); so is COUNT(*) of a
            # stored table, which is allowed only for the caller's own datasets.
            if (
                db is None
                and wanted[1] == ""
                and (wanted in readable or wanted[0].lower() not in stored)
            ):
                return sqlite3.SQLITE_OK
            return sqlite3.SQLITE_DENY
        if action == sqlite3.SQLITE_FUNCTION:
            blocked = (arg2 or "").lower() in BLOCKED_FUNCTIONS
            return sqlite3.SQLITE_DENY if blocked else sqlite3.SQLITE_OK
        return sqlite3.SQLITE_DENY

    return check
