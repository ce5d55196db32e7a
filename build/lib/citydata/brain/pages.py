"""The home page: the seed's targets against what the platform holds, and recent sharing."""

from __future__ import annotations

from fastapi import APIRouter, Request

from citydata.brain import service
from citydata.web.auth import current_user
from citydata.web.render import render, use_templates

router = APIRouter(include_in_schema=False)
use_templates(__file__)


@router.get("/")
def home(request: Request):
    with request.app.state.store.session() as session:
        user = current_user(request, session)
        figures = service.progress(session)
        sharing = service.recent_sharing(session, user)
    return render(
        request, "home.html", user, figures=figures, targets=service.TARGETS, sharing=sharing
    )
