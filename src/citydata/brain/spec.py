"""The cockpit's tiles, declared as data: each file in ``tiles/`` is a section (数据归集, 基础库 …)
with its tiles in order, and each tile names its summary query, its chart kind, its drill-down
target, who may see it, the one sentence that defines its figure, the data it is computed from
(the topics whose change makes it stale) and, where time alone changes it, how often it is
recomputed. The page, the JSON, the big screen, the CLI and the tests all read these; a new
tile is one declaration and one query function (Superset's chart = query + visualisation)."""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

from citydata.mechanisms.changes import TOPICS

TILES_DIR = Path(__file__).with_name("tiles")
# How each kind is drawn (web/static/charts.js turns a payload of that kind into a chart).
CHARTS = {
    "figures": "数字",
    "progress": "进度条",
    "bar": "柱状图",
    "hbar": "条形图",
    "stack": "堆叠柱状图",
    "line": "折线图",
    "pie": "饼图",
    "sankey": "桑基图",
    "map": "地图",
    "table": "表格",
}
# The payload each kind draws from: kinds of one shape may be swapped in a declaration.
SHAPES = {
    "figures": "figures",
    "progress": "figures",
    "bar": "series",
    "hbar": "series",
    "stack": "series",
    "line": "series",
    "pie": "items",
    "sankey": "flow",
    "map": "regions",
    "table": "rows",
}
PERMISSIONS = {
    "public": "公众",
    "staff": "各单位工作人员",
    "audit": "管理员与审计员",
    "admin": "管理员",
}
SCREEN = ("left", "center", "right")  # the big screen's columns
SCOPES = ("city", "unit")  # unit: a unit's staff see their own unit's part only
# Topics that are not marked by a domain but read from their own head (the audit chain's).
WATERMARKS = {"audit": "共享审计链"}
REQUIRED = ("name", "title", "definition", "chart", "query", "permission")
OPTIONAL = ("topics", "drill", "refresh", "screen", "scope", "wide", "enabled", "note", "figures")
DURATION = re.compile(r"^(\d+)(s|m|h|d)$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class TileError(ValueError):
    pass


@dataclass(frozen=True)
class Tile:
    name: str
    section: str
    title: str
    definition: str
    chart: str
    query: str
    permission: str
    topics: tuple[str, ...] = ()
    drill: str | dict[str, str] = ""
    refresh: timedelta | None = None  # recomputed at least this often, whatever changed
    screen: str = ""  # the big screen's column; "" = not on it
    scope: str = "city"
    wide: bool = False
    note: str = ""
    figures: dict[str, str] = field(default_factory=dict)  # each figure's one-sentence definition
    digest: str = field(default="", compare=False)

    @property
    def public(self) -> bool:
        return self.permission == "public"

    def drill_for(self, key: str = "") -> str:
        """The drill-down target of a figure (by its key) or of the whole tile."""
        if isinstance(self.drill, dict):
            return self.drill.get(key, "")
        return self.drill


@dataclass(frozen=True)
class Section:
    name: str
    title: str
    order: int
    tiles: tuple[Tile, ...]


def _duration(text: str, where: str) -> timedelta:
    found = DURATION.match(text)
    if not found:
        raise TileError(f"{where}: refresh「{text}」应为数字加 s/m/h/d，如 30m")
    return timedelta(**{UNITS[found.group(2)]: int(found.group(1))})


def parse_tile(section: str, entry: dict[str, Any], where: str) -> Tile | None:
    """One ``[[tile]]`` table, checked: every problem names the file, the tile and the key."""
    name = entry.get("name", "?")
    at = f"{where} 的 tile「{name}」"
    missing = [k for k in REQUIRED if not entry.get(k)]
    unknown = sorted(set(entry) - set(REQUIRED) - set(OPTIONAL))
    if missing or unknown:
        raise TileError(f"{at}: 缺少 {'、'.join(missing) or '—'}；未知 {'、'.join(unknown) or '—'}")
    if not re.fullmatch(r"[a-z][a-z0-9_]{1,62}", name):
        raise TileError(f"{at}: name 只能是小写字母、数字和下划线")
    if entry["chart"] not in CHARTS:
        raise TileError(f"{at}: chart「{entry['chart']}」应为 {'、'.join(CHARTS)} 之一")
    if entry["permission"] not in PERMISSIONS:
        raise TileError(f"{at}: permission 应为 {'、'.join(PERMISSIONS)} 之一")
    topics = tuple(entry.get("topics", ()))
    wrong = sorted(set(topics) - set(TOPICS) - set(WATERMARKS))
    if wrong:
        raise TileError(
            f"{at}: 未知的数据主题 {wrong}（可选：{'、'.join([*TOPICS, *WATERMARKS])}）"
        )
    refresh = _duration(entry["refresh"], at) if "refresh" in entry else None
    if not topics and refresh is None:
        raise TileError(f"{at}: 须写明 topics（数据变化时刷新）或 refresh（定时刷新）")
    screen = entry.get("screen", "")
    if screen and screen not in SCREEN:
        raise TileError(f"{at}: screen 应为 {'、'.join(SCREEN)} 之一")
    scope = entry.get("scope", "city")
    if scope not in SCOPES:
        raise TileError(f"{at}: scope 应为 {'、'.join(SCOPES)} 之一")
    drill = entry.get("drill", "")
    if not isinstance(drill, str | dict) or (
        isinstance(drill, dict) and not all(isinstance(v, str) for v in drill.values())
    ):
        raise TileError(f"{at}: drill 应为一个地址模板，或「数字 = 地址」的表")
    for target in drill.values() if isinstance(drill, dict) else [drill]:
        if target and not target.startswith("/"):
            raise TileError(f"{at}: drill「{target}」应是本站地址（以 / 开头）")
    figures = entry.get("figures", {})
    if not isinstance(figures, dict) or not all(isinstance(v, str) for v in figures.values()):
        raise TileError(f"{at}: figures 应为「数字 = 一句话定义」的表")
    if entry.get("enabled", True) is False:
        return None  # declared, not shown: a slot for a figure another part will provide
    digest = hashlib.sha256(json.dumps(entry, sort_keys=True).encode()).hexdigest()
    return Tile(
        name=name,
        section=section,
        title=entry["title"],
        definition=entry["definition"],
        chart=entry["chart"],
        query=entry["query"],
        permission=entry["permission"],
        topics=topics,
        drill=drill,
        refresh=refresh,
        screen=screen,
        scope=scope,
        wide=bool(entry.get("wide", False)),
        note=entry.get("note", ""),
        figures=figures,
        digest=digest,
    )


def parse_section(name: str, text: str) -> Section:
    where = f"brain/tiles/{name}.toml"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TileError(f"{where}: 不是有效的 TOML：{exc}") from exc
    head = data.get("section", {})
    if not head.get("title") or not isinstance(head.get("order"), int):
        raise TileError(f"{where}: 须有 [section]，写明 title 与 order")
    tiles = [parse_tile(name, t, where) for t in data.get("tile", [])]
    return Section(name, head["title"], head["order"], tuple(t for t in tiles if t))


@cache
def sections() -> tuple[Section, ...]:
    found = [
        parse_section(path.stem, path.read_text(encoding="utf-8"))
        for path in sorted(TILES_DIR.glob("*.toml"))
    ]
    found.sort(key=lambda s: s.order)
    names = [t.name for s in found for t in s.tiles]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise TileError(f"brain/tiles: tile 名称重复 {twice}")
    return tuple(found)


def tiles() -> dict[str, Tile]:
    return {t.name: t for s in sections() for t in s.tiles}


def tile(name: str) -> Tile:
    try:
        return tiles()[name]
    except KeyError:
        raise TileError(f"没有名为「{name}」的指标卡") from None
