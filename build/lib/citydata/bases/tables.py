"""Which table holds a class's rows, in which stable order, under which key — said once for
everyone who reads them (the sharing gateway, open data, the SQL endpoint):

- a base database's own class (人口基础库 101001/00000): ``base_<code>``, a row per master, in
  master order, keyed by the master's key;
- a theme class: its ``theme_<name>`` table, in no stored order (read by offset);
- any other class: the department's staging table ``stg_<class>``, in (batch, row) order, keyed
  by its one key field if it has exactly one."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, TableClause, column, literal, table
from sqlalchemy.orm import Session

from citydata.bases.spec import base_for_class
from citydata.catalog.models import ResourceClass
from citydata.catalog.service import get_class
from citydata.ingest import staging

ID_SHIFT = 1 << 32  # a staged row's one-number id: batch id * 2^32 + row number


class UnknownClass(LookupError):
    """No such class, or a theme class whose definition is gone."""


@dataclass(frozen=True)
class ClassTable:
    class_code: str
    kind: str  # base | theme | department
    table: str
    order: tuple[str, ...]  # a stable row order for keyset paging (empty: by offset)
    key_column: str | None  # the column a single business key is looked up in
    key_field: str | None  # the class's field that key is
    base: str | None  # the base whose masters the rows are (or feed), for the audit's subjects

    @property
    def keyset(self) -> bool:
        return bool(self.order)

    def source(self, fields: list[str] | tuple[str, ...]) -> TableClause:
        """The table with ``fields``, its order columns and its key column."""
        names = [*fields, *self.order, *([self.key_column] if self.key_column else [])]
        return table(self.table, *[column(n) for n in dict.fromkeys(names)])

    def order_by(self, source: TableClause) -> list[ColumnElement]:
        return [source.c[c] for c in self.order]

    def row_id(self, source: TableClause) -> ColumnElement:
        """One number per row, stable across reads (CKAN's ``_id``); NULL for theme rows."""
        if self.kind == "department":
            return source.c[staging.BATCH] * ID_SHIFT + source.c[staging.ROW]
        if self.kind == "base":
            return source.c.master_id
        return literal(None)


_located: dict[tuple[str, int], ClassTable] = {}


def locate(session: Session, class_code: str, version: int | None = None) -> ClassTable:
    """Where ``class_code``'s rows are (remembered per class version)."""
    found = _located.get((class_code, version)) if version is not None else None
    if found is not None:
        return found
    rc = get_class(session, class_code)
    if rc is None:
        raise UnknownClass(f"信息资源「{class_code}」不存在")
    found = _locate(rc)
    _located[(class_code, rc.version)] = found
    return found


def _locate(rc: ResourceClass) -> ClassTable:
    base = base_for_class(rc.code)
    if base is not None:
        return ClassTable(
            rc.code, "base", f"base_{base.code}", ("master_id",), "key", base.key, base.code
        )
    if rc.category == "theme":
        from citydata.bases.themes import load_themes

        theme = next((t for t in load_themes().values() if t.code == rc.code), None)
        if theme is None:
            raise UnknownClass(f"主题库「{rc.code}」没有定义")
        return ClassTable(rc.code, "theme", theme.table, (), None, None, None)
    keys = [f.name for f in rc.fields if f.is_key]
    key = keys[0] if len(keys) == 1 else None
    return ClassTable(
        rc.code,
        "department",
        staging.table_name(rc.code),
        (staging.BATCH, staging.ROW),
        key,
        key,
        rc.base_db if rc.base_db != "none" else None,
    )
