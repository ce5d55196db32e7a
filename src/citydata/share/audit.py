"""The audit chain: every sharing call is written here before its data leaves, each entry hashed
together with the previous entry's hash (as X-Road's message log does), so `verify` finds any
edited, removed or reordered entry.

Writes are group-committed: request threads hand their entry to one writer thread per process
and wait until the transaction holding it has committed. The writer first takes the lock on the
chain's head row, so several server processes still build one chain."""

from __future__ import annotations

import asyncio
import hashlib
import queue
import threading
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import bindparam, case, delete, func, insert, select, update
from sqlalchemy.orm import Session

from citydata.db.base import as_utc
from citydata.db.engine import Store
from citydata.share.models import AuditEntry, AuditHead, AuditSubject

GENESIS = "0" * 64
HEAD_ID = 1
HASHED = (
    "id",
    "at",
    "request_id",
    "key_id",
    "consumer_code",
    "system_name",
    "application_id",
    "class_code",
    "action",
    "fields",
    "query",
    "end_user",
    "case_id",
    "client_ip",
    "rows",
    "subjects",
    "outcome",
    "status_code",
    "response_hash",
)
# An export's body is streamed after its entry is written; a closing entry of this action holds
# the body's hash. It records the same read, so it is not a call of its own.
EXPORT_END = "export_end"
IS_CALL = AuditEntry.action != EXPORT_END
GROUP_MAX = 500  # entries per commit
WAIT_SECONDS = 30


class AuditError(RuntimeError):
    """The entry could not be written: the call must not return data."""


def _moment(value: datetime) -> str:
    return as_utc(value).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def entry_hash(prev_hash: str, entry: dict[str, Any]) -> str:
    payload = {k: entry.get(k) for k in HASHED}
    payload["at"] = _moment(entry["at"])
    body = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(prev_hash.encode() + body).hexdigest()


def ensure_head(session: Session) -> AuditHead:
    head = session.get(AuditHead, HEAD_ID)
    if head is None:
        head = AuditHead(
            id=HEAD_ID, last_id=0, last_hash=GENESIS, first_id=1, first_prev_hash=GENESIS
        )
        session.add(head)
        session.flush()
    return head


# The statements of an append, built once: the writer runs them for every group of calls.
_LOCK_HEAD = update(AuditHead).where(AuditHead.id == HEAD_ID).values(last_id=AuditHead.last_id)
_READ_HEAD = select(AuditHead.last_id, AuditHead.last_hash).where(AuditHead.id == HEAD_ID)
_MOVE_HEAD = (
    update(AuditHead)
    .where(AuditHead.id == HEAD_ID)
    .values(last_id=bindparam("new_id"), last_hash=bindparam("new_hash"))
)
_INSERT_ENTRIES = insert(AuditEntry)
_INSERT_SUBJECTS = insert(AuditSubject)


def append(session: Session, entries: list[dict[str, Any]]) -> list[int]:
    """Chain and insert ``entries`` in the session's transaction; returns their ids."""
    conn = session.connection()
    # Take the head's row lock before reading it (on SQLite: the write lock), so no other
    # writer can chain onto the same entry.
    if not conn.execute(_LOCK_HEAD).rowcount:
        ensure_head(session)
    last_id, last_hash = conn.execute(_READ_HEAD).one()
    rows, subjects = [], []
    for entry in entries:
        last_id += 1
        row = {**entry, "id": last_id, "prev_hash": last_hash}
        row["entry_hash"] = last_hash = entry_hash(row["prev_hash"], row)
        rows.append(row)
        subjects += [{"audit_id": last_id, "master_id": m} for m in set(entry["subjects"])]
    conn.execute(_INSERT_ENTRIES, rows)
    if subjects:
        conn.execute(_INSERT_SUBJECTS, subjects)
    conn.execute(_MOVE_HEAD, {"new_id": last_id, "new_hash": last_hash})
    return [r["id"] for r in rows]


def _settle(done: Future, outcome: int | Exception) -> None:
    """Tell the waiting call; one that gave up (timed out, its future cancelled) needs nothing,
    and must not stop the writer."""
    try:
        if isinstance(outcome, Exception):
            done.set_exception(outcome)
        else:
            done.set_result(outcome)
    except InvalidStateError:
        pass


class AuditLog:
    """The per-process writer. ``write`` returns once the entry is committed, or raises; the
    caller awaits it without holding a thread."""

    def __init__(self, store: Store):
        self.store = store
        self._queue: queue.SimpleQueue[tuple[dict, Future]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, entry: dict[str, Any]) -> Future:
        """A future of the entry's id, set once the group holding it has committed."""
        done: Future = Future()
        self._queue.put((entry, done))
        self._start()
        return done

    async def write(self, entry: dict[str, Any]) -> int:
        try:
            return await asyncio.wait_for(asyncio.wrap_future(self.submit(entry)), WAIT_SECONDS)
        except Exception as exc:
            raise AuditError(f"审计记录写入失败：{exc}") from exc

    def write_blocking(self, entry: dict[str, Any]) -> int:
        """``write`` for a worker thread (a streamed body's generator)."""
        try:
            return self.submit(entry).result(timeout=WAIT_SECONDS)
        except Exception as exc:
            raise AuditError(f"审计记录写入失败：{exc}") from exc

    def _start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="audit", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            group = [self._queue.get()]
            while len(group) < GROUP_MAX:
                try:
                    group.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                ids = self.commit([entry for entry, _ in group])
            except Exception as exc:  # every waiting call fails: none returns data
                for _, done in group:
                    _settle(done, exc)
                continue
            for (_, done), entry_id in zip(group, ids, strict=True):
                _settle(done, entry_id)

    def commit(self, entries: list[dict[str, Any]]) -> list[int]:
        with self.store.session() as session:
            return append(session, entries)


