"""``datastore_search_sql``: one read-only SELECT over published datasets, and nothing else.

Two guards, in this order:

1. **A first filter** (sqlglot), for clear messages: a single query; every table it names must
   be a dataset the caller may read (by resource id, as CKAN has it:
   ``SELECT * FROM "301001-00001-csv"``), resolved with SQL's scoping rules — a CTE hides a
   table only inside the query it belongs to —, and each is replaced by the dataset's view
   (``_id`` and its public fields). Functions sqlglot does not know, locking clauses and
   ``SELECT … INTO`` are refused.
2. **The database's own privileges** (``sqlguard``): the statement runs on a connection that
   can read only the caller's datasets' views — an authorizer on a read-only SQLite connection,
   a role of its own on PostgreSQL — and is stopped after a time limit. Whatever the filter
   misses, the database refuses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlglot
from sqlalchemy.orm import Session
from sqlglot import exp

from citydata.opendata.service import DATASTORE_MAX, Dataset, OpenDataError, find_resource
from citydata.opendata.sqlguard import SCHEMA, Exposure, Guard, GuardUnavailable, refused

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


def exposure(ds: Dataset) -> Exposure:
    """How user SQL sees a dataset: its table's public fields and the ``_id`` CKAN shows."""
    return Exposure(
        slug=ds.slug,
        where=ds.where,
        columns=tuple(f.name for f in ds.fields),
        released_only=not ds.downloadable,
    )


def _ctes_in_scope(ref: exp.Expression) -> set[str]:
    """The CTE names a table reference can mean, by SQL's scoping: those of every enclosing
    query; inside a CTE's own body only the CTEs before it (and itself, if RECURSIVE)."""
    names: set[str] = set()
    child, node = ref, ref.parent
    while node is not None:
        if isinstance(node, exp.With):
            ctes = list(node.expressions)
            index = next((i for i, c in enumerate(ctes) if c is child), len(ctes))
            names |= {c.alias_or_name for c in ctes[:index]}
            if node.args.get("recursive") and index < len(ctes):
                names.add(ctes[index].alias_or_name)
        else:
            for key in ("with", "with_"):
                found = node.args.get(key)
                if isinstance(found, exp.With) and found is not child:
                    names |= {c.alias_or_name for c in found.expressions}
        child, node = node, node.parent
    return names


def rewrite(
    statement: str, datasets: Mapping[str, Dataset], dialect: str
) -> tuple[str, list[Dataset]]:
    """The statement, checked and with each dataset replaced by its view, in the store's SQL
    dialect. Raises OpenDataError naming what was refused."""
    if not statement.strip():
        raise _refuse("sql 不能为空")
    try:
        parsed = sqlglot.parse(statement, read="postgres")
    except sqlglot.errors.SqlglotError as exc:
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
    used: list[Dataset] = []
    target = "postgres" if dialect == "postgresql" else "sqlite"
    for ref in list(tree.find_all(exp.Table)):
        name = ref.name
        if ref.args.get("db") or ref.args.get("catalog"):
            raise _refuse(f"不能读取表 {ref.sql()}：只能查询已开放的数据集")
        if name in _ctes_in_scope(ref):
            continue
        found = find_resource(datasets, name)
        if found is None:
            raise _refuse(f"不能读取表「{name}」：只能查询已开放的数据集（资源 ID）")
        ds = found[0]
        if ds not in used:
            used.append(ds)
        view = exposure(ds).view_name(dialect)
        alias = ref.alias or name
        replacement = exp.table_(
            view, db=SCHEMA if dialect == "postgresql" else None, alias=alias, quoted=True
        )
        ref.replace(replacement)
    return tree.sql(dialect=target), used


def guard_for(session: Session) -> Guard:
    """The store's guard, made once per engine."""
    engine = session.get_bind()
    guard = getattr(engine, "_citydata_sql_guard", None)
    if guard is None:
        guard = Guard(engine)
        engine._citydata_sql_guard = guard
    return guard


def run(
    session: Session,
    datasets: Mapping[str, Dataset],
    statement: str,
    time_limit: float = TIME_LIMIT_SECONDS,
    max_rows: int = DATASTORE_MAX,
    guard: Guard | None = None,
) -> SqlResult:
    """Run ``statement`` over ``datasets`` (those the caller may read) on the guarded
    connection."""
    guard = guard or guard_for(session)
    sql, used = rewrite(statement, datasets, guard.dialect)
    for ds in used:  # a published class with no batch yet has no table
        if not ds.stored:
            raise _refuse(f"「{ds.title}」尚无数据")
    session.rollback()  # the caller's own transaction holds nothing we need
    try:
        with guard.reader([exposure(ds) for ds in used], time_limit) as execute:
            names, rows = execute(sql, max_rows)
    except GuardUnavailable as exc:
        raise OpenDataError(str(exc), "Service Unavailable", 503) from exc
    except Exception as exc:  # every database error becomes a clean refusal
        message = str(getattr(exc, "orig", exc)).splitlines()[0]
        if "interrupted" in message or "statement timeout" in message:
            raise _refuse(f"查询超过 {time_limit:g} 秒，已停止") from exc
        if refused(exc):
            raise _refuse("查询读取了未开放的数据，已拒绝") from exc
        raise _refuse(f"查询失败：{message}") from exc
    truncated = len(rows) > max_rows
    records = [dict(zip(names, r, strict=True)) for r in rows[:max_rows]]
    fields = [{"id": n, "type": "int" if n == "_id" else "text"} for n in names]
    return SqlResult(sql, fields, records, truncated)
