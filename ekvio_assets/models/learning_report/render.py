"""The learning report as one self-contained HTML page: headline numbers, charts, and their tables.

Every text from the data goes through Jinja2's autoescaping (the SVG charts escape theirs as XML);
the page links nothing: styles inline, charts inline SVG, no script. Every headline number and
number cell also carries its raw value in a `data-value` attribute, for tools and tests.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from markupsafe import Markup

from ekvio_assets.models.learning_report.chart_cache import ChartCache
from ekvio_assets.models.learning_report.chart_inputs import AMBER, BLUE, GREY, RED, TEAL, Series, count_text
from ekvio_assets.models.learning_report.queries import (
    HARDEST_TESTS_SHOWN,
    OVERDUE_LEARNERS_SHOWN,
    ReportData,
)

TEMPLATE = "report.html.j2"
FOLD_ROWS_OVER = 12
_ENVIRONMENT = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent), autoescape=True, undefined=jinja2.StrictUndefined
)


def _percent(value: Any) -> str:
    return f"{value * 100:.1f}%"


def _decimal(value: Any) -> str:
    return f"{value:.1f}"


_FORMATS: dict[str, Callable[[Any], str]] = {"count": count_text, "percent": _percent, "decimal": _decimal, "text": str}


@dataclass(frozen=True)
class Column:
    heading: str
    key: str
    kind: str = "text"  # count, percent, decimal, text, date, datetime


@dataclass(frozen=True)
class Cell:
    text: str
    value: str | None  # the raw number, for data-value; None for text
    kind: str


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    note: str
    columns: Sequence[Column]
    rows: list[list[Cell]]
    chart: Markup | None
    empty_note: str

    @property
    def folded(self) -> bool:
        """A chart's long table starts folded: the chart tells the story, the rows are there to look up."""
        return self.chart is not None and len(self.rows) > FOLD_ROWS_OVER


class _Formatter:
    def __init__(self, timezone: str) -> None:
        self.zone = ZoneInfo(timezone)

    def cell(self, column: Column, value: Any) -> Cell:
        if value is None:
            return Cell("–", None, column.kind)
        if column.kind == "datetime":
            return Cell(value.astimezone(self.zone).strftime("%Y-%m-%d %H:%M"), None, column.kind)
        if column.kind == "date":
            return Cell(value.isoformat(), None, column.kind)
        return Cell(_FORMATS[column.kind](value), None if column.kind == "text" else repr(value), column.kind)

    def moment(self, value: datetime | None) -> str:
        return "–" if value is None else value.astimezone(self.zone).strftime("%d %b %Y %H:%M")


def _section(
    formatter: _Formatter,
    id_: str,
    title: str,
    note: str,
    columns: Sequence[Column],
    rows: list[dict[str, Any]],
    chart: Callable[[], str] | None,
    empty_note: str,
) -> Section:
    return Section(
        id=id_,
        title=title,
        note=note,
        columns=columns,
        rows=[[formatter.cell(column, row[column.key]) for column in columns] for row in rows],
        chart=Markup(chart()) if rows and chart else None,
        empty_note=empty_note,
    )


