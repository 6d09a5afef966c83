"""The CLI's Dagster instance: Dagster's SQLite files, written through kept engines, that the stock
storage (the UI's) reads as its own, and the other way round."""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from ekvio_assets.cli.instance import PooledSqliteEventLogStorage, instance_of


@dg.asset(check_specs=[dg.AssetCheckSpec("positive", asset="balance")])
def balance() -> dg.MaterializeResult:
    return dg.MaterializeResult(
        metadata={"rows": 3}, check_results=[dg.AssetCheckResult(check_name="positive", passed=True)]
    )


def balance_job() -> dg.JobDefinition:
    return dg.Definitions(assets=[balance], jobs=[dg.define_asset_job("balance_job")]).resolve_job_def("balance_job")


def _materialized_rows(instance: dg.DagsterInstance) -> list[int]:
    records = instance.fetch_materializations(dg.AssetKey("balance"), limit=10).records
    return [record.asset_materialization.metadata["rows"].value for record in records]


def _check_passed(instance: dg.DagsterInstance, run_id: str) -> bool:
    (record,) = [
        record
        for record in instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey("balance"), "positive"), limit=10
        )
        if record.run_id == run_id
    ]
    return record.status.value == "SUCCEEDED"


def test_runs_of_the_cli_instance_and_of_the_stock_one_read_each_other(tmp_path: Path) -> None:
    with instance_of(tmp_path) as pooled:
        assert isinstance(pooled.event_log_storage, PooledSqliteEventLogStorage)
        # In step processes of their own, which rebuild the instance from its reference.
        by_cli = dg.execute_job(dg.reconstructable(balance_job), instance=pooled)
    assert by_cli.success
    with dg.DagsterInstance.from_config(str(tmp_path)) as stock:
        assert not isinstance(stock.event_log_storage, PooledSqliteEventLogStorage)
        assert stock.get_run_by_id(by_cli.run_id).is_success
        assert _materialized_rows(stock) == [3] and _check_passed(stock, by_cli.run_id)
        by_ui = dg.materialize([balance], instance=stock)
    with instance_of(tmp_path) as pooled:
        assert _materialized_rows(pooled) == [3, 3] and _check_passed(pooled, by_ui.run_id)
        assert {record.dagster_run.run_id for record in pooled.get_run_records()} == {by_cli.run_id, by_ui.run_id}


def test_events_are_stored_through_one_connection_per_database_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[Any] = []
    connect = sqlite3.dbapi2.connect

    def counting_connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        opened.append(args[0] if args else kwargs.get("database"))
        return connect(*args, **kwargs)

    stored = 0
    with instance_of(tmp_path) as pooled:
        monkeypatch.setattr(sqlite3.dbapi2, "connect", counting_connect)
        for _ in range(3):
            result = dg.materialize([balance], instance=pooled)
            stored += len(pooled.get_records_for_run(result.run_id, limit=1000).records)
        monkeypatch.setattr(sqlite3.dbapi2, "connect", connect)
    event_log = Counter(Path(name).name for name in opened if f"{tmp_path}/history/runs/" in str(name))
    # Dagster's own storage opens a connection for every event (and more for asset events); a
    # run's file is opened here when it is created, the index once and for Dagster's table lookups.
    assert stored > 30
    assert len(event_log) == 4 and sum(event_log.values()) < stored / 2
    assert all(count <= 2 for name, count in event_log.items() if name != "index.db")


def test_a_wiped_event_log_starts_again_empty(tmp_path: Path) -> None:
    with instance_of(tmp_path) as pooled:
        first = dg.materialize([balance], instance=pooled)
        pooled.wipe()
        assert pooled.get_records_for_run(first.run_id).records == []
        second = dg.materialize([balance], instance=pooled)
        assert _materialized_rows(pooled) == [3]
        assert pooled.get_records_for_run(second.run_id).records


def test_an_instance_configured_for_other_storages_is_opened_as_it_is(tmp_path: Path) -> None:
    # Dagster's per-storage settings: the event log of this folder's own choosing.
    (tmp_path / "dagster.yaml").write_text(
        "event_log_storage:\n"
        "  module: dagster._core.storage.event_log\n"
        "  class: SqliteEventLogStorage\n"
        f"  config:\n    base_dir: {tmp_path / 'events'}\n"
    )
    with instance_of(tmp_path) as instance:
        assert type(instance.event_log_storage).__name__ == "SqliteEventLogStorage"
        assert dg.materialize([balance], instance=instance).success
    assert (tmp_path / "events" / "index.db").is_file()
