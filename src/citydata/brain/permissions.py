"""Who sees which tile: the public cockpit shows open figures only; the staff cockpit adds the
figures of the platform's work (any unit's staff), and who reads whose data and the audit chain
(administrators and auditors). A unit's staff see their own unit's part of a scoped tile."""

from __future__ import annotations

from citydata.accounts.models import User
from citydata.accounts.permissions import is_admin, may_audit

STAFF_ROLES = {"admin", "steward", "consumer", "auditor"}


def is_staff(user: User | None) -> bool:
    return user is not None and user.role in STAFF_ROLES


def may_see(user: User | None, permission: str) -> bool:
    if permission == "public":
        return True
    if permission == "staff":
        return is_staff(user)
    if permission == "audit":
        return may_audit(user)
    if permission == "admin":
        return is_admin(user)
    return False


def own_unit_only(user: User | None) -> str | None:
    """For a scoped tile: the unit whose part this user sees, or None for the whole city."""
    if may_audit(user) or user is None:
        return None
    return user.unit_code or ""
