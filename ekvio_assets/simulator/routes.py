"""The Ekvio simulator's route handlers and task state: create, poll and download (see `server`).

A task's result file is written on a worker thread as soon as the task is created; the poll that
completes the task waits for it a little, then answers "processing" until it is written.
"""

from __future__ import annotations

import asyncio
import functools
import http
import itertools
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import ijson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Host, Route, Router

from ekvio_assets.reports.specs import REPORTS, REPORTS_BY_NAME, ReportSpec
from ekvio_assets.simulator.dataset import Dataset, RecordFilter
from ekvio_assets.simulator.faults import CONTENT_FAULTS, Call, FaultKind, FaultPlan, corrupt_records
from ekvio_assets.simulator.protocol import FINAL_STATUSES, CannedAnswers, ProtocolOptions
from ekvio_assets.simulator.request_selection import InvalidRequest, request_selection
from ekvio_assets.simulator.responses import (
    CutConnection,
    ResultFile,
    ServedFile,
    errors,
    file_chunks,
    unauthorized,
)
from ekvio_assets.simulator.result_file import record_texts, write_report_file
from ekvio_assets.simulator.server_state import CreatedTask, FileRequest, InjectedFault, SimulatorClock, SimulatorState

# The vendor's code for a request it does not take: another task running, the module unavailable,
# a parameter it cannot read; the `field` says which.
ERROR_1007 = 1007
POLL_PATHS = ("/v3/integration/{task_id:int}", "/v2/integration/{task_id:int}")
# How long a completing poll waits for its result file before answering "processing" after all.
_COMPLETION_WAIT_SECONDS = 5.0
_FIRST_TASK_ID = 4_000_001
_MAINTENANCE_PAGE = "<html><body><h1>Технические работы</h1><p>Service is under maintenance</p></body></html>"
NOT_HTTP_FILE_URL = "file:///etc/passwd"  # what a FILE_URL_NOT_HTTP task answers
TRAVERSAL_FILE_NAME = "../../evil.json"  # the name a FILE_NAME_TRAVERSAL task's file suggests


@dataclass
class _Task:
    task_id: int
    report: str
    result: Future[Any]  # writing the result file
    result_file: ServedFile
    last_seen: float
    status: str | None = None  # None until its first poll, or while polls answer without a status
    polls: int = 0
    stuck: bool = False  # never completes (a NEVER_COMPLETE fault)
    answer_file: str | None = None  # name of the file the poll answer points to
    file_url_fault: FaultKind | None = None  # spoils the URL of that file (FILE_URL_NOT_HTTP, ...)


class Simulator:
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
        idle_clock: Callable[[], float] = time.monotonic,
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
        self._idle_clock = idle_clock
        self._file_url = file_url
        self._protocol = protocol
        self._canned = CannedAnswers(protocol.answers)
        self._task_ids = itertools.count(_FIRST_TASK_ID)
        self._tasks: dict[int, _Task] = {}
        self._latest_tasks: dict[str, _Task] = {}
        self._files: dict[str, ServedFile] = {}
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
        return [Host(hostname(self._file_url), Router(file_routes)), *routes]

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
            return unauthorized()
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
            after, to, record_filter = request_selection(spec, request.query_params, await request.body())
        except InvalidRequest as error:
            return self._refusal(error.field, error.message)
        running = self._running_task(spec.name)
        if running is not None:
            return self._another_task_answer(running.task_id)
        task = self._start_task(spec, after, to, record_filter)
        return JSONResponse({"data": {"integration": task.task_id}})

    async def poll(self, request: Request) -> Response:
        self._observe(request, Call.POLL)
        if not self._authorized(request):
            return unauthorized()
        task = self._tasks.get(request.path_params["task_id"])
        if task is None:
            return errors(404, 404, "integration", f"Task {request.path_params['task_id']} not found")
        task.last_seen = self._idle_clock()
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
            return errors(404, 404, "file", "File not found")
        if canned := self._take_canned(Call.DOWNLOAD, served.report):
            return canned
        fault = self._take_fault(Call.DOWNLOAD, served.report, served.task_id)
        if fault is None:
            return ResultFile(served.path, media_type=served.media_type, filename=request.path_params.get("file_name"))
        if fault is FaultKind.DROP_CONNECTION:
            return CutConnection(served)
        if fault is FaultKind.FILE_404:
            return PlainTextResponse("Not Found", status_code=404)
        if fault is FaultKind.FILE_TRUNCATED:
            size = served.path.stat().st_size // 2
            return StreamingResponse(
                file_chunks(served.path, size), media_type=served.media_type, headers={"Content-Length": str(size)}
            )
        if fault is FaultKind.FILE_HTML:
            return HTMLResponse(_MAINTENANCE_PAGE)
        if fault is FaultKind.FILE_ERRORS:
            return JSONResponse({"errors": [{"code": 500, "field": "report", "message": "Report generation failed"}]})
        if fault in CONTENT_FAULTS:
            spoiled = await run_in_threadpool(self._spoiled_copy, fault, served)
            return ResultFile(spoiled, media_type=served.media_type)
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
            return CutConnection(None)
        status = kind.http_status
        assert status is not None, f"{kind} is not a transport fault"
        title = f"{status} {http.HTTPStatus(status).phrase}"
        page = f"<html><head><title>{title}</title></head><body><center><h1>{title}</h1></center></body></html>"
        retry_after = self._protocol.retry_after
        headers = {"Retry-After": retry_after} if status == 429 and retry_after is not None else None
        return HTMLResponse(page, status, headers)

    def _refusal(self, field: str, message: str) -> Response:
        """The vendor's answer to a request it does not take: code 1007 and the field it is about."""
        return errors(self._protocol.error_status, ERROR_1007, field, message)

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
        return task if self._idle_clock() - task.last_seen <= self._task_idle_timeout else None

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
            result_file=ServedFile(path, spec.name, task_id, "application/json"),
            last_seen=self._idle_clock(),
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
        task.status, task.answer_file = "fail", self._serve(ServedFile(log, task.report, task.task_id, "text/plain"))

    def _serve(self, served: ServedFile) -> str:
        """Publish a file under an unguessable name; the name is the only credential."""
        name = f"{secrets.token_urlsafe(16)}{served.path.suffix}"
        self._files[name] = served
        return name

    def _spoiled_copy(self, kind: FaultKind, served: ServedFile) -> Path:
        spec = REPORTS_BY_NAME[served.report]
        target = self._files_dir / f"{secrets.token_urlsafe(16)}.json"
        with open(served.path, "rb") as source:
            records = ijson.items(source, "data.item", use_float=True)
            write_report_file(target, record_texts(corrupt_records(kind, spec, iter(records))), {})
        return target


def hostname(url: str) -> str:
    hostname = urlsplit(url).hostname
    if hostname is None:
        raise ValueError(f"{url!r} names no host")
    return hostname
