"""A create request's window and filters, read as the API reads them, or refused with the field at fault."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ekvio_assets.reports.specs import PROGRAM_STATISTICS, ReportSpec
from ekvio_assets.simulator.dataset import RecordFilter

# What the vendor answers for a date-time it cannot read (PHP's format: no fractions, an offset).
INVALID_DATETIME = r"Invalid value format. Valid Y-m-d\TH:i:sP"
_VENDOR_DATETIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}[+-][0-9]{2}:[0-9]{2}")
MAX_FILTER_VALUES = 500


class InvalidRequest(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def request_selection(
    spec: ReportSpec, query: Mapping[str, str], body: bytes
) -> tuple[datetime | None, datetime | None, RecordFilter]:
    """The window and filters of a create request, as the API would read them."""
    for name in query:
        if name not in spec.filters:
            raise InvalidRequest(name, f"unknown parameter for the {spec.title} report")
        if name not in ("after_date", "to_date", "user_status"):
            raise InvalidRequest(name, "the simulator does not implement this filter")
    after, to = _query_datetime(query, "after_date"), _query_datetime(query, "to_date")
    if after is not None and to is not None and after > to:
        raise InvalidRequest("to_date", "to_date is before after_date")
    user_status = query.get("user_status")
    if user_status not in (None, "active", "blocked"):
        raise InvalidRequest("user_status", "user_status must be active or blocked")
    body_filters = _body_filters(spec, body)
    record_filter = RecordFilter(
        logins=body_filters.get("login"),
        program_ids=body_filters.get("program"),
        category_ids=body_filters.get("category"),
        user_status=user_status,
    )
    return after, to, record_filter


def _query_datetime(query: Mapping[str, str], name: str) -> datetime | None:
    value = query.get(name)
    if value is None:
        return None
    if not _VENDOR_DATETIME.fullmatch(value):
        raise InvalidRequest(name, INVALID_DATETIME)
    try:
        return datetime.fromisoformat(value)
    except ValueError:  # the right shape, but no such day or time
        raise InvalidRequest(name, INVALID_DATETIME) from None


_BODY_FILTER_TYPES = {"login": str, "program": int, "category": int}


def _body_filters(spec: ReportSpec, body: bytes) -> dict[str, frozenset[Any]]:
    """`{"filters": {"login": [...], "program": [...], "category": [...]}}`, each list at most 500 long."""
    if not body.strip():
        return {}
    try:
        document = json.loads(body)
    except ValueError:
        raise InvalidRequest("filters", "the request body is not JSON") from None
    filters = document.get("filters", {}) if isinstance(document, dict) else {} if document is None else None
    if not isinstance(filters, dict):
        raise InvalidRequest("filters", 'the body must be {"filters": {...}}')
    parsed = {}
    for name, values in filters.items():
        field = f"filters.{name}"
        value_type = _BODY_FILTER_TYPES.get(name)
        if value_type is None:
            raise InvalidRequest(field, "unknown filter")
        if name != "login" and spec is not PROGRAM_STATISTICS:
            raise InvalidRequest(field, f"the {spec.title} report has no {name} filter")
        if not isinstance(values, list) or not all(
            isinstance(value, value_type) and not isinstance(value, bool) for value in values
        ):
            raise InvalidRequest(field, f"{name} must be a list of {value_type.__name__} values")
        if len(values) > MAX_FILTER_VALUES:
            raise InvalidRequest(field, f"{name} holds {len(values)} values, at most {MAX_FILTER_VALUES} are allowed")
        parsed[name] = frozenset(values)
    return parsed
