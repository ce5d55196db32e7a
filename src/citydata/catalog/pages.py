"""Catalog pages: search and browse resource classes, one class in detail, the units."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request

from citydata.catalog import service
from citydata.web.auth import current_user
from citydata.web.render import render, use_templates

router = APIRouter(include_in_schema=False)
use_templates(__file__)
PAGE = 50


@router.get("/catalog")
def catalog_page(
    request: Request,
    q: str = "",
    unit: str = "",
    sharing: str = "",
    open: str = "",
    base: str = "",
    page: int = 1,
):
    page = max(page, 1)
    with request.app.state.store.session() as session:
        user = current_user(request, session)
        total, rows = service.list_classes(
            session,
            service.ClassFilter(
                unit or None, sharing or None, open or None, base or None, text=q or None
            ),
            (page - 1) * PAGE,
            PAGE,
        )
        units = [u for u, _ in service.list_units(session)]
        return render(
            request,
            "catalog_list.html",
            user,
            rows=rows,
            total=total,
            page=page,
            pages=max((total + PAGE - 1) // PAGE, 1),
            units=units,
            query={"q": q, "unit": unit, "sharing": sharing, "open": open, "base": base},
        )


@router.get("/catalog/{code:path}")
def class_page(code: str, request: Request):
    with request.app.state.store.session() as session:
        user = current_user(request, session)
        rc = service.get_class(session, code)
        if rc is None:
            raise HTTPException(404, f"信息资源「{code}」不存在")
        return render(request, "class_detail.html", user, rc=rc)


@router.get("/units")
def units_page(request: Request):
    with request.app.state.store.session() as session:
        user = current_user(request, session)
        return render(request, "units.html", user, units=service.list_units(session))


@router.get("/units/{code}")
def unit_page(request: Request, code: str):
    """A unit: who it is, its classes, and the picture of their quality and timeliness over
    time (drawn from the aggregation's figures, fetched by the page)."""
    with request.app.state.store.session() as session:
        user = current_user(request, session)
        unit = service.get_unit(session, code[:32])
        if unit is None:
            raise HTTPException(404, f"单位「{code[:32]}」不存在")
        total, classes = service.list_classes(session, service.ClassFilter(unit.code), 0, 500)
        return render(request, "unit_detail.html", user, unit=unit, classes=classes, total=total)
