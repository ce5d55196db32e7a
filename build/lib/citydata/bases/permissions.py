"""Who may read master records and decide uncertain matches. Masters hold whole persons'
records in clear: administrators read them (departments get them through sharing, masked); an
uncertain match is decided by the steward of the unit whose row it is."""

from __future__ import annotations

from citydata.accounts.models import User
from citydata.accounts.permissions import can_write_unit, is_admin


def may_read_masters(user: User | None) -> bool:
    return is_admin(user)


def review_scope(user: User | None) -> tuple[bool, str | None]:
    """(may see review pairs, only of rows sent by this unit — None: every unit's)."""
    if is_admin(user):
        return True, None
    if user is not None and user.role == "steward" and user.unit_code:
        return True, user.unit_code
    return False, None


def may_decide_review(user: User | None, provider_code: str | None) -> bool:
    return can_write_unit(user, provider_code)
