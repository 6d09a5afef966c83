"""The generic load path of every report: stage the raw file, then merge it in one transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ekvio_assets.api.client import ExportedFile
from ekvio_assets.reports.merge import Lineage, MergeOutcome, merge_staged
from ekvio_assets.reports.specs import ReportSpec
from ekvio_assets.reports.staging import ReportFileError, stage_report_file
from ekvio_assets.storage.metadata import table_metadata
from ekvio_assets.storage.warehouse import DuckDBWarehouse


@dataclass(frozen=True)
class LoadResult:
    outcome: MergeOutcome
    table_metadata: dict[str, Any]


def load_report_file(
    warehouse: DuckDBWarehouse,
    spec: ReportSpec,
    exported: ExportedFile,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
) -> LoadResult:
    """Merge an archived report file into its table; on any error the table is left as it was."""
    staging_path = warehouse.staging_dir() / f"{exported.path.stem}.{spec.name}.ndjson"
    try:
        try:
            staged = stage_report_file(spec, exported.path, staging_path)
        except ReportFileError as error:
            raise ReportFileError(
                f"{spec.title} task {exported.task_id}: {error}. The raw file stays at {exported.path}"
            ) from None
        lineage = Lineage(exported.task_id, exported.path, exported.requested_at, window_start, window_end)
        with warehouse.write_connection() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                outcome = merge_staged(con, spec, staged, lineage)
                metadata = table_metadata(con, spec.name)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return LoadResult(outcome, metadata)
    finally:
        staging_path.unlink(missing_ok=True)
