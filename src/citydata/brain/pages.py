"""The cockpit's pages and JSON: the home page; ``/brain`` for the city's staff and
``/brain/public`` with open figures only, each as a laptop page and as the command hall's big
screen (``/screen``, dark, a 1920×1080 stage scaled to the display); ``?kiosk=1`` hides the
chrome. Every tile's JSON carries its figures, its timing (the summary query's, the read's, the
serving's), whether it came from a summary and the moment its data is as of."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from citydata.brain import display, service, spec
from citydata.brain.summaries import Reading
from citydata.catalog import service as catalog
from citydata.opendata import mqa
from citydata.web import clock
from citydata.web.auth import current_user, signed_in
from citydata.web.i18n import translate
from citydata.web.render import language, render, use_templates

router = APIRouter(include_in_schema=False)
use_templates(__file__)
STATIC = Path(__file__).parent / "static"  # cockpit.js and brain.css, served at /static/brain/
REFRESH_FLOOR = 10  # seconds: a page never asks more often, whatever the server's round


def _localised(payload: dict[str, Any], lang: str) -> dict[str, Any]:
    """The payload's words in the reader's language (names of units and places stay as they
    are; notes are templates with their figures apart)."""
    if lang == "zh":
        return payload

    def t(text: Any) -> Any:
        return translate(text, lang) if isinstance(text, str) else text

    out = dict(payload)
    for key in ("x", "columns"):
        if key in out:
            out[key] = [t(v) for v in out[key]]
    for key in ("measure", "empty"):
        if key in out:
            out[key] = t(out[key])
    if "series" in out:
        out["series"] = [s | {"name": t(s["name"])} for s in out["series"]]
    if "figures" in out:
        out["figures"] = [f | {"label": t(f["label"])} for f in out["figures"]]
    if "items" in out:
        out["items"] = [i | {"name": t(i["name"])} for i in out["items"]]
    if "regions" in out:
        out["regions"] = [
            r | {"details": {t(k): v for k, v in r.get("details", {}).items()}}
            for r in out["regions"]
        ]
    if "rows" in out:
        out["rows"] = [r | {"cells": [t(c) for c in r["cells"]]} for r in out["rows"]]
    return out


def _notes(payload: dict[str, Any], lang: str) -> dict[str, Any]:
    """Figures' notes written out: each is a template and its values."""
    if "figures" not in payload:
        return payload
    figures = []
    for f in payload["figures"]:
        note = f.get("note")
        if isinstance(note, dict):
            f = f | {"note": translate(note["text"], lang).format(**note.get("args", {}))}
        figures.append(f)
    return payload | {"figures": figures}


def tile_json(reading: Reading, payload: dict[str, Any], lang: str) -> dict[str, Any]:
    tile = reading.tile
    shown = _notes(_localised(payload, lang), lang)
    return {
        "tile": tile.name,
        "section": tile.section,
        "title": translate(tile.title, lang),
        "definition": translate(tile.definition, lang),
        "figure_definitions": {k: translate(v, lang) for k, v in tile.figures.items()},
        "chart": tile.chart,
        "permission": tile.permission,
        "scope": tile.scope,
        "wide": tile.wide,
        "screen": tile.screen,
        "drill": tile.drill,
        "payload": shown,
        "timing": reading.timing(),
        "version": reading.version,
    }


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status, media_type="application/json")


def _view(request: Request, public: bool, screen: bool) -> service.View:
    return service.View(public=public, screen=screen)


def _cockpit(request: Request, public: bool, screen: bool, kiosk: bool):
    view = _view(request, public, screen)
    lang = language(request)
    now = clock.now(request)
    with request.app.state.store.session() as session:
        user = current_user(request, session) if public else signed_in(request, session)
        if not service.may_enter(user, view):
            return render(
                request,
                "brain_refused.html",
                user,
                status_code=403,
                message="城市运行驾驶舱只对各单位的工作人员开放；公众请看公开版",
            )
        started = time.perf_counter()
        sections = service.cockpit(session, user, view, now)
        read_ms = round((time.perf_counter() - started) * 1000, 2)
    shown = [
        (section, [tile_json(r, p, lang) for r, p in readings]) for section, readings in sections
    ]
    as_of = max((r.as_of for _, readings in sections for r, _ in readings), default=now)
    every = max(REFRESH_FLOOR, request.app.state.settings.brain_seconds or 60)
    base = "/brain/public" if public else "/brain"
    return render(
        request,
        "brain_screen.html" if screen else "brain.html",
        user,
        sections=shown,
        view=view,
        kiosk=kiosk,
        base=base,
        as_of=display.beijing(as_of),
        read_ms=read_ms,
        refresh_seconds=int(every),
        versions_url=f"/brain/versions.json{'?view=public' if public else ''}",
        tile_url=f"/brain/tiles/{{name}}.json{'?view=public' if public else ''}",
        permissions=spec.PERMISSIONS,
    )


