"""Who may do what with batches. A batch is the department's own: its rejected rows hold the
values the department sent, personal ones among them."""

from __future__ import annotations

from citydata.accounts.models import User
from citydata.accounts.permissions import can_write_unit, in_unit, may_audit
from citydata.ingest.models import Batch


def may_submit(user: User | None, provider_code: str) -> bool:
    """Send a class's data: the providing unit's steward, or an administrator."""
    return can_write_unit(user, provider_code)


def may_see_batch(user: User | None, batch: Batch) -> bool:
    """A batch's figures and rules broken: the unit's staff, auditors and administrators."""
    return may_audit(user) or in_unit(user, batch.unit_code)


def batch_scope(user: User | None) -> tuple[bool, str | None]:
    """(may list batches, only this unit's — None: every unit's)."""
    if may_audit(user):
        return True, None
    if user is not None and user.unit_code is not None and user.role != "public":
        return True, user.unit_code
    return False, None


def may_see_values(user: User | None, batch: Batch) -> bool:
    """Rejected values (masked as the sharing service masks them): those who may read the
    class's data — its own unit's staff and administrators."""
    return user is not None and (user.role == "admin" or in_unit(user, batch.unit_code))


def may_download_rejects(user: User | None, batch: Batch) -> bool:
    """The rejected rows as sent, to fix and send again: the unit's steward or an administrator."""
    return can_write_unit(user, batch.unit_code)
