"""The published analyst file as analysts meet it: opened by older DuckDB releases, every table and
column described, and the data dictionary that `ekvio-assets tables` prints from it."""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ekvio_assets.automation.jobs import ANALYTICS_JOB
from ekvio_assets.models.specs import MODELS
from ekvio_assets.reports.specs import REPORT_TABLES
from ekvio_assets.simulator import Dataset, running_simulator
from ekvio_assets_tests.conftest import TEST_TOKEN, analyst_queries, full_export, run_job, settings_for

REPOSITORY = Path(__file__).resolve().parents[1]
# Client environments are built once and kept (git-ignored) for the next runs.
CLIENTS_DIR = REPOSITORY / ".venv-clients"
# The oldest release the file promises to serve, and a later 1.x one.
CLIENT_VERSIONS = ("1.1.3", "1.5.6")

# Runs in the client's own interpreter: the request (file, queries) on stdin, the answer on stdout.
# Each query runs as written, its rows kept in a temporary table and counted in SQL, so no value
# has to become a Python object (older clients need pytz for TIMESTAMPTZ values).
CLIENT_SCRIPT = r"""
import json, sys
import duckdb
request = json.load(sys.stdin)
con = duckdb.connect(request["database"], read_only=True)
rows = []
for number, query in enumerate(request["queries"]):
    con.execute(f"CREATE TEMP TABLE answer_{number} AS {query.strip().rstrip(';')}")
    rows.append(con.execute(f"SELECT count(*) FROM answer_{number}").fetchone()[0])
tables = con.execute(
    "SELECT table_name, comment FROM duckdb_tables() WHERE database_name = current_database() ORDER BY 1"
).fetchall()
columns = con.execute(
    "SELECT table_name, column_name, data_type, comment FROM duckdb_columns() "
    "WHERE database_name = current_database() AND NOT internal ORDER BY table_name, column_index"
).fetchall()
counts = {table: con.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0] for table, _ in tables}
seen = {"version": duckdb.__version__, "rows": rows, "tables": tables, "columns": columns, "counts": counts}
json.dump(seen, sys.stdout)
"""

EXPECTED_TABLES = {
    *(table.name for table in REPORT_TABLES),
    *(model.name for model in MODELS),
    "rejected_records",
    "report_loads",
}


