"""Catalog logic: import/export (JSON and the departments' Excel workbook), queries, and
administrative create/update/retire. No HTTP here; api.py, cli.py and pages.py call these."""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, selectinload

from citydata.catalog import vocab as v
from citydata.catalog.models import Field, ResourceClass, Unit
from citydata.catalog.schema import (
    CLASS_COLUMNS,
    CLASSIFICATION,
    FIELD_COLUMNS,
    FIELD_NAME,
    SHEETS,
    UNIT_CODE,
    UNIT_COLUMNS,
    CatalogProblems,
    Column,
    Problem,
    parse_value,
    rule_message,
)
from citydata.mechanisms import changes
from citydata.standards import is_valid_credit_code

FORMAT = "citydata-catalog/1"


@dataclass
class RawRow:
    """One input row before parsing, with where it came from (sheet and 1-based row)."""

    sheet: str
    row: int
    values: dict[str, Any]


@dataclass
class ImportResult:
    units: int = 0
    classes: int = 0
    fields: int = 0
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- reading inputs


def rows_from_json(doc: dict[str, Any]) -> tuple[list[RawRow], list[RawRow], list[RawRow]]:
    if not isinstance(doc, dict) or not isinstance(doc.get("classes", []), list):
        raise CatalogProblems([Problem("(file)", 0, "", "format", "不是 citydata 目录 JSON")])
    units = [RawRow("units", i + 1, u) for i, u in enumerate(doc.get("units", []))]
    classes, fields = [], []
    for i, entry in enumerate(doc.get("classes", [])):
        entry = dict(entry)
        for j, f in enumerate(entry.pop("fields", []) or []):
            fields.append(
                RawRow(f"classes[{i + 1}].fields", j + 1, {**f, "class_code": entry.get("code")})
            )
        classes.append(RawRow("classes", i + 1, entry))
    return units, classes, fields


def rows_from_xlsx(data: bytes) -> tuple[list[RawRow], list[RawRow], list[RawRow]]:
    try:
        from openpyxl import load_workbook  # imported when used: keeps every CLI call quick

        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a file that is not a workbook
        raise CatalogProblems(
            [Problem("(file)", 0, "", "format", f"无法读取 Excel 工作簿：{exc}")]
        ) from exc
    out: list[list[RawRow]] = []
    problems: list[Problem] = []
    for sheet_label, columns in SHEETS.values():
        if sheet_label not in book.sheetnames:
            problems.append(Problem(sheet_label, 0, "", "missing_sheet", "缺少工作表"))
            out.append([])
            continue
        rows = book[sheet_label].iter_rows(values_only=True)
        header = [str(h).strip() if h is not None else "" for h in next(rows, ())]
        by_header = {c.label: c.attr for c in columns} | {c.attr: c.attr for c in columns}
        for name in header:
            if name and name not in by_header:
                problems.append(Problem(sheet_label, 1, name, "unknown_column", "无法识别的列"))
        present = {by_header.get(h) for h in header}
        for c in columns:
            if c.required and c.attr not in present:
                problems.append(Problem(sheet_label, 1, c.label, "missing_column", "缺少必需的列"))
        parsed = []
        for number, values in enumerate(rows, start=2):
            if all(x is None or (isinstance(x, str) and not x.strip()) for x in values):
                continue
            record = {
                by_header[h]: x for h, x in zip(header, values, strict=False) if h in by_header
            }
            parsed.append(RawRow(sheet_label, number, record))
        out.append(parsed)
    if problems:
        raise CatalogProblems(problems)
    return out[0], out[1], out[2]


def read_catalog_file(path: Path) -> tuple[list[RawRow], list[RawRow], list[RawRow]]:
    data = path.read_bytes()
    if path.suffix.lower() in {".xlsx", ".xlsm"}:
        return rows_from_xlsx(data)
    try:
        doc = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CatalogProblems(
            [Problem(path.name, 0, "", "format", f"不是有效的 JSON：{exc}")]
        ) from exc
    return rows_from_json(doc)


# ---------------------------------------------------------------- checking


def _parse(rows: list[RawRow], columns: list[Column], problems: list[Problem]) -> list[dict]:
    parsed = []
    for raw in rows:
        record: dict[str, Any] = {"_sheet": raw.sheet, "_row": raw.row}
        for column in columns:
            value, rule = parse_value(column, raw.values.get(column.attr))
            if rule:
                problems.append(
                    Problem(raw.sheet, raw.row, column.label, rule, rule_message(rule, column))
                )
            record[column.attr] = value
        parsed.append(record)
    return parsed


