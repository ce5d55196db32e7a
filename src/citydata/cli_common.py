"""What every domain's CLI shares: consoles, JSON output, the store, and clean failures."""

from __future__ import annotations

import json
import sys
from functools import cache
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from citydata.config import Settings
from citydata.db.engine import Store

# soft_wrap: file paths and counts in messages are never broken across lines.
out = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


@cache
def store(url: str | None = None) -> Store:
    if url:
        return Store(url)
    settings = Settings.from_env()
    return Store(settings.database_url, settings.read_database_url)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[red]错误[/red]: {escape(message)}", markup=True, highlight=False)
    raise typer.Exit(code)
