"""The cockpit's own table: each tile's summary — its figures as the chart reads them, the
versions of the data they were computed from, when, and how long the query took."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from citydata.db.base import Base


class Summary(Base):
    __tablename__ = "brain_summaries"

    tile: Mapped[str] = mapped_column(String(64), primary_key=True)
    payload: Mapped[dict] = mapped_column(default=dict)
    versions: Mapped[dict] = mapped_column(default=dict)  # topic -> version computed from
    digest: Mapped[str] = mapped_column(String(64))  # of the tile's declaration
    as_of: Mapped[datetime]  # the data is as of this moment (数据截至)
    computed_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]  # due for its scheduled refresh
    query_ms: Mapped[float] = mapped_column(default=0.0)
