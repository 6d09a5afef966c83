"""The generic load path on crafted report files: drift, rejects, duplicates, idempotence, bad files."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest

from ekvio_assets.api.client import ExportedFile
from ekvio_assets.reports.checks import (
    EXPORT_SIZE_CHECK,
    RANGES_CHECK,
    STATUSES_CHECK,
    evaluate_report_checks,
    export_size_result,
)
from ekvio_assets.reports.load import load_report_file
from ekvio_assets.reports.specs import ATTEMPTS, COURSE_STATISTICS, MATERIAL_STATISTICS, PROGRAM_STATISTICS, ReportSpec
from ekvio_assets.reports.staging import ReportFileError
from ekvio_assets.storage.warehouse import DuckDBWarehouse
from ekvio_assets_tests.conftest import attempt_record

MOSCOW_OFFSET_HOURS = 3


@pytest.fixture
def warehouse(tmp_path: Path) -> DuckDBWarehouse:
    return DuckDBWarehouse(data_dir=str(tmp_path / "data"), timezone="Europe/Moscow")


def _write(tmp_path: Path, name: str, content: Any) -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content, ensure_ascii=False), encoding="utf-8")
    return path


def _load(warehouse: DuckDBWarehouse, spec: ReportSpec, path: Path, task_id: str = "1", **window: datetime):
    exported = ExportedFile(spec.name, task_id, path, path.stat().st_size, datetime.now(UTC))
    return load_report_file(warehouse, spec, exported, window.get("start"), window.get("end"))


def _rows(warehouse: DuckDBWarehouse, sql: str) -> list[dict[str, Any]]:
    with warehouse.read_connection() as con:
        cursor = con.execute(sql)
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def test_drifted_values_land_typed_and_nothing_is_dropped(warehouse: DuckDBWarehouse, tmp_path: Path) -> None:
    payload = {
        "data": [
            attempt_record("a1", "2024-03-01T10:05:00", material_id="742", points="12", tags=["x"], category_id=5),
            attempt_record("a2", "2024-03-01 07:05:00Z", ended_at=None, percent=80.0),
            {k: v for k, v in attempt_record("a3", "2024-03-01T12:05:00+05:00").items() if k != "number"},
            attempt_record("a4", 1709276700),
            attempt_record("a5", "1709276700000"),
        ]
    }
    loaded = _load(warehouse, ATTEMPTS, _write(tmp_path, "a.json", payload))
    assert (loaded.outcome.inserted, loaded.outcome.rejected) == (5, 0)

    rows = {row["attempt_id"]: row for row in _rows(warehouse, "SELECT * FROM attempts")}
    same_instant = datetime(2024, 3, 1, 7, 5, tzinfo=UTC)
    assert all(rows[key]["updated_at"] == same_instant for key in ("a1", "a2", "a3", "a4", "a5"))
    assert rows["a1"]["material_id"] == 742 and rows["a1"]["points"] == 12
    assert json.loads(rows["a1"]["extra_fields"]) == {"tags": ["x"], "category_id": 5}
    assert rows["a2"]["extra_fields"] is None and rows["a2"]["ended_at"] is None and rows["a2"]["percent"] == 80
    assert rows["a3"]["number"] is None
    assert rows["a1"]["_task_id"] == "1" and rows["a1"]["_raw_file"].endswith("a.json")


def test_nested_report_flattens_parents_with_extras_and_both_deadline_forms(
    warehouse: DuckDBWarehouse, tmp_path: Path
) -> None:
    learner = {
        "login": "ivanov",
        "user_status": "active",
        "program_status": "completed",
        "progress": 100,
        "points": "30",
        "start_at": "2024-03-01T10:00:00+03:00",
        "active_at": "2024-03-02T10:00:00+03:00",
        "end_at": "2024-03-02T10:00:00+03:00",
        "passed_at_time": True,
        "pdf": 1,
        "scorm": 0,
        "link": 0,
        "html": 0,
        "test": 1,
        "video": 0,
        "longread": 0,
        "document": 0,
        "badge": "gold",
    }
    materials = {
        "pdf": 1,
        "scorm": 0,
        "link": 0,
        "html": 0,
        "test": 1,
        "video": 0,
        "longread": 0,
        "document": 0,
        "total": 2,
    }
    payload = {
        "include": [],
        "data": [
            {
                "id": 7,
                "name": "Onboarding",
                "deadline_type": "fixed",
                "deadline_at": 1709856000,
                "deadline_period_at": None,
                "points": 30,
                "materials": {**materials, "audio": 3},
                "category": "HR",
                "statistics": [learner, {**learner, "login": "petrov", "passed_at_time": 0}],
            },
            {
                "id": "8",
                "name": "Safety",
                "deadline_type": "fixed",
                "deadline_at": "2024-03-08T03:00:00+03:00",
                "deadline_period_at": None,
                "points": 10,
                "materials": materials,
                "statistics": [learner],
            },
            {"id": 9, "name": "Nobody yet", "materials": materials, "statistics": []},
        ],
    }
    loaded = _load(warehouse, PROGRAM_STATISTICS, _write(tmp_path, "p.json", payload))
    assert (loaded.outcome.rows_in_file, loaded.outcome.rejected) == (3, 0)

    rows = {(r["program_id"], r["login"]): r for r in _rows(warehouse, "SELECT * FROM program_statistics")}
    deadline = datetime(2024, 3, 8, 0, 0, tzinfo=UTC)
    assert rows[(7, "ivanov")]["deadline_at"] == deadline == rows[(8, "ivanov")]["deadline_at"]
    assert rows[(7, "ivanov")]["materials_total"] == 2 and rows[(7, "ivanov")]["completed_test"] == 1
    assert rows[(7, "ivanov")]["points"] == 30 and rows[(7, "petrov")]["passed_at_time"] is False
    assert json.loads(rows[(7, "ivanov")]["extra_fields"]) == {
        "badge": "gold",
        "parent.materials.audio": 3,
        "parent.category": "HR",
    }
    assert json.loads(rows[(8, "ivanov")]["extra_fields"]) == {"badge": "gold"}


def test_company_specific_course_fields_become_columns(warehouse: DuckDBWarehouse, vendor_examples: Path) -> None:
    _load(warehouse, COURSE_STATISTICS, vendor_examples / "trainings_statistic.json")
    rows = _rows(
        warehouse, "SELECT login, form_question_10, group_region, course_name FROM course_statistics ORDER BY login"
    )
    assert rows == [
        {
            "login": "birukov.s",
            "form_question_10": "М",
            "group_region": "Волгоградская область",
            "course_name": "New course",
        },
        {
            "login": "petrov.p",
            "form_question_10": "М",
            "group_region": "Волгоградская область",
            "course_name": "New course",
        },
    ]


def test_unreadable_records_are_set_aside_with_the_failing_field(warehouse: DuckDBWarehouse, tmp_path: Path) -> None:
    payload = {
        "data": [
            attempt_record("good", "2024-03-01T10:05:00+03:00"),
            attempt_record("bad-points", "2024-03-01T10:05:00+03:00", points="twelve"),
            attempt_record("bad-date", "31.02.2024", percent=12.5),
            attempt_record("huge-number", "99999999999999999999"),
            {k: v for k, v in attempt_record("x", "2024-03-01T10:05:00+03:00").items() if k != "id"},
            "not an object",
        ]
    }
    loaded = _load(warehouse, ATTEMPTS, _write(tmp_path, "a.json", payload))
    assert (loaded.outcome.inserted, loaded.outcome.rejected) == (1, 5)
    assert loaded.table_metadata["dagster/row_count"].value == 1

    rejects = _rows(warehouse, "SELECT problems, record FROM rejected_records ORDER BY problems")
    problems = sorted(problem for reject in rejects for problem in reject["problems"])
    assert problems == [
        "key field attempt_id is missing",
        "percent is not an integer: 12.5",
        "points is not an integer: twelve",
        "record is not a JSON object",
        "updated_at is not a date-time: 31.02.2024",
        "updated_at is not a date-time: 99999999999999999999",
    ]
    assert any(json.loads(reject["record"]).get("attempt_id") == "bad-points" for reject in rejects)


def test_duplicate_keys_keep_the_newest_version(warehouse: DuckDBWarehouse, tmp_path: Path) -> None:
    payload = {
        "data": [
            attempt_record("a1", "2024-03-02T10:00:00+03:00", points=20),
            attempt_record("a1", "2024-03-01T10:00:00+03:00", points=10),
        ]
    }
    loaded = _load(warehouse, ATTEMPTS, _write(tmp_path, "a.json", payload))
    assert (loaded.outcome.inserted, loaded.outcome.duplicates) == (1, 1)
    assert _rows(warehouse, "SELECT points FROM attempts") == [{"points": 20}]


def test_reloading_changes_nothing_and_older_files_never_roll_back(warehouse: DuckDBWarehouse, tmp_path: Path) -> None:
    newer = _write(tmp_path, "newer.json", {"data": [attempt_record("a1", "2024-03-02T10:00:00+03:00", points=20)]})
    older = _write(tmp_path, "older.json", {"data": [attempt_record("a1", "2024-03-01T10:00:00+03:00", points=10)]})
    _load(warehouse, ATTEMPTS, newer, task_id="new")
    before = _rows(warehouse, "SELECT * FROM attempts")

    again = _load(warehouse, ATTEMPTS, newer, task_id="again")
    assert (again.outcome.inserted, again.outcome.updated) == (0, 0)
    late = _load(warehouse, ATTEMPTS, older, task_id="old")
    assert (late.outcome.inserted, late.outcome.updated) == (0, 0)
    assert _rows(warehouse, "SELECT * FROM attempts") == before

    changed = _write(tmp_path, "changed.json", {"data": [attempt_record("a1", "2024-03-03T10:00:00+03:00", points=30)]})
    assert _load(warehouse, ATTEMPTS, changed, task_id="changed").outcome.updated == 1
    assert _rows(warehouse, "SELECT points, _task_id FROM attempts") == [{"points": 30, "_task_id": "changed"}]


def test_a_version_of_the_same_change_time_is_written_only_if_its_data_differ(
    warehouse: DuckDBWarehouse, tmp_path: Path
) -> None:
    # Without a change time of its own a row takes its window's end, later with each day.
    same_time = "2024-03-01T10:00:00+03:00"
    first = [
        attempt_record("a1", same_time, points=10),
        attempt_record("a2", None, points=1),
        attempt_record("a3", None, points=1),
    ]
    _load(
        warehouse,
        ATTEMPTS,
        _write(tmp_path, "first.json", {"data": first}),
        task_id="first",
        start=datetime(2024, 3, 1, tzinfo=UTC),
        end=datetime(2024, 3, 2, tzinfo=UTC),
    )
    corrected = [
        attempt_record("a1", same_time, points=11),
        attempt_record("a2", None, points=1),
        attempt_record("a3", None, points=2),
    ]
    loaded = _load(
        warehouse,
        ATTEMPTS,
        _write(tmp_path, "corrected.json", {"data": corrected}),
        task_id="next",
        start=datetime(2024, 3, 2, tzinfo=UTC),
        end=datetime(2024, 3, 3, tzinfo=UTC),
    )
    assert (loaded.outcome.inserted, loaded.outcome.updated) == (0, 2)
    assert _rows(warehouse, "SELECT attempt_id, points, _task_id FROM attempts ORDER BY 1") == [
        {"attempt_id": "a1", "points": 11, "_task_id": "next"},
        {"attempt_id": "a2", "points": 1, "_task_id": "first"},
        {"attempt_id": "a3", "points": 2, "_task_id": "next"},
    ]


def _learner(login: str, update_at: str, **fields: Any) -> dict[str, Any]:
    return {
        "login": login,
        "user_status": "active",
        "material_status": "completed",
        "points": 5,
        "progress": 100,
        "start_at": update_at,
        "end_at": update_at,
        "update_at": update_at,
        **fields,
    }


def test_a_material_is_its_type_and_id_and_only_a_true_duplicate_is_one(
    warehouse: DuckDBWarehouse, tmp_path: Path
) -> None:
    moment = "2024-03-01 10:00:00"
    payload = {
        "data": [
            {
                "id": 135,
                "name": "Video",
                "type": "video",
                "status": "active",
                "points": 15,
                "statistics": [_learner("anna", moment)],
            },
            {
                "id": 135,
                "name": "Longread",
                "type": "longread",
                "status": "hide",
                "points": 5,
                "statistics": [_learner("anna", moment, attempts=None)],
            },
            {
                "id": 135,
                "name": "Test",
                "type": "test",
                "status": "active",
                "points": 50,
                "statistics": [
                    _learner("anna", moment, attempts="2"),
                    _learner("anna", "2024-03-02 10:00:00", attempts=3),
                ],
            },
            {"id": 135, "name": "No type", "type": None, "points": None, "statistics": [_learner("anna", moment)]},
        ]
    }
    loaded = _load(warehouse, MATERIAL_STATISTICS, _write(tmp_path, "m.json", payload))
    assert (loaded.outcome.rows_in_file, loaded.outcome.inserted, loaded.outcome.duplicates) == (5, 4, 1)
    assert loaded.outcome.rejected == 0
    assert _rows(
        warehouse,
        "SELECT material_type, material_name, material_visibility, attempts, update_at "
        "FROM material_statistics ORDER BY material_type NULLS LAST",
    ) == [
        {
            "material_type": "longread",
            "material_name": "Longread",
            "material_visibility": "hide",
            "attempts": None,
            "update_at": datetime(2024, 3, 1, 7, tzinfo=UTC),
        },
        {
            "material_type": "test",
            "material_name": "Test",
            "material_visibility": "active",
            "attempts": 3,
            "update_at": datetime(2024, 3, 2, 7, tzinfo=UTC),
        },
        {
            "material_type": "video",
            "material_name": "Video",
            "material_visibility": "active",
            "attempts": None,
            "update_at": datetime(2024, 3, 1, 7, tzinfo=UTC),
        },
        {
            "material_type": None,
            "material_name": "No type",
            "material_visibility": None,
            "attempts": None,
            "update_at": datetime(2024, 3, 1, 7, tzinfo=UTC),
        },
    ]
    # Loaded again, the row of no type is matched by its null type: nothing changes.
    again = _load(warehouse, MATERIAL_STATISTICS, _write(tmp_path, "again.json", payload), task_id="again")
    assert (again.outcome.inserted, again.outcome.updated) == (0, 0)
    assert (again.parents.outcome.inserted, again.parents.outcome.updated) == (0, 0)


def _programme(program_id: int, statistics: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    return {
        "id": program_id,
        "name": f"Programme {program_id}",
        "deadline_type": None,
        "deadline_at": None,
        "deadline_period_at": None,
        "points": 10,
        "materials": {"test": 1, "total": 1},
        "statistics": statistics,
        **fields,
    }


PROGRAMME_LEARNER = {
    "login": "anna",
    "user_status": "active",
    "program_status": "in_progress",
    "progress": 50,
    "active_at": "2024-03-01T10:00:00+03:00",
    "deadline_at": "2024-04-01 00:00:00",
    "test": 0,
}


def test_parents_without_learners_and_php_empty_objects_are_kept(warehouse: DuckDBWarehouse, tmp_path: Path) -> None:
    payload = {
        "data": [
            _programme(1, [PROGRAMME_LEARNER], materials=[]),
            _programme(2, []),
            _programme(3, [], materials=[1, 2]),
        ],
        "include": [],
    }
    loaded = _load(warehouse, PROGRAM_STATISTICS, _write(tmp_path, "p.json", payload))
    assert (loaded.outcome.inserted, loaded.outcome.rejected) == (1, 0)
    assert (loaded.parents.outcome.inserted, loaded.parents.outcome.rejected) == (3, 0)
    row = _rows(warehouse, "SELECT * FROM program_statistics")[0]
    assert (row["materials_test"], row["materials_total"], row["extra_fields"]) == (None, None, None)
    assert row["learner_deadline_at"] == datetime(2024, 3, 31, 21, tzinfo=UTC)
    assert row["deadline_at"] is None
    parents = _rows(warehouse, "SELECT program_id, materials_test, extra_fields FROM reported_programs ORDER BY 1")
    # An empty array is an object without values; any other array where an object belongs is kept as sent.
    assert [(p["program_id"], p["materials_test"]) for p in parents] == [(1, None), (2, 1), (3, None)]
    assert [json.loads(p["extra_fields"]) if p["extra_fields"] else None for p in parents] == [
        None,
        None,
        {"materials": [1, 2]},
    ]


def test_a_parent_sent_again_without_its_learners_keeps_them_and_the_newest_export_names_it(
    warehouse: DuckDBWarehouse, tmp_path: Path
) -> None:
    first = {"data": [_programme(7, [PROGRAMME_LEARNER])]}
    renamed = {"data": [_programme(7, [], name="Renamed")]}
    _load(warehouse, PROGRAM_STATISTICS, _write(tmp_path, "first.json", first), task_id="first")
    day = _load(
        warehouse,
        PROGRAM_STATISTICS,
        _write(tmp_path, "day.json", renamed),
        task_id="day",
        start=datetime(2024, 3, 2, tzinfo=UTC),
        end=datetime(2024, 3, 3, tzinfo=UTC),
    )
    assert (day.outcome.rows_in_file, day.parents.outcome.updated) == (0, 1)
    assert _rows(warehouse, "SELECT login, program_name FROM program_statistics") == [
        {"login": "anna", "program_name": "Programme 7"}
    ]
    assert _rows(warehouse, "SELECT program_name, _task_id FROM reported_programs") == [
        {"program_name": "Renamed", "_task_id": "day"}
    ]
    # A file fetched before the one that named it last never names it back.
    stale = _write(tmp_path, "stale.json", first)
    exported = ExportedFile(
        PROGRAM_STATISTICS.name, "stale", stale, stale.stat().st_size, datetime(2024, 1, 1, tzinfo=UTC)
    )
    replayed = load_report_file(warehouse, PROGRAM_STATISTICS, exported)
    assert (replayed.parents.outcome.updated, replayed.parents.outcome.inserted) == (0, 0)
    assert _rows(warehouse, "SELECT program_name FROM reported_programs") == [{"program_name": "Renamed"}]


def test_a_parent_that_cannot_be_read_is_set_aside_once_in_its_table(
    warehouse: DuckDBWarehouse, tmp_path: Path
) -> None:
    payload = {"data": [_programme(8, []), _programme("eight", [PROGRAMME_LEARNER]), "not an object"]}
    loaded = _load(warehouse, PROGRAM_STATISTICS, _write(tmp_path, "p.json", payload))
    assert (loaded.outcome.rejected, loaded.parents.outcome.rejected, loaded.parents.outcome.inserted) == (2, 1, 1)
    rejects = _rows(warehouse, "SELECT report, problems FROM rejected_records ORDER BY ALL")
    assert rejects == [
        {
            "report": "program_statistics",
            "problems": ["program_id is not an integer: eight", "key field program_id is missing"],
        },
        {"report": "program_statistics", "problems": ["record is not a JSON object"]},
        {
            "report": "reported_programs",
            "problems": ["program_id is not an integer: eight", "key field program_id is missing"],
        },
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"data": [{"id": "a1", "login": "x"}, {"id": "a2"', "not valid JSON after 1 records"),
        ("<html><body>502 Bad Gateway</body></html>", "not valid JSON"),
        ({"errors": [{"code": 500, "field": "file", "message": "export failed"}]}, "Ekvio error 500: export failed"),
        ({"result": []}, "no `data` array"),
    ],
)
def test_broken_files_fail_clearly_and_leave_the_table_as_it_was(
    warehouse: DuckDBWarehouse, tmp_path: Path, content: Any, message: str
) -> None:
    _load(
        warehouse, ATTEMPTS, _write(tmp_path, "ok.json", {"data": [attempt_record("a0", "2024-03-01T10:00:00+03:00")]})
    )
    before = _rows(warehouse, "SELECT * FROM attempts")
    broken = _write(tmp_path, "broken.json", content)
    with pytest.raises(ReportFileError, match="Test attempts task 9") as raised:
        _load(warehouse, ATTEMPTS, broken, task_id="9")
    assert message in str(raised.value) and str(broken) in str(raised.value)
    assert _rows(warehouse, "SELECT * FROM attempts") == before
    assert broken.exists()


def test_an_empty_report_creates_an_empty_table(warehouse: DuckDBWarehouse, tmp_path: Path) -> None:
    loaded = _load(warehouse, COURSE_STATISTICS, _write(tmp_path, "empty.json", {"data": []}))
    assert loaded.outcome.table_rows == 0
    with duckdb.connect(str(warehouse.working_path), read_only=True) as con:
        columns = {row[0] for row in con.execute("DESCRIBE course_statistics").fetchall()}
    assert {"user_id", "material_id", "extra_fields", "_task_id"} <= columns


def _check_results(warehouse: DuckDBWarehouse, spec: ReportSpec) -> dict[str, Any]:
    with warehouse.read_connection() as con:
        return {result.check_name: result for result in evaluate_report_checks(con, spec, dg.AssetKey(spec.name))}


def test_report_checks_pass_on_clean_data_and_name_what_breaks_them(warehouse: DuckDBWarehouse, tmp_path: Path) -> None:
    _load(
        warehouse,
        ATTEMPTS,
        _write(tmp_path, "clean.json", {"data": [attempt_record("a1", "2024-03-01T10:00:00+03:00")]}),
    )
    assert all(result.passed for result in _check_results(warehouse, ATTEMPTS).values())

    broken = {
        "data": [
            attempt_record("a2", "2024-03-01T10:00:00+03:00", percent=150),
            attempt_record("a3", "2024-03-01T10:00:00+03:00", status="archived", q_success=1),
        ]
    }
    _load(warehouse, ATTEMPTS, _write(tmp_path, "broken.json", broken))
    results = _check_results(warehouse, ATTEMPTS)
    assert not results[RANGES_CHECK].passed and "percent 1" in results[RANGES_CHECK].description
    assert results[RANGES_CHECK].severity == dg.AssetCheckSeverity.ERROR
    assert not results[STATUSES_CHECK].passed and "status: archived" in results[STATUSES_CHECK].description
    assert results[STATUSES_CHECK].severity == dg.AssetCheckSeverity.WARN
    assert not results["question_counts_add_up"].passed
    assert results["question_counts_add_up"].metadata["rows_not_adding_up"].value == 1


def test_points_above_the_known_maximum_break_the_range_check(warehouse: DuckDBWarehouse, tmp_path: Path) -> None:
    learner = {
        "login": "ivanov",
        "user_status": "active",
        "material_status": "completed",
        "points": 12,
        "progress": 100,
        "update_at": "2024-03-01T10:00:00+03:00",
    }
    material = {"id": 5, "name": "Test", "type": "test", "points": 10, "statistics": [learner]}
    _load(warehouse, MATERIAL_STATISTICS, _write(tmp_path, "m.json", {"data": [material]}))
    result = _check_results(warehouse, MATERIAL_STATISTICS)[RANGES_CHECK]
    assert not result.passed and "points 1" in result.description


def test_an_export_with_less_than_half_the_rows_held_for_its_window_is_a_warning(
    warehouse: DuckDBWarehouse, tmp_path: Path
) -> None:
    day = {"start": datetime(2024, 3, 1, tzinfo=UTC), "end": datetime(2024, 3, 2, tzinfo=UTC)}
    attempts = [attempt_record(f"a{n}", "2024-03-01T12:00:00+03:00") for n in range(5)]
    first = _load(warehouse, ATTEMPTS, _write(tmp_path, "first.json", {"data": attempts}), **day)
    assert (
        first.outcome.rows_held_for_window,
        export_size_result([first.outcome], dg.AssetKey(ATTEMPTS.name)).passed,
    ) == (0, True)
    same = _load(warehouse, ATTEMPTS, _write(tmp_path, "same.json", {"data": attempts[:3]}), **day)
    assert (
        same.outcome.rows_held_for_window,
        export_size_result([same.outcome], dg.AssetKey(ATTEMPTS.name)).passed,
    ) == (5, True)
    partial = _load(warehouse, ATTEMPTS, _write(tmp_path, "partial.json", {"data": attempts[:2]}), **day)
    result = export_size_result([partial.outcome], dg.AssetKey(ATTEMPTS.name))
    assert (result.passed, result.severity, result.check_name) == (False, dg.AssetCheckSeverity.WARN, EXPORT_SIZE_CHECK)
    assert result.description.startswith("The export returned 2 rows for windows the table held 5 rows of")
    next_day = {"start": day["end"], "end": datetime(2024, 3, 3, tzinfo=UTC)}
    other = _load(warehouse, ATTEMPTS, _write(tmp_path, "other.json", {"data": attempts[:1]}), **next_day)
    assert other.outcome.rows_held_for_window == 0


def test_records_the_reader_cannot_take_as_they_came_are_streamed_with_the_same_meaning(
    warehouse: DuckDBWarehouse, tmp_path: Path
) -> None:
    # A key twice in an object (the last one counts, as when the file is parsed record by record)
    # and a record that is not an object make DuckDB's reader give up on the copied array.
    twice = json.dumps(attempt_record("a1", "2024-03-01T10:00:00+03:00", points=10))[:-1] + ', "points": 20}'
    path = _write(tmp_path, "a.json", '{"data": [' + twice + ', "not an object"]}')
    loaded = _load(warehouse, ATTEMPTS, path)
    assert (loaded.outcome.inserted, loaded.outcome.rejected) == (1, 1)
    assert _rows(warehouse, "SELECT points FROM attempts") == [{"points": 20}]
    assert not list(Path(warehouse.data_dir, "staging").iterdir())


def test_a_file_of_json_lines_that_hides_two_records_on_a_line_loads_them_all(
    warehouse: DuckDBWarehouse, tmp_path: Path
) -> None:
    learner = {"login": "ivanov", "material_status": "completed", "progress": 100, "update_at": "2024-03-01T10:00:00"}
    lines = [json.dumps({"id": number, "statistics": [learner]}) for number in range(4)]
    path = _write(tmp_path, "m.json", '{"data": [\n' + f"{lines[0]},\n{lines[1]}, {lines[2]},\n{lines[3]}" + "\n]}")
    loaded = _load(warehouse, MATERIAL_STATISTICS, path)
    assert (loaded.outcome.inserted, loaded.outcome.rejected) == (4, 0)
    assert _rows(warehouse, "SELECT material_id FROM material_statistics ORDER BY 1") == [
        {"material_id": number} for number in range(4)
    ]


LEARNER = {
    "login": "ivanov",
    "material_status": "completed",
    "program_status": "completed",
    "progress": 100,
    "update_at": "2024-03-01T10:00:00+03:00",
    "active_at": "2024-03-01T10:00:00+03:00",
    "note": None,
}
# Rows of every kind a load tells apart: readable, rejected, duplicated (the newest wins), none.
DRIFTING_RECORDS = {
    "nested": [
        {"id": 1, "category": "HR", "statistics": [LEARNER, {**LEARNER, "login": "petrov", "progress": "lots"}]},
        {"id": 2, "statistics": None},
        {"id": 3, "statistics": [{**LEARNER, "login": None}, LEARNER, {**LEARNER, "update_at": "2024-02-01"}]},
        {"id": 1, "statistics": [{**LEARNER, "progress": 50, "active_at": "2024-03-02T10:00:00+03:00"}]},
        {"id": 4},
    ],
    ATTEMPTS.name: [
        attempt_record("a1", "2024-03-01T10:00:00+03:00", note=None),
        attempt_record("a2", "2024-03-01T10:00:00+03:00", points="lots"),
        {},
        attempt_record("a3", "2024-03-01T10:00:00+03:00", tags=[1, {"x": None}]),
        attempt_record("a1", "2024-03-02T10:00:00+03:00", points=3),
        attempt_record("a4", "2024-02-01"),
    ],
}


@pytest.mark.parametrize(
    ("spec", "counts"),
    [(MATERIAL_STATISTICS, (6, 2, 2)), (PROGRAM_STATISTICS, (6, 2, 2)), (ATTEMPTS, (6, 2, 1))],
    ids=lambda value: value.name if isinstance(value, ReportSpec) else "",
)
def test_a_report_loads_the_same_from_json_lines_as_from_one_line(
    tmp_path: Path, spec: ReportSpec, counts: tuple[int, int, int]
) -> None:
    # One record per line is read as JSON lines on all threads, one line as an array: the same
    # rows, rejects (with their places), duplicates and counts, first load and merge alike.
    records = DRIFTING_RECORDS["nested" if spec.is_nested else spec.name]
    one_line = json.dumps({"data": records}, ensure_ascii=False)
    json_lines = '{"data": [\n' + ",\n".join(json.dumps(record, ensure_ascii=False) for record in records) + "\n]}"

    def loaded(name: str, content: str) -> tuple[Any, ...]:
        warehouse = DuckDBWarehouse(data_dir=str(tmp_path / name), timezone="Europe/Moscow")
        first = _load(warehouse, spec, _write(tmp_path, f"{name}.json", content)).outcome
        again = _load(warehouse, spec, _write(tmp_path, f"{name}.again.json", content)).outcome
        # A parent's version is its fetch time, as its rows' _fetched_at.
        excluded = {spec.name: "_raw_file, _fetched_at"}
        if spec.parents is not None:
            excluded[spec.parents.name] = "_raw_file, _fetched_at, _changed_at"
        rows = [
            _rows(warehouse, f"SELECT * EXCLUDE ({columns}) FROM {t} ORDER BY ALL") for t, columns in excluded.items()
        ]
        rejects = _rows(warehouse, "SELECT report, problems, record FROM rejected_records ORDER BY ALL")
        return first.rows_in_file, first.rejected, first.duplicates, again.updated, again.inserted, rows, rejects

    from_lines = loaded("lines", json_lines)
    assert from_lines[:5] == (*counts, 0, 0)
    assert from_lines == loaded("one_line", one_line)
