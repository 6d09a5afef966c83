"""How the simulator speaks the protocol: the variants that the vendor's SDK was written to handle.

The defaults are the simulator's usual answers. Each option makes it answer the way some real
installation does (PROTOCOL.md, "What the vendor's own SDK and examples show"): other statuses
while a task runs, file URLs on an internal host name, error answers with HTTP 200, a report at
another path and method, an odd `Retry-After`, or a given body in place of its own answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from urllib.parse import urlsplit

from ekvio_assets.reports.specs import REPORTS_BY_NAME
from ekvio_assets.simulator.faults import Call

FINAL_STATUSES = frozenset({"completed", "fail"})
# The vendor SDK's own tests poll a task that answers `progress`; other installations say `queued`
# or `processing`. Every default run meets `queued` and `progress` (a task completes at its third
# poll by default); later polls answer `processing`, while a big file is still being written, say.
DEFAULT_PENDING_STATUSES = ("queued", "progress", "processing")


@dataclass(frozen=True)
class CannedAnswer:
    """A body sent verbatim, with `status`, instead of the simulator's own answer to a call.

    It answers the first `count` matching calls (None: every one) of `report` (None: any report):
    a create request, a poll, or a download of the task's result file.
    """

    call: Call
    body: bytes
    status: int = 200
    count: int | None = 1
    report: str | None = None
    media_type: str = "application/json"

    def __post_init__(self) -> None:
        object.__setattr__(self, "call", Call(self.call))
        if self.count is not None and self.count < 1:
            raise ValueError("count must be at least 1, or None for every call")
        if self.report is not None and self.report not in REPORTS_BY_NAME:
            raise ValueError(f"unknown report {self.report!r}")


@dataclass(frozen=True)
class ProtocolOptions:
    """The simulator's answers where installations differ.

    - `pending_statuses`: what polls answer before the task completes, in turn, the last one
      repeated; None answers without a status.
    - `retry_after`: the `Retry-After` header of a 429, verbatim (None: no header).
    - `error_status`: the HTTP status of the simulator's own error answers (code 1007: a request it
      cannot read, another task running, the module unavailable); the vendor's API may say 200.
    - `file_url_host`: `scheme://host[:port]` that poll answers put in file URLs in place of the
      address that serves the files (which still serves them), e.g. `http://nginx`.
    - `report_routes`: report name -> (method, path) at which that report is served instead of its
      spec's; the spec's path then answers 404.
    - `answers`: bodies sent instead of the simulator's own answer (see `CannedAnswer`); the first
      one with calls left that matches a call answers it.
    """

    pending_statuses: tuple[str | None, ...] = DEFAULT_PENDING_STATUSES
    retry_after: str | None = "1"
    error_status: int = 400
    file_url_host: str | None = None
    report_routes: Mapping[str, tuple[str, str]] = dataclass_field(default_factory=dict)
    answers: tuple[CannedAnswer, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "pending_statuses", tuple(self.pending_statuses))
        object.__setattr__(self, "answers", tuple(self.answers))
        if not self.pending_statuses or FINAL_STATUSES & set(self.pending_statuses):
            raise ValueError("pending_statuses must name at least one status, and neither completed nor fail")
        if not 200 <= self.error_status <= 599:
            raise ValueError(f"error_status must be an HTTP status, got {self.error_status}")
        if self.file_url_host is not None:
            parts = urlsplit(self.file_url_host)
            if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
                raise ValueError(f"file_url_host must be scheme://host[:port], got {self.file_url_host!r}")
        routes = {}
        for report, (method, path) in self.report_routes.items():
            if report not in REPORTS_BY_NAME:
                raise ValueError(f"report_routes for unknown report {report!r}")
            if method.upper() not in ("GET", "POST") or not path.startswith("/"):
                raise ValueError(f"report_routes[{report!r}] must be (GET or POST, /path), got {(method, path)!r}")
            routes[report] = (method.upper(), path)
        object.__setattr__(self, "report_routes", routes)


class CannedAnswers:
    """The options' canned answers with the calls each has left."""

    def __init__(self, answers: tuple[CannedAnswer, ...]) -> None:
        self._answers = answers
        self._remaining = [answer.count for answer in answers]

    def take(self, call: Call, report: str) -> CannedAnswer | None:
        for index, answer in enumerate(self._answers):
            remaining = self._remaining[index]
            if answer.call is call and answer.report in (None, report) and remaining != 0:
                if remaining is not None:
                    self._remaining[index] = remaining - 1
                return answer
        return None
