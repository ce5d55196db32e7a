"""The declarative description of each base database (bases.toml): its key, its attributes and
their match kinds, and which sources are trusted first. Checked before any work starts."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from citydata.catalog import vocab
from citydata.match.settings import KINDS

BASES_FILE = Path(__file__).with_name("bases.toml")
KEY_RULES = ("id_number", "credit_code", "present")


class SpecError(ValueError):
    pass


@dataclass(frozen=True)
class BaseSpec:
    code: str
    name: str
    key: str
    key_rule: str
    attributes: dict[str, str]  # attribute -> match kind
    authority: tuple[str, ...]  # class codes, most trusted first


def _line(text: str, needle: str) -> int | None:
    return next((n for n, line in enumerate(text.splitlines(), 1) if needle in line), None)


def parse_specs(text: str, source: str = "bases.toml") -> dict[str, BaseSpec]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{source}: 不是有效的 TOML：{exc}") from exc
    specs = {}
    for code, body in data.items():
        where = f"{source} 第 {_line(text, f'[{code}]')} 行"
        if code not in vocab.BASE_DB or code == "none":
            raise SpecError(f"{where}: 未知的基础库「{code}」，可选：{'、'.join(vocab.BASE_DB)}")
        unknown = set(body) - {"name", "key", "key_rule", "attributes", "authority"}
        if unknown:
            raise SpecError(f"{where}: 未知的设置项 {'、'.join(sorted(unknown))}")
        attributes = body.get("attributes") or {}
        for attribute, kind in attributes.items():
            if kind not in KINDS:
                raise SpecError(
                    f"{source} 第 {_line(text, f'{attribute} = ')} 行: 属性「{attribute}」的类型「{kind}」未知，"
                    f"可选：{'、'.join(KINDS)}"
                )
        if body.get("key") not in attributes:
            raise SpecError(f"{where}: key「{body.get('key')}」必须是 attributes 中的一个属性")
        if body.get("key_rule") not in KEY_RULES:
            raise SpecError(f"{where}: key_rule 必须是 {'、'.join(KEY_RULES)} 之一")
        specs[code] = BaseSpec(
            code,
            body.get("name", vocab.BASE_DB[code]),
            body["key"],
            body["key_rule"],
            dict(attributes),
            tuple(body.get("authority", ())),
        )
    return specs


@cache
def specs() -> dict[str, BaseSpec]:
    return parse_specs(BASES_FILE.read_text(encoding="utf-8"))


def spec(code: str) -> BaseSpec:
    known = specs()
    if code not in known:
        raise SpecError(f"基础库「{code}」没有解析设置；已设置：{'、'.join(known)}")
    return known[code]
