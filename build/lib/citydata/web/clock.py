"""The app's clock as pages and APIs read it: ``app.state.clock`` (seconds since the epoch, fixed
in tests), never the machine's. The city's day is Beijing's: a case filed at 01:00 in Changsha
belongs to that day, not to the previous one in UTC."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

from fastapi import Request

CITY_ZONE = timezone(timedelta(hours=8), "CST")


def now(request: Request) -> datetime:
    """The app's moment, timezone-aware UTC."""
    return datetime.fromtimestamp(request.app.state.clock(), UTC)


def today(request: Request) -> date:
    """The app's day in the city."""
    return now(request).astimezone(CITY_ZONE).date()
