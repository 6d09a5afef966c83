"""`ekvio-assets refresh | replay | simulator | bench`: the project's command line."""

from __future__ import annotations

import argparse
import fcntl
import importlib
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg

from ekvio_assets.automation.jobs import (
    ANALYTICS_JOB,
    RECONCILE_JOB,
    REFRESH_JOB,
    analytics_to_rebuild,
    report_run_config,
)
from ekvio_assets.automation.partitions import full_export_tags, daily_partitions, partition_range_tags
from ekvio_assets.config import ConfigError, Settings
from ekvio_assets.models.specs import MODELS
from ekvio_assets.reports.replay import ReplayError, replay_raw_file
from ekvio_assets.reports.specs import REPORT_TABLES, REPORTS
from ekvio_assets.reports.staging import ReportFileError
from ekvio_assets.storage.sql import row_count
from ekvio_assets.storage.warehouse import DuckDBWarehouse

INSTANCE_CONFIG = "dagster.yaml"
DEFINITIONS_MODULE = "ekvio_assets.definitions"


def _job(name: str) -> dg.JobDefinition:
    return importlib.import_module(DEFINITIONS_MODULE).defs.resolve_job_def(name)


# Importable job factories, so that Dagster can rebuild the job in each step process.
def refresh_job_definition() -> dg.JobDefinition:
    return _job(REFRESH_JOB)


def reconcile_job_definition() -> dg.JobDefinition:
    return _job(RECONCILE_JOB)


def analytics_job_definition() -> dg.JobDefinition:
    return _job(ANALYTICS_JOB)


def _execute(
    instance: dg.DagsterInstance,
    job_factory: Any,
    tags: Mapping[str, str],
    run_config: Mapping[str, Any] | None = None,
    asset_selection: Sequence[dg.AssetKey] | None = None,
) -> dg.JobExecutionResult | None:
    """Runs the job; on failure prints each failed step's message and returns None."""
    result = dg.execute_job(
        dg.reconstructable(job_factory), instance=instance, tags=tags, run_config=run_config, asset_selection=asset_selection
    )
    if result.success:
        return result
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
            print(f"{event.step_key} failed: {event.step_failure_data.error.message.strip()}", file=sys.stderr)
    print(f"Run {result.run_id} failed; see `dagster dev -w workspace.yaml` for details", file=sys.stderr)
    return None


