"""Synthetic Ekvio data: one consistent company, evolving over time, rendered into the four report payloads.

Every table row (an attempt, a learner on a material, course or programme) is a history of versions
written at increasing moments of the period, each with a hidden `modified_at`: a learner is
appointed, makes progress over several days, finishes; an attempt is submitted and graded later.
The documented change-time field of a version equals its `modified_at` unless it is null (a row
only appointed, never active). A selection sees each row as of a moment (`as_of`: its latest
version written before it; by default the final state) and keeps the rows whose visible version
was written in the window [after, to).

A `Dataset` holds canonical values (ints, strings, bools, aware UTC datetimes): the truth a loader
must recover. `Dataset.payload_records` renders them the way the API sends them, with the drift
PROTOCOL.md describes (undocumented fields, missing nullable fields, date-times in several forms,
ints as strings, unixtime-or-text deadlines); `Dataset.truth` returns them as table rows. The
drift of a row is chosen from a hash of its key, so a row renders the same way in every version
and window. Report layout (paths, fields, sources, keys, change times) comes from
`ekvio_assets.reports.specs`.
"""

from __future__ import annotations

import bisect
import enum
import functools
import hashlib
import itertools
import json
import math
import random
import struct
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any, NamedTuple, TextIO
from zoneinfo import ZoneInfo

from ekvio_assets.reports.specs import (
    ATTEMPTS,
    COURSE_STATISTICS,
    MATERIAL_STATISTICS,
    MATERIAL_TYPES,
    PROGRAM_STATISTICS,
    REPORTS,
    REPORTS_BY_NAME,
    Field,
    FieldType,
    ReportSpec,
)

# Material types that award points; the others have `points: null`.
POINTED_MATERIAL_TYPES = frozenset({"test", "scorm", "longread"})
COURSE_CONTENT_TYPES = tuple(
    field.column.removesuffix("_viewed") for field in COURSE_STATISTICS.fields if field.column.endswith("_viewed")
)

# Company-specific course columns: a group type beyond the documented ones and two questionnaire
# questions (the vendor example carries form_question_10).
EXTRA_GROUP_COLUMNS = ("group_shift",)
QUESTIONNAIRE_COLUMNS = ("form_question_10", "form_question_12")
COURSE_EXTRA_COLUMNS = EXTRA_GROUP_COLUMNS + QUESTIONNAIRE_COLUMNS
GROUP_COLUMNS = (
    *(field.column for field in COURSE_STATISTICS.fields if field.column.startswith("group_")),
    *EXTRA_GROUP_COLUMNS,
)

# Percent of records showing each kind of drift.
EXTRA_FIELDS_SHARE = 15
OMITTED_NULLS_SHARE = 15
INTS_AS_TEXT_SHARE = 12
UNIXTIME_AS_TEXT_SHARE = 40


@dataclass(frozen=True)
class DatasetConfig:
    """The size and period of a generated company; change times fall in [start, start + days)."""

    seed: int = 7
    learners: int = 200
    materials: int = 40
    courses: int = 12
    programs: int = 6
    start: date = date(2024, 1, 1)
    days: int = 60
    timezone: str = "Europe/Moscow"

    def __post_init__(self) -> None:
        for name in ("learners", "materials", "courses", "programs"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.days < 1:
            raise ValueError("days must be at least 1")
        ZoneInfo(self.timezone)  # fail on an unknown zone here, not in the middle of a render


@dataclass(frozen=True)
class Learner:
    user_id: int
    login: str
    fio: str
    user_status: str
    groups: Mapping[str, str | None]  # GROUP_COLUMNS -> value
    answers: Mapping[str, str | None]  # QUESTIONNAIRE_COLUMNS -> answer


@dataclass(frozen=True)
class Material:
    material_id: int  # unique within its type only, as in the vendor's files
    name: str | None
    type: str
    points: int | None
    visibility: str  # the material's own status: active, hide
    question_count: int | None  # tests only
    pass_percent: int | None  # tests only: an attempt scoring at least this is completed


@dataclass(frozen=True)
class Course:
    material_id: int
    name: str | None
    is_required: int
    content_totals: Mapping[str, int]  # COURSE_CONTENT_TYPES -> materials of that type
    max_interaction_scores: int
    max_final_scores: int
    has_scorm: bool


@dataclass(frozen=True)
class Program:
    program_id: int
    name: str | None
    category_id: int
    deadline_type: str | None  # "fixed" (deadline_at), "relative" (a period from the start) or None
    deadline_at: datetime | None
    deadline_period_days: int | None
    points: int
    # MATERIAL_TYPES -> materials of that type; empty for a programme without materials yet, whose
    # counts the API sends as PHP's empty array, `[]`.
    material_counts: Mapping[str, int]

    @property
    def materials_total(self) -> int:
        return sum(self.material_counts.values())

    @property
    def deadline_period(self) -> str | None:
        return None if self.deadline_period_days is None else f"P{self.deadline_period_days}D"

    def deadline_for(self, start_at: datetime) -> datetime | None:
        if self.deadline_at is not None:
            return self.deadline_at
        if self.deadline_period_days is not None:
            return start_at + timedelta(days=self.deadline_period_days)
        return None


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


@dataclass(frozen=True, slots=True)
class _Version:
    """One state of a row, written at `modified_at`; the payload shows only the change-time field."""

    modified_at: datetime
    values: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Row:
    """A table row through time: its versions, oldest first.

    `drift` is a hash of the row's key; its bytes decide how every version is rendered.
    """

    drift: int
    versions: tuple[_Version, ...]

    def visible(self, as_of: datetime | None) -> _Version | None:
        """The latest version written before `as_of` (None: the final one); None before the first."""
        if as_of is None:
            return self.versions[-1]
        written_before = bisect.bisect_left(self.versions, as_of, key=_modified_at)
        return self.versions[written_before - 1] if written_before else None


def _modified_at(version: _Version) -> datetime:
    return version.modified_at


@dataclass(frozen=True, slots=True)
class _Parent:
    """The payload object a nested report's rows sit in (a material, a programme); it never changes."""

    values: dict[str, Any]
    drift: int


@dataclass(frozen=True, slots=True)
class _Group:
    """Rows sent together: a nested report's rows under their parent, or all rows of a flat report."""

    parent: _Parent | None
    rows: tuple[_Row, ...]


class RowVersion(NamedTuple):
    """One version of a row: when it was written, and the table row it makes (as `Dataset.truth`)."""

    modified_at: datetime
    row: dict[str, Any]


class Dataset:
    """A generated company: entities, report rows with their histories, and their payload and truth views."""

    def __init__(
        self,
        config: DatasetConfig,
        learners: tuple[Learner, ...],
        materials: tuple[Material, ...],
        courses: tuple[Course, ...],
        programs: tuple[Program, ...],
        records: Mapping[str, list[_Group]],
    ) -> None:
        self.config = config
        self.learners = learners
        self.materials = materials
        self.courses = courses
        self.programs = programs
        self.period_start, self.period_end = _period_bounds(config)
        self._records = records
        self._zone = ZoneInfo(config.timezone)
        self._program_categories = {program.program_id: program.category_id for program in programs}
        for spec in REPORTS:
            _check_records(spec, records[spec.name], self.period_start, self.period_end)

    def day_start(self, day_index: int) -> datetime:
        """Local midnight (in the company time zone) of day `day_index` of the period; 0 is its first day."""
        return _local_midnight(self.config, self.config.start + timedelta(days=day_index))

    def day_window(self, day_index: int) -> tuple[datetime, datetime]:
        """[start, end) of day `day_index`: what a daily incremental export asks for."""
        return self.day_start(day_index), self.day_start(day_index + 1)

    def row_count(self, report_name: str) -> int:
        """Table rows of the whole report in its final state (children for a nested report)."""
        return sum(len(group.rows) for group in self._records[report_name])

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
        spec = REPORTS_BY_NAME[report_name]
        rendering = _RENDERINGS[spec.name]
        for parent, shown in self._select(spec, after, to, as_of, record_filter):
            rendered_rows = (
                _render(spec.fields, version.values, row.drift, self._zone, rendering) for row, version in shown
            )
            if parent is None:
                yield from rendered_rows
            else:
                rendered_parent = _render(spec.parent_fields, parent.values, parent.drift, self._zone, rendering)
                assert spec.children_key is not None
                rendered_parent[spec.children_key] = list(rendered_rows)
                yield rendered_parent

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
            {**parent.values, "extra_fields": _extra_fields(parent.drift)}
            for parent, _ in self._select(spec, after, to, as_of, record_filter)
            if parent is not None
        ]

    def history(self, report_name: str) -> dict[tuple[Any, ...], list[RowVersion]]:
        """Every row's versions, oldest first, by the row's key (the spec's key columns)."""
        spec = REPORTS_BY_NAME[report_name]
        histories = {}
        for group in self._records[report_name]:
            for row in group.rows:
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
        records = self.payload_records(report_name, after, to, as_of=as_of, record_filter=record_filter)
        return write_report_file(path, records, _RENDERINGS[report_name].top_level, stop=stop)

    def _select(
        self,
        spec: ReportSpec,
        after: datetime | None,
        to: datetime | None,
        as_of: datetime | None,
        record_filter: RecordFilter | None,
    ) -> Iterator[tuple[_Parent | None, list[tuple[_Row, _Version]]]]:
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
        for group in self._records[spec.name]:
            if group.parent is not None and not self._selects_program(group.parent, record_filter):
                continue
            shown = []
            visible = False
            for row in group.rows:
                version = row.visible(as_of)
                visible = visible or version is not None
                if (
                    version is not None
                    and (after is None or version.modified_at >= after)
                    and (to is None or version.modified_at < to)
                    and record_filter.selects_row(version.values)
                ):
                    shown.append((row, version))
            if shown or (group.parent is not None and not visible):
                yield group.parent, shown

    def _selects_program(self, parent: _Parent, record_filter: RecordFilter) -> bool:
        if record_filter.program_ids is None and record_filter.category_ids is None:
            return True
        program_id = parent.values["program_id"]
        return (record_filter.program_ids is None or program_id in record_filter.program_ids) and (
            record_filter.category_ids is None or self._program_categories[program_id] in record_filter.category_ids
        )


