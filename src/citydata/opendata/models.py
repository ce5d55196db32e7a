"""Open data's own table: how often each dataset was downloaded, per format and day."""

from __future__ import annotations

from datetime import date

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from citydata.db.base import Base


class OpenDownload(Base):
    __tablename__ = "open_downloads"

    dataset: Mapped[str] = mapped_column(String(40), primary_key=True)  # the class code
    format: Mapped[str] = mapped_column(String(8), primary_key=True)
    day: Mapped[date] = mapped_column(primary_key=True)
    count: Mapped[int] = mapped_column(default=0)
