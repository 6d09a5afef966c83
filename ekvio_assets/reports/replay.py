"""Load an archived result file again, without the API: the recovery path after a load failed on
data that has since been handled (a fixed spec, a file repaired by hand)."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

from ekvio_assets.api.client import ExportedFile
from ekvio_assets.reports.load import LoadResult, load_report_file
from ekvio_assets.reports.specs import REPORTS_BY_NAME, ReportSpec
from ekvio_assets.storage.archive import parse_raw_file_name, raw_file_name
from ekvio_assets.storage.warehouse import DuckDBWarehouse

FOREIGN_TASK_ID = "replay"


class ReplayError(Exception):
    """The file cannot be replayed as asked: it is missing, or its report is unknown or ambiguous."""


def replay_raw_file(
    warehouse: DuckDBWarehouse,
    path: Path,
    report: str | None = None,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
) -> tuple[ReportSpec, ExportedFile, LoadResult]:
    """Merge `path` into its report's table as the export it came from would have been.

    The report is `report`, else the archive folder the file lies in (`raw/<report>/`). A file of
    the archive keeps its task id and fetch time (from its name); any other file is first copied
    into the archive under a name made here. Without a window the load counts as a full export.
    """
    path = path.expanduser().resolve()
    if not path.is_file():
        raise ReplayError(f"{path} is not a file")
    folder_report = path.parent.name if path.parent.name in REPORTS_BY_NAME else None
    if report is not None and report not in REPORTS_BY_NAME:
        raise ReplayError(f"unknown report {report!r}; the reports are {', '.join(REPORTS_BY_NAME)}")
    if report and folder_report and report != folder_report:
        raise ReplayError(f"{path} lies in the archive of {folder_report}, not of {report}")
    name = report or folder_report
    if name is None:
        raise ReplayError(f"cannot tell the report of {path}: pass --report ({', '.join(REPORTS_BY_NAME)})")
    spec = REPORTS_BY_NAME[name]
    archive = warehouse.raw_dir(spec.name)
    archived_as = parse_raw_file_name(path.name)
    if archived_as is not None and path.parent == archive.resolve():
        (requested_at, task_id), archived = archived_as, path
    else:
        requested_at, task_id = datetime.now(UTC), FOREIGN_TASK_ID
        archive.mkdir(parents=True, exist_ok=True)
        archived = archive / raw_file_name(requested_at, task_id)
        shutil.copyfile(path, archived)
    exported = ExportedFile(spec.name, task_id, archived, archived.stat().st_size, requested_at)
    return spec, exported, load_report_file(warehouse, spec, exported, window_start, window_end)
