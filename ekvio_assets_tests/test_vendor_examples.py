"""The vendor's own example files, served by the simulator as the API would, loaded by the real
Definitions: every record is a row with its values, written out here by hand from the files and
the field tables (naive date-times are Moscow time, the company's zone), not from the specs."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import pytest

from ekvio_assets.config import Settings
from ekvio_assets_tests.conftest import full_export

MOSCOW = ZoneInfo("Europe/Moscow")
# Every report table's lineage columns, beside the documented ones and extra_fields.
LINEAGE = {"_changed_at", "_window_start", "_window_end", "_fetched_at", "_task_id", "_raw_file"}


def at(text: str) -> datetime:
    """A date-time as the vendor writes it, with an offset or (a space, no offset) in Moscow time."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=MOSCOW)


def rows(columns: str, *values: tuple[Any, ...]) -> list[dict[str, Any]]:
    names = columns.split()
    return [dict(zip(names, row, strict=True)) for row in values]


ATTEMPTS = rows(
    "attempt_id material_id login status number points percent q_count q_success q_fail q_checking "
    "started_at ended_at created_at updated_at",
    (
        "000b0530-2925-11ed-94c0-0242ac12002b",
        742,
        "qweewq",
        "fail",
        None,
        0,
        0,
        1,
        0,
        1,
        0,
        at("2022-08-31T15:03:45+03:00"),
        at("2022-08-31T15:04:01+03:00"),
        at("2022-08-31T15:04:00+03:00"),
        at("2022-08-31T15:04:36+03:00"),
    ),
    (
        "000d2148-5ef7-11eb-8101-0242ac120017",
        1052,
        "licenz",
        "completed",
        3,
        20,
        90,
        3,
        2,
        1,
        0,
        at("2021-01-25T13:19:21+03:00"),
        at("2021-01-25T13:20:57+03:00"),
        at("2021-01-25T13:20:51+03:00"),
        at("2021-01-25T13:20:56+03:00"),
    ),
    (
        "001bfeea-b6f7-11eb-b7f3-02420a0002a5",
        1940,
        "newguy",
        "completed",
        None,
        6,
        100,
        3,
        3,
        0,
        0,
        at("2021-05-17T13:02:10+03:00"),
        at("2021-05-17T13:02:15+03:00"),
        at("2021-05-17T13:02:33+03:00"),
        at("2021-08-06T17:27:02+03:00"),
    ),
)

_COURSE = {
    "material_id": 18918,
    "user_status": "active",
    "total_time": 0,
    "course_name": "New course",
    "is_required": 0,
    "user_scores": 0,
    "max_interaction_scores": 0,
    "pdf_viewed": 0,
    "pdf_total": 0,
    "link_viewed": 0,
    "link_total": 0,
    "html_viewed": 0,
    "html_total": 1,
    "scorm_total_time": None,
    "scorm_status": None,
    "scorm_percent": None,
    "user_final_scores": 0,
    "max_final_scores": 1,
    "percent_final_scores": 0,
    "last_activity": None,
    "current_turn": 0,
    "turns_count": 1,
    "filled_type": None,
    "group_region": "Волгоградская область",
    "group_city": "Волгоград",
    "group_function": "Программная разработка",
    "form_question_10": "М",
}
COURSES = [
    {**_COURSE, **row}
    for row in rows(
        "user_id fio login start_time complete_date group_role group_position group_team group_department",
        (
            30038,
            "Петров Петр",
            "petrov.p",
            at("2020-12-01T15:52:01+03:00"),
            at("2020-12-01T16:52:01+03:00"),
            "Руководитель",
            "Менеджер",
            "Команда ИТР",
            "Управление",
        ),
        (
            157632,
            "Бирюков Евгений",
            "birukov.s",
            None,
            None,
            "Разработчик",
            "Разработчик",
            "Команда ИТ",
            "Управление ИТ",
        ),
    )
]

_ALL_DAY = (at("2020-01-31 10:06:52"),) * 3
# Material 135 is a video, a longread and a document, each with its own row for d1astola.
MATERIALS = rows(
    "material_id material_type material_name material_points material_visibility",
    (75, "pdf", "Новый материал", None, "active"),
    (105, "scorm", "sc", 20, "active"),
    (110, "link", "external link", 20, "active"),
    (115, "html", "html page", 20, "active"),
    (125, "test", "Final test", 50, "active"),
    (135, "video", "Final video", 15, "active"),
    (135, "longread", "Final longread", 5, "active"),
    (135, "document", "Final document", 5, "active"),
)
_MATERIALS = {(material["material_id"], material["material_type"]): material for material in MATERIALS}
MATERIAL_STATISTICS = [
    {
        **_MATERIALS[row.pop("material_id"), row.pop("material_type")],
        **row,
        "user_status": "active",
        "material_status": "completed",
        "attempts": None,
    }
    for row in rows(
        "material_id material_type login points progress start_at end_at update_at",
        (75, "pdf", "q2w", 0, 100, *(at("2020-02-06 18:18:53"),) * 3),
        (75, "pdf", "devtest", 0, 100, *(at("2020-02-25 15:19:14"),) * 3),
        (75, "pdf", "dg6", 0, 100, *(at("2020-02-10 10:12:50"),) * 3),
        (105, "scorm", "d1astola", 20, 0, *_ALL_DAY),
        (105, "scorm", "product4", 0, 0, at("2019-12-23 13:21:15"), *(at("2019-12-23 13:21:18"),) * 2),
        (105, "scorm", "us1", 20, 0, at("2020-02-03 16:51:34"), *(at("2020-02-03 16:51:36"),) * 2),
        (110, "link", "d1astola", 10, 100, *_ALL_DAY),
        (115, "html", "product4", 20, 100, *_ALL_DAY),
        (125, "test", "product4", 50, 100, *_ALL_DAY),
        (135, "video", "d1astola", 15, 100, *_ALL_DAY),
        (135, "longread", "d1astola", 5, 100, *_ALL_DAY),
        (135, "document", "d1astola", 5, 100, *_ALL_DAY),
    )
]

