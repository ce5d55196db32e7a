"""Who may change the catalog: a class is its providing unit's to declare and edit."""

from __future__ import annotations

from citydata.accounts.models import User
from citydata.accounts.permissions import can_write_unit


def may_edit_class(user: User | None, provider_code: str | None) -> bool:
    """Create, edit or retire a class of ``provider_code``: its steward or an administrator."""
    return can_write_unit(user, provider_code)
