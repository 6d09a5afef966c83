"""Staging a report file for DuckDB: the copied `data` array, the streamed fallback, and the rows
both flatten to."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest

from ekvio_assets.reports import staging
from ekvio_assets.reports.flatten import FlattenedFile, flatten
from ekvio_assets.reports.specs import ATTEMPTS, COURSE_STATISTICS, MATERIAL_STATISTICS, PROGRAM_STATISTICS, ReportSpec
from ekvio_assets.reports.staged import with_staged_rows
from ekvio_assets.reports.staging import ReportFileError, StagedFile, copy_report_records, stream_report_records

LEARNER = {
    "login": "ivanov",
    "user_status": "active",
    "material_status": "completed",
    "points": None,
    "progress": 100,
    "update_at": "2024-03-01T10:00:00+03:00",
}
PROGRAM_LEARNER = {
    "login": "ivanov",
    "user_status": "active",
    "program_status": "completed",
    "progress": "100",
    "points": 30,
    "active_at": "2024-03-02T10:00:00+03:00",
    "passed_at_time": True,
    "pdf": 1,
}
MATERIALS = {"pdf": 1, "scorm": 0, "total": 2}

# Records of every report with what drifts: undocumented fields (null ones too, nested in a
# documented object, on parents), values of every JSON type, missing and null children, objects
# where documented values should be, company-specific course fields.
RECORDS: dict[str, list[Any]] = {
    ATTEMPTS.name: [
        {"id": "a1", "material_id": "742", "points": 12.5, "tags": ["x", 1.0], "meta": None, "updated_at": 1709276700},
        {"id": "a2", "status": {"nested": [1, 2]}, "number": True, "category": {"a": {"b": None}}},
        {},
    ],
    COURSE_STATISTICS.name: [
        {"user_id": 1, "material_id": 2, "form_question_10": "М", "group_shift": None, "group_Bad": 1, "extra": [1]},
        {"user_id": "3", "material_id": 2, "form_question_7": 5, "name": "Course"},
    ],
    MATERIAL_STATISTICS.name: [
        {"id": 1, "category": "HR", "statistics": [LEARNER, {**LEARNER, "login": "petrov", "tags": None}]},
        {"id": "2", "statistics": None},
        {"id": 3},
        {"id": 4, "points": {"max": 10}, "statistics": []},
    ],
    PROGRAM_STATISTICS.name: [
        {"id": 7, "materials": {**MATERIALS, "audio": 3}, "badge": "gold", "statistics": [PROGRAM_LEARNER]},
        {"id": 8, "materials": None, "statistics": [{**PROGRAM_LEARNER, "x": {}}]},
        {"id": 9, "materials": 5, "statistics": [PROGRAM_LEARNER]},
        {"id": 10, "materials": {}, "statistics": [PROGRAM_LEARNER]},
    ],
}
SPECS = [ATTEMPTS, COURSE_STATISTICS, MATERIAL_STATISTICS, PROGRAM_STATISTICS]


def _file(tmp_path: Path, text: str, name: str = "raw.json") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _rows(spec: ReportSpec, staged: StagedFile) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
    with duckdb.connect() as con:
        rows = flatten(con, spec, staged).rows
        return rows.dynamic_columns, con.execute(f"SELECT * FROM ({rows.query}) ORDER BY _record, _child").fetchall()


@pytest.mark.parametrize(
    "layout",
    [
        '{"data": %s}',
        '{\n  "data" :\n %s , "include": []}',
        '{"data": %s, "meta": {"pages": [1, 2], "note": "a ] b"}}\n',
    ],
)
def test_the_data_array_is_copied_as_it_is_whatever_follows_it(tmp_path: Path, layout: str) -> None:
    array = json.dumps([{"id": "a1", "tags": ["x"]}, {"id": "a2"}], indent=1)
    staged = copy_report_records(_file(tmp_path, layout % array), tmp_path / "staged.json", ATTEMPTS)
    assert staged is not None and not staged.streamed
    assert staged.path.read_text(encoding="utf-8") == array


def test_a_file_that_does_not_start_with_its_data_array_is_left_to_streaming(tmp_path: Path) -> None:
    raw = _file(tmp_path, '{"include": [], "data": [{"id": "a1"}]}')
    assert copy_report_records(raw, tmp_path / "staged.json", ATTEMPTS) is None
    staged = stream_report_records(raw, tmp_path / "staged.json", ATTEMPTS)
    assert staged.streamed and json.loads(staged.path.read_text(encoding="utf-8")) == [{"id": "a1"}]


def _one_record_per_line(records: list[Any], separator: str = ",\n") -> str:
    """A report file laid out as the simulator writes it (and JSON-lines-minded exporters do)."""
    return '{"data": [\n' + separator.join(json.dumps(record, ensure_ascii=False) for record in records) + "\n]}\n"


LAYOUTS = {
    "one line": lambda records: json.dumps({"data": records}, ensure_ascii=False),
    "one record per line": _one_record_per_line,
    "indented": lambda records: json.dumps({"data": records}, ensure_ascii=False, indent=2),
}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.name)
def test_copied_and_streamed_records_flatten_to_the_same_rows(tmp_path: Path, spec: ReportSpec, layout: str) -> None:
    raw = _file(tmp_path, LAYOUTS[layout](RECORDS[spec.name]))
    copied = copy_report_records(raw, tmp_path / "copied.json", spec)
    assert copied is not None
    # JSON lines, read on all threads, for records that come one per line; a nested report's
    # hold their numbers.
    assert copied.lines == (layout == "one record per line")
    assert (copied.number_key is not None) == (copied.lines and spec.is_nested)
    streamed = stream_report_records(raw, tmp_path / "streamed.json", spec)
    assert _rows(spec, copied) == _rows(spec, streamed)


# Records laid out almost one a line, with their ids in the file's order, written out by hand.
READABLE_NOT_ONE_A_LINE = {
    "two records on a line": ('{"data": [\n{"id": 1}, {"id": 2},\n{"id": 3}\n]}', ["1", "2", "3"]),
    "a record over two lines": ('{"data": [\n{"id": 1,\n "login": "x"},\n{"id": 2}\n]}', ["1", "2"]),
}
# Files that are no JSON, with the start of the error they fail with.
BROKEN_NOT_ONE_A_LINE = {
    "a comma missing": ('{"data": [\n{"id": 1},\n{"id": 2}\n{"id": 3}\n]}', "not valid JSON after 2 records"),
    "a comma out of place": ('{"data": [\n{"id": 1},\n,{"id": 2}\n]}', "not valid JSON after 1 records"),
    "a comma too many": ('{"data": [\n{"id": 1},\n{"id": 2},\n]}', "not valid JSON after 2 records"),
}
NOT_ONE_A_LINE_SPECS = [ATTEMPTS, MATERIAL_STATISTICS]


@pytest.mark.parametrize("case", READABLE_NOT_ONE_A_LINE)
@pytest.mark.parametrize("spec", NOT_ONE_A_LINE_SPECS, ids=lambda spec: spec.name)
def test_lines_that_are_not_one_record_each_are_never_read_as_records(
    tmp_path: Path, case: str, spec: ReportSpec
) -> None:
    content, ids = READABLE_NOT_ONE_A_LINE[case]
    # One row per record, in the file's order: a flat report's rows, a nested one's parents.
    assert _staged_ids(spec, _file(tmp_path, content), tmp_path) == list(enumerate(ids))


@pytest.mark.parametrize("case", BROKEN_NOT_ONE_A_LINE)
@pytest.mark.parametrize("spec", NOT_ONE_A_LINE_SPECS, ids=lambda spec: spec.name)
def test_lines_that_make_no_json_fail_as_the_file_and_never_as_the_layout(
    tmp_path: Path, case: str, spec: ReportSpec
) -> None:
    content, message = BROKEN_NOT_ONE_A_LINE[case]
    with pytest.raises(ReportFileError, match=f"^the file is {message} ") as raised:
        _staged_ids(spec, _file(tmp_path, content), tmp_path)
    assert "it may be truncated or an error page" in str(raised.value)


def _staged_ids(spec: ReportSpec, raw: Path, tmp_path: Path) -> list[tuple[int, str]]:
    """Each staged record's number and id, through the entry point the load uses."""

    def ids(con: duckdb.DuckDBPyConnection, flattened: FlattenedFile) -> list[tuple[int, str]]:
        records = flattened.rows if flattened.parents is None else flattened.parents
        key = "attempt_id" if spec is ATTEMPTS else "material_id"
        return con.execute(f"SELECT _record, {key} FROM ({records.query}) ORDER BY _record").fetchall()

    return with_staged_rows(spec, raw, tmp_path / "staged.json", duckdb.connect, ids)


