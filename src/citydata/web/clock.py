"""The app's clock as pages and APIs read it: ``app.state.clock`` (seconds since the epoch, fixed
in tests), never the machine's. The city's day is Beijing's: a case filed at 01:00 in Changsha
belongs to that day, not to the previous one in UTC."""

from __future__ import annotations

from datetime import date, datetime

from fastapi import Request

from citydata.clock import CITY_ZONE, city_day, moment

__all__ = ["CITY_ZONE", "now", "today"]


def now(request: Request) -> datetime:
    """The app's moment, timezone-aware UTC."""
    return moment(request.app.state.clock())


def today(request: Request) -> date:
    """The app's day in the city."""
    return city_day(now(request))
