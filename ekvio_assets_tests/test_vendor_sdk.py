"""The protocol as the vendor's SDK knows it (PROTOCOL.md, its last section), one behaviour per
section, each over real HTTP on loopback against the simulator.

The client's sleep and clock are a fake one that only counts: no test waits for real time.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from ekvio_assets.api.client import FULL_EXPORT, EkvioClient
from ekvio_assets.api.retries import RetryPolicy
from ekvio_assets.reports.specs import ATTEMPTS
from ekvio_assets.simulator import FaultPlan, FaultRule, ProtocolOptions
from ekvio_assets_tests.test_api_client import FAST_RETRIES

POLL_INTERVAL = 10.0


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
