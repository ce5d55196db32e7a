"""Who may read a dataset's data: everyone for 普遍开放; for 有条件开放 only a user the provider
released it to (an approved, unexpired open-data application)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from citydata.accounts.models import User
from citydata.opendata.service import Dataset
from citydata.share.service import released_to


def may_read(session: Session, user: User | None, ds: Dataset) -> bool:
    return ds.downloadable or released_to(session, user, ds.code)
