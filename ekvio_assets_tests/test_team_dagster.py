"""A team's Dagster (deploy/postgres/dagster.yaml) as operators run it: PostgreSQL storage, the code
location in a gRPC code server, the daemon and the webserver in processes of their own, two
companies, their pools stored first (`ekvio-assets pools`). A day's schedule tick, a sensor tick and a
5-day backfill per company, and two runs queued from the UI before the daemon starts, go through
them; every run succeeds, a company's report runs ran one after the other, and each company's tables
equal what its simulator sent for those days."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import dagster as dg
import httpx
import pytest
from dagster._core.scheduler.instigation import InstigatorType, ScheduleInstigatorData

from ekvio_assets.benchmark.postgres_server import PostgresUnavailable, running_postgres, server_programs
from ekvio_assets.benchmark.truth import differences
from ekvio_assets.simulator import Dataset, DatasetConfig, generate, running_simulator
from ekvio_assets_tests.conftest import REPORT_ASSETS, clean_environment, free_port

REPO = Path(__file__).resolve().parents[1]
INSTANCE_CONFIG = REPO / "deploy" / "postgres" / "dagster.yaml"
VENV_BIN = Path(sys.executable).parent
COMPANIES = ("north", "south")
LOOKBACK_DAYS = 1
BACKFILL_DAYS = 5
# Everything below waits for processes on a busy 2-core machine: deadlines, never thresholds.
START_DEADLINE_SECONDS = 300
RUNS_DEADLINE_SECONDS = 1500
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}
# The four reports of ../shared/ekvio-api/reports, one pool each per company.
EKVIO_REPORTS = ("attempts", "material_statistics", "course_statistics", "program_statistics")


def _postgres_available() -> bool:
    try:
        server_programs()
    except PostgresUnavailable:
        return False
    return True


@dataclass(frozen=True)
class Company:
    key: str
    dataset: Dataset
    token: str


def _midday_zone() -> str:
    """A zone where it is about 13:00 now, so that no company's 03:00 refresh nor its Sunday 05:00
    reconcile falls due by itself while the test runs: the daemon owes only the ticks the test sets up."""
    hours_east = (13 - datetime.now(ZoneInfo("UTC")).hour) % 24
    hours_east -= 24 if hours_east > 14 else 0
    # The Etc zones count the other way round: Etc/GMT-3 is three hours east of UTC.
    return f"Etc/GMT{-hours_east:+d}" if hours_east else "Etc/UTC"


@contextmanager
def _process(name: str, command: list[str], env: dict[str, str], logs: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A Dagster process of its own, in its own process group (a code server starts a child server
    and runs), stopped at the end; its output goes to `logs/<name>.log`."""
    log = (logs / f"{name}.log").open("wb")
    process = subprocess.Popen(command, env=env, cwd=logs, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield process
    finally:
        with ExitStack() as stopping:
            stopping.callback(log.close)
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()


class Webserver:
    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, text: str, **variables: Any) -> dict[str, Any]:
        answer = httpx.post(f"{self.url}/graphql", json={"query": text, "variables": variables}, timeout=60)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert "errors" not in body, body["errors"]
        return body["data"]

    def wait_for_location(self, processes: list[subprocess.Popen[bytes]], logs: Path) -> None:
        deadline = time.monotonic() + START_DEADLINE_SECONDS
        while time.monotonic() < deadline:
            for process in processes:
                assert process.poll() is None, f"{process.args} ended: " + _log_tails(logs)
            try:
                entries = self.query(WORKSPACE)["workspaceOrError"]["locationEntries"]
            except httpx.TransportError:
                entries = []
            loaded = [entry["locationOrLoadError"] for entry in entries if entry["loadStatus"] == "LOADED"]
            if loaded and loaded[0]["__typename"] == "RepositoryLocation":
                return
            if loaded:
                # The webserver asked before the code server listened: ask it to try again.
                self.query(RELOAD_LOCATION)
            time.sleep(1)
        pytest.fail("the code location did not load: " + _log_tails(logs))


