"""The Ekvio client against the simulator over real HTTP on loopback."""

from __future__ import annotations

import logging
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from ekvio_assets.api.client import EkvioApiError, EkvioClient
from ekvio_assets.api.retries import RetryPolicy
from ekvio_assets.api.windows import FULL_EXPORT, ExportWindow
from ekvio_assets.reports.specs import ATTEMPTS, COURSE_STATISTICS, MATERIAL_STATISTICS, REPORTS
from ekvio_assets.simulator import Call, CannedAnswer, FaultPlan, FaultRule, ProtocolOptions
from ekvio_assets_tests.conftest import FAST_RETRIES, TEST_TOKEN, result_records

# Enough attempts that a retried refusal would show; the delays are short because none should happen.
PATIENT_RETRIES = RetryPolicy(max_attempts=6, backoff_base_seconds=0.01, backoff_cap_seconds=0.05)


def _client(running: Any, **options: Any) -> EkvioClient:
    options.setdefault("poll_interval_seconds", 0.01)
    # Generous: only the tests of giving up set them short.
    options.setdefault("poll_timeout_seconds", 300)
    options.setdefault("busy_wait_timeout_seconds", 300)
    options.setdefault("retry", FAST_RETRIES)
    return EkvioClient(running.url, options.pop("token", running.token), log=logging.getLogger("ekvio-test"), **options)


@pytest.mark.parametrize("spec", REPORTS, ids=lambda spec: spec.name)
def test_every_report_round_trips_to_the_raw_archive(simulator: Any, tmp_path: Path, spec: Any) -> None:
    client = _client(simulator)
    exported = client.export(spec, FULL_EXPORT, tmp_path / spec.name)
    assert exported.path.parent == tmp_path / spec.name and exported.path.stat().st_size == exported.size_bytes
    assert exported.path.name.endswith(f"_task-{exported.task_id}.json")
    assert not list(exported.path.parent.glob("*.part"))
    assert result_records(exported.path) == list(simulator.dataset.payload_records(spec.name))


def test_a_window_is_sent_as_after_date_and_to_date(simulator: Any, tmp_path: Path) -> None:
    dataset = simulator.dataset
    zone = ZoneInfo(dataset.config.timezone)
    after = datetime.combine(dataset.config.start + timedelta(days=3), time(), zone)
    window = ExportWindow(after, after + timedelta(days=5))
    exported = _client(simulator).export(ATTEMPTS, window, tmp_path)
    expected = list(dataset.payload_records(ATTEMPTS.name, after=window.after, to=window.to))
    assert result_records(exported.path) == expected
    assert 0 < len(expected) < len(list(dataset.payload_records(ATTEMPTS.name)))


def test_another_running_task_is_waited_out(simulator_factory: Any, tmp_path: Path, caplog: Any) -> None:
    faults = FaultPlan([FaultRule("create", "task_running", count=2)])
    with simulator_factory(faults=faults) as running, caplog.at_level(logging.INFO, "ekvio-test"):
        exported = _client(running).export(COURSE_STATISTICS, FULL_EXPORT, tmp_path)
    assert result_records(exported.path)
    assert sum("another Course (training) statistics task is running" in m for m in caplog.messages) == 2


def test_a_task_that_keeps_running_elsewhere_fails_after_the_bounded_wait(
    simulator_factory: Any, tmp_path: Path
) -> None:
    faults = FaultPlan([FaultRule("create", "task_running", count=1000)])
    with simulator_factory(faults=faults) as running, pytest.raises(EkvioApiError, match="kept running"):
        _client(running, busy_wait_timeout_seconds=0.2).export(ATTEMPTS, FULL_EXPORT, tmp_path)


def test_a_failed_task_names_its_id(simulator_factory: Any, tmp_path: Path) -> None:
    with (
        simulator_factory(faults=FaultPlan([FaultRule("poll", "task_fail")])) as running,
        pytest.raises(EkvioApiError, match=r"Test attempts task \d+ failed on the Ekvio side"),
    ):
        _client(running).export(ATTEMPTS, FULL_EXPORT, tmp_path)


def test_a_task_completed_without_a_file_is_an_error(simulator_factory: Any, tmp_path: Path) -> None:
    with (
        simulator_factory(faults=FaultPlan([FaultRule("poll", "completed_without_file")])) as running,
        pytest.raises(EkvioApiError, match=r"task \d+ completed without a result file URL"),
    ):
        _client(running).export(ATTEMPTS, FULL_EXPORT, tmp_path)


