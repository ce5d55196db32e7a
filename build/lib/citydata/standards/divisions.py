"""GB/T 2260 administrative division codes, read from python-stdnum's maintained table.

stdnum ships every code with the years it was in use (``[1983-2017]宁乡县``), so retired codes
such as 430122 望城县 stay valid for ID numbers issued under them. Nothing here is typed by hand.

**Which code an ID number may carry.** Resident ID numbers were first issued in 1984–85 (15
digits, upgraded to 18 in 1999 with the same code), and a number keeps the code of the county
where it was first issued: it does not change when the county is renamed, merged or upgraded.
So a code is possible for a person born in year *y* when it was in use at some time between
the later of *y* and 1984, and today — a person born in 1945 in 芙蓉区 holds 430102 (in use
from 1983), one born in 2015 cannot hold 430122 (望城县, retired in 2011), and 430120 (长沙市市区,
retired in 1983) was never on any number. This is the one place the rule lives: the scalar
check, the vectorised checks and the 15→18 conversion all ask it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

import polars as pl

FIRST_YEAR, LAST_YEAR = 1850, 2100
FIRST_ISSUE = 1984  # the first resident ID numbers
YEARS = LAST_YEAR - FIRST_YEAR + 1
_PERIOD = re.compile(r"^\[(\d*)-(\d*)\](.+)$")


@dataclass(frozen=True)
class Division:
    code: str
    name: str
    province: str
    start: int | None  # first year in use, None when in use since before records
    end: int | None  # last year in use, None when still in use

    def in_use(self, year: int) -> bool:
        return (self.start is None or year >= self.start) and (self.end is None or year <= self.end)


@cache
def all_divisions() -> tuple[Division, ...]:
    text = resources.files("stdnum").joinpath("cn/loc.dat").read_text(encoding="utf-8")
    rows: list[Division] = []
    province_code = province = ""
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if not line.startswith(" "):
            province_code, rest = line.split(" ", 1)
            province = _quoted(rest, "province")
            continue
        suffix, rest = line.strip().split(" ", 1)
        code = province_code + suffix
        for part in _quoted(rest, "county").split(","):
            match = _PERIOD.match(part)
            if match:
                start, end, name = match.groups()
                rows.append(Division(code, name, province, _year(start), _year(end)))
            else:
                rows.append(Division(code, part, province, None, None))
    return tuple(rows)


def _year(text: str) -> int | None:
    return int(text) if text else None


def _quoted(text: str, key: str) -> str:
    _, found, rest = text.partition(f'{key}="')
    return rest.partition('"')[0] if found else ""


@cache
def by_code() -> dict[str, tuple[Division, ...]]:
    table: dict[str, list[Division]] = {}
    for division in all_divisions():
        table.setdefault(division.code, []).append(division)
    return {code: tuple(periods) for code, periods in table.items()}


def division_name(code: str, year: int | None = None) -> str | None:
    """The name of a division code, as it was in ``year`` (default: its latest name)."""
    periods = by_code().get(str(code).strip())
    if not periods:
        return None
    if year is None:
        return periods[-1].name
    for period in periods:
        if period.in_use(year):
            return period.name
    return None


def is_valid_division(code: str, year: int | None = None) -> bool:
    """Known code (in any period, or in use in ``year`` when given)."""
    if year is None:
        return str(code).strip() in by_code()
    return division_name(code, year) is not None


def divisions_frame() -> pl.DataFrame:
    return pl.DataFrame(
        [(d.code, d.name, d.province, d.start, d.end) for d in all_divisions()],
        schema=["code", "name", "province", "start", "end"],
        orient="row",
    )


@cache
def known_codes() -> pl.Series:
    return pl.Series("code", sorted(by_code()))


@cache
def last_years() -> dict[str, int]:
    """Each known code's last year in use (LAST_YEAR while still in use)."""
    last: dict[str, int] = {}
    for d in all_divisions():
        last[d.code] = max(last.get(d.code, FIRST_YEAR), d.end if d.end is not None else LAST_YEAR)
    return last


def issue_problem(code: str, birth_year: int) -> str | None:
    """Why no ID number of a person born in ``birth_year`` can carry ``code`` (None: it can)."""
    last = last_years().get(str(code).strip())
    if last is None:
        return f"{code}：不是有效的行政区划代码"
    if last < FIRST_ISSUE:
        return f"{code}：{last} 年后停用，早于首次发证"
    if last < birth_year:
        return f"{code}：{last} 年后停用，早于出生年份 {birth_year}"
    return None


def issuable(code: str, birth_year: int) -> bool:
    """Could a number of a person born in ``birth_year`` carry ``code``? (see the module)"""
    return issue_problem(code, birth_year) is None


@cache
def last_year_frame() -> pl.DataFrame:
    """code (Int64) → last year in use, for the vectorised checks."""
    found = last_years()
    return pl.DataFrame(
        {"code": [int(c) for c in found], "last": list(found.values())},
        schema={"code": pl.Int64, "last": pl.Int64},
    )
