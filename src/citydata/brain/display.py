"""How the cockpit writes its figures for a reader: counts in 万 and 亿 (K/M/B in English),
rates as percentages, moments in Beijing time. (Kept here, small, until the pages share a
filter for dates.)"""

from __future__ import annotations

from datetime import datetime

from citydata.clock import CITY_ZONE


def number(value: float | int | None, unit: str = "count", lang: str = "zh") -> str:
    if value is None:
        return "—"
    if unit == "rate":
        return f"{value * 100:.1f}%"
    if unit == "score":
        return f"{value:.1f}"
    n = float(value)
    steps = ((1e8, "亿"), (1e4, "万")) if lang == "zh" else ((1e9, "B"), (1e6, "M"), (1e3, "K"))
    for size, word in steps:
        if abs(n) >= size:
            digits = 2 if abs(n) < size * 10 else 1
            text = f"{n / size:.{digits}f}".rstrip("0").rstrip(".")
            return f"{text}{word}" if lang == "zh" else f"{text} {word}"
    return f"{int(n)}" if n == int(n) else f"{n:.1f}"


def beijing(at: datetime | None) -> str:
    """A moment as Changsha reads it: ``2026-12-04 20:00``."""
    if at is None:
        return "—"
    return at.astimezone(CITY_ZONE).strftime("%Y-%m-%d %H:%M")