@router.get("/brain")
def brain(request: Request, kiosk: bool = False):
    return _cockpit(request, public=False, screen=False, kiosk=kiosk)


@router.get("/brain/screen")
def brain_screen(request: Request, kiosk: bool = False):
    return _cockpit(request, public=False, screen=True, kiosk=kiosk)


@router.get("/brain/public")
def brain_public(request: Request, kiosk: bool = False):
    return _cockpit(request, public=True, screen=False, kiosk=kiosk)


@router.get("/brain/public/screen")
def brain_public_screen(request: Request, kiosk: bool = False):
    return _cockpit(request, public=True, screen=True, kiosk=kiosk)


def _who(request: Request, session, view: str):
    """The viewer of a JSON call: anyone for the public view, else the signed-in user."""
    user = current_user(request, session)
    return user, view == "public"


@router.get("/brain/tiles.json")
def tiles_json(request: Request, view: str = ""):
    """Every tile this viewer may see, with its figures and timing."""
    lang = language(request)
    with request.app.state.store.session() as session:
        user, public = _who(request, session, view)
        chosen = service.View(public=public)
        if not service.may_enter(user, chosen):
            return _json({"detail": "需要登录（公开版：?view=public）"}, 401)
        sections = service.cockpit(session, user, chosen, clock.now(request))
    return _json(
        {"tiles": [tile_json(r, p, lang) for _, readings in sections for r, p in readings]}
    )


@router.get("/brain/tiles/{name}.json")
def one_tile(request: Request, name: str, view: str = ""):
    started = time.perf_counter()
    with request.app.state.store.session() as session:
        user, public = _who(request, session, view)
        if not public and user is None:
            return _json({"detail": "需要登录（公开版：?view=public）"}, 401)
        try:
            reading, payload = service.tile_reading(
                session, user, name[:64], clock.now(request), public
            )
        except service.Refused as exc:
            return _json({"detail": str(exc)}, exc.status)
    body = tile_json(reading, payload, language(request))
    body["timing"]["serve_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return _json(body)


@router.get("/brain/versions.json")
def versions_json(request: Request, view: str = ""):
    """When each visible tile's summary was computed: a page fetches only those that moved."""
    with request.app.state.store.session() as session:
        user, public = _who(request, session, view)
        chosen = service.View(public=public)
        if not service.may_enter(user, chosen):
            return _json({"detail": "需要登录（公开版：?view=public）"}, 401)
        return _json(service.versions(session, user, chosen))


@router.get("/brain/districts.geojson")
def districts(request: Request):
    """The districts' outlines (the spatial base's, through grid.mapping), for the cockpit's maps."""
    with request.app.state.store.session() as session:
        found = service.districts(session, clock.now(request))
    return Response(orjson.dumps(found), media_type="application/geo+json")


@router.get("/brain/mqa")
def mqa_page(request: Request, band: str = ""):
    """The datasets behind the metadata-quality tile: each one's points per dimension and what
    would raise them."""
    with request.app.state.store.session() as session:
        user = current_user(request, session)
        datasets = request.app.state.catalogue.datasets(session).values()
    rows = sorted((mqa.assess(ds) for ds in datasets), key=lambda a: (a["total"], a["dataset"]))
    if band in {code for code, _, _ in mqa.BANDS}:
        rows = [r for r in rows if r["band"] == band]
    return render(
        request,
        "brain_mqa.html",
        user,
        rows=rows,
        band=band,
        bands=mqa.BANDS,
        dimensions=mqa.DIMENSIONS,
        maximum=mqa.MAXIMUM,
        band_label=mqa.band_label,
    )


@router.get("/")
def home(request: Request):
    lang = language(request)
    with request.app.state.store.session() as session:
        user = current_user(request, session)
        reading = service.home(session, clock.now(request))
        counts = catalog.counts(session)
    shown = tile_json(reading, reading.payload, lang)
    return render(
        request,
        "home.html",
        user,
        tile=shown,
        figures=shown["payload"]["figures"],
        as_of=display.beijing(reading.as_of),
        number=lambda v, unit="count": display.number(v, unit, lang),
        staff=service.may_enter(user, service.View()),
        counts=counts,
    )
