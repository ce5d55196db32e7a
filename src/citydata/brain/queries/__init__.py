"""The summary queries the tiles name (``query = "aggregation.targets"``): each reads its domain's
tables (or the domain's own figures, as ``services.metrics`` and ``grid.assessment`` compute
them) and returns the payload its chart draws — names for the eye, codes as keys. A refresh
round shares one ``Context``, so tiles over the same rows (the cases, the events) read them
once."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, literal_column
from sqlalchemy.orm import Session

from citydata.clock import city_day, city_midnight

Payload = dict[str, Any]
Query = Callable[["Context"], Payload]
MODULES = ("aggregation", "bases", "sharing", "opendata", "services", "grid", "ops", "geo")
DAYS = 30  # the window of the per-day tiles, ending on the city's today

_registry: dict[str, Query] = {}
_loading = threading.Lock()
_loaded = False


def query(name: str) -> Callable[[Query], Query]:
    def register(fn: Query) -> Query:
        _registry[name] = fn
        return fn

    return register


def find(name: str) -> Query:
    global _loaded
    with _loading:  # a request and the refresher may ask at once: all modules, once
        if not _loaded:
            for module in MODULES:
                importlib.import_module(f"citydata.brain.queries.{module}")
            _loaded = True
    try:
        return _registry[name]
    except KeyError:
        raise LookupError(f"没有名为「{name}」的汇总查询") from None


@dataclass
class Context:
    """What every query of one refresh round is given: the session, the app's moment and the
    city's day, and a cache of what several tiles read."""

    session: Session
    now: datetime
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def today(self) -> date:
        return city_day(self.now)

    def shared(self, key: str, load: Callable[[], Any]) -> Any:
        if key not in self.cache:
            self.cache[key] = load()
        return self.cache[key]

    def days(self, n: int = DAYS) -> list[date]:
        """The last ``n`` city days, ending today."""
        return [self.today - timedelta(days=n - 1 - i) for i in range(n)]

    def since(self, n: int = DAYS) -> datetime:
        """The moment the first of the last ``n`` city days began."""
        return city_midnight(self.days(n)[0])

    def city_date(self, column: Any) -> Any:
        """SQL for the city's day (Beijing, UTC+8) of a stored UTC moment, as ``YYYY-MM-DD``."""
        if self.session.get_bind().dialect.name == "postgresql":
            # the UTC wall time, whatever the connection's TimeZone, then eight hours on
            shifted = func.timezone("UTC", column) + literal_column("interval '8 hours'")
            return func.to_char(shifted, "YYYY-MM-DD")
        return func.date(column, "+8 hours")


def day_labels(days: list[date]) -> tuple[list[str], list[str]]:
    """Visible labels (月-日) and keys (ISO days) of a run of days."""
    return [d.strftime("%m-%d") for d in days], [d.isoformat() for d in days]


def top(counts: dict[str, float], n: int) -> list[str]:
    return [k for k, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]
