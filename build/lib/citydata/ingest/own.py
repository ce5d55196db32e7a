"""The platform's own data as a catalog class (the service platform's cases, the grid's events),
filled like any department's: a snapshot batch replacing the last, so validation, resolution,
sharing and open data apply to it unchanged."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from datetime import date
from pathlib import Path

import polars as pl
from sqlalchemy.orm import Session

from citydata.catalog.models import Unit
from citydata.catalog.service import get_class, save_class
from citydata.db.engine import Store
from citydata.ingest.service import Report, ingest

Field = tuple[str, str, str, int | None]  # (name, label, data type, length)


def fields(spec: list[Field], key: str, required: set[str], rules: dict[str, str]) -> list[dict]:
    """Catalog field entries, all public: the platform publishes no one's identity."""
    return [
        {
            "name": name,
            "label": label,
            "data_type": kind,
            "length": length,
            "required": name == key or name in required,
            "is_key": name == key,
            "sensitivity": "public",
            "rules": [rules[name]] if name in rules else [],
            "enum": [],
            "description": "",
        }
        for name, label, kind, length in spec
    ]


def register(session: Session, entry: dict) -> bool:
    """The class in the catalog (once); False when its unit is not in the catalog."""
    if session.get(Unit, entry["provider_code"]) is None:
        return False
    if get_class(session, entry["code"]) is None:
        save_class(session, entry, create=True)
    return True


def publish(
    store: Store,
    entry: dict,
    snapshot: Callable[[Session], pl.DataFrame],
    by: str,
    today: date | None = None,
) -> Report | None:
    """A snapshot as a batch of the class, replacing the last; None without the unit."""
    with store.session() as session:
        if not register(session, entry):
            return None
        frame = snapshot(session)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{entry['name']}.csv"
        frame.write_csv(path)
        return ingest(
            store,
            path,
            entry["code"],
            entry["provider_code"],
            mode="replace",
            submitted_by=by,
            today=today,
        )
