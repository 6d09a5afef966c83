"""The fault matrix: every fault the simulator can inject, over real HTTP on loopback, either
survived (the run succeeds and the table equals the truth) or reported (the run fails naming the
report, the task and the cause, and the table is exactly as before)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest

from ekvio_assets.api.resource import EkvioApiResource
from ekvio_assets.automation.partitions import daily_partitions, partition_range_tags
from ekvio_assets.config import Settings
from ekvio_assets.naming import SINGLE_COMPANY
from ekvio_assets.reports.assets import build_report_assets
from ekvio_assets.reports.specs import REPORTS, REPORTS_BY_NAME, ReportSpec
from ekvio_assets.simulator import Dataset, FaultKind, FaultPlan, FaultRule, ProtocolOptions, running_simulator
from ekvio_assets.simulator.faults import KINDS_BY_CALL, Call
from ekvio_assets.storage.archive import parse_raw_file_name
from ekvio_assets.storage.warehouse import DuckDBWarehouse
from ekvio_assets_tests.conftest import TEST_TOKEN, day_key, end_of_day, table_by_key, truth_by_key

BASELINE_DAYS = range(0, 5)  # loaded cleanly before every case
FAULTY_DAYS = range(5, 7)  # the run the fault hits
TRANSIENT = [
    FaultKind.HTTP_429,
    FaultKind.HTTP_500,
    FaultKind.HTTP_502,
    FaultKind.HTTP_503,
    FaultKind.HTTP_504,
    FaultKind.DROP_CONNECTION,
]


@dataclass(frozen=True)
class Case:
    call: Call
    kind: FaultKind
    report: str
    count: int | None = 1
    cause: str = ""  # for a reported fault: what the failure message says

    @property
    def patience(self) -> Patience:
        return IMPATIENT if self.count is None and self.kind in ENDLESS_WAITS else PATIENT

    @property
    def id(self) -> str:
        return f"{self.kind}@{self.call}-{'x' + str(self.count) if self.count else 'always'}-{self.report}"


@dataclass(frozen=True)
class Patience:
    """How long the client polls a task, and waits out another task of its report, before giving up."""

    poll_timeout_seconds: float
    busy_wait_timeout_seconds: float


# Generous: a busy machine must never turn a fault that is survived into one that is reported.
PATIENT = Patience(poll_timeout_seconds=300.0, busy_wait_timeout_seconds=300.0)
# Short, where giving up is the outcome under test (a fault that never ends): a slow machine only
# makes the client give up later, never makes it succeed.
IMPATIENT = Patience(poll_timeout_seconds=1.0, busy_wait_timeout_seconds=0.5)
ENDLESS_WAITS = frozenset({FaultKind.NEVER_COMPLETE, FaultKind.TASK_RUNNING, FaultKind.FILE_HTML})


def _reports_in_turn(cases: list[tuple[Any, ...]]) -> list[Case]:
    """Each case against another report, so the matrix covers all four."""
    return [Case(*case[:2], REPORTS[index % len(REPORTS)].name, *case[2:]) for index, case in enumerate(cases)]


SURVIVED = _reports_in_turn(
    [(call, kind) for call in Call for kind in TRANSIENT]
    + [(Call.CREATE, FaultKind.TASK_RUNNING, 2), (Call.POLL, FaultKind.FILE_NAME_TRAVERSAL)]
    # A completed task's file without data or errors: polled and downloaded again (the vendor SDK's way).
    + [(Call.DOWNLOAD, FaultKind.FILE_HTML)]
)
REPORTED = _reports_in_turn(
    [
        (Call.CREATE, FaultKind.MODULE_UNAVAILABLE, None, "is not available for this company"),
        (Call.CREATE, FaultKind.TASK_RUNNING, None, "another task of this report kept running"),
        (Call.CREATE, FaultKind.HTTP_503, None, "HTTP 503 after 3 attempts"),
        (Call.POLL, FaultKind.HTTP_502, None, "HTTP 502 after 3 attempts"),
        (Call.DOWNLOAD, FaultKind.DROP_CONNECTION, None, "after 3 attempts"),
        (Call.POLL, FaultKind.TASK_FAIL, None, "failed on the Ekvio side"),
        (Call.POLL, FaultKind.NEVER_COMPLETE, None, "did not complete within"),
        (Call.POLL, FaultKind.COMPLETED_WITHOUT_FILE, None, "completed without a result file URL"),
        (Call.POLL, FaultKind.FILE_URL_NOT_HTTP, None, "points to a result file that is not http(s)"),
        (Call.DOWNLOAD, FaultKind.FILE_404, None, "HTTP 404"),
        (Call.DOWNLOAD, FaultKind.FILE_TRUNCATED, None, "is not valid JSON"),
        (Call.DOWNLOAD, FaultKind.FILE_HTML, None, "its result file held neither data nor errors in"),
        (Call.DOWNLOAD, FaultKind.FILE_ERRORS, None, "the result file holds an error answer instead of data"),
    ]
)
# Records the load sets aside (rejected) or resolves (duplicates), counted in the metadata.
SPOILED_RECORDS = _reports_in_turn(
    [
        (Call.DOWNLOAD, FaultKind.FILE_BAD_TYPES),
        (Call.DOWNLOAD, FaultKind.FILE_MISSING_KEYS),
        (Call.DOWNLOAD, FaultKind.FILE_DUPLICATE_KEYS),
        (Call.DOWNLOAD, FaultKind.FILE_DUPLICATE_KEYS),
    ]
)


def test_the_matrix_covers_every_fault_kind_on_every_call_it_can_happen_on() -> None:
    covered = {(case.call, case.kind) for case in SURVIVED + REPORTED + SPOILED_RECORDS}
    possible = {(call, kind) for call, kinds in KINDS_BY_CALL.items() for kind in kinds}
    assert {kind for _, kind in possible} <= {kind for _, kind in covered}
    assert {(call, kind) for call, kind in possible if kind in TRANSIENT} <= covered
    assert {case.report for case in SURVIVED} == {case.report for case in REPORTED} == set(REPORTS_BY_NAME)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory, dataset: Dataset) -> Path:
    """A working database holding the first days of every report, loaded without faults."""
    data_dir = tmp_path_factory.mktemp("baseline")
    with running_simulator(dataset, token=TEST_TOKEN) as clean:
        clean.set_now(end_of_day(clean, BASELINE_DAYS[-1]))
        result = _refresh(clean, data_dir, BASELINE_DAYS, [spec.name for spec in REPORTS])
    assert result.success
    working = DuckDBWarehouse(data_dir=str(data_dir), timezone="Europe/Moscow").working_path
    # Loads leave their changes in the write-ahead log: a copy of the file alone needs them in it.
    with duckdb.connect(str(working)) as con:
        con.execute("CHECKPOINT")
    return working


@dataclass
class Outcome:
    result: dg.ExecuteInProcessResult
    running: Any
    data_dir: Path
    spec: ReportSpec

    @property
    def working_path(self) -> Path:
        return DuckDBWarehouse(data_dir=str(self.data_dir), timezone="Europe/Moscow").working_path

    def task_ids(self) -> list[str]:
        return [str(task.task_id) for task in self.running.state.tasks if task.report == self.spec.name]

    def failure_messages(self) -> list[str]:
        return [
            event.step_failure_data.error.message
            for event in self.result.all_events
            if event.is_step_failure and event.step_failure_data and event.step_failure_data.error
        ]


@pytest.fixture
def run_with_fault(baseline: Path, dataset: Dataset, tmp_path: Path) -> Iterator[Any]:
    def run(case: Case) -> Outcome:
        data_dir = tmp_path / "data"
        working = DuckDBWarehouse(data_dir=str(data_dir), timezone="Europe/Moscow").working_path
        working.parent.mkdir(parents=True)
        shutil.copyfile(baseline, working)
        rule = FaultRule(case.call, case.kind, count=case.count, report=case.report)
        # Retry-After: 0, as the vendor's servers may send: the client backs off all the same.
        protocol = ProtocolOptions(retry_after="0")
        with running_simulator(dataset, token=TEST_TOKEN, faults=FaultPlan([rule]), protocol=protocol) as running:
            running.set_now(end_of_day(running, FAULTY_DAYS[-1]))
            result = _refresh(running, data_dir, FAULTY_DAYS, [case.report], case.patience)
            injected = [fault.kind for fault in running.state.faults_injected]
        assert injected and set(injected) == {case.kind}, injected
        return Outcome(result, running, data_dir, REPORTS_BY_NAME[case.report])

    yield run


def _refresh(
    running: Any, data_dir: Path, days: range, reports: list[str], patience: Patience = PATIENT
) -> dg.ExecuteInProcessResult:
    settings = Settings.from_env(
        {
            "EKVIO_DATA_DIR": str(data_dir),
            "EKVIO_START_DATE": running.dataset.config.start.isoformat(),
        }
    )
    assets = build_report_assets(
        daily_partitions(settings), settings.max_window_days, settings.freshness_hours, SINGLE_COMPANY
    )
    fast = EkvioApiResource(
        api_url=running.url,
        api_token=TEST_TOKEN,
        poll_interval_seconds=0.02,
        poll_timeout_seconds=patience.poll_timeout_seconds,
        busy_wait_timeout_seconds=patience.busy_wait_timeout_seconds,
        max_attempts=3,
        backoff_base_seconds=0.01,
    )
    return dg.materialize(
        [asset for asset in assets if asset.op.name in reports],
        resources={"ekvio_api": fast, "warehouse": DuckDBWarehouse(data_dir=str(data_dir), timezone=settings.timezone)},
        tags=partition_range_tags(day_key(running, days[0]), day_key(running, days[-1])),
        raise_on_error=False,
    )


def _assert_equals_truth(outcome: Outcome, rejected: int = 0) -> None:
    """The table holds the truth, except for at most `rejected` keys whose newest version was set aside."""
    table = table_by_key(outcome.working_path, outcome.spec)
    truth = truth_by_key(outcome.running, outcome.spec, end_of_day(outcome.running, FAULTY_DAYS[-1]))
    assert table.keys() <= truth.keys(), outcome.spec.name
    differing = [
        key
        for key, expected in truth.items()
        if key not in table or {name: table[key].get(name) for name in expected} != expected
    ]
    assert len(differing) <= rejected, (outcome.spec.name, differing[:3])


@pytest.mark.parametrize("case", SURVIVED, ids=lambda case: case.id)
def test_a_transient_fault_is_survived_and_the_table_equals_the_truth(case: Case, run_with_fault: Any) -> None:
    outcome = run_with_fault(case)
    assert outcome.result.success, outcome.failure_messages()
    _assert_equals_truth(outcome)
    archived = list((outcome.data_dir / "raw" / case.report).iterdir())
    # Named here, from the task id: never from the server's URL or Content-Disposition. Every
    # download is kept, the page that came instead of the file too.
    assert {parse_raw_file_name(path.name)[1] for path in archived} == set(outcome.task_ids()[-1:])
    assert len(archived) == (2 if case.kind is FaultKind.FILE_HTML else 1)
    assert not list(outcome.data_dir.parent.rglob("evil.json"))


@pytest.mark.parametrize("case", REPORTED, ids=lambda case: case.id)
def test_a_permanent_fault_fails_the_run_clearly_and_leaves_the_table_as_it_was(
    case: Case, run_with_fault: Any, baseline: Path
) -> None:
    outcome = run_with_fault(case)
    assert not outcome.result.success
    (message,) = outcome.failure_messages()
    assert outcome.spec.title in message and case.cause in message, message
    if case.call is not Call.CREATE:
        assert f"task {outcome.task_ids()[-1]}" in message, message
    assert "Traceback" not in message and message.count("\n") <= 1, message
    assert table_by_key(outcome.working_path, outcome.spec) == table_by_key(baseline, outcome.spec)
    if (
        case.call is Call.DOWNLOAD
        and case.kind is not FaultKind.DROP_CONNECTION
        and case.kind is not FaultKind.FILE_404
    ):
        archived = list((outcome.data_dir / "raw" / case.report).iterdir())
        assert {parse_raw_file_name(path.name)[1] for path in archived} == {outcome.task_ids()[-1]}
        assert [path for path in archived if str(path) in message], message


@pytest.mark.parametrize("case", SPOILED_RECORDS, ids=lambda case: case.id)
def test_spoiled_records_are_set_aside_or_resolved_and_counted(case: Case, run_with_fault: Any) -> None:
    outcome = run_with_fault(case)
    assert outcome.result.success, outcome.failure_messages()
    metadata = outcome.result.asset_materializations_for_node(case.report)[0].metadata
    if case.kind is FaultKind.FILE_DUPLICATE_KEYS:
        assert (metadata["duplicate_keys_in_files"].value, metadata["rows_rejected"].value) == (1, 0)
        _assert_equals_truth(outcome)
    else:
        # A programme's or material's key spoils every learner row under it.
        rejected = metadata["rows_rejected"].value
        assert rejected >= 1 and metadata["duplicate_keys_in_files"].value == 0
        with DuckDBWarehouse(data_dir=str(outcome.data_dir), timezone="Europe/Moscow").read_connection() as con:
            problems = con.execute("SELECT problems FROM rejected_records WHERE report = ?", [case.report]).fetchall()
        assert len(problems) == rejected and all(found for (found,) in problems), problems
        _assert_equals_truth(outcome, rejected)
