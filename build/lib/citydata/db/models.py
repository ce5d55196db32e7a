"""Every domain's tables, imported so that one MetaData knows them all (Alembic reads it)."""

from citydata.accounts import models as _accounts  # noqa: F401
from citydata.audit import models as _audit  # noqa: F401
from citydata.bases import models as _bases  # noqa: F401
from citydata.catalog import models as _catalog  # noqa: F401
from citydata.db.base import Base
from citydata.ingest import models as _ingest  # noqa: F401
from citydata.opendata import models as _opendata  # noqa: F401
from citydata.share import models as _share  # noqa: F401

metadata = Base.metadata
