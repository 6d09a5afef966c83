"""`ekvio-assets refresh | replay | ui | tables | pools`: what each command does once its arguments are read."""

from __future__ import annotations

import importlib
import os
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any, NoReturn

import dagster as dg

from ekvio_assets.automation.jobs import ANALYTICS_JOB, RECONCILE_JOB, REFRESH_JOB, analytics_to_rebuild
from ekvio_assets.automation.partitions import daily_partitions, full_export_tags, partition_range_tags
from ekvio_assets.automation.pools import PoolsError, RegisteredPool, definition_pools, register_pools
from ekvio_assets.cli.display import Display
from ekvio_assets.cli.environment import WORKSPACE, project_file, use_instance_home
from ekvio_assets.cli.instance import open_instance
from ekvio_assets.cli.progress import RunProgress, TableChange
from ekvio_assets.cli.runs import REPORT_RUN_CONFIG, definitions, execute, report_failure
from ekvio_assets.cli.summary import summary_lines
from ekvio_assets.config import COMPANIES, DATA_DIR, ConfigError, Settings
from ekvio_assets.models.specs import MODELS
from ekvio_assets.naming import Namespace
from ekvio_assets.reports.replay import ReplayError, replay_raw_file
from ekvio_assets.reports.staging import ReportFileError
from ekvio_assets.storage.dictionary import as_markdown, as_text, read_dictionary
from ekvio_assets.storage.sql import table_names
from ekvio_assets.storage.warehouse import DuckDBWarehouse

# What draws the learning report's charts (matplotlib).
LEARNING_REPORT_CHARTS = "ekvio_assets.models.learning_report.charts"


class _ChartsImport:
    """Imports the learning report's plotting library in a thread, once: called when a report table
    changed, so that the analytics run finds it loaded when it draws the charts that changed (half a
    second of CPU, spent while the other report steps run; on an idle day, not at all)."""

    def __init__(self) -> None:
        self._started = False

    def __call__(self) -> None:
        if not self._started:
            self._started = True
            threading.Thread(target=importlib.import_module, args=(LEARNING_REPORT_CHARTS,), daemon=True).start()


def _run(
    instance: dg.DagsterInstance,
    job_name: str,
    tags: Mapping[str, str],
    display: Display,
    verbose: bool,
    on_change: Callable[[], None] | None = None,
    **options: Any,
) -> RunProgress | None:
    """Runs the job, showing its progress (and calling `on_change` once a table changed); on failure
    prints each failed step's message and returns None."""
    progress = RunProgress(job_name)
    with display.following(progress) as show:

        def on_entry(entry: dg.EventLogEntry) -> None:
            show(entry)
            if on_change is not None and any(change.changed for change in progress.tables().values()):
                on_change()

        result = execute(instance, job_name, tags, on_entry, verbose, **options)
    if result.success:
        return progress
    report_failure(result)
    return None


def _run_analytics(
    instance: dg.DagsterInstance, settings: Settings, changed_tables: Sequence[str], display: Display, verbose: bool
) -> RunProgress | None:
    """Rebuilds the analytics tables that the changed tables (or the clock) make stale, then publishes."""
    warehouse = DuckDBWarehouse(data_dir=str(settings.data_dir), timezone=settings.timezone)
    with warehouse.read_connection() as con:
        built = table_names(con)
    missing = [model.name for model in MODELS if model.name not in built]
    namespace = Namespace(settings.company)
    stale = analytics_to_rebuild([*changed_tables, *missing], namespace)
    selection = stale.resolve(definitions().resolve_asset_graph())
    return _run(instance, namespace.name(ANALYTICS_JOB), {}, display, verbose, asset_selection=sorted(selection))


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


def chosen_companies(settings: Settings, company: str | None, *, one: bool = False) -> list[Settings]:
    """The settings of the company `company` (every company if None, unless `one` is needed)."""
    companies = settings.per_company()
    keys = [each.company for each in companies if each.company is not None]
    if company is None:
        if one and keys:
            raise ConfigError(f"{COMPANIES} holds several companies: choose one with --company ({', '.join(keys)})")
        return companies
    if not keys:
        raise ConfigError(f"--company needs a companies file ({COMPANIES}); without one there is a single company")
    if company not in keys:
        raise ConfigError(f"--company {company!r} is not in {COMPANIES}, whose companies are {', '.join(keys)}")
    return [each for each in companies if each.company == company]


def refresh(
    settings: Settings,
    first: date | None,
    last: date | None,
    display: Display,
    verbose: bool,
    company: str | None = None,
) -> int:
    """Refresh every chosen company, one after the other; one company's failure stops none of the others."""
    companies = chosen_companies(settings, company)
    for each in companies:
        if first is not None:
            _checked_days(each, first, last or first)
    home = use_instance_home(settings)
    failed = []
    with open_instance() as instance:
        for each in companies:
            if not _refresh_company(instance, each, first, last, display, verbose, home):
                failed.append(each.company)
    if failed and len(companies) > 1:
        print(
            f"The refresh of {', '.join(map(str, failed))} failed; the other companies were refreshed.", file=sys.stderr
        )
    return 1 if failed else 0


