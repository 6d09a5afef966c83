"""`ekvio-assets refresh`, the README's main command, as a new user runs it, and `ekvio-assets ui` on its runs."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import dagster as dg
import duckdb
import httpx
import pytest
from rich.console import Console

from ekvio_assets.benchmark.truth import typed
from ekvio_assets.cli.commands import ui_invocation
from ekvio_assets.cli.display import LiveDisplay
from ekvio_assets.cli.progress import RunProgress
from ekvio_assets.config import Settings
from ekvio_assets.models.specs import MODELS
from ekvio_assets.reports.specs import REPORT_TABLES, REPORTS
from ekvio_assets_tests.conftest import (
    analyst_queries,
    assert_report_equals_truth,
    assert_tables_equal_truth,
    clean_environment,
    day_key,
    end_of_day,
    free_port,
    refresh_days,
    report_truth,
    run_cli,
)

REPOSITORY = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Demo:
    """`ekvio-assets refresh` with no settings, in a fresh folder, as the README's first command."""

    folder: Path
    finished: subprocess.CompletedProcess[str]

    @property
    def database(self) -> Path:
        return self.folder / "data" / "ekvio.duckdb"

    def run_ids(self) -> list[str]:
        found = re.search(r"Runs (\S+) \(reports\) and (\S+) \(analytics\) succeeded", self.finished.stdout)
        assert found, self.finished.stdout
        return [found[1], found[2]]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    folder = tmp_path_factory.mktemp("demo")
    finished = run_cli(folder, "refresh")
    assert finished.returncode == 0, finished.stderr[-3000:]
    return Demo(folder, finished)


def test_refresh_on_the_embedded_simulator_fills_the_report_and_analytics_tables(demo: Demo) -> None:
    finished = demo.finished
    assert "embedded Ekvio simulator" in finished.stdout
    # A first load brings every row: nothing the daily refreshes should have brought.
    assert "the full export changed" not in finished.stdout + finished.stderr
    assert str(demo.database) in finished.stdout
    with duckdb.connect(str(demo.database), read_only=True) as con:
        for name in [table.name for table in REPORT_TABLES] + [model.name for model in MODELS]:
            rows = con.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
            assert rows > 0, name
            assert f"  {name} " in finished.stdout
        queries = analyst_queries()
        assert len(queries) == 5
        for query in queries:
            assert con.execute(query).fetchall(), query
    assert (demo.folder / "data" / "dagster_home").is_dir()


def test_the_refresh_prints_its_progress_and_a_summary_on_one_screen_without_dagster_debug_lines(demo: Demo) -> None:
    out, err = demo.finished.stdout, demo.finished.stderr
    # What the terminal shows on a first run, Dagster's one-time telemetry notice on stderr included.
    assert len(out.splitlines()) + len(err.splitlines()) < 60, out + err
    assert "DEBUG" not in out + err
    assert "Traceback" not in err
    for spec in REPORTS:
        # Each report's task and the bytes of the file it brought, as archived.
        (archived,) = (demo.folder / "data" / "raw" / spec.name).glob("*_task-*.json")
        task_id = archived.stem.rsplit("_task-", 1)[1]
        assert re.search(rf"  {spec.name}: Ekvio task {task_id} (queued|progress) \(\d+ s\)", out), spec.name
        assert f"{spec.name}: Ekvio task {task_id} completed after " in out
        assert f"{archived.stat().st_size:,} bytes downloaded" in out
    with duckdb.connect(str(demo.database), read_only=True) as con:
        for table in REPORT_TABLES:
            rows = con.execute(f'SELECT count(*) FROM "{table.name}"').fetchone()[0]
            # A first load inserts every row; the demo data have no rejected record.
            assert f"{table.name}: {rows:,} inserted, 0 updated, 0 rejected" in out
            assert re.search(rf"^  {table.name} +{rows:,} +{rows:,} +0  ", out, re.M), table.name
        for model in MODELS:
            rows = con.execute(f'SELECT count(*) FROM "{model.name}"').fetchone()[0]
            assert re.search(rf"^  {model.name} +{rows:,} +\d+\.\d s$", out, re.M), model.name
    assert re.search(r"^  analyst_database +\d+\.\d s$", out, re.M)
    assert re.search(r"^Asset checks: [1-9]\d* passed, 0 failed\.$", out, re.M)
    assert re.search(r"^Took \d+\.\d s for reconcile_job, \d+\.\d s for analytics_job\.$", out, re.M)


