"""Fault injection: rules naming which call goes wrong and how, consumed in order, and random faults.

A rule matches a call kind (create a task, poll it, download its file) and optionally one report.
The first matching rule with calls left fires (with a `rate`, only as often as a seeded draw
says); `count=None` makes it fire for good. A call no rule spoils may still get a random fault
at the plan's `rate`: one of the plan's `kinds` that can happen on that call.
"""

from __future__ import annotations

import copy
import enum
import random
from collections.abc import Callable, Collection, Iterator, Sequence
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
    # Polling a task: its file URL, once it has one, is one a client must not follow or trust.
    FILE_URL_NOT_HTTP = "file_url_not_http"  # file:///etc/passwd
    FILE_NAME_TRAVERSAL = "file_name_traversal"  # the URL and Content-Disposition name ../../evil.json
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
    Call.POLL: _ANY_CALL
    | {
        FaultKind.TASK_FAIL,
        FaultKind.NEVER_COMPLETE,
        FaultKind.COMPLETED_WITHOUT_FILE,
        FaultKind.FILE_URL_NOT_HTTP,
        FaultKind.FILE_NAME_TRAVERSAL,
    },
    Call.DOWNLOAD: _ANY_CALL
    | {
        FaultKind.FILE_404,
        FaultKind.FILE_TRUNCATED,
        FaultKind.FILE_HTML,
        FaultKind.FILE_ERRORS,
        FaultKind.FILE_BAD_TYPES,
        FaultKind.FILE_MISSING_KEYS,
        FaultKind.FILE_DUPLICATE_KEYS,
    },
}
# What a client survives by retrying the same call (TASK_RUNNING: by creating the task again).
TRANSIENT_KINDS = _ANY_CALL | {FaultKind.TASK_RUNNING}


def _check_rate(rate: float) -> None:
    if not 0 < rate <= 1:
        raise ValueError(f"rate must be in (0, 1], got {rate}")


@dataclass(frozen=True)
class FaultRule:
    call: Call
    kind: FaultKind
    count: int | None = 1  # calls it spoils; None: no limit, for good
    report: str | None = None  # None: any report
    # The chance that a matching call is spoiled while the rule has calls left. A rate usually
    # goes with count=None: calls keep being spoiled at that rate for good.
    rate: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "call", Call(self.call))
        object.__setattr__(self, "kind", FaultKind(self.kind))
        if self.kind not in KINDS_BY_CALL[self.call]:
            raise ValueError(f"fault {self.kind} cannot happen on a {self.call} call")
        if self.count is not None and self.count < 1:
            raise ValueError("count must be at least 1, or None for a permanent fault")
        if self.report is not None and self.report not in REPORTS_BY_NAME:
            raise ValueError(f"unknown report {self.report!r}")
        _check_rate(self.rate)


@dataclass
class FaultPlan:
    """Rules first, in order; then, on a call no rule spoiled, a random fault at `rate` among `kinds`.

    Every draw comes from one generator seeded with `seed`, so the same calls in the same order
    get the same faults.
    """

    rules: Sequence[FaultRule] = ()
    rate: float = 0.0  # chance per call of a random fault; 0: none
    kinds: Collection[FaultKind] = TRANSIENT_KINDS  # what a random fault may be, where it can happen
    seed: int = 0
    _remaining: list[int | None] = dataclass_field(init=False, repr=False)
    _random: random.Random = dataclass_field(init=False, repr=False)
    # In FaultKind's order, not a set's: the choice must not depend on string hashing.
    _random_kinds_by_call: dict[Call, list[FaultKind]] = dataclass_field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.rules = tuple(self.rules)
        self.kinds = frozenset(FaultKind(kind) for kind in self.kinds)
        if self.rate:
            _check_rate(self.rate)
        self._remaining = [rule.count for rule in self.rules]
        self._random = random.Random(self.seed)
        self._random_kinds_by_call = {
            call: [kind for kind in FaultKind if kind in self.kinds and kind in KINDS_BY_CALL[call]] for call in Call
        }

    @classmethod
    def random_transient(
        cls,
        rate: float,
        *,
        seed: int = 0,
        kinds: Collection[FaultKind] = TRANSIENT_KINDS,
    ) -> FaultPlan:
        """Spoil each call with probability `rate` by a fault drawn among the transient `kinds` it allows."""
        return cls(rate=rate, kinds=kinds, seed=seed)

    def take(self, call: Call, report: str) -> FaultKind | None:
        """The fault to inject into this call, if any; uses up one call of the rule that fired."""
        for index, rule in enumerate(self.rules):
            remaining = self._remaining[index]
            if rule.call != call or rule.report not in (None, report) or remaining == 0:
                continue
            if rule.rate < 1 and self._random.random() >= rule.rate:
                continue
            if remaining is not None:
                self._remaining[index] = remaining - 1
            return rule.kind
        candidates = self._random_kinds_by_call[call]
        if self.rate and candidates and self._random.random() < self.rate:
            return self._random.choice(candidates)
        return None

    @property
    def exhausted(self) -> bool:
        """True once every counted rule has fired as often as it should (permanent ones never are)."""
        return all(remaining == 0 for remaining in self._remaining)


def parse_fault_rules(spec: str) -> tuple[FaultRule, ...]:
    """The rules of `KIND[@CALL][:count=N][:rate=R][:report=NAME]`, e.g. `http_503@poll:count=3`.

    Without `@CALL`, one rule for each call the kind can happen on. Without `count`, a rule
    spoils one call, or with a `rate` keeps spoiling calls at that rate for good.
    """
    head, *options = spec.split(":")
    kind_name, _, call_name = head.partition("@")
    try:
        kind = FaultKind(kind_name)
    except ValueError:
        raise ValueError(f"unknown fault kind {kind_name!r}; one of {', '.join(FaultKind)}") from None
    try:
        calls = [Call(call_name)] if call_name else [call for call in Call if kind in KINDS_BY_CALL[call]]
    except ValueError:
        raise ValueError(f"unknown call {call_name!r}; one of {', '.join(Call)}") from None
    settings = dict(option.partition("=")[::2] for option in options)
    unknown = set(settings) - {"count", "rate", "report"}
    if unknown:
        raise ValueError(f"unknown fault option(s) {', '.join(sorted(unknown))} in {spec!r}")
    rate = float(settings.get("rate", 1.0))
    default_count = None if "rate" in settings else 1
    count = int(settings["count"]) if "count" in settings else default_count
    return tuple(FaultRule(call, kind, count=count, report=settings.get("report"), rate=rate) for call in calls)


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
