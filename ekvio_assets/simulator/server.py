"""The Ekvio simulator: an HTTP server speaking the asynchronous report protocol of PROTOCOL.md.

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

import asyncio
import contextlib
import functools
import http
import itertools
import json
import re
import secrets
import socket
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import anyio
import ijson
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Host, Route, Router
from starlette.types import Receive, Scope, Send

from ekvio_assets.reports.specs import PROGRAM_STATISTICS, REPORTS, REPORTS_BY_NAME, ReportSpec
from ekvio_assets.simulator.faults import CONTENT_FAULTS, Call, FaultKind, FaultPlan, corrupt_records
from ekvio_assets.simulator.generator import Dataset, RecordFilter, write_report_file
from ekvio_assets.simulator.protocol import FINAL_STATUSES, CannedAnswers, ProtocolOptions

# The vendor's code for a request it does not take: another task running, the module unavailable,
# a parameter it cannot read; the `field` says which.
ERROR_1007 = 1007
# What the vendor answers for a date-time it cannot read (PHP's format: no fractions, an offset).
INVALID_DATETIME = r"Invalid value format. Valid Y-m-d\TH:i:sP"
_VENDOR_DATETIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}[+-][0-9]{2}:[0-9]{2}")
MAX_FILTER_VALUES = 500
POLL_PATHS = ("/v3/integration/{task_id:int}", "/v2/integration/{task_id:int}")
# How long a completing poll waits for its result file before answering "processing" after all.
_COMPLETION_WAIT_SECONDS = 5.0
# Result files go out in pieces this big: each piece costs a trip to a worker thread, and a
# report is hundreds of megabytes.
_CHUNK_BYTES = 1 << 20
_FIRST_TASK_ID = 4_000_001
_MAINTENANCE_PAGE = "<html><body><h1>Технические работы</h1><p>Service is under maintenance</p></body></html>"
NOT_HTTP_FILE_URL = "file:///etc/passwd"  # what a FILE_URL_NOT_HTTP task answers
TRAVERSAL_FILE_NAME = "../../evil.json"  # the name a FILE_NAME_TRAVERSAL task's file suggests


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


@dataclass
class _ServedFile:
    path: Path
    report: str
    task_id: int
    media_type: str


@dataclass
class _Task:
    task_id: int
    report: str
    result: Future[Any]  # writing the result file
    result_file: _ServedFile
    last_seen: float
    status: str | None = None  # None until its first poll, or while polls answer without a status
    polls: int = 0
    stuck: bool = False  # never completes (a NEVER_COMPLETE fault)
    answer_file: str | None = None  # name of the file the poll answer points to
    file_url_fault: FaultKind | None = None  # spoils the URL of that file (FILE_URL_NOT_HTTP, ...)


class _InvalidRequest(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class _Simulator:
    """The state and the route handlers of one simulator app."""

    def __init__(
        self,
        dataset: Dataset,
        token: str,
        polls_to_complete: int,
        files_dir: Path,
        faults: FaultPlan,
        payload_files: Mapping[str, Path],
        task_idle_timeout: float,
        clock: SimulatorClock,
        file_url: str | None,
        protocol: ProtocolOptions,
    ) -> None:
        unknown = set(payload_files) - set(REPORTS_BY_NAME)
        if unknown:
            raise ValueError(f"payload_files for unknown reports: {sorted(unknown)}")
        self.state = SimulatorState()
        self.clock = clock
        self._dataset = dataset
        self._expected_authorization = f"Bearer {token}".encode()
        self._polls_to_complete = max(1, polls_to_complete)
        self._files_dir = files_dir
        self._faults = faults
        self._payload_files = {report: Path(path) for report, path in payload_files.items()}
        self._task_idle_timeout = task_idle_timeout
        self._file_url = file_url
        self._protocol = protocol
        self._canned = CannedAnswers(protocol.answers)
        self._task_ids = itertools.count(_FIRST_TASK_ID)
        self._tasks: dict[int, _Task] = {}
        self._latest_tasks: dict[str, _Task] = {}
        self._files: dict[str, _ServedFile] = {}
        self._writers = ThreadPoolExecutor(max_workers=len(REPORTS), thread_name_prefix="ekvio-simulator-writer")
        self._stop_writing = threading.Event()

    def routes(self) -> list[BaseRoute]:
        routes: list[BaseRoute] = [self._create_route(spec) for spec in REPORTS]
        routes += [Route(path, self.poll, methods=["GET"]) for path in POLL_PATHS]
        file_routes = [
            Route("/files/{name}", self.download, methods=["GET"], name="download"),
            # A storage host's way to suggest a file name: a last path segment, and Content-Disposition.
            Route("/files/{name}/{file_name:path}", self.download, methods=["GET"]),
        ]
        if self._file_url is None:
            return routes + file_routes
        # The file host serves files only, and the API's host none.
        return [Host(_hostname(self._file_url), Router(file_routes)), *routes]

    def _create_route(self, spec: ReportSpec) -> Route:
        create = functools.partial(self.create, spec)
        if spec.name in self._protocol.report_routes:
            method, path = self._protocol.report_routes[spec.name]
            return Route(path, create, methods=[method], name=f"create_{spec.name}")
        # The programme report switches to POST to carry filters in a body.
        return Route(spec.path, create, methods=sorted({spec.method, "POST"}), name=f"create_{spec.name}")

    def close(self) -> None:
        self._stop_writing.set()
        self._writers.shutdown(wait=True, cancel_futures=True)

    async def create(self, spec: ReportSpec, request: Request) -> Response:
        self._observe(request, Call.CREATE)
        if not self._authorized(request):
            return _unauthorized()
        if canned := self._take_canned(Call.CREATE, spec.name):
            return canned
        fault = self._take_fault(Call.CREATE, spec.name, None)
        if fault is FaultKind.TASK_RUNNING:
            running = self._running_task(spec.name)
            return self._another_task_answer(running.task_id if running else next(self._task_ids))
        if fault is FaultKind.MODULE_UNAVAILABLE:
            return self._refusal("company_id", f"Module {spec.title} not available for company")
        if fault is not None:
            return self._transport_fault(fault)
        try:
            after, to, record_filter = _selection(spec, request.query_params, await request.body())
        except _InvalidRequest as error:
            return self._refusal(error.field, error.message)
        running = self._running_task(spec.name)
        if running is not None:
            return self._another_task_answer(running.task_id)
        task = self._start_task(spec, after, to, record_filter)
        return JSONResponse({"data": {"integration": task.task_id}})

    async def poll(self, request: Request) -> Response:
        self._observe(request, Call.POLL)
        if not self._authorized(request):
            return _unauthorized()
        task = self._tasks.get(request.path_params["task_id"])
        if task is None:
            return _errors(404, 404, "integration", f"Task {request.path_params['task_id']} not found")
        task.last_seen = time.monotonic()
        if canned := self._take_canned(Call.POLL, task.report):
            return canned
        fault = self._take_fault(Call.POLL, task.report, task.task_id)
        if fault is FaultKind.TASK_FAIL:
            self._fail(task, "the report could not be built (simulated failure)")
        elif fault is FaultKind.NEVER_COMPLETE:
            task.stuck = True
        elif fault is FaultKind.COMPLETED_WITHOUT_FILE:
            task.status, task.answer_file = "completed", None
        elif fault in (FaultKind.FILE_URL_NOT_HTTP, FaultKind.FILE_NAME_TRAVERSAL):
            task.file_url_fault = fault
        elif fault is not None:
            return self._transport_fault(fault)
        if task.status not in FINAL_STATUSES:
            await self._advance(task)
        file_url = None if task.answer_file is None else self._answer_url(request, task)
        status = {} if task.status is None else {"status": task.status}
        return JSONResponse({"data": {**status, "file": file_url}})

    async def download(self, request: Request) -> Response:
        self._observe(request, Call.DOWNLOAD)
        self.state.record_file_request(
            FileRequest(request.url.hostname or "", request.url.path, "authorization" in request.headers)
        )
        served = self._files.get(request.path_params["name"])
        if served is None:
            return _errors(404, 404, "file", "File not found")
        if canned := self._take_canned(Call.DOWNLOAD, served.report):
            return canned
        fault = self._take_fault(Call.DOWNLOAD, served.report, served.task_id)
        if fault is None:
            return _ResultFile(served.path, media_type=served.media_type, filename=request.path_params.get("file_name"))
        if fault is FaultKind.DROP_CONNECTION:
            return _CutConnection(served)
        if fault is FaultKind.FILE_404:
            return PlainTextResponse("Not Found", status_code=404)
        if fault is FaultKind.FILE_TRUNCATED:
            size = served.path.stat().st_size // 2
            return StreamingResponse(
                _file_chunks(served.path, size), media_type=served.media_type, headers={"Content-Length": str(size)}
            )
        if fault is FaultKind.FILE_HTML:
            return HTMLResponse(_MAINTENANCE_PAGE)
        if fault is FaultKind.FILE_ERRORS:
            return JSONResponse({"errors": [{"code": 500, "field": "report", "message": "Report generation failed"}]})
        if fault in CONTENT_FAULTS:
            spoiled = await run_in_threadpool(self._spoiled_copy, fault, served)
            return _ResultFile(spoiled, media_type=served.media_type)
        return self._transport_fault(fault)

    def _answer_url(self, request: Request, task: _Task) -> str:
        """The absolute URL of the task's file: on the file host if any, else on the host the client reached."""
        if task.file_url_fault is FaultKind.FILE_URL_NOT_HTTP:
            return NOT_HTTP_FILE_URL
        if self._file_url is None:
            url = str(request.url_for("download", name=task.answer_file))
        else:
            url = f"{self._file_url}/files/{task.answer_file}"
        if task.file_url_fault is FaultKind.FILE_NAME_TRAVERSAL:
            # Quoted whole, so that clients do not resolve the dots away before sending the request.
            url += "/" + quote(TRAVERSAL_FILE_NAME, safe="")
        if self._protocol.file_url_host is not None:
            # The address the storage host knows itself by, which the client may not reach.
            url = urlunsplit(urlsplit(self._protocol.file_url_host)[:2] + urlsplit(url)[2:])
        return url

    def _observe(self, request: Request, call: Call) -> None:
        self.state.requests[call] += 1
        self.state.authorization_headers[call].append(request.headers.get("authorization"))

    def _transport_fault(self, kind: FaultKind) -> Response:
        """What a gateway answers (or does not) in front of the API."""
        if kind is FaultKind.DROP_CONNECTION:
            return _CutConnection(None)
        status = kind.http_status
        assert status is not None, f"{kind} is not a transport fault"
        title = f"{status} {http.HTTPStatus(status).phrase}"
        page = f"<html><head><title>{title}</title></head><body><center><h1>{title}</h1></center></body></html>"
        retry_after = self._protocol.retry_after
        headers = {"Retry-After": retry_after} if status == 429 and retry_after is not None else None
        return HTMLResponse(page, status, headers)

    def _refusal(self, field: str, message: str) -> Response:
        """The vendor's answer to a request it does not take: code 1007 and the field it is about."""
        return _errors(self._protocol.error_status, ERROR_1007, field, message)

    def _another_task_answer(self, running_task_id: int) -> Response:
        return self._refusal(
            "integration",
            "The integration task cannot be taken on because another asynchronous task associated with this "
            f"module is running. Running task ID: {running_task_id}",
        )

    def _take_canned(self, call: Call, report: str) -> Response | None:
        answer = self._canned.take(call, report)
        return None if answer is None else Response(answer.body, answer.status, media_type=answer.media_type)

    def _authorized(self, request: Request) -> bool:
        presented = request.headers.get("authorization", "").encode()
        return secrets.compare_digest(presented, self._expected_authorization)

    def _take_fault(self, call: Call, report: str, task_id: int | None) -> FaultKind | None:
        fault = self._faults.take(call, report)
        if fault is not None:
            self.state.record_fault(InjectedFault(call, fault, report, task_id))
        return fault

    def _running_task(self, report: str) -> _Task | None:
        """The report's task still blocking a new one; a task nobody polls stops blocking when idle."""
        task = self._latest_tasks.get(report)
        if task is None or task.status in FINAL_STATUSES:
            return None
        return task if time.monotonic() - task.last_seen <= self._task_idle_timeout else None

    def _start_task(
        self, spec: ReportSpec, after: datetime | None, to: datetime | None, record_filter: RecordFilter
    ) -> _Task:
        as_of = self.clock.now
        payload_file = self._payload_files.get(spec.name)
        result: Future[Any]
        if payload_file is None:
            path = self._files_dir / f"{secrets.token_urlsafe(16)}.json"
            result = self._writers.submit(
                self._dataset.write_result_file,
                spec.name,
                path,
                after,
                to,
                as_of=as_of,
                record_filter=record_filter,
                stop=self._stop_writing,
            )
        else:
            path = payload_file
            result = Future()
            result.set_result(None)
        task_id = next(self._task_ids)
        task = _Task(
            task_id=task_id,
            report=spec.name,
            result=result,
            result_file=_ServedFile(path, spec.name, task_id, "application/json"),
            last_seen=time.monotonic(),
        )
        self._tasks[task.task_id] = task
        self._latest_tasks[spec.name] = task
        self.state.tasks_created[spec.name] += 1
        self.state.tasks.append(CreatedTask(task.task_id, spec.name, after, to, as_of))
        return task

    async def _advance(self, task: _Task) -> None:
        task.polls += 1
        if task.polls >= self._polls_to_complete and not task.stuck:
            try:
                await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(task.result)), _COMPLETION_WAIT_SECONDS)
            except TimeoutError:
                pass  # a big file: the task stays "processing" until a later poll
            except Exception as error:
                self._fail(task, f"writing the result file failed: {error!r}")
                return
            else:
                task.status, task.answer_file = "completed", self._serve(task.result_file)
                return
        statuses = self._protocol.pending_statuses
        task.status = statuses[min(task.polls, len(statuses)) - 1]

    def _fail(self, task: _Task, reason: str) -> None:
        log = self._files_dir / f"{secrets.token_urlsafe(16)}.log"
        log.write_text(f"Integration task {task.task_id} ({task.report}) failed: {reason}\n", encoding="utf-8")
        task.status, task.answer_file = "fail", self._serve(_ServedFile(log, task.report, task.task_id, "text/plain"))

    def _serve(self, served: _ServedFile) -> str:
        """Publish a file under an unguessable name; the name is the only credential."""
        name = f"{secrets.token_urlsafe(16)}{served.path.suffix}"
        self._files[name] = served
        return name

    def _spoiled_copy(self, kind: FaultKind, served: _ServedFile) -> Path:
        spec = REPORTS_BY_NAME[served.report]
        target = self._files_dir / f"{secrets.token_urlsafe(16)}.json"
        with open(served.path, "rb") as source:
            records = ijson.items(source, "data.item", use_float=True)
            write_report_file(target, corrupt_records(kind, spec, iter(records)), {})
        return target


