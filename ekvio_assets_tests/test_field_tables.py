"""The report tables' DuckDB columns against the vendor's field tables, read from the markdown.

The field tables in `../shared/ekvio-api/reports/*.md` are the documented contract. This module
parses them itself (the `Атрибут` and `Типы значений` columns of each `Структура` section, a
section `(атрибут X)` holding the fields of the object or array `X`), maps each documented type to
the DuckDB types it allows, and checks every table the real loader creates: each documented field
is a column of an allowed type, and each column is a documented field or one of the few the
project adds (written out below). The renames the project makes are written out here by hand, not
taken from the specs, so a spec that reads a field as the wrong type fails here even when the
simulator, generating from the same spec, agrees with the loader.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ekvio_assets.api.client import ExportedFile
from ekvio_assets.reports.load import load_report_file
from ekvio_assets.reports.specs import ATTEMPTS, COURSE_STATISTICS, MATERIAL_STATISTICS, PROGRAM_STATISTICS, ReportSpec
from ekvio_assets.storage.warehouse import DuckDBWarehouse
from ekvio_assets_tests.conftest import shared_folder

FIELD_TABLES = Path(__file__).resolve().parents[2] / "shared" / "ekvio-api" / "reports"

TIMESTAMPTZ = "TIMESTAMP WITH TIME ZONE"
# The vendor's date-time format (PHP's date syntax), as the field tables write it.
DATE_TIME_FORMAT = "Y-m-d\\TH:i:sP"
MATERIAL_KINDS = ("pdf", "scorm", "link", "html", "test", "video", "longread", "document")
LINEAGE = {"_changed_at", "_window_start", "_window_end", "_fetched_at", "_task_id", "_raw_file"}


@dataclass(frozen=True)
class Documented:
    """One row of a field table: the field's path (`statistics.login`), its type words and description."""

    path: str
    types: frozenset[str]
    description: str


def field_tables_dir() -> Path:
    return shared_folder(FIELD_TABLES)


def parse_field_tables(markdown: str) -> list[Documented]:
    """The fields of every `Структура` section's table; a section `(атрибут X)` documents X's fields."""
    fields: list[Documented] = []
    prefix: str | None = None
    header: list[str] | None = None
    for line in (raw.strip() for raw in markdown.splitlines()):
        if line.startswith("#"):
            header = None
            nested = re.search(r"\(атрибут (\w+)\)", line)
            prefix = None if "Структура" not in line else f"{nested.group(1)}." if nested else ""
            continue
        if prefix is None or not line.startswith("|"):
            continue
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if header is None:
            header = cells
            continue
        if not "".join(cells).strip("-: "):
            continue  # the line under the header
        row = dict(zip(header, cells, strict=True))
        types = frozenset(word.strip().lower() for word in row["Типы значений"].split("/"))
        fields.append(Documented(prefix + row["Атрибут"], types, row["Описание"]))
    return fields


def allowed_types(field: Documented) -> frozenset[str] | None:
    """The DuckDB types a documented field may land in; None for an object or array, whose own
    fields are documented in a section of their own and become the columns."""
    (kind,) = field.types - {"null"}
    if kind == "string":
        if DATE_TIME_FORMAT in field.description:
            return frozenset({TIMESTAMPTZ})
        if "Y-m-d" in field.description:
            return frozenset({"DATE"})
        return frozenset({"VARCHAR"})
    if kind == "int":
        # An instant sent as unix time is an instant in the table.
        if "unixtime" in field.description:
            return frozenset({TIMESTAMPTZ})
        return frozenset({"INTEGER", "BIGINT"})
    if kind in ("bool", "boolean"):
        return frozenset({"BOOLEAN"})
    if kind == "float":
        return frozenset({"DOUBLE", "FLOAT"})
    if kind in ("array", "object"):
        return None
    raise AssertionError(f"{field.path}: type {kind!r} is not one the field tables use")


@dataclass(frozen=True)
class Report:
    """A field table, the tables the loader fills from it and what the project does on the way."""

    spec: ReportSpec
    # Table -> the documented levels it holds ("" the records, "statistics." the learners, ...).
    tables: dict[str, tuple[str, ...]]
    # Documented path -> column, where the project names the column otherwise.
    renames: dict[str, str]
    # Columns the project adds beyond the documented fields and the lineage.
    added: frozenset[str]
    # A record that makes every table (and the company-specific column the table documents).
    record: dict[str, Any]
    # Documented path -> the type the project reads it as instead of the documented one, and why.
    deviations: dict[str, str]


