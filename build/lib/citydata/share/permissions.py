"""Who may do what with sharing: apply, decide, see an application, see usage."""

from __future__ import annotations

from citydata.accounts.models import User
from citydata.accounts.permissions import can_write_unit, in_unit, may_audit
from citydata.share.models import ShareApplication


def may_apply(user: User, consumer_code: str | None) -> bool:
    """For a consumer unit: its own staff (not auditors, not the public) or an administrator."""
    return user.role == "admin" or (
        in_unit(user, consumer_code) and user.role not in {"auditor", "public"}
    )


def may_decide(user: User, app: ShareApplication) -> bool:
    """The provider's steward or an administrator."""
    return can_write_unit(user, app.provider_code)


def may_see(user: User, app: ShareApplication) -> bool:
    return (
        may_audit(user)
        or app.applicant == user.username
        or in_unit(user, app.consumer_code)
        or in_unit(user, app.provider_code)
    )


def usage_scope(user: User | None) -> tuple[bool, str | None]:
    """(may see sharing usage at all, limited to this consumer unit — None: every unit).
    Auditors and administrators see all units; a unit's staff its own; nobody else any."""
    if user is None:
        return False, None
    if may_audit(user):
        return True, None
    if user.unit_code is not None and user.role != "public":
        return True, user.unit_code
    return False, None
