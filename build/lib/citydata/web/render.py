"""Template rendering with the language, the user and the CSRF token every page needs.

Each domain keeps its templates in its own ``templates/`` folder and adds it with
``use_templates`` when its pages module is imported; ``base.html`` lives here. Globals a page
needs from a domain (the catalog's vocabularies) are given by the app factory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from jinja2 import FileSystemLoader

from citydata.web.csrf import csrf_token
from citydata.web.i18n import LANGUAGES, translate

_folders = [str(Path(__file__).parent / "templates")]
templates = Jinja2Templates(directory=_folders[0])
templates.env.loader = FileSystemLoader(_folders)


def use_templates(pages_module: str) -> None:
    """Add the ``templates/`` folder beside a pages module (call with ``__file__``)."""
    folder = str(Path(pages_module).with_name("templates"))
    if folder not in _folders:
        _folders.append(folder)
        templates.env.loader = FileSystemLoader(_folders)


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
):
    lang = language(request)
    return templates.TemplateResponse(
        request,
        name,
        {
            "user": user,
            "lang": lang,
            "t": lambda text: translate(text, lang),
            # a vocabulary's Chinese term for a code (the code itself in English)
            "term": lambda vocab_map, code: (
                translate(vocab_map.get(code or "", code or ""), lang) if lang == "zh" else code
            ),
            "csrf": csrf_token(request),
            **context,
        },
        status_code=status_code,
        headers=headers,
    )
