"""The protocol as the vendor's SDK knows it (PROTOCOL.md, its last section), one behaviour per
section, each over real HTTP on loopback against the simulator.

The client's sleep and clock are a fake one that only counts: no test waits for real time.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ekvio_assets.api.client import EkvioApiError, EkvioClient
from ekvio_assets.api.result_files import inspect_result_file
from ekvio_assets.api.retries import RetryPolicy
from ekvio_assets.api.windows import FULL_EXPORT, ExportWindow
from ekvio_assets.reports.replay import replay_raw_file
from ekvio_assets.reports.specs import ATTEMPTS, COURSE_STATISTICS, MATERIAL_STATISTICS
from ekvio_assets.simulator import Call, CannedAnswer, FaultPlan, FaultRule, ProtocolOptions
from ekvio_assets.storage.archive import parse_raw_file_name, raw_file_name
from ekvio_assets.storage.warehouse import DuckDBWarehouse
from ekvio_assets_tests.conftest import (
    FAST_RETRIES,
    assert_tables_equal_truth,
    attempt_record,
    end_of_day,
    refresh_days,
    result_records,
    settings_for,
)

POLL_INTERVAL = 10.0
UNREADABLE_DATE_TIME = r"Invalid value format. Valid Y-m-d\TH:i:sP"


class FakeTime:
    """The client's sleep and clock: sleeping moves the clock, and nothing waits."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


def _client(running: Any, time: FakeTime | None = None, **options: Any) -> EkvioClient:
    time = time or FakeTime()
    options.setdefault("poll_timeout_seconds", 3600)
    options.setdefault("retry", FAST_RETRIES)
    return EkvioClient(
        running.url,
        running.token,
        poll_interval_seconds=POLL_INTERVAL,
        log=logging.getLogger("ekvio-test"),
        sleep=time.sleep,
        clock=time.clock,
        **options,
    )


def _canned(call: Call, body: bytes, **options: Any) -> ProtocolOptions:
    return ProtocolOptions(answers=(CannedAnswer(call, body, **options),))


# --- 1. statuses ----------------------------------------------------------------------------------


def test_every_status_but_completed_and_fail_means_not_yet(simulator_factory: Any, tmp_path: Path, caplog: Any) -> None:
    statuses = ("queued", "progress", "processing", "Completed", "in_work", None)
    protocol = ProtocolOptions(pending_statuses=statuses)
    time = FakeTime()
    with (
        simulator_factory(protocol=protocol, polls_to_complete=7) as running,
        caplog.at_level(logging.INFO, "ekvio-test"),
    ):
        exported = _client(running, time).export(ATTEMPTS, FULL_EXPORT, tmp_path)
    assert result_records(exported.path) == list(running.dataset.payload_records(ATTEMPTS.name))
    polled = [message.split(" is ")[1].split(" (")[0] for message in caplog.messages if " is " in message]
    assert polled == ["queued", "progress", "processing", "Completed", "in_work", "without a status", "completed"]
    assert time.sleeps == [POLL_INTERVAL] * 6


def test_the_simulators_default_polling_answers_progress(simulator: Any, tmp_path: Path, caplog: Any) -> None:
    with caplog.at_level(logging.INFO, "ekvio-test"):
        _client(simulator).export(ATTEMPTS, FULL_EXPORT, tmp_path)
    assert [message for message in caplog.messages if " is progress " in message]


# --- 2. a completed task whose file holds neither data nor errors -------------------------------

MAINTENANCE_PAGE = "<html><body>Технические работы</body></html>".encode()
NOT_YET_IN_STORAGE = [b"", b"{}", b'{"include": []}', MAINTENANCE_PAGE]


@pytest.mark.parametrize("body", NOT_YET_IN_STORAGE, ids=["empty", "empty-object", "include-only", "html"])
def test_a_file_without_data_or_errors_is_polled_and_downloaded_again(
    simulator_factory: Any, tmp_path: Path, caplog: Any, body: bytes
) -> None:
    time = FakeTime()
    protocol = _canned(Call.DOWNLOAD, body, count=2)
    with simulator_factory(protocol=protocol) as running, caplog.at_level(logging.INFO, "ekvio-test"):
        exported = _client(running, time).export(MATERIAL_STATISTICS, FULL_EXPORT, tmp_path)
        polls = running.state.requests[Call.POLL]
    assert result_records(exported.path) == list(running.dataset.payload_records(MATERIAL_STATISTICS.name))
    # The archive keeps every download, each under a name of its own that replay reads.
    downloads = [tmp_path / raw_file_name(exported.requested_at, exported.task_id, number) for number in (1, 2, 3)]
    assert sorted(tmp_path.iterdir()) == sorted(downloads) and downloads[2] == exported.path
    assert [path.read_bytes() for path in downloads[:2]] == [body, body]
    assert {parse_raw_file_name(path.name) for path in downloads} == {(exported.requested_at, exported.task_id)}
    assert polls == 3 + 2  # the task polled again before each new download
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 2
    for warning, path in zip(warnings, downloads, strict=False):
        assert f"task {exported.task_id}" in warning and f"{len(body):,} bytes" in warning and str(path) in warning
        assert f"downloading its file again in {POLL_INTERVAL:.1f} s" in warning
    assert time.sleeps == [POLL_INTERVAL] * 4  # two polls before completion, two waits before downloading again


