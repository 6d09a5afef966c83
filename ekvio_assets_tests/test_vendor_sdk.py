"""The protocol as the vendor's SDK knows it (PROTOCOL.md, its last section), one behaviour per
section, each over real HTTP on loopback against the simulator.

The client's sleep and clock are a fake one that only counts: no test waits for real time.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from ekvio_assets.api.client import FULL_EXPORT, EkvioApiError, EkvioClient, ExportWindow
from ekvio_assets.api.retries import RetryPolicy
from ekvio_assets.reports.specs import ATTEMPTS, COURSE_STATISTICS
from ekvio_assets.simulator import Call, CannedAnswer, FaultPlan, FaultRule, ProtocolOptions
from ekvio_assets_tests.test_api_client import FAST_RETRIES, _records

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
    assert _records(exported.path) == list(running.dataset.payload_records(COURSE_STATISTICS.name))
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
        f'Could not create the task of the Test attempts report: Ekvio error 1007 on after_date: "{UNREADABLE_DATE_TIME}"'
    )


def test_1007_in_russian_is_quoted_as_it_came(simulator_factory: Any, tmp_path: Path) -> None:
    message = "Неверный формат значения. Допустимый формат Y-m-d\\TH:i:sP"
    body = json.dumps({"errors": [{"code": 1007, "field": "to_date", "message": message}]}, ensure_ascii=False)
    with simulator_factory(protocol=_canned(Call.CREATE, body.encode(), status=422)) as running:
        with pytest.raises(EkvioApiError) as raised:
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
    with simulator_factory(protocol=_canned(Call.POLL, body, status=200)) as running:
        with pytest.raises(EkvioApiError) as raised:
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
