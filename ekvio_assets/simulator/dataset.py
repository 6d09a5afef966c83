"""A generated company's reports: selections of its rows as payload records, result files and truth.

A selection sees each row as of a moment (`as_of`: its latest version written before it; by
default the final state) and keeps the rows whose visible version was written in the window
[after, to). The documented change-time field of a version equals its `modified_at` unless it is
null (a row only appointed, never active). Selections stream: rows are drawn group by group as
they are read, and any row comes out the same in every selection.

`truth` returns the canonical values (ints, strings, bools, aware UTC datetimes) a loader must
recover; `payload_records` and `write_result_file` render them the way the API sends them (see
`rendering` and `drift`). Report layout comes from `ekvio_assets.reports.specs`.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from ekvio_assets.reports.specs import PROGRAM_STATISTICS, REPORTS, REPORTS_BY_NAME, ReportSpec
from ekvio_assets.simulator.company import DatasetConfig, local_midnight
from ekvio_assets.simulator.drift import RENDERINGS, extra_fields
from ekvio_assets.simulator.rendering import ReportRenderer
from ekvio_assets.simulator.result_file import write_report_file
from ekvio_assets.simulator.rows import Company, Parent, Row, RowGroup, Version, check_history


@dataclass(frozen=True)
class RecordFilter:
    """Filters beyond the change-time window, as the API takes them (query and POST body)."""

    logins: frozenset[str] | None = None
    program_ids: frozenset[int] | None = None
    category_ids: frozenset[int] | None = None
    user_status: str | None = None

    def selects_row(self, values: Mapping[str, Any]) -> bool:
        return (self.logins is None or values["login"] in self.logins) and (
            self.user_status is None or values["user_status"] == self.user_status
        )


class RowVersion(NamedTuple):
    """One version of a row: when it was written, and the table row it makes (as `Dataset.truth`)."""

    modified_at: datetime
    row: dict[str, Any]


_ROWS_CHECKED = 50  # rows of a report `Dataset` checks when made
# A group's selected rows, each with its visible version, under their parent (None: a flat report).
Selected = tuple[Parent | None, list[tuple[Row, Version]]]


class Dataset:
    """A generated company: its entities, and its report rows drawn on demand into selections."""

    def __init__(self, company: Company, groups: Mapping[str, list[RowGroup]]) -> None:
        self.config: DatasetConfig = company.config
        self.learners = company.learners
        self.materials = company.materials
        self.courses = company.courses
        self.programs = company.programs
        self.period_start, self.period_end = company.period.start, company.period.end
        self._company = company
        self._groups = groups
        zone = ZoneInfo(company.config.timezone)
        self._renderers = {spec.name: ReportRenderer(spec, zone) for spec in REPORTS}
        self._program_categories = {program.program_id: program.category_id for program in company.programs}
        for spec in REPORTS:
            self._check_report(spec)

    def day_start(self, day_index: int) -> datetime:
        """Local midnight (in the company time zone) of day `day_index` of the period; 0 is its first day."""
        return local_midnight(self.config, self.config.start + timedelta(days=day_index))

    def day_window(self, day_index: int) -> tuple[datetime, datetime]:
        """[start, end) of day `day_index`: what a daily incremental export asks for."""
        return self.day_start(day_index), self.day_start(day_index + 1)

    def row_count(self, report_name: str) -> int:
        """Table rows of the whole report in its final state (children for a nested report)."""
        return sum(group.row_count() for group in self._groups[report_name])

    def groups(self, report_name: str) -> list[RowGroup]:
        """The report's row groups, in payload order, each drawing its rows when asked."""
        return self._groups[report_name]

    def renderer(self, report_name: str) -> ReportRenderer:
        return self._renderers[report_name]

    def record_texts(
        self,
        report_name: str,
        after: datetime | None = None,
        to: datetime | None = None,
        *,
        as_of: datetime | None = None,
        record_filter: RecordFilter | None = None,
    ) -> Iterator[str]:
        """The JSON texts of the result file's `data` array for this selection, one record at a time."""
        renderer = self._renderers[report_name]
        for parent, shown in self._select(REPORTS_BY_NAME[report_name], after, to, as_of, record_filter):
            row_texts = [renderer.rows.text(version.values, row.drift) for row, version in shown]
            yield from renderer.records(parent, row_texts)

    def payload_records(
        self,
        report_name: str,
        after: datetime | None = None,
        to: datetime | None = None,
        *,
        as_of: datetime | None = None,
        record_filter: RecordFilter | None = None,
    ) -> Iterator[dict[str, Any]]:
        """The JSON-ready objects of the result file's `data` array for this selection."""
        texts = self.record_texts(report_name, after, to, as_of=as_of, record_filter=record_filter)
        return (json.loads(text) for text in texts)

    def truth(
        self,
        report_name: str,
        after: datetime | None = None,
        to: datetime | None = None,
        *,
        as_of: datetime | None = None,
        record_filter: RecordFilter | None = None,
    ) -> list[dict[str, Any]]:
        """The table rows a loader must produce from `payload_records` of the same selection.

        Keys: the spec's columns, the course report's dynamic columns, and `extra_fields` (the
        undocumented fields the payload carried for the row, parent ones as "parent.<key>", or None).
        """
        spec = REPORTS_BY_NAME[report_name]
        return [
            _table_row(parent, row, version)
            for parent, shown in self._select(spec, after, to, as_of, record_filter)
            for row, version in shown
        ]

    def parents_truth(
        self,
        report_name: str,
        after: datetime | None = None,
        to: datetime | None = None,
        *,
        as_of: datetime | None = None,
        record_filter: RecordFilter | None = None,
    ) -> list[dict[str, Any]]:
        """The rows of a nested report's table of parents that `payload_records` of the same
        selection sends: each parent's columns and its own undocumented fields (`extra_fields`)."""
        spec = REPORTS_BY_NAME[report_name]
        return [
            {**parent.values, "extra_fields": extra_fields(parent.drift)}
            for parent, _ in self._select(spec, after, to, as_of, record_filter)
            if parent is not None
        ]

    def history(self, report_name: str) -> dict[tuple[Any, ...], list[RowVersion]]:
        """Every row's versions, oldest first, by the row's key (the spec's key columns)."""
        spec = REPORTS_BY_NAME[report_name]
        row_columns = _row_columns(spec)
        histories = {}
        for group in self._groups[report_name]:
            for row in group.rows():
                check_history(spec, row_columns, row, self._company.period)
                versions = [
                    RowVersion(version.modified_at, _table_row(group.parent, row, version)) for version in row.versions
                ]
                histories[tuple(versions[0].row[column] for column in spec.key)] = versions
        return histories

    def write_result_file(
        self,
        report_name: str,
        path: Path,
        after: datetime | None = None,
        to: datetime | None = None,
        *,
        as_of: datetime | None = None,
        record_filter: RecordFilter | None = None,
        stop: threading.Event | None = None,
    ) -> int:
        """Write the report's result file for this selection; return the number of records.

        Setting `stop` abandons the file half-written (raises `WriteStopped`).
        """
        texts = self.record_texts(report_name, after, to, as_of=as_of, record_filter=record_filter)
        return write_report_file(path, texts, RENDERINGS[report_name].top_level, stop=stop)

    def _select(
        self,
        spec: ReportSpec,
        after: datetime | None,
        to: datetime | None,
        as_of: datetime | None,
        record_filter: RecordFilter | None,
    ) -> Iterator[Selected]:
        """The selected rows, each with its visible version, grouped under their parent.

        A row is selected when its version visible at `as_of` was written in [after, to) and passes
        the filter; a parent is yielded with its selected rows, and without any when none of its rows
        is visible at `as_of` (a material or programme nobody is assigned to yet is in every export).
        """
        for moment in (after, to, as_of):
            if moment is not None and moment.utcoffset() is None:
                raise ValueError("after, to and as_of must be aware datetimes")
        record_filter = record_filter or RecordFilter()
        filters_programs = record_filter.program_ids is not None or record_filter.category_ids is not None
        if filters_programs and spec is not PROGRAM_STATISTICS:
            raise ValueError(f"report {spec.name} cannot be filtered by programme or category")
        for group in self._groups[spec.name]:
            if group.parent is not None and not self._selects_program(group.parent, record_filter):
                continue
            shown = []
            for row in group.rows_written(after, to):
                version = row.visible(as_of)
                if (
                    version is not None
                    and (after is None or version.modified_at >= after)
                    and (to is None or version.modified_at < to)
                    and record_filter.selects_row(version.values)
                ):
                    shown.append((row, version))
            if shown or (group.parent is not None and not group.any_visible(as_of)):
                yield group.parent, shown

    def _selects_program(self, parent: Parent, record_filter: RecordFilter) -> bool:
        if record_filter.program_ids is None and record_filter.category_ids is None:
            return True
        program_id = parent.values["program_id"]
        return (record_filter.program_ids is None or program_id in record_filter.program_ids) and (
            record_filter.category_ids is None or self._program_categories[program_id] in record_filter.category_ids
        )

    def _check_report(self, spec: ReportSpec) -> None:
        """Fail loudly when specs.py and the generator disagree about a report: checked on the parents
        and on the first rows of the first group that has any (`history` checks every row it returns)."""
        extra_columns = RENDERINGS[spec.name].extra_columns
        pattern = spec.dynamic_columns
        if extra_columns and (pattern is None or not all(pattern.fullmatch(column) for column in extra_columns)):
            raise AssertionError(f"{spec.name}: {extra_columns} are not dynamic columns of the spec")
        parent_columns = {field.column for field in spec.parent_fields}
        row_columns = _row_columns(spec)
        for group in self._groups[spec.name]:
            if (group.parent is None) == spec.is_nested:
                raise AssertionError(f"{spec.name}: rows must sit under a parent exactly when the report is nested")
            if group.parent is not None and group.parent.values.keys() != parent_columns:
                raise AssertionError(
                    f"{spec.name}: parent columns {sorted(group.parent.values)} != {sorted(parent_columns)}"
                )
        first_rows = next((group.rows() for group in self._groups[spec.name] if group.learners), iter(()))
        for row in itertools.islice(first_rows, _ROWS_CHECKED):
            check_history(spec, row_columns, row, self._company.period)


def _row_columns(spec: ReportSpec) -> set[str]:
    return {field.column for field in spec.fields} | set(RENDERINGS[spec.name].extra_columns)


def _table_row(parent: Parent | None, row: Row, version: Version) -> dict[str, Any]:
    """A version as the loader's table row: parent and row values, and the undocumented fields sent with them."""
    values = dict(version.values) if parent is None else {**parent.values, **version.values}
    extras = dict(extra_fields(row.drift) or {})
    if parent is not None:
        extras.update({f"parent.{key}": value for key, value in (extra_fields(parent.drift) or {}).items()})
    values["extra_fields"] = extras or None
    return values
