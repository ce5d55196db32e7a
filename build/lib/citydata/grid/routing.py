"""派遣规则 (``routing.toml``): declarative, first match wins, over category (a code or a 大类
prefix), district, cell, hour of day and weekday (Beijing time); no rule → the category's unit.
The rules are data so that the bureau changes them without a release."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from citydata.grid.sla import BEIJING, category

DEFAULT_RULE = "类别默认单位"


@dataclass(frozen=True)
class Rule:
    name: str
    unit: str
    categories: tuple[str, ...] = ()
    divisions: tuple[str, ...] = ()
    cells: tuple[str, ...] = ()
    hours: tuple[int, int] | None = None  # [from, to) Beijing hours; from > to wraps midnight
    weekdays: tuple[int, ...] = ()  # 1 = Monday

    def matches(self, code: str, division: str, cell: str, at: datetime) -> bool:
        local = at.astimezone(UTC) + BEIJING
        if self.categories and not any(code.startswith(c) for c in self.categories):
            return False
        if self.divisions and division not in self.divisions:
            return False
        if self.cells and cell not in self.cells:
            return False
        if self.weekdays and local.isoweekday() not in self.weekdays:
            return False
        if self.hours is not None:
            start, end = self.hours
            hour = local.hour
            inside = start <= hour < end if start < end else hour >= start or hour < end
            if not inside:
                return False
        return True


def parse(text: str) -> list[Rule]:
    rules = []
    for i, item in enumerate(tomllib.loads(text).get("rule", []), start=1):
        if not item.get("name") or not item.get("unit"):
            raise ValueError(f"派遣规则第 {i} 条须有 name 和 unit")
        hours = None
        if "hours" in item:
            start, _, end = str(item["hours"]).partition("-")
            if not (start.isdigit() and end.isdigit() and int(start) < 24 and int(end) <= 24):
                raise ValueError(f'派遣规则「{item["name"]}」的 hours 须形如 "22-06"')
            hours = (int(start), int(end))
        weekdays = tuple(int(d) for d in item.get("weekdays", []))
        if any(d < 1 or d > 7 for d in weekdays):
            raise ValueError(f"派遣规则「{item['name']}」的 weekdays 须在 1–7 之间")
        rules.append(
            Rule(
                item["name"],
                item["unit"],
                tuple(item.get("categories", [])),
                tuple(item.get("divisions", [])),
                tuple(item.get("cells", [])),
                hours,
                weekdays,
            )
        )
    return rules


@cache
def rules() -> list[Rule]:
    return parse(Path(__file__).with_name("routing.toml").read_text(encoding="utf-8"))


def route(code: str, division: str, cell: str, at: datetime) -> tuple[str, str]:
    """(unit, the rule's name) for an event of category ``code`` at a place and time."""
    for rule in rules():
        if rule.matches(code, division, cell, at):
            return rule.unit, rule.name
    found = category(code)
    if found is None:
        raise ValueError(f"未知的类别「{code}」")
    return found.unit, DEFAULT_RULE
