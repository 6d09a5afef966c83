"""Fault injection: rules naming which call goes wrong and how, consumed in order.

A rule matches a call kind (create a task, poll it, download its file) and optionally one report.
The first matching rule with calls left fires; `count=None` makes it fire for good.
"""

from __future__ import annotations

import copy
import enum
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any

from ekvio_assets.reports.specs import REPORTS_BY_NAME, FieldType, ReportSpec


class Call(enum.StrEnum):
    CREATE = "create"
    POLL = "poll"
    DOWNLOAD = "download"


class FaultKind(enum.StrEnum):
    # Any call: what gateways and networks do.
    HTTP_429 = "http_429"
    HTTP_500 = "http_500"
    HTTP_502 = "http_502"
    HTTP_503 = "http_503"
    HTTP_504 = "http_504"
    DROP_CONNECTION = "drop_connection"  # no answer at all; a download sends half the file first
    # Creating a task.
    TASK_RUNNING = "task_running"  # 1007 "integration": another task of this report runs
    MODULE_UNAVAILABLE = "module_unavailable"  # 1007 "company_id": the company lacks the module
    # Polling a task.
    TASK_FAIL = "task_fail"  # the task fails; its file is a log
    NEVER_COMPLETE = "never_complete"  # the task stays "processing"
    COMPLETED_WITHOUT_FILE = "completed_without_file"  # "completed" with file null
    # Downloading the result file.
    FILE_404 = "file_404"
    FILE_TRUNCATED = "file_truncated"  # a complete answer holding the first half of the file
    FILE_HTML = "file_html"  # an HTML page instead of JSON
    FILE_ERRORS = "file_errors"  # {"errors": [...]} instead of data
    FILE_BAD_TYPES = "file_bad_types"  # a non-numeric int and an unreadable date-time
    FILE_MISSING_KEYS = "file_missing_keys"  # a row without its key fields
    FILE_DUPLICATE_KEYS = "file_duplicate_keys"  # a row sent twice

    @property
    def http_status(self) -> int | None:
        return int(self.value.removeprefix("http_")) if self.value.startswith("http_") else None


_ANY_CALL = frozenset(kind for kind in FaultKind if kind.http_status) | {FaultKind.DROP_CONNECTION}
KINDS_BY_CALL = {
    Call.CREATE: _ANY_CALL | {FaultKind.TASK_RUNNING, FaultKind.MODULE_UNAVAILABLE},
    Call.POLL: _ANY_CALL | {FaultKind.TASK_FAIL, FaultKind.NEVER_COMPLETE, FaultKind.COMPLETED_WITHOUT_FILE},
    Call.DOWNLOAD: _ANY_CALL | {kind for kind in FaultKind if kind.value.startswith("file_")},
}


@dataclass(frozen=True)
class FaultRule:
    call: Call
    kind: FaultKind
    count: int | None = 1  # calls it spoils; None: every matching call, for good
    report: str | None = None  # None: any report

    def __post_init__(self) -> None:
        object.__setattr__(self, "call", Call(self.call))
        object.__setattr__(self, "kind", FaultKind(self.kind))
        if self.kind not in KINDS_BY_CALL[self.call]:
            raise ValueError(f"fault {self.kind} cannot happen on a {self.call} call")
        if self.count is not None and self.count < 1:
            raise ValueError("count must be at least 1, or None for a permanent fault")
        if self.report is not None and self.report not in REPORTS_BY_NAME:
            raise ValueError(f"unknown report {self.report!r}")


@dataclass
class FaultPlan:
    rules: Sequence[FaultRule] = ()
    _remaining: list[int | None] = dataclass_field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.rules = tuple(self.rules)
        self._remaining = [rule.count for rule in self.rules]

    def take(self, call: Call, report: str) -> FaultRule | None:
        """The fault to inject into this call, if any; uses up one call of that rule."""
        for index, rule in enumerate(self.rules):
            remaining = self._remaining[index]
            if rule.call == call and rule.report in (None, report) and remaining != 0:
                if remaining is not None:
                    self._remaining[index] = remaining - 1
                return rule
        return None

    @property
    def exhausted(self) -> bool:
        """True once every counted rule has fired as often as it should (permanent ones never are)."""
        return all(remaining == 0 for remaining in self._remaining)


def corrupt_records(kind: FaultKind, spec: ReportSpec, records: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """A result file's records, the first spoiled as a CONTENT_FAULTS kind says."""
    spoil = _CORRUPTIONS[kind]
    first = next(records, None)
    if first is not None:
        yield from spoil(spec, first)
    yield from records


def _first_row(spec: ReportSpec, record: dict[str, Any]) -> dict[str, Any]:
    """The object holding a table row's own fields: the record, or its first child."""
    return record[spec.children_key][0] if spec.children_key else record


def _with_bad_types(spec: ReportSpec, record: dict[str, Any]) -> list[dict[str, Any]]:
    row = _first_row(spec, record)
    for type_, unreadable in ((FieldType.INTEGER, "n/a"), (FieldType.TIMESTAMP, "31.02.2024 25:61")):
        field = next(field for field in spec.fields if field.type is type_)
        row[field.source[0]] = unreadable
    return [record]


def _without_keys(spec: ReportSpec, record: dict[str, Any]) -> list[dict[str, Any]]:
    row = _first_row(spec, record)
    for column in spec.key:
        field = spec.column(column)
        (record if field in spec.parent_fields else row).pop(field.source[0], None)
    return [record]


def _with_duplicate_key(spec: ReportSpec, record: dict[str, Any]) -> list[dict[str, Any]]:
    if spec.children_key:
        record[spec.children_key].insert(0, copy.deepcopy(record[spec.children_key][0]))
        return [record]
    return [record, copy.deepcopy(record)]


_CORRUPTIONS: dict[FaultKind, Callable[[ReportSpec, dict[str, Any]], list[dict[str, Any]]]] = {
    FaultKind.FILE_BAD_TYPES: _with_bad_types,
    FaultKind.FILE_MISSING_KEYS: _without_keys,
    FaultKind.FILE_DUPLICATE_KEYS: _with_duplicate_key,
}
CONTENT_FAULTS = frozenset(_CORRUPTIONS)