def _selection(
    spec: ReportSpec, query: Mapping[str, str], body: bytes
) -> tuple[datetime | None, datetime | None, RecordFilter]:
    """The window and filters of a create request, as the API would read them."""
    for name in query:
        if name not in spec.filters:
            raise _InvalidRequest(name, f"unknown parameter for the {spec.title} report")
        if name not in ("after_date", "to_date", "user_status"):
            raise _InvalidRequest(name, "the simulator does not implement this filter")
    after, to = _query_datetime(query, "after_date"), _query_datetime(query, "to_date")
    if after is not None and to is not None and after > to:
        raise _InvalidRequest("to_date", "to_date is before after_date")
    user_status = query.get("user_status")
    if user_status not in (None, "active", "blocked"):
        raise _InvalidRequest("user_status", "user_status must be active or blocked")
    body_filters = _body_filters(spec, body)
    record_filter = RecordFilter(
        logins=body_filters.get("login"),
        program_ids=body_filters.get("program"),
        category_ids=body_filters.get("category"),
        user_status=user_status,
    )
    return after, to, record_filter


def _query_datetime(query: Mapping[str, str], name: str) -> datetime | None:
    value = query.get(name)
    if value is None:
        return None
    if not _VENDOR_DATETIME.fullmatch(value):
        raise _InvalidRequest(name, INVALID_DATETIME)
    try:
        return datetime.fromisoformat(value)
    except ValueError:  # the right shape, but no such day or time
        raise _InvalidRequest(name, INVALID_DATETIME) from None


