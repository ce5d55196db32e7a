"""Working days as the State Council's holiday notices set them: public holidays off, make-up
workdays (调休) on. The calendar comes from the maintained ``chinesecalendar`` package; for a year
it does not know yet, Monday to Friday stands in and the caller is told so."""

from __future__ import annotations

from datetime import date, timedelta
from functools import cache

import chinese_calendar
import numpy as np
import polars as pl


def is_workday(day: date) -> tuple[bool, bool]:
    """(is it a working day, does the official calendar know that year)."""
    try:
        return chinese_calendar.is_workday(day), True
    except NotImplementedError:
        return day.weekday() < 5, False


def add_workdays(start: date, days: int) -> tuple[date, bool]:
    """The ``days``-th working day after ``start`` (start itself not counted), and whether every
    day on the way was in the official calendar."""
    day, left, known = start, days, True
    while left > 0:
        day += timedelta(days=1)
        working, in_calendar = is_workday(day)
        known = known and in_calendar
        left -= working
    return day, known


# ---------------------------------------------------------------- many dates at once
# Case metrics count working days for millions of cases: a calendar of working-day numbers,
# built once, turns "working days between" into two array reads.

FIRST, LAST = date(2000, 1, 1), date(2060, 12, 31)


@cache
def _numbers() -> np.ndarray:
    """For each day from FIRST, how many working days there have been up to and including it."""
    span = (LAST - FIRST).days + 1
    working = np.fromiter(
        (is_workday(FIRST + timedelta(days=i))[0] for i in range(span)), dtype=np.int32, count=span
    )
    return np.cumsum(working)


def _offsets(days: pl.Series) -> np.ndarray:
    epoch_days = days.cast(pl.Date).cast(pl.Int64).to_numpy()  # days since 1970-01-01
    offsets = epoch_days - (FIRST - date(1970, 1, 1)).days
    if len(offsets) and (offsets.min() < 0 or offsets.max() > (LAST - FIRST).days):
        raise ValueError(f"日期须在 {FIRST}–{LAST} 之间")
    return offsets


def workday_numbers(days: pl.Series) -> pl.Series:
    """The working-day number of each date (working days since FIRST up to and including it):
    ``number(b) - number(a)`` is the working days after ``a`` up to ``b``."""
    return pl.Series(days.name, _numbers()[_offsets(days)], dtype=pl.Int32)


def workdays_between(start: date, end: date) -> int:
    """Working days after ``start`` up to and including ``end`` (0 when end <= start)."""
    table = _numbers()
    return max(0, int(table[(end - FIRST).days] - table[(start - FIRST).days]))


@cache
def _working_offsets() -> np.ndarray:
    """The offsets from FIRST of the working days, in order: the k-th working day is [k - 1]."""
    numbers = _numbers()
    return np.flatnonzero(np.diff(numbers, prepend=0) == 1)


def add_workdays_many(days: pl.Series, counts: pl.Series | np.ndarray) -> pl.Series:
    """``add_workdays`` for many dates at once: the n-th working day after each date (the date
    itself when n is 0)."""
    n = np.asarray(counts, dtype=np.int64)
    offsets = _offsets(days)
    target = _numbers()[offsets].astype(np.int64) + n
    working = _working_offsets()
    if len(target) and target.max() > len(working):
        raise ValueError(f"日期须在 {FIRST}–{LAST} 之间")
    moved = working[np.maximum(target - 1, 0)]
    result = np.where(n > 0, moved, offsets)
    return pl.Series(days.name, np.datetime64(FIRST) + result.astype("timedelta64[D]")).cast(
        pl.Date
    )