def test_a_task_that_never_completes_times_out(simulator_factory: Any, tmp_path: Path) -> None:
    with (
        simulator_factory(faults=FaultPlan([FaultRule("poll", "never_complete", count=None)])) as running,
        pytest.raises(EkvioApiError, match=r"task \d+ did not complete within 1 s"),
    ):
        _client(running, poll_interval_seconds=0.05, poll_timeout_seconds=1).export(ATTEMPTS, FULL_EXPORT, tmp_path)


@pytest.mark.parametrize("call", ["create", "poll", "download"])
def test_gateway_errors_are_retried(simulator_factory: Any, tmp_path: Path, call: str) -> None:
    with simulator_factory(faults=FaultPlan([FaultRule(call, "http_502")])) as running:
        exported = _client(running).export(MATERIAL_STATISTICS, FULL_EXPORT, tmp_path)
        assert result_records(exported.path) == list(running.dataset.payload_records(MATERIAL_STATISTICS.name))


def test_retries_are_bounded(simulator_factory: Any, tmp_path: Path) -> None:
    with (
        simulator_factory(faults=FaultPlan([FaultRule("poll", "http_503", count=10)])) as running,
        pytest.raises(EkvioApiError, match=r"poll task \d+ of the Test attempts report: HTTP 503 after 4 attempts"),
    ):
        _client(running).export(ATTEMPTS, FULL_EXPORT, tmp_path)


def test_a_wrong_token_fails_at_once_without_showing_it(simulator: Any, tmp_path: Path, caplog: Any) -> None:
    wrong = "wrong-token-visible-if-leaked"
    with (
        caplog.at_level(logging.DEBUG),
        pytest.raises(EkvioApiError, match="HTTP 401; the API token was refused") as raised,
    ):
        _client(simulator, token=wrong).export(ATTEMPTS, FULL_EXPORT, tmp_path)
    assert wrong not in str(raised.value) and wrong not in caplog.text
    assert TEST_TOKEN not in caplog.text


def test_an_unavailable_module_says_what_to_do(simulator_factory: Any, tmp_path: Path) -> None:
    faults = FaultPlan([FaultRule("create", "module_unavailable", count=None, report=COURSE_STATISTICS.name)])
    with simulator_factory(faults=faults) as running:
        with pytest.raises(
            EkvioApiError, match="Course .* report is not available for this company .*enable the module"
        ):
            _client(running).export(COURSE_STATISTICS, FULL_EXPORT, tmp_path)
        assert result_records(_client(running).export(ATTEMPTS, FULL_EXPORT, tmp_path / "a").path)


def test_the_v2_task_status_path_can_be_configured(simulator: Any, tmp_path: Path) -> None:
    client = _client(simulator, task_status_path="/v2/integration/{task_id}")
    exported = client.export(ATTEMPTS, FULL_EXPORT, tmp_path)
    assert result_records(exported.path) == list(simulator.dataset.payload_records(ATTEMPTS.name))


REFUSALS = [
    (Call.CREATE, 401, "the API token was refused"),
    (Call.CREATE, 403, "the API token lacks permission for this report"),
    (Call.CREATE, 404, "not found: check EKVIO_API_URL"),
    (Call.POLL, 401, "the API token was refused"),
    (Call.POLL, 403, "the API token lacks permission for this report"),
    (Call.POLL, 404, "not found: check EKVIO_API_URL"),
    (Call.DOWNLOAD, 403, "the API token lacks permission"),
    (Call.DOWNLOAD, 404, "not found"),
]


@pytest.mark.parametrize(("call", "status", "cause"), REFUSALS, ids=[f"{c}-{s}" for c, s, _ in REFUSALS])
def test_a_refusal_fails_after_one_attempt_naming_its_cause(
    simulator_factory: Any, tmp_path: Path, call: Call, status: int, cause: str
) -> None:
    # Every attempt would be refused alike (count=None): one request is all the client may send.
    refusal = CannedAnswer(call, b'{"message": "refused"}', status=status, count=None)
    with (
        simulator_factory(protocol=ProtocolOptions(answers=(refusal,))) as running,
        pytest.raises(EkvioApiError, match=f"HTTP {status}") as raised,
    ):
        _client(running, retry=PATIENT_RETRIES).export(ATTEMPTS, FULL_EXPORT, tmp_path)
    assert running.state.requests[call] == 1, running.state.requests
    assert cause in str(raised.value) and f"HTTP {status} after" not in str(raised.value)


def test_a_wrong_token_is_sent_once(simulator: Any, tmp_path: Path) -> None:
    with pytest.raises(EkvioApiError, match="HTTP 401"):
        _client(simulator, token="wrong-token", retry=PATIENT_RETRIES).export(ATTEMPTS, FULL_EXPORT, tmp_path)
    assert simulator.state.requests == {Call.CREATE: 1}
