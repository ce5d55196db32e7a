"""The audit chain: every sharing call is written here before its data leaves, each entry hashed
together with the previous entry's hash (as X-Road's message log does), so `verify` finds any
edited, removed or reordered entry.

Writes are group-committed: request threads hand their entry to one writer thread per process
and wait until the transaction holding it has committed. The writer first takes the lock on the
chain's head row, so several server processes still build one chain."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import queue
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import orjson
from sqlalchemy import bindparam, case, func, insert, select, update
from sqlalchemy.orm import Session

from citydata.audit.models import AuditEntry, AuditHead, AuditRemoved, AuditSubject
from citydata.db.base import as_utc
from citydata.db.engine import Store

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
# Retention writes an anchor entry: what it removed, and where the kept chain now starts.
RETENTION = "retention"
IS_CALL = AuditEntry.action.notin_((EXPORT_END, RETENTION))
GROUP_MAX = 500  # entries per commit
WAIT_SECONDS = 30


class AuditError(RuntimeError):
    """The entry could not be written: the call must not return data."""


def _moment(value: datetime) -> str:
    return as_utc(value).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


# Added after entries existed: hashed only when set, so older entries keep their hashes.
HASHED_IF_SET = ("peer_ip",)
QUERY_MAX = 4000  # characters of a call's query kept; a longer one is kept as its hash
_TEXT = {  # String columns have a length
    c.name: c.type.length  # type: ignore[attr-defined]
    for c in AuditEntry.__table__.columns
    if getattr(c.type, "length", None) is not None
}
_INT = {"id", "application_id", "rows", "status_code"}


def _plain(value: Any, depth: int = 0) -> Any:
    """JSON that reads back as it was written on both stores: strings, booleans, null, finite
    numbers within a double's exact integers; anything else as its text."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value if abs(value) < 1 << 53 else str(value)
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else str(value)
    if depth < 8 and isinstance(value, dict):
        return {str(k): _plain(v, depth + 1) for k, v in value.items()}
    if depth < 8 and isinstance(value, list | tuple):
        return [_plain(v, depth + 1) for v in value]
    return str(value)


def canonical(entry: dict[str, Any]) -> dict[str, Any]:
    """The entry exactly as it will be stored and read back, whatever a caller put in it: text
    columns as text cut to their length, numbers as numbers, lists and the query as plain JSON.
    The hash is taken of this, so what is stored always verifies."""
    row = dict(entry)
    for name, length in _TEXT.items():
        if name in row and row[name] is not None:
            row[name] = str(row[name])[:length]
    for name in _INT:
        if row.get(name) is not None:
            try:
                row[name] = int(row[name])
            except (TypeError, ValueError):
                row[name] = None
    row["fields"] = [str(f)[:100] for f in (row.get("fields") or [])][:200]
    row["subjects"] = sorted({int(m) for m in row.get("subjects") or []})
    query = _plain(row.get("query") or {})
    if not isinstance(query, dict):
        query = {"value": query}
    text = orjson.dumps(query, option=orjson.OPT_SORT_KEYS)
    if len(text) > QUERY_MAX:
        query = {"sha256": hashlib.sha256(text).hexdigest(), "chars": len(text)}
    row["query"] = query
    return row