def _table_row(parent: _Parent | None, row: _Row, version: _Version) -> dict[str, Any]:
    """A version as the loader's table row: parent and row values, and the undocumented fields sent with them."""
    values = dict(version.values) if parent is None else {**parent.values, **version.values}
    extras = dict(_extra_fields(row.drift) or {})
    if parent is not None:
        extras.update({f"parent.{key}": value for key, value in (_extra_fields(parent.drift) or {}).items()})
    values["extra_fields"] = extras or None
    return values


class WriteStopped(Exception):
    """A result file was abandoned before it was complete."""


def write_report_file(
    path: Path,
    records: Iterable[Mapping[str, Any]],
    top_level: Mapping[str, Any],
    *,
    stop: threading.Event | None = None,
) -> int:
    """Write `{"data": [records...], **top_level}` one record at a time; return the record count."""
    count = 0
    with open(path, "w", encoding="utf-8") as file:
        file.write('{"data": [')
        for record in records:
            if stop is not None and stop.is_set():
                raise WriteStopped(f"stopped writing {path} after {count} records")
            file.write(",\n" if count else "\n")
            # json.dumps takes the C encoder; json.dump(record, file) would run the pure-Python one.
            file.write(json.dumps(record, ensure_ascii=False))
            count += 1
        file.write("\n]")
        for key, value in top_level.items():
            file.write(f", {json.dumps(key)}: {json.dumps(value)}")
        file.write("}\n")
    return count


def generate(config: DatasetConfig = DatasetConfig()) -> Dataset:
    """Generate the company of `config`; the same config always gives the same dataset."""
    rng = random.Random(config.seed)
    period = _Period(*_period_bounds(config))
    learners = _learners(rng, config.learners)
    materials = _materials(rng, config.materials)
    courses = _courses(rng, config.courses)
    programs = _programs(rng, config.programs, period)
    attempts, material_statistics = _material_activity(rng, config.seed, learners, materials, period)
    records = {
        ATTEMPTS.name: attempts,
        MATERIAL_STATISTICS.name: material_statistics,
        COURSE_STATISTICS.name: _course_statistics(rng, config.seed, learners, courses, period),
        PROGRAM_STATISTICS.name: _program_statistics(rng, config.seed, learners, programs, period),
    }
    return Dataset(config, learners, materials, courses, programs, records)


# --- rendering ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ReportRendering:
    """How a report's payload differs from its spec beyond the per-record drift."""

    # Integer columns always sent as strings (the attempts report's material_id is a string, the
    # other reports send material ids as ints).
    text_columns: frozenset[str] = frozenset()
    # Date-time columns documented as unix time: sent as an int, or for some records as a date-time.
    unixtime_columns: frozenset[str] = frozenset()
    # Company-specific columns, rendered after the documented ones.
    extra_columns: tuple[str, ...] = ()
    # Top-level keys of the result file next to "data".
    top_level: Mapping[str, Any] = dataclass_field(default_factory=dict)


_RENDERINGS = {
    ATTEMPTS.name: _ReportRendering(text_columns=frozenset({ATTEMPTS.column("material_id").column})),
    MATERIAL_STATISTICS.name: _ReportRendering(),
    COURSE_STATISTICS.name: _ReportRendering(extra_columns=COURSE_EXTRA_COLUMNS),
    PROGRAM_STATISTICS.name: _ReportRendering(
        unixtime_columns=frozenset({PROGRAM_STATISTICS.column("deadline_at").column}), top_level={"include": []}
    ),
}
_OTHER_OFFSET = timezone(timedelta(hours=5))


class _Roll(enum.IntEnum):
    """Which byte of a record's drift hash decides what: independent choices per record."""

    EXTRA_FIELDS = 0
    EXTRA_FIELDS_KIND = 1
    OMITTED_NULLS = 2
    DATETIME_STYLE = 3
    INTS_AS_TEXT = 4
    UNIXTIME_AS_TEXT = 5
    EXTRA_FIELDS_VALUE = 6


def _roll(drift: int, which: _Roll) -> int:
    """0..99, uniform over records."""
    return ((drift >> (8 * which)) & 0xFF) * 100 >> 8


class _DateTimeStyle(enum.Enum):
    COMPANY_OFFSET = "documented form, company offset: 2024-01-05T10:00:00+03:00"
    OTHER_OFFSET = "same instant, another offset: 2024-01-05T12:00:00+05:00"
    UTC_Z = "same instant in UTC: 2024-01-05T07:00:00Z"
    LOCAL_T = "company local time, no offset: 2024-01-05T10:00:00"
    LOCAL_SPACE = "company local time, no offset: 2024-01-05 10:00:00"


# Cumulative roll thresholds: the documented form dominates, each other form is 5-10 % of records.
_DATETIME_STYLES = (
    (65, _DateTimeStyle.COMPANY_OFFSET),
    (75, _DateTimeStyle.OTHER_OFFSET),
    (80, _DateTimeStyle.UTC_Z),
    (90, _DateTimeStyle.LOCAL_T),
    (100, _DateTimeStyle.LOCAL_SPACE),
)


def _datetime_style(drift: int) -> _DateTimeStyle:
    roll = _roll(drift, _Roll.DATETIME_STYLE)
    return next(style for threshold, style in _DATETIME_STYLES if roll < threshold)


def _render_datetime(value: datetime, style: _DateTimeStyle, zone: ZoneInfo) -> str:
    if style is _DateTimeStyle.OTHER_OFFSET:
        return value.astimezone(_OTHER_OFFSET).isoformat()
    if style is _DateTimeStyle.UTC_Z:
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    local = value.astimezone(zone)
    naive = local.replace(tzinfo=None)
    # A local time in a DST fold would name two instants: keep the offset there.
    if style is _DateTimeStyle.COMPANY_OFFSET or naive.replace(tzinfo=zone).utcoffset() != local.utcoffset():
        return local.isoformat()
    return naive.isoformat(sep="T" if style is _DateTimeStyle.LOCAL_T else " ")


def _extra_fields(drift: int) -> dict[str, Any] | None:
    """The undocumented fields the payload carries for a record, built fresh on every call."""
    if _roll(drift, _Roll.EXTRA_FIELDS) >= EXTRA_FIELDS_SHARE:
        return None
    value = _roll(drift, _Roll.EXTRA_FIELDS_VALUE) + 1
    kinds = (
        {"category_id": value},
        {"tags": ["a", f"t{value}"]},
        {"category_id": value, "tags": []},
        {"external_id": f"ext-{value}", "meta": {"source": "sync"}},
    )
    return kinds[_roll(drift, _Roll.EXTRA_FIELDS_KIND) % len(kinds)]


def _render(
    fields: tuple[Field, ...], values: Mapping[str, Any], drift: int, zone: ZoneInfo, rendering: _ReportRendering
) -> dict[str, Any]:
    """The payload object of one record's values (without its children), drifting as `drift` says."""
    omit_nulls = _roll(drift, _Roll.OMITTED_NULLS) < OMITTED_NULLS_SHARE
    ints_as_text = _roll(drift, _Roll.INTS_AS_TEXT) < INTS_AS_TEXT_SHARE
    unixtime_as_text = _roll(drift, _Roll.UNIXTIME_AS_TEXT) < UNIXTIME_AS_TEXT_SHARE
    style = _datetime_style(drift)
    subobjects = {field.source[0] for field in fields if len(field.source) > 1}
    rendered: dict[str, Any] = {}
    for field in fields:
        value = values[field.column]
        if value is None and (omit_nulls or field.source[0] in subobjects):
            continue
        if value is None:
            payload_value: Any = None
        elif field.column in rendering.unixtime_columns and not unixtime_as_text:
            payload_value = int(value.timestamp())
        elif field.type is FieldType.TIMESTAMP:
            payload_value = _render_datetime(value, style, zone)
        elif field.type is FieldType.INTEGER and (ints_as_text or field.column in rendering.text_columns):
            payload_value = str(value)
        else:
            payload_value = value
        _place(rendered, field.source, payload_value)
    for key in subobjects - rendered.keys():
        rendered[key] = []  # an object without values, as PHP writes it
    for column in rendering.extra_columns:
        rendered[column] = values[column]
    rendered.update(_extra_fields(drift) or {})
    return rendered


def _place(target: dict[str, Any], source: tuple[str, ...], value: Any) -> None:
    for key in source[:-1]:
        target = target.setdefault(key, {})
    target[source[-1]] = value


