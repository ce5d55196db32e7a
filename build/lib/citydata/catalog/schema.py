"""The catalog's columns kept as data: one list per sheet drives parsing, checking, the Excel
headers and the export order, so JSON, Excel, API and CLI can never disagree."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from citydata.catalog import vocab as v


@dataclass(frozen=True)
class Column:
    attr: str
    label: str  # the Chinese header departments see
    kind: str = "text"  # text | int | bool | date | vocab | vocab_list | list
    vocab: dict[str, str] | None = None
    required: bool = False
    default: Any = None


UNIT_COLUMNS = [
    Column("code", "单位代码", required=True),
    Column("name", "单位名称", required=True),
    Column("short_name", "单位简称", required=True),
    Column("credit_code", "统一社会信用代码", required=True),
    Column("level", "层级", "vocab", v.LEVEL, required=True),
    Column("contact", "联系人", default=""),
    Column("phone", "联系电话", default=""),
]

CLASS_COLUMNS = [
    Column("code", "信息资源代码", required=True),
    Column("name", "信息资源名称", required=True),
    Column("category", "资源属性", "vocab", v.CATEGORY, required=True),
    Column("classification", "信息资源分类", required=True),
    Column("classification_name", "分类名称", default=""),
    Column("provider_code", "提供方代码", required=True),
    Column("summary", "信息资源摘要", required=True),
    Column("format_class", "信息资源格式分类", "vocab", v.FORMAT_CLASS, required=True),
    Column("format_type", "信息资源格式类型", default=""),
    Column("share_type", "共享类型", "vocab", v.SHARE_TYPE, required=True),
    Column("share_condition", "共享条件", default=""),
    Column("share_methods", "共享方式", "vocab_list", v.SHARE_METHOD, required=True),
    Column("open_type", "开放类型", "vocab", v.OPEN_TYPE, required=True),
    Column("open_condition", "开放条件", default=""),
    Column("update_cycle", "更新周期", "vocab", v.UPDATE_CYCLE, required=True),
    Column("publish_date", "发布日期", "date"),
    Column("related_codes", "关联资源代码", "list", default=()),
    Column("secret", "涉密属性", "vocab", v.SECRET, default="non_classified"),
    Column("base_db", "基础库", "vocab", v.BASE_DB, default="none"),
    Column("status", "状态", "vocab", v.STATUS, default="published"),
    Column("version", "版本", "int", default=1),
]

FIELD_COLUMNS = [
    Column("class_code", "信息资源代码", required=True),
    Column("name", "信息项名称", required=True),
    Column("label", "中文名称", required=True),
    Column("data_type", "数据类型", "vocab", v.DATA_TYPE, required=True),
    Column("length", "数据长度", "int"),
    Column("required", "必填", "bool", default=False),
    Column("is_key", "业务主键", "bool", default=False),
    Column("sensitivity", "敏感级别", "vocab", v.SENSITIVITY, default="public"),
    Column("rules", "校验规则", "vocab_list", v.RULES, default=()),
    Column("enum", "枚举值", "list", default=()),
    Column("description", "说明", default=""),
]

SHEETS = {
    "units": ("单位", UNIT_COLUMNS),
    "classes": ("信息资源", CLASS_COLUMNS),
    "fields": ("信息项", FIELD_COLUMNS),
}

UNIT_CODE = re.compile(r"^[A-Za-z0-9_-]{2,32}$")
CLASSIFICATION = re.compile(r"^[123]\d{5}(\d{2})?$")  # 类(1) 项(2) 目(3) [细目(2)]
FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
LIST_SPLIT = re.compile(r"[,，、;；\n]")


@dataclass(frozen=True)
class Problem:
    sheet: str
    row: int
    column: str
    rule: str
    message: str

    def __str__(self) -> str:
        where = f"{self.sheet} 第 {self.row} 行"
        if self.column:
            where += f" 「{self.column}」"
        return f"{where}: {self.message} [{self.rule}]"


class CatalogProblems(Exception):
    """The catalog input was refused whole; every problem found is listed."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__(f"目录有 {len(problems)} 个问题，未写入任何内容")


def parse_value(column: Column, raw: Any) -> tuple[Any, str | None]:
    """Turn one cell (from JSON or Excel) into the stored value, or give the rule it breaks."""
    empty = raw is None or (isinstance(raw, str) and not raw.strip())
    if empty:
        if column.required:
            return None, "required"
        default = column.default
        return (list(default) if isinstance(default, tuple) else default), None
    if column.kind == "text":
        return str(raw).strip() if not isinstance(raw, float) else _number_text(raw), None
    if column.kind == "int":
        try:
            number = float(raw)
        except (TypeError, ValueError):
            return None, "integer"
        return (int(number), None) if number == int(number) else (None, "integer")
    if column.kind == "bool":
        if isinstance(raw, bool):
            return raw, None
        text = str(raw).strip().lower()
        if text in v.TRUE_WORDS:
            return True, None
        if text in v.FALSE_WORDS:
            return False, None
        return None, "boolean"
    if column.kind == "date":
        if isinstance(raw, datetime):
            return raw.date(), None
        if isinstance(raw, date):
            return raw, None
        try:
            return date.fromisoformat(str(raw).strip()[:10]), None
        except ValueError:
            return None, "date"
    if column.kind == "vocab":
        code = v.to_code(column.vocab or {}, raw)
        return (code, None) if code else (None, "vocabulary")
    items = raw if isinstance(raw, list) else [p for p in LIST_SPLIT.split(str(raw))]
    items = [str(i).strip() for i in items if str(i).strip()]
    if column.kind == "vocab_list":
        codes = [v.to_code(column.vocab or {}, item) for item in items]
        return (codes, None) if all(codes) else (None, "vocabulary")
    return items, None


def _number_text(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


def rule_message(rule: str, column: Column) -> str:
    if rule == "vocabulary":
        allowed = "、".join(column.vocab.values()) if column.vocab else ""
        return f"取值不在规定范围内（可选：{allowed}）"
    return {
        "required": "必填项为空",
        "integer": "应为整数",
        "boolean": "应为 是/否",
        "date": "应为日期 YYYY-MM-DD",
    }.get(rule, rule)
