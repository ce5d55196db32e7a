"""Calls per key and window, counted exactly however many processes serve: the sharing API's
limits per credential, the open data API's limit per IP address, Open311's per key.

Two counters answer the same ``take``:

- ``MinuteWindows`` counts in this process under a lock. Exact where one process serves:
  SQLite, whose installation is one server process (``citydata serve`` refuses more there).
- ``SharedWindows`` counts in ``rate_windows``, one row per scope and key, moved by one
  conditional UPDATE (``… SET used = used + 1 WHERE used < limit``). A read-then-write would let
  two processes both see 99 of 100 under PostgreSQL's READ COMMITTED and answer 101; the UPDATE
  holds the row's lock, and the second re-checks its WHERE on the first's new row, so the last
  call of a window goes to exactly one of them. Redis would do the same with one more service
  to run; the database is already there and already shared.

``windows(store, scope)`` gives the shared counter on PostgreSQL and the process's on SQLite.
Windows are fixed: whole ``length`` seconds since the epoch, shifted by ``offset`` (a city's day
starts at its own midnight)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Connection, and_, bindparam, case, delete, select, update

from citydata.db.engine import Store
from citydata.db.upsert import insert_new
from citydata.mechanisms.models import RateWindow

FORGET_AFTER = 100_000  # keys held before old windows are dropped: memory stays bounded
MINUTE = 60


class Windows(Protocol):
    def take(self, key: str, per_minute: int, now: float | None = None) -> int | None: ...


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


# ---------------------------------------------------------------- counted in the database


@dataclass(frozen=True)
class Window:
    """One limit to take a call from: ``limit`` calls per ``length`` seconds of ``scope``."""

    scope: str
    key: str
    limit: int
    length: int = MINUTE
    offset: int = 0  # seconds added to the epoch's time before cutting it into windows
    seed: Callable[[Connection], int] | None = None  # calls made before the window had a row

    def start(self, now: float) -> int:
        """The window's first second (since the epoch): which window ``now`` falls in."""
        return int((now + self.offset) // self.length) * self.length - self.offset

    def wait(self, now: float) -> int:
        """Seconds until the next window opens."""
        return max(1, self.length - int((now + self.offset) % self.length))


_t = RateWindow.__table__
_SAME = and_(_t.c.scope == bindparam("s"), _t.c.key == bindparam("k"))
# One statement decides and counts: a new window starts at 1, the current one counts on only
# below its limit. RETURNING says whether this call got in.
_TAKE = (
    update(_t)
    .where(_SAME, (_t.c.window_start != bindparam("w")) | (_t.c.used < bindparam("limit")))
    .values(
        used=case((_t.c.window_start == bindparam("w"), _t.c.used + 1), else_=1),
        window_start=bindparam("w"),
    )
    .returning(_t.c.used)
)
_GIVE_BACK = (
    update(_t)
    .where(_SAME, _t.c.window_start == bindparam("w"), _t.c.used > 0)
    .values(used=_t.c.used - 1)
)
_EXISTS = select(_t.c.used).where(_SAME)


def take_one(conn: Connection, window: Window, now: float) -> bool:
    """Count one call in ``window`` in the connection's transaction; False when it is full."""
    if window.limit <= 0:
        return False
    params = {"s": window.scope, "k": window.key[:200], "w": window.start(now)}
    for _ in range(2):  # a second time only when another process made the row meanwhile
        if conn.execute(_TAKE, {**params, "limit": window.limit}).first() is not None:
            return True
        if conn.execute(_EXISTS, params).first() is not None:
            return False
        used = min(window.seed(conn), window.limit) if window.seed else 0
        row = {"scope": params["s"], "key": params["k"], "window_start": params["w"]}
        if insert_new(conn, _t, {**row, "used": used + 1 if used < window.limit else used}):
            return used < window.limit
    return False


def take(store: Store, windows: Sequence[Window], now: float) -> Window | None:
    """One call counted in every window at once, or in none: None when it may go on, else the
    first window that is full. One short transaction of its own, so no row stays locked while
    the call is answered."""
    with store.engine.connect() as conn:
        for window in windows:
            if not take_one(conn, window, now):
                conn.rollback()  # the windows already counted in give their call back
                return window
        conn.commit()
    return None


def give_back(store: Store, window: Window, now: float) -> None:
    """Uncount a call taken in ``window`` (a call refused by a later check)."""
    with store.engine.begin() as conn:
        params = {"s": window.scope, "k": window.key[:200], "w": window.start(now)}
        conn.execute(_GIVE_BACK, params)


def forget(conn: Connection, before: float) -> int:
    """Drop the rows of windows that began before ``before`` (addresses seen once)."""
    return conn.execute(delete(_t).where(_t.c.window_start < int(before))).rowcount


class SharedWindows:
    """``MinuteWindows``' interface, counted in the database for every process at once."""

    def __init__(self, store: Store, scope: str):
        self.store, self.scope = store, scope

    def take(self, key: str, per_minute: int, now: float | None = None) -> int | None:
        now = now or time.time()
        full = take(self.store, [Window(self.scope, key, per_minute)], now)
        return None if full is None else full.wait(now)


def shared(store: Store) -> bool:
    """Whether this store's limits must be counted in the database: several processes may
    serve it. SQLite's installation is one process, whose own counts are exact and cheaper."""
    return store.engine.dialect.name != "sqlite"


def windows(store: Store, scope: str) -> Windows:
    return SharedWindows(store, scope) if shared(store) else MinuteWindows()
