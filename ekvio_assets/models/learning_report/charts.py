"""The report's charts: matplotlib figures drawn as inline SVG, static, with no script and nothing fetched."""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import date
from typing import Any, cast

import matplotlib as mpl
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.dates import AutoDateLocator, DateFormatter
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, PercentFormatter
from matplotlib.typing import RcKeyType

from ekvio_assets.models.learning_report.chart_inputs import GREY, GRID, INK, MUTED, Series, count_text

# About the page's column width at 96 px per inch, so that 10 pt of a chart read as 13 px.
WIDTH_INCHES = 10.5
LABEL_CHARS = 48
# Beyond this many bars a chart shows the first ones; its table lists every row.
MAX_BARS = 25

_STYLE: dict[RcKeyType, Any] = {
    # Text stays text: a smaller file, selectable, drawn in the page's font (Cyrillic included).
    "svg.fonttype": "none",
    # A "$" in a programme name is a dollar sign, not mathtext.
    "text.parse_math": False,
    "font.family": "sans-serif",
    "font.size": 10,
    "text.color": INK,
    "axes.edgecolor": GREY,
    "axes.labelcolor": MUTED,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.color": GRID,
    "xtick.color": MUTED,
    "ytick.color": MUTED,
    "legend.frameon": False,
}


def _count_ticks() -> FuncFormatter:
    # A formatter belongs to one axis: a new one each time.
    return FuncFormatter(lambda value, _: count_text(value))


def _label(text: str) -> str:
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"


def _svg(figure: Figure, name: str) -> str:
    """The figure as an <svg> element; ids salted with the chart's name stay unique on the page."""
    buffer = io.StringIO()
    with mpl.rc_context({"svg.hashsalt": name}):
        FigureCanvasSVG(figure).print_svg(
            buffer, metadata={"Date": None, "Creator": None, "Format": None, "Type": None}
        )
    text = buffer.getvalue()
    # The XML declaration and DOCTYPE belong to a standalone file, not to an element inside HTML.
    return text[text.index("<svg") :]


def horizontal_bars(
    name: str, labels: Sequence[str], series: Sequence[Series], *, stacked: bool = False, percent: bool = False
) -> str:
    """One row of bars per label, top to bottom in the given order: grouped, or stacked."""
    labels = [_label(label) for label in labels[:MAX_BARS]]
    rows = len(labels)
    with mpl.rc_context(_STYLE):
        figure = Figure(figsize=(WIDTH_INCHES, 0.9 + rows * (0.32 if stacked else 0.18 * len(series) + 0.12)))
        axes = figure.add_subplot()
        height = 0.7 if stacked else 0.8 / len(series)
        left = [0.0] * rows
        for index, one in enumerate(series):
            values = [float(value or 0) * (100 if percent else 1) for value in one.values[:MAX_BARS]]
            positions = [row if stacked else row - 0.4 + height * (index + 0.5) for row in range(rows)]
            bars = axes.barh(
                positions, values, height=height, left=left if stacked else None, color=one.color, label=one.name
            )
            if stacked:
                left = [start + value for start, value in zip(left, values, strict=True)]
            else:
                shown = [
                    "–" if value is None else f"{float(value) * 100:.1f}%" if percent else count_text(value)
                    for value in one.values[:MAX_BARS]
                ]
                axes.bar_label(bars, labels=shown, padding=3, fontsize=9, color=MUTED)
        axes.set_yticks(range(rows), labels)
        axes.invert_yaxis()
        axes.grid(axis="y", visible=False)
        axes.tick_params(axis="y", length=0)
        if percent:
            axes.set_xlim(0, 108)
            axes.xaxis.set_major_formatter(PercentFormatter(decimals=0))
        else:
            axes.xaxis.set_major_locator(MaxNLocator(integer=True))
            axes.xaxis.set_major_formatter(_count_ticks())
        if len(series) > 1:
            axes.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=len(series), fontsize=9)
        figure.tight_layout()
        return _svg(figure, name)


def vertical_bars(name: str, labels: Sequence[str], values: Sequence[int], color: str) -> str:
    with mpl.rc_context(_STYLE):
        figure = Figure(figsize=(WIDTH_INCHES, 2.6))
        axes = figure.add_subplot()
        bars = axes.bar(list(labels), list(values), color=color, width=0.6)
        axes.bar_label(bars, labels=[count_text(value) for value in values], padding=3, fontsize=9, color=MUTED)
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        axes.yaxis.set_major_formatter(_count_ticks())
        axes.set_ylim(0, max([*values, 1]) * 1.18)
        axes.grid(axis="x", visible=False)
        axes.tick_params(axis="x", length=0)
        figure.tight_layout()
        return _svg(figure, name)


def weekly_lines(name: str, weeks: Sequence[date], series: Sequence[Series]) -> str:
    with mpl.rc_context(_STYLE):
        figure = Figure(figsize=(WIDTH_INCHES, 3.0))
        axes = figure.add_subplot()
        for one in series:
            axes.plot(
                # Dates go through matplotlib's unit converters, which its type stubs do not list.
                cast(Any, list(weeks)),
                [value or 0 for value in one.values],
                color=one.color,
                label=one.name,
                marker="o",
                markersize=3.5,
                linewidth=1.8,
            )
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        axes.yaxis.set_major_formatter(_count_ticks())
        axes.set_ylim(bottom=0)
        axes.grid(axis="x", visible=False)
        axes.xaxis.set_major_locator(AutoDateLocator(maxticks=10))
        long_span = len(weeks) > 1 and (weeks[-1] - weeks[0]).days > 300
        axes.xaxis.set_major_formatter(DateFormatter("%d %b %Y" if long_span else "%d %b"))
        axes.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=len(series), fontsize=9)
        figure.tight_layout()
        return _svg(figure, name)
