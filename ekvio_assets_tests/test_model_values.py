"""The analytics tables' values for a few hand-written records, written out by hand: what the
analysts' guide says each column means, checked apart from the generator and the specs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest

from ekvio_assets.models.assets import build_model_assets
from ekvio_assets.naming import SINGLE_COMPANY
from ekvio_assets.reports.replay import replay_raw_file
from ekvio_assets.storage.warehouse import DuckDBWarehouse
from ekvio_assets_tests.conftest import VENDOR_COURSE_GROUPS, attempt_record


def _course_row(user_id: int, login: str, material_id: int, name: str, **values: Any) -> dict[str, Any]:
    """A course statistics record as the vendor's example file writes one, nothing done yet."""
    return {
        "user_id": user_id,
        "material_id": material_id,
        "fio": f"Learner {login}",
        "user_status": "active",
        "login": login,
        "start_time": None,
        "complete_date": None,
        "total_time": 0,
        "name": name,
        "is_required": 0,
        "user_scores": 0,
        "max_interaction_scores": 0,
        "pdf_viewed": 0,
        "pdf_total": 0,
        "link_viewed": 0,
        "link_total": 0,
        "html_viewed": 0,
        "html_total": 0,
        "scorm_total_time": None,
        "scorm_status": None,
        "scorm_percent": None,
        "user_final_scores": 0,
        "max_final_scores": 0,
        "percent_final_scores": 0,
        "last_activity": None,
        "current_turn": 0,
        "turns_count": 0,
        "filled_type": None,
        **VENDOR_COURSE_GROUPS,
        **values,
    }


SAFETY = {"is_required": 1, "pdf_total": 4, "link_total": 1, "max_interaction_scores": 10, "max_final_scores": 5}
COURSE_RECORDS = [
    _course_row(
        11,
        "anna",
        100,
        "Охрана труда",
        **SAFETY,
        start_time="2024-03-01T09:00:00+03:00",
        complete_date="2024-03-02T10:30:00+03:00",
        last_activity="2024-03-02T10:30:00+03:00",
        total_time=5400,
        user_scores=7,
        pdf_viewed=2,
        link_viewed=1,
        scorm_total_time=1200,
        scorm_status="passed",
        scorm_percent=80,
        user_final_scores=4,
        percent_final_scores=80,
        current_turn=2,
        turns_count=2,
    ),
    # Boris last worked on the course before it was renamed, and his row still says so.
    _course_row(
        12,
        "boris",
        100,
        "Охрана труда (черновик)",
        **SAFETY,
        start_time="2024-03-01T12:00:00+03:00",
        last_activity="2024-03-01T12:20:00+03:00",
        total_time=600,
        pdf_viewed=1,
    ),
    _course_row(11, "anna", 200, "New course", html_total=1, max_final_scores=1, turns_count=1),
]


def _material_row(login: str, status: str, **values: Any) -> dict[str, Any]:
    return {
        "login": login,
        "user_status": "active",
        "material_status": status,
        "points": 0,
        "progress": 100 if status == "completed" else 0,
        "start_at": "2024-03-01 10:00:00",
        "end_at": "2024-03-01 11:00:00" if status == "completed" else None,
        "update_at": "2024-03-01 11:00:00",
        **values,
    }


MATERIAL_RECORDS = [
    {
        "id": 75,
        "name": "Вводная инструкция",
        "type": "pdf",
        "status": "active",
        "points": None,
        "statistics": [_material_row("anna", "completed"), _material_row("boris", "in_progress")],
    },
    {
        "id": 742,
        "name": "Итоговый тест",
        "type": "test",
        "status": "active",
        "points": 10,
        "statistics": [_material_row("anna", "completed", points=10, attempts=2)],
    },
    {"id": 900, "name": "Без слушателей", "type": "scorm", "status": "active", "points": 20, "statistics": []},
]
# Two learners' attempts on test 742, and one on a test the materials report did not send.
ATTEMPT_RECORDS = [
    attempt_record("a1", "2024-03-01T10:05:00+03:00", login="ivanov"),
    attempt_record("a2", "2024-03-01T10:10:00+03:00", login="anna", percent=60, number=1),
    attempt_record("a3", "2024-03-01T10:20:00+03:00", login="anna", number=2),
    attempt_record("a4", "2024-03-01T10:30:00+03:00", login="boris", material_id=555),
]


