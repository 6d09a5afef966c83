"""Synthetic Ekvio data: one consistent company rendered into the four report payloads.

A `Dataset` holds canonical values (ints, strings, bools, aware UTC datetimes): the truth a loader
must recover. `Dataset.payload_records` renders them the way the API sends them, with the drift
PROTOCOL.md describes (undocumented fields, missing nullable fields, date-times in several forms,
ints as strings, unixtime-or-text deadlines); `Dataset.truth` returns them as table rows. The
drift of a record is chosen from a hash of its key, so a record renders the same in every window.
Report layout (paths, fields, sources, keys, change times) comes from `ekvio_assets.reports.specs`.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
import random
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ekvio_assets.reports.specs import (
    ATTEMPTS,
    COURSE_STATISTICS,
    MATERIAL_STATISTICS,
    PROGRAM_MATERIAL_TYPES,
    PROGRAM_STATISTICS,
    REPORTS,
    REPORTS_BY_NAME,
    Field,
    FieldType,
    ReportSpec,
)

MATERIAL_TYPES = PROGRAM_MATERIAL_TYPES
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
    material_id: int
    name: str | None
    type: str
    points: int | None
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
    material_counts: Mapping[str, int]  # MATERIAL_TYPES -> materials of that type

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
class _Record:
    """One payload object: its canonical values by column, and for a nested parent its children.

    `drift` is a hash of the record's key; its bytes decide how the record is rendered.
    """

    values: dict[str, Any]
    drift: int
    children: tuple[_Record, ...] = ()


class Dataset:
    """A generated company: entities, report records, and their payload and truth views."""

    def __init__(
        self,
        config: DatasetConfig,
        learners: tuple[Learner, ...],
        materials: tuple[Material, ...],
        courses: tuple[Course, ...],
        programs: tuple[Program, ...],
        records: Mapping[str, list[_Record]],
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
            _check_columns(spec, records[spec.name])

    def row_count(self, report_name: str) -> int:
        """Table rows of the whole report (children for a nested report)."""
        records = self._records[report_name]
        if REPORTS_BY_NAME[report_name].is_nested:
            return sum(len(parent.children) for parent in records)
        return len(records)

    def payload_records(
        self,
        report_name: str,
        after: datetime | None = None,
        to: datetime | None = None,
        *,
        record_filter: RecordFilter | None = None,
    ) -> Iterator[dict[str, Any]]:
        """The JSON-ready objects of the result file's `data` array for this selection."""
        spec = REPORTS_BY_NAME[report_name]
        rendering = _RENDERINGS[spec.name]
        for parent, rows in self._select(spec, after, to, record_filter):
            rendered_rows = (_render(spec.fields, row, self._zone, rendering) for row in rows)
            if parent is None:
                yield from rendered_rows
            else:
                rendered_parent = _render(spec.parent_fields, parent, self._zone, rendering)
                assert spec.children_key is not None
                rendered_parent[spec.children_key] = list(rendered_rows)
                yield rendered_parent

    def truth(
        self,
        report_name: str,
        after: datetime | None = None,
        to: datetime | None = None,
        *,
        record_filter: RecordFilter | None = None,
    ) -> list[dict[str, Any]]:
        """The table rows a loader must produce from `payload_records` of the same selection.

        Keys: the spec's columns, the course report's dynamic columns, and `extra_fields` (the
        undocumented fields the payload carried for the row, parent ones as "parent.<key>", or None).
        """
        spec = REPORTS_BY_NAME[report_name]
        rows = []
        for parent, children in self._select(spec, after, to, record_filter):
            parent_extras = {} if parent is None else _extra_fields(parent.drift) or {}
            for child in children:
                row = dict(child.values) if parent is None else {**parent.values, **child.values}
                extras = dict(_extra_fields(child.drift) or {})
                extras.update({f"parent.{key}": value for key, value in parent_extras.items()})
                row["extra_fields"] = extras or None
                rows.append(row)
        return rows

    def write_result_file(
        self,
        report_name: str,
        path: Path,
        after: datetime | None = None,
        to: datetime | None = None,
        *,
        record_filter: RecordFilter | None = None,
        stop: threading.Event | None = None,
    ) -> int:
        """Write the report's result file for this selection; return the number of records.

        Setting `stop` abandons the file half-written (raises `WriteStopped`).
        """
        records = self.payload_records(report_name, after, to, record_filter=record_filter)
        return write_report_file(path, records, _RENDERINGS[report_name].top_level, stop=stop)

    def _select(
        self,
        spec: ReportSpec,
        after: datetime | None,
        to: datetime | None,
        record_filter: RecordFilter | None,
    ) -> Iterator[tuple[_Record | None, list[_Record]]]:
        """The selected rows grouped under their parent; a flat report yields (None, [row]) per row.

        A parent is yielded only with at least one selected child.
        """
        for bound in (after, to):
            if bound is not None and bound.utcoffset() is None:
                raise ValueError("window bounds must be aware datetimes")
        record_filter = record_filter or RecordFilter()
        filters_programs = record_filter.program_ids is not None or record_filter.category_ids is not None
        if filters_programs and spec is not PROGRAM_STATISTICS:
            raise ValueError(f"report {spec.name} cannot be filtered by programme or category")

        def selected(row: _Record) -> bool:
            return _in_window(row.values[spec.change_time], after, to) and record_filter.selects_row(row.values)

        for record in self._records[spec.name]:
            if not spec.is_nested:
                if selected(record):
                    yield None, [record]
                continue
            if not self._selects_program(record, record_filter):
                continue
            children = [child for child in record.children if selected(child)]
            if children:
                yield record, children

    def _selects_program(self, parent: _Record, record_filter: RecordFilter) -> bool:
        if record_filter.program_ids is None and record_filter.category_ids is None:
            return True
        program_id = parent.values["program_id"]
        return (record_filter.program_ids is None or program_id in record_filter.program_ids) and (
            record_filter.category_ids is None or self._program_categories[program_id] in record_filter.category_ids
        )


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


