"""The public portal: search with facets, dataset pages (metadata, fields, a paged preview,
downloads, the API call, update history, download counts, quality), department, topic, latest
and API-guide pages; registration and the application for 有条件开放 data."""

from __future__ import annotations

from datetime import date, timedelta
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse

from citydata.accounts.pages import sign_in
from citydata.accounts.service import AccountError, create_user
from citydata.catalog import vocab
from citydata.opendata import downloads, service
from citydata.opendata.api import api_user, base_url, catalogue
from citydata.opendata.permissions import may_read
from citydata.opendata.service import TOPIC_BY_NAME, TOPICS, OpenDataError
from citydata.share.models import STATUS
from citydata.share.service import ShareError, applications, apply_open
from citydata.web.auth import check_csrf, signed_in
from citydata.web.client import client_ip
from citydata.web.render import render, use_templates

router = APIRouter(include_in_schema=False)
use_templates(__file__)
PAGE_SIZE = 20
PREVIEW_ROWS = 20
FACET_LABELS = {
    "organization": "部门",
    "groups": "主题",
    "tags": "标签",
    "res_format": "格式",
    "update_cycle": "更新周期",
    "quality": "元数据质量",
    "open_type": "开放类型",
}


def _facet_label(facet: str, value: str, names: dict[str, str]) -> str:
    if facet == "organization":
        return names.get(value, value)
    if facet == "groups":
        return TOPIC_BY_NAME[value].title
    if facet == "update_cycle":
        return vocab.label(vocab.UPDATE_CYCLE, value)
    if facet == "open_type":
        return vocab.label(vocab.OPEN_TYPE, value)
    return value


def _search_page(request: Request, heading: str, fixed: dict[str, str], template: str):
    params = request.query_params
    q = params.get("q", "")
    page = params.get("page", "1")
    page = min(max(int(page), 1), 100_000) if page.isdigit() else 1  # a junk page is page 1
    chosen = [(k, params[k]) for k in FACET_LABELS if params.get(k)]
    chosen += list(fixed.items())
    with request.app.state.store.session() as session:
        user = api_user(request, session)
        cat = catalogue(request)
        try:
            found = service.search(
                cat,
                session,
                q=q,
                filters=chosen,
                sort=params.get("sort", ""),
                rows=PAGE_SIZE,
                start=(page - 1) * PAGE_SIZE,
                facet_fields=list(FACET_LABELS),
            )
            error = ""
        except OpenDataError as exc:
            found, error = service.SearchResult(0, [], {}, ""), str(exc)
        names = {ds.provider: ds.provider_short for ds in cat.datasets(session).values()}
    facets = []
    for facet, counts in found.facets.items():
        if facet in fixed:
            continue
        items = []
        for value, n in list(counts.items())[:12]:
            query = {k: v for k, v in params.items() if k not in {"page", facet}}
            active = params.get(facet) == value
            if not active:
                query[facet] = value
            items.append(
                {
                    "label": _facet_label(facet, value, names),
                    "count": n,
                    "href": "?" + urlencode(query),
                    "active": active,
                }
            )
        facets.append({"name": facet, "label": FACET_LABELS[facet], "items": items})
    keep = {k: v for k, v in params.items() if k != "page"}
    pages = max(1, -(-found.count // PAGE_SIZE))
    return render(
        request,
        template,
        user,
        heading=heading,
        q=q,
        found=found,
        facets=facets,
        error=error,
        page=page,
        pages=pages,
        keep=urlencode(keep),
        topics=TOPICS,
    )


@router.get("/open")
def portal(request: Request):
    return _search_page(request, "公共数据开放", {}, "open_search.html")


@router.get("/open/organization/{code}")
def organization(code: str, request: Request):
    with request.app.state.store.session() as session:
        found = [d for d in catalogue(request).datasets(session).values() if d.provider == code]
    if not found:
        return render(request, "open_message.html", message="该部门没有开放数据集", status_code=404)
    return _search_page(request, found[0].provider_name, {"organization": code}, "open_search.html")


@router.get("/open/group/{name}")
def group(name: str, request: Request):
    if name not in TOPIC_BY_NAME:
        return render(request, "open_message.html", message="没有这个主题", status_code=404)
    return _search_page(request, TOPIC_BY_NAME[name].title, {"groups": name}, "open_search.html")


@router.get("/open/latest")
def latest(request: Request):
    with request.app.state.store.session() as session:
        user = api_user(request, session)
        datasets = sorted(
            catalogue(request).datasets(session).values(), key=lambda d: d.modified, reverse=True
        )[:50]
    return render(request, "open_latest.html", user, datasets=datasets)


@router.get("/open/api")
def api_guide(request: Request):
    with request.app.state.store.session() as session:
        user = api_user(request, session)
        example = next(
            (d for d in catalogue(request).datasets(session).values() if d.downloadable), None
        )
    return render(request, "open_api.html", user, base=base_url(request), example=example)


@router.get("/open/dataset/{slug}")
def dataset(slug: str, request: Request, page: int = Query(1, ge=1, le=1_000_000)):
    with request.app.state.store.session() as session:
        user = api_user(request, session)
        try:
            ds = catalogue(request).get(session, slug)
        except OpenDataError as exc:
            return render(request, "open_message.html", user, message=str(exc), status_code=404)
        readable = may_read(session, user, ds)
        preview = None
        if readable:
            preview = service.datastore_search(
                session, ds, limit=PREVIEW_ROWS, offset=(page - 1) * PREVIEW_ROWS
            )
        history = service.history(session, ds)
        counts = downloads.totals(session, ds.code)
        mine = [
            a
            for a in (applications(session, user, class_code=ds.code) if user else [])
            if a.channel == "open" and a.applicant == user.username
        ]
    pages = max(1, -(-ds.rows // PREVIEW_ROWS)) if preview else 1
    return render(
        request,
        "open_dataset.html",
        user,
        ds=ds,
        readable=readable,
        preview=preview,
        page=page,
        pages=pages,
        history=history,
        downloads=counts,
        base=base_url(request),
        topics=[TOPIC_BY_NAME[t] for t in ds.topics],
        mine=mine,
        statuses=STATUS,
    )


@router.post("/open/dataset/{slug}/apply")
def apply(slug: str, request: Request, purpose: str = Form(""), csrf: str = Form("")):
    check_csrf(request, csrf)
    with request.app.state.store.session() as session:
        user = signed_in(request, session)
        ds = catalogue(request).get(session, slug)
        try:
            apply_open(
                session,
                user,
                class_code=ds.code,
                purpose=purpose,
                valid_until=date.today() + timedelta(days=365),
            )
        except ShareError as exc:
            session.rollback()
            return render(request, "open_message.html", user, message=str(exc), status_code=400)
        session.commit()
    return RedirectResponse(f"/open/dataset/{slug}", status_code=303)


@router.get("/open/register")
def register_form(request: Request):
    return render(request, "open_register.html")


@router.post("/open/register")
def register(
    request: Request,
    username: str = Form(...),
    display_name: str = Form(...),
    password: str = Form(...),
    csrf: str = Form(""),
):
    check_csrf(request, csrf)
    with request.app.state.store.session() as session:
        try:
            user = create_user(
                session, username, password, role="public", display_name=display_name
            )
        except AccountError as exc:
            session.rollback()
            return render(request, "open_register.html", error=str(exc), status_code=400)
        sign_in(request, session, user, client_ip(request))
    return RedirectResponse("/open", status_code=303)