def _open_instance() -> dg.DagsterInstance:
    """The instance of DAGSTER_HOME; the first use creates its storage, one process at a time."""
    home = Path(os.environ["DAGSTER_HOME"])
    with (home / ".ekvio-assets.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return dg.DagsterInstance.get()


def _use_instance_home(settings: Settings) -> Path:
    """DAGSTER_HOME, or EKVIO_DATA_DIR/dagster_home with this folder's dagster.yaml, as `dagster dev` reads it."""
    if "DAGSTER_HOME" not in os.environ:
        home = settings.data_dir / "dagster_home"
        home.mkdir(parents=True, exist_ok=True)
        if Path(INSTANCE_CONFIG).is_file():
            shutil.copyfile(INSTANCE_CONFIG, home / INSTANCE_CONFIG)
        os.environ["DAGSTER_HOME"] = str(home)
    return Path(os.environ["DAGSTER_HOME"])


def _checked_days(settings: Settings, first: date, last: date) -> tuple[str, str]:
    """The partition keys of `first` and `last`, which must be complete days since EKVIO_START_DATE."""
    partitions = daily_partitions(settings)
    keys = partitions.get_partition_keys()
    wanted = (first.isoformat(), last.isoformat())
    if first > last:
        raise ConfigError(f"--from {wanted[0]} is after --to {wanted[1]}")
    for day in wanted:
        if day not in keys:
            raise ConfigError(
                f"{day} is not a complete day between EKVIO_START_DATE ({keys[0] if keys else settings.start_date}) "
                f"and yesterday ({keys[-1] if keys else 'none yet'})"
            )
    return wanted


def _run_analytics(
    instance: dg.DagsterInstance, settings: Settings, changed_tables: Sequence[str]
) -> dg.JobExecutionResult | None:
    """Rebuilds the analytics tables that changed tables (or the clock) make stale, then publishes."""
    defs = importlib.import_module(DEFINITIONS_MODULE).defs
    warehouse = DuckDBWarehouse(data_dir=str(settings.data_dir), timezone=settings.timezone)
    with warehouse.read_connection() as con:
        built = {name for (name,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    missing = [model.name for model in MODELS if model.name not in built]
    selection = analytics_to_rebuild([*changed_tables, *missing]).resolve(defs.resolve_asset_graph())
    return _execute(instance, analytics_job_definition, {}, asset_selection=sorted(selection))


def refresh(settings: Settings, first: date | None, last: date | None) -> int:
    if first is None:
        job_factory, tags = reconcile_job_definition, full_export_tags(daily_partitions(settings), settings.lookback_days)
        what = "every Ekvio report in full"
    else:
        job_factory, tags = refresh_job_definition, partition_range_tags(*_checked_days(settings, first, last or first))
        what = f"the days {first} .. {last or first} of every Ekvio report"
    peer = settings.api_url or "the embedded Ekvio simulator (EKVIO_API_URL is not set)"
    home = _use_instance_home(settings)
    print(f"Refreshing {what} from {peer}; Dagster instance: {home}")
    with _open_instance() as instance:
        reports = _execute(instance, job_factory, tags, report_run_config(preload_modules=[DEFINITIONS_MODULE]))
        if not reports:
            return 1
        changed = {
            event.asset_key.to_user_string(): event.materialization.metadata["rows_changed"].value
            for event in reports.get_asset_materialization_events()
        }
        analytics = _run_analytics(instance, settings, [table for table, rows in changed.items() if rows])
        if not analytics:
            return 1
    print(f"Runs {reports.run_id} (reports) and {analytics.run_id} (analytics) succeeded.")
    _print_tables(settings, changed)
    return 0


def replay(settings: Settings, path: Path, report: str | None, first: date | None, last: date | None) -> int:
    """Load an archived result file again, then rebuild and publish the analytics tables."""
    window_start = window_end = None
    if first is not None:
        partitions = daily_partitions(settings)
        first_day, last_day = _checked_days(settings, first, last or first)
        window_start = partitions.time_window_for_partition_key(first_day).start
        window_end = partitions.time_window_for_partition_key(last_day).end
    warehouse = DuckDBWarehouse(data_dir=str(settings.data_dir), timezone=settings.timezone)
    try:
        spec, exported, loaded = replay_raw_file(warehouse, path, report, window_start, window_end)
    except (ReplayError, ReportFileError) as error:
        print(f"Replay failed: {error}", file=sys.stderr)
        return 1
    outcome = loaded.outcome
    print(
        f"Replayed {exported.path} into {spec.name}: {outcome.rows_in_file:,} rows in the file, "
        f"{outcome.inserted:,} inserted, {outcome.updated:,} updated, {outcome.rejected:,} rejected"
    )
    home = _use_instance_home(settings)
    with _open_instance() as instance:
        analytics = _run_analytics(instance, settings, [spec.name] if outcome.inserted + outcome.updated else [])
    if not analytics:
        return 1
    print(f"Run {analytics.run_id} (analytics) succeeded; Dagster instance: {home}.")
    _print_tables(settings, {spec.name: outcome.inserted + outcome.updated})
    return 0


def _print_tables(settings: Settings, changed: Mapping[str, int]) -> None:
    print(f"{settings.database_path}:")
    warehouse = DuckDBWarehouse(data_dir=str(settings.data_dir), timezone=settings.timezone)
    with warehouse.published_connection() as con:
        loaded = {name for (name,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        for spec in REPORT_TABLES:
            if spec.name not in loaded:
                print(f"  {spec.name:<26} {'not loaded yet':>25}")
                continue
            rows = row_count(con, spec.name)
            print(f"  {spec.name:<26} {rows:>10,} rows  ({changed.get(spec.name, 0):,} changed by this run)")
        for model in MODELS:
            print(f"  {model.name:<26} {row_count(con, model.name):>10,} rows")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ekvio-assets", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    refresh_parser = commands.add_parser(
        "refresh", help="export every report (in full, or the days --from .. --to) and merge it into the DuckDB file"
    )
    replay_parser = commands.add_parser(
        "replay",
        help="load an archived result file again without the API (after a load failed on bad data), "
        "then rebuild and publish the analytics tables",
    )
    replay_parser.add_argument("path", type=Path, help="the file, e.g. data/raw/attempts/<time>_task-<id>.json")
    replay_parser.add_argument(
        "--report", choices=[spec.name for spec in REPORTS], help="the file's report (default: its archive folder)"
    )
    for days_parser, subject in ((refresh_parser, "refresh"), (replay_parser, "file's export window")):
        days_parser.add_argument(
            "--from", dest="first", type=date.fromisoformat, metavar="YYYY-MM-DD", help=f"first day of the {subject}"
        )
        days_parser.add_argument(
            "--to", dest="last", type=date.fromisoformat, metavar="YYYY-MM-DD", help=f"last day of the {subject}"
        )
    commands.add_parser("simulator", help="run the Ekvio simulator standalone", add_help=False)
    commands.add_parser(
        "bench", help="measure the ingest path at company scale against DuckDB's reader and a naive load", add_help=False
    )
    commands.add_parser("tables", help="print the data dictionary of the analyst file", add_help=False)
    args, rest = parser.parse_known_args(argv)
    if args.command == "tables":
        from ekvio_assets.storage.dictionary import main as tables_main

        return tables_main(rest)
    if args.command == "simulator":
        from ekvio_assets.simulator.cli import main as simulator_main

        return simulator_main(rest)
    if args.command == "bench":
        from ekvio_assets.benchmark import main as bench_main

        return bench_main(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.last is not None and args.first is None:
        parser.error("--to needs --from")
    try:
        if args.command == "replay":
            return replay(Settings.from_env(), args.path, args.report, args.first, args.last)
        return refresh(Settings.from_env(), args.first, args.last)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
