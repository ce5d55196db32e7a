"""Aggregation logic: one file in, one batch out — read, validate, stage atomically, report.

A batch is all visible or not at all: staged rows, rejects and the batch's 'committed' status are
written in one transaction. The batch record itself is written first, as 'running', so a killed
run leaves a trace that the next run marks 'interrupted'."""

from __future__ import annotations

import hashlib
import importlib
import itertools
import os
import socket
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.orm import Session, selectinload

from citydata.catalog import vocab
from citydata.catalog.models import Field as CatalogField
from citydata.catalog.models import ResourceClass, Unit
from citydata.cells import neutralise_frame
from citydata.clock import city_day, city_midnight
from citydata.db.base import as_utc, utcnow
from citydata.db.engine import Store
from citydata.ingest import staging
from citydata.ingest.models import Batch, Reject
from citydata.ingest.readers import Source, UnreadableFile, open_source
from citydata.ingest.validate import ROW, BatchKeys, Checked, validate
from citydata.mechanisms import changes
from citydata.privacy.masking import class_fields, grant_masks, mask_value
from citydata.standards.ids import id_check_digit, id_number_problem

MODES = ("append", "upsert", "replace", "delete")
Progress = Callable[[str, int, int], None]


class IngestError(ValueError):
    """The request itself is wrong (unknown class, wrong unit, bad mode): no batch is made."""


@dataclass
class Report:
    batch_id: int | None
    status: str  # committed | failed | duplicate
    file: str
    class_code: str
    mode: str
    rows_read: int = 0
    rows_accepted: int = 0
    rows_rejected: int = 0
    rows_removed: int = 0
    message: str = ""
    encoding: str | None = None
    rejections: list[dict] = field(default_factory=list)  # the first ones: row, field, rule, value
    quality: dict = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def file_facts(path: Path, block: int = 1 << 20) -> tuple[str, bool]:
    """The file's SHA-256, and whether its bytes are plain: no backslash, tab, double quote or
    carriage return other than in a CRLF line end. A plain CSV file can hold no value with a
    character that COPY's text format would read as special (a line break inside a value needs
    quotes), so its rows may be sent in that format, which PostgreSQL reads a sixth faster."""
    digest = hashlib.sha256()
    plain, carriage_returns, line_ends, last = True, 0, 0, b""
    with path.open("rb") as f:
        while chunk := f.read(block):
            digest.update(chunk)
            if plain:  # each `in` is one memchr; CRs are counted only in files that have any
                plain = b"\\" not in chunk and b"\t" not in chunk and b'"' not in chunk
                if b"\r" in chunk or last == b"\r":
                    carriage_returns += chunk.count(b"\r")
                    line_ends += chunk.count(b"\r\n") + (last == b"\r" and chunk[:1] == b"\n")
                last = chunk[-1:]
    return digest.hexdigest(), plain and carriage_returns == line_ends


def _worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover_interrupted(session: Session) -> list[int]:
    """Batches left 'running' by a process of this host that no longer exists were killed
    mid-way; their transaction never committed, so they staged nothing. Mark them."""
    host = socket.gethostname()
    marked = []
    for batch in session.scalars(select(Batch).where(Batch.status == "running")):
        worker_host, _, pid = batch.worker.rpartition(":")
        if worker_host == host and pid.isdigit() and not _alive(int(pid)):
            batch.status = "interrupted"
            batch.message = "处理中断（进程已退出），未写入任何数据；请重新提交"
            batch.finished_at = utcnow()
            marked.append(batch.id)
    return marked


def _class(session: Session, code: str) -> ResourceClass:
    rc = session.scalar(
        select(ResourceClass)
        .where(ResourceClass.code == code)
        .options(selectinload(ResourceClass.fields))
    )
    if rc is None:
        raise IngestError(f"信息资源「{code}」不在目录中")
    if rc.status == "retired":
        raise IngestError(f"信息资源「{code}」已停用，不再接收数据")
    return rc