# ---------------------------------------------------------------- checking and reading


@dataclass
class VerifyReport:
    entries: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(session: Session, chunk: int = 5000) -> VerifyReport:
    """Walk the chain in order: each entry must hash to its ``entry_hash``, name the previous
    entry's hash, and follow it without a gap; the head must name the last entry."""
    head = ensure_head(session)
    report = VerifyReport()
    expected_id, expected_prev = head.first_id, head.first_prev_hash
    after = head.first_id - 1
    columns = [AuditEntry.__table__.c[c] for c in (*HASHED, "prev_hash", "entry_hash")]
    while True:
        rows = (
            session.execute(
                select(*columns).where(AuditEntry.id > after).order_by(AuditEntry.id).limit(chunk)
            )
            .mappings()
            .all()
        )
        if not rows:
            break
        for row in rows:
            report.entries += 1
            if row["id"] != expected_id:
                report.problems.append(
                    {"id": row["id"], "problem": "gap", "detail": f"应为第 {expected_id} 条"}
                )
            if row["prev_hash"] != expected_prev:
                report.problems.append(
                    {"id": row["id"], "problem": "broken_link", "detail": "前一条的哈希不符"}
                )
            if entry_hash(row["prev_hash"], dict(row)) != row["entry_hash"]:
                report.problems.append(
                    {"id": row["id"], "problem": "altered", "detail": "内容与哈希不符"}
                )
            expected_id, expected_prev = row["id"] + 1, row["entry_hash"]
        after = rows[-1]["id"]
    if head.last_id != expected_id - 1 or head.last_hash != expected_prev:
        report.problems.append(
            {
                "id": head.last_id,
                "problem": "tail",
                "detail": f"链头记录第 {head.last_id} 条，实际最后一条为第 {expected_id - 1} 条",
            }
        )
    return report


def entry_dict(e: AuditEntry) -> dict[str, Any]:
    return {c: getattr(e, c) for c in (*HASHED, "entry_hash")} | {"at": _moment(e.at) + "Z"}


def search(
    session: Session,
    master_id: int | None = None,
    consumer: str | None = None,
    class_code: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    """Who read what: by the person or legal person (master id) whose record was delivered,
    by consumer unit, by class, by time."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if master_id is not None:
        query = query.join(AuditSubject, AuditSubject.audit_id == AuditEntry.id).where(
            AuditSubject.master_id == master_id
        )
    if consumer:
        query = query.where(AuditEntry.consumer_code == consumer)
    if class_code:
        query = query.where(AuditEntry.class_code == class_code)
    if since:
        query = query.where(AuditEntry.at >= since)
    if until:
        query = query.where(AuditEntry.at < until)
    return list(session.scalars(query))


def usage(session: Session, since: date | None = None) -> list[dict[str, Any]]:
    """Calls and rows per day, consumer unit and class: the dashboard's sharing figures."""
    day = func.date(AuditEntry.at)
    query = (
        select(
            day,
            AuditEntry.consumer_code,
            AuditEntry.class_code,
            func.count(),
            func.sum(AuditEntry.rows),
            func.sum(case((AuditEntry.outcome != "ok", 1), else_=0)),
        )
        .where(IS_CALL)
        .group_by(day, AuditEntry.consumer_code, AuditEntry.class_code)
        .order_by(day.desc(), AuditEntry.consumer_code, AuditEntry.class_code)
    )
    if since:
        query = query.where(AuditEntry.at >= datetime.combine(since, datetime.min.time(), UTC))
    return [
        {
            "day": str(d),
            "consumer": c,
            "class_code": k,
            "calls": n,
            "rows": int(r or 0),
            "denied": int(bad or 0),
        }
        for d, c, k, n, r, bad in session.execute(query)
    ]


def usage_totals(rows: list[dict[str, Any]], top: int = 5) -> dict[str, list[dict[str, Any]]]:
    """``usage`` rows summed per day and per consumer unit (the busiest ``top``)."""
    days: dict[str, dict[str, Any]] = {}
    units: dict[str, dict[str, Any]] = {}
    for row in rows:
        for groups, name, key in ((days, "day", row["day"]), (units, "consumer", row["consumer"])):
            total = groups.setdefault(key, {name: key, "calls": 0, "rows": 0, "denied": 0})
            for figure in ("calls", "rows", "denied"):
                total[figure] += row[figure]
    busiest = sorted(units.values(), key=lambda u: (-u["calls"], u["consumer"] or ""))
    return {"days": sorted(days.values(), key=lambda d: d["day"]), "units": busiest[:top]}


def prune(session: Session, retention_years: int, today: date | None = None) -> int:
    """Drop entries older than the retention period; the head remembers where the kept chain
    starts, so `verify` still checks everything that is left."""
    today = today or date.today()
    cutoff = datetime.combine(
        today - timedelta(days=round(365.25 * retention_years)), datetime.min.time(), UTC
    )
    head = ensure_head(session)
    first_kept = session.execute(
        select(AuditEntry.id, AuditEntry.prev_hash)
        .where(AuditEntry.at >= cutoff)
        .order_by(AuditEntry.id)
        .limit(1)
    ).first()
    stop = first_kept[0] if first_kept else head.last_id + 1
    if stop <= head.first_id:
        return 0
    session.execute(delete(AuditSubject).where(AuditSubject.audit_id < stop))
    removed = session.execute(delete(AuditEntry).where(AuditEntry.id < stop)).rowcount
    head.first_id = stop
    head.first_prev_hash = first_kept[1] if first_kept else head.last_hash
    return removed
