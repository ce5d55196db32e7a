"""GB/T 2260 administrative division codes, read from python-stdnum's maintained table.

stdnum ships every code with the years it was in use (``[1983-2017]宁乡县``), so retired codes
such as 430122 望城县 stay valid for ID numbers issued under them. Nothing here is typed by hand.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

import polars as pl

FIRST_YEAR, LAST_YEAR = 1850, 2100
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
def code_year_keys() -> pl.Series:
    """Every (code, year) pair in use, as code*10000+year: lets a vectorised ID check ask
    'was this division in use in the birth year?' with one hash lookup per row."""
    frame = divisions_frame().with_columns(
        pl.col("code").cast(pl.Int64),
        pl.col("start").fill_null(FIRST_YEAR).clip(FIRST_YEAR, LAST_YEAR),
        pl.col("end").fill_null(LAST_YEAR).clip(FIRST_YEAR, LAST_YEAR),
    )
    keys = frame.select(
        (pl.col("code") * 10000 + pl.int_ranges("start", pl.col("end") + 1)).alias("key")
    ).explode("key")
    return keys["key"].unique().sort()


@cache
def known_codes() -> pl.Series:
    return pl.Series("code", sorted(by_code()))