@pytest.fixture(scope="module")
def published(dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The analyst file of a full refresh of the simulated company: reports, then analytics."""
    data_dir = tmp_path_factory.mktemp("analyst") / "data"
    with running_simulator(dataset, token=TEST_TOKEN) as running, pytest.MonkeyPatch.context() as monkeypatch:
        settings = settings_for(monkeypatch, running, data_dir)
        assert full_export(settings).success
        run_job(settings, ANALYTICS_JOB, {})
    assert settings.database_path.is_file()
    return settings.database_path


def _client_python(version: str) -> Path:
    """The interpreter of a virtual environment holding duckdb==`version`, created on first use."""
    home = CLIENTS_DIR / f"duckdb-{version}"
    python = home / "bin" / "python"

    def installed() -> bool:
        if not python.exists():
            return False
        probe = subprocess.run(
            [str(python), "-c", "import duckdb; print(duckdb.__version__)"], capture_output=True, text=True
        )
        return probe.stdout.strip() == version

    CLIENTS_DIR.mkdir(exist_ok=True)
    # The suite's workers (pytest-xdist) may ask for the same release at once: one installs it.
    with (CLIENTS_DIR / f"duckdb-{version}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not installed():
            _install_client(version, home, python)
    return python


def _install_client(version: str, home: Path, python: Path) -> None:
    shutil.rmtree(home, ignore_errors=True)
    steps = (
        [sys.executable, "-m", "venv", str(home)],
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            f"duckdb=={version}",
        ],
    )
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            message = f"could not install duckdb=={version} into {home}: {done.stderr.strip()[-2000:]}"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)


@pytest.fixture(scope="session", params=CLIENT_VERSIONS, ids=lambda version: f"duckdb-{version}")
def client(request: pytest.FixtureRequest) -> tuple[str, Path]:
    return request.param, _client_python(request.param)


def _ask(python: Path | str, database: Path, queries: list[str]) -> dict[str, Any]:
    """What the DuckDB of `python` reads from the file: the queries' row counts, the catalog, each table's rows."""
    answer = subprocess.run(
        [str(python), "-c", CLIENT_SCRIPT],
        input=json.dumps({"database": str(database), "queries": queries}),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert answer.returncode == 0, answer.stderr[-3000:]
    seen = json.loads(answer.stdout)
    return {
        **seen,
        "tables": [tuple(row) for row in seen["tables"]],
        "columns": [tuple(row) for row in seen["columns"]],
    }


def _catalog(database: Path) -> dict[str, Any]:
    """What this project's DuckDB reads from the file's catalog."""
    seen = _ask(sys.executable, database, [])
    return {name: seen[name] for name in ("tables", "columns", "counts")}


def test_older_duckdb_releases_open_the_file_and_run_the_example_queries(
    published: Path, client: tuple[str, Path]
) -> None:
    version, python = client
    queries = analyst_queries()
    assert len(queries) == 5
    seen = _ask(python, published, queries)
    assert seen["version"] == version
    assert all(rows > 0 for rows in seen["rows"]), dict(zip(queries, seen["rows"], strict=True))
    # Every table, column, type, comment and row, as this project's DuckDB reads them.
    ours = _catalog(published)
    assert {table for table, _ in seen["tables"]} == EXPECTED_TABLES
    assert seen["tables"] == ours["tables"]
    assert seen["columns"] == ours["columns"]
    assert seen["counts"] == ours["counts"]


def test_every_table_and_column_of_the_file_has_a_comment(published: Path) -> None:
    catalog = _catalog(published)
    assert {table for table, _ in catalog["tables"]} == EXPECTED_TABLES
    assert [table for table, comment in catalog["tables"] if not (comment or "").strip()] == []
    assert [(table, column) for table, column, _, comment in catalog["columns"] if not (comment or "").strip()] == []
    # A table's comment names its grain: the key columns it has one row per.
    for table, comment in catalog["tables"]:
        assert "one row per" in comment.lower(), table


def test_the_file_holds_every_table_column_comment_and_row_of_the_working_database(published: Path) -> None:
    # The working database is in the newest format, the file in the older one: nothing is lost between.
    assert _catalog(published) == _catalog(published.parent / "work" / "ekvio.duckdb")


def _tables_command(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EKVIO_", "DAGSTER_"))}
    return subprocess.run(
        [sys.executable, "-m", "ekvio_assets.cli", "tables", *args],
        env={**env, "EKVIO_DATA_DIR": str(data_dir)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_tables_command_prints_the_dictionary_of_the_published_file(published: Path) -> None:
    catalog = _catalog(published)
    text = _tables_command(published.parent)
    assert text.returncode == 0, text.stderr
    blocks = {block.splitlines()[0]: block for block in text.stdout.strip().split("\n\n")}
    assert set(blocks) == {table for table, _ in catalog["tables"]}
    for table, comment in catalog["tables"]:
        # Wrapped lines, read back as one text.
        assert comment.split() == blocks[table].split("\n  ", 1)[1].split()[: len(comment.split())], table
    for table, column, data_type, comment in catalog["columns"]:
        line = re.search(rf"^  {re.escape(column)} +{re.escape(data_type)} +(.*)$", blocks[table], re.M)
        assert line and comment.startswith(line.group(1)), (table, column)

    markdown = _tables_command(published.parent, "--markdown")
    assert markdown.returncode == 0, markdown.stderr
    for table, comment in catalog["tables"]:
        assert f"## {table}\n\n{comment}\n" in markdown.stdout
    for _table, column, data_type, comment in catalog["columns"]:
        assert f"| `{column}` | {data_type} | {comment} |" in markdown.stdout


def test_the_tables_command_before_the_first_refresh_is_one_line_and_exit_1(tmp_path: Path) -> None:
    finished = _tables_command(tmp_path / "data")
    assert finished.returncode == 1
    assert finished.stdout == ""
    assert (
        finished.stderr.strip()
        == f"{tmp_path / 'data' / 'ekvio.duckdb'} does not exist yet: `ekvio-assets refresh` publishes it"
    )
