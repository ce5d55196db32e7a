"""Who may do what with city events: the 监督指挥中心 (in the city management bureau) registers,
dispatches and closes, and its inspectors (监督员) report and verify on site; a unit's staff
handle the events dispatched to their unit; administrators may do all."""

from __future__ import annotations

from citydata.accounts.models import User
from citydata.accounts.permissions import in_unit, is_admin

CENTRE = "cscg"  # 长沙市城市管理和综合执法局: its 监督指挥中心 runs the grid
STAFF_ROLES = {"admin", "steward", "consumer"}


def _staff(user: User | None) -> bool:
    return user is not None and user.role in STAFF_ROLES


def may_dispatch(user: User | None) -> bool:
    """立案, 派遣 (and 改派), 作废, 挂账, 结案: the centre's staff."""
    return is_admin(user) or (_staff(user) and in_unit(user, CENTRE))


def may_inspect(user: User | None) -> bool:
    """Report from the street and 核查 on site: the centre's inspectors."""
    return may_dispatch(user)


def may_handle(user: User | None, unit_code: str | None) -> bool:
    """处置 and 处置反馈: the staff of the unit the event was dispatched to."""
    return is_admin(user) or (_staff(user) and in_unit(user, unit_code))


def may_see(user: User | None) -> bool:
    """The queues, the map with its reporters' details hidden, the assessment: any staff."""
    return is_admin(user) or (_staff(user) and bool(user and user.unit_code))
