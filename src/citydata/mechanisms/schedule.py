"""Scheduled work that runs once across every worker and machine.

Each kind of job has a row in ``scheduled_jobs``. Every server process looks, about once a
second, for jobs that are due; a round belongs to the process whose conditional UPDATE moved
the row's ``due_at`` on (``… WHERE due_at <= now AND running_until is past``) — the others'
UPDATE finds nothing to change. The winner holds a lease (``running_until``) while it runs, so
a round that overruns its interval is not started twice, and a runner that died is replaced
when its lease runs out.

A row rather than PostgreSQL's advisory locks: a lock says only that one process runs a job at
a time, not that a round runs once (four workers taking turns would each run it); the row
also says when each job last ran, how it went and who ran it, for the operator and the metrics,
and it works alike on SQLite, where a command-line process may run beside the server."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import bindparam, or_, select, update

from citydata.clock import CITY_ZONE
from citydata.db.base import as_utc
from citydata.db.engine import Store
from citydata.db.upsert import insert_new
from citydata.mechanisms.models import ScheduledJob

HOLDER = f"{socket.gethostname()}:{os.getpid()}"[:80]


@dataclass(frozen=True)
class Job:
    """``run(now)`` every ``every`` — or each day at ``at`` in the city — once everywhere.
    It returns a line saying what it did, kept as the row's outcome."""

    name: str
    run: Callable[[datetime], str]
    every: timedelta = timedelta(days=1)
    at: time | None = None  # the city's time of day, for daily work
    lease: timedelta = timedelta(minutes=15)

    def next_due(self, now: datetime) -> datetime:
        if self.at is None:
            return now + self.every
        local = now.astimezone(CITY_ZONE)
        due = datetime.combine(local.date(), self.at, CITY_ZONE)
        while due <= local:
            due += self.every
        return due.astimezone(now.tzinfo)


_t = ScheduledJob.__table__
_CLAIM = (
    update(_t)
    .where(
        _t.c.name == bindparam("n"),
        _t.c.due_at <= bindparam("now"),
        or_(_t.c.running_until.is_(None), _t.c.running_until <= bindparam("now")),
    )
    .values(
        due_at=bindparam("next"),
        running_until=bindparam("until"),
        holder=bindparam("holder"),
        started_at=bindparam("now"),
    )
)


def claim(store: Store, job: Job, now: datetime, holder: str = HOLDER) -> bool:
    """Whether this process runs ``job``'s round that is due at ``now``. A job seen for the
    first time is first due at its next time."""
    params = {
        "n": job.name,
        "now": now,
        "next": job.next_due(now),
        "until": now + job.lease,
        "holder": holder,
    }
    with store.engine.begin() as conn:
        if conn.execute(_CLAIM, params).rowcount:
            return True
        insert_new(
            conn,
            _t,
            {
                "name": job.name,
                "due_at": job.next_due(now),
                "holder": "",
                "runs": 0,
                "failures": 0,
                "outcome": "",
            },  # fmt: skip
        )
    return False


def poke(store: Store, job: Job, at: datetime) -> None:
    """Make ``job``'s next round due at ``at`` (data it works on has changed): whichever process
    looks next runs it, once."""
    with store.engine.begin() as conn:
        moved = conn.execute(
            update(_t).where(_t.c.name == job.name, _t.c.due_at > at).values(due_at=at)
        ).rowcount
        if not moved:
            insert_new(conn, _t, {"name": job.name, "due_at": at, "holder": "", "runs": 0,
                                  "failures": 0, "outcome": ""})  # fmt: skip


def finish(
    store: Store, job: Job, now: datetime, outcome: str, ok: bool, holder: str = HOLDER
) -> None:
    with store.engine.begin() as conn:
        conn.execute(
            update(_t)
            .where(_t.c.name == job.name, _t.c.holder == holder)
            .values(
                running_until=None,
                finished_at=now,
                outcome=outcome[:2000],
                runs=_t.c.runs + 1,
                failures=_t.c.failures + (0 if ok else 1),
            )
        )


def run(store: Store, job: Job, now: datetime, holder: str = HOLDER) -> tuple[bool, str]:
    """Run a claimed round and record how it went; a failure is recorded, never raised (the
    next round comes all the same)."""
    try:
        outcome, ok = job.run(now) or "", True
    except Exception as exc:  # noqa: BLE001 — a failed round is the row's outcome
        outcome, ok = f"{type(exc).__name__}: {exc}", False
    finish(store, job, now, outcome, ok, holder)
    return ok, outcome


def run_due(
    store: Store, jobs: Iterable[Job], now: datetime, holder: str = HOLDER
) -> list[tuple[str, bool, str]]:
    """Every job due at ``now`` that this process wins, run one after another."""
    done = []
    for job in jobs:
        if claim(store, job, now, holder):
            done.append((job.name, *run(store, job, now, holder)))
    return done


def status(store: Store) -> list[dict[str, Any]]:
    """Each job's row: when it is due, when it last ran, how, by whom."""
    with store.engine.connect() as conn:
        rows = conn.execute(select(_t).order_by(_t.c.name)).mappings().all()
    return [
        {
            **dict(r),
            **{k: as_utc(r[k]) for k in ("due_at", "running_until", "started_at", "finished_at")},
        }
        for r in rows
    ]
