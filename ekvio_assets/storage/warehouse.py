"""Where the data lives under EKVIO_DATA_DIR: the working database, the published analyst file,
and the raw archive.

DuckDB lets one process write a database file at a time, and no process read it meanwhile.
Dagster runs steps in several processes, so every writer of the working database
(`work/ekvio.duckdb`) first takes an exclusive lock on a side file and holds it for its whole
transaction; downloads and parsing happen before, outside the lock, and run in parallel.
Analysts never open the working database: `publish()` checkpoints it, copies the file, at a
moment no writer holds it, and renames the copy over `ekvio.duckdb` in one atomic step. A reader
that has the old file open keeps reading that complete snapshot; the next one to open it gets the
new one.

Both files are in the storage format of DuckDB 1.1 (`PUBLISHED_STORAGE_VERSION`): analysts and BI
tools run DuckDB versions of their own, older than ours, and DuckDB reads only the formats of its
own version and before. Writing the working database in that format keeps the publish a file copy
(a tenth of a second where copying table by table into the old format took seconds, all of them
holding up the writers). A working database of an install that wrote the newer format is migrated
once, table by table (`COPY FROM DATABASE`), by the first publish that finds it.
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

from ekvio_assets.storage.archive import report_archive
from ekvio_assets.storage.sql import literal, one_row, quote

DATABASE_FILE = "ekvio.duckdb"
# The oldest DuckDB release whose readers the analyst file serves: 1.1 and every later one.
PUBLISHED_STORAGE_VERSION = "v1.1.0"
# How DuckDB labels a file in that format (duckdb_databases().tags): its storage dates from 1.0.
_PUBLISHED_STORAGE_TAG = "v1.0.0+"


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
        return report_archive(self.root, report)

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
        copy = self.root / f".{DATABASE_FILE}.{os.getpid()}.publishing"
        # Under the exclusive lock: no writer changes the database while it is copied, and two
        # publishers rename their copies in the order they took them.
        with self._locked(fcntl.LOCK_EX):
            with self._connect(read_only=False) as con:
                con.execute("CHECKPOINT")
                (tags,) = one_row(con, "SELECT tags FROM duckdb_databases() WHERE database_name = current_database()")
                storage = tags.get("storage_version")
            if storage != _PUBLISHED_STORAGE_TAG:
                self._migrate_working_database()
            try:
                shutil.copyfile(self.working_path, copy)
                os.replace(copy, self.database_path)
            finally:
                copy.unlink(missing_ok=True)
        return self.database_path

    def _migrate_working_database(self) -> None:
        """Rewrite the working database in PUBLISHED_STORAGE_VERSION: tables, types, comments and
        rows copied into a new file, renamed over the old one. The caller holds the exclusive lock."""
        migrated = self.working_path.with_name(f".{DATABASE_FILE}.migrating")
        # What a killed migration left behind would be attached as the start of this one.
        self._remove(migrated)
        try:
            with self._connect(read_only=False) as con:
                (source,) = one_row(con, "SELECT current_database()")
                con.execute(
                    f"ATTACH {literal(str(migrated))} AS ekvio_migrated "
                    f"(STORAGE_VERSION {literal(PUBLISHED_STORAGE_VERSION)})"
                )
                con.execute(f"COPY FROM DATABASE {quote(source)} TO ekvio_migrated")
                con.execute("DETACH ekvio_migrated")
            os.replace(migrated, self.working_path)
        finally:
            self._remove(migrated)

    @staticmethod
    def _remove(copy: Path) -> None:
        for path in (copy, copy.with_name(copy.name + ".wal")):
            path.unlink(missing_ok=True)

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
        # A database created by this connection is written in the format the analyst file needs.
        con = duckdb.connect(
            str(path or self.working_path),
            read_only=read_only,
            config={"storage_compatibility_version": PUBLISHED_STORAGE_VERSION},
        )
        try:
            # Date-times without an offset are read in the company's zone; instants stay exact.
            con.execute("SET TimeZone = ?", [self.timezone])
            yield con
        finally:
            con.close()
