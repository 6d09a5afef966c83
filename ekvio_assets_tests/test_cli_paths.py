"""What the operators' guide promises of the CLI beyond its first run: no token in anything a
multi-process refresh leaves behind, and `replay` with its `--report` and `--from/--to`."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from ekvio_assets.simulator import FaultKind, FaultPlan, FaultRule
from ekvio_assets_tests.conftest import attempt_record, day_key, end_of_day, run_cli


def test_the_token_is_in_no_output_and_no_file_of_a_multi_process_refresh(
    tmp_path: Path, simulator_factory: Callable[..., AbstractContextManager[Any]]
) -> None:
    # Faults whose retries, warnings and waits each log a line from a step process.
    faults = FaultPlan(
        [
            FaultRule("poll", "http_503", report="attempts"),
            FaultRule("download", "file_html", report="course_statistics"),
            FaultRule("create", "task_running", report="program_statistics"),
        ]
    )
    data_dir = tmp_path / "data"
    with simulator_factory(faults=faults) as running:
        running.set_now(end_of_day(running, 1))
        # --verbose: Dagster's whole event log on stdout as well.
        finished = run_cli(
            tmp_path,
            "refresh",
            "--from",
            day_key(running, 0),
            "--to",
            day_key(running, 1),
            "--verbose",
            EKVIO_API_URL=running.url,
            EKVIO_API_TOKEN=running.token,
            EKVIO_DATA_DIR=str(data_dir),
            EKVIO_POLL_INTERVAL_SECONDS="0.05",
            EKVIO_RETRY_BACKOFF_SECONDS="0.05",
            EKVIO_START_DATE=running.dataset.config.start.isoformat(),
        )
        injected = {fault.kind for fault in running.state.faults_injected}
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert injected == {FaultKind.HTTP_503, FaultKind.FILE_HTML, FaultKind.TASK_RUNNING}
    token = running.token.encode()
    assert token not in finished.stdout.encode() and token not in finished.stderr.encode()
    files = [path for path in tmp_path.rglob("*") if path.is_file()]
    # The search reaches what the step processes wrote: their log lines are in the instance's files.
    step_lines = b"holds neither data nor errors"
    assert [path for path in files if step_lines in path.read_bytes() and "dagster_home" in path.parts], files
    assert [path for path in files if token in path.read_bytes()] == []


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_replay_takes_the_report_and_the_window_of_a_file_from_elsewhere_from_its_options(tmp_path: Path) -> None:
    outside = tmp_path / "export from support.json"
    records = [
        attempt_record("a1", "2024-03-01T10:05:00+03:00"),
        attempt_record("a2", "2024-03-02T09:00:00+03:00", login="petrov"),
    ]
    outside.write_text(json.dumps({"data": records}), encoding="utf-8")
    data_dir = tmp_path / "data"
    env = {"EKVIO_DATA_DIR": str(data_dir), "EKVIO_START_DATE": "2024-01-01"}

    refused = run_cli(tmp_path, "replay", str(outside), **env)
    assert refused.returncode == 1 and "pass --report" in refused.stderr, refused.stderr

    started = datetime.now(UTC).replace(microsecond=0)  # the archive's name may keep whole seconds
    options = ["--report", "attempts", "--from", "2024-03-01", "--to", "2024-03-02"]
    replayed = run_cli(tmp_path, "replay", str(outside), *options, **env)
    assert replayed.returncode == 0, replayed.stderr[-3000:]
    (archived,) = (data_dir / "raw" / "attempts").iterdir()
    assert archived.name.endswith("_task-replay.json") and archived.read_bytes() == outside.read_bytes()
    assert f"Replayed {archived} into attempts: 2 rows in the file, 2 inserted, 0 updated, 0 rejected" in (
        replayed.stdout
    )

    # Again, from the archive and without options: its report from its folder, a full export.
    again = run_cli(tmp_path, "replay", str(archived), **env)
    assert again.returncode == 0, again.stderr[-3000:]
    ended = datetime.now(UTC)

    # Moscow days: 2024-03-01 00:00 +03:00 up to the end of 2024-03-02.
    window = (_utc("2024-02-29T21:00:00"), _utc("2024-03-02T21:00:00"))
    with duckdb.connect(str(data_dir / "ekvio.duckdb"), read_only=True) as con:
        loads = con.execute(
            "SELECT report, task_id, raw_file, window_start, window_end, rows_in_file, inserted, updated, rejected, "
            "duplicates, fetched_at FROM report_loads ORDER BY loaded_at"
        ).fetchall()
        rows = con.execute(
            "SELECT attempt_id, login, _changed_at, _window_start, _window_end, _task_id, _raw_file, _fetched_at "
            "FROM attempts ORDER BY attempt_id"
        ).fetchall()
    assert [load[:-1] for load in loads] == [
        ("attempts", "replay", str(archived), *window, 2, 2, 0, 0, 0),
        ("attempts", "replay", str(archived), None, None, 2, 0, 0, 0, 0),
    ]
    fetched_at = loads[0][-1]
    assert started <= fetched_at <= ended and loads[1][-1] == fetched_at  # the time in the archive's name
    # The rows keep the lineage of the load that wrote them: the second one changed nothing.
    lineage = (*window, "replay", str(archived), fetched_at)
    assert rows == [
        ("a1", "ivanov", _utc("2024-03-01T07:05:00"), *lineage),
        ("a2", "petrov", _utc("2024-03-02T06:00:00"), *lineage),
    ]
