"""The generic load path of every report: stage the raw file, then merge it in one transaction."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

from ekvio_assets.api.client import ExportedFile
from ekvio_assets.reports.flatten import FlattenedFile, StagedRows
from ekvio_assets.reports.merge import Lineage, MergeOutcome, merge_staged
from ekvio_assets.reports.specs import ReportSpec
from ekvio_assets.reports.staged import with_staged_rows
from ekvio_assets.reports.staging import ReportFileError
from ekvio_assets.storage.metadata import table_metadata
from ekvio_assets.storage.warehouse import DuckDBWarehouse

# What DuckDB may hold in memory during a load, whatever the file's size: a material report read
# as JSON lines and inserted on two threads at once needs about 300 MB (the reader's chunks of
# records with hundreds of learners, each thread's row groups in the making).
LOAD_MEMORY_LIMIT = "320MB"


@dataclass(frozen=True)
class LoadResult:
    """What a load did to the report's table, and to a nested report's table of parents."""

    outcome: MergeOutcome
    table_metadata: dict[str, Any]
    parents: LoadResult | None = None


def load_report_file(
    warehouse: DuckDBWarehouse,
    spec: ReportSpec,
    exported: ExportedFile,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
) -> LoadResult:
    """Merge an archived report file into its table; on any error the table is left as it was."""
    staging_path = warehouse.staging_dir() / f"{exported.path.stem}.{spec.name}.json"
    lineage = Lineage(exported.task_id, exported.path, exported.requested_at, window_start, window_end)

    def merged(con: duckdb.DuckDBPyConnection, flattened: FlattenedFile) -> LoadResult:
        con.execute("BEGIN TRANSACTION")
        try:
            loaded = _merged(con, spec, flattened.rows, lineage)
            parents = None
            if spec.parents is not None and flattened.parents is not None:
                parents = _merged(con, spec.parents, flattened.parents, lineage)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return LoadResult(loaded.outcome, loaded.table_metadata, parents)

    try:
        return with_staged_rows(spec, exported.path, staging_path, lambda: _load_connection(warehouse), merged)
    except ReportFileError as error:
        raise ReportFileError(
            f"{spec.title} task {exported.task_id}: {error}. The raw file stays at {exported.path}"
        ) from None


@contextmanager
def _load_connection(warehouse: DuckDBWarehouse) -> Iterator[duckdb.DuckDBPyConnection]:
    with warehouse.write_connection() as con:
        # Bounded memory whatever the file's size: what does not fit spills to the temp directory
        # beside the database. Row order is never relied on: every row carries its place in the file.
        con.execute("SET memory_limit = ?", [LOAD_MEMORY_LIMIT])
        con.execute("SET preserve_insertion_order = false")
        # A committed load is safe in the write-ahead log beside the file. Writing it into the file
        # is left to the next checkpoint (publishing, a big load's commit, DuckDB's own once the log
        # passes 16 MB), once for all the loads before it, rather than to each load on closing.
        con.execute("PRAGMA disable_checkpoint_on_shutdown")
        yield con


def _merged(con: duckdb.DuckDBPyConnection, spec: ReportSpec, rows: StagedRows, lineage: Lineage) -> LoadResult:
    outcome = merge_staged(con, spec, rows, lineage)
    return LoadResult(outcome, table_metadata(con, spec.name, rows=outcome.table_rows))
