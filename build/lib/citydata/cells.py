"""Values leaving in spreadsheet files must stay values. A cell that begins with ``=``, ``+``,
``-``, ``@``, a tab or a carriage return is a formula to Excel and LibreOffice (OWASP's CSV
injection): in CSV it is written with a leading apostrophe — unless it is a plain number such as
``-12.5`` —, in XLSX as a text cell. What is stored is never changed; only the file is."""

from __future__ import annotations

import re

import polars as pl

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
_NUMBER_RE = re.compile(_NUMBER)
# XLSX writers: every string is text, never a formula or a link.
XLSXWRITER_OPTIONS = {"strings_to_formulas": False, "strings_to_urls": False}


def neutralise(value: object) -> object:
    if isinstance(value, str) and value.startswith(TRIGGERS) and not _NUMBER_RE.match(value):
        return "'" + value
    return value


def neutralise_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """``neutralise`` over every text column, vectorised."""
    text = [c for c, t in frame.schema.items() if t == pl.String]
    if not text:
        return frame
    return frame.with_columns(
        pl.when(pl.col(c).str.contains(r"^[=+\-@\t\r]") & ~pl.col(c).str.contains(_NUMBER))
        .then(pl.lit("'") + pl.col(c))
        .otherwise(pl.col(c))
        .alias(c)
        for c in text
    )
