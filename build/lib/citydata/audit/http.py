"""Auditing a read made over HTTP by a signed-in person (pages, the management API)."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from sqlalchemy.orm import Session

from citydata.accounts.models import User
from citydata.audit.service import people_read
from citydata.web.client import client_ip, peer


def record_read(request: Request, session: Session, user: User, **read: Any) -> None:
    """Write the read's entry before the data is answered; AuditError (a 503) if it cannot.
    The request's own transaction is committed first: the log's writer must never wait for a
    lock the waiting request holds (on SQLite, any write — a token's last use — is one)."""
    session.commit()
    entry = people_read(
        username=user.username,
        unit_code=user.unit_code,
        client_ip=client_ip(request),
        peer_ip=peer(request.scope),
        **read,
    )
    request.app.state.audit.write_blocking(entry)