def _refresh_company(
    instance: dg.DagsterInstance,
    settings: Settings,
    first: date | None,
    last: date | None,
    display: Display,
    verbose: bool,
    home: Path,
) -> bool:
    namespace = Namespace(settings.company)
    if first is None:
        job, tags = RECONCILE_JOB, full_export_tags(daily_partitions(settings), settings.lookback_days)
        what = "every Ekvio report in full"
    else:
        job, tags = REFRESH_JOB, partition_range_tags(*_checked_days(settings, first, last or first))
        what = f"the days {first} .. {last or first} of every Ekvio report"
    peer = settings.api_url or "the embedded Ekvio simulator (EKVIO_API_URL is not set)"
    whose = "" if settings.company is None else f"company {settings.company}: "
    print(f"{whose}Refreshing {what} from {peer}; Dagster instance: {home}", flush=True)
    reports = _run(instance, namespace.name(job), tags, display, verbose, _ChartsImport(), run_config=REPORT_RUN_CONFIG)
    if reports is None:
        return False
    changed = [table for table, change in reports.tables().items() if change.changed]
    analytics = _run_analytics(instance, settings, changed, display, verbose)
    if analytics is None:
        return False
    print(f"{whose}Runs {reports.run_id} (reports) and {analytics.run_id} (analytics) succeeded.")
    print("\n".join(summary_lines(settings, [reports, analytics])))
    return True


def replay(
    settings: Settings,
    path: Path,
    report: str | None,
    first: date | None,
    last: date | None,
    display: Display,
    verbose: bool,
    company: str | None = None,
) -> int:
    """Load an archived result file again into its company's tables, then rebuild and publish the
    analytics tables."""
    home = use_instance_home(settings)
    [settings] = chosen_companies(settings, company, one=True)
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
        f"{outcome.inserted:,} inserted, {outcome.updated:,} updated, {outcome.rejected:,} rejected",
        flush=True,
    )
    with open_instance() as instance:
        changed = [spec.name] if outcome.inserted + outcome.updated else []
        analytics = _run_analytics(instance, settings, changed, display, verbose)
    if not analytics:
        return 1
    print(f"Run {analytics.run_id} (analytics) succeeded; Dagster instance: {home}.")
    replayed = {spec.name: TableChange(outcome.inserted, outcome.updated, outcome.rejected)}
    print("\n".join(summary_lines(settings, [analytics], replayed)))
    return 0


def tables(settings: Settings, markdown: bool, company: str | None = None) -> int:
    """Prints the data dictionary of the (chosen company's) published analyst file."""
    [settings] = chosen_companies(settings, company, one=True)
    database = settings.database_path
    if not database.is_file():
        print(f"{database} does not exist yet: `ekvio-assets refresh` publishes it", file=sys.stderr)
        return 1
    described = read_dictionary(database)
    print(as_markdown(described) if markdown else as_text(described), end="")
    return 0


def _registered_pools() -> list[RegisteredPool]:
    """Registers every pool of the definitions on the instance (see automation.pools)."""
    with open_instance() as instance:
        return register_pools(instance, definition_pools(definitions()))


def pools(settings: Settings) -> int:
    """Registers the pools before the daemon queues a run of them: run once per deployment and each
    time the companies change."""
    home = use_instance_home(settings)
    try:
        registered = _registered_pools()
    except PoolsError as error:
        print(f"The pools were not registered: {error}", file=sys.stderr)
        return 1
    print(f"Pools on the Dagster instance {home}, {sum(pool.new for pool in registered)} of them new:")
    print("\n".join(f"  {pool.name}: {pool.limit} run at a time" for pool in registered))
    return 0


def ui_invocation(settings: Settings, host: str, port: int) -> tuple[list[str], dict[str, str], Path]:
    """The `dagster dev` command line, environment and working directory of `ekvio-assets ui`.

    It runs in the instance home, not here: `dagster dev` would read ./.env again and let it win
    over the real environment, where the CLI lets the environment win (see load_dotenv). The data
    folder is passed as an absolute path for the same reason.
    """
    workspace = project_file(WORKSPACE)
    if workspace is None:
        raise ConfigError(f"no {WORKSPACE} here or in the project folder: run `ekvio-assets ui` from the project")
    home = use_instance_home(settings)
    command = [sys.executable, "-m", "dagster", "dev", "-w", str(workspace), "--host", host, "--port", str(port)]
    return command, {**os.environ, DATA_DIR: str(settings.data_dir)}, home


def ui(settings: Settings, host: str, port: int) -> NoReturn:
    """Replaces this process by `dagster dev` on the CLI's instance."""
    command, environment, home = ui_invocation(settings, host, port)
    try:
        registered = _registered_pools()
        print(
            f"{len(registered)} pools on the instance, {sum(pool.new for pool in registered)} of them new", flush=True
        )
    except PoolsError as error:
        print(f"Warning: the pools were not registered, so queued runs may overlap: {error}", file=sys.stderr)
    print(f"Dagster UI on http://{host}:{port} (Ctrl-C stops it); Dagster instance: {home}", flush=True)
    os.chdir(home)
    os.execve(command[0], command, environment)
