"""Working days as the State Council's holiday notices set them: public holidays off, make-up
workdays (调休) on. The calendar comes from the maintained ``chinesecalendar`` package; for a year
it does not know yet, Monday to Friday stands in and the caller is told so."""

from __future__ import annotations

from datetime import date, timedelta

import chinese_calendar


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
