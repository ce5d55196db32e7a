"""Pages: batches (list, upload, detail) and the quality board."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import RedirectResponse

from citydata.ingest import permissions, service
from citydata.ingest.api import (
    batch_scope,
    receive_in_background,
    shown_rejects,
    visible_batch,
)
from citydata.web.auth import check_csrf, current_user, signed_in
from citydata.web.params import RowId
from citydata.web.render import render, use_templates

router = APIRouter(include_in_schema=False)
use_templates(__file__)


STATUSES = ("running", "committed", "failed", "interrupted")


@router.get("/batches")
def batches_page(
    request: Request,
    unit: str = "",
    status: str = "",
    day: date | None = None,
    page: int = Query(1, ge=1, le=1 << 20),
):
    """Batches, newest first; of a unit, a status, a day (the city's) — the cockpit's figures
    drill down to these rows."""
    with request.app.state.store.session() as session:
        user = signed_in(request, session)
        own = batch_scope(user)
        if own is not None:
            unit = own
        status = status if status in STATUSES else ""
        total, rows = service.list_batches(
            session, unit or None, None, (page - 1) * 50, 50, status or None, day
        )
        return render(
            request,
            "batches.html",
            user,
            rows=rows,
            total=total,
            page=page,
            unit=unit,
            status=status,
            day=day,
            units=service.unit_names(session),
        )


@router.post("/batches/upload")
def upload(
    request: Request,
    file: UploadFile = File(...),
    class_code: str = Form(...),
    mode: str = Form("append"),
    encoding: str = Form(""),
    csrf: str = Form(""),
):
    check_csrf(request, csrf)
    with request.app.state.store.session() as session:
        user = signed_in(request, session)
    batch_id = receive_in_background(request, user, file, class_code.strip(), mode, encoding)
    return RedirectResponse(f"/batches/{batch_id}", status_code=303)


@router.get("/batches/{batch_id}")
def batch_page(request: Request, batch_id: RowId):
    with request.app.state.store.session() as session:
        user = signed_in(request, session)
        batch, values = visible_batch(session, user, batch_id)
        rejects = shown_rejects(request, session, user, batch, values, 200)
        return render(
            request,
            "batch_detail.html",
            user,
            b=batch,
            by_rule=rejects_by_rule(batch, service.field_labels(session, batch.class_code)),
            unit_name=service.unit_names(session).get(batch.unit_code, batch.unit_code),
            rejects=rejects,
            values=values,
            may_download=permissions.may_download_rejects(user, batch),
            rule_names=service.RULE_NAMES,
        )


def rejects_by_rule(batch, labels: dict[str, str]) -> dict[str, Any]:
    """The batch's one picture: how many values broke each rule, each field a colour (from its
    quality report — one row, not a scan of the rejects)."""
    failures = (batch.report or {}).get("failures", {})
    totals: dict[str, int] = {}
    for per_rule in failures.values():
        for rule, n in per_rule.items():
            totals[rule] = totals.get(rule, 0) + int(n)
    rules = sorted(totals, key=lambda r: (-totals[r], r))
    return {
        "kind": "hbar",
        "x": [service.RULE_NAMES.get(r, r) for r in rules],
        "keys": rules,
        "series": [
            {
                "name": labels.get(field, field),
                "key": field,
                "data": [int(per_rule.get(r, 0)) for r in rules],
                "stack": "fields",
            }
            for field, per_rule in sorted(failures.items())
        ],
        "unit": "count",
        "empty": "本批次没有拒收",
    }


def _history_payload(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "kind": "line",
        "x": [r["month"] for r in rows],
        "keys": [r["month"] for r in rows],
        "series": [
            {"name": "质量得分", "data": [r["score"] for r in rows]},
            {"name": "按时入库的批次比例", "data": [r["on_time"] for r in rows], "axis": 1},
        ],
        "unit": "score",
        "max": 100,
        "axis_units": ["score", "rate"],
        "batches": [r["batches"] for r in rows],
        "empty": "尚无入库批次",
    }


@router.get("/quality/units/{code}.json")
def unit_history(request: Request, code: str):
    """A unit's classes' quality and timeliness per month (as open as the quality board)."""
    with request.app.state.store.session() as session:
        rows = service.quality_history(session, unit=code[:32])
    return _history_payload(rows)


@router.get("/quality/classes/{code:path}.json")
def class_history(request: Request, code: str):
    """A class's batches, the last 20: rows accepted and rejected, and the quality score."""
    with request.app.state.store.session() as session:
        found = service.class_batches(session, code[:40], 20)
    return {
        "kind": "bar",
        "x": [f"#{b['id']} {b['day'][5:]}" for b in found],
        "keys": [str(b["id"]) for b in found],
        "series": [
            {"name": "接收行数", "data": [b["accepted"] for b in found], "stack": "rows"},
            {"name": "拒收行数", "data": [b["rejected"] for b in found], "stack": "rows"},
            {"name": "质量得分", "type": "line", "axis": 1, "data": [b["score"] for b in found]},
        ],
        "unit": "count",
        "axis_units": ["count", "score"],
        "empty": "尚无入库批次",
    }


@router.get("/quality")
def quality_page(request: Request):
    with request.app.state.store.session() as session:
        user = current_user(request, session)
        return render(request, "quality.html", user, scores=service.quality_scores(session))
