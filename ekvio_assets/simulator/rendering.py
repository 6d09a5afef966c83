"""Records rendered as the API sends them: JSON text with each record's drift (see `drift`).

This is the one renderer: the simulator's result files, its `payload_records` (the same text,
parsed) and the benchmark's company-scale files all come from it. It writes text directly, a
field at a time, because a report can be millions of records.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ekvio_assets.reports.specs import Field, FieldType, ReportSpec
from ekvio_assets.simulator.drift import RENDERINGS, DateTimeStyle, Drift, drift_of, extra_fields, render_datetime
from ekvio_assets.simulator.rows import Parent


@functools.lru_cache(maxsize=1 << 16)
def _json_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _json_value(value: Any) -> str:
    return _json_string(value) if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


# "MM:SS" of every second of an hour.
_MINUTES_SECONDS = [f"{minute:02d}:{second:02d}" for minute in range(60) for second in range(60)]


class DateTimeTexts:
    """Date-times in every drift style, rendered an hour at a time: minutes and seconds are spliced
    into the hour's text, where the zone's offset that hour is whole hours."""

    def __init__(self, zone: ZoneInfo) -> None:
        self._zone = zone
        # (style, UTC hour as days * 24 + hour) -> the text before and after "MM:SS", or None: render whole.
        self._hours: dict[tuple[DateTimeStyle, int], tuple[str, str] | None] = {}

    def text(self, value: datetime, style: DateTimeStyle) -> str:
        """The quoted JSON string of `value` in `style`, as `render_datetime` writes it."""
        if value.tzinfo is UTC and not value.microsecond:
            key = (style, value.toordinal() * 24 + value.hour)
            parts = self._hours[key] if key in self._hours else self._hour_parts(value, key)
            if parts is not None:
                return parts[0] + _MINUTES_SECONDS[value.minute * 60 + value.second] + parts[1]
        return f'"{render_datetime(value, style, self._zone)}"'

    def _hour_parts(self, value: datetime, key: tuple[DateTimeStyle, int]) -> tuple[str, str] | None:
        style = key[0]
        start = value.replace(minute=0, second=0)
        text = render_datetime(start, style, self._zone)
        colon = text.index(":")
        prefix, suffix = text[: colon + 1], text[colon + 6 :]
        last_second = render_datetime(start + timedelta(seconds=3599), style, self._zone)
        parts = (f'"{prefix}', f'{suffix}"') if f"{prefix}59:59{suffix}" == last_second else None
        self._hours[key] = parts
        return parts


_TEXT, _INTEGER, _INTEGER_AS_TEXT, _BOOLEAN, _TIMESTAMP, _UNIXTIME = range(6)
_KINDS = {
    FieldType.TEXT: _TEXT,
    FieldType.INTEGER: _INTEGER,
    FieldType.BOOLEAN: _BOOLEAN,
    FieldType.TIMESTAMP: _TIMESTAMP,
}


class RecordRenderer:
    """Renders records of one set of fields (a report's rows, or its parents) as JSON object text."""

    def __init__(
        self, fields: Iterable[Field], spec: ReportSpec, datetimes: DateTimeTexts, extra_columns: Iterable[str] = ()
    ) -> None:
        rendering = RENDERINGS[spec.name]
        self._datetimes = datetimes
        self._plan: list[tuple[str, str, int, str | None]] = []
        self._subobjects: list[str] = []
        for field in fields:
            if field.column in rendering.unixtime_columns:
                kind = _UNIXTIME
            elif field.column in rendering.text_columns:
                kind = _INTEGER_AS_TEXT
            else:
                kind = _KINDS[field.type]
            subobject = field.source[0] if len(field.source) > 1 else None
            if subobject is not None and subobject not in self._subobjects:
                self._subobjects.append(subobject)
            self._plan.append((json.dumps(field.source[-1]) + ": ", field.column, kind, subobject))
        self._extra_columns = [(json.dumps(column) + ": ", column) for column in extra_columns]

    def text(self, values: Mapping[str, Any], drift_hash: int) -> str:
        """The payload object of one record's values (without its children), drifting as `drift_hash` says."""
        drift: Drift = drift_of(drift_hash)
        members: list[str] = []
        append = members.append
        omit_nulls, ints_as_text, unixtime_as_text, style = drift
        datetime_text = self._datetimes.text
        subobjects: dict[str, list[str]] = {subobject: [] for subobject in self._subobjects}
        # One loop for every field: this is the hot path of a company-scale file.
        for key, column, kind, subobject in self._plan:
            value = values[column]
            if value is None:
                # A sub-object never carries nulls.
                if not omit_nulls and subobject is None:
                    append(key + "null")
                continue
            if kind == _TEXT:
                text = _json_string(value)
            elif kind == _INTEGER:
                text = f'"{value}"' if ints_as_text else str(value)
            elif kind == _TIMESTAMP or (kind == _UNIXTIME and unixtime_as_text):
                text = datetime_text(value, style)
            elif kind == _UNIXTIME:
                text = str(int(value.timestamp()))
            elif kind == _INTEGER_AS_TEXT:
                text = f'"{value}"'
            else:
                text = "true" if value else "false"
            if subobject is None:
                append(key + text)
            else:
                subobjects[subobject].append(key + text)
        for subobject, inner in subobjects.items():
            # An object without values is an empty array, as PHP writes it.
            append(f"{json.dumps(subobject)}: " + ("{" + ", ".join(inner) + "}" if inner else "[]"))
        for key, column in self._extra_columns:
            value = values[column]
            append(key + ("null" if value is None else _json_value(value)))
        extras = extra_fields(drift_hash)
        if extras:
            append(json.dumps(extras, ensure_ascii=False)[1:-1])
        return "{" + ", ".join(members) + "}"


class ReportRenderer:
    """A report's payload records: its rows, under their parent's object for a nested report."""

    def __init__(self, spec: ReportSpec, zone: ZoneInfo) -> None:
        datetimes = DateTimeTexts(zone)
        self.spec = spec
        self.top_level = RENDERINGS[spec.name].top_level
        self.rows = RecordRenderer(spec.fields, spec, datetimes, RENDERINGS[spec.name].extra_columns)
        self.parents = RecordRenderer(spec.parent_fields, spec, datetimes)
        self._children_key = json.dumps(spec.children_key)

    def records(self, parent: Parent | None, row_texts: list[str]) -> list[str]:
        """The records of a group's rendered rows: the rows themselves, or their parent holding them."""
        if parent is None:
            return row_texts
        parent_text = self.parents.text(parent.values, parent.drift)
        return [f"{parent_text[:-1]}, {self._children_key}: [{', '.join(row_texts)}]}}"]