def _match_columns(
    columns: list[str], rc: ResourceClass, mode: str, name: str
) -> tuple[dict[str, str], list[str]]:
    """Header → field names (by name or Chinese label), and the columns no field claims; refuses a
    header that lacks a required column or names one field twice."""
    by_header = {f.label: f.name for f in rc.fields} | {f.name: f.name for f in rc.fields}
    renames = {c: by_header[c] for c in columns if c in by_header}
    unknown = [c for c in columns if c not in by_header]
    needed = [f for f in rc.fields if (f.is_key if mode == "delete" else f.required)]
    missing = [f for f in needed if f.name not in renames.values()]
    if missing:
        listed = "、".join(f"「{f.label}」({f.name})" for f in missing)
        raise UnreadableFile(f"{name}: 缺少必需的列 {listed}")
    seen = list(renames.values())
    if len(set(seen)) != len(seen):
        raise UnreadableFile(f"{name}: 有两列对应同一个信息项，请删去重复的列")
    return renames, unknown


class Tally:
    """What the quality report needs, summed chunk by chunk."""

    def __init__(self, names: list[str]):
        self.names = names
        self.rows = self.accepted = self.rejected_rows = 0
        self.filled = dict.fromkeys(names, 0)
        self.failures: dict[str, dict[str, int]] = {}
        self.first_rejects: list[dict] = []

    def add(self, frame: pl.DataFrame, checked: Checked) -> None:
        self.rows += frame.height
        self.accepted += checked.accepted.height
        present = [c for c in self.names if c in frame.columns]
        if present and frame.height:
            counts = frame.select(pl.col(c).count() for c in present).row(0)
            for c, n in zip(present, counts, strict=True):
                self.filled[c] += n
        rejects = checked.rejects
        if rejects.height:
            self.rejected_rows += rejects["row"].n_unique()
            for fld, rule, n in rejects.group_by("field", "rule").len().iter_rows():
                by_rule = self.failures.setdefault(fld, {})
                by_rule[rule] = by_rule.get(rule, 0) + n
            self.first_rejects += rejects.head(20 - len(self.first_rejects)).to_dicts()


def _quality(
    tally: Tally, keys: BatchKeys, rc: ResourceClass, previous: datetime | None, now: datetime
) -> dict[str, Any]:
    n = tally.rows
    completeness = {c: round(tally.filled[c] / n, 4) if n else 0.0 for c in tally.names}
    uniqueness = round(keys.distinct() / keys.keyed_rows, 4) if keys.keyed_rows else 1.0
    since = (now - previous).days if previous else None
    timely = vocab.on_time(rc.update_cycle, since)
    validity = round((n - tally.rejected_rows) / n, 4) if n else 1.0
    mean_complete = sum(completeness.values()) / len(completeness) if completeness else 1.0
    return {
        "rows_read": n,
        "rows_rejected": tally.rejected_rows,
        "failures": {f: dict(sorted(r.items())) for f, r in sorted(tally.failures.items())},
        "completeness": completeness,
        "validity": validity,
        "key_uniqueness": uniqueness,
        "timeliness": {
            "update_cycle": rc.update_cycle,
            "days_since_previous": since,
            "on_time": timely,
        },
        "score": round(100 * (0.6 * validity + 0.3 * mean_complete + 0.1 * timely), 1),
    }


# Files are hashed on a thread of their own while they are read, checked and written.
_hashing = ThreadPoolExecutor(2, thread_name_prefix="file-hash")