def _check_records(spec: ReportSpec, groups: list[_Group], period_start: datetime, period_end: datetime) -> None:
    """Fail loudly when specs.py and the generator disagree about a report, or a history is inconsistent.

    Every version must have the report's columns and key, be written inside the period after the
    previous one, and carry its `modified_at` as the change time unless that is null.
    """
    extra_columns = _RENDERINGS[spec.name].extra_columns
    pattern = spec.dynamic_columns
    if extra_columns and (pattern is None or not all(pattern.fullmatch(column) for column in extra_columns)):
        raise AssertionError(f"{spec.name}: {extra_columns} are not dynamic columns of the spec")
    parent_columns = {field.column for field in spec.parent_fields}
    row_columns = {field.column for field in spec.fields} | set(extra_columns)
    row_key_columns = [column for column in spec.key if column in row_columns]
    for group in groups:
        if (group.parent is None) == spec.is_nested:
            raise AssertionError(f"{spec.name}: rows must sit under a parent exactly when the report is nested")
        if group.parent is not None and group.parent.values.keys() != parent_columns:
            raise AssertionError(
                f"{spec.name}: parent columns {sorted(group.parent.values)} != {sorted(parent_columns)}"
            )
        for row in group.rows:
            moments = [version.modified_at for version in row.versions]
            if moments != sorted(set(moments)) or not period_start <= moments[0] <= moments[-1] < period_end:
                raise AssertionError(f"{spec.name}: versions written at {moments} are out of order or of the period")
            key = [row.versions[0].values[column] for column in row_key_columns]
            for version in row.versions:
                values = version.values
                if values.keys() != row_columns:
                    raise AssertionError(f"{spec.name}: row columns {sorted(values)} != {sorted(row_columns)}")
                if [values[column] for column in row_key_columns] != key:
                    raise AssertionError(f"{spec.name}: a version changes the key of its row")
                if values[spec.change_time] not in (None, version.modified_at):
                    raise AssertionError(
                        f"{spec.name}: change time {values[spec.change_time]} != {version.modified_at}"
                    )