def test_a_file_that_stays_without_data_fails_at_the_poll_timeout_naming_report_and_task(
    simulator_factory: Any, tmp_path: Path
) -> None:
    time = FakeTime()
    with (
        simulator_factory(protocol=_canned(Call.DOWNLOAD, b"", count=None)) as running,
        pytest.raises(EkvioApiError) as raised,
    ):
        _client(running, time, poll_timeout_seconds=60).export(COURSE_STATISTICS, FULL_EXPORT, tmp_path)
    (task,) = running.state.tasks
    message = str(raised.value)
    # Polls at 0, 10 and 20 s (completed), then a poll and a download at 20, 30, 40, 50 and 60 s: the
    # next would come after the 60 s the polling may take.
    assert message.startswith(f"Course (training) statistics task {task.task_id} completed, but its result file")
    assert "held neither data nor errors in 5 downloads over 60 s (EKVIO_POLL_TIMEOUT_SECONDS)" in message
    assert "an empty body, 0 bytes" in message
    (last,) = [path for path in tmp_path.iterdir() if str(path) in message]
    assert last.name.endswith(f"_task-{task.task_id}.download-5.json") and len(list(tmp_path.iterdir())) == 5


def test_a_file_cut_short_after_its_data_key_counts_as_data(simulator_factory: Any, tmp_path: Path) -> None:
    cut = b'{"data": [{"id": "1", "login": "ivan'
    with simulator_factory(protocol=_canned(Call.DOWNLOAD, cut)) as running:
        exported = _client(running).export(ATTEMPTS, FULL_EXPORT, tmp_path)
    assert exported.path.read_bytes() == cut and list(tmp_path.iterdir()) == [exported.path]


def test_errors_in_the_file_are_final_each_listed_and_the_file_stays(simulator_factory: Any, tmp_path: Path) -> None:
    errors = [
        {"code": 500, "field": "report", "message": "Report generation failed"},
        {"code": 1007, "field": "to_date", "message": "Неверный формат даты"},
    ]
    with (
        simulator_factory(protocol=_canned(Call.DOWNLOAD, json.dumps({"errors": errors}).encode())) as running,
        pytest.raises(EkvioApiError) as raised,
    ):
        _client(running).export(ATTEMPTS, FULL_EXPORT, tmp_path)
    (archived,) = tmp_path.iterdir()
    assert str(raised.value) == (
        f"Test attempts task {running.state.tasks[0].task_id}: the result file holds an error answer instead of "
        'data (Ekvio error 500 on report: "Report generation failed"; Ekvio error 1007 on to_date: '
        f'"Неверный формат даты"). The raw file stays at {archived}'
    )


def test_the_check_reads_the_top_level_keys_only(tmp_path: Path) -> None:
    """Nothing after `data` is read: the rest of this file is no JSON at all."""
    path = tmp_path / "big.json"
    path.write_bytes(b'{"include": [{"a": [1, 2]}], "data": [' + b"\x00" * (8 << 20))
    assert inspect_result_file(path).has_data
    path.write_bytes(b'{"include": [], "errors": [{"code": 1}], "data": [' + b"\x00" * 1000)
    assert inspect_result_file(path).errors == [{"code": 1}]


@pytest.mark.parametrize(
    ("body", "held"),
    [
        (b"", "an empty body"),
        (b" \n", "only white space"),
        (b"{}", "a JSON object without data or errors (no keys)"),
        (b'{"include": [], "errors": []}', "a JSON object without data or errors (keys: 'include', 'errors')"),
        (b'{"include": [1, ', "a JSON object that breaks off (keys: 'include')"),
        (b"[]", "a JSON array, not an object"),
        (b"<html><h1>502</h1></html>", "no JSON (it begins '<html><h1>502</h1></html>')"),
    ],
)
def test_what_a_file_without_data_or_errors_held_is_said(tmp_path: Path, body: bytes, held: str) -> None:
    path = tmp_path / "file.json"
    path.write_bytes(body)
    content = inspect_result_file(path)
    assert (content.has_data, content.errors, content.description) == (False, [], held)