def check(
    session: Session, units: list[RawRow], classes: list[RawRow], fields: list[RawRow]
) -> tuple[list[dict], list[dict], list[dict]]:
    """Parse and check a whole catalog input; raise CatalogProblems listing every problem."""
    problems: list[Problem] = []
    unit_rows = _parse(units, UNIT_COLUMNS, problems)
    class_rows = _parse(classes, CLASS_COLUMNS, problems)
    field_rows = _parse(fields, FIELD_COLUMNS, problems)

    def bad(row: dict, column: str, rule: str, message: str) -> None:
        problems.append(Problem(row["_sheet"], row["_row"], column, rule, message))

    for key, rows, label in (
        ("code", unit_rows, "单位代码"),
        ("name", unit_rows, "单位名称"),
        ("code", class_rows, "信息资源代码"),
    ):
        counts = Counter(r[key] for r in rows if r[key])
        for r in rows:
            if r[key] and counts[r[key]] > 1:
                bad(r, label, "duplicate", f"「{r[key]}」在文件中重复出现")

    for u in unit_rows:
        if u["code"] and not UNIT_CODE.match(u["code"]):
            bad(u, "单位代码", "unit_code", "应为 2–32 位字母、数字、下划线或连字符")
        if u["credit_code"] and not is_valid_credit_code(u["credit_code"]):
            bad(
                u,
                "统一社会信用代码",
                "credit_code",
                f"「{u['credit_code']}」不是有效的统一社会信用代码",
            )

    known_units = {u["code"] for u in unit_rows} | set(session.scalars(select(Unit.code)))
    known_classes = {c["code"] for c in class_rows} | set(
        session.scalars(select(ResourceClass.code))
    )
    fields_by_class: dict[str, list[dict]] = {}
    for f in field_rows:
        fields_by_class.setdefault(f["class_code"], []).append(f)

    for c in class_rows:
        _check_class(c, known_units, known_classes, fields_by_class.get(c["code"], []), bad)

    class_codes = {c["code"] for c in class_rows}
    for f in field_rows:
        if f["class_code"] and f["class_code"] not in class_codes:
            bad(f, "信息资源代码", "unknown_class", f"信息资源「{f['class_code']}」不在本文件中")
        if f["name"] and not FIELD_NAME.match(f["name"]):
            bad(f, "信息项名称", "field_name", "应为小写字母开头的字母、数字、下划线")
        if f["is_key"] and not f["required"]:
            bad(f, "必填", "key_required", "业务主键必须必填")
        if f["length"] is not None and f["length"] <= 0:
            bad(f, "数据长度", "length", "数据长度应为正整数")
    for code, rows in fields_by_class.items():
        counts = Counter(r["name"] for r in rows)
        for r in rows:
            if r["name"] and counts[r["name"]] > 1:
                bad(r, "信息项名称", "duplicate", f"信息项「{r['name']}」在「{code}」中重复")

    if problems:
        raise CatalogProblems(problems)
    return unit_rows, class_rows, field_rows


def _check_class(c: dict, units: set[str], classes: set[str], fields: list[dict], bad) -> None:
    if c["classification"]:
        if not CLASSIFICATION.match(c["classification"]):
            bad(c, "信息资源分类", "classification", "应为 类(1)项(2)目(3)[细目(2)] 位数字")
        elif c["category"] and c["classification"][0] != v.CATEGORY_DIGIT[c["category"]]:
            bad(
                c,
                "信息资源分类",
                "classification",
                "分类首位与资源属性不一致（基础1、主题2、部门3）",
            )
        elif c["code"] and not re.fullmatch(re.escape(c["classification"]) + r"/\d{5}", c["code"]):
            bad(c, "信息资源代码", "resource_code", "应为 分类码/5 位顺序码，如 101001/00001")
    if c["provider_code"] and c["provider_code"] not in units:
        bad(c, "提供方代码", "unknown_unit", f"单位「{c['provider_code']}」不存在")
    if c["share_type"] in {"conditional", "none"} and not c["share_condition"]:
        bad(c, "共享条件", "share_condition", "有条件共享和不予共享必须写明共享条件或法律依据")
    if c["open_type"] == "conditional" and not c["open_condition"]:
        bad(c, "开放条件", "open_condition", "有条件开放必须写明开放条件")
    if c["share_type"] == "none" and c["open_type"] != "closed":
        bad(c, "开放类型", "open_exceeds_share", "不予共享的资源不能向社会开放")
    if c["secret"] == "classified":
        bad(c, "涉密属性", "classified", "本平台只登记非涉密信息资源")
    for related in c["related_codes"] or []:
        if related not in classes:
            bad(c, "关联资源代码", "related_code", f"关联资源「{related}」不存在")
    if c["version"] is not None and c["version"] < 1:
        bad(c, "版本", "version", "版本应从 1 开始")
    if c["code"] and not fields:
        bad(c, "信息资源代码", "no_fields", "信息资源至少要有一个信息项")


