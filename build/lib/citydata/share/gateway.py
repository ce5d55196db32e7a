"""One sharing call, without HTTP: lookup, verify, query, export, the change feed. Who is
calling is ``callers``' business, what the class's data is and how it is masked ``resources'``;
this module reads the rows — from the base table, the theme table or the department's staging
table that holds the class's data — and delivers them.

Nothing here returns a field that was not both granted and asked for, and a personal field
leaves masked unless the approval grants it in clear."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import polars as pl
from sqlalchemy import (
    Select,
    and_,
    bindparam,
    column,
    literal,
    select,
    table,
)
from sqlalchemy.orm import Session

from citydata.bases.models import MasterChange
from citydata.db import keyset
from citydata.ingest import staging
from citydata.privacy.masking import (
    mask_frame,
    mask_value,
)
from citydata.share.callers import Caller, Limiter, authenticate  # noqa: F401 - the door
from citydata.share.resources import (  # noqa: F401 - the door
    Resource,
    masks_for,
    resource,
    wanted_fields,
)
from citydata.share.service import ShareError

MAX_KEYS = 100
MAX_LIMIT = 1000
OPS = {
    "eq": lambda c, v: c == v,
    "ne": lambda c, v: c != v,
    "lt": lambda c, v: c < v,
    "lte": lambda c, v: c <= v,
    "gt": lambda c, v: c > v,
    "gte": lambda c, v: c >= v,
    "in": lambda c, v: c.in_(v),
    "prefix": lambda c, v: c.startswith(v, autoescape=True),
}


def _source(res: Resource, fields: list[str]):
    return res.where.source(fields)


def _select_fields(res: Resource, source, fields: list[str]) -> Select:
    """The asked fields of each row, and the master it belongs to (``_master``)."""
    return _with_subjects(res, select(*[source.c[f] for f in fields]), source)


def _with_subjects(res: Resource, query: Select, source) -> Select:
    """Add the master id each row belongs to, when the class's rows are resolved into a base."""
    if res.kind == "base":
        return query.add_columns(source.c.master_id.label("_master"))
    if res.kind == "department" and res.base:
        links = table(
            "master_links", column("base"), column("batch_id"), column("row"), column("master_id")
        )
        return query.outerjoin(
            links,
            and_(
                links.c.base == res.base,
                links.c.batch_id == source.c[staging.BATCH],
                links.c.row == source.c[staging.ROW],
            ),
        ).add_columns(links.c.master_id.label("_master"))
    return query.add_columns(literal(None).label("_master"))


@dataclass
class Delivery:
    records: list[dict[str, Any]]
    subjects: list[int]
    next_cursor: str | None = None


SMALL = 64  # up to this many rows, masking value by value beats building a frame


def _deliver(
    caller: Caller, res: Resource, rows: list, columns: list[str], fields: list[str]
) -> Delivery:
    masks = {f: k for f, k in masks_for(caller, res).items() if f in fields}
    master = columns.index("_master")
    subjects = sorted({int(r[master]) for r in rows if r[master] is not None})
    if len(rows) <= SMALL:
        at = [columns.index(f) for f in fields]
        kinds = [masks.get(f) for f in fields]
        records = [
            {
                f: (mask_value(row[i], kind) if kind else row[i])
                for f, i, kind in zip(fields, at, kinds, strict=True)
            }
            for row in rows
        ]
        return Delivery(records, subjects)
    frame = pl.DataFrame(rows, schema=columns, orient="row", infer_schema_length=None)
    return Delivery(mask_frame(frame.select(fields), masks).to_dicts(), subjects)


KEY_MAX = 64  # business keys: ID numbers, credit codes, house codes, composite keys


