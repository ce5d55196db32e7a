"""政务服务事项: the national matter elements, their materials (some replaced by shared data:
免提交) and their forms (fields prefilled from the base databases, some locked), versioned —
draft → published → retired; a published version is frozen and cases keep theirs — and bundles
(一件事一次办). Imported and exported as JSON and as the Excel workbook units fill in: a file
with problems is refused whole, every problem named, nothing written."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, selectinload

from citydata.catalog.models import ResourceClass, Unit
from citydata.db.base import utcnow
from citydata.services.models import Bundle, Material, Matter

# 依申请六类政务服务事项, and public services
KINDS = {
    "license": "行政许可",
    "payment": "行政给付",
    "confirmation": "行政确认",
    "reward": "行政奖励",
    "adjudication": "行政裁决",
    "other_power": "其他行政权力",
    "public_service": "公共服务",
}
LEVELS = {"city": "市级", "district": "区县级", "street": "街道乡镇级", "community": "社区村级"}
CHANNELS = {"window": "窗口办理", "online": "网上办理", "post": "快递送达"}
NEEDS = {"required": "必要", "conditional": "容缺或视情形"}
FORMS = {"original": "原件", "copy": "复印件", "electronic": "电子件"}
APPLICANTS = {"person": "自然人", "company": "法人", "both": "自然人和法人"}
STATUS = {"draft": "草稿", "published": "已发布", "retired": "已停用"}

SCALARS = {  # JSON key -> (column, kind)
    "basic_code": "text",
    "impl_code": "text",
    "name": "text",
    "kind": "kind",
    "unit": "unit",
    "level": "level",
    "area": "text?",
    "legal_basis": "text?",
    "conditions": "text?",
    "legal_days": "days",
    "promised_days": "days",
    "channels": "channels",
    "visits": "visits",
    "fully_online": "bool",
    "instant": "bool",
    "fee": "text?",
    "steps": "list",
    "life_events": "list",
    "applicant": "applicant",
}
COLUMN = {"unit": "unit_code"}


class MatterProblems(ValueError):
    """Every problem of a file, each naming where (sheet or matter, row, field) and the rule."""

    def __init__(self, problems: list[str]):
        super().__init__(
            "；".join(problems[:20])
            + (f"……共 {len(problems)} 个问题" if len(problems) > 20 else "")
        )
        self.problems = problems


@dataclass
class ImportReport:
    matters: int
    new_versions: int
    bundles: int


# ---------------------------------------------------------------- checking


def _check_matter(
    where: str, entry: dict[str, Any], units: set[str], classes: dict[str, set[str]]
) -> list[str]:
    problems = []

    def bad(field: str, rule: str) -> None:
        problems.append(f"{where} 的「{field}」：{rule}")

    for key, kind in SCALARS.items():
        value = entry.get(key)
        optional = kind.endswith("?")
        if value in (None, "") and (optional or kind in {"list", "bool"}):
            continue
        if value in (None, ""):
            bad(key, "必填")
        elif kind in {"text", "text?"} and not isinstance(value, str):
            bad(key, "应为文本")
        elif kind == "kind" and value not in KINDS:
            bad(key, f"应为 {'、'.join(KINDS.values())} 之一")
        elif kind == "unit" and value not in units:
            bad(key, "不是目录中的单位")
        elif kind == "level" and value not in LEVELS:
            bad(key, f"应为 {'、'.join(LEVELS.values())} 之一")
        elif kind == "applicant" and value not in APPLICANTS:
            bad(key, "应为 person、company 或 both")
        elif kind == "days" and not (isinstance(value, int) and 0 <= value <= 365):
            bad(key, "应为 0–365 的工作日数")
        elif kind == "visits" and value not in (0, 1, 2):
            bad(key, "到现场次数应为 0、1 或 2")
        elif kind == "bool" and not isinstance(value, bool):
            bad(key, "应为 是/否")
        elif kind == "channels" and (
            not isinstance(value, list) or not value or set(value) - set(CHANNELS)
        ):
            bad(key, f"应为 {'、'.join(CHANNELS)} 中的一个或几个")
        elif kind == "list" and not (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        ):
            bad(key, "应为文本列表")
    days = entry.get("promised_days"), entry.get("legal_days")
    if all(isinstance(d, int) for d in days) and days[0] > days[1]:
        bad("promised_days", "承诺时限不能长于法定时限")
    if entry.get("fully_online") and entry.get("visits"):
        bad("visits", "全程网办的事项到现场次数应为 0")
    for i, material in enumerate(entry.get("materials") or [], start=1):
        at = f"{where} 材料 {i}"
        if not isinstance(material, dict) or not material.get("name"):
            problems.append(f"{at}：缺少名称")
            continue
        if material.get("need", "required") not in NEEDS:
            problems.append(f"{at} 的「need」：应为 required 或 conditional")
        if material.get("form", "original") not in FORMS:
            problems.append(f"{at} 的「form」：应为 original、copy 或 electronic")
        by = material.get("replaced_by") or ""
        if by:
            if by not in classes:
                problems.append(f"{at} 的「replaced_by」：{by} 不是目录中的信息资源")
            elif set(material.get("fields") or []) - classes[by]:
                problems.append(
                    f"{at} 的「fields」：{by} 没有信息项 {sorted(set(material['fields']) - classes[by])}"
                )
    for i, field in enumerate(entry.get("form") or [], start=1):
        at = f"{where} 表单 {i}"
        if not isinstance(field, dict) or not field.get("name") or not field.get("label"):
            problems.append(f"{at}：缺少 name 或 label")
            continue
        prefill = field.get("prefill") or ""
        if prefill:
            code, _, name = prefill.rpartition(".")
            if code not in classes or name not in classes[code]:
                problems.append(
                    f"{at} 的「prefill」：{prefill} 不是目录中的信息项（类代码.信息项）"
                )
        elif field.get("locked"):
            problems.append(f"{at}：只有预填的信息项可以锁定")
    return problems


def check(session: Session, doc: dict[str, Any]) -> list[str]:
    """Every problem of a matter document (``{"matters": […], "bundles": […]}``)."""
    units = set(session.scalars(select(Unit.code)))
    classes: dict[str, set[str]] = {}
    for rc in session.scalars(select(ResourceClass).options(selectinload(ResourceClass.fields))):
        classes[rc.code] = {f.name for f in rc.fields}
    problems: list[str] = []
    seen: set[str] = set()
    matters = doc.get("matters")
    if not isinstance(matters, list):
        return ["缺少 matters 列表"]
    for i, entry in enumerate(matters, start=1):
        if not isinstance(entry, dict):
            problems.append(f"事项 {i}：应为对象")
            continue
        where = f"事项 {i}（{entry.get('impl_code') or entry.get('name') or '?'}）"
        problems += _check_matter(where, entry, units, classes)
        code = entry.get("impl_code")
        if code in seen:
            problems.append(f"{where}：实施编码重复")
        seen.add(code)
    known = seen | set(session.scalars(select(Matter.impl_code)))
    for i, bundle in enumerate(doc.get("bundles") or [], start=1):
        where = f"一件事 {i}（{bundle.get('code', '?')}）"
        if not bundle.get("code") or not bundle.get("name"):
            problems.append(f"{where}：缺少 code 或 name")
        missing = [m for m in bundle.get("matters") or [] if m not in known]
        if missing or len(bundle.get("matters") or []) < 2:
            problems.append(f"{where}：应包含至少两个已有事项；未知：{missing}")
    return problems


# ---------------------------------------------------------------- writing


def _fill(matter: Matter, entry: dict[str, Any]) -> None:
    for key in SCALARS:
        if key in entry:
            setattr(matter, COLUMN.get(key, key), entry[key])
    matter.form = [form_field(f) for f in entry.get("form") or []]
    matter.materials = [
        Material(
            position=i,
            name=m["name"],
            need=m.get("need", "required"),
            form=m.get("form", "original"),
            replaced_by=m.get("replaced_by") or "",
            replaced_fields=list(m.get("fields") or []),
        )
        for i, m in enumerate(entry.get("materials") or [])
    ]


def form_field(field: dict[str, Any]) -> dict[str, Any]:
    """A form field as kept: name, label, where it is prefilled from ("" if nowhere), locked,
    and ``optional`` only when it is."""
    kept = {
        "name": field.get("name"),
        "label": field.get("label"),
        "prefill": field.get("prefill") or "",
        "locked": bool(field.get("locked")),
    }
    return kept | ({"optional": True} if field.get("optional") else {})


def _same(matter: Matter, entry: dict[str, Any]) -> bool:
    return matter_dict(matter, with_status=False) == matter_dict(_scratch(entry), with_status=False)


def _scratch(entry: dict[str, Any]) -> Matter:
    m = Matter(version=0, status="draft", area="", legal_basis="", conditions="", fee="不收费")
    m.channels, m.steps, m.life_events, m.visits = [], [], [], 0
    m.fully_online, m.instant, m.applicant = True, False, "person"
    _fill(m, entry)
    return m


def import_matters(
    session: Session, doc: dict[str, Any], publish_all: bool = False
) -> ImportReport:
    """Matters and bundles from a checked document, in the caller's transaction. A matter whose
    latest version is a draft is updated; one whose latest is published (frozen) gets a new draft
    version when the document differs. ``publish_all`` publishes every resulting draft."""
    problems = check(session, doc)
    if problems:
        raise MatterProblems(problems)
    # every version of the document's matters read at once (a city imports thousands of matters:
    # a query and a flush per matter cost 20 ms each), oldest first so the last is the latest
    codes = [entry["impl_code"] for entry in doc["matters"]]
    latest: dict[str, Matter] = {}
    live: dict[str, list[Matter]] = {}  # the published versions, retired when a draft is published
    for at in range(0, len(codes), 500):
        for m in session.scalars(
            select(Matter)
            .where(Matter.impl_code.in_(codes[at : at + 500]))
            .order_by(Matter.impl_code, Matter.version)
        ):
            latest[m.impl_code] = m
            if m.status == "published":
                live.setdefault(m.impl_code, []).append(m)
    new_versions = 0
    for entry in doc["matters"]:
        current = latest.get(entry["impl_code"])
        if current is not None and current.status == "draft":
            _fill(current, entry)
            matter = current
        elif current is not None and _same(current, entry):
            matter = current
        else:
            matter = Matter(version=(current.version + 1) if current else 1, status="draft")
            _fill(matter, entry)
            session.add(matter)
            latest[entry["impl_code"]] = matter
            new_versions += 1
        if publish_all and matter.status == "draft":
            for old in live.get(matter.impl_code, []):
                old.status = "retired"
            matter.status, matter.published_at = "published", utcnow()
            live[matter.impl_code] = [matter]
    session.flush()
    for b in doc.get("bundles") or []:
        bundle = session.get(Bundle, b["code"]) or Bundle(code=b["code"])
        bundle.name, bundle.life_event, bundle.matters = (
            b["name"],
            b.get("life_event", ""),
            list(b["matters"]),
        )
        session.add(bundle)
    return ImportReport(len(doc["matters"]), new_versions, len(doc.get("bundles") or []))


def latest_version(session: Session, impl_code: str) -> Matter | None:
    return session.scalar(
        select(Matter).where(Matter.impl_code == impl_code).order_by(Matter.version.desc()).limit(1)
    )


def publish(session: Session, impl_code: str) -> Matter:
    """The latest draft becomes the published version; the one before is retired."""
    draft = latest_version(session, impl_code)
    if draft is None or draft.status != "draft":
        raise MatterProblems([f"事项 {impl_code} 没有待发布的草稿"])
    for old in session.scalars(
        select(Matter).where(Matter.impl_code == impl_code, Matter.status == "published")
    ):
        old.status = "retired"
    draft.status, draft.published_at = "published", utcnow()
    return draft


def published(session: Session, impl_code: str) -> Matter | None:
    return session.scalar(
        select(Matter)
        .where(Matter.impl_code == impl_code, Matter.status == "published")
        .options(selectinload(Matter.materials))
    )


def find(
    session: Session, text: str = "", life_event: str = "", unit: str = "", limit: int = 200
) -> list[Matter]:
    """Published matters whose name holds ``text`` (or serving ``life_event``, or of ``unit``)."""
    query = select(Matter).where(Matter.status == "published")
    if text.strip():
        query = query.where(
            or_(
                Matter.name.contains(text.strip(), autoescape=True),
                Matter.impl_code == text.strip(),
            )
        )
    if unit:
        query = query.where(Matter.unit_code == unit)
    found = list(session.scalars(query.order_by(Matter.impl_code).limit(5000)))
    if life_event:
        found = [m for m in found if life_event in m.life_events]
    return found[:limit]


def counts(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(Matter.level, func.count())
        .where(Matter.status == "published")
        .group_by(Matter.level)
    ).all()
    return dict(rows)


def exempt(material: Material) -> bool:
    """免提交: shared data stands in for it."""
    return bool(material.replaced_by)


def no_upload_needed(matter: Matter) -> bool:
    """Every required material is replaced by shared data: nothing to upload at all."""
    return all(exempt(m) for m in matter.materials if m.need == "required")


# ---------------------------------------------------------------- reading out


def matter_dict(matter: Matter, with_status: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {key: getattr(matter, COLUMN.get(key, key)) for key in SCALARS}
    out["materials"] = [
        {
            "name": m.name,
            "need": m.need,
            "form": m.form,
            **(
                {"replaced_by": m.replaced_by, "fields": list(m.replaced_fields)}
                if m.replaced_by
                else {}
            ),
        }
        for m in matter.materials
    ]
    out["form"] = list(matter.form)
    if with_status:
        out |= {"version": matter.version, "status": matter.status}
    return out


def export_doc(session: Session) -> dict[str, Any]:
    latest = (
        select(Matter.impl_code, func.max(Matter.version).label("v"))
        .group_by(Matter.impl_code)
        .subquery()
    )
    matters = session.scalars(
        select(Matter)
        .join(latest, (latest.c.impl_code == Matter.impl_code) & (latest.c.v == Matter.version))
        .options(selectinload(Matter.materials))
        .order_by(Matter.impl_code)
    )
    bundles = session.scalars(select(Bundle).order_by(Bundle.code))
    return {
        "matters": [matter_dict(m, with_status=False) for m in matters],
        "bundles": [
            {"code": b.code, "name": b.name, "life_event": b.life_event, "matters": list(b.matters)}
            for b in bundles
        ],
    }


def read_json(path: Path) -> dict[str, Any]:
    try:
        doc = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise MatterProblems([f"{path.name}: 不是有效的 JSON：{exc}"]) from exc
    if not isinstance(doc, dict):
        raise MatterProblems([f"{path.name}: 应为对象"])
    return doc


# ---------------------------------------------------------------- the workbook units fill in

SHEET_MATTERS = "事项"
SHEET_MATERIALS = "申请材料"
SHEET_FORM = "表单"
MATTER_HEADERS = {
    "基本编码": "basic_code",
    "实施编码": "impl_code",
    "事项名称": "name",
    "事项类型": "kind",
    "实施单位": "unit",
    "层级": "level",
    "区划": "area",
    "设定依据": "legal_basis",
    "受理条件": "conditions",
    "法定办结时限": "legal_days",
    "承诺办结时限": "promised_days",
    "办理形式": "channels",
    "到现场次数": "visits",
    "全程网办": "fully_online",
    "即办件": "instant",
    "收费": "fee",
    "办理流程": "steps",
    "主题": "life_events",
    "服务对象": "applicant",
}
MATERIAL_HEADERS = {
    "实施编码": "impl_code",
    "材料名称": "name",
    "必要性": "need",
    "形式": "form",
    "共享替代资源": "replaced_by",
    "替代信息项": "fields",
}
FORM_HEADERS = {
    "实施编码": "impl_code",
    "字段": "name",
    "名称": "label",
    "预填": "prefill",
    "锁定": "locked",
    "选填": "optional",
}
_VOCABS = {"kind": KINDS, "level": LEVELS, "applicant": APPLICANTS, "need": NEEDS, "form": FORMS}
_LISTS = {"channels": CHANNELS, "steps": None, "life_events": None, "fields": None}
_BOOLS = {"fully_online", "instant", "locked", "optional"}
_INTS = {"legal_days", "promised_days", "visits"}


def _cell_in(key: str, value: Any, where: str, problems: list[str]) -> Any:
    """A workbook cell as the JSON document has it: terms or codes, lists split on 、, 是/否."""
    if value is None or value == "":
        return [] if key in _LISTS else None
    text = str(value).strip()
    if key in _VOCABS:
        by_term = {v: k for k, v in _VOCABS[key].items()}
        return by_term.get(text, text)
    if key in _LISTS:
        items = [t.strip() for t in text.replace(",", "、").split("、") if t.strip()]
        if _LISTS[key]:
            by_term = {v: k for k, v in _LISTS[key].items()}
            items = [by_term.get(t, t) for t in items]
        return items
    if key in _BOOLS:
        if text in {"是", "true", "True", "1", "Y"}:
            return True
        if text in {"否", "false", "False", "0", "N"}:
            return False
        problems.append(f"{where} 应为 是/否")
        return None
    if key in _INTS:
        try:
            return int(float(text))
        except ValueError:
            problems.append(f"{where} 应为整数")
            return None
    return text


def read_workbook(path: Path) -> dict[str, Any]:
    """The three sheets as a matter document; every problem (sheet, row, column) reported."""
    from openpyxl import load_workbook

    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises its own errors for what is not a workbook
        raise MatterProblems([f"{path.name}: 无法读取 Excel 工作簿：{exc}"]) from exc
    problems: list[str] = []

    def rows(sheet: str, headers: dict[str, str]) -> list[dict[str, Any]]:
        if sheet not in book.sheetnames:
            problems.append(f"缺少工作表「{sheet}」")
            return []
        found = list(book[sheet].iter_rows(values_only=True))
        if not found:
            return []
        head = [str(h).strip() if h is not None else "" for h in found[0]]
        missing = [h for h in headers if h not in head]
        if missing:
            problems.append(f"工作表「{sheet}」缺少列：{'、'.join(missing)}")
            return []
        out = []
        for n, row in enumerate(found[1:], start=2):
            if all(v in (None, "") for v in row):
                continue
            record = {}
            for label, key in headers.items():
                value = row[head.index(label)] if head.index(label) < len(row) else None
                record[key] = _cell_in(
                    key, value, f"工作表「{sheet}」第 {n} 行「{label}」", problems
                )
            out.append(record)
        return out

    matters = rows(SHEET_MATTERS, MATTER_HEADERS)
    by_code = {m["impl_code"]: m for m in matters if m.get("impl_code")}
    for material in rows(SHEET_MATERIALS, MATERIAL_HEADERS):
        code = material.pop("impl_code")
        if code not in by_code:
            problems.append(
                f"工作表「{SHEET_MATERIALS}」：实施编码 {code} 不在「{SHEET_MATTERS}」中"
            )
            continue
        by_code[code].setdefault("materials", []).append(
            {k: v for k, v in material.items() if v not in (None, [])}
        )
    for field in rows(SHEET_FORM, FORM_HEADERS):
        code = field.pop("impl_code")
        if code not in by_code:
            problems.append(f"工作表「{SHEET_FORM}」：实施编码 {code} 不在「{SHEET_MATTERS}」中")
            continue
        by_code[code].setdefault("form", []).append(form_field(field))
    if problems:
        raise MatterProblems(problems)
    for m in matters:
        for key in ("fully_online", "instant"):
            if m.get(key) is None:
                m.pop(key, None)
        for key, kind in SCALARS.items():
            if kind == "text?" and m.get(key) is None:
                m[key] = ""  # an empty cell is an empty text, as in the JSON
    return {"matters": matters}


def export_workbook(doc: dict[str, Any]) -> bytes:
    """The document as the three sheets, the way ``read_workbook`` reads them back."""
    from openpyxl import Workbook

    book = Workbook()
    book.remove(book.active)

    def cell(key: str, value: Any) -> Any:
        if key in _VOCABS:
            return _VOCABS[key].get(value, value)
        if key in _LISTS:
            terms = _LISTS[key] or {}
            return "、".join(terms.get(v, v) for v in value or [])
        if key in _BOOLS:
            return "是" if value else "否"
        return value

    def sheet(name: str, headers: dict[str, str], records: list[dict[str, Any]]) -> None:
        ws = book.create_sheet(name)
        ws.append(list(headers))
        for r, record in enumerate(records, start=2):
            values = [cell(key, record.get(key)) for key in headers.values()]
            ws.append(values)
            # text stays text, even if it begins with "=" (each cell by its place: asking for
            # the sheet's last row scans every cell, quadratic over a city's matters)
            for c, value in enumerate(values, start=1):
                if isinstance(value, str):
                    ws.cell(row=r, column=c).data_type = "s"

    sheet(SHEET_MATTERS, MATTER_HEADERS, doc["matters"])
    sheet(
        SHEET_MATERIALS,
        MATERIAL_HEADERS,
        [{"impl_code": m["impl_code"], **x} for m in doc["matters"] for x in m["materials"]],
    )
    sheet(
        SHEET_FORM,
        FORM_HEADERS,
        [{"impl_code": m["impl_code"], **f} for m in doc["matters"] for f in m["form"]],
    )
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
