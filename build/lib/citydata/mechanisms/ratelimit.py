"""Calls per key and minute, counted in this process in fixed windows: the sharing API's limit
per credential and the open data API's limit per IP address."""

from __future__ import annotations

import threading
import time

FORGET_AFTER = 100_000  # keys held before old windows are dropped: memory stays bounded


class MinuteWindows:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[int, int]] = {}  # key -> (minute, calls in it)

    def take(self, key: str, per_minute: int, now: float | None = None) -> int | None:
        """Count one call for ``key``: None when it may go on, else the seconds to wait (and
        nothing is counted)."""
        now = now or time.time()
        window = int(now // 60)
        with self._lock:
            if len(self._seen) > FORGET_AFTER:
                self._seen = {k: v for k, v in self._seen.items() if v[0] == window}
            seen_window, used = self._seen.get(key, (window, 0))
            if seen_window != window:
                used = 0
            if used >= per_minute:
                return 60 - int(now % 60)
            self._seen[key] = (window, used + 1)
        return None
