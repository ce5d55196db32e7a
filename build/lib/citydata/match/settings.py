"""Match settings: which column identifies a record and how each compared column is compared.

A TOML file, e.g.::

    record_id = "rec_id"
    [columns]
    id_number = "identifier"
    name = "person_name"
    birth_date = "date"
    address = "address"
    phone = "phone"

Problems (an unknown kind, a column the inputs lack, a missing record id) are refused before any
work starts, naming the line of the file where the problem is."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

KINDS = {
    "identifier": "证件号码类：允许一位错误或相邻两位颠倒",
    "person_name": "人名：按字与按拼音（同音字）比较",
    "date": "日期：允许一位错误",
    "address": "地址：去掉省市前缀、全角转半角后比较相似度",
    "postcode": "邮政编码",
    "phone": "电话：只比较数字",
    "exact": "完全一致",
}


class SettingsError(ValueError):
    pass


@dataclass
class MatchSettings:
    record_id: str
    columns: dict[str, str]  # column -> kind
    match_threshold: float = 0.99  # match probability at or above: same entity
    review_threshold: float = 0.80  # between this and match_threshold: a person decides
    seed: int = 42
    source: str = ""  # the file it came from, for messages
    lines: dict[str, int] = field(default_factory=dict)

    def check_columns(self, available: list[str], where: str) -> None:
        """Every named column must exist in every input."""
        for name in [self.record_id, *self.columns]:
            if name not in available:
                line = self.lines.get(name)
                at = f"第 {line} 行" if line else ""
                raise SettingsError(
                    f"{self.source} {at}: 列「{name}」不在 {where} 中（有：{', '.join(available)}）"
                )


def _line_of(text: str, key: str) -> int | None:
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith((f"{key} ", f"{key}=", f'"{key}"')):
            return number
    return None


def parse_settings(text: str, source: str = "settings") -> MatchSettings:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{source}: 不是有效的 TOML：{exc}") from exc
    known = {"record_id", "columns", "match_threshold", "review_threshold", "seed"}
    for key in data:
        if key not in known:
            raise SettingsError(f"{source} 第 {_line_of(text, key)} 行: 未知的设置项「{key}」")
    if not isinstance(data.get("record_id"), str):
        raise SettingsError(f"{source}: 缺少 record_id（记录标识列）")
    columns = data.get("columns")
    if not isinstance(columns, dict) or not columns:
        raise SettingsError(f"{source}: 缺少 [columns]（要比较的列及其类型）")
    lines = {name: _line_of(text, name) for name in [data["record_id"], *columns]}
    for name, kind in columns.items():
        if kind not in KINDS:
            raise SettingsError(
                f"{source} 第 {lines[name]} 行: 列「{name}」的类型「{kind}」未知，可选：{'、'.join(KINDS)}"
            )
    settings = MatchSettings(data["record_id"], dict(columns), source=source, lines=lines)
    for key in ("match_threshold", "review_threshold"):
        if key in data:
            value = data[key]
            if not isinstance(value, int | float) or not 0 < value < 1:
                raise SettingsError(
                    f"{source} 第 {_line_of(text, key)} 行: {key} 必须在 0 与 1 之间"
                )
            setattr(settings, key, float(value))
    if settings.review_threshold > settings.match_threshold:
        raise SettingsError(f"{source}: review_threshold 不能高于 match_threshold")
    if "seed" in data:
        settings.seed = int(data["seed"])
    return settings


def load_settings(path: Path) -> MatchSettings:
    return parse_settings(path.read_text(encoding="utf-8"), path.name)
