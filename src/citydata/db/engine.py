"""Engines and sessions. SQLite gets WAL and foreign keys; anything else is used as given."""

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


def make_engine(url: str) -> Engine:
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
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=POOL_SIZE)


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
    """One database: its engine and session factory, opened once per process and URL."""

    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        self.sessions = make_sessionmaker(self.engine)

    def session(self):
        return session_scope(self.sessions)
