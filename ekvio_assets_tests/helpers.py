"""Helpers that several test modules share and conftest.py does not hold."""

from __future__ import annotations

import threading
from typing import Any


class ManualClock:
    """A monotonic clock in seconds that moves only when a test says so: waits that the code under
    test measures take no real time, and a busy machine cannot stretch them."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FirstResultFileHeld:
    """A simulator's dataset whose first result file of `report` is written only once `release` is
    set: that task stays "processing", a pause the simulator holds for as long as a test needs.

    Everything else is the wrapped dataset's (`running_simulator` takes this in its place)."""

    def __init__(self, dataset: Any, report: str, timeout_seconds: float = 600.0) -> None:
        self._dataset = dataset
        self._report = report
        self._timeout = timeout_seconds
        self._lock = threading.Lock()
        self.held = threading.Event()  # set once the held task's file is waited on
        self.release = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._dataset, name)

    def write_result_file(self, report_name: str, *args: Any, **kwargs: Any) -> int:
        with self._lock:
            hold = report_name == self._report and not self.held.is_set()
            if hold:
                self.held.set()
        if hold:
            # Bounded, so that a test that fails before releasing it does not hang the simulator's shutdown.
            self.release.wait(self._timeout)
        return self._dataset.write_result_file(report_name, *args, **kwargs)