def test_replay_reads_a_later_download_of_a_task(tmp_path: Path) -> None:
    warehouse = DuckDBWarehouse(data_dir=str(tmp_path / "data"), timezone="Europe/Moscow")
    fetched = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
    archived = warehouse.raw_dir(ATTEMPTS.name) / raw_file_name(fetched, "4711", download=3)
    archived.parent.mkdir(parents=True)
    archived.write_text(json.dumps({"data": [attempt_record("a1", "2026-11-26T10:00:00+03:00")]}), encoding="utf-8")
    _, exported, loaded = replay_raw_file(warehouse, archived)
    assert (exported.task_id, exported.requested_at, exported.path) == ("4711", fetched, archived)
    assert loaded.outcome.inserted == 1


# --- 3. EKVIO_FILE_HOST ---------------------------------------------------------------------------


def test_a_file_url_on_a_host_nobody_reaches_fails_clearly_without_a_file_host(
    simulator_factory: Any, tmp_path: Path
) -> None:
    # `.invalid` never resolves (RFC 6761), and resolvers say so at once.
    with simulator_factory(protocol=ProtocolOptions(file_url_host="http://files.invalid")) as running:
        with pytest.raises(EkvioApiError) as raised:
            _client(running).export(ATTEMPTS, FULL_EXPORT, tmp_path)
        file_requests = running.state.file_requests
    message = str(raised.value)
    assert message.startswith(f"Could not download the file of task {running.state.tasks[0].task_id} of the Test")
    assert "ConnectError" in message and f"after {FAST_RETRIES.max_attempts} attempts" in message
    assert "the file is on files.invalid, not on the API's host" in message and "set EKVIO_FILE_HOST" in message
    assert file_requests == [] and not list(tmp_path.glob("*.json"))


