"""The cockpit's figures, read from the domains that hold them."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy.orm import Session

from citydata.accounts.models import User
from citydata.audit.service import usage, usage_totals
from citydata.catalog.service import counts
from citydata.ingest.service import aggregated_classes
from citydata.share.permissions import usage_scope

# The seed's targets: 35 units, 289 aggregated classes, 700 shared classes.
TARGETS = {"units": 35, "aggregated": 289, "shared": 700}


def progress(session: Session) -> dict[str, int]:
    """Units, classes aggregated and shared, as the seed counts them."""
    figures = counts(session)
    figures["aggregated"] = aggregated_classes(session)
    return figures


def recent_sharing(session: Session, user: User | None, days: int = 14) -> dict[str, Any] | None:
    """Sharing calls per day and busiest units over the last ``days``, for those who may see
    them (who reads what is not for everyone): None for the others."""
    allowed, unit = usage_scope(user)
    if not allowed:
        return None
    return usage_totals(usage(session, date.today() - timedelta(days=days - 1), unit))