def _sections(data: ReportData, formatter: _Formatter, charts: ChartCache) -> list[Section]:
    weeks: list[date] = [row["week"] for row in data.weekly_activity]
    return [
        _section(
            formatter,
            "completion_by_department",
            "Completion by department",
            "Share of programme and course assignments completed, by the learner's department.",
            [
                Column("Department", "department"),
                Column("Learners", "learners", "count"),
                Column("Programme assignments", "programme_assignments", "count"),
                Column("Programmes completed", "programme_completion_rate", "percent"),
                Column("Course assignments", "course_assignments", "count"),
                Column("Courses completed", "course_completion_rate", "percent"),
                Column("Overdue learners", "overdue_learners", "count"),
            ],
            data.departments,
            lambda: charts.svg(
                "horizontal_bars",
                "departments",
                [row["department"] for row in data.departments],
                [
                    Series(
                        "programmes completed", [row["programme_completion_rate"] for row in data.departments], BLUE
                    ),
                    Series("courses completed", [row["course_completion_rate"] for row in data.departments], TEAL),
                ],
                percent=True,
            ),
            "No learners yet.",
        ),
        _section(
            formatter,
            "completion_by_programme",
            "Completion by programme",
            "Learners of each programme by their status, the least completed programme first.",
            [
                Column("Programme", "programme"),
                Column("Learners", "learners", "count"),
                Column("Completed", "completed", "count"),
                Column("In progress", "in_progress", "count"),
                Column("Not started", "not_started", "count"),
                Column("Failed", "failed", "count"),
                Column("Overdue", "overdue", "count"),
                Column("Completion", "completion_rate", "percent"),
            ],
            data.programmes,
            lambda: charts.svg(
                "horizontal_bars",
                "programmes",
                [row["programme"] for row in data.programmes],
                [
                    Series(name, [row[key] for row in data.programmes], color)
                    for name, key, color in (
                        ("completed", "completed", BLUE),
                        ("in progress", "in_progress", AMBER),
                        ("not started", "not_started", GREY),
                        ("failed", "failed", RED),
                    )
                ],
                stacked=True,
            ),
            "No programme statistics: the programme report is empty or was never loaded.",
        ),
        _section(
            formatter,
            "overdue_by_days",
            "How late overdue learners are",
            "Learners with a programme not completed past its due date, by the days of their most overdue one.",
            [Column("Days late", "days_late"), Column("Learners", "learners", "count")],
            data.overdue_by_days if any(row["learners"] for row in data.overdue_by_days) else [],
            lambda: charts.svg(
                "vertical_bars",
                "overdue",
                [row["days_late"] for row in data.overdue_by_days],
                [row["learners"] for row in data.overdue_by_days],
                RED,
            ),
            "Nobody is overdue.",
        ),
        _section(
            formatter,
            "overdue_learners",
            "Most overdue learners",
            f"The {OVERDUE_LEARNERS_SHOWN} learners longest past a programme's due date.",
            [
                Column("Login", "login"),
                Column("Name", "fio"),
                Column("Department", "department"),
                Column("Programmes overdue", "programmes_overdue", "count"),
                Column("Days late", "max_days_late", "count"),
                Column("Most overdue programme", "most_overdue_programme"),
                Column("Due", "due_at", "datetime"),
            ],
            data.overdue_learners,
            None,
            "Nobody is overdue.",
        ),
        _section(
            formatter,
            "hardest_tests",
            "Hardest tests",
            f"The {HARDEST_TESTS_SHOWN} tests with the lowest share of graded attempts passed "
            "(completed of completed or failed).",
            [
                Column("Test", "test"),
                Column("Attempts", "attempts", "count"),
                Column("Learners", "learners", "count"),
                Column("Pass rate", "pass_rate", "percent"),
                Column("Average percent", "average_percent", "decimal"),
            ],
            data.hardest_tests,
            lambda: charts.svg(
                "horizontal_bars",
                "tests",
                [row["test"] for row in data.hardest_tests],
                [Series("pass rate", [row["pass_rate"] for row in data.hardest_tests], AMBER)],
                percent=True,
            ),
            "No graded test attempts.",
        ),
        _section(
            formatter,
            "weekly_activity",
            "Activity by week",
            "Test attempts, courses and programmes completed per week (weeks start on Monday; the first and "
            "the last week may be partial).",
            [
                Column("Week", "week", "date"),
                Column("Test attempts", "test_attempts", "count"),
                Column("Courses completed", "courses_completed", "count"),
                Column("Programmes completed", "programmes_completed", "count"),
            ],
            data.weekly_activity,
            lambda: charts.svg(
                "weekly_lines",
                "activity",
                weeks,
                [
                    Series(name, [row[key] for row in data.weekly_activity], color)
                    for name, key, color in (
                        ("test attempts", "test_attempts", AMBER),
                        ("courses completed", "courses_completed", TEAL),
                        ("programmes completed", "programmes_completed", BLUE),
                    )
                ],
            ),
            "No activity recorded yet.",
        ),
    ]


# (metadata key, label, format) of the headline numbers, in the order shown.
HEADLINE = (
    ("learners", "learners", "count"),
    ("programme_completion_rate", "programme assignments completed", "percent"),
    ("course_completion_rate", "course assignments completed", "percent"),
    ("overdue_learners", "learners overdue on a programme", "count"),
    ("test_attempts", "test attempts", "count"),
    ("attempt_pass_rate", "graded attempts passed", "percent"),
)


def render_report(data: ReportData, *, timezone: str, generated_at: datetime, charts: ChartCache) -> str:
    formatter = _Formatter(timezone)
    metrics = [
        (key, label, formatter.cell(Column(label, key, kind), data.headline[key])) for key, label, kind in HEADLINE
    ]
    return _ENVIRONMENT.get_template(TEMPLATE).render(
        first_activity=formatter.moment(data.first_activity_at),
        last_activity=formatter.moment(data.last_activity_at),
        generated=formatter.moment(generated_at),
        timezone=timezone,
        metrics=metrics,
        sections=_sections(data, formatter, charts),
        missing_report_tables=data.missing_report_tables,
    )
