"""Each of the four reports, from payload records written here by hand to the rows and column types
the real loader leaves in DuckDB, also written here by hand.

The simulator and the loader both read `reports/specs.py`, so comparing them cannot catch a wrong
field name, nesting or type in a spec. Here the payload is what the vendor's field tables describe
(nested where the report nests, with the forms the vendor's examples show) and each expected row
names every column with its Python value, so an INTEGER read as a BOOLEAN (`1` against `True`), a
field read from another name (its value null, the sent one in `extra_fields`) or a dropped column
is a difference. Only the loader's entry point comes from the package.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from ekvio_assets.api.client import ExportedFile
from ekvio_assets.reports.load import load_report_file
from ekvio_assets.reports.specs import ATTEMPTS, COURSE_STATISTICS, MATERIAL_STATISTICS, PROGRAM_STATISTICS, ReportSpec
from ekvio_assets.storage.warehouse import DuckDBWarehouse
from ekvio_assets_tests.conftest import VENDOR_COURSE_GROUPS

MOSCOW = ZoneInfo("Europe/Moscow")
TASK_ID = "task-7"
FETCHED_AT = datetime(2024, 3, 2, 0, 5, tzinfo=MOSCOW)
# A daily export's window: a row without a change time of its own is dated by the window's end.
WINDOW_START = datetime(2024, 3, 1, tzinfo=MOSCOW)
WINDOW_END = datetime(2024, 3, 2, tzinfo=MOSCOW)

# How duckdb_columns() names the types.
VARCHAR, BIGINT, BOOLEAN, JSON = "VARCHAR", "BIGINT", "BOOLEAN", "JSON"
TIMESTAMPTZ = "TIMESTAMP WITH TIME ZONE"
LINEAGE_TYPES = {
    "_changed_at": TIMESTAMPTZ,
    "_window_start": TIMESTAMPTZ,
    "_window_end": TIMESTAMPTZ,
    "_fetched_at": TIMESTAMPTZ,
    "_task_id": VARCHAR,
    "_raw_file": VARCHAR,
}
MATERIAL_KINDS = ("pdf", "scorm", "link", "html", "test", "video", "longread", "document")


def at(text: str) -> datetime:
    """A date-time as the vendor writes it: with an offset, or without one in Moscow time."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=MOSCOW)


def lineage(raw_file: Path, changed_at: datetime) -> dict[str, Any]:
    return {
        "_changed_at": changed_at,
        "_window_start": WINDOW_START,
        "_window_end": WINDOW_END,
        "_fetched_at": FETCHED_AT,
        "_task_id": TASK_ID,
        "_raw_file": str(raw_file),
    }


@pytest.fixture
def warehouse(tmp_path: Path) -> DuckDBWarehouse:
    return DuckDBWarehouse(data_dir=str(tmp_path / "data"), timezone="Europe/Moscow")


def load(warehouse: DuckDBWarehouse, tmp_path: Path, spec: ReportSpec, records: list[Any]) -> Path:
    """Write the records as the API's result file, load it through the real loader as a daily
    export, and return the file; nothing may be rejected."""
    path = tmp_path / f"{spec.name}.json"
    path.write_text(json.dumps({"data": records}, ensure_ascii=False), encoding="utf-8")
    exported = ExportedFile(spec.name, TASK_ID, path, path.stat().st_size, FETCHED_AT)
    loaded = load_report_file(warehouse, spec, exported, WINDOW_START, WINDOW_END)
    assert loaded.outcome.rejected == 0
    assert loaded.parents is None or loaded.parents.outcome.rejected == 0
    return path


def column_types(warehouse: DuckDBWarehouse, table: str) -> dict[str, str]:
    with warehouse.read_connection() as con:
        return dict(
            con.execute(
                "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ? ORDER BY column_index",
                [table],
            ).fetchall()
        )