def test_replay_loads_an_archived_file_again(demo: Demo) -> None:
    archived = sorted((demo.folder / "data" / "raw" / "attempts").glob("*_task-*.json"))[-1]
    replayed = run_cli(demo.folder, "replay", str(archived))
    assert replayed.returncode == 0, replayed.stderr[-3000:]
    assert f"Replayed {archived} into attempts:" in replayed.stdout
    assert "0 inserted, 0 updated, 0 rejected" in replayed.stdout
    assert "(analytics) succeeded" in replayed.stdout

    # Into a database that has no other report yet: the summary says so.
    fresh = run_cli(demo.folder, "replay", str(archived), EKVIO_DATA_DIR=str(demo.folder / "fresh"))
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    with duckdb.connect(str(demo.folder / "fresh" / "ekvio.duckdb"), read_only=True) as con:
        rows = con.execute("SELECT count(*) FROM attempts").fetchone()[0]
    assert re.search(rf"^  attempts +{rows:,} +{rows:,} +0  ", fresh.stdout, re.M), fresh.stdout
    assert re.search(r"  material_statistics +not loaded yet", fresh.stdout)


def test_a_bad_configuration_is_one_clear_message(tmp_path: Path) -> None:
    finished = run_cli(tmp_path, "refresh", EKVIO_API_URL="https://api.example.test", EKVIO_TIMEZONE="Nowhere/Land")
    assert finished.returncode == 2
    assert "EKVIO_API_TOKEN must be set" in finished.stderr and "EKVIO_TIMEZONE" in finished.stderr
    assert "Traceback" not in finished.stderr


# Test code, not the product's: the sitecustomize of the killed refresh's processes (on their
# PYTHONPATH, so the fork server's step processes have it too). The first load whose merge changed
# rows says which report it is, inside its open transaction, and waits there to be killed: the kill
# lands at that point on every run, however busy the machine. A load before it that changed nothing
# fails inside its transaction instead, so that it leaves the tables as they were too.
PAUSE_INSIDE_THE_FIRST_LOAD = """
import os
import time

_SIGNAL = os.environ.get("TESTS_PAUSED_LOAD_SIGNAL")
if _SIGNAL:
    import ekvio_assets.reports.load as _load

    _merge_staged = _load.merge_staged

    def _merge_then_wait(con, spec, rows, lineage):
        outcome = _merge_staged(con, spec, rows, lineage)
        if not outcome.inserted + outcome.updated:
            raise RuntimeError(f"{spec.name}: nothing changed to be killed in")
        with open(_SIGNAL + ".part", "w") as signal:
            signal.write(spec.name)
        os.replace(_SIGNAL + ".part", _SIGNAL)
        while True:
            time.sleep(1)

    _load.merge_staged = _merge_then_wait
"""


def _every_table(database: Path) -> dict[str, list[str]]:
    """Every table's rows, in an order of their own: what "the database as it was" compares."""
    with duckdb.connect(str(database), read_only=True) as con:
        names = [row[0] for row in con.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()]
        return {name: sorted(map(repr, con.execute(f'SELECT * FROM "{name}"').fetchall())) for name in names}


@pytest.mark.long
def test_a_refresh_killed_inside_a_loads_transaction_leaves_every_table_as_it_was_and_the_next_run_completes(
    tmp_path: Path, simulator: Any, configure_api: Callable[..., Settings]
) -> None:
    settings = configure_api(simulator, tmp_path / "data")
    simulator.set_now(end_of_day(simulator, 2))
    refresh_days(settings, simulator, 0, 2)  # every table exists and holds rows before the kill
    before = _every_table(settings.working_database_path)
    assert all(before[spec.name] for spec in REPORTS), {name: len(rows) for name, rows in before.items()}

    simulator.set_now(end_of_day(simulator, 4))
    killed_in = _refresh_days_3_and_4_killed_when_paused(tmp_path, simulator, settings, PAUSE_INSIDE_THE_FIRST_LOAD)
    # The merge had written the new days' rows into its transaction; none of them, nor a load record,
    # nor any other report's load, is in the database.
    assert _every_table(settings.working_database_path) == before, killed_in

    refresh_days(settings, simulator, 3, 4)
    assert_tables_equal_truth(settings, simulator, end_of_day(simulator, 4))
    after = _every_table(settings.working_database_path)
    assert after[killed_in] != before[killed_in], "the killed load had nothing to change"


