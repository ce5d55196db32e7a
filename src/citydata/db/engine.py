"""Engines and sessions. SQLite gets WAL and foreign keys; anything else is used as given.

A store may also have a read replica (``CITYDATA_READ_DATABASE_URL``: a PostgreSQL streaming
replica): ``read_session()`` is for the reads that may lag the primary a moment — the rows a
sharing call or an open-data search delivers. Everything else — writes, audit entries, who is
calling and what they were granted, and any read that must see a write just made — stays on
``session()``, the primary. The replica's connections are read-only by construction, so a
write sent there by mistake fails rather than lands on the wrong server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

# The web server runs blocking handlers on AnyIO's worker threads (40 by default). A pool smaller
# than that closes the connections it cannot keep and opens new ones under load: SQLAlchemy's
# default of 5 cost a sharing lookup an eighth of its time in reconnecting. Connections are still
# opened only when needed. Several workers each keep their own pool: PostgreSQL's
# max_connections must exceed workers × (pool + 10 overflow), or CITYDATA_DB_POOL be lowered
# (docs/deploy.md).
POOL_SIZE = int(os.environ.get("CITYDATA_DB_POOL", "40"))


def make_engine(url: str, read_only: bool = False) -> Engine:
    """An engine for ``url``; ``read_only``: every transaction refuses writes (a replica's)."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=POOL_SIZE,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            if read_only:
                cur.execute("PRAGMA query_only=ON")
            cur.close()

        return engine
    extra = (
        {"connect_args": {"options": "-c default_transaction_read_only=on"}} if read_only else {}
    )
    return create_engine(url, pool_pre_ping=True, pool_size=POOL_SIZE, **extra)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: committed if the block finishes, rolled back if it raises."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


class Store:
    """One database: its engine and session factory, opened once per process and URL; and
    its read replica's, if it has one."""

    def __init__(self, url: str, read_url: str | None = None):
        self.url = url
        self.engine = make_engine(url)
        self.sessions = make_sessionmaker(self.engine)
        self.read_url = read_url or None
        self.replica: Engine | None = make_engine(read_url, read_only=True) if read_url else None
        self.read_sessions = make_sessionmaker(self.replica) if self.replica else self.sessions

    def session(self):
        """A unit of work on the primary: writes, and reads that must be current."""
        return session_scope(self.sessions)

    @contextmanager
    def read_session(self, alongside: Session | None = None) -> Iterator[Session]:
        """A session for reads that may lag the primary by the replica's delay (on the primary
        without a replica). ``alongside``: the caller's primary session, used as it is when
        there is no replica — one connection per call, not two."""
        if self.replica is None and alongside is not None:
            yield alongside
            return
        with session_scope(self.read_sessions) as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
        if self.replica is not None:
            self.replica.dispose()