_BODY_FILTER_TYPES = {"login": str, "program": int, "category": int}


def _body_filters(spec: ReportSpec, body: bytes) -> dict[str, frozenset[Any]]:
    """`{"filters": {"login": [...], "program": [...], "category": [...]}}`, each list at most 500 long."""
    if not body.strip():
        return {}
    try:
        document = json.loads(body)
    except ValueError:
        raise _InvalidRequest("filters", "the request body is not JSON") from None
    filters = document.get("filters", {}) if isinstance(document, dict) else {} if document is None else None
    if not isinstance(filters, dict):
        raise _InvalidRequest("filters", 'the body must be {"filters": {...}}')
    parsed = {}
    for name, values in filters.items():
        field = f"filters.{name}"
        value_type = _BODY_FILTER_TYPES.get(name)
        if value_type is None:
            raise _InvalidRequest(field, "unknown filter")
        if name != "login" and spec is not PROGRAM_STATISTICS:
            raise _InvalidRequest(field, f"the {spec.title} report has no {name} filter")
        if not isinstance(values, list) or not all(
            isinstance(value, value_type) and not isinstance(value, bool) for value in values
        ):
            raise _InvalidRequest(field, f"{name} must be a list of {value_type.__name__} values")
        if len(values) > MAX_FILTER_VALUES:
            raise _InvalidRequest(field, f"{name} holds {len(values)} values, at most {MAX_FILTER_VALUES} are allowed")
        parsed[name] = frozenset(values)
    return parsed