# Test code, not the product's: the sitecustomize of a refresh killed right after a load committed.
# The first load whose merge changed rows (of the report's table or of its parents') says which
# report it is and waits to be killed: with TESTS_COMMITTED_LOAD_PAUSE=commit as soon as its COMMIT
# has returned, still holding the write lock, so that nothing the load writes after its COMMIT is in
# the database and no other load commits after it; with =released once load_report_file has
# returned (the connection closed without a checkpoint, the write lock let go), a lock of the
# test's own holding every later load at its start. A load before it that changed nothing commits
# its load record and the run goes on.
PAUSE_AFTER_THE_FIRST_COMMITTED_LOAD = """
import contextlib
import fcntl
import os
import time

_SIGNAL = os.environ.get("TESTS_PAUSED_LOAD_SIGNAL")
if _SIGNAL:
    import ekvio_assets.reports.load as _load

    def _signal_and_wait(report):
        with open(_SIGNAL + ".part", "w") as signal:
            signal.write(report)
        os.replace(_SIGNAL + ".part", _SIGNAL)
        while True:
            time.sleep(1)

    if os.environ["TESTS_COMMITTED_LOAD_PAUSE"] == "commit":
        _merge_staged, _load_connection = _load.merge_staged, _load._load_connection
        _merges = []

        def _merge_noting_changes(con, spec, rows, lineage):
            outcome = _merge_staged(con, spec, rows, lineage)
            _merges.append((spec.name, outcome.inserted + outcome.updated))
            return outcome

        class _WaitingAfterCommit:
            def __init__(self, con):
                self._con = con

            def __getattr__(self, name):
                return getattr(self._con, name)

            def execute(self, query, *args, **kwargs):
                if query.startswith("BEGIN"):
                    _merges.clear()
                result = self._con.execute(query, *args, **kwargs)
                if query == "COMMIT" and any(changed for _, changed in _merges):
                    _signal_and_wait(_merges[0][0])
                return result

        @contextlib.contextmanager
        def _connection_waiting_after_commit(warehouse):
            with _load_connection(warehouse) as con:
                yield _WaitingAfterCommit(con)

        _load.merge_staged = _merge_noting_changes
        _load._load_connection = _connection_waiting_after_commit
    else:
        _load_report_file = _load.load_report_file

        def _load_then_wait(warehouse, spec, exported, *args):
            with open(_SIGNAL + ".lock", "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                loaded = _load_report_file(warehouse, spec, exported, *args)
                results = [result.outcome for result in (loaded, loaded.parents) if result is not None]
                if any(outcome.inserted + outcome.updated for outcome in results):
                    _signal_and_wait(spec.name)
                return loaded

        _load.load_report_file = _load_then_wait
"""


