"""Whole-dataset files, streamed chunk by chunk (never the whole table in memory), and the
download counter."""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterator
from datetime import date

import orjson
import polars as pl
import xlsxwriter
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from citydata.cells import XLSXWRITER_OPTIONS, neutralise_frame
from citydata.db.engine import Store
from citydata.mechanisms import changes
from citydata.opendata.models import OpenDownload
from citydata.opendata.service import Dataset, OpenDataError, iter_rows

XLSX_MAX_ROWS = 1_048_575  # a worksheet's rows, less the header


def count(session: Session, code: str, fmt: str, day: date) -> None:
    """One more download of ``code`` as ``fmt`` today (race-safe: update, else insert)."""
    bump = (
        update(OpenDownload)
        .where(OpenDownload.dataset == code, OpenDownload.format == fmt, OpenDownload.day == day)
        .values(count=OpenDownload.count + 1)
    )
    if not session.execute(bump).rowcount:  # type: ignore[attr-defined]
        try:
            with session.begin_nested():
                session.add(OpenDownload(dataset=code, format=fmt, day=day, count=1))
        except IntegrityError:  # another request inserted today's row first
            session.execute(bump)
    changes.mark(session, "opendata")
    session.commit()


def totals(session: Session, code: str) -> dict[str, int]:
    rows = session.execute(
        select(OpenDownload.format, func.sum(OpenDownload.count))
        .where(OpenDownload.dataset == code)
        .group_by(OpenDownload.format)
    ).all()
    return {fmt: int(n) for fmt, n in rows}


def _chunks(store: Store, ds: Dataset) -> Iterator[list[tuple]]:
    with store.read_session() as session:  # the replica's, if there is one
        yield from iter_rows(session, ds)


def stream(store: Store, ds: Dataset, fmt: str) -> Iterator[bytes]:
    names = [f.name for f in ds.fields]
    if fmt == "xlsx" and ds.rows > XLSX_MAX_ROWS:
        raise OpenDataError(
            f"「{ds.title}」有 {ds.rows} 行，超过 Excel 工作表的上限，请下载 CSV", status=413
        )
    return {"csv": _csv, "json": _json, "xlsx": _xlsx}[fmt](store, ds, names)


def _csv(store: Store, ds: Dataset, names: list[str]) -> Iterator[bytes]:
    # UTF-8 with a byte-order mark: Excel opens it with the Chinese intact.
    yield "\ufeff".encode() + (",".join(names) + "\n").encode()
    for rows in _chunks(store, ds):
        frame = pl.DataFrame(rows, schema=dict.fromkeys(names, pl.String), orient="row")
        buffer = io.BytesIO()
        neutralise_frame(frame).write_csv(buffer, include_header=False)
        yield buffer.getvalue()


def _json(store: Store, ds: Dataset, names: list[str]) -> Iterator[bytes]:
    yield b"["
    first = True
    for rows in _chunks(store, ds):
        body = b",".join(orjson.dumps(dict(zip(names, r, strict=True))) for r in rows)
        yield (b"" if first else b",") + body
        first = False
    yield b"]"


def _xlsx(store: Store, ds: Dataset, names: list[str]) -> Iterator[bytes]:
    """xlsxwriter in constant-memory mode writes row by row to a temporary file, which is then
    sent in 1 MiB pieces and removed."""
    handle, path = tempfile.mkstemp(suffix=".xlsx")
    os.close(handle)
    try:
        book = xlsxwriter.Workbook(
            path, {"constant_memory": True, "strings_to_numbers": False, **XLSXWRITER_OPTIONS}
        )
        sheet = book.add_worksheet(ds.code.replace("/", "-")[:31])
        labels = {f.name: f.label for f in ds.fields}
        sheet.write_row(0, 0, [labels[n] for n in names])
        at = 1
        for rows in _chunks(store, ds):
            for row in rows:
                sheet.write_row(at, 0, row)
                at += 1
        book.close()
        with open(path, "rb") as f:
            while piece := f.read(1 << 20):
                yield piece
    finally:
        os.unlink(path)
