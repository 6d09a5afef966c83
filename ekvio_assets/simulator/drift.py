"""How the API's payloads drift from the documentation, decided per record by its drift hash.

PROTOCOL.md describes the drift: undocumented fields, missing nullable fields, date-times in
several forms, ints as strings, unixtime-or-text deadlines. Each kind reads its own byte of a
record's 64-bit drift hash, so a record drifts the same way in every version and window.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from ekvio_assets.reports.specs import ATTEMPTS, COURSE_STATISTICS, MATERIAL_STATISTICS, PROGRAM_STATISTICS
from ekvio_assets.simulator.entities import COURSE_EXTRA_COLUMNS

# Percent of records showing each kind of drift.
EXTRA_FIELDS_SHARE = 15
OMITTED_NULLS_SHARE = 15
INTS_AS_TEXT_SHARE = 12
UNIXTIME_AS_TEXT_SHARE = 40


@dataclass(frozen=True)
class ReportRendering:
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


RENDERINGS = {
    ATTEMPTS.name: ReportRendering(text_columns=frozenset({ATTEMPTS.column("material_id").column})),
    MATERIAL_STATISTICS.name: ReportRendering(),
    COURSE_STATISTICS.name: ReportRendering(extra_columns=COURSE_EXTRA_COLUMNS),
    PROGRAM_STATISTICS.name: ReportRendering(
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


class DateTimeStyle(enum.Enum):
    COMPANY_OFFSET = "documented form, company offset: 2024-01-05T10:00:00+03:00"
    OTHER_OFFSET = "same instant, another offset: 2024-01-05T12:00:00+05:00"
    UTC_Z = "same instant in UTC: 2024-01-05T07:00:00Z"
    LOCAL_T = "company local time, no offset: 2024-01-05T10:00:00"
    LOCAL_SPACE = "company local time, no offset: 2024-01-05 10:00:00"


# Cumulative roll thresholds: the documented form dominates, each other form is 5-10 % of records.
_DATETIME_STYLES = (
    (65, DateTimeStyle.COMPANY_OFFSET),
    (75, DateTimeStyle.OTHER_OFFSET),
    (80, DateTimeStyle.UTC_Z),
    (90, DateTimeStyle.LOCAL_T),
    (100, DateTimeStyle.LOCAL_SPACE),
)


class Drift(NamedTuple):
    """The choices a record's drift hash makes."""

    omit_nulls: bool
    ints_as_text: bool
    unixtime_as_text: bool
    style: DateTimeStyle


def _style(roll: int) -> DateTimeStyle:
    return next(style for threshold, style in _DATETIME_STYLES if roll < threshold)


# Every combination of choices, by the four bytes that make them (bytes 2 to 5 of the hash): records
# are rendered by the million, and deciding roll by roll would cost more than the rest of a record.
_DRIFTS = {key: Drift(*key) for key in itertools.product((False, True), (False, True), (False, True), DateTimeStyle)}
_UNDER = [[byte * 100 >> 8 < share for byte in range(256)] for share in range(101)]
_STYLES = [_style(byte * 100 >> 8) for byte in range(256)]


def drift_of(drift: int) -> Drift:
    return _DRIFTS[
        _UNDER[OMITTED_NULLS_SHARE][(drift >> 8 * _Roll.OMITTED_NULLS) & 0xFF],
        _UNDER[INTS_AS_TEXT_SHARE][(drift >> 8 * _Roll.INTS_AS_TEXT) & 0xFF],
        _UNDER[UNIXTIME_AS_TEXT_SHARE][(drift >> 8 * _Roll.UNIXTIME_AS_TEXT) & 0xFF],
        _STYLES[(drift >> 8 * _Roll.DATETIME_STYLE) & 0xFF],
    ]


def render_datetime(value: datetime, style: DateTimeStyle, zone: ZoneInfo) -> str:
    if style is DateTimeStyle.OTHER_OFFSET:
        return value.astimezone(_OTHER_OFFSET).isoformat()
    if style is DateTimeStyle.UTC_Z:
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    local = value.astimezone(zone)
    naive = local.replace(tzinfo=None, fold=0)
    # A local time in a DST fold names two instants, and a reader takes the first: keep the offset
    # of the second.
    if style is DateTimeStyle.COMPANY_OFFSET or naive.replace(tzinfo=zone).utcoffset() != local.utcoffset():
        return local.isoformat()
    return naive.isoformat(sep="T" if style is DateTimeStyle.LOCAL_T else " ")


def extra_fields(drift: int) -> dict[str, Any] | None:
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
