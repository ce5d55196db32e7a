"""The base databases' logic, as the rest of the platform calls it. Each part lives in a module
of its own; this is the domain's one door:

- ``resolution``: a run turning staged rows into master records (``resolve``);
- ``staged``: reading the staged rows that feed a base; ``keys``: keys that are not a row's own;
  ``matching``: rows without a key; ``masterids``: handing out master ids;
- ``golden``: golden records and provenance; ``reviews``: the review queue;
- ``publish``: the ``base_<name>`` tables and each base as a catalog class;
- ``masters``: reading masters (``master_dict``, ``search``, ``base_codes``);
- ``overview``: a base at a glance (masters, sources, completeness, conflicts);
- ``spatial``: the spatial base's districts, streets and cells (``spatial_areas``)."""

from __future__ import annotations

from citydata.bases.masters import base_codes, master_dict, search
from citydata.bases.overview import overview
from citydata.bases.publish import base_fields, base_table, publish, register_class
from citydata.bases.resolution import Progress, RunReport, resolve
from citydata.bases.reviews import ReviewError, decide_review, pending_reviews, reviews
from citydata.bases.spatial import areas as spatial_areas
from citydata.bases.staged import Feed, feeds, staged_rows

__all__ = [
    "Feed",
    "Progress",
    "ReviewError",
    "RunReport",
    "base_codes",
    "base_fields",
    "base_table",
    "decide_review",
    "feeds",
    "master_dict",
    "overview",
    "pending_reviews",
    "publish",
    "register_class",
    "resolve",
    "reviews",
    "search",
    "spatial_areas",
    "staged_rows",
]