def _drift(seed: int, report: str, key: tuple[Any, ...]) -> int:
    digest = hashlib.blake2b(repr((seed, report, key)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _row(seed: int, spec: ReportSpec, versions: list[_Version], parent: _Parent | None = None) -> _Row:
    """A table row; its drift hash comes from the report key, which may include parent columns."""
    values = versions[0].values if parent is None else {**parent.values, **versions[0].values}
    key = tuple(values[column] for column in spec.key)
    return _Row(_drift(seed, spec.name, key), tuple(versions))


def _parent(seed: int, spec: ReportSpec, values: dict[str, Any]) -> _Parent:
    key = ("parent", *(values[column] for column in spec.key if column in values))
    return _Parent(values, _drift(seed, spec.name, key))


# --- the company ---------------------------------------------------------------------------------


def _local_midnight(config: DatasetConfig, day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=ZoneInfo(config.timezone))


def _period_bounds(config: DatasetConfig) -> tuple[datetime, datetime]:
    """The period rows change in: local midnight of `start` to local midnight `days` later, as UTC instants."""
    end_day = config.start + timedelta(days=config.days)
    return _local_midnight(config, config.start).astimezone(UTC), _local_midnight(config, end_day).astimezone(UTC)


# How long a learner leaves a record alone between two sessions on it: hours to days, so that most
# records change on several days.
_SESSION_GAP_SECONDS = (2 * 3600, 4 * 24 * 3600)


@dataclass(frozen=True)
class _Period:
    start: datetime
    end: datetime

    def moment(self, rng: random.Random) -> datetime:
        """A whole-second instant, uniform over the period."""
        return self.start + timedelta(seconds=rng.randrange(int((self.end - self.start).total_seconds())))

    def sessions(self, rng: random.Random, after: datetime, count: int) -> list[datetime]:
        """Up to `count` moments following `after` at gaps of hours to days: those before the period ends."""
        moments: list[datetime] = []
        moment = after
        for _ in range(count):
            moment = _after_a_gap(rng, moment)
            if moment >= self.end:
                break
            moments.append(moment)
        return moments

    @property
    def second_half(self) -> _Period:
        return _Period(self.start + (self.end - self.start) / 2, self.end)


def _after_a_gap(rng: random.Random, moment: datetime) -> datetime:
    return moment + timedelta(seconds=rng.randint(*_SESSION_GAP_SECONDS))


_SURNAMES = (
    ("Иванов", "ivanov"),
    ("Петров", "petrov"),
    ("Смирнов", "smirnov"),
    ("Кузнецов", "kuznetsov"),
    ("Попов", "popov"),
    ("Соколов", "sokolov"),
    ("Лебедев", "lebedev"),
    ("Козлов", "kozlov"),
    ("Новиков", "novikov"),
    ("Морозов", "morozov"),
    ("Волков", "volkov"),
    ("Бирюков", "biryukov"),
)
# (name, login initial, is female)
_FIRST_NAMES = (
    ("Иван", "i", False),
    ("Пётр", "p", False),
    ("Алексей", "a", False),
    ("Дмитрий", "d", False),
    ("Евгений", "e", False),
    ("Анна", "a", True),
    ("Мария", "m", True),
    ("Елена", "e", True),
    ("Ольга", "o", True),
    ("Наталья", "n", True),
)
_REGIONS = (
    ("Волгоградская область", "Волгоград"),
    ("Московская область", "Москва"),
    ("Свердловская область", "Екатеринбург"),
    ("Новосибирская область", "Новосибирск"),
    ("Республика Татарстан", "Казань"),
    ("Краснодарский край", "Краснодар"),
)
_GROUP_VALUES = {
    "group_role": ("Руководитель", "Специалист", "Разработчик", "Стажёр"),
    "group_position": ("Менеджер", "Разработчик", "Аналитик", "Продавец", "Кассир"),
    "group_team": ("Команда ИТ", "Команда ИТР", "Команда продаж", "Команда поддержки"),
    "group_department": ("Управление", "Управление ИТ", "Отдел продаж", "Склад"),
    "group_function": ("Программная разработка", "Продажи", "Логистика", "Обучение"),
    "group_shift": ("Дневная смена", "Ночная смена", "Вахта"),
}
_EXPERIENCE = ("до 1 года", "1-3 года", "более 3 лет")
_TOPICS = (
    "Техника безопасности",
    "Стандарты сервиса",
    "Продукты компании",
    "Работа с возражениями",
    "Охрана труда",
    "Кассовая дисциплина",
    "Информационная безопасность",
    "Адаптация",
)
_TYPE_TITLES = {
    "pdf": "Памятка",
    "scorm": "Интерактив",
    "link": "Ссылка",
    "html": "Статья",
    "test": "Тест",
    "video": "Видео",
    "longread": "Лонгрид",
    "document": "Документ",
}


def _chance(rng: random.Random, share: float) -> bool:
    return rng.random() < share


def _sometimes_none(rng: random.Random, value: str, none_share: float) -> str | None:
    return None if _chance(rng, none_share) else value


def _ids(rng: random.Random, first: int, count: int, max_step: int) -> list[int]:
    """Increasing ids with gaps, as a live system leaves them."""
    ids, current = [], first
    for _ in range(count):
        ids.append(current)
        current += rng.randint(1, max_step)
    return ids


def _learners(rng: random.Random, count: int) -> tuple[Learner, ...]:
    learners = []
    for user_id in _ids(rng, 30001, count, 3):
        surname, surname_latin = rng.choice(_SURNAMES)
        first_name, initial, female = rng.choice(_FIRST_NAMES)
        suffix = "а" if female else ""
        region, city = rng.choice(_REGIONS)
        groups: dict[str, str | None] = {"group_region": region, "group_city": _sometimes_none(rng, city, 0.05)}
        for column in GROUP_COLUMNS[2:]:
            groups[column] = _sometimes_none(rng, rng.choice(_GROUP_VALUES[column]), 0.05)
        answers = {
            "form_question_10": _sometimes_none(rng, "Ж" if female else "М", 0.1),
            "form_question_12": _sometimes_none(rng, rng.choice(_EXPERIENCE), 0.3),
        }
        learners.append(
            Learner(
                user_id=user_id,
                login=f"{surname_latin}{'a' if female else ''}.{initial}{user_id}",
                fio=f"{surname}{suffix} {first_name}",
                user_status="blocked" if _chance(rng, 0.08) else "active",
                groups=groups,
                answers=answers,
            )
        )
    return tuple(learners)


# Share of materials whose id is the id of an earlier material of another type, as in the
# vendor's example (135 is a video, a longread and a document).
_REUSED_ID_SHARE = 0.2


def _materials(rng: random.Random, count: int) -> tuple[Material, ...]:
    # Every type in turn, then shuffled: each type is present as soon as there are enough materials.
    types = [MATERIAL_TYPES[index % len(MATERIAL_TYPES)] for index in range(count)]
    rng.shuffle(types)
    ids = _ids(rng, 1001, count, 4)
    taken = set(zip(ids, types, strict=True))
    for index, type_ in enumerate(types):
        earlier = ids[rng.randrange(index)] if index and _chance(rng, _REUSED_ID_SHARE) else None
        if earlier is not None and (earlier, type_) not in taken:
            taken.discard((ids[index], type_))
            ids[index] = earlier
            taken.add((earlier, type_))
    materials = []
    for number, (material_id, type_) in enumerate(zip(ids, types, strict=True), start=1):
        is_test = type_ == "test"
        materials.append(
            Material(
                material_id=material_id,
                name=_sometimes_none(rng, f"{_TYPE_TITLES[type_]}: {rng.choice(_TOPICS)} {number}", 0.05),
                type=type_,
                points=rng.randint(5, 50) if type_ in POINTED_MATERIAL_TYPES else None,
                visibility="hide" if _chance(rng, 0.1) else "active",
                question_count=rng.randint(3, 15) if is_test else None,
                pass_percent=rng.choice((60, 70, 80, 90)) if is_test else None,
            )
        )
    return tuple(materials)


def _courses(rng: random.Random, count: int) -> tuple[Course, ...]:
    # Course ids live in their own range, apart from the learning materials'.
    return tuple(
        Course(
            material_id=material_id,
            name=_sometimes_none(rng, f"Курс: {rng.choice(_TOPICS)} {number}", 0.1),
            is_required=int(_chance(rng, 0.5)),
            content_totals={content: rng.randint(0, 4) for content in COURSE_CONTENT_TYPES},
            max_interaction_scores=rng.choice((0, rng.randint(5, 50))),
            max_final_scores=rng.choice((0, rng.randint(10, 100))),
            has_scorm=_chance(rng, 0.5),
        )
        for number, material_id in enumerate(_ids(rng, 18001, count, 5), start=1)
    )


def _programs(rng: random.Random, count: int, period: _Period) -> tuple[Program, ...]:
    """The programmes; of three or more, the second has no materials yet."""
    programs = []
    for number, program_id in enumerate(_ids(rng, 501, count, 3), start=1):
        counts = {type_: rng.randint(0, 3) for type_ in MATERIAL_TYPES}
        if not any(counts.values()):
            counts["test"] = 1
        if number == 2 and count >= 3:
            counts = {}
        # Deadlines in the second half of the period, so some learners finish in time and some late.
        deadline_type = rng.choice(("fixed", "fixed", "relative", None))
        programs.append(
            Program(
                program_id=program_id,
                name=_sometimes_none(rng, f"Программа: {rng.choice(_TOPICS)} {number}", 0.1),
                category_id=rng.randint(1, 4),
                deadline_type=deadline_type,
                deadline_at=period.second_half.moment(rng) if deadline_type == "fixed" else None,
                deadline_period_days=rng.choice((7, 14, 30)) if deadline_type == "relative" else None,
                points=rng.randint(10, 200),
                material_counts=counts,
            )
        )
    return tuple(programs)


def _material_parent_values(material: Material) -> dict[str, Any]:
    return {
        "material_id": material.material_id,
        "material_type": material.type,
        "material_name": material.name,
        "material_points": material.points,
        "material_visibility": material.visibility,
    }


def _program_parent_values(program: Program) -> dict[str, Any]:
    return {
        "program_id": program.program_id,
        "program_name": program.name,
        "deadline_type": program.deadline_type,
        "deadline_at": program.deadline_at,
        "deadline_period_at": program.deadline_period,
        "program_points": program.points,
        **{f"materials_{type_}": program.material_counts.get(type_) for type_ in MATERIAL_TYPES},
        "materials_total": program.materials_total if program.material_counts else None,
    }


def _material_activity(
    rng: random.Random, seed: int, learners: tuple[Learner, ...], materials: tuple[Material, ...], period: _Period
) -> tuple[list[_Group], list[_Group]]:
    """Test attempts and material statistics: a test's statistics follow the learner's attempts.
    Of two or more materials, the last is assigned to nobody yet."""
    attempts: list[_Row] = []
    groups = []
    for number, material in enumerate(materials, start=1):
        parent = _parent(seed, MATERIAL_STATISTICS, _material_parent_values(material))
        assignment_share = rng.uniform(0.15, 0.45)
        if number == len(materials) > 1:
            assignment_share = 0.0
        rows = []
        for learner in learners:
            if not _chance(rng, assignment_share):
                continue
            assigned_at = period.moment(rng)
            if material.type == "test":
                learner_attempts = _attempts(rng, material, learner, assigned_at, period)
                attempts.extend(_row(seed, ATTEMPTS, versions) for versions in learner_attempts)
                versions = _test_material_versions(learner, assigned_at, learner_attempts)
            else:
                versions = _other_material_versions(rng, material, learner, assigned_at, period)
            rows.append(_row(seed, MATERIAL_STATISTICS, versions, parent))
        groups.append(_Group(parent, tuple(rows)))
    return [_Group(None, tuple(attempts))], groups


# Share of attempts with open-answer questions: such an attempt is "checking" until a reviewer
# grades it, usually on a later day.
_MANUAL_CHECK_SHARE = 0.6


def _attempts(
    rng: random.Random, material: Material, learner: Learner, assigned_at: datetime, period: _Period
) -> list[list[_Version]]:
    """A learner's attempts at a test, oldest first, each as its versions.

    An attempt is written when submitted. One with open-answer questions stays "checking" until
    they are graded (possibly after the period). The learner tries again only after a fail.
    """
    assert material.question_count is not None
    planned = rng.choices((0, 1, 2, 3, 4), weights=(30, 35, 20, 10, 5))[0]
    attempts: list[list[_Version]] = []
    ready_at = assigned_at
    for number in range(1, planned + 1):
        started_at = _after_a_gap(rng, ready_at)
        ended_at = started_at + timedelta(seconds=rng.randint(60, 45 * 60))
        submitted_at = ended_at + timedelta(seconds=rng.randint(0, 60))
        if submitted_at >= period.end:
            break
        q_checking = rng.randint(1, min(3, material.question_count)) if _chance(rng, _MANUAL_CHECK_SHARE) else 0
        q_success = rng.randint(0, material.question_count - q_checking)
        attempt = functools.partial(
            _attempt_values,
            attempt_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            material=material,
            login=learner.login,
            # The vendor example leaves most numbers null.
            number=None if _chance(rng, 0.4) else number,
            started_at=started_at,
            ended_at=ended_at,
        )
        versions = [
            _Version(submitted_at, attempt(q_success=q_success, q_checking=q_checking, updated_at=submitted_at))
        ]
        if q_checking:
            checked_at = _after_a_gap(rng, submitted_at)
            if checked_at < period.end:
                graded = attempt(q_success=q_success + rng.randint(0, q_checking), q_checking=0, updated_at=checked_at)
                versions.append(_Version(checked_at, graded))
        attempts.append(versions)
        if versions[-1].values["status"] != "fail":
            break
        ready_at = versions[-1].modified_at
    return attempts


def _attempt_values(
    *,
    attempt_id: str,
    material: Material,
    login: str,
    number: int | None,
    started_at: datetime,
    ended_at: datetime,
    q_success: int,
    q_checking: int,
    updated_at: datetime,
) -> dict[str, Any]:
    assert material.question_count is not None and material.pass_percent is not None and material.points is not None
    q_count = material.question_count
    percent = round(100 * q_success / q_count)
    return {
        "attempt_id": attempt_id,
        "material_id": material.material_id,
        "login": login,
        "status": "checking" if q_checking else "completed" if percent >= material.pass_percent else "fail",
        "number": number,
        "points": round(material.points * q_success / q_count),
        "percent": percent,
        "q_count": q_count,
        "q_success": q_success,
        "q_fail": q_count - q_checking - q_success,
        "q_checking": q_checking,
        "started_at": started_at,
        "ended_at": ended_at,
        "created_at": ended_at,
        "updated_at": updated_at,
    }


def _material_row(
    learner: Learner,
    status: str,
    progress: int,
    points: int | None,
    start_at: datetime | None,
    end_at: datetime | None,
    update_at: datetime,
    attempts: int | None = None,
) -> dict[str, Any]:
    return {
        "login": learner.login,
        "user_status": learner.user_status,
        "material_status": status,
        "points": points,
        "attempts": attempts,
        "progress": progress,
        "start_at": start_at,
        "end_at": end_at,
        "update_at": update_at,
    }


def _appointment(learner: Learner, assigned_at: datetime, attempts: int | None = None) -> _Version:
    """A material row's first version; unlike the other reports, an appointment sets the change time."""
    return _Version(assigned_at, _material_row(learner, "appointed", 0, None, None, None, assigned_at, attempts))


def _test_material_versions(learner: Learner, assigned_at: datetime, attempts: list[list[_Version]]) -> list[_Version]:
    """Statistics of a test: appointed, then a version with every attempt version, showing the latest
    attempt and how many there were."""
    versions = [_appointment(learner, assigned_at, attempts=0)]
    best_earlier_points = 0
    for count, attempt in enumerate(attempts, start=1):
        for attempt_version in attempt:
            values, moment = attempt_version.values, attempt_version.modified_at
            status = values["status"]
            versions.append(
                _Version(
                    moment,
                    _material_row(
                        learner,
                        status,
                        100,
                        max(best_earlier_points, values["points"]),
                        attempts[0][0].values["started_at"],
                        None if status == "checking" else values["ended_at"],
                        moment,
                        count,
                    ),
                )
            )
        best_earlier_points = max(best_earlier_points, attempt[-1].values["points"])
    return versions


def _other_material_versions(
    rng: random.Random, material: Material, learner: Learner, assigned_at: datetime, period: _Period
) -> list[_Version]:
    """Statistics of a material that is not a test.

    Appointed, then every session raises the progress (and points), and the last planned session
    may complete it.
    """
    versions = [_appointment(learner, assigned_at)]
    planned = rng.choices((0, 1, 2, 3, 4), weights=(25, 20, 20, 20, 15))[0]
    progresses = sorted(rng.sample(range(1, 100), planned))
    if planned and _chance(rng, 0.65):
        progresses[-1] = 100
    skill = rng.uniform(0.5, 1.0)
    sessions = period.sessions(rng, assigned_at, planned)
    for moment, progress in zip(sessions, progresses[: len(sessions)], strict=True):
        completed = progress == 100
        points = None if material.points is None else round(material.points * skill * progress / 100)
        values = _material_row(
            learner,
            "completed" if completed else "in_progress",
            progress,
            points,
            sessions[0],
            moment if completed else None,
            moment,
        )
        versions.append(_Version(moment, values))
    return versions


def _course_statistics(
    rng: random.Random, seed: int, learners: tuple[Learner, ...], courses: tuple[Course, ...], period: _Period
) -> list[_Group]:
    rows = []
    for course in courses:
        assignment_share = rng.uniform(0.2, 0.6)
        for learner in learners:
            if _chance(rng, assignment_share):
                rows.append(_row(seed, COURSE_STATISTICS, _course_versions(rng, course, learner, period)))
    return [_Group(None, tuple(rows))]


def _course_versions(rng: random.Random, course: Course, learner: Learner, period: _Period) -> list[_Version]:
    """One learner's course row over time.

    Assigned, it is not started and has no dates at all (null last_activity). Every session views
    more content, scores more, may take a turn at the final test, and is the new last_activity.
    The last planned session may complete the course: everything viewed, the final test passed.
    """
    assigned_at = period.moment(rng)
    planned = rng.choices((0, 1, 2, 3, 4, 5), weights=(30, 14, 14, 14, 14, 14))[0]
    completes = planned > 0 and _chance(rng, 0.55)
    takes_final_test = course.max_final_scores > 0 and planned > 0 and (completes or _chance(rng, 0.5))
    # The final test is taken once in each of the last sessions; only the completing turn passes it.
    final_turns = rng.randint(1, min(3, planned)) if takes_final_test else 0
    pass_scores = math.ceil(course.max_final_scores * 0.6)
    skill = rng.uniform(0.5, 1.0)
    scorm_completed_status = rng.choice(("completed", "passed"))
    scorm_unfinished_status = rng.choice(("not completed", "Unknown", "failed"))
    row: dict[str, Any] = {
        "user_id": learner.user_id,
        "material_id": course.material_id,
        "fio": learner.fio,
        "user_status": learner.user_status,
        "login": learner.login,
        "start_time": None,
        "complete_date": None,
        "total_time": 0,
        "course_name": course.name,
        "is_required": course.is_required,
        "user_scores": 0,
        "max_interaction_scores": course.max_interaction_scores,
        **{f"{content}_viewed": 0 for content in COURSE_CONTENT_TYPES},
        **{f"{content}_total": course.content_totals[content] for content in COURSE_CONTENT_TYPES},
        "scorm_total_time": None,
        "scorm_status": "not started" if course.has_scorm else None,
        "scorm_percent": None,
        "user_final_scores": 0,
        "max_final_scores": course.max_final_scores,
        "percent_final_scores": None,
        "last_activity": None,
        "current_turn": None,
        "turns_count": None,
        "filled_type": rng.choices((None, "Польз.", "Импорт"), weights=(70, 20, 10))[0],
        **learner.groups,
        **learner.answers,
    }
    versions = [_Version(assigned_at, row)]
    sessions = period.sessions(rng, assigned_at, planned)
    for number, moment in enumerate(sessions, start=1):
        completed = completes and number == planned
        share = 1.0 if completed else number / (planned if completes else planned + 1)
        session_seconds = rng.randint(60, 3600)
        row = {
            **row,
            "start_time": sessions[0],
            "complete_date": moment if completed else None,
            "total_time": row["total_time"] + session_seconds,
            "user_scores": round(course.max_interaction_scores * skill * share),
            **{f"{content}_viewed": math.floor(total * share) for content, total in course.content_totals.items()},
            "last_activity": moment,
        }
        if course.has_scorm:
            row["scorm_total_time"] = (row["scorm_total_time"] or 0) + rng.randint(30, session_seconds)
            if completed:
                row["scorm_status"], row["scorm_percent"] = scorm_completed_status, 100
            else:
                row["scorm_status"], row["scorm_percent"] = scorm_unfinished_status, round(99 * share)
        turns = number - (planned - final_turns)
        if turns > 0:
            scores = rng.randint(pass_scores, course.max_final_scores) if completed else rng.randint(0, pass_scores - 1)
            row["user_final_scores"] = scores
            row["percent_final_scores"] = round(100 * scores / course.max_final_scores)
            row["current_turn"] = row["turns_count"] = turns
        versions.append(_Version(moment, row))
    return versions


def _program_statistics(
    rng: random.Random, seed: int, learners: tuple[Learner, ...], programs: tuple[Program, ...], period: _Period
) -> list[_Group]:
    """Of two or more programmes, the last is assigned to nobody yet."""
    groups = []
    for number, program in enumerate(programs, start=1):
        parent = _parent(seed, PROGRAM_STATISTICS, _program_parent_values(program))
        assignment_share = rng.uniform(0.3, 0.7)
        if number == len(programs) > 1:
            assignment_share = 0.0
        rows = tuple(
            _row(seed, PROGRAM_STATISTICS, _program_versions(rng, program, learner, period), parent)
            for learner in learners
            if _chance(rng, assignment_share)
        )
        groups.append(_Group(parent, rows))
    return groups


def _program_versions(rng: random.Random, program: Program, learner: Learner, period: _Period) -> list[_Version]:
    """One learner's programme row over time.

    Assigned, it is appointed and was never active (null active_at). Every session completes more
    materials and is the new active_at. The last planned session ends the plan: completed (end_at,
    passed_at_time), or with one test left open (checking) or failed (fail, with end_at); an
    in_progress plan never finishes, nor does one of a programme without materials. Some learners
    have a deadline of their own, which passed_at_time then measures against.
    """
    assigned_at = period.moment(rng)
    has_tests = program.material_counts.get("test", 0) > 0
    total = program.materials_total
    outcome = rng.choices(
        ("appointed", "in_progress", "completed", "checking", "fail"),
        weights=(20, 30, 40, 5, 5) if has_tests else (20, 40, 40, 0, 0) if total else (20, 80, 0, 0, 0),
    )[0]
    planned = 0 if outcome == "appointed" else rng.randint(1, 5)
    completion_order = [type_ for type_, count in program.material_counts.items() for _ in range(count)]
    rng.shuffle(completion_order)
    if outcome in ("checking", "fail"):
        # The open test is the one material never completed.
        completion_order.remove("test")
        completion_order.append("test")
    done_after_session = sorted(rng.randint(0, max(0, total - 1)) for _ in range(planned))
    if outcome != "in_progress" and planned:
        done_after_session[-1] = total if outcome == "completed" else total - 1
    skill = rng.uniform(0.5, 1.0)
    own_deadline = assigned_at + timedelta(days=rng.randint(7, 45)) if _chance(rng, 0.3) else None
    row: dict[str, Any] = {
        "login": learner.login,
        "user_status": learner.user_status,
        "program_status": "appointed",
        "progress": 0,
        "points": None,
        "start_at": None,
        "active_at": None,
        "end_at": None,
        "passed_at_time": None,
        "learner_deadline_at": own_deadline,
        **{f"completed_{type_}": 0 for type_ in MATERIAL_TYPES},
    }
    versions = [_Version(assigned_at, row)]
    sessions = period.sessions(rng, assigned_at, planned)
    deadline = own_deadline or (program.deadline_for(sessions[0]) if sessions else None)
    for number, (moment, done) in enumerate(zip(sessions, done_after_session[: len(sessions)], strict=True), 1):
        status = outcome if number == planned and outcome != "in_progress" else "in_progress"
        end_at = moment if status in ("completed", "fail") else None
        completed = Counter(completion_order[:done])
        row = {
            **row,
            "program_status": status,
            "progress": 100 * done // total if total else 0,
            "points": int(program.points * skill * done / total) if total else 0,
            "start_at": sessions[0],
            "active_at": moment,
            "end_at": end_at,
            "passed_at_time": None if status != "completed" or deadline is None else moment <= deadline,
            **{f"completed_{type_}": completed[type_] for type_ in MATERIAL_TYPES},
        }
        versions.append(_Version(moment, row))
    return versions


# --- company-scale report files ------------------------------------------------------------------
#
# `generate` keeps every row's history as Python objects: right for tests, hopeless for the
# millions of rows of a big customer. A `BulkCompany` keeps only the entities (learners, materials,
# courses, programmes) and streams each report to its file, deriving every row's state from its
# own random bytes and rendering it straight to text with the same drift as `_render`.

# Average table rows under one parent of each report. Attempts spread over the tests among the
# materials: about 4000 per test, so a learner may take a test more than once.
_BULK_ROWS_PER_PARENT = {
    MATERIAL_STATISTICS.name: 500,
    COURSE_STATISTICS.name: 500,
    PROGRAM_STATISTICS.name: 1000,
}
_BULK_MIN_LEARNERS = 5000  # more than any parent's rows, so that a parent never repeats a learner
# A row's random draws: its drift hash, then independent words for its values.
_BULK_ROW = struct.Struct("<Q10I")
# Most sessions a bulk row has before the day file's one; each needs a gap word.
_BULK_MAX_SESSIONS = 4
_BULK_NEW_ROWS_SHARE = 0.2  # of a day file's rows: rows of learners hired that day, the rest are updates
_TEST_OUTCOMES = ("completed", "completed", "fail", "checking")
_FILLED_TYPES = (None,) * 7 + ("Польз.",) * 2 + ("Импорт",)


@dataclass(frozen=True)
class BulkConfig:
    """A company whose every report has `rows` table rows, changed in [start, start + days).

    The report files hold the state before the period's last day; the day files hold what
    changed on that day.
    """

    rows: int
    seed: int = 7
    start: date = date(2024, 1, 1)
    days: int = 60
    timezone: str = "Europe/Moscow"

    def __post_init__(self) -> None:
        if self.rows < 1:
            raise ValueError("rows must be at least 1")
        if self.days < 2:
            raise ValueError("days must be at least 2: the last one is the day file's")
        ZoneInfo(self.timezone)


@dataclass(frozen=True)
class BulkFile:
    path: Path
    rows: int  # table rows: children of a nested report
    records: int  # elements of the `data` array


@dataclass(frozen=True)
class BulkDayFile(BulkFile):
    updated_rows: int  # rows of the report file that changed on the day
    new_rows: int  # rows that first appear on the day
    after: datetime  # the day, as an export window
    to: datetime


class BulkCompany:
    """A company sized by `BulkConfig.rows`, writing its reports as the API sends them.

    Entities come from the same functions as `generate`'s; every row is drawn from random bytes
    seeded by (seed, report, parent), so the same config always writes the same files, and the
    day file can re-derive the rows it changes without rendering the others.
    """

    def __init__(self, config: BulkConfig) -> None:
        self.config = config
        rows = config.rows
        dataset_config = DatasetConfig(seed=config.seed, start=config.start, days=config.days, timezone=config.timezone)
        period_start, period_end = _period_bounds(dataset_config)
        last_day = _local_midnight(dataset_config, config.start + timedelta(days=config.days - 1)).astimezone(UTC)
        self.day_after, self.day_to = last_day, period_end
        rng = random.Random(config.seed)
        self.learner_count = max(_BULK_MIN_LEARNERS, rows // 30)
        self.new_hire_count = max(100, self.learner_count // 50)
        learners = _learners(rng, self.learner_count + self.new_hire_count)
        materials = _materials(rng, max(len(MATERIAL_TYPES), rows // _BULK_ROWS_PER_PARENT[MATERIAL_STATISTICS.name]))
        courses = _courses(rng, max(1, rows // _BULK_ROWS_PER_PARENT[COURSE_STATISTICS.name]))
        programs = _programs(
            rng, max(1, rows // _BULK_ROWS_PER_PARENT[PROGRAM_STATISTICS.name]), _Period(period_start, period_end)
        )
        texts = _BulkTexts(period_start, period_end, ZoneInfo(config.timezone))
        seconds = int((period_end - period_start).total_seconds())
        self._full_span = int((last_day - period_start).total_seconds())
        self._day_span = seconds - self._full_span
        self._reports: dict[str, _BulkReport] = {
            ATTEMPTS.name: _BulkAttempts(texts, learners, [m for m in materials if m.type == "test"]),
            MATERIAL_STATISTICS.name: _BulkMaterialStatistics(texts, learners, materials, config.seed),
            COURSE_STATISTICS.name: _BulkCourseStatistics(texts, learners, courses),
            PROGRAM_STATISTICS.name: _BulkProgramStatistics(texts, learners, programs, config.seed, period_start),
        }
        self._plans = {name: self._plan(name) for name in self._reports}

    def write_report_file(self, report_name: str, path: Path) -> BulkFile:
        """The full report before the period's last day: `config.rows` table rows."""
        report = self._reports[report_name]
        with open(path, "w", encoding="utf-8") as out:
            writer = _BulkWriter(report, out)
            for index, (parent, count, first_learner) in enumerate(self._plans[report_name]):
                words = _BULK_ROW.iter_unpack(self._row_bytes(report_name, index, count))
                writer.write_group(
                    parent,
                    [
                        report.row_text(
                            parent, (first_learner + k) % self.learner_count, row_words, 0, self._full_span, None
                        )
                        for k, row_words in enumerate(words)
                    ],
                )
            writer.finish()
        return BulkFile(path, writer.rows, writer.records)

    def write_day_file(self, report_name: str, path: Path, changed_rows: int) -> BulkDayFile:
        """What the last day changed: about `changed_rows` rows, most of them updates of rows of the
        report file (one more session on the day), the others rows of learners hired that day."""
        report = self._reports[report_name]
        plan = self._plans[report_name]
        rng = random.Random(f"{self.config.seed}/{report_name}/day")
        new_count = min(round(changed_rows * _BULK_NEW_ROWS_SHARE), len(plan) * self.new_hire_count)
        updated = sorted(rng.sample(range(self.config.rows), min(changed_rows - new_count, self.config.rows)))
        boundaries = list(itertools.accumulate(count for _, count, _ in plan))
        by_parent: dict[int, list[str]] = {}
        for row_index in updated:
            index = bisect.bisect_right(boundaries, row_index)
            parent, count, first_learner = plan[index]
            k = row_index - (boundaries[index] - count)
            # Rebuilding the parent's bytes costs little next to rendering its rows.
            row_words = _BULK_ROW.unpack_from(self._row_bytes(report_name, index, count), k * _BULK_ROW.size)
            moment = self._full_span + rng.randrange(self._day_span)
            learner = (first_learner + k) % self.learner_count
            by_parent.setdefault(index, []).append(
                report.row_text(parent, learner, row_words, 0, self._full_span, moment)
            )
        for new_row in range(new_count):
            # Hire j joins parents j mod P: no (parent, learner) pair repeats.
            index, hire = new_row % len(plan), new_row // len(plan)
            row_words = _BULK_ROW.unpack(rng.randbytes(_BULK_ROW.size))
            by_parent.setdefault(index, []).append(
                report.row_text(
                    plan[index][0], self.learner_count + hire, row_words, self._full_span, self._day_span, None
                )
            )
        with open(path, "w", encoding="utf-8") as out:
            writer = _BulkWriter(report, out)
            for index in sorted(by_parent):
                writer.write_group(plan[index][0], by_parent[index])
            writer.finish()
        return BulkDayFile(path, writer.rows, writer.records, len(updated), new_count, self.day_after, self.day_to)

    def _plan(self, report_name: str) -> list[tuple[Any, int, int]]:
        """Each parent with its row count and first learner; the counts add up to `config.rows`."""
        parents = self._reports[report_name].parents
        rng = random.Random(f"{self.config.seed}/{report_name}/plan")
        weights = [0.5 + rng.random() for _ in parents]
        total_weight = sum(weights)
        cumulative = [round(self.config.rows * weight / total_weight) for weight in itertools.accumulate(weights)]
        cumulative[-1] = self.config.rows
        counts = [high - low for low, high in itertools.pairwise([0, *cumulative])]
        if self._reports[report_name].spec is not ATTEMPTS and max(counts) > self.learner_count:
            raise AssertionError(f"{report_name}: a parent has more rows than there are learners")
        return [
            (parent, count, rng.randrange(self.learner_count)) for parent, count in zip(parents, counts, strict=True)
        ]

    def _row_bytes(self, report_name: str, parent_index: int, count: int) -> bytes:
        return random.Random(f"{self.config.seed}/{report_name}/{parent_index}").randbytes(count * _BULK_ROW.size)


class _BulkTexts:
    """JSON texts that repeat across rows: strings, and date-times hour by hour in every drift style."""

    def __init__(self, period_start: datetime, period_end: datetime, zone: ZoneInfo) -> None:
        self.zone = zone
        self._strings: dict[str, str] = {}
        # By style (its position in _DateTimeStyle), then by hour of the period.
        self._hours: list[list[tuple[str, str]]] = [[] for _ in _DateTimeStyle]
        # Dates after the period too: a learner's own deadline may fall up to 45 days after it.
        hours = math.ceil((period_end - period_start).total_seconds() / 3600) + 1 + 46 * 24
        for hour in range(hours):
            hour_start = period_start + timedelta(hours=hour)
            for style, parts in zip(_DateTimeStyle, self._hours, strict=True):
                text = _render_datetime(hour_start, style, zone)
                prefix, suffix = text[: text.index(":") + 1], text[text.index(":") + 6 :]
                # Splicing minutes and seconds into the hour's text needs offsets of whole hours.
                last_second = _render_datetime(hour_start + timedelta(seconds=3599), style, zone)
                if f"{prefix}59:59{suffix}" != last_second:
                    raise ValueError(f"bulk files need a time zone with whole-hour offsets, not {zone.key}")
                parts.append((f'"{prefix}', f'{suffix}"'))
        self._minutes_seconds = [f"{minute:02d}:{second:02d}" for minute in range(60) for second in range(60)]

    def string(self, value: str) -> str:
        text = self._strings.get(value)
        if text is None:
            text = self._strings[value] = json.dumps(value, ensure_ascii=False)
        return text

    def timestamp(self, seconds: int, style: int) -> str:
        """A moment `seconds` after the period start, as `_render_datetime` writes it in the style at
        position `style` of _DateTimeStyle."""
        hour, second = divmod(seconds, 3600)
        prefix, suffix = self._hours[style][hour]
        return prefix + self._minutes_seconds[second] + suffix


# Which fields' values a bulk row renders, and how.
_TEXT, _INTEGER, _INTEGER_AS_TEXT, _BOOLEAN, _TIMESTAMP = range(5)


class _BulkDrift(NamedTuple):
    omit_nulls: bool
    ints_as_text: bool
    style: int  # position in _DateTimeStyle


def _decided_by_byte(which: _Roll, decide: Callable[[int], Any]) -> tuple[Any, ...]:
    """What `decide` makes of a drift hash, for each value of the byte `which` reads."""
    return tuple(decide(byte << (8 * which)) for byte in range(256))


# The drift of a row decided byte by byte, as `_render` decides it: computing rolls row by row
# would cost more than rendering the row.
_OMITS_NULLS = _decided_by_byte(
    _Roll.OMITTED_NULLS, lambda drift: _roll(drift, _Roll.OMITTED_NULLS) < OMITTED_NULLS_SHARE
)
_INTS_AS_TEXT = _decided_by_byte(
    _Roll.INTS_AS_TEXT, lambda drift: _roll(drift, _Roll.INTS_AS_TEXT) < INTS_AS_TEXT_SHARE
)
_STYLES = _decided_by_byte(_Roll.DATETIME_STYLE, lambda drift: list(_DateTimeStyle).index(_datetime_style(drift)))
_HAS_EXTRA_FIELDS = _decided_by_byte(
    _Roll.EXTRA_FIELDS, lambda drift: _roll(drift, _Roll.EXTRA_FIELDS) < EXTRA_FIELDS_SHARE
)
_BULK_DRIFTS = {
    (omit_nulls, ints_as_text, style): _BulkDrift(omit_nulls, ints_as_text, style)
    for omit_nulls in (False, True)
    for ints_as_text in (False, True)
    for style in range(len(_DateTimeStyle))
}


def _bulk_drift(drift: int) -> _BulkDrift:
    return _BULK_DRIFTS[
        _OMITS_NULLS[(drift >> (8 * _Roll.OMITTED_NULLS)) & 0xFF],
        _INTS_AS_TEXT[(drift >> (8 * _Roll.INTS_AS_TEXT)) & 0xFF],
        _STYLES[(drift >> (8 * _Roll.DATETIME_STYLE)) & 0xFF],
    ]


class _BulkFields:
    """Some flat fields of a record, rendered from their values as `_render` renders them."""

    def __init__(
        self, texts: _BulkTexts, fields: Iterable[Field], rendering: _ReportRendering, *, always_written: bool = False
    ) -> None:
        self._texts = texts
        self._always_written = always_written
        self._plan = []
        for field in fields:
            if len(field.source) != 1 or field.column in rendering.unixtime_columns:
                raise ValueError(f"bulk rows render flat fields only, not {field.column}")
            if field.column in rendering.text_columns:
                kind = _INTEGER_AS_TEXT
            else:
                kind = {
                    FieldType.TEXT: _TEXT,
                    FieldType.INTEGER: _INTEGER,
                    FieldType.BOOLEAN: _BOOLEAN,
                    FieldType.TIMESTAMP: _TIMESTAMP,
                }[field.type]
            self._plan.append((json.dumps(field.source[0]) + ": ", kind))

    def texts(self, values: Iterable[Any], drift: _BulkDrift) -> list[str]:
        rendered: list[str] = []
        append, timestamp, string = rendered.append, self._texts.timestamp, self._texts.string
        writes_nulls = self._always_written or not drift.omit_nulls
        ints_as_text, style = drift.ints_as_text, drift.style
        for (key, kind), value in zip(self._plan, values, strict=True):
            if value is None:
                if writes_nulls:
                    append(key + "null")
            elif kind == _TIMESTAMP:
                append(key + timestamp(value, style))
            elif kind == _INTEGER:
                append(f'{key}"{value}"' if ints_as_text else f"{key}{value}")
            elif kind == _TEXT:
                append(key + string(value))
            elif kind == _INTEGER_AS_TEXT:
                append(f'{key}"{value}"')
            else:
                append(key + ("true" if value else "false"))
        return rendered


def _object_text(members: Iterable[str]) -> str:
    return "{" + ", ".join(members) + "}"


def _extra_fields_texts(drift: int) -> tuple[str, ...]:
    if not _HAS_EXTRA_FIELDS[drift & 0xFF]:
        return ()
    return (json.dumps(_extra_fields(drift), ensure_ascii=False)[1:-1],)


def _row_fields(spec: ReportSpec, columns: Iterable[str]) -> list[Field]:
    return [spec.column(column) for column in columns]


def _bulk_sessions(words: tuple[int, ...], base: int, span: int, day_moment: int | None) -> tuple[int, list[int]]:
    """A row's assignment moment and its sessions, drawn from the row's words (`_, assigned,
    planned, *gaps` and four more): up to _BULK_MAX_SESSIONS moments after the assignment, each up
    to span/16 after the previous (before 3/4 of the span when the assignment is in its first half),
    then the day's moment if the row changes on the day file's day."""
    _, assigned_word, planned_word, *gap_words, _, _, _, _ = words
    assigned = base + assigned_word % (span // 2)
    gap = max(1, span // 16)
    moments = []
    moment = assigned
    for word in itertools.islice(gap_words, planned_word % (_BULK_MAX_SESSIONS + 1)):
        moment += 1 + word % gap
        moments.append(moment)
    if day_moment is not None:
        moments.append(day_moment)
    return assigned, moments


class _BulkReport:
    """How one report's rows are drawn and rendered; `row_text` is one table row's JSON object."""

    spec: ReportSpec
    parents: list[Any]

    def __init__(self, texts: _BulkTexts, learners: tuple[Learner, ...]) -> None:
        self._texts = texts
        self._learners = learners
        self._learner_texts: dict[tuple[int, bool, bool], str] = {}

    def parent_text(self, parent: Any) -> str:
        """A nested report's parent object, open at its children's array."""
        raise NotImplementedError

    def row_text(
        self, parent: Any, learner: int, words: tuple[int, ...], base: int, span: int, day_moment: int | None
    ) -> str:
        """The row of `learner` under `parent`: assigned in [base, base + span/2), with its sessions,
        and one more at `day_moment` (seconds from the period start) when given."""
        raise NotImplementedError

    def _learner_text(self, learner: int, fields: _BulkFields, values: Iterable[Any], drift: _BulkDrift) -> str:
        """The learner's fields of a row, rendered once per learner and drift."""
        key = (learner, drift.omit_nulls, drift.ints_as_text)
        text = self._learner_texts.get(key)
        if text is None:
            text = self._learner_texts[key] = ", ".join(fields.texts(values, drift))
        return text


class _BulkWriter:
    """Writes `{"data": [...], **top_level}` as `write_report_file` does, a parent's rows at a time."""

    def __init__(self, report: _BulkReport, out: TextIO) -> None:
        self._report = report
        self._out = out
        self.rows = 0
        self.records = 0
        out.write('{"data": [')

    def write_group(self, parent: Any, rows: list[str]) -> None:
        if not rows:
            return
        if self._report.spec.is_nested:
            records = [self._report.parent_text(parent) + ", ".join(rows) + "]}"]
        else:
            records = rows
        self._out.write(",\n" if self.records else "\n")
        self._out.write(",\n".join(records))
        self.rows += len(rows)
        self.records += len(records)

    def finish(self) -> None:
        self._out.write("\n]")
        top_level = _RENDERINGS[self._report.spec.name].top_level
        self._out.writelines(f", {json.dumps(key)}: {json.dumps(value)}" for key, value in top_level.items())
        self._out.write("}\n")


def _nested_parent_text(spec: ReportSpec, parent: _Parent, zone: ZoneInfo) -> str:
    rendered = _render(spec.parent_fields, parent.values, parent.drift, zone, _RENDERINGS[spec.name])
    assert spec.children_key is not None
    return json.dumps(rendered, ensure_ascii=False)[:-1] + f", {json.dumps(spec.children_key)}: ["


class _BulkMaterialStatistics(_BulkReport):
    spec = MATERIAL_STATISTICS

    def __init__(
        self, texts: _BulkTexts, learners: tuple[Learner, ...], materials: tuple[Material, ...], seed: int
    ) -> None:
        super().__init__(texts, learners)
        self.parents = list(materials)
        rendering = _RENDERINGS[self.spec.name]
        self._learner_fields = _BulkFields(texts, _row_fields(self.spec, ("login", "user_status")), rendering)
        self._fields = _BulkFields(
            texts,
            _row_fields(
                self.spec, ("material_status", "points", "attempts", "progress", "start_at", "end_at", "update_at")
            ),
            rendering,
        )
        self._seed = seed

    def parent_text(self, parent: Material) -> str:
        return _nested_parent_text(
            self.spec, _parent(self._seed, self.spec, _material_parent_values(parent)), self._texts.zone
        )

    def row_text(
        self, parent: Material, learner: int, words: tuple[int, ...], base: int, span: int, day_moment: int | None
    ) -> str:
        drift_hash, *_, progress_word, outcome_word, _, _ = words
        assigned, moments = _bulk_sessions(words, base, span, day_moment)
        if not moments:
            status, progress = "appointed", 0
        elif parent.type == "test":
            # A test's statistics follow the learner's latest attempt.
            status, progress = _TEST_OUTCOMES[outcome_word % len(_TEST_OUTCOMES)], 100
        else:
            progress = min(100, len(moments) * (25 + progress_word % 51))
            status = "completed" if progress == 100 else "in_progress"
        skill = 50 + (progress_word >> 8) % 51
        points = None if parent.points is None or not moments else round(parent.points * skill * progress / 10_000)
        drift = _bulk_drift(drift_hash)
        learner_values = (self._learners[learner].login, self._learners[learner].user_status)
        return _object_text(
            [
                self._learner_text(learner, self._learner_fields, learner_values, drift),
                *self._fields.texts(
                    (
                        status,
                        points,
                        len(moments) if parent.type == "test" else None,  # an attempt a session
                        progress,
                        moments[0] if moments else None,
                        moments[-1] if status in ("completed", "fail") else None,
                        moments[-1] if moments else assigned,
                    ),
                    drift,
                ),
                *_extra_fields_texts(drift_hash),
            ]
        )


class _BulkProgramStatistics(_BulkReport):
    spec = PROGRAM_STATISTICS

    def __init__(
        self,
        texts: _BulkTexts,
        learners: tuple[Learner, ...],
        programs: tuple[Program, ...],
        seed: int,
        period_start: datetime,
    ) -> None:
        super().__init__(texts, learners)
        self.parents = list(programs)
        rendering = _RENDERINGS[self.spec.name]
        self._learner_fields = _BulkFields(texts, _row_fields(self.spec, ("login", "user_status")), rendering)
        self._fields = _BulkFields(
            texts,
            _row_fields(
                self.spec,
                (
                    "program_status",
                    "progress",
                    "points",
                    "start_at",
                    "active_at",
                    "end_at",
                    "passed_at_time",
                    "learner_deadline_at",
                    *(f"completed_{type_}" for type_ in MATERIAL_TYPES),
                ),
            ),
            rendering,
        )
        self._seed = seed
        self._period_start = period_start
        # Completed materials by type after each count of completed materials: in a fixed order,
        # and in an order that leaves a test for last (a plan stuck on one test).
        self._completed_by_type = {
            program.program_id: _completed_counts(program, test_last=False) for program in programs
        }
        self._completed_test_last = {
            program.program_id: _completed_counts(program, test_last=True) for program in programs
        }

    def parent_text(self, parent: Program) -> str:
        return _nested_parent_text(
            self.spec, _parent(self._seed, self.spec, _program_parent_values(parent)), self._texts.zone
        )

    def row_text(
        self, parent: Program, learner: int, words: tuple[int, ...], base: int, span: int, day_moment: int | None
    ) -> str:
        drift_hash, *_, progress_word, outcome_word, deadline_word, _ = words
        assigned, moments = _bulk_sessions(words, base, span, day_moment)
        total = parent.materials_total
        done = min(total, len(moments) * (1 + progress_word % max(1, total)))
        completed_by_type = self._completed_by_type[parent.program_id]
        if not moments:
            status = "appointed"
        elif done < total or not total:
            status = "in_progress"
        elif parent.material_counts["test"] and outcome_word % 10 == 0:
            status, done = ("checking", "fail")[(outcome_word >> 4) % 2], total - 1
            completed_by_type = self._completed_test_last[parent.program_id]
        else:
            status = "completed"
        skill = 50 + (progress_word >> 8) % 51
        start_at = moments[0] if moments else None
        active_at = moments[-1] if moments else None
        # Three learners in ten have a deadline of their own, 7 to 45 days after their assignment.
        own_deadline = assigned + 86400 * (7 + (deadline_word >> 4) % 39) if deadline_word % 10 < 3 else None
        passed_at_time = None
        if status == "completed" and active_at is not None:
            deadline = own_deadline if own_deadline is not None else self._deadline(parent, moments[0])
            passed_at_time = None if deadline is None else active_at <= deadline
        drift = _bulk_drift(drift_hash)
        learner_values = (self._learners[learner].login, self._learners[learner].user_status)
        return _object_text(
            [
                self._learner_text(learner, self._learner_fields, learner_values, drift),
                *self._fields.texts(
                    (
                        status,
                        100 * done // total if total else 0,
                        None if not moments else parent.points * skill * done // (100 * total) if total else 0,
                        start_at,
                        active_at,
                        active_at if status in ("completed", "fail") else None,
                        passed_at_time,
                        own_deadline,
                        *completed_by_type[done],
                    ),
                    drift,
                ),
                *_extra_fields_texts(drift_hash),
            ]
        )

    def _deadline(self, program: Program, start_at: int) -> int | None:
        if program.deadline_at is not None:
            return int((program.deadline_at - self._period_start).total_seconds())
        if program.deadline_period_days is not None:
            return start_at + program.deadline_period_days * 86400
        return None


def _completed_counts(program: Program, *, test_last: bool) -> list[tuple[int, ...]]:
    """Completed materials by type (in MATERIAL_TYPES order) after each number of completed materials."""
    order = [type_ for type_, count in program.material_counts.items() for _ in range(count)]
    if test_last and "test" in order:
        order.remove("test")
        order.append("test")
    return [tuple(Counter(order[:done])[type_] for type_ in MATERIAL_TYPES) for done in range(len(order) + 1)]


class _BulkCourseStatistics(_BulkReport):
    spec = COURSE_STATISTICS

    def __init__(self, texts: _BulkTexts, learners: tuple[Learner, ...], courses: tuple[Course, ...]) -> None:
        super().__init__(texts, learners)
        self.parents = list(courses)
        rendering = _RENDERINGS[self.spec.name]
        self._learner_columns = (
            "user_id",
            "fio",
            "user_status",
            "login",
            *(column for column in GROUP_COLUMNS if column not in COURSE_EXTRA_COLUMNS),
        )
        self._learner_fields = _BulkFields(texts, _row_fields(self.spec, self._learner_columns), rendering)
        # Company-specific columns are written even when null, as `_render` writes them.
        self._learner_extra_fields = _BulkFields(
            texts,
            [Field(column, (column,), FieldType.TEXT, "") for column in COURSE_EXTRA_COLUMNS],
            rendering,
            always_written=True,
        )
        self._course_fields = _BulkFields(
            texts,
            _row_fields(
                self.spec,
                (
                    "material_id",
                    "course_name",
                    "is_required",
                    "max_interaction_scores",
                    *(f"{content}_total" for content in COURSE_CONTENT_TYPES),
                    "max_final_scores",
                ),
            ),
            rendering,
        )
        self._course_texts: dict[tuple[int, bool, bool], str] = {}
        self._fields = _BulkFields(
            texts,
            _row_fields(
                self.spec,
                (
                    "start_time",
                    "complete_date",
                    "total_time",
                    "user_scores",
                    *(f"{content}_viewed" for content in COURSE_CONTENT_TYPES),
                    "scorm_total_time",
                    "scorm_status",
                    "scorm_percent",
                    "user_final_scores",
                    "percent_final_scores",
                    "last_activity",
                    "current_turn",
                    "turns_count",
                    "filled_type",
                ),
            ),
            rendering,
        )

    def row_text(
        self, parent: Course, learner: int, words: tuple[int, ...], base: int, span: int, day_moment: int | None
    ) -> str:
        drift_hash, *_, progress_word, session_word, scorm_word, final_word = words
        _, moments = _bulk_sessions(words, base, span, day_moment)
        sessions = len(moments)
        needed = 1 + progress_word % 5
        completed = sessions >= needed
        share = 1.0 if completed else sessions / (needed + 1)
        skill = (50 + (progress_word >> 8) % 51) / 100
        session_seconds = 60 + session_word % 3541
        scorm_total_time = scorm_status = scorm_percent = None
        if parent.has_scorm:
            scorm_status = "not started"
            if sessions:
                scorm_total_time = sessions * (30 + scorm_word % (session_seconds - 29))
                if completed:
                    scorm_status, scorm_percent = ("completed", "passed")[(scorm_word >> 16) % 2], 100
                else:
                    scorm_status = ("not completed", "Unknown", "failed")[(scorm_word >> 16) % 3]
                    scorm_percent = round(99 * share)
        final_scores, final_percent, turns = 0, None, None
        if parent.max_final_scores and sessions and (completed or final_word % 2):
            pass_scores = math.ceil(parent.max_final_scores * 0.6)
            turns = min(sessions, 1 + (final_word >> 1) % 3)
            if completed:
                final_scores = pass_scores + (final_word >> 4) % (parent.max_final_scores - pass_scores + 1)
            else:
                final_scores = (final_word >> 4) % pass_scores
            final_percent = round(100 * final_scores / parent.max_final_scores)
        drift = _bulk_drift(drift_hash)
        person = self._learners[learner]
        learner_values = (
            person.user_id,
            person.fio,
            person.user_status,
            person.login,
            *(person.groups[c] for c in self._learner_columns[4:]),
        )
        return _object_text(
            [
                self._learner_text(learner, self._learner_fields, learner_values, drift),
                self._course_text(parent, drift),
                *self._fields.texts(
                    (
                        moments[0] if moments else None,
                        moments[-1] if completed else None,
                        sessions * session_seconds,
                        round(parent.max_interaction_scores * skill * share),
                        *(math.floor(parent.content_totals[content] * share) for content in COURSE_CONTENT_TYPES),
                        scorm_total_time,
                        scorm_status,
                        scorm_percent,
                        final_scores,
                        final_percent,
                        moments[-1] if moments else None,
                        turns,
                        turns,
                        _FILLED_TYPES[(final_word >> 12) % len(_FILLED_TYPES)],
                    ),
                    drift,
                ),
                *self._learner_extra_fields.texts(
                    (
                        *(person.groups[column] for column in EXTRA_GROUP_COLUMNS),
                        *(person.answers[column] for column in QUESTIONNAIRE_COLUMNS),
                    ),
                    drift,
                ),
                *_extra_fields_texts(drift_hash),
            ]
        )

    def _course_text(self, course: Course, drift: _BulkDrift) -> str:
        key = (course.material_id, drift.omit_nulls, drift.ints_as_text)
        text = self._course_texts.get(key)
        if text is None:
            values = (
                course.material_id,
                course.name,
                course.is_required,
                course.max_interaction_scores,
                *(course.content_totals[content] for content in COURSE_CONTENT_TYPES),
                course.max_final_scores,
            )
            text = self._course_texts[key] = ", ".join(self._course_fields.texts(values, drift))
        return text


class _BulkAttempts(_BulkReport):
    spec = ATTEMPTS

    def __init__(self, texts: _BulkTexts, learners: tuple[Learner, ...], tests: list[Material]) -> None:
        super().__init__(texts, learners)
        self.parents = tests
        self._fields = _BulkFields(texts, ATTEMPTS.fields, _RENDERINGS[self.spec.name])

    def row_text(
        self, parent: Material, learner: int, words: tuple[int, ...], base: int, span: int, day_moment: int | None
    ) -> str:
        """An attempt, written when submitted; the day grades its open answers (or grades it again)."""
        drift_hash, start_word, check_word, success_word, duration_word, *id_words, number_word, _ = words
        assert parent.question_count is not None and parent.points is not None and parent.pass_percent is not None
        q_count = parent.question_count
        started = base + start_word % (span * 3 // 4)
        ended = started + 60 + duration_word % 2641
        submitted = ended + (duration_word >> 12) % 61
        q_checking = 1 + check_word % min(3, q_count) if (check_word >> 4) % 100 < _MANUAL_CHECK_SHARE * 100 else 0
        q_success = success_word % (q_count - q_checking + 1)
        graded_at = day_moment
        if graded_at is None and q_checking and (check_word >> 12) % 2:
            graded_at = submitted + 1 + (check_word >> 13) % max(1, span // 16)
        if graded_at is not None:
            q_success += (success_word >> 8) % (q_checking + 1)
            q_checking = 0
        # The rules of `_attempt_values`, on moments counted in seconds.
        percent = round(100 * q_success / q_count)
        values = (
            str(uuid.UUID(int=sum(word << (32 * i) for i, word in enumerate(id_words)), version=4)),
            parent.material_id,
            self._learners[learner].login,
            "checking" if q_checking else "completed" if percent >= parent.pass_percent else "fail",
            None if number_word % 10 < 4 else 1 + (number_word >> 4) % 3,
            round(parent.points * q_success / q_count),
            percent,
            q_count,
            q_success,
            q_count - q_checking - q_success,
            q_checking,
            started,
            ended,
            ended,
            submitted if graded_at is None else graded_at,
        )
        drift = _bulk_drift(drift_hash)
        return _object_text([*self._fields.texts(values, drift), *_extra_fields_texts(drift_hash)])
