"""Which data changed: a version number per topic (``ingest``, ``bases``, ``services`` …), raised
by the domain that changes the data, in the change's own transaction — a batch commits, a
resolution run ends, a case or an event moves. Whoever keeps summaries of that data (the
cockpit) compares the versions it computed from with the current ones and knows what is stale,
across processes; nobody below has to know who listens.

A session's marks are written just before it commits (one upsert per topic), so the row is
locked only for the commit itself however long the transaction ran; after the commit the
process's listeners hear the topics (the server wakes its refresher with them)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from contextlib import suppress
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy import event as sa_event
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from citydata.db.base import utcnow
from citydata.mechanisms.models import DataChange

# The topics the domains mark; a summary names those it is computed from.
TOPICS = {
    "catalog": "信息资源目录",
    "ingest": "数据归集",
    "bases": "基础库",
    "share": "共享申请",
    "opendata": "数据开放",
    "services": "一网通办",
    "grid": "一格通管",
    "cells": "单元网格",
}

_listeners: list[Callable[[set[str]], None]] = []
_lock = threading.Lock()
_PENDING = "citydata.changes"  # the topics a session marked, in its info


def listen(callback: Callable[[set[str]], None]) -> Callable[[], None]:
    """Hear the topics of every commit in this process that marked some; returns the undo."""
    with _lock:
        _listeners.append(callback)

    def forget() -> None:
        with _lock:
            if callback in _listeners:
                _listeners.remove(callback)

    return forget


def _notify(topics: set[str]) -> None:
    with _lock:
        listeners = list(_listeners)
    for callback in listeners:
        with suppress(Exception):  # a listener's trouble is not the writer's
            callback(set(topics))


def _unknown(topics: Iterable[str]) -> None:
    wrong = sorted(set(topics) - set(TOPICS))
    if wrong:
        raise ValueError(f"未知的数据主题 {wrong}（可选：{'、'.join(TOPICS)}）")


def _upsert(conn: Connection, topic: str) -> None:
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    table = DataChange.__table__
    at = utcnow()
    statement = insert(table).values(topic=topic, version=1, changed_at=at)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=[table.c.topic],
            set_={"version": table.c.version + 1, "changed_at": at},
        )
    )


def mark(where: Session | Connection, *topics: str) -> None:
    """``topics`` changed in this transaction. On a session the versions are raised just
    before it commits (nothing if it rolls back) and the listeners told after; on a bare
    connection, now — the caller ``announce``-s them once it has committed."""
    _unknown(topics)
    if isinstance(where, Session):
        where.info.setdefault(_PENDING, set()).update(topics)
        return
    for topic in sorted(topics):
        _upsert(where, topic)


def unmark(session: Session) -> None:
    """Drop what the session marked: data written into a schema older than the marks' own
    table (an upgrade test loading yesterday's data) has nobody to tell."""
    session.info.pop(_PENDING, None)


def announce(*topics: str) -> None:
    """A bare connection that ``mark``-ed has committed: tell this process's listeners."""
    _unknown(topics)
    _notify(set(topics))


@sa_event.listens_for(Session, "before_commit")
def _write_marks(session: Session) -> None:
    topics = session.info.get(_PENDING)
    if topics:
        conn = session.connection()
        for topic in sorted(topics):
            _upsert(conn, topic)


@sa_event.listens_for(Session, "after_commit")
def _tell(session: Session) -> None:
    topics = session.info.pop(_PENDING, None)
    if topics:
        _notify(topics)


@sa_event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_PENDING, None)


def versions(session: Session) -> dict[str, int]:
    """Every topic's current version (0: never marked)."""
    found = dict(session.execute(select(DataChange.topic, DataChange.version)).all())
    return {topic: int(found.get(topic, 0)) for topic in TOPICS} | {
        t: int(v) for t, v in found.items() if t not in TOPICS
    }


def changed_at(session: Session) -> dict[str, Any]:
    return dict(session.execute(select(DataChange.topic, DataChange.changed_at)).all())
