"""The schema: every domain's tables in one MetaData (Alembic reads it), and ``upgrade()``,
which creates or upgrades it with Alembic — running it twice changes nothing.

Like the app factory and the CLI root, this package sits above every domain: it is the one
place that imports all their models, so that no domain has to."""

from __future__ import annotations

import re
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from citydata.accounts import models as _accounts  # noqa: F401
from citydata.audit import models as _audit  # noqa: F401
from citydata.bases import models as _bases  # noqa: F401
from citydata.brain import models as _brain  # noqa: F401
from citydata.catalog import models as _catalog  # noqa: F401
from citydata.db.base import Base
from citydata.grid import models as _grid  # noqa: F401
from citydata.ingest import models as _ingest  # noqa: F401
from citydata.mechanisms import models as _mechanisms  # noqa: F401
from citydata.opendata import models as _opendata  # noqa: F401
from citydata.services import models as _services  # noqa: F401
from citydata.share import models as _share  # noqa: F401

MIGRATIONS = Path(__file__).parent
metadata = Base.metadata
# Where PostGIS is installed, the cells carry a geometry the models do not declare (it exists
# only there), and the extension brings a table of its own: the comparison leaves them out.
OUTSIDE_THE_MODELS = {
    ("column", "geom"),
    ("index", "ix_grid_cells_geom"),
    ("table", "spatial_ref_sys"),
}


# On PostgreSQL the audit log's months are partitions: tables the models do not name.
PARTITION = re.compile(r"^audit_(entries|subjects)_(p\d{6}|default)$")


def include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    if reflected and compare_to is None and type_ == "table" and PARTITION.match(name or ""):
        return False
    return not (reflected and compare_to is None and (type_, name) in OUTSIDE_THE_MODELS)


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Upgrade to head; returns (revision before, revision after)."""
    before = current_revision(engine)
    command.upgrade(alembic_config(engine), "head")
    return before, current_revision(engine) or ""


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision(engine: Engine) -> str:
    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head() or ""