# ---------------------------------------------------------------- writing


def _clean(row: dict) -> dict:
    return {k: val for k, val in row.items() if not k.startswith("_")}


def apply(
    session: Session, units: list[dict], classes: list[dict], fields: list[dict]
) -> ImportResult:
    result = ImportResult(units=len(units), classes=len(classes), fields=len(fields))
    for row in units:
        session.merge(Unit(**_clean(row)))
    session.flush()
    fields_by_class: dict[str, list[dict]] = {}
    for f in fields:
        fields_by_class.setdefault(f["class_code"], []).append(f)
    existing = {
        rc.code: rc
        for rc in session.scalars(
            select(ResourceClass)
            .where(ResourceClass.code.in_([c["code"] for c in classes]))
            .options(selectinload(ResourceClass.fields))
        )
    }
    for row in classes:
        attrs = _clean(row)
        rc = existing.get(row["code"])
        if rc is None:
            rc = ResourceClass(**attrs)
            session.add(rc)
            result.created.append(row["code"])
        else:
            for key, value in attrs.items():
                setattr(rc, key, value)
            result.updated.append(row["code"])
        new_fields = [
            Field(position=i + 1, **{k: val for k, val in _clean(f).items() if k != "class_code"})
            for i, f in enumerate(fields_by_class.get(row["code"], []))
        ]
        if rc.fields:
            rc.fields.clear()
            session.flush()  # old field rows go before new ones reuse their names
        rc.fields.extend(new_fields)
    session.flush()
    changes.mark(session, "catalog")
    return result


def import_catalog(session: Session, path: Path) -> ImportResult:
    """Import a catalog file (JSON or Excel) whole, or raise CatalogProblems and write nothing."""
    units, classes, fields = read_catalog_file(path)
    return apply(session, *check(session, units, classes, fields))


# ---------------------------------------------------------------- exporting


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


def unit_dict(unit: Unit) -> dict[str, Any]:
    return {c.attr: getattr(unit, c.attr) for c in UNIT_COLUMNS}


def field_dict(f: Field) -> dict[str, Any]:
    return {c.attr: _plain(getattr(f, c.attr)) for c in FIELD_COLUMNS if c.attr != "class_code"}


def class_dict(rc: ResourceClass, with_fields: bool = True) -> dict[str, Any]:
    data = {c.attr: _plain(getattr(rc, c.attr)) for c in CLASS_COLUMNS}
    if with_fields:
        data["fields"] = [field_dict(f) for f in rc.fields]
    return data


def export_json(session: Session) -> dict[str, Any]:
    units = session.scalars(select(Unit).order_by(Unit.code))
    classes = session.scalars(
        select(ResourceClass)
        .order_by(ResourceClass.code)
        .options(selectinload(ResourceClass.fields))
    )
    return {
        "format": FORMAT,
        "units": [unit_dict(u) for u in units],
        "classes": [class_dict(rc) for rc in classes],
    }


def _cell(column: Column, value: Any) -> Any:
    if value is None:
        return None
    if column.kind == "vocab":
        return v.label(column.vocab or {}, value)
    if column.kind == "vocab_list":
        return "、".join(v.label(column.vocab or {}, x) for x in value)
    if column.kind == "list":
        return "、".join(value)
    if column.kind == "bool":
        return "是" if value else "否"
    return value


def export_xlsx(session: Session) -> bytes:
    doc = export_json(session)
    from openpyxl import Workbook

    book = Workbook()
    book.remove(book.active)
    field_rows = [{**f, "class_code": c["code"]} for c in doc["classes"] for f in c["fields"]]
    for key, (sheet_label, columns) in SHEETS.items():
        sheet = book.create_sheet(sheet_label)
        sheet.append([c.label for c in columns])
        rows = field_rows if key == "fields" else doc[key]
        for row in rows:
            sheet.append([_cell(c, row.get(c.attr)) for c in columns])
            for cell in sheet[sheet.max_row]:  # text stays text, even if it begins with "="
                if isinstance(cell.value, str):
                    cell.data_type = "s"
        sheet.freeze_panes = "A2"
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


