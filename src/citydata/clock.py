"""The city's time, for every layer: Changsha's zone, its day, and the one place the machine's
clock is read. Logic never asks the machine: it receives ``now`` (an aware UTC moment) or
``today`` (the city's day) from its caller — a page or API reads ``app.state.clock`` through
``web/clock.py``; a CLI command or the demo reads ``now()`` here once and passes it down. A UTC
server is a day behind Beijing from 00:00 to 08:00, so the day is always taken in the city's zone."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta, timezone

CITY_ZONE = timezone(timedelta(hours=8), "CST")  # China Standard Time, no daylight saving
CITY_OFFSET = timedelta(hours=8)


def wall_clock() -> float:
    """Seconds since the epoch from the machine: the only read of it in citydata."""
    return time.time()


def moment(seconds: float) -> datetime:
    """Seconds since the epoch as an aware UTC datetime."""
    return datetime.fromtimestamp(seconds, UTC)


def now() -> datetime:
    """The machine's moment, aware UTC — for a command's or the demo's default only."""
    return moment(wall_clock())


def city_day(at: datetime) -> date:
    """The day in Changsha of an aware moment."""
    return at.astimezone(CITY_ZONE).date()


def today() -> date:
    """The city's day on the machine's clock — for a command's or the demo's default only."""
    return city_day(now())


def city_midnight(day: date) -> datetime:
    """The aware UTC moment at which ``day`` begins in Changsha."""
    return datetime(day.year, day.month, day.day, tzinfo=CITY_ZONE).astimezone(UTC)