WORKSPACE = """{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on PythonError { message } } } } } }"""
RELOAD_LOCATION = """mutation { reloadRepositoryLocation(repositoryLocationName: "ekvio_assets") { __typename } }"""
SCHEDULE_STATE = """query($selector: ScheduleSelector!) { scheduleOrError(scheduleSelector: $selector) {
  __typename ... on Schedule { scheduleState { id status } } } }"""
STOP_SCHEDULE = """mutation($id: String!) { stopRunningSchedule(id: $id) {
  __typename ... on ScheduleStateResult { scheduleState { status } } ... on PythonError { message } } }"""
START_SCHEDULE = """mutation($selector: ScheduleSelector!) { startSchedule(scheduleSelector: $selector) {
  __typename ... on ScheduleStateResult { scheduleState { status } } ... on PythonError { message } } }"""
LAUNCH_BACKFILL = """mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message }
  ... on InvalidSubsetError { message } } }"""
LAUNCH_RUN = """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
  __typename ... on LaunchRunSuccess { run { runId status } } ... on PythonError { message }
  ... on RunConfigValidationInvalid { errors { message } } } }"""
BACKFILL_STATUS = """query($id: String!) { partitionBackfillOrError(backfillId: $id) {
  __typename ... on PartitionBackfill { status } } }"""


def _log_tails(logs: Path) -> str:
    return "".join(
        f"\n--- {log.name}\n" + log.read_text(errors="replace")[-3000:] for log in sorted(logs.glob("*.log"))
    )


