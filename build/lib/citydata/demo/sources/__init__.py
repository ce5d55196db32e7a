"""The departments' resource classes with data: their catalog entries and the rows they send, one
module per kind of source (persons, legal persons, housing, places, each unit's registers).

A Source is one class of one unit, with its rows as a text frame (what a department's file holds)
and, per row, the true entity the row describes. Columns are the catalog field names."""

from __future__ import annotations

from citydata.demo.sources.housing import housing_sources
from citydata.demo.sources.legal import legal_sources
from citydata.demo.sources.persons import person_sources
from citydata.demo.sources.places import grid_cells, place_sources, points_in_cells
from citydata.demo.sources.registers import register_sources
from citydata.demo.sources.source import PERSONAL_CONDITION, Source, as_text, field_spec

__all__ = [
    "PERSONAL_CONDITION",
    "Source",
    "as_text",
    "field_spec",
    "grid_cells",
    "housing_sources",
    "legal_sources",
    "person_sources",
    "place_sources",
    "points_in_cells",
    "register_sources",
]
