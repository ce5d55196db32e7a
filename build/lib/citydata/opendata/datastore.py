"""A dataset's rows (CKAN's datastore): public fields only, paged by keyset (``next_page``)
or offset, filtered, sorted; and every row in chunks for downloads."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    TableClause,
    func,
    or_,
    select,
    tuple_,
)
from sqlalchemy.orm import Session

from citydata.bases.tables import ID_SHIFT
from citydata.db import keyset
from citydata.ingest import staging
from citydata.opendata.datasets import DATASTORE_MAX, DATASTORE_TYPES, Dataset, OpenDataError

# ---------------------------------------------------------------- rows (datastore)


@dataclass(frozen=True)
class Source:
    """How a dataset's rows are read: its public fields from the class's table (bases.tables),
    in its stable order, with the ``_id`` CKAN shows."""

    dataset: Dataset

    @property
    def keyset(self) -> bool:
        return self.dataset.where.keyset

    def table(self) -> TableClause:
        return self.dataset.where.source([f.name for f in self.dataset.fields])

    def id_expr(self, source: TableClause) -> ColumnElement:
        return self.dataset.where.row_id(source)

    def order(self, source: TableClause) -> list[ColumnElement]:
        # theme rows have no stored order: all their fields make one
        return self.dataset.where.order_by(source) or [
            source.c[f.name] for f in self.dataset.fields
        ]


def datastore_fields(ds: Dataset) -> list[dict[str, Any]]:
    return [{"id": "_id", "type": "int"}] + [
        {
            "id": f.name,
            "type": "text",  # staged values are kept exactly as the department sent them
            "info": {
                "label": f.label,
                "notes": f.description,
                "type_override": DATASTORE_TYPES.get(f.data_type, ""),
            },
        }
        for f in ds.fields
    ]


@dataclass
class Page:
    fields: list[dict[str, Any]]
    records: list[dict[str, Any]]
    total: int | None
    total_was_estimated: bool
    next_page: str | None
    limit: int
    offset: int


def _filters(ds: Dataset, source, filters: dict[str, Any], q: Any) -> list[ColumnElement]:
    names = {f.name for f in ds.fields}
    where: list[ColumnElement] = []
    for name, value in (filters or {}).items():
        if name == "_id" and ds.source_kind == "department":
            ids = value if isinstance(value, list) else [value]
            try:
                numbers = [int(i) for i in ids]
            except (TypeError, ValueError) as exc:
                raise OpenDataError("_id 必须是整数") from exc
            if not all(0 <= i < 1 << 62 for i in numbers):
                raise OpenDataError("_id 超出范围")
            pairs = [(i // ID_SHIFT, i % ID_SHIFT) for i in numbers]
            where.append(tuple_(source.c[staging.BATCH], source.c[staging.ROW]).in_(pairs))
            continue
        if name not in names:
            raise OpenDataError(f"filters 中的字段「{name}」不存在")
        values = value if isinstance(value, list) else [value]
        where.append(source.c[name].in_([str(v) for v in values]))
    if isinstance(q, dict):
        for name, word in q.items():
            if name not in names:
                raise OpenDataError(f"q 中的字段「{name}」不存在")
            where.append(source.c[name].contains(str(word), autoescape=True))
    elif q:
        for word in str(q).split():
            where.append(
                or_(*[source.c[f.name].contains(word, autoescape=True) for f in ds.fields])
            )
    return where


def datastore_search(
    session: Session,
    ds: Dataset,
    *,
    filters: dict[str, Any] | None = None,
    q: Any = None,
    fields: list[str] | None = None,
    sort: str = "",
    limit: int = 100,
    offset: int = 0,
    include_total: bool = True,
    next_page: str | None = None,
) -> Page:
    if not isinstance(limit, int) or not isinstance(offset, int) or limit < 0 or offset < 0:
        raise OpenDataError("limit 和 offset 必须是非负整数")
    limit = min(limit, DATASTORE_MAX)
    if filters is not None and not isinstance(filters, dict):
        raise OpenDataError("filters 必须是对象")
    src = Source(ds)
    source = src.table()
    if not ds.stored:
        described = datastore_fields(ds)
        return Page(described, [], 0 if include_total else None, False, None, limit, offset)
    all_names = [f.name for f in ds.fields]
    wanted = fields or ["_id", *all_names]
    unknown = [f for f in wanted if f != "_id" and f not in all_names]
    if unknown:
        raise OpenDataError(f"fields 中的字段不存在：{'、'.join(unknown)}")
    where = _filters(ds, source, filters or {}, q)
    order = src.order(source)
    if sort.strip():
        order = []
        for part in sort.split(","):
            name, _, direction = part.strip().strip('"').partition(" ")
            name = name.strip('"')
            if name == "_id":
                cols = src.order(source)
            elif name in all_names:
                cols = [source.c[name]]
            else:
                raise OpenDataError(f"sort 中的字段「{name}」不存在")
            order += [c.desc() if direction.strip().lower() == "desc" else c for c in cols]
    paged_by_key = src.keyset and sort.strip() in {"", "_id", "_id asc"}
    if next_page:
        if not paged_by_key:
            raise OpenDataError("next_page 只能用于按 _id 排序的查询")
        after = keyset.decode_ints(next_page, len(src.order(source)))
        if after is None:
            raise OpenDataError("next_page 无效")
        where.append(keyset.after(src.order(source), after))
        offset = 0
    id_col = src.id_expr(source).label("_id")
    stmt: Select = (
        select(id_col, *[source.c[n] for n in all_names], *src.order(source))
        .where(*where)
        .order_by(*order)
        .limit(limit + 1)
        .offset(offset)
    )
    result = session.execute(stmt).all()
    more = len(result) > limit
    result = result[:limit]
    columns = ["_id", *all_names]
    records = []
    for i, row in enumerate(result):
        record = dict(zip(columns, row[: len(columns)], strict=True))
        if record["_id"] is None:
            record["_id"] = offset + i + 1
        records.append({k: record[k] for k in wanted})
    cursor = None
    if paged_by_key and more and result:
        cursor = keyset.encode(result[-1][len(columns) :])
    total, estimated = None, False
    if include_total:
        if not where and ds.source_kind == "department":
            total = ds.rows  # the batch ledger's count: no COUNT(*) over the table
        else:
            total = session.scalar(select(func.count()).select_from(source).where(*where))
    described = [f for f in datastore_fields(ds) if f["id"] in wanted]
    return Page(described, records, total, estimated, cursor, limit, offset)


def iter_rows(session: Session, ds: Dataset, chunk: int = 50_000) -> Iterator[list[tuple]]:
    """Every row of the dataset in chunks, by keyset (or by offset for small theme tables)."""
    src = Source(ds)
    source = src.table()
    if not ds.stored:
        return
    names = [f.name for f in ds.fields]
    order = src.order(source)
    after: tuple | None = None
    offset = 0
    while True:
        stmt = select(*[source.c[n] for n in names], *order).order_by(*order).limit(chunk)
        if src.keyset and after is not None:
            stmt = stmt.where(keyset.after(order, after))
        elif not src.keyset:
            stmt = stmt.offset(offset)
        rows = session.execute(stmt).all()
        if not rows:
            return
        yield [tuple(r[: len(names)]) for r in rows]
        if len(rows) < chunk:
            return
        after = tuple(rows[-1][len(names) :])
        offset += len(rows)
