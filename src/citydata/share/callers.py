"""Who is calling the sharing API: the credential presented (``Authorization: Bearer
cds_<key id>_<secret>``) checked at every call against its approved application, and the
caller's rate and daily quota."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

from sqlalchemy import Connection, bindparam, func, select
from sqlalchemy.orm import Session

from citydata.audit.models import AuditEntry
from citydata.audit.service import IS_CALL
from citydata.catalog.models import ResourceClass
from citydata.clock import CITY_OFFSET, city_day, city_midnight, moment
from citydata.db.engine import Store
from citydata.mechanisms import credentials, ratelimit
from citydata.mechanisms.ratelimit import MinuteWindows
from citydata.share.models import STATUS, ShareApplication, ShareCredential
from citydata.share.service import CREDENTIAL_PREFIX, ShareError, current_status


def _unauthorised(message: str) -> ShareError:
    return ShareError(message, "unauthorized", 401)


# ---------------------------------------------------------------- the caller


@dataclass(frozen=True)
class Caller:
    key_id: str
    application_id: int
    consumer_code: str
    system_name: str
    class_code: str
    class_version: int
    granted: frozenset[str]
    unmasked: frozenset[str]
    daily_volume: int
    rate_per_minute: int


# Built once, and plain columns rather than ORM objects: this runs on every call, and building
# the statement and loading three entities cost more than the lookup itself. Its row answers
# the attributes secret_matches, ip_allowed and current_status read.
_CREDENTIAL = (
    select(
        ShareCredential.key_id,
        ShareCredential.secret_hash,
        ShareCredential.previous_hash,
        ShareCredential.previous_until,
        ShareCredential.revoked_at,
        ShareCredential.ip_allow,
        ShareCredential.rate_per_minute,
        ShareApplication.id,
        ShareApplication.status,
        ShareApplication.valid_until,
        ShareApplication.consumer_code,
        ShareApplication.system_name,
        ShareApplication.class_code,
        ShareApplication.granted,
        ShareApplication.granted_unmasked,
        ShareApplication.daily_volume,
        ResourceClass.version,
    )
    .join(ShareApplication, ShareApplication.id == ShareCredential.application_id)
    .join(ResourceClass, ResourceClass.code == ShareApplication.class_code)
    .where(ShareCredential.key_id == bindparam("key_id"))
)


def authenticate(
    session: Session, authorization: str, client_ip: str, now: datetime | None = None
) -> Caller:
    """The credential in ``Authorization: Bearer cds_<key id>_<secret>``, checked at every call:
    a revoked credential or a revoked or expired approval stops the very next call."""
    now = now or datetime.now(UTC)
    presented = credentials.parse(CREDENTIAL_PREFIX, authorization)
    if presented is None:
        raise _unauthorised("缺少或无法识别的共享凭证（Authorization: Bearer cds_…）")
    found = session.connection().execute(_CREDENTIAL, {"key_id": presented.key_id}).first()
    if found is None or not credentials.matches(found, presented.whole, now):
        raise _unauthorised("共享凭证无效")
    if found.revoked_at is not None:
        raise _unauthorised("共享凭证已吊销")
    if not credentials.ip_allowed(found, client_ip):
        raise ShareError(f"凭证不允许从 {client_ip} 调用", "ip_not_allowed", 403)
    status = current_status(found, now.date())
    if status != "approved":
        raise ShareError(
            f"共享申请 {found.id} 当前为「{STATUS[status]}」", f"application_{status}", 403
        )
    return Caller(
        found.key_id,
        found.id,
        found.consumer_code,
        found.system_name,
        found.class_code,
        found.version,
        frozenset(found.granted),
        frozenset(found.granted_unmasked),
        found.daily_volume,
        found.rate_per_minute,
    )


class Limiter:
    """Per credential: calls per minute (a fixed window) and calls per day (the application's
    declared daily volume, in the city's day). Where several processes serve (PostgreSQL) both
    are counted in the database, exact across all of them (``mechanisms.ratelimit``); on SQLite
    in this process, the installation's only one. Either way a day with nothing counted yet
    starts from the audit log, so a restart hands out no fresh quota."""

    def __init__(self, store: Store | None = None) -> None:
        self._store = store if store is not None and ratelimit.shared(store) else None
        self._lock = threading.Lock()
        self._minute = MinuteWindows()
        self._day: dict[str, tuple[date, int]] = {}

    def check(self, session: Session, caller: Caller, now: float | None = None) -> None:
        now = now or time.time()
        today = city_day(moment(now))
        if self._store is not None:
            self._check_shared(caller, now, today)
            return
        with self._lock:
            seen = self._day.get(caller.key_id)
        if seen is None or seen[0] != today:
            seen = (today, used_today(session.connection(), caller.key_id, today))
        with self._lock:
            day, used = self._day.get(caller.key_id, seen)
            if day != today:
                day, used = seen
            if used >= caller.daily_volume:
                raise _too_many("已用完今日调用配额", DAY.wait(now))
            wait = self._minute.take(caller.key_id, caller.rate_per_minute, now)
            if wait is not None:
                raise _too_many("调用过于频繁", wait)
            self._day[caller.key_id] = (today, used + 1)

    def _check_shared(self, caller: Caller, now: float, today: date) -> None:
        assert self._store is not None
        day = replace(
            DAY,
            key=caller.key_id,
            limit=caller.daily_volume,
            seed=lambda conn: used_today(conn, caller.key_id, today),
        )
        minute = ratelimit.Window("share_minute", caller.key_id, caller.rate_per_minute)
        full = ratelimit.take(self._store, [day, minute], now)
        if full is day:
            raise _too_many("已用完今日调用配额", day.wait(now))
        if full is minute:
            raise _too_many("调用过于频繁", minute.wait(now))


# The city's day: windows of a day that start at Changsha's midnight.
DAY = ratelimit.Window("share_day", "", 0, 86400, int(CITY_OFFSET.total_seconds()))


def used_today(conn: Connection, key_id: str, today: date) -> int:
    """Calls of ``key_id`` answered today, as the audit log has them."""
    used = conn.execute(
        select(func.count()).where(
            AuditEntry.key_id == key_id,
            AuditEntry.at >= city_midnight(today),
            AuditEntry.outcome == "ok",
            IS_CALL,
        )
    ).scalar()
    return int(used or 0)


def _too_many(message: str, retry_after: int) -> ShareError:
    return ShareError(message, "rate_limited", 429, max(retry_after, 1))
