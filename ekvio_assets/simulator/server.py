"""The Ekvio simulator: an HTTP server speaking the asynchronous report protocol of PROTOCOL.md.

`create_app` builds its Starlette app from the routes (`routes`); `running_simulator` serves it on
loopback in a background thread.

Every report of `ekvio_assets.reports.specs.REPORTS` gets its create route; a task is polled on
`/v3/integration/{id}` (or `/v2/...`) and completes at its `polls_to_complete`-th poll with the
absolute URL of its result file, served under `/files/<random name>` without a token, as a storage
host would: by the API's own host, or by a host of its own (`file_url`), as large companies' files
are. A `FaultPlan` makes chosen calls fail the ways the real API and its network do; the state
records every fault injected and every file request. `ProtocolOptions` choose among the answers
that real installations give where they differ (see `protocol.py`).

The simulator has a settable clock: a task takes its data as of the clock's "now" when it is
created (no "now": the final state of the data set), so tests can play days of a company's life.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import datetime
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from ekvio_assets.simulator.dataset import Dataset
from ekvio_assets.simulator.faults import FaultPlan
from ekvio_assets.simulator.protocol import ProtocolOptions
from ekvio_assets.simulator.routes import Simulator, hostname
from ekvio_assets.simulator.server_state import SimulatorClock, SimulatorState


def create_app(
    dataset: Dataset,
    *,
    token: str,
    polls_to_complete: int = 3,
    files_dir: Path,
    faults: FaultPlan | None = None,
    payload_files: Mapping[str, Path] | None = None,
    task_idle_timeout: float = 30.0,
    now: datetime | None = None,
    file_url: str | None = None,
    protocol: ProtocolOptions | None = None,
    idle_clock: Callable[[], float] = time.monotonic,
) -> Starlette:
    """The simulator as a Starlette app; `app.state.simulator` is its `SimulatorState`, `app.state.clock`
    its `SimulatorClock`, starting at `now` (None: tasks see the final state of the data set).

    Result files are written to `files_dir`. `payload_files` serves a given file verbatim as the
    result of a report (any window). A task nobody polls for `task_idle_timeout` seconds no longer
    blocks a new task of its report. Given `file_url` (e.g. `http://127.0.0.2:8001`), poll answers
    point there, requests addressed to its host get the files and nothing else, and the API's host
    serves no files. `protocol` chooses among the answers real installations give (statuses,
    `Retry-After`, error statuses, file URL hosts, report routes, canned answers). `idle_clock`
    (seconds, monotonic) measures how long a task went unpolled: a test moves it instead of sleeping.
    """
    simulator = Simulator(
        dataset,
        token,
        polls_to_complete,
        Path(files_dir),
        faults or FaultPlan(),
        payload_files or {},
        task_idle_timeout,
        SimulatorClock(now),
        file_url,
        protocol or ProtocolOptions(),
        idle_clock,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        simulator.close()

    app = Starlette(routes=simulator.routes(), lifespan=lifespan)
    app.state.simulator = simulator.state
    app.state.clock = simulator.clock
    return app


@dataclass(frozen=True)
class RunningSimulator:
    url: str  # base URL, e.g. http://127.0.0.1:54321
    token: str = dataclass_field(repr=False)
    state: SimulatorState
    dataset: Dataset
    files_dir: Path
    clock: SimulatorClock
    file_url: str | None = None  # base URL of the file host, e.g. http://127.0.0.2:54322; None: `url`

    @property
    def now(self) -> datetime | None:
        """The moment new tasks take their data as of; None: the final state."""
        return self.clock.now

    def set_now(self, now: datetime | None) -> None:
        """Move the simulator's clock (thread-safe); tasks created before keep their moment."""
        self.clock.set(now)


@contextlib.contextmanager
def running_simulator(
    dataset: Dataset,
    *,
    token: str | None = None,
    port: int = 0,
    host: str = "127.0.0.1",
    polls_to_complete: int = 3,
    faults: FaultPlan | None = None,
    payload_files: Mapping[str, Path] | None = None,
    task_idle_timeout: float = 30.0,
    now: datetime | None = None,
    file_host: str | None = None,
    protocol: ProtocolOptions | None = None,
    idle_clock: Callable[[], float] = time.monotonic,
) -> Iterator[RunningSimulator]:
    """Run the simulator on `host:port` (0: a free port) in a background thread until the block ends.

    Given `file_host` (another address than `host`, e.g. 127.0.0.2: Linux routes all of 127/8 to
    loopback), the result files are served there, on a free port, as by a separate storage host.
    """
    token = token or secrets.token_urlsafe(24)
    with contextlib.ExitStack() as stack:
        files_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ekvio-simulator-")))
        sockets = [stack.enter_context(_bound_socket(host, port))]
        if file_host is not None:
            sockets.append(stack.enter_context(_bound_socket(file_host, 0)))
        url, *file_urls = [_base_url(sock) for sock in sockets]
        file_url = file_urls[0] if file_urls else None
        if file_url is not None and hostname(file_url) == hostname(url):
            raise ValueError(f"the file host must be another address than the API's {host}")
        app = create_app(
            dataset,
            token=token,
            polls_to_complete=polls_to_complete,
            files_dir=files_dir,
            faults=faults,
            payload_files=payload_files,
            task_idle_timeout=task_idle_timeout,
            now=now,
            file_url=file_url,
            protocol=protocol,
            idle_clock=idle_clock,
        )
        # log_config=None: uvicorn's own logging config closes every logging handler of the process the
        # simulator runs in (a Dagster run, a test worker), each time a simulator starts.
        config = uvicorn.Config(
            app, log_level="warning", access_log=False, timeout_graceful_shutdown=2, log_config=None
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": sockets}, name="ekvio-simulator", daemon=True)
        thread.start()
        try:
            _wait_until_started(server, thread)
            yield RunningSimulator(url, token, app.state.simulator, dataset, files_dir, app.state.clock, file_url)
        finally:
            server.should_exit = True
            thread.join()


@contextlib.contextmanager
def _bound_socket(host: str, port: int) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    with sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        yield sock


def _base_url(sock: socket.socket) -> str:
    bound_host, bound_port = sock.getsockname()[:2]
    url_host = f"[{bound_host}]" if ":" in bound_host else bound_host
    return f"http://{url_host}:{bound_port}"


def _wait_until_started(server: uvicorn.Server, thread: threading.Thread, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the Ekvio simulator failed to start (see the uvicorn log above)")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the Ekvio simulator did not start within {timeout:.0f} s")
        time.sleep(0.01)
