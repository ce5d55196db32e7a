"""Who may do what on the service platform: citizens act for their verified identities only;
a unit's staff handle their unit's cases; the hall's window staff (市政务服务中心) take any
matter and route it; stewards and administrators keep matters and docked systems."""

from __future__ import annotations

from citydata.accounts.models import User
from citydata.accounts.permissions import can_write_unit, in_unit, is_admin
from citydata.services.shared import SERVICE_UNIT

STAFF_ROLES = {"admin", "steward", "consumer"}


def is_staff(user: User | None) -> bool:
    return (
        user is not None and user.role in STAFF_ROLES and (is_admin(user) or bool(user.unit_code))
    )


def may_handle(user: User | None, unit_code: str) -> bool:
    """Accept, refuse, ask for 补正, decide: the unit's own staff (or an administrator)."""
    return is_admin(user) or (is_staff(user) and in_unit(user, unit_code))


def may_take_at_window(user: User | None, unit_code: str) -> bool:
    """一窗受理: the hall's windows take every unit's matters; a unit's staff its own."""
    return may_handle(user, unit_code) or (is_staff(user) and in_unit(user, SERVICE_UNIT))


def may_keep_matters(user: User | None, unit_code: str) -> bool:
    return can_write_unit(user, unit_code) or (
        user is not None and user.role == "steward" and in_unit(user, SERVICE_UNIT)
    )
