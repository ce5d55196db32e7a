"""One sharing call, without HTTP: who is calling (credential → approved application), what they
may see (granted fields, masks), and the rows — read from the base table, the theme table or the
department's staging table that holds the class's data.

Nothing here returns a field that was not both granted and asked for, and a personal field
leaves masked unless the approval grants it in clear."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import polars as pl
from sqlalchemy import (
    Select,
    and_,
    bindparam,
    column,
    func,
    literal,
    select,
    table,
)
from sqlalchemy.orm import Session

from citydata.audit.models import AuditEntry
from citydata.audit.service import IS_CALL
from citydata.bases.models import MasterChange
from citydata.bases.tables import ClassTable, UnknownClass, locate
from citydata.catalog.models import ResourceClass
from citydata.catalog.service import get_class
from citydata.db import keyset
from citydata.ingest import staging
from citydata.mechanisms import credentials
from citydata.mechanisms.ratelimit import MinuteWindows
from citydata.privacy.masking import (
    Field,
    class_fields,
    grant_masks,
    mask_frame,
    mask_value,
)
from citydata.share.models import STATUS, ShareApplication, ShareCredential
from citydata.share.service import CREDENTIAL_PREFIX, ShareError, current_status

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


def _unauthorised(message: str) -> ShareError:
    return ShareError(message, "unauthorized", 401)


# ---------------------------------------------------------------- the caller


@dataclass(frozen=True)
class Caller:
    key_id: str
    application_id: int
    consumer_code: str
    system_name: str
    class_code: str
    class_version: int
    granted: frozenset[str]
    unmasked: frozenset[str]
    daily_volume: int
    rate_per_minute: int


# Built once, and plain columns rather than ORM objects: this runs on every call, and building
# the statement and loading three entities cost more than the lookup itself. Its row answers
# the attributes secret_matches, ip_allowed and current_status read.
_CREDENTIAL = (
    select(
        ShareCredential.key_id,
        ShareCredential.secret_hash,
        ShareCredential.previous_hash,
        ShareCredential.previous_until,
        ShareCredential.revoked_at,
        ShareCredential.ip_allow,
        ShareCredential.rate_per_minute,
        ShareApplication.id,
        ShareApplication.status,
        ShareApplication.valid_until,
        ShareApplication.consumer_code,
        ShareApplication.system_name,
        ShareApplication.class_code,
        ShareApplication.granted,
        ShareApplication.granted_unmasked,
        ShareApplication.daily_volume,
        ResourceClass.version,
    )
    .join(ShareApplication, ShareApplication.id == ShareCredential.application_id)
    .join(ResourceClass, ResourceClass.code == ShareApplication.class_code)
    .where(ShareCredential.key_id == bindparam("key_id"))
)


def authenticate(
    session: Session, authorization: str, client_ip: str, now: datetime | None = None
) -> Caller:
    """The credential in ``Authorization: Bearer cds_<key id>_<secret>``, checked at every call:
    a revoked credential or a revoked or expired approval stops the very next call."""
    now = now or datetime.now(UTC)
    presented = credentials.parse(CREDENTIAL_PREFIX, authorization)
    if presented is None:
        raise _unauthorised("缺少或无法识别的共享凭证（Authorization: Bearer cds_…）")
    found = session.connection().execute(_CREDENTIAL, {"key_id": presented.key_id}).first()
    if found is None or not credentials.matches(found, presented.whole, now):
        raise _unauthorised("共享凭证无效")
    if found.revoked_at is not None:
        raise _unauthorised("共享凭证已吊销")
    if not credentials.ip_allowed(found, client_ip):
        raise ShareError(f"凭证不允许从 {client_ip} 调用", "ip_not_allowed", 403)
    status = current_status(found, now.date())
    if status != "approved":
        raise ShareError(
            f"共享申请 {found.id} 当前为「{STATUS[status]}」", f"application_{status}", 403
        )
    return Caller(
        found.key_id,
        found.id,
        found.consumer_code,
        found.system_name,
        found.class_code,
        found.version,
        frozenset(found.granted),
        frozenset(found.granted_unmasked),
        found.daily_volume,
        found.rate_per_minute,
    )


class Limiter:
    """Per credential: calls per minute (a fixed window) and calls per day (the application's
    declared daily volume). Counted in this process; the day's count starts from the audit log,
    so a restart does not hand out a fresh quota."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._minute = MinuteWindows()
        self._day: dict[str, tuple[date, int]] = {}

    def check(self, session: Session, caller: Caller, now: float | None = None) -> None:
        now = now or time.time()
        today = datetime.fromtimestamp(now, UTC).date()
        with self._lock:
            seen = self._day.get(caller.key_id)
        if seen is None or seen[0] != today:
            start = datetime.combine(today, datetime.min.time(), UTC)
            used = session.scalar(
                select(func.count()).where(
                    AuditEntry.key_id == caller.key_id,
                    AuditEntry.at >= start,
                    AuditEntry.outcome == "ok",
                    IS_CALL,
                )
            )
            seen = (today, used or 0)
        with self._lock:
            day, used_today = self._day.get(caller.key_id, seen)
            if day != today:
                day, used_today = seen
            if used_today >= caller.daily_volume:
                tomorrow = datetime.combine(today, datetime.min.time(), UTC).timestamp() + 86400
                raise _too_many("已用完今日调用配额", int(tomorrow - now) + 1)
            wait = self._minute.take(caller.key_id, caller.rate_per_minute, now)
            if wait is not None:
                raise _too_many("调用过于频繁", wait)
            self._day[caller.key_id] = (today, used_today + 1)


