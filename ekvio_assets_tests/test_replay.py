"""Replaying archived result files without the API: the recovery path after a failed load."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from ekvio_assets.reports.replay import FOREIGN_TASK_ID, ReplayError, replay_raw_file
from ekvio_assets.reports.specs import ATTEMPTS
from ekvio_assets.reports.staging import ReportFileError
from ekvio_assets.storage.archive import raw_file_name
from ekvio_assets.storage.warehouse import DuckDBWarehouse
from ekvio_assets_tests.conftest import attempt_record


@pytest.fixture
def warehouse(tmp_path: Path) -> DuckDBWarehouse:
    return DuckDBWarehouse(data_dir=str(tmp_path / "data"), timezone="Europe/Moscow")


def _attempts(warehouse: DuckDBWarehouse) -> list[tuple[str, str, str]]:
    with duckdb.connect(str(warehouse.working_path), read_only=True) as con:
        return con.execute("SELECT attempt_id, _task_id, _raw_file FROM attempts ORDER BY attempt_id").fetchall()


def test_a_file_that_failed_to_load_replays_once_repaired_keeping_its_task_id(
    warehouse: DuckDBWarehouse,
) -> None:
    fetched = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
    archived = warehouse.raw_dir(ATTEMPTS.name) / raw_file_name(fetched, "4711")
    archived.parent.mkdir(parents=True)
    content = json.dumps({"data": [attempt_record("a1", "2026-11-26T10:00:00+03:00")]})
    archived.write_text(content[: len(content) // 2], encoding="utf-8")
    with pytest.raises(ReportFileError, match=f"Test attempts task 4711: .*The raw file stays at {archived}"):
        replay_raw_file(warehouse, archived)
    assert archived.is_file()

    archived.write_text(content, encoding="utf-8")
    spec, exported, loaded = replay_raw_file(warehouse, archived)
    assert (spec, exported.task_id, exported.requested_at, exported.path) == (ATTEMPTS, "4711", fetched, archived)
    assert (loaded.outcome.inserted, loaded.outcome.updated) == (1, 0)
    assert _attempts(warehouse) == [("a1", "4711", str(archived))]
    _, _, again = replay_raw_file(warehouse, archived)
    assert (again.outcome.inserted, again.outcome.updated) == (0, 0)


def test_a_file_from_outside_the_archive_is_archived_under_a_name_made_here(
    warehouse: DuckDBWarehouse, tmp_path: Path
) -> None:
    outside = tmp_path / "..\\..\\attempts.json"
    outside.write_text(json.dumps({"data": [attempt_record("a2", "2026-11-26T10:00:00+03:00")]}), encoding="utf-8")
    with pytest.raises(ReplayError, match="cannot tell the report"):
        replay_raw_file(warehouse, outside)
    _, exported, _ = replay_raw_file(warehouse, outside, report=ATTEMPTS.name)
    assert exported.path.parent == warehouse.raw_dir(ATTEMPTS.name).resolve()
    assert exported.path.name.endswith(f"_task-{FOREIGN_TASK_ID}.json")
    assert _attempts(warehouse) == [("a2", FOREIGN_TASK_ID, str(exported.path))]


def test_replay_refuses_a_missing_file_an_unknown_report_and_a_report_other_than_its_folder(
    warehouse: DuckDBWarehouse,
) -> None:
    with pytest.raises(ReplayError, match="is not a file"):
        replay_raw_file(warehouse, warehouse.raw_dir(ATTEMPTS.name) / "missing.json")
    archived = warehouse.raw_dir(ATTEMPTS.name) / raw_file_name(datetime.now(UTC), "1")
    archived.parent.mkdir(parents=True)
    archived.write_text('{"data": []}', encoding="utf-8")
    with pytest.raises(ReplayError, match="unknown report 'grades'"):
        replay_raw_file(warehouse, archived, report="grades")
    with pytest.raises(ReplayError, match="lies in the archive of attempts, not of course_statistics"):
        replay_raw_file(warehouse, archived, report="course_statistics")
