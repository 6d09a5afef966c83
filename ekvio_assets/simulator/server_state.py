"""What a running simulator saw and did, and its clock: read by tests while the server runs."""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import datetime

from ekvio_assets.simulator.faults import Call, FaultKind


@dataclass(frozen=True)
class CreatedTask:
    """A report task the simulator created: what it was asked for and the moment its data is as of."""

    task_id: int
    report: str
    after: datetime | None  # the window [after, to) as requested (after_date, to_date)
    to: datetime | None
    as_of: datetime | None  # the clock's "now" at creation; None: the final state


class SimulatorClock:
    """The simulator's "now", which new tasks take their data as of; None means the end of the period.

    Thread-safe: tests move it while the server runs in its own thread.
    """

    def __init__(self, now: datetime | None = None) -> None:
        self._lock = threading.Lock()
        self._now: datetime | None = None
        self.set(now)

    @property
    def now(self) -> datetime | None:
        with self._lock:
            return self._now

    def set(self, now: datetime | None) -> None:
        if now is not None and now.utcoffset() is None:
            raise ValueError("the simulator's now must be an aware datetime")
        with self._lock:
            self._now = now


@dataclass(frozen=True)
class InjectedFault:
    call: Call
    kind: FaultKind
    report: str
    task_id: int | None  # the polled task or the task of the downloaded file; None on create


@dataclass(frozen=True)
class FileRequest:
    """A request a file route received: the host it was sent to and whether it carried credentials."""

    host: str  # as the client addressed it (the Host header), without the port
    path: str
    had_authorization: bool


@dataclass
class SimulatorState:
    """What the simulator saw and did, for tests to check.

    The server's thread records faults and file requests while a test's thread reads them:
    `faults_injected` and `file_requests` are copies taken under a lock.
    """

    tasks_created: Counter[str] = dataclass_field(default_factory=Counter)  # by report name
    tasks: list[CreatedTask] = dataclass_field(default_factory=list)  # in order of creation
    requests: Counter[Call] = dataclass_field(default_factory=Counter)
    # The Authorization header of every request (None when absent), by call kind; kept out of repr
    # so that printing the state never shows a token.
    authorization_headers: defaultdict[Call, list[str | None]] = dataclass_field(
        default_factory=lambda: defaultdict(list), repr=False
    )
    _lock: threading.Lock = dataclass_field(default_factory=threading.Lock, init=False, repr=False)
    _faults_injected: list[InjectedFault] = dataclass_field(default_factory=list, init=False)
    _file_requests: list[FileRequest] = dataclass_field(default_factory=list, init=False)

    @property
    def faults_injected(self) -> list[InjectedFault]:
        """Every fault injected so far, in order."""
        with self._lock:
            return list(self._faults_injected)

    @property
    def file_requests(self) -> list[FileRequest]:
        """Every request for a result or log file so far, in order."""
        with self._lock:
            return list(self._file_requests)

    def record_fault(self, fault: InjectedFault) -> None:
        with self._lock:
            self._faults_injected.append(fault)

    def record_file_request(self, request: FileRequest) -> None:
        with self._lock:
            self._file_requests.append(request)