def _errors(status: int, code: int, field: str, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return JSONResponse({"errors": [{"code": code, "field": field, "message": message}]}, status, headers)


def _unauthorized() -> Response:
    return _errors(401, 401, "authorization", "Unauthorized", {"WWW-Authenticate": "Bearer"})


class _ResultFile(FileResponse):
    chunk_size = _CHUNK_BYTES


async def _file_chunks(path: Path, limit: int) -> AsyncIterator[bytes]:
    """The first `limit` bytes of a file, in chunks."""
    remaining = limit
    async with await anyio.open_file(path, "rb") as file:
        while remaining > 0:
            chunk = await file.read(min(_CHUNK_BYTES, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
            yield chunk


class _CutConnection(Response):
    """Closes the connection without an answer, or (given a file) after half of the file's body."""

    def __init__(self, served: _ServedFile | None) -> None:
        super().__init__()
        self._served = served

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._served is not None:
            size = self._served.path.stat().st_size
            headers = [(b"content-type", self._served.media_type.encode()), (b"content-length", str(size).encode())]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            async for chunk in _file_chunks(self._served.path, size // 2):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        _transport(receive).close()
        # Returning before the server has seen the connection go would make it log an incomplete answer.
        while (await receive())["type"] != "http.disconnect":
            pass


def _transport(receive: Receive) -> asyncio.BaseTransport:
    # ASGI has no message that drops a connection. Uvicorn's `receive` is a method of the request
    # cycle, which holds the connection's transport (an asyncio or a uvloop one).
    transport = getattr(getattr(receive, "__self__", None), "transport", None)
    if not callable(getattr(transport, "close", None)):
        raise RuntimeError("dropping a connection needs the simulator to run under uvicorn")
    return transport  # type: ignore[return-value]


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
) -> Starlette:
    """The simulator as a Starlette app; `app.state.simulator` is its `SimulatorState`, `app.state.clock`
    its `SimulatorClock`, starting at `now` (None: tasks see the final state of the data set).

    Result files are written to `files_dir`. `payload_files` serves a given file verbatim as the
    result of a report (any window). A task nobody polls for `task_idle_timeout` seconds no longer
    blocks a new task of its report. Given `file_url` (e.g. `http://127.0.0.2:8001`), poll answers
    point there, requests addressed to its host get the files and nothing else, and the API's host
    serves no files. `protocol` chooses among the answers real installations give (statuses,
    `Retry-After`, error statuses, file URL hosts, report routes, canned answers).
    """
    simulator = _Simulator(
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
        if file_url is not None and _hostname(file_url) == _hostname(url):
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
        )
        config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=2)
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


def _hostname(url: str) -> str:
    hostname = urlsplit(url).hostname
    if hostname is None:
        raise ValueError(f"{url!r} names no host")
    return hostname


def _wait_until_started(server: uvicorn.Server, thread: threading.Thread, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the Ekvio simulator failed to start (see the uvicorn log above)")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the Ekvio simulator did not start within {timeout:.0f} s")
        time.sleep(0.01)