def test_with_the_file_host_a_refresh_loads_everything_and_no_file_host_sees_the_token(
    simulator_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    protocol = ProtocolOptions(file_url_host="http://nginx")
    with simulator_factory(file_host="127.0.0.2", protocol=protocol) as running:
        running.set_now(end_of_day(running, 1))
        settings = settings_for(monkeypatch, running, tmp_path / "data", EKVIO_FILE_HOST=running.file_url)
        refresh_days(settings, running, 0, 1)
        assert_tables_equal_truth(settings, running, end_of_day(running, 1))
        file_requests = running.state.file_requests
    assert len(file_requests) == 4  # a file per report, each fetched once
    assert {(request.host, request.had_authorization) for request in file_requests} == {("127.0.0.2", False)}


@pytest.mark.parametrize(("file_host", "gets_the_token"), [("{api}", True), ("http://localhost:{port}", False)])
def test_the_token_goes_to_the_file_host_only_when_it_is_the_apis_origin(
    simulator_factory: Any, tmp_path: Path, file_host: str, gets_the_token: bool
) -> None:
    with simulator_factory(protocol=ProtocolOptions(file_url_host="http://nginx")) as running:
        port = running.url.rsplit(":", 1)[1]
        client = _client(running, file_host=file_host.format(api=running.url, port=port))
        exported = client.export(ATTEMPTS, FULL_EXPORT, tmp_path)
        (request,) = running.state.file_requests
    assert result_records(exported.path) == list(running.dataset.payload_records(ATTEMPTS.name))
    assert request.had_authorization is gets_the_token


def test_a_failed_tasks_log_url_is_shown_on_the_file_host(simulator_factory: Any, tmp_path: Path) -> None:
    faults = FaultPlan([FaultRule("poll", "task_fail")])
    with simulator_factory(faults=faults, protocol=ProtocolOptions(file_url_host="http://nginx")) as running:
        log_on_the_file_host = rf"failed on the Ekvio side; its log is at {running.url}/files/\S+\.log$"
        with pytest.raises(EkvioApiError, match=log_on_the_file_host):
            _client(running, file_host=running.url).export(ATTEMPTS, FULL_EXPORT, tmp_path)


# --- 4. error answers whatever the HTTP status --------------------------------------------------


@pytest.mark.parametrize("status", [200, 400])
def test_the_vendors_task_already_running_file_is_waited_out(
    simulator_factory: Any, tmp_path: Path, caplog: Any, vendor_examples: Path, status: int
) -> None:
    body = (vendor_examples / "error_task_already_running.json").read_bytes()
    time = FakeTime()
    protocol = _canned(Call.CREATE, body, status=status, count=2)
    with simulator_factory(protocol=protocol) as running, caplog.at_level(logging.INFO, "ekvio-test"):
        exported = _client(running, time).export(COURSE_STATISTICS, FULL_EXPORT, tmp_path)
        creates = running.state.requests[Call.CREATE]
    assert result_records(exported.path) == list(running.dataset.payload_records(COURSE_STATISTICS.name))
    assert creates == 3
    assert sum("another Course (training) statistics task is running" in m for m in caplog.messages) == 2


@pytest.mark.parametrize("status", [200, 400])
def test_the_vendors_module_unavailable_file_fails_at_once(
    simulator_factory: Any, tmp_path: Path, vendor_examples: Path, status: int
) -> None:
    body = (vendor_examples / "error_module_unavailable.json").read_bytes()
    with simulator_factory(protocol=_canned(Call.CREATE, body, status=status, count=None)) as running:
        with pytest.raises(EkvioApiError) as raised:
            _client(running).export(COURSE_STATISTICS, FULL_EXPORT, tmp_path)
        creates = running.state.requests[Call.CREATE]
    assert creates == 1
    assert str(raised.value) == (
        "The Course (training) statistics report is not available for this company (Ekvio error 1007 on "
        'company_id: "Module {module_name} not available for company"). Ask Ekvio to enable the module for '
        "the company's API account, or leave the course_statistics asset out of the job."
    )


def test_1007_on_a_parameter_is_final_and_quotes_the_servers_message(simulator_factory: Any, tmp_path: Path) -> None:
    # A window without an offset: the simulator, as the vendor's API, cannot read it. Answered with HTTP 200.
    window = ExportWindow(datetime(2026, 11, 1), datetime(2026, 11, 2))
    with simulator_factory(protocol=ProtocolOptions(error_status=200)) as running:
        with pytest.raises(EkvioApiError) as raised:
            _client(running).export(ATTEMPTS, window, tmp_path)
        creates = running.state.requests[Call.CREATE]
    assert creates == 1  # not retried
    assert str(raised.value) == (
        "Could not create the task of the Test attempts report: "
        f'Ekvio error 1007 on after_date: "{UNREADABLE_DATE_TIME}"'
    )


def test_1007_in_russian_is_quoted_as_it_came(simulator_factory: Any, tmp_path: Path) -> None:
    message = "Неверный формат значения. Допустимый формат Y-m-d\\TH:i:sP"
    body = json.dumps({"errors": [{"code": 1007, "field": "to_date", "message": message}]}, ensure_ascii=False)
    with (
        simulator_factory(protocol=_canned(Call.CREATE, body.encode(), status=422)) as running,
        pytest.raises(EkvioApiError) as raised,
    ):
        _client(running).export(ATTEMPTS, FULL_EXPORT, tmp_path)
    assert str(raised.value).endswith(f'HTTP 422; Ekvio error 1007 on to_date: "{message}"')


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            {"code": 1007, "field": "company_id", "message": "Module not available for company"},
            "The Test attempts report is not available for this company",
        ),
        (
            {"code": 404, "field": "integration", "message": "Task not found"},
            'Could not poll task {task} of the Test attempts report: Ekvio error 404 on integration: "Task not found"',
        ),
    ],
)
def test_errors_in_a_poll_answer_with_http_200_are_errors(
    simulator_factory: Any, tmp_path: Path, error: dict[str, Any], expected: str
) -> None:
    body = json.dumps({"errors": [error]}).encode()
    with (
        simulator_factory(protocol=_canned(Call.POLL, body, status=200)) as running,
        pytest.raises(EkvioApiError) as raised,
    ):
        _client(running).export(ATTEMPTS, FULL_EXPORT, tmp_path)
    assert str(raised.value).startswith(expected.format(task=running.state.tasks[0].task_id))


# --- 5. Retry-After -------------------------------------------------------------------------------

PATIENT_RETRIES = RetryPolicy(max_attempts=4, backoff_base_seconds=1.0, backoff_cap_seconds=60.0)


