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
# The spatial base holds areas of three levels (its ``level`` attribute), each keyed by its code:
# a district's 6-digit GB/T 2260 code, a street's 9-digit 统计用区划代码, a cell's 14-digit GB/T
# 30428.1 code. Points (components, events) are joined to its cells.
SPATIAL_LEVELS = {"district": "区县", "street": "乡镇街道", "cell": "单元网格"}


class SpecError(ValueError):
    pass


@dataclass(frozen=True)
class BaseSpec:
    code: str
    name: str
    keys: tuple[str, ...]  # one attribute, or several that together identify a record
    key_rule: str
    attributes: dict[str, str]  # attribute -> match kind
    authority: tuple[str, ...]  # class codes, most trusted first
    classes: tuple[str, ...] = ()  # when set, only these classes feed the base
    links: tuple[tuple[str, str], ...] = ()  # (attribute holding a key, base whose master it names)
    locate: tuple[str, str] | None = None  # (longitude, latitude) attributes: spatial join
    # The base itself as a catalog class, so departments apply for it like any other:
    # class_code, owner (unit), share_type, share_condition, open_type.
    catalog: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> str:
        return self.keys[0]

    @property
    def class_code(self) -> str | None:
        """The base's own catalog class (人口基础库 101001/00000)."""
        return dict(self.catalog).get("class_code")


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
        unknown = set(body) - {
            "name",
            "key",
            "key_rule",
            "attributes",
            "authority",
            "classes",
            "links",
            "locate",
            "catalog",
        }
        if unknown:
            raise SpecError(f"{where}: 未知的设置项 {'、'.join(sorted(unknown))}")
        attributes = body.get("attributes") or {}
        for attribute, kind in attributes.items():
            if kind not in KINDS:
                raise SpecError(
                    f"{source} 第 {_line(text, f'{attribute} = ')} 行: 属性「{attribute}」的类型「{kind}」未知，"
                    f"可选：{'、'.join(KINDS)}"
                )
        keys = body.get("key")
        keys = tuple(keys) if isinstance(keys, list) else (keys,)
        if not keys or any(k not in attributes for k in keys):
            raise SpecError(f"{where}: key「{body.get('key')}」必须是 attributes 中的属性")
        if body.get("key_rule") not in KEY_RULES or (
            len(keys) > 1 and body["key_rule"] != "present"
        ):
            raise SpecError(
                f"{where}: key_rule 必须是 {'、'.join(KEY_RULES)} 之一（组合主键只能用 present）"
            )
        links = body.get("links", {})
        for attribute, target in links.items():
            if attribute not in attributes or target not in data:
                raise SpecError(
                    f"{source} 第 {_line(text, f'{attribute} = ')} 行: 关联「{attribute} = {target}」应为本库属性 = 已设置的基础库"
                )
        locate = body.get("locate")
        if locate is not None and (len(locate) != 2 or any(a not in attributes for a in locate)):
            raise SpecError(f"{where}: locate 应为 [经度属性, 纬度属性]")
        catalog = body.get("catalog", {})
        missing = {"class_code", "owner", "share_type"} - set(catalog)
        if catalog and (missing or catalog["share_type"] not in vocab.SHARE_TYPE):
            raise SpecError(
                f"{where}: catalog 需要 class_code、owner、share_type（{'、'.join(vocab.SHARE_TYPE)}）"
            )
        specs[code] = BaseSpec(
            code,
            body.get("name", vocab.BASE_DB[code]),
            keys,
            body["key_rule"],
            dict(attributes),
            tuple(body.get("authority", ())),
            tuple(body.get("classes", ())),
            tuple(links.items()),
            tuple(locate) if locate else None,
            tuple(catalog.items()),
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


def base_for_class(class_code: str) -> BaseSpec | None:
    """The base database whose own catalog class ``class_code`` is (人口基础库 101001/00000)."""
    return next((b for b in specs().values() if b.class_code == class_code), None)
