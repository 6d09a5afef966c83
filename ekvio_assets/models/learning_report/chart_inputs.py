"""What the report's charts are drawn from: their series, colours and number format. Light to import
(no matplotlib), so that a page whose charts are all cached never loads the plotting library."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# The colours of the page's CSS, so a chart and its table read as one.
INK, MUTED, GRID = "#1f2933", "#616e7c", "#e4e7eb"
BLUE, TEAL, AMBER, GREY, RED = "#2f6fdb", "#1f9d8b", "#e5a50a", "#b8c2cc", "#d64545"


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | int | None]
    color: str


def count_text(value: float) -> str:
    """A count as the page writes it: 12 345, grouped by a narrow no-break space."""
    return f"{value:,.0f}".replace(",", "\u202f")