def _too_many(message: str, retry_after: int) -> ShareError:
    return ShareError(message, "rate_limited", 429, max(retry_after, 1))


# ---------------------------------------------------------------- what the class's data is


@dataclass(frozen=True)
class Resource:
    """A class as the gateway serves it: where its rows are (bases.tables), and the masks of
    its fields."""

    where: ClassTable
    masks: dict[str, str]  # personal field -> mask kind
    fields: tuple[Field, ...] = ()  # every field, with the mask it would get (joint masking)

    @property
    def class_code(self) -> str:
        return self.where.class_code

    @property
    def kind(self) -> str:
        return self.where.kind

    @property
    def table(self) -> str:
        return self.where.table

    @property
    def key_column(self) -> str | None:
        return self.where.key_column

    @property
    def key_field(self) -> str | None:
        return self.where.key_field

    @property
    def order(self) -> tuple[str, ...]:
        return self.where.order

    @property
    def base(self) -> str | None:
        return self.where.base


_resources: dict[tuple[str, int], Resource] = {}


def resource(session: Session, class_code: str, version: int | None = None) -> Resource:
    cached = _resources.get((class_code, version)) if version is not None else None
    if cached is not None:
        return cached
    try:
        where = locate(session, class_code, version)
    except UnknownClass as exc:
        raise ShareError(str(exc), "unknown_class", 404) from exc
    rc = get_class(session, class_code)
    every, masks = class_fields(rc.code, rc.fields)
    found = Resource(where, masks, every)
    _resources[(class_code, rc.version)] = found
    return found


_grant_masks: dict[tuple, dict[str, str]] = {}


def masks_for(caller: Caller, res: Resource) -> dict[str, str]:
    """What the caller's grant delivers masked, and how (computed once per grant)."""
    signature = (res.class_code, res.table, caller.granted, caller.unmasked)
    found = _grant_masks.get(signature)
    if found is None:
        if len(_grant_masks) >= 4096:
            _grant_masks.clear()
        found = grant_masks(res.fields, res.masks, caller.granted, caller.unmasked)
        _grant_masks[signature] = found
    return found


def wanted_fields(caller: Caller, fields: list[str] | None) -> list[str]:
    """Data minimisation: each call names the fields it needs, all of them granted."""
    if not fields:
        raise ShareError("必须用 fields 列出本次需要的信息项", "fields_required")
    refused = [f for f in fields if f not in caller.granted]
    if refused:
        raise ShareError(f"信息项未获授权：{'、'.join(refused)}", "field_not_granted", 403)
    return list(dict.fromkeys(fields))


def _source(res: Resource, fields: list[str]):  # noqa: ANN202
    return res.where.source(fields)


def _select_fields(res: Resource, source, fields: list[str]) -> Select:  # noqa: ANN001
    """The asked fields of each row, and the master it belongs to (``_master``)."""
    return _with_subjects(res, select(*[source.c[f] for f in fields]), source)


def _with_subjects(res: Resource, query: Select, source) -> Select:  # noqa: ANN001
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


def _by_keys(session: Session, res: Resource, keys: list[str], fields: list[str]):  # noqa: ANN202
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


def _conditions(caller: Caller, res: Resource, source, filters: dict[str, Any]) -> list:  # noqa: ANN001
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
