"""The CLI's Dagster instance: the SQLite storage of DAGSTER_HOME, with an event log that keeps one
database engine per file instead of making one per event.

Dagster's SQLite event log builds a new SQLAlchemy engine for every event it stores, so a new
SQLite connection and a fresh compilation of every statement: 3 to 10 ms an event, and a refresh
stores about 150 (each asset check three). Keeping the engines takes half of that off; a day's
refresh with nothing to change is mostly such events. The files and their schema stay Dagster's:
the UI's stock storage reads what the CLI's runs wrote, and the other way round. Only the CLI's
runs (their step processes rebuild the instance from its reference) use this class; an instance
configured for another storage (Postgres) is opened as it is.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

import dagster as dg
from alembic.runtime.migration import MigrationContext
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SQLITE_BUSY_TIMEOUT_SECONDS, SqliteEventLogStorage
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage, _event_logs_directory
from dagster._serdes import ConfigurableClassData
from sqlalchemy import Connection, Engine, create_engine

# A process writes the index and one or two runs' files; a long-lived one reads many runs in turn.
_ENGINES_KEPT = 4


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's run-sharded SQLite event log, each shard's engine (and its pooled connection) kept."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        super().__init__(base_dir, inst_data)
        self._engines: dict[str, Engine] = {}
        self._engines_pid = os.getpid()

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock, self._engine(shard).connect() as conn, conn.begin():
            yield conn

    def _engine(self, shard: str) -> Engine:
        """The shard's engine; called under the storage's lock, so no other engine is in use."""
        if self._engines_pid != os.getpid():
            # A forked copy: what it inherited are its parent's connections.
            self._engines, self._engines_pid = {}, os.getpid()
        engine = self._engines.get(shard)
        # A shard not initialized is new, or was wiped or upgraded since (both forget them all).
        if engine is None or shard not in self._initialized_dbs:
            if engine is not None:
                engine.dispose()
            engine = create_engine(
                self.conn_string_for_shard(shard), connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS}
            )
            self._initdb(engine)
            self._initialized_dbs.add(shard)
            self._engines[shard] = engine
            while len(self._engines) > _ENGINES_KEPT:
                self._engines.pop(next(iter(self._engines))).dispose()
        return engine

    def _initdb(self, engine: Engine, for_index_shard: bool = False) -> None:
        # Dagster's creates the tables of a file that has no schema revision and leaves a stamped
        # one alone, but reads its 170-odd migration scripts to tell, in every process for every file.
        with engine.connect() as conn:
            if MigrationContext.configure(conn).get_current_revision() is not None:
                return
        super()._initdb(engine, for_index_shard)

    def dispose(self) -> None:
        super().dispose()
        for engine in self._engines.values():
            engine.dispose()
        self._engines.clear()


class PooledSqliteStorage(DagsterSqliteStorage):
    """Dagster's default storage (runs, event log, schedules under one folder) with the pooled event log."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        super().__init__(base_dir, inst_data)
        self._event_log_storage = PooledSqliteEventLogStorage(_event_logs_directory(base_dir))

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]) -> Self:
        # ConfigurableClass's signature: DagsterSqliteStorage narrows it to its TypedDict, which this accepts too.
        return cls.from_local(inst_data=inst_data, **config_value)


def instance_of(home: Path) -> dg.DagsterInstance:
    """The instance of `home` (its dagster.yaml); the default SQLite storage with the pooled event log."""
    ref = InstanceRef.from_dir(str(home))
    stored = ref.storage_data
    if stored is not None and (stored.module_name, stored.class_name) == (
        DagsterSqliteStorage.__module__,
        DagsterSqliteStorage.__name__,
    ):
        pooled = ConfigurableClassData(PooledSqliteStorage.__module__, PooledSqliteStorage.__name__, stored.config_yaml)
        ref = ref._replace(storage_data=pooled)
    return dg.DagsterInstance.from_ref(ref)


def open_instance() -> dg.DagsterInstance:
    """The instance of DAGSTER_HOME (see environment.use_instance_home), its event log pooled; the
    first use creates its storage, one process at a time."""
    home = Path(os.environ["DAGSTER_HOME"])
    with (home / ".ekvio-assets.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return instance_of(home)
