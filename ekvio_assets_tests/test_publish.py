"""Analysts read ekvio.duckdb while a refresh runs: both succeed, and every query sees one complete state."""

from __future__ import annotations

import fcntl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb

from ekvio_assets.automation.jobs import ANALYTICS_JOB
from ekvio_assets.config import Settings
from ekvio_assets.definitions import build_definitions
from ekvio_assets.models.assets import KEY_CHECK
from ekvio_assets.storage.warehouse import DuckDBWarehouse
from ekvio_assets_tests.conftest import cli_refresh, day_key, end_of_day, full_export

# A report table and a model that aggregates it: in one complete refresh they agree.
CONSISTENCY_QUERY = "SELECT (SELECT count(*) FROM attempts), (SELECT sum(attempts_count) FROM materials)"

# "held" keeps one connection open throughout, like a BI tool; "fresh" opens one per query, like
# an analyst's new session (in one process DuckDB would reuse the open database for both).
READER = """
import sys, time, pathlib, duckdb
mode, database, query = sys.argv[1], sys.argv[2], sys.argv[5]
out, stop = pathlib.Path(sys.argv[3]), pathlib.Path(sys.argv[4])
held = duckdb.connect(database, read_only=True) if mode == "held" else None
with out.open("w") as results:
    while not stop.exists():
        con = held or duckdb.connect(database, read_only=True)
        results.write(" ".join(map(str, con.execute(query).fetchone())) + "\\n")
        results.flush()
        if held is None:
            con.close()
        time.sleep(0.05)
"""


def _state(database: Path) -> tuple[int, int]:
    with duckdb.connect(str(database), read_only=True) as con:
        count, total = con.execute(CONSISTENCY_QUERY).fetchone()
    return int(count), int(total)


def _refresh(data_dir: Path, running: Any, tmp_path: Path, name: str, *args: str) -> None:
    process = cli_refresh(data_dir, running, tmp_path / name, *args)
    assert process.wait(timeout=300) == 0, (tmp_path / f"{name}.err").read_text()[-3000:]


def test_a_reader_holding_the_file_during_a_refresh_sees_old_or_new_never_half(tmp_path: Path, simulator: Any) -> None:
    data_dir = tmp_path / "data"
    database = data_dir / "ekvio.duckdb"
    simulator.set_now(end_of_day(simulator, 3))
    _refresh(data_dir, simulator, tmp_path, "first", "--from", day_key(simulator, 0), "--to", day_key(simulator, 3))
    old = _state(database)

    stop = tmp_path / "stop"
    readers = {
        mode: subprocess.Popen(
            [
                sys.executable,
                "-c",
                READER,
                mode,
                str(database),
                str(tmp_path / f"{mode}.txt"),
                str(stop),
                CONSISTENCY_QUERY,
            ]
        )
        for mode in ("held", "fresh")
    }
    try:
        time.sleep(1)
        simulator.set_now(None)
        _refresh(data_dir, simulator, tmp_path, "second")
        time.sleep(1)
    finally:
        stop.touch()
        assert [reader.wait(timeout=60) for reader in readers.values()] == [0, 0]
    new = _state(database)
    assert new != old and new[0] == new[1] and old[0] == old[1]

    seen = {}
    for mode in readers:
        reads = [tuple(map(int, line.split())) for line in (tmp_path / f"{mode}.txt").read_text().splitlines()]
        assert len(reads) > 10, mode
        seen[mode] = set(reads)
    assert seen == {"held": {old}, "fresh": {old, new}}


def _storage_tag(path: Path) -> str:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(
            "SELECT tags['storage_version'] FROM duckdb_databases() WHERE database_name = current_database()"
        ).fetchone()[0]