def entry_hash(prev_hash: str, entry: dict[str, Any]) -> str:
    payload = {k: entry.get(k) for k in HASHED}
    payload |= {k: entry[k] for k in HASHED_IF_SET if entry.get(k) is not None}
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
        row = {**canonical(entry), "id": last_id, "prev_hash": last_hash}
        row["entry_hash"] = last_hash = entry_hash(row["prev_hash"], row)
        rows.append(row)
        subjects += [
            {"audit_id": last_id, "master_id": m, "at": row["at"]} for m in row["subjects"]
        ]
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

    def __init__(self, store: Store, observe: Callable[[list[float], int], None] | None = None):
        self.store = store
        # told, after each group, how long its entries waited (seconds) and how many still wait
        self.observe = observe
        self._queue: queue.SimpleQueue[tuple[dict, Future, float]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, entry: dict[str, Any]) -> Future:
        """A future of the entry's id, set once the group holding it has committed."""
        done: Future = Future()
        self._queue.put((entry, done, time.monotonic()))
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
                ids = self.commit([entry for entry, _, _ in group])
            except Exception:  # one bad entry must not fail its neighbours
                for entry, done, _ in group:
                    self._alone(entry, done)
            else:
                for (_, done, _), entry_id in zip(group, ids, strict=True):
                    _settle(done, entry_id)
            if self.observe is not None:
                finished = time.monotonic()
                with contextlib.suppress(Exception):  # the figures are not worth a call
                    self.observe([finished - t for _, _, t in group], self._queue.qsize())

    def _alone(self, entry: dict[str, Any], done: Future) -> None:
        """Write one entry by itself; if even that fails, write what is surely writable about
        the call (who, when, which action, a hash of the rest) and fail the call: it returns no
        data, but it is still on record."""
        try:
            _settle(done, self.commit([entry])[0])
            return
        except Exception as exc:
            failure = exc
        with contextlib.suppress(Exception):  # the store itself is down: the call fails below
            self.commit([fallback(entry)])
        _settle(done, failure)

    def commit(self, entries: list[dict[str, Any]]) -> list[int]:
        with self.store.session() as session:
            return append(session, entries)


def fallback(entry: dict[str, Any]) -> dict[str, Any]:
    """A call whose entry could not be written, recorded by what cannot fail to be."""
    digest = hashlib.sha256(repr(sorted(entry.items(), key=str)).encode()).hexdigest()
    keep = ("at", "request_id", "key_id", "consumer_code", "action", "client_ip", "peer_ip")
    return {
        **{k: entry.get(k) for k in keep},
        "request_id": str(entry.get("request_id") or "")[:36] or digest[:36],
        "action": str(entry.get("action") or "unknown")[:16],
        "fields": [],
        "query": {"unwritable_entry_sha256": digest},
        "rows": 0,
        "subjects": [],
        "outcome": "audit_failed",
        "status_code": 503,
        "response_hash": "",
    }


# ---------------------------------------------------------------- checking and reading


# How the platform's own users appear in the log: reads through pages and the management API
# (an administrator looking up a master, a steward reading rejected values) are reads of
# personal data like any other.
PLATFORM = "citydata 平台"


def people_read(
    *,
    username: str,
    unit_code: str | None,
    action: str,
    class_code: str | None,
    query: dict[str, Any],
    fields: list[str] | None = None,
    rows: int = 0,
    subjects: list[int] | None = None,
    client_ip: str = "",
    peer_ip: str | None = None,
) -> dict[str, Any]:
    """The entry of a person's read on the platform itself."""
    return {
        "at": datetime.now(UTC),
        "request_id": str(uuid.uuid4()),
        "key_id": None,
        "consumer_code": unit_code,
        "system_name": PLATFORM,
        "application_id": None,
        "class_code": class_code,
        "action": action,
        "fields": fields or [],
        "query": query,
        "end_user": username,
        "case_id": "",
        "client_ip": client_ip,
        "peer_ip": peer_ip,
        "rows": rows,
        "subjects": subjects or [],
        "outcome": "ok",
        "status_code": 200,
        "response_hash": "",
    }


@dataclass
class VerifyReport:
    entries: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def removed_digest(rows: list[tuple[int, str, str]]) -> str:
    """The hash an anchor entry keeps of the entries it removed from inside the kept chain."""
    lines = "".join(f"{i}:{p}:{h}\n" for i, p, h in sorted(rows))
    return hashlib.sha256(lines.encode()).hexdigest()


