"""GB/T 2260 administrative division codes, read from python-stdnum's maintained table.

stdnum ships every code with the years it was in use (``[1983-2017]宁乡县``), so retired codes
such as 430122 望城县 stay valid for ID numbers issued under them. Nothing here is typed by hand.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np
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
def _in_use_table() -> tuple[np.ndarray, np.ndarray]:
    """(the row of each six-digit code in the table, -1 if unknown; the table: a row per known
    code, True in the columns of the years from FIRST_YEAR it was in use, as ``code_year_keys``
    has them). About 6 MB, built once per process from the periods in a few milliseconds; a
    lookup is two array reads."""
    periods = divisions_frame().select(
        pl.col("code").cast(pl.Int64),
        pl.col("start").fill_null(FIRST_YEAR).clip(FIRST_YEAR, LAST_YEAR) - FIRST_YEAR,
        pl.col("end").fill_null(LAST_YEAR).clip(FIRST_YEAR, LAST_YEAR) - FIRST_YEAR + 1,
    )
    code, start, stop = (periods[c].to_numpy() for c in ("code", "start", "end"))
    known = np.unique(code)
    row = np.full(1_000_000, -1, dtype=np.int32)
    row[known] = np.arange(len(known), dtype=np.int32)
    change = np.zeros((len(known), YEARS + 1), dtype=np.int32)  # +1 where a period starts, -1 after
    np.add.at(change, (row[code], start), 1)
    np.add.at(change, (row[code], stop), -1)
    return row, change.cumsum(axis=1)[:, :YEARS] > 0


def in_use(code: np.ndarray, year: np.ndarray) -> np.ndarray:
    """Whether each division ``code`` was in use in ``year`` (False for an unknown code or a
    year outside FIRST_YEAR..LAST_YEAR), as ``code_year_keys`` says."""
    row, table = _in_use_table()
    found = row[np.clip(code, 0, len(row) - 1)]
    dated = (year >= FIRST_YEAR) & (year <= LAST_YEAR)
    hit = table[np.maximum(found, 0), np.clip(year - FIRST_YEAR, 0, YEARS - 1)]
    return (found >= 0) & dated & hit & (code >= 0) & (code < len(row))


@cache
def known_codes() -> pl.Series:
    return pl.Series("code", sorted(by_code()))