def test_a_working_database_in_the_newer_format_is_migrated_once_and_loses_nothing(tmp_path: Path) -> None:
    warehouse = DuckDBWarehouse(data_dir=str(tmp_path), timezone="Europe/Moscow")
    warehouse.working_path.parent.mkdir(parents=True)
    # What an install written before the analyst file's format was chosen holds.
    with duckdb.connect(str(warehouse.working_path)) as con:
        con.execute("CREATE TABLE learners (login VARCHAR, seen TIMESTAMPTZ)")
        con.execute("INSERT INTO learners VALUES ('anna', '2026-11-30 10:00:00+03'), ('boris', NULL)")
        con.execute("COMMENT ON TABLE learners IS 'One row per learner'")
        con.execute("COMMENT ON COLUMN learners.login IS 'Learner''s login'")
    assert _storage_tag(warehouse.working_path) == "v2.0.0+"

    warehouse.publish()
    for path in (warehouse.working_path, warehouse.database_path):
        assert _storage_tag(path) == "v1.0.0+"
        with duckdb.connect(str(path), read_only=True) as con:
            assert (
                con.execute("SELECT login, seen FROM learners ORDER BY login").fetchall()
                == con.execute(
                    "SELECT * FROM (VALUES ('anna', TIMESTAMPTZ '2026-11-30 07:00:00+00'), ('boris', NULL)) "
                    "v(login, seen)"
                ).fetchall()
            )
            assert (
                con.execute("SELECT comment FROM duckdb_tables() WHERE table_name = 'learners'").fetchone()[0]
                == "One row per learner"
            )
            comments = con.execute(
                "SELECT column_name, comment FROM duckdb_columns() WHERE table_name = 'learners'"
            ).fetchall()
            assert comments == [("login", "Learner's login"), ("seen", None)]
    assert sorted(p.name for p in warehouse.working_path.parent.iterdir()) == ["ekvio.duckdb", "ekvio.lock"]


def test_a_new_working_database_is_written_in_the_analyst_files_format_and_published_by_a_copy(tmp_path: Path) -> None:
    warehouse = DuckDBWarehouse(data_dir=str(tmp_path), timezone="Europe/Moscow")
    with warehouse.write_connection() as con:
        con.execute("CREATE TABLE t AS SELECT range AS n FROM range(1000)")
    assert _storage_tag(warehouse.working_path) == "v1.0.0+"
    warehouse.publish()
    assert warehouse.database_path.read_bytes() == warehouse.working_path.read_bytes()


def test_a_failing_blocking_check_keeps_the_analyst_file_as_it_was(
    tmp_path: Path, simulator: Any, configure_api: Callable[..., Settings]
) -> None:
    settings = configure_api(simulator, tmp_path / "data")
    assert full_export(settings).success
    analytics = build_definitions(settings).resolve_job_def(ANALYTICS_JOB)
    assert analytics.execute_in_process(instance=dg.DagsterInstance.ephemeral()).success
    published = settings.database_path
    before = (published.stat().st_ino, published.read_bytes())

    warehouse = DuckDBWarehouse(data_dir=str(settings.data_dir), timezone=settings.timezone)
    with warehouse.write_connection() as con:
        # A report row twice: the model built on it inherits the duplicate key.
        con.execute("INSERT INTO material_statistics SELECT * FROM material_statistics LIMIT 1")
    result = analytics.execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)

    assert not result.success
    failed = [
        evaluation.asset_key.to_user_string()
        for evaluation in result.get_asset_check_evaluations()
        if evaluation.check_name == KEY_CHECK and not evaluation.passed
    ]
    assert failed == ["learner_material_progress"]
    materialized = {event.asset_key.to_user_string() for event in result.get_asset_materialization_events()}
    assert "analyst_database" not in materialized
    assert (published.stat().st_ino, published.read_bytes()) == before


def _lock_probe(warehouse: DuckDBWarehouse, mode: int) -> bool:
    """Whether another process's lock of `mode` would be granted now (a separate open file: flock
    treats it as another owner)."""
    with warehouse.working_path.with_suffix(".lock").open("a") as probe:
        try:
            fcntl.flock(probe, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(probe, fcntl.LOCK_UN)
        return True


def test_readers_of_the_working_database_share_its_lock_and_a_writer_holds_it_alone(tmp_path: Path) -> None:
    warehouse = DuckDBWarehouse(data_dir=str(tmp_path), timezone="Europe/Moscow")
    with warehouse.write_connection() as con:
        con.execute("CREATE TABLE t AS SELECT 1 AS n")
        assert (_lock_probe(warehouse, fcntl.LOCK_SH), _lock_probe(warehouse, fcntl.LOCK_EX)) == (False, False)
    with warehouse.read_connection() as con:
        assert con.execute("SELECT n FROM t").fetchall() == [(1,)]
        # Another reader (the CLI's summary, say) gets in; a writer waits for the readers to leave.
        assert (_lock_probe(warehouse, fcntl.LOCK_SH), _lock_probe(warehouse, fcntl.LOCK_EX)) == (True, False)
    assert _lock_probe(warehouse, fcntl.LOCK_EX)
