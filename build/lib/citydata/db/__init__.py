"""The store: engine, table metadata and migrations."""

from citydata.db.engine import make_engine, make_sessionmaker, session_scope

__all__ = ["make_engine", "make_sessionmaker", "session_scope"]