def test_the_entry_point_leaves_no_relation_and_no_staging_file_behind(tmp_path: Path) -> None:
    # A key twice in a record: a copy the reader refuses, staged again record by record.
    raw = _file(tmp_path, '{"data": [\n{"id": "a1", "login": "ivanov", "id": "a2"}\n]}')
    database = tmp_path / "db.duckdb"
    _, rows = _staged_rows(ATTEMPTS, raw, tmp_path, database)
    assert len(rows) == 1
    with duckdb.connect(database) as con:
        assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE temporary").fetchone() == (0,)
    assert not (tmp_path / "staged.json").exists()


def _staged_rows(
    spec: ReportSpec, raw: Path, tmp_path: Path, database: Path | None = None
) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
    def rows(con: duckdb.DuckDBPyConnection, flattened: FlattenedFile) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
        query = f"SELECT * FROM ({flattened.rows.query}) ORDER BY _record, _child"
        return flattened.rows.dynamic_columns, con.execute(query).fetchall()

    return with_staged_rows(spec, raw, tmp_path / "staged.json", lambda: duckdb.connect(database or ":memory:"), rows)


def test_json_lines_keep_each_records_place_and_fields_across_the_readers_threads(tmp_path: Path) -> None:
    # Several of the reader's buffers, read by several threads in no order: every row must still
    # get its own record's place, parent columns and undocumented parent field.
    # Some records are long lines (copied by the kernel), most short (written from Python's buffer).
    learners = [{**LEARNER, "login": f"learner{n}", "note": "x" * 100} for n in range(400)]
    records = [
        {
            "id": number,
            **({"batch": number} if number % 7 == 0 else {}),
            "statistics": learners if number % 500 == 0 else learners[:20],
        }
        for number in range(9000)
    ]
    raw = _file(tmp_path, _one_record_per_line(records))
    staged = copy_report_records(raw, tmp_path / "staged.json", MATERIAL_STATISTICS)
    assert staged is not None and staged.number_key is not None and staged.path.stat().st_size > 34_000_000
    with duckdb.connect() as con:
        con.execute("SET threads = 4")
        rows = flatten(con, MATERIAL_STATISTICS, staged).rows
        misplaced = con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE material_id <> _record::VARCHAR "
            "OR (_record % 7 = 0) <> coalesce(extra_fields->>'$.\"parent.batch\"' = _record::VARCHAR, false) "
            f"OR login <> 'learner' || _child) FROM ({rows.query})"
        ).fetchone()
    assert misplaced == (9000 * 20 + 18 * 380, 0)


