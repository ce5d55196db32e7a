"""``datastore_search_sql``: one read-only SELECT over published datasets, and nothing else.

The statement is parsed (sqlglot), never pasted: it must be a single query; every table it
names must be a dataset the caller may read (by resource id, as CKAN has it:
``SELECT * FROM "301001-00001-csv"``), and each is replaced by a subquery that exposes only the
dataset's public fields — a personal field cannot be selected because it is not there. Functions
sqlglot does not know (``pg_sleep``, ``load_extension``, ``dblink`` …) are refused, as are
locking clauses and ``SELECT … INTO``. It then runs read-only (``SET TRANSACTION READ ONLY`` on
PostgreSQL, ``PRAGMA query_only`` on SQLite) and is stopped after a time limit."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlglot
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlglot import exp

from citydata.opendata.service import (
    DATASTORE_MAX,
    Dataset,
    OpenDataError,
    Source,
    find_resource,
)

TIME_LIMIT_SECONDS = 5.0
SAFE_UNKNOWN_FUNCTIONS: frozenset[str] = frozenset()  # none needed so far


@dataclass
class SqlResult:
    sql: str
    fields: list[dict[str, str]]
    records: list[dict[str, Any]]
    records_truncated: bool


def _refuse(message: str) -> OpenDataError:
    return OpenDataError(message, "Validation Error", 409)


def _exposed(ds: Dataset, dialect: str) -> str:
    """The dataset as the query sees it: ``_id`` and the public fields, nothing else."""
    src = Source(ds)
    source = src.table()
    stmt = select(src.id_expr(source).label("_id"), *[source.c[f.name] for f in ds.fields])
    compiled = stmt.compile(
        dialect=postgresql.dialect() if dialect == "postgresql" else sqlite.dialect(),
        compile_kwargs={"literal_binds": True},
    )
    return str(compiled)


def rewrite(
    statement: str, datasets: Mapping[str, Dataset], dialect: str
) -> tuple[str, list[Dataset]]:
    """The statement, checked and with each dataset replaced by its public subquery, in the
    store's SQL dialect. Raises OpenDataError naming what was refused."""
    if not statement.strip():
        raise _refuse("sql 不能为空")
    try:
        parsed = sqlglot.parse(statement, read="postgres")
    except sqlglot.errors.ParseError as exc:
        raise _refuse(f"SQL 无法解析：{str(exc).splitlines()[0]}") from exc
    parsed = [p for p in parsed if p is not None]
    if len(parsed) != 1:
        raise _refuse("只能提交一条 SELECT 语句")
    tree = parsed[0]
    if not isinstance(tree, exp.Query):
        raise _refuse("只允许 SELECT 查询")
    for node in tree.walk():
        if isinstance(node, exp.Into | exp.Lock | exp.Command):
            raise _refuse("不允许 SELECT … INTO、加锁或命令语句")
        if isinstance(node, exp.DML | exp.DDL) and node is not tree:
            raise _refuse("只允许 SELECT 查询")
        if isinstance(node, exp.Anonymous) and node.name.lower() not in SAFE_UNKNOWN_FUNCTIONS:
            raise _refuse(f"不允许调用函数 {node.name}()")
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    used: list[Dataset] = []
    target = "postgres" if dialect == "postgresql" else "sqlite"
    for ref in list(tree.find_all(exp.Table)):
        name = ref.name
        if ref.args.get("db") or ref.args.get("catalog"):
            raise _refuse(f"不能读取表 {ref.sql()}：只能查询已开放的数据集")
        if name in ctes:
            continue
        found = find_resource(datasets, name)
        if found is None:
            raise _refuse(f"不能读取表「{name}」：只能查询已开放的数据集（资源 ID）")
        ds = found[0]
        used.append(ds)
        inner = sqlglot.parse_one(_exposed(ds, dialect), read=target)
        alias = ref.alias or name
        ref.replace(exp.Subquery(this=inner, alias=exp.TableAlias(this=exp.to_identifier(alias))))
    return tree.sql(dialect=target), used


def run(
    session: Session,
    datasets: Mapping[str, Dataset],
    statement: str,
    time_limit: float = TIME_LIMIT_SECONDS,
    max_rows: int = DATASTORE_MAX,
) -> SqlResult:
    conn = session.connection()
    dialect = conn.dialect.name
    sql, used = rewrite(statement, datasets, dialect)
    for ds in used:  # a published class with no batch yet has no table
        if not ds.stored:
            raise _refuse(f"「{ds.title}」尚无数据")
    raw = conn.connection.driver_connection
    try:
        if dialect == "postgresql":
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            conn.exec_driver_sql(f"SET LOCAL statement_timeout = {int(time_limit * 1000)}")
            cursor = raw.cursor()
            cursor.execute(sql)
            rows = cursor.fetchmany(max_rows + 1)
        else:
            deadline = time.monotonic() + time_limit
            raw.execute("PRAGMA query_only = ON")
            raw.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
            try:
                cursor = raw.execute(sql)
                rows = cursor.fetchmany(max_rows + 1)
            finally:
                raw.set_progress_handler(None, 0)
                raw.execute("PRAGMA query_only = OFF")
    except Exception as exc:  # noqa: BLE001 - every database error becomes a clean refusal
        session.rollback()
        message = str(getattr(exc, "orig", exc)).splitlines()[0]
        if "interrupted" in message or "statement timeout" in message:
            raise _refuse(f"查询超过 {time_limit:g} 秒，已停止") from exc
        raise _refuse(f"查询失败：{message}") from exc
    names = [d[0] for d in cursor.description or []]
    session.rollback()  # nothing to keep; ends PostgreSQL's read-only transaction
    truncated = len(rows) > max_rows
    records = [dict(zip(names, r, strict=True)) for r in rows[:max_rows]]
    fields = [{"id": n, "type": "int" if n == "_id" else "text"} for n in names]
    return SqlResult(sql, fields, records, truncated)