def ingest(
    store: Store,
    path: Path,
    class_code: str,
    unit_code: str | None = None,
    mode: str = "append",
    encoding: str | None = None,
    submitted_by: str = "",
    file_name: str | None = None,
    progress: Progress | None = None,
    today: date | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> Report:
    """Ingest one file as one batch of ``class_code``. ``on_batch`` hears the new batch's id
    once it is recorded (and known not to be a resubmission); the batch's ``rows_read`` counts
    up chunk by chunk while it runs.

    The file's hash is worked out on a thread of its own while the file is read, checked and
    written: writing starts without it. A file found to have come in before is rolled back and
    its batch record removed: a resubmission changes nothing."""
    name = file_name or path.name
    step = progress or (lambda _stage, _done, _total: None)
    if mode not in MODES:
        raise IngestError(f"未知模式「{mode}」，可选：{'、'.join(MODES)}")
    hashing = _hashing.submit(file_facts, path)
    _hashing.submit(importlib.import_module, "citydata.standards.id_bytes")  # NumPy, meanwhile
    with store.session() as session:
        recover_interrupted(session)
        rc = _class(session, class_code)
        if unit_code and unit_code != rc.provider_code:
            raise IngestError(
                f"信息资源「{class_code}」由单位「{rc.provider_code}」提供，不是「{unit_code}」"
            )
        previous = session.scalar(
            select(func.max(Batch.created_at)).where(
                Batch.class_code == class_code, Batch.status == "committed"
            )
        )
        fields = list(rc.fields)
        keys = [f.name for f in fields if f.is_key]
        session.expunge(rc)

    def record() -> int:
        with store.session() as session:
            batch = Batch(
                class_code=class_code,
                unit_code=rc.provider_code,
                file_name=name,
                file_hash="",  # set once the hash is known
                mode=mode,
                status="running",
                submitted_by=submitted_by,
                worker=_worker(),
            )
            session.add(batch)
            session.flush()
            return batch.id

    twin: Batch | None = None
    checked_twin = False

    def check_twin() -> bool:
        """Whether this file came in before (asked once, as soon as its hash is known)."""
        nonlocal twin, checked_twin
        if not checked_twin:
            twin = _committed_twin(store, class_code, hashing.result()[0], mode)
            checked_twin = True
            if twin is None and on_batch:
                on_batch(batch_id)
        return twin is not None

    report = Report(None, "failed", name, class_code, mode)
    batch_id: int | None = None
    try:
        step("读取", 0, 0)
        with open_source(path, encoding=encoding) as source:
            report.encoding = source.encoding
            renames, unknown = _match_columns(source.columns, rc, mode, name)
            check_fields = [f for f in fields if f.is_key] if mode == "delete" else fields
            batch_keys = BatchKeys(keys)
            tally = Tally([f.name for f in fields])
            with staging.BatchWriter(store.engine, rc, mode, keys) as writer:
                checked = _checked(source, renames, check_fields, batch_keys, tally, today)
                first = next(checked, None)
                batch_id = record()
                for chunk in itertools.chain([first] if first else [], checked):
                    if hashing.done() and check_twin():
                        break
                    writer.write(
                        chunk.accepted.with_columns(pl.lit(batch_id).alias(staging.BATCH)),
                        chunk.rejects.with_columns(pl.lit(batch_id).alias("batch_id")),
                        Reject.__table__,
                        # Only a CSV file's bytes are its values (transcoded GBK included).
                        plain=source.format == "csv" and hashing.done() and hashing.result()[1],
                    )
                    step("校验并写入", tally.rows, 0)
                    _record_progress(store, batch_id, tally.rows)
                if not check_twin():
                    quality = _quality(tally, batch_keys, rc, as_utc(previous), datetime.now(UTC))
                    if unknown:
                        quality["ignored_columns"] = unknown
                    report.message = f"已接收 {tally.accepted} 行，拒收 {tally.rejected_rows} 行"
                    writer.commit(
                        Batch.__table__,
                        batch_id,
                        {
                            "status": "committed",
                            "file_hash": hashing.result()[0],
                            "rows_read": tally.rows,
                            "rows_accepted": tally.accepted,
                            "rows_rejected": tally.rejected_rows,
                            "report": quality,
                            "message": report.message,
                            "finished_at": utcnow(),
                        },
                    )
        if twin is not None:  # rolled back as the writer closed: now forget the batch itself
            _forget(store, batch_id)
            return Report(
                twin.id,
                "duplicate",
                name,
                class_code,
                mode,
                twin.rows_read,
                0,
                0,
                message=f"同一文件已在批次 {twin.id} 提交过，本次未做任何改动",
            )
        step("完成", tally.rows, tally.rows)
    except UnreadableFile as exc:
        if batch_id is None:  # failed before it was recorded: on record all the same
            batch_id = record()
        _finish(store, batch_id, "failed", str(exc), hashing.result()[0])
        report.batch_id, report.message = batch_id, str(exc)
        return report
    except BaseException as exc:
        if batch_id is not None:
            message = f"处理失败，未写入任何数据：{exc!r}"
            _finish(store, batch_id, "failed", message, hashing.result()[0])
        raise
    report.batch_id = batch_id
    report.status = "committed"
    report.rows_read = tally.rows
    report.rows_accepted = tally.accepted
    report.rows_rejected = tally.rejected_rows
    report.rows_removed = writer.removed
    report.rejections = tally.first_rejects
    report.quality = quality
    return report


def _checked(
    source: Source,
    renames: dict[str, str],
    fields: list,
    batch_keys: BatchKeys,
    tally: Tally,
    today: date | None,
) -> Iterator[Checked]:
    """Each chunk of ``source`` with its columns named as fields and its source row numbers,
    checked; ``tally`` counts it."""
    for chunk in source.chunks():
        frame = (
            chunk.select(list(renames))
            .rename(renames)
            .with_row_index(ROW, offset=tally.rows + 1)
            .with_columns(pl.col(ROW).cast(pl.Int64))
        )
        checked = validate(frame, fields, batch_keys, today)
        tally.add(frame, checked)
        yield checked


def _committed_twin(store: Store, class_code: str, digest: str, mode: str) -> Batch | None:
    """The committed batch this file already came in as, if any."""
    with store.session() as session:
        return session.scalar(
            select(Batch)
            .where(
                Batch.class_code == class_code,
                Batch.file_hash == digest,
                Batch.status == "committed",
                Batch.mode == mode,
            )
            .order_by(Batch.id)
        )


def _record_progress(store: Store, batch_id: int, rows: int) -> None:
    """Rows read so far, for the batch page to show while it runs (its own tiny transaction:
    the staged rows stay invisible until the batch commits)."""
    with store.session() as session:
        if store.engine.dialect.name == "postgresql":  # a count, not worth a wait for the disk
            session.execute(text("SET LOCAL synchronous_commit = off"))
        session.execute(update(Batch).where(Batch.id == batch_id).values(rows_read=rows))


def _finish(store: Store, batch_id: int, status: str, message: str, digest: str) -> None:
    with store.session() as session:
        batch = session.get(Batch, batch_id)
        batch.status, batch.message, batch.finished_at = status, message, utcnow()
        batch.file_hash = digest
        changes.mark(session, "ingest")


def _forget(store: Store, batch_id: int) -> None:
    """Remove a resubmitted file's batch record (nothing else of it was ever committed)."""
    with store.session() as session:
        session.execute(delete(Batch).where(Batch.id == batch_id))


# ---------------------------------------------------------------- queries


def batch_dict(batch: Batch) -> dict[str, Any]:
    return {
        "batch_id": batch.id,
        "class_code": batch.class_code,
        "unit_code": batch.unit_code,
        "file_name": batch.file_name,
        "file_hash": batch.file_hash,
        "mode": batch.mode,
        "status": batch.status,
        "submitted_by": batch.submitted_by,
        "rows_read": batch.rows_read,
        "rows_accepted": batch.rows_accepted,
        "rows_rejected": batch.rows_rejected,
        "rows_removed": batch.rows_removed,
        "message": batch.message,
        "created_at": batch.created_at.isoformat() if batch.created_at else None,
        "finished_at": batch.finished_at.isoformat() if batch.finished_at else None,
        "quality": batch.report,
    }


def list_batches(
    session: Session,
    unit: str | None = None,
    class_code: str | None = None,
    offset: int = 0,
    limit: int = 50,
    status: str | None = None,
    day: date | None = None,
) -> tuple[int, list[Batch]]:
    """Batches, newest first: of a unit, a class, a status, submitted on a day (the city's)."""
    query = select(Batch)
    if unit:
        query = query.where(Batch.unit_code == unit)
    if class_code:
        query = query.where(Batch.class_code == class_code)
    if status:
        query = query.where(Batch.status == status)
    if day:
        query = query.where(
            Batch.created_at >= city_midnight(day),
            Batch.created_at < city_midnight(day + timedelta(days=1)),
        )
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    return total, list(session.scalars(query.order_by(Batch.id.desc()).offset(offset).limit(limit)))


def rejects_frame(session: Session, batch_id: int) -> pl.DataFrame:
    rows = session.execute(
        select(Reject.row, Reject.field, Reject.rule, Reject.value)
        .where(Reject.batch_id == batch_id)
        .order_by(Reject.row, Reject.field)
    ).all()
    return pl.DataFrame(
        rows,
        schema={"row": pl.Int64, "field": pl.String, "rule": pl.String, "value": pl.String},
        orient="row",
    )


def rejects_shown(session: Session, batch: Batch, limit: int) -> list[dict[str, Any]]:
    """The first rejected checks of a batch for a page or the API: personal values masked as the
    sharing service masks them (jointly over the class's fields: rejects of one row together
    must not rebuild a masked value)."""
    rc = session.get(ResourceClass, batch.class_code)
    rows = explained(rejects_frame(session, batch.id).head(limit)).to_dicts()
    if rc is None:
        return [{**r, "value": None} for r in rows]
    every, masks = class_fields(rc.code, rc.fields)
    kinds = grant_masks(every, masks, [f.name for f in every], [])
    for r in rows:
        if r["field"] in kinds:
            r["value"] = mask_value(r["value"], kinds[r["field"]])
    return rows


def _id_problem(value: str | None) -> str:
    """Why a refused ID number was refused (a legacy 15-digit one judged as converted)."""
    number = (value or "").strip().upper()
    if len(number) == 15 and number.isdigit():
        first17 = number[:6] + "19" + number[6:]
        number = first17 + id_check_digit(first17)
    return id_number_problem(number) or ""


def explained(frame: pl.DataFrame) -> pl.DataFrame:
    """Rejects with ``说明``: the rule's Chinese name, and for an ID number why it failed
    ("430120：1983 年后停用，早于首次发证"). The reasons are worked out only for the refused
    values of that one rule — the rows that failed, never the batch."""
    named = pl.col("rule").replace_strict(RULE_NAMES, default=pl.col("rule"))
    ids = frame.filter(pl.col("rule") == "id_number")
    reasons = dict.fromkeys(ids["value"].unique().to_list())
    for value in reasons:
        reasons[value] = _id_problem(value)
    why = pl.col("value").replace_strict(reasons, default="", return_dtype=pl.String)
    return frame.with_columns(
        pl.when((pl.col("rule") == "id_number") & (why != ""))
        .then(pl.concat_str(named, pl.lit("："), why))
        .otherwise(named)
        .alias("说明")
    )


def rejects_export(session: Session, batch_id: int, fmt: str = "csv") -> bytes:
    """The rejected checks with the rule's Chinese name and, where it helps, why — for the
    department to fix and resubmit."""
    frame = explained(rejects_frame(session, batch_id)).rename(
        {"row": "行号", "field": "信息项", "rule": "规则", "value": "原值"}
    )
    if fmt == "xlsx":
        import io

        buffer = io.BytesIO()
        frame.write_excel(buffer, worksheet="拒收明细")
        return buffer.getvalue()
    return b"\xef\xbb\xbf" + neutralise_frame(frame).write_csv().encode()  # BOM: Excel reads UTF-8


RULE_NAMES = {
    **vocab.RULES,
    "required": "必填项为空",
    "type": "数据类型不符",
    "length": "超过长度",
    "enum": "不在枚举值范围内",
    "duplicate_key": "业务主键在批次内重复",
}


def aggregated_classes(session: Session) -> int:
    return (
        session.scalar(
            select(func.count(func.distinct(Batch.class_code))).where(Batch.status == "committed")
        )
        or 0
    )


def unit_names(session: Session) -> dict[str, str]:
    return dict(session.execute(select(Unit.code, Unit.short_name)).all())


def field_labels(session: Session, class_code: str) -> dict[str, str]:
    return dict(
        session.execute(
            select(CatalogField.name, CatalogField.label).where(
                CatalogField.class_code == class_code
            )
        ).all()
    )


def class_batches(session: Session, class_code: str, limit: int = 20) -> list[dict[str, Any]]:
    """A class's last committed batches, oldest first: rows accepted, rejected, the score."""
    found = session.execute(
        select(Batch.id, Batch.created_at, Batch.rows_accepted, Batch.rows_rejected, Batch.report)
        .where(Batch.class_code == class_code, Batch.status == "committed")
        .order_by(Batch.id.desc())
        .limit(limit)
    ).all()
    return [
        {
            "id": i,
            "day": city_day(as_utc(at)).isoformat(),
            "accepted": accepted,
            "rejected": rejected,
            "score": (report or {}).get("score"),
        }
        for i, at, accepted, rejected, report in reversed(found)
    ]


def quality_history(
    session: Session, unit: str | None = None, class_code: str | None = None
) -> list[dict[str, Any]]:
    """Per month (the city's) of the committed batches of a unit or a class: the mean quality
    score, the share of batches that came within their class's update cycle, how many classes
    sent and how many batches — a unit's or a class's timeliness and quality over time."""
    query = select(Batch.class_code, Batch.created_at, Batch.report).where(
        Batch.status == "committed"
    )
    if unit:
        query = query.where(Batch.unit_code == unit)
    if class_code:
        query = query.where(Batch.class_code == class_code)
    months: dict[str, dict[str, Any]] = {}
    for code, at, report in session.execute(query).all():
        month = city_day(as_utc(at)).strftime("%Y-%m")
        m = months.setdefault(month, {"scores": [], "on_time": 0, "classes": set()})
        m["scores"].append(float((report or {}).get("score", 0)))
        m["on_time"] += bool((report or {}).get("timeliness", {}).get("on_time", True))
        m["classes"].add(code)
    return [
        {
            "month": month,
            "score": round(sum(m["scores"]) / len(m["scores"]), 1),
            "on_time": round(m["on_time"] / len(m["scores"]), 4),
            "batches": len(m["scores"]),
            "classes": len(m["classes"]),
        }
        for month, m in sorted(months.items())
    ]


def quality_scores(
    session: Session, unit: str | None = None, class_code: str | None = None
) -> dict[str, Any]:
    """Running scores: a class's score is the mean of its committed batches' scores; a unit's is
    the mean over its classes."""
    query = select(Batch).where(Batch.status == "committed")
    if unit:
        query = query.where(Batch.unit_code == unit)
    if class_code:
        query = query.where(Batch.class_code == class_code)
    per_class: dict[str, list[float]] = {}
    unit_of: dict[str, str] = {}
    for batch in session.scalars(query):
        per_class.setdefault(batch.class_code, []).append(float(batch.report.get("score", 0)))
        unit_of[batch.class_code] = batch.unit_code
    classes = {
        code: {"unit": unit_of[code], "batches": len(s), "score": round(sum(s) / len(s), 1)}
        for code, s in sorted(per_class.items())
    }
    units: dict[str, list[float]] = {}
    for info in classes.values():
        units.setdefault(info["unit"], []).append(info["score"])
    names = dict(session.execute(select(Unit.code, Unit.short_name)).all())
    return {
        "classes": classes,
        "units": {
            u: {"name": names.get(u, u), "classes": len(s), "score": round(sum(s) / len(s), 1)}
            for u, s in sorted(units.items())
        },
    }
