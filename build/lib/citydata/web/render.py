"""Template rendering with the language, the user and the CSRF token every page needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates

from citydata.catalog import vocab
from citydata.web.auth import csrf_token
from citydata.web.i18n import LANGUAGES, translate

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
templates.env.globals["vocab"] = vocab


def language(request: Request) -> str:
    chosen = request.cookies.get("lang") or request.app.state.settings.language
    return chosen if chosen in LANGUAGES else "zh"


def render(
    request: Request,
    name: str,
    user: Any = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
):  # noqa: ANN201
    lang = language(request)
    return templates.TemplateResponse(
        request,
        name,
        {
            "user": user,
            "lang": lang,
            "t": lambda text: translate(text, lang),
            "term": lambda vocab_map, code: (
                translate(vocab.label(vocab_map, code), lang) if lang == "zh" else code
            ),
            "csrf": csrf_token(request),
            **context,
        },
        status_code=status_code,
        headers=headers,
    )