def test_course_fields_of_the_company_become_columns_and_the_rest_extra_fields(tmp_path: Path) -> None:
    raw = _file(tmp_path, json.dumps({"data": RECORDS[COURSE_STATISTICS.name]}, ensure_ascii=False))
    staged = copy_report_records(raw, tmp_path / "staged.json", COURSE_STATISTICS)
    assert staged is not None
    dynamic, rows = _rows(COURSE_STATISTICS, staged)
    assert dynamic == ("form_question_10", "form_question_7", "group_shift")
    extras = [json.loads(row[-1]) if row[-1] else None for row in rows]
    assert extras == [{"group_Bad": 1, "extra": [1]}, None]


def test_a_record_too_big_for_the_reader_is_cut_into_records_that_make_the_same_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    learners = [{**LEARNER, "login": f"learner{n}", **({"tags": [n]} if n % 3 else {})} for n in range(40)]
    records = [{"id": 1, "category": "HR", "statistics": learners}, {"id": 2, "statistics": learners[:2]}]
    raw = _file(tmp_path, json.dumps({"data": records}))
    copied = copy_report_records(raw, tmp_path / "copied.json", MATERIAL_STATISTICS)
    assert copied is not None
    monkeypatch.setattr(staging, "STREAMED_RECORD_CHARACTERS", 1000)
    streamed = stream_report_records(raw, tmp_path / "streamed.json", MATERIAL_STATISTICS)
    assert len(json.loads(streamed.path.read_text(encoding="utf-8"))) > len(records)

    def without_places(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        return [row[2:] for row in rows]

    assert without_places(_rows(MATERIAL_STATISTICS, copied)[1]) == without_places(
        _rows(MATERIAL_STATISTICS, streamed)[1]
    )


def test_malformed_records_stream_as_one_row_each_holding_their_json_text(tmp_path: Path) -> None:
    records = ["text", {"id": 1, "statistics": 5}, None, {"id": 2, "statistics": [LEARNER, 7, None]}, [1, 2]]
    raw = _file(tmp_path, json.dumps({"data": records}))
    with duckdb.connect() as con, pytest.raises(duckdb.InvalidInputException):
        copied = copy_report_records(raw, tmp_path / "copied.json", MATERIAL_STATISTICS)
        flatten(con, MATERIAL_STATISTICS, copied)  # type: ignore[arg-type]
    _, rows = _rows(MATERIAL_STATISTICS, stream_report_records(raw, tmp_path / "streamed.json", MATERIAL_STATISTICS))
    malformed = [(row[0], row[1], row[-2]) for row in rows]
    assert malformed == [
        (0, 0, '"text"'),
        (1, 0, '{"id": 1, "statistics": 5}'),
        (2, 0, "null"),
        (3, 0, None),
        (3, 1, "7"),
        (3, 2, "null"),
        (4, 0, "[1, 2]"),
    ]


def test_a_childs_undocumented_fields_follow_its_parents_in_their_order_null_ones_too(tmp_path: Path) -> None:
    child = {"meta": {"a": [1, None]}, **LEARNER, "tags": None, "note": 'ж \\ "q"'}
    record = {"id": 1, "category": "HR", "statistics": [child, LEARNER]}
    raw = _file(tmp_path, json.dumps({"data": [record]}, ensure_ascii=False))
    staged = copy_report_records(raw, tmp_path / "s.json", MATERIAL_STATISTICS)
    assert staged is not None
    _, rows = _rows(MATERIAL_STATISTICS, staged)
    assert [row[-1] for row in rows] == [
        '{"parent.category":"HR","meta":{"a":[1,null]},"tags":null,"note":"ж \\\\ \\"q\\""}',
        '{"parent.category":"HR"}',
    ]


@pytest.mark.parametrize("spec", [ATTEMPTS, MATERIAL_STATISTICS], ids=lambda spec: spec.name)
def test_a_null_record_in_a_copied_file_is_a_malformed_row(tmp_path: Path, spec: ReportSpec) -> None:
    record = {"id": "a1"} if spec is ATTEMPTS else {"id": 1, "statistics": [LEARNER]}
    staged = copy_report_records(_file(tmp_path, json.dumps({"data": [record, None]})), tmp_path / "staged.json", spec)
    assert staged is not None
    _, rows = _rows(spec, staged)
    assert [(row[0], row[-2]) for row in rows] == [(0, None), (1, "null")]


@pytest.mark.parametrize("layout", ["one line", "one record per line"])
def test_records_are_numbered_in_file_order_across_the_readers_buffers(tmp_path: Path, layout: str) -> None:
    # More than one 32 MB buffer of the JSON reader; JSON lines are read by several threads.
    records = [
        {"id": f"attempt-{n:07d}", "login": "x" * 300, **({"note": n} if n % 7 == 0 else {})} for n in range(110_000)
    ]
    staged = copy_report_records(_file(tmp_path, LAYOUTS[layout](records)), tmp_path / "staged.json", ATTEMPTS)
    assert staged is not None and staged.lines == (layout == "one record per line")
    assert staged.path.stat().st_size > 34_000_000
    with duckdb.connect() as con:
        rows = flatten(con, ATTEMPTS, staged).rows
        misplaced = con.execute(
            f"SELECT count(*) FROM ({rows.query}) WHERE attempt_id <> 'attempt-' || lpad(_record::VARCHAR, 7, '0') "
            "OR coalesce(extra_fields->>'$.note' = _record::VARCHAR, false) <> (_record % 7 = 0)"
        ).fetchone()
    assert misplaced == (0,)
