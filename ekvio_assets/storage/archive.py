"""The raw archive: every downloaded result file, kept under `raw/<report>/` with a name the project
makes (the request time and the task id), never one taken from the server."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

ARCHIVE_FOLDER = "raw"
# What a task id may hold (PROTOCOL.md: numbers in practice); anything else is refused as a name part.
TASK_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")
_RAW_FILE_STAMP = "%Y%m%dT%H%M%S%fZ"
# A task's first download is `<stamp>_task-<id>.json`, each later one `<stamp>_task-<id>.download-<n>.json`:
# a dot, which no task id holds, keeps the two parts apart.
_RAW_FILE_NAME = re.compile(
    r"(?P<stamp>[0-9]{8}T[0-9]{12}Z)_task-(?P<task_id>" + TASK_ID.pattern + r")(\.download-[0-9]+)?\.json"
)


def report_archive(root: Path, report: str) -> Path:
    """The folder of a report's archived files under the data folder `root`."""
    return root / ARCHIVE_FOLDER / report


def raw_file_name(requested_at: datetime, task_id: str, download: int = 1) -> str:
    """The archive's name for the `download`-th file of a task: made here, never taken from the server."""
    stamp = requested_at.astimezone(UTC).strftime(_RAW_FILE_STAMP)
    return f"{stamp}_task-{task_id}{'' if download == 1 else f'.download-{download}'}.json"


def parse_raw_file_name(name: str) -> tuple[datetime, str] | None:
    """(requested_at, task_id) of an archived file's name, or None for a name the archive did not make."""
    match = _RAW_FILE_NAME.fullmatch(name)
    if match is None:
        return None
    requested_at = datetime.strptime(match["stamp"], _RAW_FILE_STAMP).replace(tzinfo=UTC)
    return requested_at, match["task_id"]
