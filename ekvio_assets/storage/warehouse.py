"""Where the data lives: the DuckDB file and the raw archive under EKVIO_DATA_DIR.

DuckDB lets one process write a database file at a time. Dagster runs steps in several processes,
so every writer first takes an exclusive lock on a side file and holds it for the whole
transaction; downloads and parsing happen before, outside the lock, and run in parallel.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
from pydantic import Field

DATABASE_FILE = "ekvio.duckdb"


class DuckDBWarehouse(dg.ConfigurableResource):
    """The project's DuckDB database and raw archive."""

    data_dir: str = Field(description="Directory of the DuckDB file and the raw archive (EKVIO_DATA_DIR)")
    timezone: str = Field(description="Time zone of date-times that arrive without an offset (EKVIO_TIMEZONE)")

    @property
    def root(self) -> Path:
        return Path(self.data_dir)

    @property
    def database_path(self) -> Path:
        return self.root / DATABASE_FILE

    def raw_dir(self, report: str) -> Path:
        return self.root / "raw" / report

    def staging_dir(self) -> Path:
        path = self.root / "staging"
        path.mkdir(parents=True, exist_ok=True)
        return path

    @contextmanager
    def write_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """An exclusive read-write connection, serialised across processes by a file lock."""
        with self._locked(fcntl.LOCK_EX), self._connect(read_only=False) as con:
            yield con

    @contextmanager
    def read_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection; it waits while a writer holds the file (DuckDB forbids both at once)."""
        with self._locked(fcntl.LOCK_SH), self._connect(read_only=True) as con:
            yield con

    @contextmanager
    def _locked(self, mode: int) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / f"{DATABASE_FILE}.lock").open("a") as lock:
            fcntl.flock(lock, mode)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @contextmanager
    def _connect(self, *, read_only: bool) -> Iterator[duckdb.DuckDBPyConnection]:
        con = duckdb.connect(str(self.database_path), read_only=read_only)
        try:
            # Date-times without an offset are read in the company's zone; instants stay exact.
            con.execute("SET TimeZone = ?", [self.timezone])
            yield con
        finally:
            con.close()
