"""How often the open-data API is called: per day and action, counted in memory on the API's path
(a lock and a dict, no write) and added to ``open_api_calls`` every few seconds by the server."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import date

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from citydata.db.engine import Store
from citydata.mechanisms import changes
from citydata.opendata.models import OpenApiCall


class ApiCalls:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[date, str]] = Counter()

    def add(self, day: date, action: str) -> None:
        with self._lock:
            self._counts[(day, action)] += 1

    def pending(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    def flush(self, store: Store) -> int:
        """Add what was counted since the last flush; returns how many calls. Counts that could
        not be written are kept for the next flush."""
        with self._lock:
            counts, self._counts = self._counts, Counter()
        if not counts:
            return 0
        try:
            with store.session() as session:
                for (day, action), n in sorted(counts.items()):
                    bump = (
                        update(OpenApiCall)
                        .where(OpenApiCall.day == day, OpenApiCall.action == action)
                        .values(calls=OpenApiCall.calls + n)
                    )
                    if not session.execute(bump).rowcount:
                        try:
                            with session.begin_nested():
                                session.add(OpenApiCall(day=day, action=action, calls=n))
                        except IntegrityError:  # another server process inserted it first
                            session.execute(bump)
                changes.mark(session, "opendata")
        except Exception:
            with self._lock:
                self._counts.update(counts)
            raise
        return sum(counts.values())