def _key(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > KEY_MAX:
        raise ShareError(f"keys 必须是非空字符串（最多 {KEY_MAX} 个字符）", "bad_key")
    return value.strip().upper()


def _by_keys(session: Session, res: Resource, keys: list[str], fields: list[str]):
    if res.key_column is None:
        raise ShareError(f"「{res.class_code}」没有单一业务主键，请用 query", "no_key")
    if not isinstance(keys, list) or not keys or len(keys) > MAX_KEYS:
        raise ShareError(f"keys 应为 1–{MAX_KEYS} 个业务主键", "bad_keys")
    wanted = [_key(k) for k in keys]
    result = session.connection().execute(_key_query(res, fields), {"keys": wanted})
    return result.all(), list(result.keys())


_key_queries: dict[tuple, Select] = {}


def _key_query(res: Resource, fields: list[str]) -> Select:
    """The lookup statement for these fields, built once: building it cost as much as running
    it. Bounded, since callers choose the fields and their order."""
    signature = (res.table, res.kind, res.key_column, res.base, tuple(fields))
    stmt = _key_queries.get(signature)
    if stmt is None:
        if len(_key_queries) >= 1024:
            _key_queries.clear()
        source = _source(res, fields)
        stmt = _select_fields(res, source, fields).where(
            source.c[res.key_column].in_(bindparam("keys", expanding=True))
        )
        _key_queries[signature] = stmt
    return stmt


def lookup(
    session: Session, caller: Caller, res: Resource, keys: list[str], fields: list[str]
) -> Delivery:
    rows, columns = _by_keys(session, res, keys, fields)
    return _deliver(caller, res, rows, columns, fields)


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_LIMIT:
        raise ShareError(f"limit 应在 1–{MAX_LIMIT} 之间", "bad_limit")


def _after(cursor: Any, size: int = 1) -> list[Any]:
    """The position a cursor names: ``size`` whole numbers (row ids, offsets, change ids)."""
    values = keyset.decode_ints(cursor, size)
    if values is None:
        raise ShareError("cursor 无效", "bad_cursor")
    return values


def _position(cursor: str | None) -> int:
    """A one-number cursor (an offset, a change id); 0 without one."""
    if not cursor:
        return 0
    value = _after(cursor)[0]
    if value < 0:
        raise ShareError("cursor 无效", "bad_cursor")
    return value


def _conditions(caller: Caller, res: Resource, source, filters: dict[str, Any]) -> list:
    if not isinstance(filters, dict):
        raise ShareError("filters 应为 {信息项: 值 或 {运算: 值}}", "bad_filter")
    conditions = []
    masked = masks_for(caller, res)
    for name, spec_ in filters.items():
        if name not in caller.granted:
            raise ShareError(f"筛选的信息项未获授权：{name}", "field_not_granted", 403)
        if name in masked:  # filtering on it would tell, call by call, what the mask hides
            raise ShareError(
                f"只能按不脱敏交付的信息项筛选：{name} 以脱敏形式交付", "filter_on_masked", 403
            )
        ops = spec_ if isinstance(spec_, dict) else {"eq": spec_}
        for op, value in ops.items():
            if op not in OPS:
                raise ShareError(f"未知的筛选运算「{op}」，可选：{'、'.join(OPS)}", "bad_filter")
            values = value if op == "in" else [value]
            if (op == "in" and not isinstance(value, list)) or not all(
                isinstance(v, str | int | float) and not isinstance(v, bool) for v in values
            ):
                raise ShareError(f"「{name}」的筛选值不合法", "bad_filter")
            texts = [str(v) for v in values]  # the data are kept as text
            conditions.append(OPS[op](source.c[name], texts if op == "in" else texts[0]))
    return conditions


def query(
    session: Session,
    caller: Caller,
    res: Resource,
    fields: list[str],
    filters: dict[str, Any] | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> Delivery:
    _check_limit(limit)
    source = _source(res, [*fields, *(filters or {})])
    stmt = _select_fields(res, source, fields).where(
        *_conditions(caller, res, source, filters or {})
    )
    order = [source.c[c] for c in res.order]
    if order:
        stmt = stmt.add_columns(*[c.label(f"_o{i}") for i, c in enumerate(order)]).order_by(*order)
        if cursor:
            stmt = stmt.where(keyset.after(order, _after(cursor, len(order))))
        offset = 0
    else:
        offset = _position(cursor)
        stmt = stmt.offset(offset)
    result = session.execute(stmt.limit(limit + 1))
    rows, columns = result.all(), list(result.keys())
    more = len(rows) > limit
    rows = rows[:limit]
    delivery = _deliver(caller, res, rows, columns, fields)
    if more:
        last = dict(zip(columns, rows[-1], strict=True))
        delivery.next_cursor = keyset.encode(
            [last[f"_o{i}"] for i in range(len(order))] if order else [offset + limit]
        )
    return delivery


def export(
    session: Session,
    caller: Caller,
    res: Resource,
    fields: list[str],
    filters: dict[str, Any] | None = None,
    chunk: int = MAX_LIMIT,
) -> Iterator[list[dict[str, Any]]]:
    """Every matching row, page after page (keyset paging: memory stays flat, deep pages stay
    fast), each page masked like any other delivery."""
    cursor = None
    while True:
        page = query(session, caller, res, fields, filters, cursor, chunk)
        if page.records:
            yield page.records
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def export_plan(
    session: Session, caller: Caller, res: Resource, filters: dict[str, Any] | None
) -> tuple[int, list[int]]:
    """How many rows an export will deliver and whose they are, known before any row is sent
    (the audit entry is written first)."""
    source = _source(res, list(filters or {}))
    stmt = _with_subjects(res, select(literal(1).label("_one")), source).where(
        *_conditions(caller, res, source, filters or {})
    )
    masters = session.scalars(select(stmt.subquery().c._master)).all()
    return len(masters), sorted({int(m) for m in masters if m is not None})


def verify(
    session: Session, caller: Caller, res: Resource, key: str, claims: dict[str, Any]
) -> tuple[dict[str, str], bool, list[int]]:
    """Is this key + these values consistent with the record? 一致/不一致 per field; no value is
    returned. A key that is not found answers 不一致 for every field."""
    if res.key_field is None:
        raise ShareError(f"「{res.class_code}」没有单一业务主键，不能核验", "no_key")
    if not isinstance(claims, dict) or not claims:
        raise ShareError("fields 应为 {信息项: 待核验的值}", "bad_claims")
    # One candidate value per field and one key per call: each guess is a call, counted
    # against the day's quota and audited.
    if not all(isinstance(v, str | int) and not isinstance(v, bool) for v in claims.values()):
        raise ShareError("每个信息项只能核验一个值（字符串或整数）", "bad_claims")
    wanted_fields(caller, [res.key_field, *claims])
    rows, columns = _by_keys(session, res, [key], list(claims))
    record = dict(zip(columns, rows[0], strict=True)) if rows else None
    answer = {
        name: "一致" if record is not None and _same(record.get(name), value) else "不一致"
        for name, value in claims.items()
    }
    return (
        answer,
        record is not None,
        [int(record["_master"])] if record and record["_master"] else [],
    )


def _same(held: Any, claimed: Any) -> bool:
    if held is None or claimed is None:
        return False
    return str(held).strip().upper() == str(claimed).strip().upper()


def feed_base(res: Resource) -> str:
    """The base whose changes a class's feed follows: only base-database classes have one."""
    if res.kind != "base" or res.base is None:
        raise ShareError("变更订阅目前只提供基础库类资源", "no_feed")
    return res.base


def feed(session: Session, base: str, after: int, limit: int) -> list:
    """The base's changes after change ``after``, oldest first: (id, master_id, kind, at)."""
    return session.execute(
        select(MasterChange.id, MasterChange.master_id, MasterChange.kind, MasterChange.at)
        .where(MasterChange.base == base, MasterChange.id > after)
        .order_by(MasterChange.id)
        .limit(limit)
    ).all()


def feed_cursor(change_id: int) -> str:
    return keyset.encode([change_id])


def changes(
    session: Session,
    caller: Caller,
    res: Resource,
    fields: list[str],
    cursor: str | None,
    limit: int,
) -> Delivery:
    """Masters of a base class changed since ``cursor``: each change's kind, and for an upsert
    the record as it is now (granted fields, masked)."""
    base = feed_base(res)
    _check_limit(limit)
    found = feed(session, base, _position(cursor), limit)
    ids = sorted({m for _, m, kind, _ in found if kind == "upsert"})
    source = _source(res, fields)
    current = {}
    if ids:
        result = session.execute(
            _select_fields(res, source, fields).where(source.c.master_id.in_(ids))
        )
        rows, columns = result.all(), list(result.keys())
        delivered = _deliver(caller, res, rows, columns, fields)
        master = columns.index("_master")
        current = {r[master]: rec for r, rec in zip(rows, delivered.records, strict=True)}
    records = [
        {
            "change": change_id,
            "master_id": master_id,
            # an upsert whose master has since merged away or retired is gone by now
            "kind": "upsert" if kind == "upsert" and master_id in current else "delete",
            "at": at.isoformat() if at else None,
            "record": current.get(master_id),
        }
        for change_id, master_id, kind, at in found
    ]
    next_cursor = feed_cursor(found[-1][0]) if found else cursor
    return Delivery(records, sorted(current), next_cursor)