def table_rows(warehouse: DuckDBWarehouse, table: str, key: str) -> list[dict[str, Any]]:
    with warehouse.read_connection() as con:
        cursor = con.execute(f"SELECT * FROM {table} ORDER BY {key}")
        names = [column[0] for column in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        assert con.execute("SELECT count(*) FROM rejected_records").fetchone() == (0,)
    return rows


def typed(row: dict[str, Any]) -> dict[str, tuple[type, Any]]:
    """Each value with its type: `1` is not `True`, `0` is not `None`; `extra_fields` parsed, as
    the JSON text's spacing is no promise."""
    values = {**row}
    if isinstance(values.get("extra_fields"), str):
        values["extra_fields"] = json.loads(values["extra_fields"])
    return {name: (type(value), value) for name, value in values.items()}


def assert_rows(loaded: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    assert len(loaded) == len(expected)
    for got, want in zip(loaded, expected, strict=True):
        assert sorted(got) == sorted(want)
        assert typed(got) == typed(want)


# --- test attempts: flat ---------------------------------------------------------------------------

ATTEMPT_RECORDS = [
    {
        "id": "000b0530-2925-11ed-94c0-0242ac12002b",
        "material_id": 742,
        "login": "qweewq",
        "status": "fail",
        "number": None,
        "points": 0,
        "percent": 0,
        "q_count": 1,
        "q_success": 0,
        "q_fail": 1,
        "q_checking": 0,
        "started_at": "2024-03-01T15:03:45+03:00",
        "ended_at": "2024-03-01T15:04:01+03:00",
        "created_at": "2024-03-01T15:04:00+03:00",
        "updated_at": "2024-03-01T15:04:36+03:00",
        "category_id": 5,
    },
    # The field table documents material_id as a string, the vendor's example sends an int: both are the id.
    {
        "id": "000d2148-5ef7-11eb-8101-0242ac120017",
        "material_id": "1052",
        "login": "licenz",
        "status": "checking",
        "number": 3,
        "points": 20,
        "percent": 90,
        "q_count": 4,
        "q_success": 2,
        "q_fail": 1,
        "q_checking": 1,
        "started_at": "2024-03-01T13:19:21+03:00",
        "ended_at": None,
        "created_at": "2024-03-01T13:20:51+03:00",
        "updated_at": "2024-03-01T13:20:56+03:00",
    },
]

ATTEMPT_TYPES = {
    "attempt_id": VARCHAR,
    "material_id": BIGINT,
    "login": VARCHAR,
    "status": VARCHAR,
    "number": BIGINT,
    "points": BIGINT,
    "percent": BIGINT,
    "q_count": BIGINT,
    "q_success": BIGINT,
    "q_fail": BIGINT,
    "q_checking": BIGINT,
    "started_at": TIMESTAMPTZ,
    "ended_at": TIMESTAMPTZ,
    "created_at": TIMESTAMPTZ,
    "updated_at": TIMESTAMPTZ,
    "extra_fields": JSON,
    **LINEAGE_TYPES,
}


def test_attempts_land_as_written_rows(warehouse: DuckDBWarehouse, tmp_path: Path) -> None:
    raw = load(warehouse, tmp_path, ATTEMPTS, ATTEMPT_RECORDS)
    assert column_types(warehouse, "attempts") == ATTEMPT_TYPES
    assert_rows(
        table_rows(warehouse, "attempts", "attempt_id"),
        [
            {
                "attempt_id": "000b0530-2925-11ed-94c0-0242ac12002b",
                "material_id": 742,
                "login": "qweewq",
                "status": "fail",
                "number": None,
                "points": 0,
                "percent": 0,
                "q_count": 1,
                "q_success": 0,
                "q_fail": 1,
                "q_checking": 0,
                "started_at": at("2024-03-01T15:03:45+03:00"),
                "ended_at": at("2024-03-01T15:04:01+03:00"),
                "created_at": at("2024-03-01T15:04:00+03:00"),
                "updated_at": at("2024-03-01T15:04:36+03:00"),
                "extra_fields": {"category_id": 5},
                **lineage(raw, at("2024-03-01T15:04:36+03:00")),
            },
            {
                "attempt_id": "000d2148-5ef7-11eb-8101-0242ac120017",
                "material_id": 1052,
                "login": "licenz",
                "status": "checking",
                "number": 3,
                "points": 20,
                "percent": 90,
                "q_count": 4,
                "q_success": 2,
                "q_fail": 1,
                "q_checking": 1,
                "started_at": at("2024-03-01T13:19:21+03:00"),
                "ended_at": None,
                "created_at": at("2024-03-01T13:20:51+03:00"),
                "updated_at": at("2024-03-01T13:20:56+03:00"),
                "extra_fields": None,
                **lineage(raw, at("2024-03-01T13:20:56+03:00")),
            },
        ],
    )


# --- learning-material statistics: materials with their learners ---------------------------------

MATERIAL_RECORDS = [
    {
        "id": 135,
        "name": "Final test",
        "type": "test",
        "status": "active",
        "points": 50,
        "statistics": [
            {
                "login": "anna",
                "user_status": "active",
                "material_status": "completed",
                "points": 45,
                "attempts": 2,
                "progress": 100,
                "start_at": "2024-03-01T10:00:00+03:00",
                "end_at": "2024-03-01T10:30:00+03:00",
                "update_at": "2024-03-01T10:30:00+03:00",
            },
            {
                "login": "boris",
                "user_status": "blocked",
                "material_status": "appointed",
                "points": None,
                "attempts": None,
                "progress": 0,
                "start_at": None,
                "end_at": None,
                "update_at": None,
            },
        ],
    },
    # The same id as another type, the vendor's space-separated local date-times, extras on both levels.
    {
        "id": 135,
        "name": "Final video",
        "type": "video",
        "status": "hide",
        "points": None,
        "category": "HR",
        "statistics": [
            {
                "login": "anna",
                "user_status": "active",
                "material_status": "in_progress",
                "points": 0,
                "progress": 40,
                "start_at": "2024-03-01 12:00:00",
                "end_at": None,
                "update_at": "2024-03-01 12:10:00",
                "badge": "gold",
            }
        ],
    },
    {"id": 140, "name": "Nobody yet", "type": "pdf", "status": "active", "points": None, "statistics": []},
]

REPORTED_MATERIAL_TYPES = {
    "material_id": BIGINT,
    "material_type": VARCHAR,
    "material_name": VARCHAR,
    "material_points": BIGINT,
    "material_visibility": VARCHAR,
    "extra_fields": JSON,
    **LINEAGE_TYPES,
}
MATERIAL_STATISTICS_TYPES = {
    "material_id": BIGINT,
    "material_type": VARCHAR,
    "material_name": VARCHAR,
    "material_points": BIGINT,
    "material_visibility": VARCHAR,
    "login": VARCHAR,
    "user_status": VARCHAR,
    "material_status": VARCHAR,
    "points": BIGINT,
    "attempts": BIGINT,
    "progress": BIGINT,
    "start_at": TIMESTAMPTZ,
    "end_at": TIMESTAMPTZ,
    "update_at": TIMESTAMPTZ,
    "extra_fields": JSON,
    **LINEAGE_TYPES,
}


def test_material_statistics_land_as_written_rows_and_parents(warehouse: DuckDBWarehouse, tmp_path: Path) -> None:
    raw = load(warehouse, tmp_path, MATERIAL_STATISTICS, MATERIAL_RECORDS)
    assert column_types(warehouse, "material_statistics") == MATERIAL_STATISTICS_TYPES
    assert column_types(warehouse, "reported_materials") == REPORTED_MATERIAL_TYPES
    test = {
        "material_id": 135,
        "material_type": "test",
        "material_name": "Final test",
        "material_points": 50,
        "material_visibility": "active",
    }
    video = {
        "material_id": 135,
        "material_type": "video",
        "material_name": "Final video",
        "material_points": None,
        "material_visibility": "hide",
    }
    assert_rows(
        table_rows(warehouse, "material_statistics", "material_type, login"),
        [
            {
                **test,
                "login": "anna",
                "user_status": "active",
                "material_status": "completed",
                "points": 45,
                "attempts": 2,
                "progress": 100,
                "start_at": at("2024-03-01T10:00:00+03:00"),
                "end_at": at("2024-03-01T10:30:00+03:00"),
                "update_at": at("2024-03-01T10:30:00+03:00"),
                "extra_fields": None,
                **lineage(raw, at("2024-03-01T10:30:00+03:00")),
            },
            {
                **test,
                "login": "boris",
                "user_status": "blocked",
                "material_status": "appointed",
                "points": None,
                "attempts": None,
                "progress": 0,
                "start_at": None,
                "end_at": None,
                "update_at": None,
                "extra_fields": None,
                **lineage(raw, WINDOW_END),
            },
            {
                **video,
                "login": "anna",
                "user_status": "active",
                "material_status": "in_progress",
                "points": 0,
                "attempts": None,
                "progress": 40,
                "start_at": at("2024-03-01T12:00:00+03:00"),
                "end_at": None,
                "update_at": at("2024-03-01T12:10:00+03:00"),
                "extra_fields": {"parent.category": "HR", "badge": "gold"},
                **lineage(raw, at("2024-03-01T12:10:00+03:00")),
            },
        ],
    )
    # A parent's version is the export that showed it: its fetch time.
    assert_rows(
        table_rows(warehouse, "reported_materials", "material_id, material_type"),
        [
            {**test, "extra_fields": None, **lineage(raw, FETCHED_AT)},
            {**video, "extra_fields": {"category": "HR"}, **lineage(raw, FETCHED_AT)},
            {
                "material_id": 140,
                "material_type": "pdf",
                "material_name": "Nobody yet",
                "material_points": None,
                "material_visibility": "active",
                "extra_fields": None,
                **lineage(raw, FETCHED_AT),
            },
        ],
    )


# --- course statistics: flat, with the company's own columns -------------------------------------

COURSE_RECORDS = [
    {
        "user_id": 30038,
        "material_id": 18918,
        "fio": "Петров Петр",
        "user_status": "active",
        "login": "petrov.p",
        "start_time": "2024-03-01T15:52:01+03:00",
        "complete_date": "2024-03-01T16:52:01+03:00",
        "total_time": 3600,
        "name": "New course",
        "is_required": 1,
        "user_scores": 7,
        "max_interaction_scores": 10,
        "pdf_viewed": 1,
        "pdf_total": 2,
        "link_viewed": 0,
        "link_total": 1,
        "html_viewed": 3,
        "html_total": 3,
        "scorm_total_time": 1200,
        "scorm_status": "passed",
        "scorm_percent": 80,
        "user_final_scores": 9,
        "max_final_scores": 10,
        "percent_final_scores": 90,
        "last_activity": "2024-03-01T16:52:01+03:00",
        "current_turn": 2,
        "turns_count": 3,
        "filled_type": "Польз.",
        **VENDOR_COURSE_GROUPS,
        "form_question_10": "М",
    },
    {
        "user_id": 157632,
        "material_id": 18918,
        "fio": "Бирюков Евгений",
        "user_status": "blocked",
        "login": "birukov.s",
        "start_time": None,
        "complete_date": None,
        "total_time": 0,
        "name": None,
        "is_required": 0,
        "user_scores": 0,
        "max_interaction_scores": 0,
        "pdf_viewed": 0,
        "pdf_total": 2,
        "link_viewed": 0,
        "link_total": 1,
        "html_viewed": 0,
        "html_total": 3,
        "scorm_total_time": None,
        "scorm_status": "not started",
        "scorm_percent": None,
        "user_final_scores": 0,
        "max_final_scores": 10,
        "percent_final_scores": None,
        "last_activity": None,
        "current_turn": None,
        "turns_count": None,
        "filled_type": None,
        **VENDOR_COURSE_GROUPS,
        "group_city": None,
        "hobby": "chess",
    },
]

COURSE_TYPES = {
    "user_id": BIGINT,
    "material_id": BIGINT,
    "fio": VARCHAR,
    "user_status": VARCHAR,
    "login": VARCHAR,
    "start_time": TIMESTAMPTZ,
    "complete_date": TIMESTAMPTZ,
    "total_time": BIGINT,
    "course_name": VARCHAR,
    "is_required": BIGINT,
    "user_scores": BIGINT,
    "max_interaction_scores": BIGINT,
    "pdf_viewed": BIGINT,
    "pdf_total": BIGINT,
    "link_viewed": BIGINT,
    "link_total": BIGINT,
    "html_viewed": BIGINT,
    "html_total": BIGINT,
    "scorm_total_time": BIGINT,
    "scorm_status": VARCHAR,
    "scorm_percent": BIGINT,
    "user_final_scores": BIGINT,
    "max_final_scores": BIGINT,
    "percent_final_scores": BIGINT,
    "last_activity": TIMESTAMPTZ,
    "current_turn": BIGINT,
    "turns_count": BIGINT,
    "filled_type": VARCHAR,
    "group_region": VARCHAR,
    "group_city": VARCHAR,
    "group_role": VARCHAR,
    "group_position": VARCHAR,
    "group_team": VARCHAR,
    "group_department": VARCHAR,
    "group_function": VARCHAR,
    "form_question_10": VARCHAR,
    "extra_fields": JSON,
    **LINEAGE_TYPES,
}


def test_course_statistics_land_as_written_rows(warehouse: DuckDBWarehouse, tmp_path: Path) -> None:
    raw = load(warehouse, tmp_path, COURSE_STATISTICS, COURSE_RECORDS)
    assert column_types(warehouse, "course_statistics") == COURSE_TYPES
    assert_rows(
        table_rows(warehouse, "course_statistics", "user_id"),
        [
            {
                "user_id": 30038,
                "material_id": 18918,
                "fio": "Петров Петр",
                "user_status": "active",
                "login": "petrov.p",
                "start_time": at("2024-03-01T15:52:01+03:00"),
                "complete_date": at("2024-03-01T16:52:01+03:00"),
                "total_time": 3600,
                "course_name": "New course",
                "is_required": 1,
                "user_scores": 7,
                "max_interaction_scores": 10,
                "pdf_viewed": 1,
                "pdf_total": 2,
                "link_viewed": 0,
                "link_total": 1,
                "html_viewed": 3,
                "html_total": 3,
                "scorm_total_time": 1200,
                "scorm_status": "passed",
                "scorm_percent": 80,
                "user_final_scores": 9,
                "max_final_scores": 10,
                "percent_final_scores": 90,
                "last_activity": at("2024-03-01T16:52:01+03:00"),
                "current_turn": 2,
                "turns_count": 3,
                "filled_type": "Польз.",
                "group_region": "Волгоградская область",
                "group_city": "Волгоград",
                "group_role": "Руководитель",
                "group_position": "Менеджер",
                "group_team": "Команда ИТР",
                "group_department": "Управление",
                "group_function": "Программная разработка",
                "form_question_10": "М",
                "extra_fields": None,
                **lineage(raw, at("2024-03-01T16:52:01+03:00")),
            },
            {
                "user_id": 157632,
                "material_id": 18918,
                "fio": "Бирюков Евгений",
                "user_status": "blocked",
                "login": "birukov.s",
                "start_time": None,
                "complete_date": None,
                "total_time": 0,
                "course_name": None,
                "is_required": 0,
                "user_scores": 0,
                "max_interaction_scores": 0,
                "pdf_viewed": 0,
                "pdf_total": 2,
                "link_viewed": 0,
                "link_total": 1,
                "html_viewed": 0,
                "html_total": 3,
                "scorm_total_time": None,
                "scorm_status": "not started",
                "scorm_percent": None,
                "user_final_scores": 0,
                "max_final_scores": 10,
                "percent_final_scores": None,
                "last_activity": None,
                "current_turn": None,
                "turns_count": None,
                "filled_type": None,
                "group_region": "Волгоградская область",
                "group_city": None,
                "group_role": "Руководитель",
                "group_position": "Менеджер",
                "group_team": "Команда ИТР",
                "group_department": "Управление",
                "group_function": "Программная разработка",
                "form_question_10": None,
                "extra_fields": {"hobby": "chess"},
                **lineage(raw, WINDOW_END),
            },
        ],
    )


# --- learning-programme statistics: programmes with their materials and learners ------------------


def _counts(**counts: int) -> dict[str, int]:
    return {kind: counts.get(kind, 0) for kind in MATERIAL_KINDS}


PROGRAM_RECORDS = [
    {
        "id": 59,
        "name": "Onboarding",
        "deadline_type": "absolute",
        # Documented as unix time: 2024-03-08T00:00:00Z.
        "deadline_at": 1709856000,
        "deadline_period_at": None,
        "points": 30,
        "materials": {**_counts(pdf=1, test=1, video=1), "total": 3},
        "statistics": [
            {
                "login": "xutest",
                "user_status": "active",
                "program_status": "completed",
                "progress": 100,
                "points": 30,
                "start_at": "2024-03-01T09:00:00+03:00",
                "active_at": "2024-03-01T11:00:00+03:00",
                "end_at": "2024-03-01T11:00:00+03:00",
                "passed_at_time": True,
                "deadline_at": "2024-03-05T00:00:00+03:00",
                **_counts(pdf=1, test=1, video=1),
            },
            {
                "login": "noname2",
                "user_status": "active",
                "program_status": "in_progress",
                "progress": 33,
                "points": None,
                "start_at": "2024-03-01T10:00:00+03:00",
                "active_at": "2024-03-01T10:20:00+03:00",
                "end_at": None,
                "passed_at_time": False,
                "deadline_at": None,
                **_counts(pdf=1),
            },
            {
                "login": "later",
                "user_status": "blocked",
                "program_status": "appointed",
                "progress": 0,
                "points": None,
                "start_at": None,
                "active_at": None,
                "end_at": None,
                "passed_at_time": None,
                "deadline_at": None,
                **_counts(),
            },
        ],
    },
    {
        "id": 60,
        "name": "Relative",
        "deadline_type": "relative",
        "deadline_at": None,
        "deadline_period_at": "30 days",
        "points": 0,
        "materials": {**_counts(), "total": 0},
        "statistics": [],
    },
]

REPORTED_PROGRAM_TYPES = {
    "program_id": BIGINT,
    "program_name": VARCHAR,
    "deadline_type": VARCHAR,
    "deadline_at": TIMESTAMPTZ,
    "deadline_period_at": VARCHAR,
    "program_points": BIGINT,
    **{f"materials_{kind}": BIGINT for kind in MATERIAL_KINDS},
    "materials_total": BIGINT,
    "extra_fields": JSON,
    **LINEAGE_TYPES,
}
PROGRAM_STATISTICS_TYPES = {
    **{name: type_ for name, type_ in REPORTED_PROGRAM_TYPES.items() if name != "extra_fields" and name[0] != "_"},
    "login": VARCHAR,
    "user_status": VARCHAR,
    "program_status": VARCHAR,
    "progress": BIGINT,
    "points": BIGINT,
    "start_at": TIMESTAMPTZ,
    "active_at": TIMESTAMPTZ,
    "end_at": TIMESTAMPTZ,
    "passed_at_time": BOOLEAN,
    "learner_deadline_at": TIMESTAMPTZ,
    **{f"completed_{kind}": BIGINT for kind in MATERIAL_KINDS},
    "extra_fields": JSON,
    **LINEAGE_TYPES,
}


def _materials(prefix: str, total: int | None = None, **counts: int) -> dict[str, int]:
    values = {f"{prefix}_{kind}": counts.get(kind, 0) for kind in MATERIAL_KINDS}
    return values if total is None else {**values, f"{prefix}_total": total}


def test_program_statistics_land_as_written_rows_and_parents(warehouse: DuckDBWarehouse, tmp_path: Path) -> None:
    raw = load(warehouse, tmp_path, PROGRAM_STATISTICS, PROGRAM_RECORDS)
    assert column_types(warehouse, "program_statistics") == PROGRAM_STATISTICS_TYPES
    assert column_types(warehouse, "reported_programs") == REPORTED_PROGRAM_TYPES
    onboarding = {
        "program_id": 59,
        "program_name": "Onboarding",
        "deadline_type": "absolute",
        "deadline_at": datetime(2024, 3, 8, tzinfo=UTC),
        "deadline_period_at": None,
        "program_points": 30,
        **_materials("materials", total=3, pdf=1, test=1, video=1),
    }
    assert_rows(
        table_rows(warehouse, "program_statistics", "login"),
        [
            {
                **onboarding,
                "login": "later",
                "user_status": "blocked",
                "program_status": "appointed",
                "progress": 0,
                "points": None,
                "start_at": None,
                "active_at": None,
                "end_at": None,
                "passed_at_time": None,
                "learner_deadline_at": None,
                **_materials("completed"),
                "extra_fields": None,
                **lineage(raw, WINDOW_END),
            },
            {
                **onboarding,
                "login": "noname2",
                "user_status": "active",
                "program_status": "in_progress",
                "progress": 33,
                "points": None,
                "start_at": at("2024-03-01T10:00:00+03:00"),
                "active_at": at("2024-03-01T10:20:00+03:00"),
                "end_at": None,
                "passed_at_time": False,
                "learner_deadline_at": None,
                **_materials("completed", pdf=1),
                "extra_fields": None,
                **lineage(raw, at("2024-03-01T10:20:00+03:00")),
            },
            {
                **onboarding,
                "login": "xutest",
                "user_status": "active",
                "program_status": "completed",
                "progress": 100,
                "points": 30,
                "start_at": at("2024-03-01T09:00:00+03:00"),
                "active_at": at("2024-03-01T11:00:00+03:00"),
                "end_at": at("2024-03-01T11:00:00+03:00"),
                "passed_at_time": True,
                "learner_deadline_at": at("2024-03-05T00:00:00+03:00"),
                **_materials("completed", pdf=1, test=1, video=1),
                "extra_fields": None,
                **lineage(raw, at("2024-03-01T11:00:00+03:00")),
            },
        ],
    )
    assert_rows(
        table_rows(warehouse, "reported_programs", "program_id"),
        [
            {**onboarding, "extra_fields": None, **lineage(raw, FETCHED_AT)},
            {
                "program_id": 60,
                "program_name": "Relative",
                "deadline_type": "relative",
                "deadline_at": None,
                "deadline_period_at": "30 days",
                "program_points": 0,
                **_materials("materials", total=0),
                "extra_fields": None,
                **lineage(raw, FETCHED_AT),
            },
        ],
    )