def verify(session: Session, chunk: int = 5000) -> VerifyReport:
    """Walk the chain in order: each entry must hash to its ``entry_hash``, name the previous
    entry's hash, and follow it without a gap; the head must name the last entry. An entry
    retention removed from inside the kept chain is stepped over by its kept hashes, which its
    anchor entry vouches for; where the kept chain starts must be what the last anchor said."""
    head = ensure_head(session)
    report = VerifyReport()
    problem = report.problems.append
    removed = {
        r.id: r for r in session.execute(select(AuditRemoved).order_by(AuditRemoved.id)).scalars()
    }
    anchors: dict[int, dict[str, Any]] = {}
    expected_id, expected_prev = head.first_id, head.first_prev_hash

    def step_over(until: int) -> None:
        nonlocal expected_id, expected_prev
        while expected_id < until and expected_id in removed:
            gone = removed[expected_id]
            if gone.prev_hash != expected_prev:
                problem(
                    {
                        "id": gone.id,
                        "problem": "broken_link",
                        "detail": "已清理记录的前一条哈希不符",
                    }
                )
            expected_id, expected_prev = expected_id + 1, gone.entry_hash

    after = head.first_id - 1
    names = (*HASHED, *HASHED_IF_SET, "prev_hash", "entry_hash")
    columns = [AuditEntry.__table__.c[c] for c in names]
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
        # "Who read this person?" is answered from audit_subjects: it must say what the
        # hashed entries say, or a deleted row would hide a read.
        indexed: dict[int, set[int]] = {}
        for audit_id, master_id in session.execute(
            select(AuditSubject.audit_id, AuditSubject.master_id).where(
                AuditSubject.audit_id.between(rows[0]["id"], rows[-1]["id"])
            )
        ):
            indexed.setdefault(audit_id, set()).add(master_id)
        for row in rows:
            if indexed.get(row["id"], set()) != set(row["subjects"] or []):
                problem(
                    {"id": row["id"], "problem": "subjects", "detail": "被读取人索引与记录不符"}
                )
            report.entries += 1
            step_over(row["id"])
            if row["id"] != expected_id:
                problem({"id": row["id"], "problem": "gap", "detail": f"应为第 {expected_id} 条"})
            if row["prev_hash"] != expected_prev:
                problem({"id": row["id"], "problem": "broken_link", "detail": "前一条的哈希不符"})
            if entry_hash(row["prev_hash"], dict(row)) != row["entry_hash"]:
                problem({"id": row["id"], "problem": "altered", "detail": "内容与哈希不符"})
            if row["action"] == RETENTION:
                anchors[row["id"]] = row["query"] or {}
            expected_id, expected_prev = row["id"] + 1, row["entry_hash"]
        after = rows[-1]["id"]
    step_over(head.last_id + 1)
    if head.last_id != expected_id - 1 or head.last_hash != expected_prev:
        problem(
            {
                "id": head.last_id,
                "problem": "tail",
                "detail": f"链头记录第 {head.last_id} 条，实际最后一条为第 {expected_id - 1} 条",
            }
        )
    _check_anchors(head, removed, anchors, problem)
    return report


def _check_anchors(head: AuditHead, removed: dict, anchors: dict, problem) -> None:
    by_anchor: dict[int, list[tuple[int, str, str]]] = {}
    for gone in removed.values():
        by_anchor.setdefault(gone.anchor_id, []).append((gone.id, gone.prev_hash, gone.entry_hash))
    for anchor_id, rows in by_anchor.items():
        query = anchors.get(anchor_id)
        if query is None or query.get("removed_sha256") != removed_digest(rows):
            problem({"id": anchor_id, "problem": "removed", "detail": "已清理记录与清理锚点不符"})
    if head.first_id > 1:
        last = anchors[max(anchors)] if anchors else {}
        if (last.get("first_kept"), last.get("first_kept_prev")) != (
            head.first_id,
            head.first_prev_hash,
        ):
            problem(
                {
                    "id": head.first_id,
                    "problem": "start",
                    "detail": "链的起点不是保留期清理锚点所记",
                }
            )


def entry_dict(e: AuditEntry) -> dict[str, Any]:
    names = (*HASHED, *HASHED_IF_SET, "entry_hash")
    return {c: getattr(e, c) for c in names} | {"at": _moment(e.at) + "Z"}


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


def usage(
    session: Session, since: date | None = None, consumer: str | None = None
) -> list[dict[str, Any]]:
    """Calls and rows per day, consumer unit and class: the dashboard's sharing figures (of
    one consumer unit, when given)."""
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
    if consumer is not None:
        query = query.where(AuditEntry.consumer_code == consumer)
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


def prune(
    session: Session, retention_years: int, today: date | None = None, now: datetime | None = None
) -> int:
    """Drop entries older than the retention period (``audit.retention``)."""
    from citydata.audit.retention import prune as run

    return run(session, retention_years, today, now)