# ---------------------------------------------------------------- queries


@dataclass
class ClassFilter:
    unit: str | None = None
    sharing: str | None = None
    open: str | None = None
    base_db: str | None = None
    status: str | None = None
    text: str | None = None


def _filtered(query, f: ClassFilter):
    if f.unit:
        query = query.where(ResourceClass.provider_code == f.unit)
    if f.sharing:
        query = query.where(
            ResourceClass.share_type == (v.to_code(v.SHARE_TYPE, f.sharing) or f.sharing)
        )
    if f.open:
        query = query.where(ResourceClass.open_type == (v.to_code(v.OPEN_TYPE, f.open) or f.open))
    if f.base_db:
        query = query.where(ResourceClass.base_db == (v.to_code(v.BASE_DB, f.base_db) or f.base_db))
    if f.status:
        query = query.where(ResourceClass.status == (v.to_code(v.STATUS, f.status) or f.status))
    if f.text:
        like = f"%{f.text}%"
        query = query.where(
            or_(
                ResourceClass.name.like(like),
                ResourceClass.summary.like(like),
                ResourceClass.code.like(like),
            )
        )
    return query


def list_classes(
    session: Session, f: ClassFilter, offset: int = 0, limit: int = 50
) -> tuple[int, list[ResourceClass]]:
    total = session.scalar(_filtered(select(func.count()).select_from(ResourceClass), f)) or 0
    rows = session.scalars(
        _filtered(select(ResourceClass), f)
        .options(selectinload(ResourceClass.provider))
        .order_by(ResourceClass.code)
        .offset(offset)
        .limit(limit)
    )
    return total, list(rows)


def get_class(session: Session, code: str) -> ResourceClass | None:
    return session.scalar(
        select(ResourceClass)
        .where(ResourceClass.code == code)
        .options(selectinload(ResourceClass.fields), selectinload(ResourceClass.provider))
    )


def get_unit(session: Session, code: str) -> Unit | None:
    return session.get(Unit, code)


def list_units(session: Session) -> list[tuple[Unit, int]]:
    counts = (
        select(ResourceClass.provider_code, func.count().label("n"))
        .group_by(ResourceClass.provider_code)
        .subquery()
    )
    rows = session.execute(
        select(Unit, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.provider_code == Unit.code)
        .order_by(Unit.code)
    )
    return [(u, n) for u, n in rows]


def counts(session: Session) -> dict[str, Any]:
    """Figures for the home page: units, classes, and classes per sharing / open attribute."""
    live = ResourceClass.status != "retired"

    def by(column) -> dict[str, int]:
        return dict(
            session.execute(select(column, func.count()).where(live).group_by(column)).all()
        )

    shared = session.scalar(
        select(func.count())
        .select_from(ResourceClass)
        .where(live, ResourceClass.share_type != "none")
    )
    return {
        "units": session.scalar(select(func.count()).select_from(Unit)) or 0,
        "classes": session.scalar(select(func.count()).select_from(ResourceClass).where(live)) or 0,
        "shared": shared or 0,
        "by_sharing": by(ResourceClass.share_type),
        "by_open": by(ResourceClass.open_type),
        "by_base": by(ResourceClass.base_db),
    }


# ---------------------------------------------------------------- administrative edits


def save_class(session: Session, entry: dict[str, Any], *, create: bool) -> ResourceClass:
    """Create or update one class (with its fields) through the same checks as an import."""
    current = get_class(session, entry.get("code", ""))
    if create and current is not None:
        raise CatalogProblems([Problem("class", 1, "信息资源代码", "exists", "信息资源代码已存在")])
    if not create and current is None:
        raise LookupError(entry.get("code"))
    units, classes, fields = rows_from_json({"units": [], "classes": [entry]})
    _, class_rows, field_rows = check(session, units, classes, fields)
    if current is not None:
        class_rows[0]["version"] = current.version + 1
    apply(session, [], class_rows, field_rows)
    return get_class(session, entry["code"])


def retire_class(session: Session, code: str) -> ResourceClass:
    rc = get_class(session, code)
    if rc is None:
        raise LookupError(code)
    if rc.status != "retired":
        rc.status = "retired"
        rc.version += 1
        changes.mark(session, "catalog")
    session.flush()
    return rc
