"""A run's progress, built from the events its processes store in the instance's event log.

The report steps' own log lines (api/client.py) say which Ekvio task runs and how it stands; the
materializations carry the rows inserted, updated and rejected; the check evaluations say what failed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import cast

import dagster as dg

# The log lines of api/client.py that carry a report's progress.
_CREATED = re.compile(r"\w+: created Ekvio task (?P<task>\S+) \((?P<window>.*)\)")
_POLLED = re.compile(r"\w+: task (?P<task>\S+) is (?P<status>.+) \((?P<elapsed>\d+) s elapsed\)")
_SAVED = re.compile(r"\w+: task (?P<task>\S+) file saved to .+ \((?P<bytes>[\d,]+) bytes\)")

_STEP_EVENTS = {
    dg.DagsterEventType.STEP_START,
    dg.DagsterEventType.STEP_SUCCESS,
    dg.DagsterEventType.STEP_FAILURE,
}


@dataclass
class TableChange:
    inserted: int
    updated: int
    rejected: int

    @property
    def changed(self) -> int:
        return self.inserted + self.updated


@dataclass
class StepProgress:
    key: str
    started: float | None = None
    finished: float | None = None
    succeeded: bool | None = None
    task_id: str | None = None
    task_status: str | None = None
    task_elapsed_seconds: int | None = None
    bytes_downloaded: int = 0
    tables: dict[str, TableChange] = field(default_factory=dict)

    @property
    def status(self) -> str:
        if self.succeeded is not None:
            return "done" if self.succeeded else "failed"
        if self.task_status is not None:
            return f"task {self.task_id} {self.task_status}"
        return "running" if self.started is not None else "waiting"

    @property
    def took(self) -> float | None:
        return None if self.started is None or self.finished is None else self.finished - self.started

    def seconds(self, now: float) -> float | None:
        if self.started is None:
            return None
        return (self.finished or now) - self.started


@dataclass(frozen=True)
class CheckFailure:
    asset: str
    check: str
    severity: str
    description: str


@dataclass(frozen=True)
class Note:
    """Something that happened, as one line; `warning` for what a person should look at."""

    step: str | None
    text: str
    warning: bool = False

    def __str__(self) -> str:
        prefix = f"{self.step}: " if self.step else ""
        return f"  {prefix}{'warning: ' if self.warning else ''}{self.text}"


@dataclass
class RunProgress:
    job_name: str
    run_id: str | None = None
    started: float | None = None
    finished: float | None = None
    steps: dict[str, StepProgress] = field(default_factory=dict)
    checks_passed: int = 0
    failed_checks: list[CheckFailure] = field(default_factory=list)

    def step(self, key: str) -> StepProgress:
        return self.steps.setdefault(key, StepProgress(key))

    def tables(self) -> dict[str, TableChange]:
        return {name: change for step in self.steps.values() for name, change in step.tables.items()}

    def apply(self, entry: dg.EventLogEntry) -> list[Note]:
        """Takes one event into the progress; returns what a person following the run should read."""
        self.run_id = entry.run_id
        event = entry.dagster_event
        if event is None:
            return self._apply_log_line(entry)
        kind = event.event_type
        if kind == dg.DagsterEventType.RUN_START:
            self.started = entry.timestamp
        elif kind in (dg.DagsterEventType.RUN_SUCCESS, dg.DagsterEventType.RUN_FAILURE):
            self.finished = entry.timestamp
        elif kind in _STEP_EVENTS and entry.step_key:
            return self._apply_step_event(entry, entry.step_key, kind)
        elif kind == dg.DagsterEventType.ASSET_MATERIALIZATION and entry.step_key:
            return self._apply_materialization(entry.step_key, event.step_materialization_data.materialization)
        elif kind == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            return self._apply_check(event.asset_check_evaluation_data)
        return []

    def _apply_log_line(self, entry: dg.EventLogEntry) -> list[Note]:
        message = entry.user_message
        # EventLogEntry coerces its level to the logging number when built; its annotation says str | int.
        level = cast(int, entry.level)
        if entry.step_key is None:
            return [Note(None, message, warning=True)] if level >= logging.WARNING else []
        step = self.step(entry.step_key)
        if level >= logging.WARNING:
            return [Note(step.key, message.removeprefix(f"{step.key}: "), warning=True)]
        if created := _CREATED.fullmatch(message):
            step.task_id, step.task_status, step.task_elapsed_seconds = created["task"], "created", 0
        elif polled := _POLLED.fullmatch(message):
            changed = (polled["task"], polled["status"]) != (step.task_id, step.task_status)
            step.task_id, step.task_status = polled["task"], polled["status"]
            step.task_elapsed_seconds = int(polled["elapsed"])
            # One line per change of status, not per poll: a long export polls for an hour.
            if changed and step.task_status != "completed":
                return [Note(step.key, f"Ekvio task {step.task_id} {step.task_status} ({polled['elapsed']} s)")]
        elif saved := _SAVED.fullmatch(message):
            size = int(saved["bytes"].replace(",", ""))
            step.bytes_downloaded += size
            step.task_status = "downloaded"
            completed = f"Ekvio task {saved['task']} completed after {step.task_elapsed_seconds} s"
            return [Note(step.key, f"{completed}, {size:,} bytes downloaded")]
        return []

    def _apply_step_event(self, entry: dg.EventLogEntry, step_key: str, kind: dg.DagsterEventType) -> list[Note]:
        step = self.step(step_key)
        if kind == dg.DagsterEventType.STEP_START:
            step.started = entry.timestamp
            return []
        step.finished, step.succeeded = entry.timestamp, kind == dg.DagsterEventType.STEP_SUCCESS
        seconds = step.seconds(entry.timestamp)
        if seconds is None:  # its resources (or its process) failed before the step began
            return [Note(step.key, "failed before it started")]
        took = f"{seconds:.1f} s"
        if not step.succeeded:
            return [Note(step.key, f"failed after {took}")]
        if step.task_id is None and not step.tables:
            return []  # a model or the publish: the summary shows its time
        loaded = [
            f"{name}: {change.inserted:,} inserted, {change.updated:,} updated, {change.rejected:,} rejected"
            for name, change in step.tables.items()
        ]
        return [Note(step.key, f"done in {took}" + (f" ({'; '.join(loaded)})" if loaded else ""))]

    def _apply_materialization(self, step_key: str, materialization: dg.AssetMaterialization) -> list[Note]:
        metadata = materialization.metadata
        if "rows_inserted" not in metadata:  # a model table, or a partition's own row count
            return []
        # The table's name: a company's key prefixes its asset keys, and a run is of one company.
        name = materialization.asset_key.path[-1]
        self.step(step_key).tables[name] = TableChange(
            inserted=_row_count(metadata, "rows_inserted"),
            updated=_row_count(metadata, "rows_updated"),
            rejected=_row_count(metadata, "rows_rejected"),
        )
        return []

    def _apply_check(self, evaluation: dg.AssetCheckEvaluation) -> list[Note]:
        if evaluation.passed:
            self.checks_passed += 1
            return []
        failure = CheckFailure(
            asset=evaluation.asset_key.to_user_string(),
            check=evaluation.check_name,
            severity=evaluation.severity.value,
            description=evaluation.description or "(no description)",
        )
        self.failed_checks.append(failure)
        return [Note(failure.asset, f"check {failure.check} failed ({failure.severity}): {failure.description}", True)]


def _row_count(metadata: Mapping[str, dg.MetadataValue], key: str) -> int:
    """A report step's row count: reports/assets.py writes them as plain ints (IntMetadataValue)."""
    count = metadata[key].value
    if not isinstance(count, int):
        raise TypeError(f"The materialization's {key} is {count!r}, not a row count")
    return count