@pytest.mark.long
@pytest.mark.parametrize("pause", ["commit", "released"])
def test_a_load_committed_before_the_refresh_is_killed_stays_with_its_load_record_and_lineage(
    tmp_path: Path, simulator: Any, configure_api: Callable[..., Settings], pause: str
) -> None:
    settings = configure_api(simulator, tmp_path / "data")
    simulator.set_now(end_of_day(simulator, 2))
    refresh_days(settings, simulator, 0, 2)
    before = _every_table(settings.working_database_path)
    archived_before = set((settings.data_dir / "raw").glob("*/*_task-*.json"))

    simulator.set_now(end_of_day(simulator, 4))
    report = _refresh_days_3_and_4_killed_when_paused(
        tmp_path, simulator, settings, PAUSE_AFTER_THE_FIRST_COMMITTED_LOAD, TESTS_COMMITTED_LOAD_PAUSE=pause
    )
    (spec,) = [spec for spec in REPORTS if spec.name == report]
    # The export the killed run archived for that report, and the window it asked for.
    (raw_file,) = set((settings.data_dir / "raw" / report).glob("*_task-*.json")) - archived_before
    task_id = raw_file.stem.rsplit("_task-", 1)[1]
    window_start, window_end = simulator.dataset.day_window(3)[0], end_of_day(simulator, 4)

    assert_report_equals_truth(settings, simulator, spec, window_end)
    loaded_tables = [table.name for table in (spec, spec.parents) if table is not None]
    untouched = set(before) - {*loaded_tables, "report_loads"}
    after = _every_table(settings.working_database_path)
    assert {name: after[name] for name in untouched} == {name: before[name] for name in untouched}, report
    with duckdb.connect(str(settings.working_database_path), read_only=True) as con:
        records = con.execute(
            "SELECT report, raw_file, window_start, window_end, inserted, updated FROM report_loads "
            "WHERE task_id = ? ORDER BY report",
            [task_id],
        ).fetchall()
        expected_records = []
        for (table, held), (_, sent) in zip(
            report_truth(simulator, spec, end_of_day(simulator, 2)),
            report_truth(simulator, spec, window_end),
            strict=True,
        ):
            changed = {key for key in sent.keys() & held.keys() if typed(sent[key]) != typed(held[key])}
            new = sent.keys() - held.keys()
            expected_records.append((table.name, str(raw_file), window_start, window_end, len(new), len(changed)))
            keys = ", ".join(f'"{column}"' for column in table.key)
            lineage = {
                row[:-4]: row[-4:]
                for row in con.execute(
                    f'SELECT {keys}, _task_id, _raw_file, _window_start, _window_end FROM "{table.name}"'
                ).fetchall()
            }
            assert {key: lineage[key] for key in new | changed} == dict.fromkeys(
                new | changed, (task_id, str(raw_file), window_start, window_end)
            ), table.name
            assert all(lineage[key][0] != task_id for key in sent.keys() - new - changed), table.name
        assert records == sorted(expected_records), report
    assert any(record[4] + record[5] for record in records), "the committed load had nothing to change"

    refresh_days(settings, simulator, 3, 4)
    assert_tables_equal_truth(settings, simulator, end_of_day(simulator, 4))