PROGRAMS = [
    {
        "program_id": 59,
        "program_name": "программа с видосиками",
        "deadline_type": "absolute",
        "deadline_at": at("2023-02-22T12:00:00+03:00"),
        "deadline_period_at": None,
        "program_points": 30,
        "materials_pdf": 0,
        "materials_scorm": 0,
        "materials_link": 0,
        "materials_html": 0,
        "materials_test": 0,
        "materials_video": 1,
        "materials_longread": 0,
        "materials_document": 0,
        "materials_total": 1,
    }
]
_COMPLETED_VIDEO_ONLY = {
    "completed_pdf": 0,
    "completed_scorm": 0,
    "completed_link": 0,
    "completed_html": 0,
    "completed_test": 0,
    "completed_video": 1,
    "completed_longread": 0,
    "completed_document": 0,
}
# The learner's own deadline_at is another thing than the programme's of the same name.
PROGRAM_STATISTICS = [
    {**PROGRAMS[0], **row, "user_status": "active", **_COMPLETED_VIDEO_ONLY}
    for row in rows(
        "login program_status progress points start_at active_at end_at learner_deadline_at passed_at_time",
        (
            "xutest",
            "in_progress",
            0,
            20,
            at("2020-11-11T18:11:08+03:00"),
            at("2020-11-11T18:11:27+03:00"),
            None,
            None,
            None,
        ),
        (
            "noname2",
            "completed",
            100,
            30,
            at("2020-11-11T17:52:25+03:00"),
            at("2020-11-11T17:56:27+03:00"),
            at("2020-11-11T17:56:27+03:00"),
            at("2020-11-11T17:56:27+03:00"),
            True,
        ),
    )
]

EXAMPLES = {
    "attempts.json": ("attempts", {"attempts": ATTEMPTS}),
    "trainings_statistic.json": ("course_statistics", {"course_statistics": COURSES}),
    "materials_statistic.json": (
        "material_statistics",
        {"material_statistics": MATERIAL_STATISTICS, "reported_materials": MATERIALS},
    ),
    "learning_programmes_statistic.json": (
        "program_statistics",
        {"program_statistics": PROGRAM_STATISTICS, "reported_programs": PROGRAMS},
    ),
}


def _typed(value: Any) -> tuple[type, Any]:
    """A value with its type, so that 1 and True, or 0 and None, never pass for each other; an
    instant in UTC, whatever zone it is shown in."""
    return type(value), value.astimezone(UTC) if isinstance(value, datetime) else value


def _canonical(rows: Iterable[dict[str, Any]]) -> list[tuple[tuple[str, tuple[type, Any]], ...]]:
    """Rows as sorted tuples of (column, typed value), in a stable order, for comparing tables."""
    return sorted((tuple(sorted((name, _typed(value)) for name, value in row.items())) for row in rows), key=repr)


def _loaded(database: Path, table: str) -> list[dict[str, Any]]:
    with duckdb.connect(str(database), read_only=True) as con:
        cursor = con.execute(f"SELECT * FROM {table}")
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


@pytest.mark.parametrize("example", list(EXAMPLES))
def test_a_vendor_file_loads_with_every_record_and_value(
    tmp_path: Path,
    simulator_factory: Callable[..., Any],
    vendor_examples: Path,
    configure_api: Callable[..., Settings],
    example: str,
) -> None:
    report, expected_tables = EXAMPLES[example]
    with simulator_factory(payload_files={report: vendor_examples / example}) as running:
        settings = configure_api(running, tmp_path / "data")
        result = full_export(settings, (report,))
    assert result.success
    for table, expected in expected_tables.items():
        loaded = _loaded(settings.working_database_path, table)
        assert len(loaded) == len(expected), table
        documented = {name for name in loaded[0] if not name.startswith("_")}
        assert documented == {*expected[0], "extra_fields"}, table
        assert set(loaded[0]) - documented == LINEAGE, table
        as_loaded = _canonical({name: row[name] for name in documented} for row in loaded)
        assert as_loaded == _canonical({**row, "extra_fields": None} for row in expected), table
        metadata = next(
            m.metadata for m in result.asset_materializations_for_node(report) if m.asset_key.path == [table]
        )
        assert (metadata["rows_in_files"].value, metadata["rows_rejected"].value) == (len(expected), 0), table
    assert _loaded(settings.working_database_path, "rejected_records") == []
