"""The Ekvio report-task protocol over httpx: create a task, poll it, stream its file to disk.

It follows the protocol as the vendor's own SDK knows it (PROTOCOL.md): only `completed` and `fail`
end a task; a completed task whose file holds neither `data` nor `errors` (not in storage yet) is
polled and downloaded again; error answers are read whatever the HTTP status (`errors.py`); result
file URLs may be moved to a configured file host (`result_files.py`). Transient faults (connection
errors, timeouts, 429/500/502/503/504) are retried with exponential backoff and jitter, honouring a
positive `Retry-After` (`retries.py`); every other failure raises `EkvioApiError` with a message
that names the report, the task and the cause. The token is a header of the API client only: it is
sent to the API's own origin and to nothing else, and no message ever contains it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit

import httpx

from ekvio_assets.api.errors import (
    MODULE_UNAVAILABLE,
    TASK_RUNNING,
    EkvioApiError,
    describe_errors,
    ekvio_errors,
    has_1007_on,
    module_unavailable,
)
from ekvio_assets.api.result_files import ResultContent, inspect_result_file, same_origin, with_file_host
from ekvio_assets.api.retries import (
    RetryPolicy,
    TransientError,
    UntrustedCertificate,
    raise_if_transient,
    transient_faults,
)
from ekvio_assets.api.setting_names import API_URL, FILE_HOST, report_method_variable, report_path_variable
from ekvio_assets.api.windows import ExportWindow
from ekvio_assets.storage.archive import TASK_ID, raw_file_name

TASK_STATUS_PATH = "/v3/integration/{task_id}"
# Frozen, so one instance may be every client's default.
DEFAULT_RETRY_POLICY = RetryPolicy()


class ReportEndpoint(Protocol):
    """What the client needs of a report: its name (for settings and logs), the title its messages
    use, and where and how its tasks are created (a setting may override both per report name)."""

    @property
    def name(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def method(self) -> str: ...


@dataclass(frozen=True)
class ExportedFile:
    report: str
    task_id: str
    path: Path
    size_bytes: int
    requested_at: datetime


class EkvioClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        poll_interval_seconds: float,
        poll_timeout_seconds: float,
        busy_wait_timeout_seconds: float = 900.0,
        request_timeout_seconds: float = 120.0,
        retry: RetryPolicy = DEFAULT_RETRY_POLICY,
        report_paths: Mapping[str, str] | None = None,
        report_methods: Mapping[str, str] | None = None,
        task_status_path: str = TASK_STATUS_PATH,
        file_host: str | None = None,
        log: logging.Logger | Any = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._poll_interval = poll_interval_seconds
        self._poll_timeout = poll_timeout_seconds
        self._busy_wait_timeout = busy_wait_timeout_seconds
        self._retry = retry
        self._report_paths = dict(report_paths or {})
        self._report_methods = {report: method.upper() for report, method in (report_methods or {}).items()}
        self._task_status_path = task_status_path
        self._file_host = file_host
        self._log = log or logging.getLogger(__name__)
        self._sleep = sleep
        self._clock = clock
        timeout = httpx.Timeout(request_timeout_seconds, connect=min(30.0, request_timeout_seconds))
        json_headers = {"Accept": "application/json"}
        # httpx's own verifying context, built once for both clients: each context loads the trusted
        # certificates anew (about 30 ms, as long as a day's export from the simulator takes).
        tls = httpx.create_ssl_context()
        self._api = httpx.Client(
            base_url=self._base_url,
            # PROTOCOL.md: every API request says it speaks JSON, GETs included.
            headers={**json_headers, "Content-Type": "application/json", "Authorization": f"Bearer {token}"},
            timeout=timeout,
            verify=tls,
        )
        # Result files may live on a storage host: that client never carries the token.
        self._files = httpx.Client(headers=json_headers, timeout=timeout, follow_redirects=True, verify=tls)

    def close(self) -> None:
        self._api.close()
        self._files.close()

    def export(self, report: ReportEndpoint, window: ExportWindow, destination_dir: Path) -> ExportedFile:
        """Create the task, then poll it and download its file until the file holds data.

        A file with neither `data` nor `errors` is not written to storage yet (the vendor's SDK reads
        it so): the task is polled and its file downloaded again, every poll interval, within the
        poll timeout counted from the first poll. The archive keeps every download.
        """
        requested_at = datetime.now(UTC)
        task_id = self.create_task(report, window)
        polling_since = self._clock()
        number = 1
        while True:
            file_url = self.wait_for_file(report, task_id, polling_since)
            exported = self.download(report, task_id, file_url, destination_dir, requested_at, number)
            content = inspect_result_file(exported.path)
            if content.has_data:
                return exported
            if content.errors:
                if has_1007_on(content.errors, MODULE_UNAVAILABLE):
                    raise module_unavailable(report.title, report.name, content.errors)
                raise EkvioApiError(
                    f"{report.title} task {task_id}: the result file holds an error answer instead of data "
                    f"({describe_errors(content.errors)}). The raw file stays at {exported.path}"
                )
            self._wait_to_download_again(report, exported, content, polling_since, number)
            number += 1

    def create_task(self, report: ReportEndpoint, window: ExportWindow) -> str:
        path = self._report_paths.get(report.name, report.path)
        method = self._report_methods.get(report.name, report.method)
        params = window.query_params()
        # The materials report's way, which the vendor's SDK follows: filters in the query string.
        body: dict[str, object] | None = {} if method == "POST" else None
        route_hints = {
            404: f"not found: check {API_URL} and the report's path {path} ({report_path_variable(report.name)})",
            405: f"the server does not take {method} at {path}: set {report_method_variable(report.name)} "
            f"(GET or POST), or {report_path_variable(report.name)}",
        }
        started = self._clock()
        busy_attempt = 0
        while True:
            response = self._call(report, "create the task", method, path, params=params, json=body)
            errors = ekvio_errors(_body(response))
            if has_1007_on(errors, TASK_RUNNING):
                waited = self._clock() - started
                if waited >= self._busy_wait_timeout:
                    raise EkvioApiError(
                        f"The {report.title} report could not start: another task of this report kept "
                        f"running for {waited:.0f} s ({describe_errors(errors)}). Try again later."
                    )
                delay = self._retry.delay(busy_attempt)
                busy_attempt += 1
                self._log.info(
                    f"{report.name}: another {report.title} task is running on the Ekvio side; "
                    f"trying again in {delay:.1f} s"
                )
                self._sleep(delay)
                continue
            self._raise_for_answer(report, "create the task", response, errors, route_hints)
            task_id = str(_data(response).get("integration", ""))
            if not TASK_ID.fullmatch(task_id):
                raise EkvioApiError(
                    f"The {report.title} report task was created but the answer carried no valid task id"
                )
            self._log.info(f"{report.name}: created Ekvio task {task_id} ({window.describe()})")
            return task_id

    def wait_for_file(self, report: ReportEndpoint, task_id: str, polling_since: float) -> str:
        """Poll the task until its file is ready: at once (a day's export may be ready by then),
        then every poll interval, until the poll timeout counted from `polling_since`."""
        while True:
            response = self._call(report, f"poll task {task_id}", "GET", self._task_status_path.format(task_id=task_id))
            self._raise_for_answer(report, f"poll task {task_id}", response, ekvio_errors(_body(response)))
            answer = _data(response)
            status = answer.get("status")
            file_url = answer.get("file")
            elapsed = self._clock() - polling_since
            shown = status if isinstance(status, str) else "without a status"
            self._log.info(f"{report.name}: task {task_id} is {shown} ({elapsed:.0f} s elapsed)")
            if status == "fail":
                log_hint = ""
                if isinstance(file_url, str) and file_url.strip():
                    log_hint = f"; its log is at {self._file_url(file_url)}"
                raise EkvioApiError(f"{report.title} task {task_id} failed on the Ekvio side{log_hint}")
            if status == "completed":
                if not isinstance(file_url, str) or not file_url.strip():
                    raise EkvioApiError(f"{report.title} task {task_id} completed without a result file URL")
                return file_url
            # Any other status (queued, progress, processing, one Ekvio adds later, none) means not yet.
            if elapsed + self._poll_interval > self._poll_timeout:
                raise EkvioApiError(
                    f"{report.title} task {task_id} did not complete within {self._poll_timeout:.0f} s "
                    f"(EKVIO_POLL_TIMEOUT_SECONDS); it may still finish on the Ekvio side, run again later"
                )
            self._sleep(self._poll_interval)

    def download(
        self,
        report: ReportEndpoint,
        task_id: str,
        file_url: str,
        destination_dir: Path,
        requested_at: datetime,
        number: int = 1,
    ) -> ExportedFile:
        """Stream the task's file into the archive as the task's `number`-th download."""
        url = self._file_url(file_url)
        if urlsplit(url).scheme not in ("http", "https"):
            raise EkvioApiError(f"{report.title} task {task_id} points to a result file that is not http(s)")
        destination_dir.mkdir(parents=True, exist_ok=True)
        name = raw_file_name(requested_at, task_id, number)
        final_path = destination_dir / name
        partial_path = destination_dir / f"{name}.part"
        on_api_origin = same_origin(url, self._base_url)
        client = self._api if on_api_origin else self._files
        action = f"download the file of task {task_id}"

        def fetch() -> int:
            with client.stream("GET", url, follow_redirects=True) as response:
                raise_if_transient(response)
                if not response.is_success:
                    response.read()
                    self._raise_for_answer(report, action, response, ekvio_errors(_body(response)))
                written = 0
                with partial_path.open("wb") as out:
                    # Pieces as they arrive: re-cutting them to a fixed size would copy every byte again.
                    for chunk in response.iter_bytes():
                        out.write(chunk)
                        written += len(chunk)
                return written

        unreachable_hint = ""
        if not on_api_origin and self._file_host is None:
            unreachable_hint = (
                f"; the file is on {urlsplit(url).hostname}, not on the API's host: if that is a name only "
                f"Ekvio's own servers reach, set {FILE_HOST} to the address that serves the files"
            )
        size = self._with_retries(report, action, fetch, unreachable_hint)
        partial_path.replace(final_path)
        self._log.info(f"{report.name}: task {task_id} file saved to {final_path} ({size:,} bytes)")
        return ExportedFile(report.name, task_id, final_path, size, requested_at)

    def _file_url(self, file_url: str) -> str:
        """A file URL of a poll answer as it is fetched: absolute, on the file host if one is set."""
        return with_file_host(urljoin(self._base_url + "/", file_url.strip()), self._file_host)

    def _wait_to_download_again(
        self,
        report: ReportEndpoint,
        exported: ExportedFile,
        content: ResultContent,
        polling_since: float,
        downloads: int,
    ) -> None:
        elapsed = self._clock() - polling_since
        held = f"{content.description}, {exported.size_bytes:,} bytes"
        if elapsed + self._poll_interval > self._poll_timeout:
            raise EkvioApiError(
                f"{report.title} task {exported.task_id} completed, but its result file held neither data nor "
                f"errors in {downloads} downloads over {elapsed:.0f} s (EKVIO_POLL_TIMEOUT_SECONDS); the last "
                f"held {held} and stays at {exported.path}"
            )
        self._log.warning(
            f"{report.name}: the result file of task {exported.task_id} holds neither data nor errors ({held}; "
            f"kept at {exported.path}), as a file not yet written to storage does; polling the task and "
            f"downloading its file again in {self._poll_interval:.1f} s"
        )
        self._sleep(self._poll_interval)

    def _call(self, report: ReportEndpoint, action: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self._with_retries(report, action, lambda: self._api.request(method, path, **kwargs))

    def _with_retries(
        self, report: ReportEndpoint, action: str, send: Callable[[], Any], unreachable_hint: str = ""
    ) -> Any:
        attempt = 0
        while True:
            try:
                with transient_faults():
                    result = send()
                if isinstance(result, httpx.Response):
                    raise_if_transient(result)
                return result
            except UntrustedCertificate as error:
                raise EkvioApiError(
                    f"Could not {action} of the {report.title} report: the server's TLS certificate did not "
                    f"verify ({error}); certificates are always verified, fix the server's certificate or the URL"
                ) from None
            except TransientError as fault:
                attempt += 1
                if attempt >= self._retry.max_attempts:
                    hint = unreachable_hint if fault.unreachable else ""
                    raise EkvioApiError(
                        f"Could not {action} of the {report.title} report: {fault} after {attempt} attempts{hint}"
                    ) from None
                delay = self._retry.delay(attempt - 1, fault.retry_after)
                self._log.warning(
                    f"{report.name}: {action} failed ({fault}); retry {attempt} of "
                    f"{self._retry.max_attempts - 1} in {delay:.1f} s"
                )
                self._sleep(delay)

    def _raise_for_answer(
        self,
        report: ReportEndpoint,
        action: str,
        response: httpx.Response,
        errors: list[Any],
        hints: Mapping[int, str] | None = None,
    ) -> None:
        """Raise for an answer that is an error: by its HTTP status, or by its `errors`, even after a 200."""
        status = response.status_code
        if response.is_success and not errors:
            return
        if has_1007_on(errors, MODULE_UNAVAILABLE):
            raise module_unavailable(report.title, report.name, errors)
        hint = (hints or {}).get(status) or {
            401: "the API token was refused: check EKVIO_API_TOKEN",
            403: "the API token lacks permission for this report",
            404: f"not found: check {API_URL} and the report path",
        }.get(status, "")
        # Any other error is final, 1007 on a parameter too (the vendor's validation error): reported
        # with its field and its message as the server wrote it.
        http_status = "" if response.is_success else f"HTTP {status}"
        detail = "; ".join(part for part in (http_status, hint, describe_errors(errors)) if part)
        raise EkvioApiError(f"Could not {action} of the {report.title} report: {detail}")


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _data(response: httpx.Response) -> dict[str, Any]:
    body = _body(response)
    data = body.get("data") if isinstance(body, dict) else None
    return data if isinstance(data, dict) else {}
