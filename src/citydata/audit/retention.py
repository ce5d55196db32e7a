"""Retention of the audit log, and its partitions on PostgreSQL.

There entries and subjects are partitioned by the city's month of ``at``; each night the next
months' partitions are made ahead (``ensure_partitions``) and retention drops whole months
older than the period (``prune``) instead of deleting rows — dropping a table is instant and
leaves nothing to vacuum. SQLite deletes the rows before the kept chain's first entry.

Either way retention appends an **anchor entry** to the chain: the period, where the kept chain
now starts and the hash before it, how many entries went, and a digest of those removed from
inside the kept chain — a month's partition also holds the few entries of that month written
after the next month's first (a call begun at 23:59:59.9 and recorded a moment later); their
hashes are kept in ``audit_removed`` so that ``verify`` steps over them, and the digest, hashed
into the chain, lets no row be added there to hide a gap."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, text
from sqlalchemy.orm import Session

from citydata.audit.models import AuditEntry, AuditRemoved, AuditSubject
from citydata.audit.service import (
    _LOCK_HEAD,
    PLATFORM,
    RETENTION,
    append,
    ensure_head,
    removed_digest,
)
from citydata.clock import CITY_ZONE, city_midnight
from citydata.clock import now as wall_now

PARTITIONED = ("audit_entries", "audit_subjects")
AHEAD = 2  # months made ahead of the current one
_MONTH = re.compile(r"_p(\d{4})(\d{2})$")


# ---------------------------------------------------------------- partitions


def month_start(day: date) -> datetime:
    return city_midnight(day.replace(day=1))


def next_month(start: datetime) -> datetime:
    local = start.astimezone(CITY_ZONE)
    return city_midnight((local.date().replace(day=1) + timedelta(days=32)).replace(day=1))


def partitioned(conn: Connection) -> bool:
    if conn.dialect.name != "postgresql":
        return False
    return bool(
        conn.execute(
            text(
                "SELECT 1 FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid "
                "WHERE c.relname = 'audit_entries'"
            )
        ).first()
    )


def partitions(conn: Connection, table: str) -> dict[str, datetime]:
    """``table``'s month partitions: name -> the month's first moment."""
    names = conn.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = :t"
        ),
        {"t": table},
    ).scalars()
    found = {}
    for name in names:
        m = _MONTH.search(name)
        if m:
            found[name] = month_start(date(int(m[1]), int(m[2]), 1))
    return found


def ensure_partitions(conn: Connection, today: date, ahead: int = AHEAD) -> list[str]:
    """This month's and the next ``ahead`` months' partitions, made where missing; rows that
    fell into the default partition meanwhile are moved into theirs. Returns those made."""
    if not partitioned(conn):
        return []
    made = []
    start = month_start(today)
    months = [start]
    for _ in range(ahead):
        months.append(next_month(months[-1]))
    for table in PARTITIONED:
        have = set(partitions(conn, table).values())
        for first in months:
            if first in have:
                continue
            name = f"{table}_p{first.astimezone(CITY_ZONE):%Y%m}"
            end = next_month(first)
            bounds = {"a": first, "b": end}
            strays = conn.execute(
                text(f"SELECT count(*) FROM {table}_default WHERE at >= :a AND at < :b"), bounds
            ).scalar()
            if strays:  # a partition may not be made over rows the default holds: move them
                conn.exec_driver_sql(f"CREATE TABLE {name} (LIKE {table} INCLUDING DEFAULTS)")
                conn.execute(
                    text(
                        f"WITH moved AS (DELETE FROM {table}_default WHERE at >= :a AND at < :b "
                        f"RETURNING *) INSERT INTO {name} SELECT * FROM moved"
                    ),
                    bounds,
                )
                conn.execute(
                    text(
                        f"ALTER TABLE {table} ATTACH PARTITION {name} "
                        f"FOR VALUES FROM ('{first.isoformat()}') TO ('{end.isoformat()}')"
                    )
                )
            else:
                conn.exec_driver_sql(
                    f"CREATE TABLE {name} PARTITION OF {table} "
                    f"FOR VALUES FROM ('{first.isoformat()}') TO ('{end.isoformat()}')"
                )
            made.append(name)
    return made


# ---------------------------------------------------------------- retention


def prune(
    session: Session, retention_years: int, today: date | None = None, now: datetime | None = None
) -> int:
    """Drop entries older than the retention period and anchor the kept chain; returns how many
    entries went. Whole months on PostgreSQL's partitions, rows on SQLite."""
    now = now or wall_now()
    today = today or now.astimezone(CITY_ZONE).date()
    cutoff = city_midnight(today - timedelta(days=round(365.25 * retention_years)))
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        # Dropping a partition waits for every reader of the log; writers wait behind the head
        # lock meanwhile, so this gives up after a few seconds rather than stall the platform.
        conn.exec_driver_sql("SET LOCAL lock_timeout = '5s'")
    if not conn.execute(_LOCK_HEAD).rowcount:  # as every writer does: nothing is written meanwhile
        ensure_head(session)
    head = ensure_head(session)
    e, s = AuditEntry.__table__, AuditSubject.__table__
    dropping: dict[str, datetime] = {}
    if partitioned(conn):
        months = partitions(conn, "audit_entries")
        dropping = {n: m for n, m in months.items() if next_month(m) <= cutoff}
        # whole months before the cutoff, and what strayed into the default partition earlier
        bound = max((next_month(m) for m in dropping.values()), default=None)
        bound = bound or min([cutoff, *months.values()])
        gone, subjects_gone = e.c.at < bound, s.c.at < bound
    else:
        stop = session.scalar(select(func.min(e.c.id)).where(e.c.at >= cutoff))
        stop = stop or head.last_id + 1
        gone, subjects_gone = e.c.id < stop, s.c.audit_id < stop
    first = session.execute(
        select(e.c.id, e.c.prev_hash).where(~gone).order_by(e.c.id).limit(1)
    ).first()
    start = first[0] if first else head.last_id + 1
    start_prev = first[1] if first else head.last_hash
    removed = session.scalar(select(func.count()).select_from(e).where(gone)) or 0
    if not removed:
        return 0
    inside = [
        tuple(r)
        for r in session.execute(
            select(e.c.id, e.c.prev_hash, e.c.entry_hash).where(gone, e.c.id > start)
        )
    ]
    anchor_id = append(
        session,
        [_anchor(now, retention_years, cutoff, start, start_prev, removed, inside, dropping)],
    )[0]
    if inside:
        session.execute(
            insert(AuditRemoved),
            [
                {"id": i, "prev_hash": p, "entry_hash": h, "anchor_id": anchor_id}
                for i, p, h in inside
            ],
        )
    session.execute(delete(AuditRemoved).where(AuditRemoved.id < start))
    for name, month in dropping.items():
        conn.exec_driver_sql(f"DROP TABLE {name}")
        conn.exec_driver_sql(
            f"DROP TABLE IF EXISTS audit_subjects_p{month.astimezone(CITY_ZONE):%Y%m}"
        )
    session.execute(delete(s).where(subjects_gone))  # rows left: the default partition's
    session.execute(delete(e).where(gone))
    head = ensure_head(session)
    session.refresh(head)
    head.first_id, head.first_prev_hash = start, start_prev
    return removed


def _anchor(
    now: datetime,
    years: int,
    cutoff: datetime,
    start: int,
    start_prev: str,
    removed: int,
    inside: list[tuple[int, str, str]],
    dropped: dict[str, datetime],
) -> dict[str, Any]:
    return {
        "at": now.astimezone(UTC),
        "request_id": f"retention-{now.timestamp():.6f}"[:36],
        "key_id": None,
        "consumer_code": None,
        "system_name": PLATFORM,
        "application_id": None,
        "class_code": None,
        "action": RETENTION,
        "fields": [],
        "query": {
            "retention_years": years,
            "before": cutoff.isoformat(),
            "first_kept": start,
            "first_kept_prev": start_prev,
            "removed": removed,
            "removed_inside": len(inside),
            "removed_sha256": removed_digest(inside),
            "partitions": sorted(dropped),
        },
        "end_user": "",
        "case_id": "",
        "client_ip": "",
        "rows": 0,
        "subjects": [],
        "outcome": "ok",
        "status_code": 200,
        "response_hash": "",
    }
