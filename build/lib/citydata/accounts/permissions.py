"""Who may do what, by role and unit: named predicates that pages, API and CLI all ask, so a rule
is written once (CKAN's ``logic/auth`` habit). Each domain has its own ``permissions.py`` built on
these."""

from __future__ import annotations

from citydata.accounts.models import User


def is_admin(user: User | None) -> bool:
    return user is not None and user.role == "admin"


def may_audit(user: User | None) -> bool:
    """Administrators and auditors see who read what, across units."""
    return user is not None and user.role in {"admin", "auditor"}


def in_unit(user: User | None, unit_code: str | None) -> bool:
    """A member of ``unit_code``'s staff (any role held in that unit)."""
    return user is not None and unit_code is not None and user.unit_code == unit_code


def can_write_unit(user: User | None, unit_code: str | None) -> bool:
    """Administrators write everything; a steward writes only his own unit's entries."""
    if user is None:
        return False
    return user.role == "admin" or (user.role == "steward" and in_unit(user, unit_code))
