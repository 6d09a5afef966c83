"""Where the data lives under EKVIO_DATA_DIR: the working database, the published analyst file,
and the raw archive.

DuckDB lets one process write a database file at a time, and no process read it meanwhile.
Dagster runs steps in several processes, so every writer of the working database
(`work/ekvio.duckdb`) first takes an exclusive lock on a side file and holds it for its whole
transaction; downloads and parsing happen before, outside the lock, and run in parallel.
Analysts never open the working database: `publish()` checkpoints it (report loads leave their
changes in its write-ahead log), copies it, at a moment no writer holds it, and renames the copy
over `ekvio.duckdb` in one atomic step. A reader that has the old file open
keeps reading that complete snapshot; the next one to open it gets the new one.
"""

from __future__ import annotations

import fcntl
import os
import shutil
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
        """The published file analysts open."""
        return self.root / DATABASE_FILE

    @property
    def working_path(self) -> Path:
        """The database Dagster writes; only this project's processes open it."""
        return self.root / "work" / DATABASE_FILE

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
        """A read-only connection to the working database; it waits while a writer holds it."""
        with self._locked(fcntl.LOCK_SH), self._connect(read_only=True) as con:
            yield con

    def publish(self) -> Path:
        """Replace the analyst file by a copy of the working database, atomically."""
        with self._locked(fcntl.LOCK_EX):
            with self._connect(read_only=False) as con:
                con.execute("CHECKPOINT")
            copy = self.root / f".{DATABASE_FILE}.{os.getpid()}.publishing"
            shutil.copyfile(self.working_path, copy)
            os.replace(copy, self.database_path)
        return self.database_path

    @contextmanager
    def published_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """What an analyst gets: a read-only connection to the published file, never blocked."""
        with self._connect(read_only=True, path=self.database_path) as con:
            yield con

    @contextmanager
    def _locked(self, mode: int) -> Iterator[None]:
        self.working_path.parent.mkdir(parents=True, exist_ok=True)
        with self.working_path.with_suffix(".lock").open("a") as lock:
            fcntl.flock(lock, mode)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @contextmanager
    def _connect(self, *, read_only: bool, path: Path | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        con = duckdb.connect(str(path or self.working_path), read_only=read_only)
        try:
            # Date-times without an offset are read in the company's zone; instants stay exact.
            con.execute("SET TimeZone = ?", [self.timezone])
            yield con
        finally:
            con.close()
