"""Named locks held until a session's transaction ends: a count that is read, judged and then
written (failed sign-ins within a window) is exact only if nobody else reads it in between.

On PostgreSQL a transaction-level advisory lock (``pg_advisory_xact_lock``) serialises every
process and machine; it goes with the transaction, committed or rolled back, so it cannot be
left behind. On SQLite the installation is one server process: a lock of this process, let go
when the session's transaction ends, does the same there."""

from __future__ import annotations

import hashlib
import threading

from sqlalchemy import event, func, select
from sqlalchemy.orm import Session, SessionTransaction

_HELD = "citydata.locks"  # session.info: the names this session's transaction holds
_registry_lock = threading.Lock()
_locks: dict[str, list] = {}  # name -> [lock, sessions wanting it]: dropped when unwanted


def lock_id(name: str) -> int:
    """A signed 64-bit key for PostgreSQL's advisory locks."""
    return int.from_bytes(
        hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True
    )


def hold(session: Session, name: str) -> None:
    """Until this session's transaction ends, no one else passes ``hold`` with ``name``.
    Callers taking several names take them in one order (scopes always alike), so two never
    wait for each other."""
    held: list[str] = session.info.setdefault(_HELD, [])
    if name in held:
        return
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(lock_id(name))))
        held.append(name)
        return
    session.connection()  # a transaction exists, so its end (commit, rollback, close) is heard
    if not session.info.get(_HELD + ".hooked"):
        event.listen(session, "after_transaction_end", _release)
        session.info[_HELD + ".hooked"] = True
    with _registry_lock:
        entry = _locks.setdefault(name, [threading.Lock(), 0])
        entry[1] += 1
    entry[0].acquire()
    held.append(name)


def _release(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is not None:  # a savepoint: the outer transaction still holds
        return
    held: list[str] = session.info.get(_HELD, [])
    while held:
        name = held.pop()
        with _registry_lock:
            entry = _locks[name]
            entry[1] -= 1
            if entry[1] == 0:
                del _locks[name]
        entry[0].release()