def _refresh_days_3_and_4_killed_when_paused(
    tmp_path: Path, simulator: Any, settings: Settings, hook_source: str, **env: str
) -> str:
    """Runs `refresh` of days 3 and 4 with `hook_source` as the sitecustomize of its processes,
    SIGKILLs them all once the hook has written its signal file (TESTS_PAUSED_LOAD_SIGNAL) and every
    report's file is downloaded, and returns what the hook wrote: the report it paused in."""
    downloads_before = len(simulator.state.file_requests)
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(hook_source, encoding="utf-8")
    paused = tmp_path / "paused-load"
    environment = clean_environment(
        EKVIO_API_URL=simulator.url,
        EKVIO_API_TOKEN=simulator.token,
        EKVIO_DATA_DIR=str(settings.data_dir),
        EKVIO_POLL_INTERVAL_SECONDS="0.05",
        EKVIO_START_DATE=simulator.dataset.config.start.isoformat(),
        TESTS_PAUSED_LOAD_SIGNAL=str(paused),
        PYTHONPATH=os.pathsep.join([str(hook), *filter(None, [os.environ.get("PYTHONPATH")])]),
        **env,
    )
    # Its own session: SIGKILL reaches the CLI and the step processes Dagster started, as an OOM kill
    # of the container would (a crash of processes: the operating system's file cache survives it).
    process = subprocess.Popen(
        [sys.executable, "-m", "ekvio_assets.cli", "refresh", "--from", day_key(simulator, 3)]
        + ["--to", day_key(simulator, 4)],
        cwd=tmp_path,
        env=environment,
        stdout=(tmp_path / "killed.out").open("w"),
        stderr=(tmp_path / "killed.err").open("w"),
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        # Every report's file downloaded too: no task of the killed run is left running on the
        # simulator to hold up the next run's (Ekvio's 1007).
        while (
            not (paused.is_file() and len(simulator.state.file_requests) >= downloads_before + len(REPORTS))
            and process.poll() is None
            and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        errors = (tmp_path / "killed.err").read_text()[-3000:]
        assert paused.is_file(), f"no load paused (exit code {process.poll()}): {errors}"
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        _wait_until_gone(process.pid)
    return paused.read_text(encoding="utf-8")


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


def test_ui_opens_the_instance_where_the_cli_recorded_its_runs_and_materializations(
    demo: Demo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(demo.folder)
    with mock.patch.dict(os.environ, clean_environment(), clear=True):
        command, environment, cwd = ui_invocation(Settings.from_env(), "127.0.0.1", 3000)
    home = demo.folder / "data" / "dagster_home"
    assert cwd == home and environment["DAGSTER_HOME"] == str(home)
    assert environment["EKVIO_DATA_DIR"] == str(demo.folder / "data")
    workspace = Path(command[command.index("-w") + 1])
    assert "module_name: ekvio_assets.definitions" in workspace.read_text()
    assert command[-4:] == ["--host", "127.0.0.1", "--port", "3000"]
    assert (home / "dagster.yaml").read_text() == (REPOSITORY / "dagster.yaml").read_text()

    run_ids = demo.run_ids()
    with (
        mock.patch.dict(os.environ, {"DAGSTER_HOME": environment["DAGSTER_HOME"]}),
        dg.DagsterInstance.get() as instance,
    ):
        assert [instance.get_run_by_id(run_id).status for run_id in run_ids] == [dg.DagsterRunStatus.SUCCESS] * 2
        built_by = {table.name: run_ids[0] for table in REPORT_TABLES} | {model.name: run_ids[1] for model in MODELS}
        for name, run_id in built_by.items():
            records = instance.fetch_materializations(dg.AssetKey(name), limit=1000).records
            assert run_id in {record.run_id for record in records}, name


def test_ui_serves_the_cli_runs(demo: Demo) -> None:
    port = free_port()
    # Its own session, so that dagster dev's webserver, daemon and code server go with it.
    process = subprocess.Popen(
        [sys.executable, "-m", "ekvio_assets.cli", "ui", "--port", str(port)],
        cwd=demo.folder,
        env=clean_environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    query = {"query": "{ runsOrError { ... on Runs { results { runId status } } } }"}
    try:
        deadline = time.monotonic() + 300
        runs = None
        while runs is None and process.poll() is None and time.monotonic() < deadline:
            try:
                answer = httpx.post(f"http://127.0.0.1:{port}/graphql", json=query, timeout=10)
                runs = {run["runId"]: run["status"] for run in answer.json()["data"]["runsOrError"]["results"]}
            except (httpx.HTTPError, ValueError, KeyError, TypeError):
                time.sleep(0.5)
        assert runs is not None, f"the UI did not answer (exit code {process.poll()})"
        assert [runs.get(run_id) for run_id in demo.run_ids()] == ["SUCCESS", "SUCCESS"]
        # Stored before dagster dev started, so that its queue holds runs of one report apart.
        with dg.DagsterInstance.from_config(str(demo.folder / "data" / "dagster_home")) as instance:
            pools = {pool.name: pool.limit for pool in instance.event_log_storage.get_pool_limits()}
        assert pools == dict.fromkeys(
            ["ekvio_attempts", "ekvio_course_statistics", "ekvio_material_statistics", "ekvio_program_statistics"], 1
        )
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        _wait_until_gone(process.pid)


def test_on_a_terminal_the_progress_is_a_live_table_of_the_steps(demo: Demo) -> None:
    """The reports run's stored events, fed to the live display as the follower feeds them."""
    reports_run = demo.run_ids()[0]
    console = Console(record=True, force_terminal=True, width=160)
    progress = RunProgress("reconcile_job")
    with (
        mock.patch.dict(os.environ, {"DAGSTER_HOME": str(demo.folder / "data" / "dagster_home")}),
        dg.DagsterInstance.get() as instance,
    ):
        records = instance.get_records_for_run(reports_run, limit=10_000).records
    with LiveDisplay(console).following(progress) as on_entry:
        for record in records:
            on_entry(record.event_log_entry)
    table = console.export_text()
    for spec in REPORTS:
        (archived,) = (demo.folder / "data" / "raw" / spec.name).glob("*_task-*.json")
        row = next(line for line in table.splitlines() if line.startswith(f"{spec.name} "))
        assert re.search(rf"{spec.name} +done +\d+\.\d s +{archived.stat().st_size:,} B +[\d,]+ +0 +0$", row), row
