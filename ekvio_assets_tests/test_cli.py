"""`ekvio-assets refresh`, the README's main command, as a new user runs it."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb

from ekvio_assets.models.specs import MODELS
from ekvio_assets.reports.specs import REPORT_TABLES, REPORTS

README = Path(__file__).resolve().parents[1] / "README.md"


def _analyst_queries() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## For analysts") :]
    section = section[: section.index("\n## ", 1)]
    return re.findall(r"```sql\n(.*?)```", section, re.S)


def _clean_environment(**env: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith(("EKVIO_", "DAGSTER_"))}, **env}


def _run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ekvio_assets.cli", *args],
        cwd=tmp_path,
        env=_clean_environment(**env),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_refresh_on_the_embedded_simulator_fills_the_report_and_analytics_tables(tmp_path: Path) -> None:
    finished = _run(tmp_path, "refresh")
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "embedded Ekvio simulator" in finished.stdout
    # A first load brings every row: nothing the daily refreshes should have brought.
    assert "the full export changed" not in finished.stderr
    database = tmp_path / "data" / "ekvio.duckdb"
    assert str(database) in finished.stdout
    with duckdb.connect(str(database), read_only=True) as con:
        for name in [table.name for table in REPORT_TABLES] + [model.name for model in MODELS]:
            rows = con.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
            assert rows > 0, name
            assert f"  {name} " in finished.stdout
        queries = _analyst_queries()
        assert len(queries) == 5
        for query in queries:
            assert con.execute(query).fetchall(), query
    assert (tmp_path / "data" / "dagster_home").is_dir()

    archived = sorted((tmp_path / "data" / "raw" / "attempts").glob("*_task-*.json"))[-1]
    replayed = _run(tmp_path, "replay", str(archived))
    assert replayed.returncode == 0, replayed.stderr[-3000:]
    assert f"Replayed {archived} into attempts:" in replayed.stdout
    assert "0 inserted, 0 updated, 0 rejected" in replayed.stdout
    assert "(analytics) succeeded" in replayed.stdout

    # Into a database that has no other report yet: the summary says so.
    fresh = _run(tmp_path, "replay", str(archived), EKVIO_DATA_DIR=str(tmp_path / "fresh"))
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    assert re.search(r"  attempts +[0-9,]+ rows", fresh.stdout)
    assert re.search(r"  material_statistics +not loaded yet", fresh.stdout)


def test_a_bad_configuration_is_one_clear_message(tmp_path: Path) -> None:
    finished = _run(tmp_path, "refresh", EKVIO_API_URL="https://api.example.test", EKVIO_TIMEZONE="Nowhere/Land")
    assert finished.returncode == 2
    assert "EKVIO_API_TOKEN must be set" in finished.stderr and "EKVIO_TIMEZONE" in finished.stderr
    assert "Traceback" not in finished.stderr


def test_a_refresh_killed_in_the_middle_of_a_load_leaves_a_consistent_database_and_the_next_run_completes(
    tmp_path: Path,
) -> None:
    staging = tmp_path / "data" / "staging"
    # Its own session: SIGKILL reaches the CLI and the step processes Dagster started, as a machine's
    # power cut or an OOM kill of the container would.
    process = subprocess.Popen(
        [sys.executable, "-m", "ekvio_assets.cli", "refresh"],
        cwd=tmp_path,
        env=_clean_environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not list(staging.glob("*.json")) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert process.poll() is None, "the refresh ended before any load began"
        time.sleep(random.Random(7).uniform(0.0, 0.2))  # somewhere in staging, merging or committing
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        _wait_until_gone(process.pid)

    working = tmp_path / "data" / "work" / "ekvio.duckdb"
    with duckdb.connect(str(working)) as con:
        tables = {row[0] for row in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        loads = {row[0] for row in con.execute("SELECT task_id FROM report_loads").fetchall()} if tables else set()
        for spec in REPORTS:
            if spec.name in tables:
                # A load is one transaction: no row without the load record that brought it.
                rows_tasks = {row[0] for row in con.execute(f'SELECT DISTINCT _task_id FROM "{spec.name}"').fetchall()}
                assert rows_tasks <= loads, spec.name

    finished = _run(tmp_path, "refresh")
    assert finished.returncode == 0, finished.stderr[-3000:]
    with duckdb.connect(str(tmp_path / "data" / "ekvio.duckdb"), read_only=True) as con:
        for spec in REPORTS:
            assert con.execute(f'SELECT count(*) FROM "{spec.name}"').fetchone()[0] > 0, spec.name


def _wait_until_gone(process_group: int) -> None:
    """SIGKILL is delivered asynchronously: the step processes may outlive the CLI by a moment."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.killpg(process_group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError(f"processes of group {process_group} survived SIGKILL")