REPORTS = {
    "attempts.md": Report(
        ATTEMPTS,
        {"attempts": ("",)},
        {"id": "attempt_id"},
        frozenset({"extra_fields"}),
        {"id": "a1", "updated_at": "2024-03-01T10:00:00+03:00"},
        # Documented as a string, sent as an int in the vendor's example; read as the integer id that
        # the materials report sends, which the models join it to.
        {"material_id": "int"},
    ),
    "materials-statistic.md": Report(
        MATERIAL_STATISTICS,
        {"material_statistics": ("", "statistics."), "reported_materials": ("",)},
        {"id": "material_id", "name": "material_name", "type": "material_type", "points": "material_points"},
        # The material's undocumented `status` (PROTOCOL.md: active, hide).
        frozenset({"extra_fields", "material_visibility"}),
        {"id": 1, "type": "pdf", "statistics": [{"login": "anna"}]},
        {},
    ),
    "trainings-statistic.md": Report(
        COURSE_STATISTICS,
        {"course_statistics": ("",)},
        {"name": "course_name"},
        frozenset({"extra_fields"}),
        # A questionnaire field is a column only for a company that has the questionnaire.
        {"user_id": 1, "material_id": 2, "form_question_10": "М"},
        {},
    ),
    "learning-programmes-statistic.md": Report(
        PROGRAM_STATISTICS,
        {"program_statistics": ("", "materials.", "statistics."), "reported_programs": ("", "materials.")},
        {
            "id": "program_id",
            "name": "program_name",
            "points": "program_points",
            **{f"materials.{kind}": f"materials_{kind}" for kind in (*MATERIAL_KINDS, "total")},
            # The learner's own deadline, apart from the programme's of the same name.
            "statistics.deadline_at": "learner_deadline_at",
            **{f"statistics.{kind}": f"completed_{kind}" for kind in MATERIAL_KINDS},
        },
        frozenset({"extra_fields"}),
        {"id": 1, "statistics": [{"login": "anna"}]},
        {},
    ),
}


def column_of(report: Report, path: str) -> str:
    return report.renames.get(path, path.rsplit(".", 1)[-1])


@pytest.fixture(scope="module")
def documented() -> dict[str, list[Documented]]:
    folder = field_tables_dir()
    return {name: parse_field_tables((folder / name).read_text(encoding="utf-8")) for name in REPORTS}


def test_the_field_tables_are_parsed_into_every_documented_field(documented: dict[str, list[Documented]]) -> None:
    # Counted by hand in the markdown: a parser that loses a section or a row fails here.
    counts = {name: len(fields) for name, fields in documented.items()}
    assert counts == {
        "attempts.md": 15,
        "materials-statistic.md": 5 + 9,
        "trainings-statistic.md": 36,
        "learning-programmes-statistic.md": 8 + 9 + 18,
    }
    by_path = {field.path: field for field in documented["learning-programmes-statistic.md"]}
    assert by_path["statistics.passed_at_time"].types == {"boolean", "null"}
    assert by_path["materials.total"].types == {"int"}
    assert allowed_types(by_path["deadline_at"]) == {TIMESTAMPTZ}
    assert allowed_types(by_path["statistics"]) is None
    courses = {field.path: field for field in documented["trainings-statistic.md"]}
    assert allowed_types(courses["is_required"]) == {"INTEGER", "BIGINT"}


def _table_types(tmp_path: Path, report: Report) -> dict[str, dict[str, str]]:
    """The DuckDB column types of each table the real loader makes of the report's record."""
    warehouse = DuckDBWarehouse(data_dir=str(tmp_path / "data"), timezone="Europe/Moscow")
    path = tmp_path / f"{report.spec.name}.json"
    path.write_text(json.dumps({"data": [report.record]}, ensure_ascii=False), encoding="utf-8")
    exported = ExportedFile(report.spec.name, "1", path, path.stat().st_size, datetime(2024, 3, 2, tzinfo=UTC))
    loaded = load_report_file(warehouse, report.spec, exported)
    assert loaded.outcome.rejected == 0
    with warehouse.read_connection() as con:
        return {
            table: dict(
                con.execute(
                    "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ?", [table]
                ).fetchall()
            )
            for table in report.tables
        }


@pytest.mark.parametrize("name", list(REPORTS))
def test_every_report_table_holds_its_documented_fields_as_their_documented_types(
    tmp_path: Path, documented: dict[str, list[Documented]], name: str
) -> None:
    report = REPORTS[name]
    tables = _table_types(tmp_path, report)
    problems = []
    for table, levels in report.tables.items():
        columns = tables[table]
        assert columns, f"{table}: no such table"
        expected = set()
        for field in documented[name]:
            level = field.path[: field.path.rfind(".") + 1]
            if level not in levels:
                continue
            deviation = report.deviations.get(field.path)
            allowed = allowed_types(field if deviation is None else Documented(field.path, frozenset({deviation}), ""))
            if allowed is None:
                # An array or object is flattened: its fields are documented and become the columns.
                assert any(other.path.startswith(f"{field.path}.") for other in documented[name]), field.path
                if f"{field.path}." in levels:
                    assert field.path not in columns, f"{table}: {field.path} is a column and flattened"
                continue
            column = column_of(report, field.path)
            expected.add(column)
            if column not in columns:
                problems.append(f"{table}: documented field {field.path} has no column {column}")
            elif columns[column] not in allowed:
                problems.append(
                    f"{table}.{column}: {columns[column]}, but {field.path} is documented as "
                    f"{' / '.join(sorted(field.types))} ({', '.join(sorted(allowed))})"
                )
        undocumented = set(columns) - expected - LINEAGE - report.added
        if undocumented:
            problems.append(f"{table}: columns no field table documents: {sorted(undocumented)}")
    assert problems == []