def _render(fields: tuple[Field, ...], record: _Record, zone: ZoneInfo, rendering: _ReportRendering) -> dict[str, Any]:
    """The payload object of one record (without its children)."""
    drift = record.drift
    omit_nulls = _roll(drift, _Roll.OMITTED_NULLS) < OMITTED_NULLS_SHARE
    ints_as_text = _roll(drift, _Roll.INTS_AS_TEXT) < INTS_AS_TEXT_SHARE
    unixtime_as_text = _roll(drift, _Roll.UNIXTIME_AS_TEXT) < UNIXTIME_AS_TEXT_SHARE
    style = _datetime_style(drift)
    rendered: dict[str, Any] = {}
    for field in fields:
        value = record.values[field.column]
        if value is None and omit_nulls:
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
    for column in rendering.extra_columns:
        rendered[column] = record.values[column]
    rendered.update(_extra_fields(drift) or {})
    return rendered


def _place(target: dict[str, Any], source: tuple[str, ...], value: Any) -> None:
    for key in source[:-1]:
        target = target.setdefault(key, {})
    target[source[-1]] = value


def _in_window(moment: datetime | None, after: datetime | None, to: datetime | None) -> bool:
    if after is None and to is None:
        return True
    return moment is not None and (after is None or moment >= after) and (to is None or moment < to)


def _check_columns(spec: ReportSpec, records: list[_Record]) -> None:
    """Fail loudly when specs.py and the generator disagree about a report's columns."""
    extra_columns = _RENDERINGS[spec.name].extra_columns
    pattern = spec.dynamic_columns
    if extra_columns and (pattern is None or not all(pattern.fullmatch(column) for column in extra_columns)):
        raise AssertionError(f"{spec.name}: {extra_columns} are not dynamic columns of the spec")
    parent_columns = {field.column for field in spec.parent_fields}
    row_columns = {field.column for field in spec.fields} | set(extra_columns)
    for record in records:
        rows = record.children if spec.is_nested else (record,)
        if spec.is_nested and record.values.keys() != parent_columns:
            raise AssertionError(f"{spec.name}: parent columns {sorted(record.values)} != {sorted(parent_columns)}")
        for row in rows:
            if row.values.keys() != row_columns:
                raise AssertionError(f"{spec.name}: row columns {sorted(row.values)} != {sorted(row_columns)}")


