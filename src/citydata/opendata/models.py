"""Open data's own tables: how often each dataset was downloaded, per format and day; how often
each action of the API was called, per day."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from citydata.db.base import Base


class OpenDownload(Base):
    __tablename__ = "open_downloads"

    dataset: Mapped[str] = mapped_column(String(40), primary_key=True)  # the class code
    format: Mapped[str] = mapped_column(String(8), primary_key=True)
    day: Mapped[date] = mapped_column(primary_key=True)
    count: Mapped[int] = mapped_column(default=0)


class OpenApiCall(Base):
    """Calls of one CKAN action on one day, counted in memory and added here every few seconds
    (``opendata.calls``): no write on the API's own path."""

    __tablename__ = "open_api_calls"

    day: Mapped[date] = mapped_column(primary_key=True)
    action: Mapped[str] = mapped_column(String(64), primary_key=True)
    calls: Mapped[int] = mapped_column(default=0)


class OpenSqlRelease(Base):
    """PostgreSQL: which 有条件开放 dataset views the reader connection with backend ``pid`` may
    see rows of, until ``until`` — written by the platform for one query at a time; the reader
    role cannot write it (see opendata.sqlguard)."""

    __tablename__ = "open_sql_releases"

    pid: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    view: Mapped[str] = mapped_column(String(80), primary_key=True)
    until: Mapped[datetime]
