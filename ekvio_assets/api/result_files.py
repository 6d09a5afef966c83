"""Result files: where they are fetched from, and what the archive calls them."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from urllib.parse import urlsplit

TASK_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")
_RAW_FILE_STAMP = "%Y%m%dT%H%M%S%fZ"
_RAW_FILE_NAME = re.compile(r"(?P<stamp>[0-9]{8}T[0-9]{12}Z)_task-(?P<task_id>" + TASK_ID.pattern + r")\.json")


def raw_file_name(requested_at: datetime, task_id: str) -> str:
    """The archive's name for a result file: made here, never taken from the server."""
    return f"{requested_at.astimezone(timezone.utc).strftime(_RAW_FILE_STAMP)}_task-{task_id}.json"


def parse_raw_file_name(name: str) -> tuple[datetime, str] | None:
    """(requested_at, task_id) of an archived file's name, or None for a name the archive did not make."""
    match = _RAW_FILE_NAME.fullmatch(name)
    if match is None:
        return None
    requested_at = datetime.strptime(match["stamp"], _RAW_FILE_STAMP).replace(tzinfo=timezone.utc)
    return requested_at, match["task_id"]


def same_origin(url: str, other: str) -> bool:
    return _origin(url) == _origin(other)


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname, parts.port or {"http": 80, "https": 443}.get(parts.scheme)