def _program_row(login: str, status: str, **values: Any) -> dict[str, Any]:
    kinds = ("pdf", "scorm", "link", "html", "test", "video", "longread", "document")
    return {
        "login": login,
        "user_status": "active",
        "program_status": status,
        "progress": 100 if status == "completed" else 0,
        "points": 0,
        "start_at": "2024-03-01T09:00:00+03:00",
        "active_at": "2024-03-01T09:30:00+03:00",
        "end_at": None,
        "deadline_at": None,
        "passed_at_time": None,
        **dict.fromkeys(kinds, 0),
        **values,
    }


PROGRAM_MATERIALS = {"pdf": 1, "scorm": 0, "link": 0, "html": 0, "test": 1, "video": 1, "longread": 0, "document": 0}
PROGRAM_RECORDS = [
    {
        "id": 59,
        "name": "Адаптация",
        "deadline_type": "absolute",
        "deadline_at": "2024-04-01T12:00:00+03:00",
        "deadline_period_at": None,
        "points": 30,
        "materials": {**PROGRAM_MATERIALS, "total": 3},
        "statistics": [
            _program_row("anna", "completed", points=30, end_at="2024-03-05T12:00:00+03:00", passed_at_time=True),
            _program_row("boris", "in_progress"),
        ],
    },
    {
        "id": 60,
        "name": "Наставничество",
        "deadline_type": "relative",
        "deadline_at": None,
        "deadline_period_at": "P2W",
        "points": 0,
        "materials": {**PROGRAM_MATERIALS, "total": 3},
        "statistics": [],
    },
]


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("values") / "data"
    warehouse = DuckDBWarehouse(data_dir=str(data_dir), timezone="Europe/Moscow")
    for report, records in (
        ("course_statistics", COURSE_RECORDS),
        ("material_statistics", MATERIAL_RECORDS),
        ("attempts", ATTEMPT_RECORDS),
        ("program_statistics", PROGRAM_RECORDS),
    ):
        export = data_dir.parent / f"{report}.json"
        export.write_text(json.dumps({"data": records}, ensure_ascii=False), encoding="utf-8")
        loaded = replay_raw_file(warehouse, export, report=report)[2]
        assert loaded.outcome.rejected == 0, report
    result = dg.materialize(
        build_model_assets(SINGLE_COMPANY),
        resources={"warehouse": warehouse},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert result.success
    return warehouse.working_path


def _rows(database: Path, sql: str) -> list[dict[str, Any]]:
    with duckdb.connect(str(database), read_only=True) as con:
        cursor = con.execute(sql)
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def test_courses_hold_each_course_once_with_its_learners_counted(database: Path) -> None:
    # A course's fields are those of its row changed last (anna's), not boris's from before the rename.
    assert _rows(database, "SELECT * FROM courses ORDER BY material_id") == [
        {
            "material_id": 100,
            "course_name": "Охрана труда",
            "is_required": True,
            "pdf_total": 4,
            "link_total": 1,
            "html_total": 0,
            "has_scorm": True,
            "max_interaction_scores": 10,
            "max_final_scores": 5,
            "learners_assigned": 2,
            "learners_completed": 1,
        },
        {
            "material_id": 200,
            "course_name": "New course",
            "is_required": False,
            "pdf_total": 0,
            "link_total": 0,
            "html_total": 1,
            "has_scorm": False,
            "max_interaction_scores": 0,
            "max_final_scores": 1,
            "learners_assigned": 1,
            "learners_completed": 0,
        },
    ]


def test_learner_course_progress_is_each_learners_course_with_its_shares(database: Path) -> None:
    rows = {(row["login"], row["material_id"]): row for row in _rows(database, "SELECT * FROM learner_course_progress")}
    assert set(rows) == {("anna", 100), ("boris", 100), ("anna", 200)}
    assert rows["anna", 100] == {
        "login": "anna",
        "material_id": 100,
        "user_id": 11,
        "fio": "Learner anna",
        "user_status": "active",
        **VENDOR_COURSE_GROUPS,
        "course_name": "Охрана труда",
        "is_required": True,
        "is_completed": True,
        "started_at": _instant("2024-03-01T09:00:00+03:00"),
        "completed_at": _instant("2024-03-02T10:30:00+03:00"),
        "last_activity_at": _instant("2024-03-02T10:30:00+03:00"),
        "total_time_seconds": 5400,
        "interaction_scores": 7,
        "max_interaction_scores": 10,
        "final_test_scores": 4,
        "max_final_test_scores": 5,
        "final_test_percent": 80,
        "final_test_attempts": 2,
        "scorm_status": "passed",
        "pdf_viewed": 2,
        "pdf_total": 4,
        "link_viewed": 1,
        "link_total": 1,
        "html_viewed": 0,
        "html_total": 0,
        "pdf_viewed_share": 0.5,
        "link_viewed_share": 1.0,
        "html_viewed_share": None,  # nothing of the kind to view
        "scorm_share": 0.8,
        "content_viewed_share": 0.6,  # (2 + 1 + 0) of (4 + 1 + 0)
    }
    boris = rows["boris", 100]
    assert (boris["is_completed"], boris["completed_at"], boris["pdf_viewed_share"], boris["scorm_share"]) == (
        False,
        None,
        0.25,
        None,
    )
    assert boris["content_viewed_share"] == pytest.approx(0.2)
    untouched = rows["anna", 200]
    assert (untouched["is_required"], untouched["is_completed"], untouched["started_at"]) == (False, False, None)
    assert (untouched["html_viewed_share"], untouched["content_viewed_share"]) == (0.0, 0.0)


def test_materials_hold_every_material_sent_or_attempted_with_its_learners_counted(database: Path) -> None:
    # Nothing here is hidden; the statuses are the materials report's own.
    common = {"material_visibility": "active"}
    assert _rows(database, "SELECT * FROM materials ORDER BY material_id") == [
        {
            "material_id": 75,
            "material_type": "pdf",
            "material_name": "Вводная инструкция",
            "max_points": None,
            **common,
            "is_test": False,
            "attempts_count": 0,
            "learners_attempted": 0,
            "learners_assigned": 2,
            "learners_completed": 1,
        },
        {
            "material_id": 555,
            "material_type": "test",
            "material_name": None,  # attempted, but the materials report never sent it
            "max_points": None,
            "material_visibility": None,
            "is_test": True,
            "attempts_count": 1,
            "learners_attempted": 1,
            "learners_assigned": 0,
            "learners_completed": 0,
        },
        {
            "material_id": 742,
            "material_type": "test",
            "material_name": "Итоговый тест",
            "max_points": 10,
            **common,
            "is_test": True,
            "attempts_count": 3,
            "learners_attempted": 2,
            "learners_assigned": 1,
            "learners_completed": 1,
        },
        {
            "material_id": 900,
            "material_type": "scorm",
            "material_name": "Без слушателей",
            "max_points": 20,
            **common,
            "is_test": False,
            "attempts_count": 0,
            "learners_attempted": 0,
            "learners_assigned": 0,
            "learners_completed": 0,
        },
    ]


def test_programs_hold_every_programme_sent_with_its_deadline_and_learners_counted(database: Path) -> None:
    materials = {f"materials_{kind}": count for kind, count in PROGRAM_MATERIALS.items()} | {"materials_total": 3}
    assert _rows(database, "SELECT * FROM programs ORDER BY program_id") == [
        {
            "program_id": 59,
            "program_name": "Адаптация",
            "deadline_type": "absolute",
            "deadline_at": _instant("2024-04-01T12:00:00+03:00"),
            "relative_deadline": None,
            "relative_deadline_interval": None,
            "max_points": 30,
            **materials,
            "learners_assigned": 2,
            "learners_completed": 1,
        },
        {
            "program_id": 60,
            "program_name": "Наставничество",
            "deadline_type": "relative",
            "deadline_at": None,
            "relative_deadline": "P2W",
            "relative_deadline_interval": timedelta(days=14),
            "max_points": 0,
            **materials,
            "learners_assigned": 0,
            "learners_completed": 0,
        },
    ]
