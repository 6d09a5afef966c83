"""The learning report's numbers: the SQL files beside this module, run on the published analyst file."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from ekvio_assets.models.specs import APPOINTED, COMPLETED, FAIL, TEST
from ekvio_assets.reports.specs import ATTEMPTS
from ekvio_assets.storage.sql import table_names

SQL_DIR = Path(__file__).parent
NO_DEPARTMENT = "(no department)"
HARDEST_TESTS_SHOWN = 10
OVERDUE_LEARNERS_SHOWN = 20
# The analytics tables the queries read; they exist (empty or not) once the models have run.
MODEL_TABLES = ("learners", "materials", "learner_course_progress", "learner_program_progress")

_PARAMETERS: dict[str, object] = {
    "completed": COMPLETED,
    "fail": FAIL,
    "appointed": APPOINTED,
    "test": TEST,
    "no_department": NO_DEPARTMENT,
}


class MissingModelTables(Exception):
    """The published file lacks analytics tables the report reads (the models never ran)."""


Rows = list[dict[str, Any]]


@dataclass(frozen=True)
class ReportData:
    first_activity_at: datetime | None
    last_activity_at: datetime | None
    headline: dict[str, Any]
    departments: Rows
    programmes: Rows
    overdue_learners: Rows
    overdue_by_days: Rows
    hardest_tests: Rows
    weekly_activity: Rows
    # Report tables the file does not hold (never loaded), read as empty.
    missing_report_tables: tuple[str, ...]


def run_query(con: duckdb.DuckDBPyConnection, name: str, **parameters: object) -> Rows:
    """The rows of `<name>.sql`, given the named parameters it uses (the shared ones and `parameters`)."""
    sql = (SQL_DIR / f"{name}.sql").read_text(encoding="utf-8")
    available = {**_PARAMETERS, **parameters}
    cursor = con.execute(sql, {used: available[used] for used in set(re.findall(r"\$([a-z_]+)", sql))})
    columns = [column[0] for column in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def read_report_data(con: duckdb.DuckDBPyConnection) -> ReportData:
    """Every number of the report, from a read-only connection to the published file."""
    tables = table_names(con)
    missing_models = [name for name in MODEL_TABLES if name not in tables]
    if missing_models:
        raise MissingModelTables(
            f"the published file has no {', '.join(missing_models)}: run analytics_job to build the analytics tables"
        )
    missing_reports = () if ATTEMPTS.name in tables else (ATTEMPTS.name,)
    if missing_reports:
        con.execute((SQL_DIR / "empty_attempts.sql").read_text(encoding="utf-8"))
    (time_range,) = run_query(con, "time_range")
    (headline,) = run_query(con, "headline")
    return ReportData(
        first_activity_at=time_range["first_activity_at"],
        last_activity_at=time_range["last_activity_at"],
        headline=headline,
        departments=run_query(con, "completion_by_department"),
        programmes=run_query(con, "completion_by_programme"),
        overdue_learners=run_query(con, "overdue_learners", top=OVERDUE_LEARNERS_SHOWN),
        overdue_by_days=run_query(con, "overdue_by_days"),
        hardest_tests=run_query(con, "hardest_tests", top=HARDEST_TESTS_SHOWN),
        weekly_activity=run_query(con, "weekly_activity"),
        missing_report_tables=missing_reports,
    )