def _companies_file(path: Path, companies: list[Company], urls: dict[str, str], zone: str) -> None:
    lines = ["companies:"]
    for company in companies:
        lines += [
            f"  - key: {company.key}",
            f"    api_url: {urls[company.key]}",
            f"    token_env: TEAM_TOKEN_{company.key.upper()}",
            f"    timezone: {zone}",
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _rewind_schedule(instance: dg.DagsterInstance, name: str, zone: str) -> None:
    """The schedule as if it had been started just before its last 03:00: the daemon owes it that
    one tick and runs it when it starts, as after a night it was down (Dagster's catch-up)."""
    now = datetime.now(ZoneInfo(zone))
    last_tick = now.replace(hour=3, minute=0, second=0, microsecond=0)
    states = [
        state
        for state in instance.all_instigator_state(instigator_type=InstigatorType.SCHEDULE)
        if state.instigator_name == name
    ]
    assert len(states) == 1, [state.instigator_name for state in states]
    data = states[0].instigator_data
    assert isinstance(data, ScheduleInstigatorData)
    rewound = ScheduleInstigatorData(data.cron_schedule, start_timestamp=(last_tick - timedelta(minutes=1)).timestamp())
    instance.update_instigator_state(states[0].with_data(rewound))


def _day(today: date, days_before: int) -> str:
    return (today - timedelta(days=days_before)).isoformat()


@pytest.mark.long
@pytest.mark.skipif(not _postgres_available() and os.environ.get("CI") is None, reason="no PostgreSQL server")
def test_two_companies_on_postgres_with_code_server_daemon_and_webserver(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    zone = _midday_zone()
    today = datetime.now(ZoneInfo(zone)).date()
    start = today - timedelta(days=30)
    companies = [
        Company(
            key,
            generate(
                DatasetConfig(
                    seed=40 + number,
                    learners=24 + 12 * number,
                    materials=6,
                    courses=3,
                    programs=2,
                    start=start,
                    days=30,
                    timezone=zone,
                )
            ),
            f"team-token-{key}-{number}",
        )
        for number, key in enumerate(COMPANIES)
    ]
    logs = tmp_path / "logs"
    logs.mkdir()
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(INSTANCE_CONFIG, home / "dagster.yaml")
    code_port, web_port = free_port(), free_port()
    (tmp_path / "workspace.yaml").write_text(
        f"load_from:\n  - grpc_server:\n      host: 127.0.0.1\n      port: {code_port}\n"
        "      location_name: ekvio_assets\n",
        encoding="utf-8",
    )
    with ExitStack() as stack:
        postgres = stack.enter_context(running_postgres(logs))
        simulators = {
            company.key: stack.enter_context(running_simulator(company.dataset, token=company.token))
            for company in companies
        }
        _companies_file(tmp_path / "companies.yaml", companies, {k: s.url for k, s in simulators.items()}, zone)
        instance_env = clean_environment(DAGSTER_HOME=str(home), **postgres.dagster_environment())
        code_env = {
            **instance_env,
            **{f"TEAM_TOKEN_{company.key.upper()}": company.token for company in companies},
            "EKVIO_COMPANIES": str(tmp_path / "companies.yaml"),
            "EKVIO_DATA_DIR": str(tmp_path / "data"),
            "EKVIO_START_DATE": start.isoformat(),
            "EKVIO_LOOKBACK_DAYS": str(LOOKBACK_DAYS),
            "EKVIO_POLL_INTERVAL_SECONDS": "0.2",
        }
        workspace = ["-w", str(tmp_path / "workspace.yaml")]
        code_server = stack.enter_context(
            _process(
                "code_server",
                [
                    str(VENV_BIN / "dagster"),
                    "code-server",
                    "start",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(code_port),
                    "-m",
                    "ekvio_assets.definitions",
                    "--location-name",
                    "ekvio_assets",
                ],
                code_env,
                logs,
            )
        )
        webserver_process = stack.enter_context(
            _process(
                "webserver",
                [str(VENV_BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(web_port), *workspace],
                instance_env,
                logs,
            )
        )
        webserver = Webserver(f"http://127.0.0.1:{web_port}")
        webserver.wait_for_location([code_server, webserver_process], logs)

        for key, value in postgres.dagster_environment().items():
            monkeypatch.setenv(key, value)
        instance = stack.enter_context(dg.DagsterInstance.from_config(str(home)))
        for company in companies:
            selector = {
                "repositoryLocationName": "ekvio_assets",
                "repositoryName": "__repository__",
                "scheduleName": f"{company.key}_daily_refresh_schedule",
            }
            # Stopped and started again as in the UI, so that the schedule's state is stored and
            # can be set back; a schedule running by default has none until the daemon sees it.
            state = webserver.query(SCHEDULE_STATE, selector=selector)["scheduleOrError"]["scheduleState"]
            stopped = webserver.query(STOP_SCHEDULE, id=state["id"])["stopRunningSchedule"]
            assert stopped["__typename"] == "ScheduleStateResult", stopped
            started = webserver.query(START_SCHEDULE, selector=selector)["startSchedule"]
            assert started["__typename"] == "ScheduleStateResult", started
            _rewind_schedule(instance, selector["scheduleName"], zone)

        backfills = {}
        for company in companies:
            first, last = _day(today, LOOKBACK_DAYS + BACKFILL_DAYS + 1), _day(today, LOOKBACK_DAYS + 2)
            params = {
                "partitionsByAssets": [
                    {"assetKey": {"path": [company.key, name]}, "partitions": {"range": {"start": first, "end": last}}}
                    for name in sorted(REPORT_ASSETS)
                ],
                "title": f"{company.key} backfill",
            }
            launched = webserver.query(LAUNCH_BACKFILL, params=params)["launchPartitionBackfill"]
            assert launched["__typename"] == "LaunchBackfillSuccess", launched
            backfills[company.key] = launched["backfillId"]

        # Two runs of north's test attempts queued from the UI before the daemon starts: its queue
        # meets both in its first pass, where a pool it has not stored would let both start at once.
        for days_before in (LOOKBACK_DAYS + 2, LOOKBACK_DAYS + 3):
            params = {
                "selector": {
                    "repositoryLocationName": "ekvio_assets",
                    "repositoryName": "__repository__",
                    "jobName": f"{COMPANIES[0]}_refresh_job",
                    "assetSelection": [{"path": [COMPANIES[0], "attempts"]}],
                },
                "runConfigData": {},
                "executionMetadata": {"tags": [{"key": "dagster/partition", "value": _day(today, days_before)}]},
            }
            queued = webserver.query(LAUNCH_RUN, params=params)["launchRun"]
            assert queued["__typename"] == "LaunchRunSuccess", queued
            assert queued["run"]["status"] == "QUEUED"

        # As an operator does after deploying: the pools stored before the daemon queues their runs.
        pools = subprocess.run(
            [str(VENV_BIN / "ekvio-assets"), "pools"], env=code_env, cwd=tmp_path, capture_output=True, text=True
        )
        assert pools.returncode == 0, pools.stderr
        listed = {line.split(":")[0].strip() for line in pools.stdout.splitlines()[1:]}
        assert listed == {f"{company.key}_ekvio_{report}" for company in companies for report in EKVIO_REPORTS}
        assert "8 of them new" in pools.stdout, pools.stdout
        stack.enter_context(
            _process("daemon", [str(VENV_BIN / "dagster-daemon"), "run", *workspace], instance_env, logs)
        )

        def finished() -> bool:
            statuses = [
                webserver.query(BACKFILL_STATUS, id=backfill_id)["partitionBackfillOrError"]["status"]
                for backfill_id in backfills.values()
            ]
            assert "FAILED" not in statuses and "COMPLETED_FAILED" not in statuses, statuses + [_log_tails(logs)]
            runs = instance.get_runs()
            scheduled = [run for run in runs if "dagster/schedule_name" in run.tags]
            sensed = [run for run in runs if run.tags.get("dagster/sensor_name", "").endswith("missing_days_sensor")]
            if (
                statuses != ["COMPLETED_SUCCESS"] * len(backfills)
                or len(scheduled) < len(companies)
                or len(sensed) < len(companies) * LOOKBACK_DAYS
                or any(run.status.value not in FINISHED for run in runs)
            ):
                return False
            # The analytics follow the reports by declarative automation, publishing at the end.
            return all(
                (tmp_path / "data" / company.key / "ekvio.duckdb").exists()
                and not differences(tmp_path / "data" / company.key / "ekvio.duckdb", *window(company))
                for company in companies
            )

        def window(company: Company) -> tuple[Dataset, datetime, datetime]:
            oldest = today - timedelta(days=LOOKBACK_DAYS + BACKFILL_DAYS + 1)
            return company.dataset, _midnight(oldest, zone), _midnight(today, zone)

        deadline = time.monotonic() + RUNS_DEADLINE_SECONDS
        while not finished():
            if time.monotonic() > deadline:
                summary = [(run.job_name, run.status.value, dict(run.tags)) for run in instance.get_runs()]
                pytest.fail(f"the runs did not finish: {summary}" + _log_tails(logs))
            time.sleep(2)

        runs = instance.get_runs()
        assert {run.status.value for run in runs} == {"SUCCESS"}, [(r.job_name, r.status.value) for r in runs]
        for company in companies:
            own = [run for run in runs if run.job_name.startswith(f"{company.key}_")]
            scheduled = [run.tags.get("dagster/partition") for run in own if "dagster/schedule_name" in run.tags]
            assert scheduled == [_day(today, 1)]
            sensed = sorted(
                run.tags.get("dagster/partition")
                for run in own
                if "dagster/sensor_name" in run.tags and run.tags["dagster/sensor_name"].endswith("missing_days_sensor")
            )
            assert sensed == [_day(today, 2)], "the day before the schedule's"
            backfill_runs = [run for run in runs if run.tags.get("dagster/backfill") == backfills[company.key]]
            assert len(backfill_runs) == 1, "a backfill of a range is one run"
            assert differences(tmp_path / "data" / company.key / "work" / "ekvio.duckdb", *window(company)) == []
            _assert_one_after_the_other(
                instance,
                [*(run.run_id for run in own if run.job_name == f"{company.key}_refresh_job"), backfill_runs[0].run_id],
            )
        for company in companies:
            log_text = "".join(log.read_text(errors="replace") for log in logs.glob("*.log"))
            assert company.token not in log_text


def _assert_one_after_the_other(instance: dg.DagsterInstance, run_ids: list[str]) -> None:
    """The runs (which share a company's pools) ran one at a time: each started after the one before ended."""
    records = sorted(
        instance.get_run_records(dg.RunsFilter(run_ids=run_ids)), key=lambda record: record.start_time or 0
    )
    assert len(records) == len(run_ids) >= 3, "a schedule's, a sensor's and a backfill's run"
    spans = [(record.dagster_run.job_name, record.start_time, record.end_time) for record in records]
    for before, after in itertools.pairwise(spans):
        assert before[2] is not None and after[1] is not None and before[2] <= after[1], spans


def _midnight(day: date, zone: str) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=ZoneInfo(zone))
