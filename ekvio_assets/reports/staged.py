"""The one way a result file's records reach SQL: stage the file, flatten it, use its rows, drop them.

Staging first tries the cheap layout, the file's `data` array copied unparsed (`staging.py`); only
DuckDB's reader can tell that a copy is unreadable (a key twice in an object, a record over its
16 MB, lines that are not one record each), and it may tell so late: JSON lines are read lazily by
the query that uses the rows. So the rows are handed to the caller's `use` here, and a copy the
reader refuses is staged again record by record (which the reader always takes) and used again.
The caller sees the rows once, or the file's own error (`ReportFileError`); never the layout.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TypeVar

import duckdb

from ekvio_assets.reports.flatten import FlattenedFile, StagedLayoutUnreadable, drop_flattened, flatten
from ekvio_assets.reports.specs import ReportSpec
from ekvio_assets.reports.staging import StagedFile, copy_report_records, stream_report_records

Used = TypeVar("Used")
Connect = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]


def with_staged_rows(
    spec: ReportSpec,
    raw_path: Path,
    staging_path: Path,
    connect: Connect,
    use: Callable[[duckdb.DuckDBPyConnection, FlattenedFile], Used],
) -> Used:
    """Stage `raw_path` at `staging_path` (before `connect`: no connection or lock is held while
    bytes are copied), flatten it in a connection of `connect` into temporary relations, and return
    what `use` makes of them. `use` may run twice: when it fails it must leave nothing behind (a
    transaction it rolls back). The relations and the staging file are gone when this returns."""
    try:
        # A file that starts with its `data` array is copied unparsed; any other is streamed record by record.
        staged = copy_report_records(raw_path, staging_path, spec)
        if staged is None:
            staged = stream_report_records(raw_path, staging_path, spec)
        if not staged.streamed:
            try:
                return _flattened_use(spec, staged, connect, use)
            except (duckdb.InvalidInputException, StagedLayoutUnreadable):
                staged = stream_report_records(raw_path, staging_path, spec)
        return _flattened_use(spec, staged, connect, use)
    finally:
        staging_path.unlink(missing_ok=True)


def _flattened_use(
    spec: ReportSpec,
    staged: StagedFile,
    connect: Connect,
    use: Callable[[duckdb.DuckDBPyConnection, FlattenedFile], Used],
) -> Used:
    with connect() as con:
        try:
            return use(con, flatten(con, spec, staged))
        finally:
            drop_flattened(con)
