"""Theme databases (主题库/专题库): declared, not coded. Each file in ``themes/`` names a SELECT over
the published base tables (``base_population`` …) and staging tables, its catalog entry and its
columns; ``refresh`` materialises it as ``theme_<name>`` and registers it in the catalog as a
theme class (category 主题), all in one transaction per theme."""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import func, inspect, select, text
from sqlalchemy.orm import Session

from citydata.bases.models import ThemeRefresh
from citydata.catalog import vocab
from citydata.catalog.models import Unit
from citydata.catalog.schema import CatalogProblems
from citydata.catalog.service import get_class, save_class
from citydata.db.engine import Store

THEMES_DIR = Path(__file__).with_name("themes")
REQUIRED = (
    "title",
    "summary",
    "code",
    "owner",
    "update_cycle",
    "share_type",
    "open_type",
    "sql",
    "columns",
)
OPTIONAL = ("share_condition", "open_condition", "params")


class ThemeError(ValueError):
    pass


@dataclass(frozen=True)
class ThemeSpec:
    name: str
    title: str
    summary: str
    code: str
    owner: str
    update_cycle: str
    share_type: str
    share_condition: str
    open_type: str
    open_condition: str
    sql: str
    params: dict[str, str]
    columns: dict[str, str]  # column -> Chinese label
    digest: str

    @property
    def table(self) -> str:
        return f"theme_{self.name}"


def parse_theme(name: str, text_: str) -> ThemeSpec:
    where = f"themes/{name}.toml"
    try:
        data = tomllib.loads(text_)
    except tomllib.TOMLDecodeError as exc:
        raise ThemeError(f"{where}: 不是有效的 TOML：{exc}") from exc
    missing = [k for k in REQUIRED if k not in data]
    unknown = sorted(set(data) - set(REQUIRED) - set(OPTIONAL))
    if missing or unknown:
        raise ThemeError(
            f"{where}: 缺少 {'、'.join(missing) or '—'}；未知 {'、'.join(unknown) or '—'}"
        )
    sql = data["sql"].strip().rstrip(";")
    if not re.match(r"(?is)^\s*select\b", sql) or ";" in sql:
        raise ThemeError(f"{where}: sql 必须是一条 SELECT 语句")
    for key, table in (
        ("update_cycle", vocab.UPDATE_CYCLE),
        ("share_type", vocab.SHARE_TYPE),
        ("open_type", vocab.OPEN_TYPE),
    ):
        if data[key] not in table:
            raise ThemeError(f"{where}: {key}「{data[key]}」不在 {'、'.join(table)} 中")
    for param, rule in data.get("params", {}).items():
        if not (rule == "today" or re.fullmatch(r"years_ago:\d+", rule)):
            raise ThemeError(f"{where}: 参数「{param}」的取值「{rule}」应为 today 或 years_ago:N")
    return ThemeSpec(
        name,
        data["title"],
        data["summary"],
        data["code"],
        data["owner"],
        data["update_cycle"],
        data["share_type"],
        data.get("share_condition", ""),
        data["open_type"],
        data.get("open_condition", ""),
        sql,
        dict(data.get("params", {})),
        dict(data["columns"]),
        hashlib.sha256(text_.encode()).hexdigest(),
    )


def load_themes(folder: Path = THEMES_DIR) -> dict[str, ThemeSpec]:
    return {
        p.stem: parse_theme(p.stem, p.read_text(encoding="utf-8"))
        for p in sorted(folder.glob("*.toml"))
    }


def _param(rule: str, today: date) -> str:
    if rule == "today":
        return today.isoformat()
    years = int(rule.split(":")[1])
    try:
        return today.replace(year=today.year - years).isoformat()
    except ValueError:  # 29 February
        return today.replace(year=today.year - years, day=28).isoformat()


def _entry(theme: ThemeSpec, numeric: set[str]) -> dict[str, Any]:
    return {
        "code": theme.code,
        "name": theme.title,
        "category": "theme",
        "classification": theme.code.split("/")[0],
        "classification_name": "主题库",
        "provider_code": theme.owner,
        "summary": theme.summary,
        "format_class": "database",
        "format_type": "table",
        "share_type": theme.share_type,
        "share_condition": theme.share_condition,
        "share_methods": ["system", "online_query"],
        "open_type": theme.open_type,
        "open_condition": theme.open_condition,
        "update_cycle": theme.update_cycle,
        "related_codes": [],
        "secret": "non_classified",
        "base_db": "none",
        "status": "published",
        "fields": [
            {
                "name": c,
                "label": label,
                "data_type": "N" if c in numeric else "C",
                "required": False,
                "is_key": False,
            }
            for c, label in theme.columns.items()
        ],
    }