def _drift(seed: int, report: str, key: tuple[Any, ...]) -> int:
    digest = hashlib.blake2b(repr((seed, report, key)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _row(
    seed: int, spec: ReportSpec, values: dict[str, Any], parent_values: Mapping[str, Any] | None = None
) -> _Record:
    """A table row; its drift hash comes from the report key, which may include parent columns."""
    key_values = values if parent_values is None else {**parent_values, **values}
    key = tuple(key_values[column] for column in spec.key)
    return _Record(values, _drift(seed, spec.name, key))


def _parent(seed: int, spec: ReportSpec, values: dict[str, Any], children: list[_Record]) -> _Record:
    key = ("parent", *(values[column] for column in spec.key if column in values))
    return _Record(values, _drift(seed, spec.name, key), tuple(children))


# --- the company ---------------------------------------------------------------------------------


def _period_bounds(config: DatasetConfig) -> tuple[datetime, datetime]:
    """The change-time period: local midnight of `start` for `days` days, as UTC instants."""
    start = datetime.combine(config.start, time(0), tzinfo=ZoneInfo(config.timezone)).astimezone(UTC)
    return start, start + timedelta(days=config.days)


@dataclass(frozen=True)
class _Period:
    start: datetime
    end: datetime

    def moments(self, rng: random.Random, count: int, *, margin: timedelta = timedelta(0)) -> list[datetime]:
        """`count` sorted whole-second instants in [start, end - margin)."""
        seconds = int((self.end - margin - self.start).total_seconds())
        return sorted(self.start + timedelta(seconds=rng.randrange(seconds)) for _ in range(count))

    def moment(self, rng: random.Random) -> datetime:
        return self.moments(rng, 1)[0]

    def timeline(self, rng: random.Random, count: int) -> list[datetime]:
        """`count` sorted instants whose last, the change time, is uniform over the period."""
        last = self.moment(rng)
        return [*_Period(self.start, last + timedelta(seconds=1)).moments(rng, count - 1), last]

    @property
    def second_half(self) -> _Period:
        return _Period(self.start + (self.end - self.start) / 2, self.end)

    @property
    def slack(self) -> timedelta:
        """Room left at the end of the period for follow-up events (checks, late updates)."""
        return min(timedelta(days=2), (self.end - self.start) / 4)


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


def _materials(rng: random.Random, count: int) -> tuple[Material, ...]:
    # Every type in turn, then shuffled: each type is present as soon as there are enough materials.
    types = [MATERIAL_TYPES[index % len(MATERIAL_TYPES)] for index in range(count)]
    rng.shuffle(types)
    materials = []
    for number, (material_id, type_) in enumerate(zip(_ids(rng, 1001, count, 4), types, strict=True), start=1):
        is_test = type_ == "test"
        materials.append(
            Material(
                material_id=material_id,
                name=_sometimes_none(rng, f"{_TYPE_TITLES[type_]}: {rng.choice(_TOPICS)} {number}", 0.05),
                type=type_,
                points=rng.randint(5, 50) if type_ in POINTED_MATERIAL_TYPES else None,
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
    programs = []
    for number, program_id in enumerate(_ids(rng, 501, count, 3), start=1):
        counts = {type_: rng.randint(0, 3) for type_ in MATERIAL_TYPES}
        if not any(counts.values()):
            counts["test"] = 1
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


def _material_activity(
    rng: random.Random, seed: int, learners: tuple[Learner, ...], materials: tuple[Material, ...], period: _Period
) -> tuple[list[_Record], list[_Record]]:
    """Test attempts and material statistics: a test's statistics follow the learner's attempts."""
    attempts: list[_Record] = []
    parents: list[_Record] = []
    for material in materials:
        parent_values = {
            "material_id": material.material_id,
            "material_name": material.name,
            "material_type": material.type,
            "material_points": material.points,
        }
        assignment_share = rng.uniform(0.15, 0.45)
        children = []
        for learner in learners:
            if not _chance(rng, assignment_share):
                continue
            if material.type == "test":
                learner_attempts = _attempts(rng, material, learner, period)
                attempts.extend(_row(seed, ATTEMPTS, values) for values in learner_attempts)
                values = _test_material_row(rng, learner, learner_attempts, period)
            else:
                values = _other_material_row(rng, material, learner, period)
            children.append(_row(seed, MATERIAL_STATISTICS, values, parent_values))
        parents.append(_parent(seed, MATERIAL_STATISTICS, parent_values, children))
    return attempts, parents


def _attempts(rng: random.Random, material: Material, learner: Learner, period: _Period) -> list[dict[str, Any]]:
    """A learner's attempts at a test, oldest first: failures, possibly ending in a pass or a check."""
    assert material.question_count is not None and material.pass_percent is not None and material.points is not None
    count = rng.choices((0, 1, 2, 3, 4), weights=(30, 35, 20, 10, 5))[0]
    attempts = []
    for number, started_at in enumerate(period.moments(rng, count, margin=period.slack + timedelta(hours=1)), 1):
        q_count = material.question_count
        q_checking = rng.randint(1, min(2, q_count)) if _chance(rng, 0.1) else 0
        q_success = rng.randint(0, q_count - q_checking)
        percent = round(100 * q_success / q_count)
        status = "checking" if q_checking else "completed" if percent >= material.pass_percent else "fail"
        ended_at = started_at + timedelta(seconds=rng.randint(60, 45 * 60))
        # A manual check updates the record later; otherwise only the final save follows the end.
        delay = rng.randrange(int(period.slack.total_seconds())) if q_checking else rng.randint(0, 60)
        attempts.append(
            {
                "attempt_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "material_id": material.material_id,
                "login": learner.login,
                "status": status,
                # The vendor example leaves most numbers null.
                "number": None if _chance(rng, 0.4) else number,
                "points": round(material.points * q_success / q_count),
                "percent": percent,
                "q_count": q_count,
                "q_success": q_success,
                "q_fail": q_count - q_checking - q_success,
                "q_checking": q_checking,
                "started_at": started_at,
                "ended_at": ended_at,
                "created_at": ended_at,
                "updated_at": ended_at + timedelta(seconds=delay),
            }
        )
        if status != "fail":
            break
    return attempts


def _material_row(
    learner: Learner,
    status: str,
    progress: int,
    points: int | None,
    start_at: datetime | None,
    end_at: datetime | None,
    update_at: datetime,
) -> dict[str, Any]:
    return {
        "login": learner.login,
        "user_status": learner.user_status,
        "material_status": status,
        "points": points,
        "progress": progress,
        "start_at": start_at,
        "end_at": end_at,
        "update_at": update_at,
    }


def _test_material_row(
    rng: random.Random, learner: Learner, attempts: list[dict[str, Any]], period: _Period
) -> dict[str, Any]:
    """Statistics of a test: appointed without attempts, else the status of the last attempt."""
    if not attempts:
        return _material_row(learner, "appointed", 0, None, None, None, period.moment(rng))
    last = attempts[-1]
    return _material_row(
        learner,
        last["status"],
        100,
        max(attempt["points"] for attempt in attempts),
        attempts[0]["started_at"],
        None if last["status"] == "checking" else last["ended_at"],
        max(attempt["updated_at"] for attempt in attempts),
    )


def _other_material_row(rng: random.Random, material: Material, learner: Learner, period: _Period) -> dict[str, Any]:
    """Statistics of a material that is not a test; an appointment is the row's first change."""
    status = rng.choices(("appointed", "in_progress", "completed"), weights=(25, 30, 45))[0]
    if status == "appointed":
        return _material_row(learner, status, 0, None, None, None, period.moment(rng))
    if status == "in_progress":
        start_at, update_at = period.timeline(rng, 2)
        return _material_row(learner, status, rng.randint(1, 99), None, start_at, None, update_at)
    start_at, end_at, update_at = period.timeline(rng, 3)
    points = None if material.points is None else rng.randint(0, material.points)
    return _material_row(learner, status, 100, points, start_at, end_at, update_at)


def _course_statistics(
    rng: random.Random, seed: int, learners: tuple[Learner, ...], courses: tuple[Course, ...], period: _Period
) -> list[_Record]:
    records = []
    for course in courses:
        assignment_share = rng.uniform(0.2, 0.6)
        for learner in learners:
            if _chance(rng, assignment_share):
                records.append(_row(seed, COURSE_STATISTICS, _course_values(rng, course, learner, period)))
    return records


def _course_values(rng: random.Random, course: Course, learner: Learner, period: _Period) -> dict[str, Any]:
    """One learner's course row; a course not started has no dates at all (null last_activity)."""
    state = rng.choices(("not_started", "in_progress", "completed"), weights=(30, 35, 35))[0]
    start_time = complete_date = last_activity = None
    viewed = dict.fromkeys(COURSE_CONTENT_TYPES, 0)
    total_time = user_scores = user_final_scores = 0
    turns_count: int | None = None
    scorm_total_time: int | None = None
    scorm_percent: int | None = None
    scorm_status = "not started" if course.has_scorm else None
    if state != "not_started":
        if state == "completed":
            start_time, complete_date, last_activity = period.timeline(rng, 3)
            viewed = dict(course.content_totals)
        else:
            start_time, last_activity = period.timeline(rng, 2)
            viewed = {content: rng.randint(0, total) for content, total in course.content_totals.items()}
        total_time = rng.randint(60, 4 * 3600)
        user_scores = rng.randint(0, course.max_interaction_scores)
        if course.has_scorm:
            scorm_total_time = rng.randint(60, total_time)
            if state == "completed":
                scorm_status, scorm_percent = rng.choice(("completed", "passed")), 100
            else:
                scorm_status, scorm_percent = rng.choice(("not completed", "Unknown", "failed")), rng.randint(0, 99)
        if course.max_final_scores and (state == "completed" or _chance(rng, 0.5)):
            turns_count = rng.randint(1, 3)
            # A completed course means a passed final test: at least 60 % of its points.
            lowest = math.ceil(course.max_final_scores * 0.6) if state == "completed" else 0
            user_final_scores = rng.randint(lowest, course.max_final_scores)
    return {
        "user_id": learner.user_id,
        "material_id": course.material_id,
        "fio": learner.fio,
        "user_status": learner.user_status,
        "login": learner.login,
        "start_time": start_time,
        "complete_date": complete_date,
        "total_time": total_time,
        "course_name": course.name,
        "is_required": course.is_required,
        "user_scores": user_scores,
        "max_interaction_scores": course.max_interaction_scores,
        **{f"{content}_viewed": viewed[content] for content in COURSE_CONTENT_TYPES},
        **{f"{content}_total": course.content_totals[content] for content in COURSE_CONTENT_TYPES},
        "scorm_total_time": scorm_total_time,
        "scorm_status": scorm_status,
        "scorm_percent": scorm_percent,
        "user_final_scores": user_final_scores,
        "max_final_scores": course.max_final_scores,
        "percent_final_scores": (
            None if turns_count is None else round(100 * user_final_scores / course.max_final_scores)
        ),
        "last_activity": last_activity,
        "current_turn": turns_count,
        "turns_count": turns_count,
        "filled_type": rng.choices((None, "Польз.", "Импорт"), weights=(70, 20, 10))[0],
        **learner.groups,
        **learner.answers,
    }


def _program_statistics(
    rng: random.Random, seed: int, learners: tuple[Learner, ...], programs: tuple[Program, ...], period: _Period
) -> list[_Record]:
    parents = []
    for program in programs:
        parent_values = {
            "program_id": program.program_id,
            "program_name": program.name,
            "deadline_type": program.deadline_type,
            "deadline_at": program.deadline_at,
            "deadline_period_at": program.deadline_period,
            "program_points": program.points,
            **{f"materials_{type_}": program.material_counts[type_] for type_ in MATERIAL_TYPES},
            "materials_total": program.materials_total,
        }
        assignment_share = rng.uniform(0.3, 0.7)
        children = [
            _row(seed, PROGRAM_STATISTICS, _program_values(rng, program, learner, period), parent_values)
            for learner in learners
            if _chance(rng, assignment_share)
        ]
        parents.append(_parent(seed, PROGRAM_STATISTICS, parent_values, children))
    return parents


def _program_values(rng: random.Random, program: Program, learner: Learner, period: _Period) -> dict[str, Any]:
    """One learner's programme row; an appointed learner was never active (null active_at).

    checking and fail leave one test of the programme open (on check, or failed).
    """
    has_tests = program.material_counts["test"] > 0
    status = rng.choices(
        ("appointed", "in_progress", "completed", "checking", "fail"),
        weights=(25, 35, 30, 5, 5) if has_tests else (25, 45, 30, 0, 0),
    )[0]
    completed = dict.fromkeys(MATERIAL_TYPES, 0)
    start_at = active_at = end_at = None
    passed_at_time = None
    if status == "in_progress":
        completed = {type_: rng.randint(0, count) for type_, count in program.material_counts.items()}
        if sum(completed.values()) == program.materials_total:
            completed[next(type_ for type_, count in completed.items() if count)] -= 1
        start_at, active_at = period.timeline(rng, 2)
    elif status == "completed":
        completed = dict(program.material_counts)
        start_at, end_at, active_at = period.timeline(rng, 3)
        deadline = program.deadline_for(start_at)
        passed_at_time = None if deadline is None else end_at <= deadline
    elif status in ("checking", "fail"):
        completed = dict(program.material_counts)
        completed["test"] -= 1
        if status == "fail":
            start_at, end_at, active_at = period.timeline(rng, 3)
        else:
            start_at, active_at = period.timeline(rng, 2)
    done = sum(completed.values())
    return {
        "login": learner.login,
        "user_status": learner.user_status,
        "program_status": status,
        "progress": 100 * done // program.materials_total,
        "points": None if status == "appointed" else rng.randint(0, program.points * done // program.materials_total),
        "start_at": start_at,
        "active_at": active_at,
        "end_at": end_at,
        "passed_at_time": passed_at_time,
        **{f"completed_{type_}": completed[type_] for type_ in MATERIAL_TYPES},
    }