@pytest.mark.parametrize(
    "retry_after",
    ["0", "-5", "Wed, 21 Oct 2015 07:28:00 GMT", "Wed, 21 Oct 2015 07:28:00", "soon", "nan", None],
    ids=["zero", "negative", "date-gone-by", "date-without-zone", "unreadable", "nan", "absent"],
)
def test_a_retry_after_that_asks_for_no_wait_leaves_it_to_the_backoff(
    simulator_factory: Any, tmp_path: Path, retry_after: str | None
) -> None:
    time = FakeTime()
    faults = FaultPlan([FaultRule("create", "http_429", count=3)])
    with simulator_factory(faults=faults, protocol=ProtocolOptions(retry_after=retry_after)) as running:
        _client(running, time, retry=PATIENT_RETRIES).export(ATTEMPTS, FULL_EXPORT, tmp_path)
    delays = time.sleeps[:3]  # the retries of the create request, before any poll
    for attempt, delay in enumerate(delays):
        assert 2**attempt / 2 <= delay <= 2**attempt, delays


@pytest.mark.parametrize(("retry_after", "expected"), [("3", 3.0), ("100000", 300.0)])
def test_a_positive_retry_after_is_honoured_up_to_the_cap(
    simulator_factory: Any, tmp_path: Path, retry_after: str, expected: float
) -> None:
    time = FakeTime()
    faults = FaultPlan([FaultRule("poll", "http_429", count=2)])
    with simulator_factory(faults=faults, protocol=ProtocolOptions(retry_after=retry_after)) as running:
        _client(running, time, retry=PATIENT_RETRIES).export(ATTEMPTS, FULL_EXPORT, tmp_path)
    assert time.sleeps[:2] == [expected, expected]


def test_the_backoff_doubles_from_its_base_with_jitter_up_to_its_cap(simulator_factory: Any, tmp_path: Path) -> None:
    time = FakeTime()
    faults = FaultPlan([FaultRule("create", "http_503", count=8)])  # a 503 carries no Retry-After
    retries = RetryPolicy(max_attempts=9, backoff_base_seconds=1.0, backoff_cap_seconds=60.0)
    with simulator_factory(faults=faults) as running:
        _client(running, time, retry=retries).export(ATTEMPTS, FULL_EXPORT, tmp_path)
    delays = time.sleeps[:8]  # the retries of the create request, before any poll
    # The README's promise: from EKVIO_RETRY_BACKOFF_SECONDS, doubling per attempt, up to 60 s.
    ceilings = [1, 2, 4, 8, 16, 32, 60, 60]
    assert all(ceiling / 2 <= delay <= ceiling for delay, ceiling in zip(delays, ceilings, strict=True)), delays
    # Jitter: each wait a share of its ceiling drawn anew, so clients that failed together do not
    # come back together.
    assert len({delay / ceiling for delay, ceiling in zip(delays, ceilings, strict=True)}) == len(ceilings), delays


# --- 6. report paths and methods ------------------------------------------------------------------

CUSTOM_ATTEMPTS = ProtocolOptions(report_routes={ATTEMPTS.name: ("POST", "/v1/custom/attempts")})


def test_a_report_at_a_configured_path_and_method_is_loaded(
    simulator_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with simulator_factory(protocol=CUSTOM_ATTEMPTS) as running:
        running.set_now(end_of_day(running, 2))
        route = {"EKVIO_ATTEMPTS_PATH": "/v1/custom/attempts", "EKVIO_ATTEMPTS_METHOD": "post"}
        settings = settings_for(monkeypatch, running, tmp_path / "data", **route)
        refresh_days(settings, running, 0, 2)
        tasks = [task for task in running.state.tasks if task.report == ATTEMPTS.name]
        assert_tables_equal_truth(settings, running, end_of_day(running, 2))
    # A POST carries its filters in the query string, with an empty JSON object as its body.
    (task,) = tasks
    assert (task.after, task.to) == (running.dataset.day_window(0)[0], end_of_day(running, 2))


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (
            {},
            "HTTP 404; not found: check EKVIO_API_URL and the report's path /v2/materials/tests/attempts "
            "(EKVIO_ATTEMPTS_PATH)",
        ),
        (
            {"report_paths": {ATTEMPTS.name: "/v1/custom/attempts"}},
            "HTTP 405; the server does not take GET at /v1/custom/attempts: set EKVIO_ATTEMPTS_METHOD (GET or POST), "
            "or EKVIO_ATTEMPTS_PATH",
        ),
    ],
    ids=["path", "method"],
)
def test_a_report_elsewhere_fails_pointing_at_the_variable_to_set(
    simulator_factory: Any, tmp_path: Path, options: dict[str, Any], expected: str
) -> None:
    with simulator_factory(protocol=CUSTOM_ATTEMPTS) as running, pytest.raises(EkvioApiError) as raised:
        _client(running, **options).export(ATTEMPTS, FULL_EXPORT, tmp_path)
    assert str(raised.value) == f"Could not create the task of the Test attempts report: {expected}"