def refresh_one(session: Session, theme: ThemeSpec, today: date) -> int:
    """Materialise one theme and register it; returns its row count. Raises ThemeError."""
    if session.get(Unit, theme.owner) is None:
        raise ThemeError(f"主题库「{theme.name}」的责任单位「{theme.owner}」不在目录中")
    conn = session.connection()
    params = {k: _param(rule, today) for k, rule in theme.params.items()}
    # CREATE TABLE AS takes no bind parameters on PostgreSQL: the values (dates we computed) are
    # rendered as literals.
    select_sql = str(
        text(theme.sql)
        .bindparams(**params)
        .compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
    )
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {theme.table}")
    try:
        conn.exec_driver_sql(f"CREATE TABLE {theme.table} AS {select_sql}")
    except Exception as exc:  # the database names the table or column that is missing
        raise ThemeError(
            f"主题库「{theme.name}」的 SQL 无法执行：{exc.__class__.__name__}: {str(exc).splitlines()[0]}"
        ) from exc
    columns = {c["name"]: c["type"] for c in inspect(conn).get_columns(theme.table)}
    if list(columns) != list(theme.columns):
        raise ThemeError(
            f"主题库「{theme.name}」的 SQL 给出的列 {list(columns)} 与声明的 columns {list(theme.columns)} 不一致"
        )
    numeric = {
        c
        for c, kind in columns.items()
        if re.search(r"INT|NUM|REAL|FLOAT|DOUBLE|DEC", str(kind).upper())
    }
    rows = conn.execute(select(func.count()).select_from(text(theme.table))).scalar() or 0
    try:
        save_class(session, _entry(theme, numeric), create=get_class(session, theme.code) is None)
    except CatalogProblems as exc:
        raise ThemeError(f"主题库「{theme.name}」无法登记到目录：{exc}") from exc
    session.add(
        ThemeRefresh(
            name=theme.name, class_code=theme.code, rows=rows, definition_hash=theme.digest
        )
    )
    return rows


def refresh(
    store: Store, name: str | None = None, today: date | None = None
) -> list[dict[str, Any]]:
    """Refresh one theme or all; each in its own transaction, so one broken theme spoils no other."""
    themes = load_themes()
    if name is not None and name not in themes:
        raise ThemeError(f"没有主题库「{name}」；已有：{'、'.join(themes)}")
    results = []
    for theme in [themes[name]] if name else themes.values():
        try:
            with store.session() as session:
                rows = refresh_one(session, theme, today or date.today())
            results.append(
                {
                    "name": theme.name,
                    "class_code": theme.code,
                    "rows": rows,
                    "table": theme.table,
                    "error": None,
                }
            )
        except ThemeError as exc:
            results.append(
                {
                    "name": theme.name,
                    "class_code": theme.code,
                    "rows": None,
                    "table": theme.table,
                    "error": str(exc),
                }
            )
    return results


def _plain(value: Any) -> Any:
    return float(value) if isinstance(value, Decimal) else value  # PostgreSQL NUMERIC


def theme_rows(session: Session, name: str, offset: int = 0, limit: int = 100) -> dict[str, Any]:
    themes = load_themes()
    if name not in themes:
        raise ThemeError(f"没有主题库「{name}」")
    theme = themes[name]
    conn = session.connection()
    if theme.table not in inspect(conn).get_table_names():
        raise ThemeError(f"主题库「{name}」还没有生成：citydata theme refresh {name}")
    total = conn.execute(select(func.count()).select_from(text(theme.table))).scalar() or 0
    result = conn.exec_driver_sql(
        f"SELECT * FROM {theme.table} LIMIT {int(limit)} OFFSET {int(offset)}"
    )
    columns = list(result.keys())
    last = session.scalar(
        select(ThemeRefresh).where(ThemeRefresh.name == name).order_by(ThemeRefresh.id.desc())
    )
    return {
        "name": name,
        "title": theme.title,
        "class_code": theme.code,
        "refreshed_at": last.refreshed_at.isoformat() if last else None,
        "count": total,
        "columns": [{"name": c, "label": theme.columns.get(c, c)} for c in columns],
        "rows": [dict(zip(columns, [_plain(v) for v in row], strict=True)) for row in result],
    }
