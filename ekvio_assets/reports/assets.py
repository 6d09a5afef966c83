"""One Dagster asset per report spec: export from Ekvio, archive the file, merge it into DuckDB.
A nested report's parent objects (materials, programmes) are a second asset of the same step.

The assets are partitioned by day. A run over one day or a range of days asks the API for that
window in as few tasks as the configured maximum window allows; a run tagged `ekvio/full_export`
asks for the whole report instead (the full load and the weekly reconcile).
"""

import warnings
from collections.abc import Iterator
from datetime import timedelta

import dagster as dg
import duckdb

from ekvio_assets.api.client import EkvioApiError, ExportedFile
from ekvio_assets.api.windows import FULL_EXPORT, export_windows
from ekvio_assets.naming import Namespace
from ekvio_assets.reports.checks import evaluate_report_checks, export_size_result, report_check_specs
from ekvio_assets.reports.load import LoadResult, load_report_file
from ekvio_assets.reports.merge import rows_changed_per_window
from ekvio_assets.reports.specs import REPORTS, ReportSpec
from ekvio_assets.reports.staging import ReportFileError
from ekvio_assets.reports.tables import table_columns, table_description
from ekvio_assets.storage.metadata import qualified_table_name

# Single-run backfills are what a range refresh needs; Dagster still labels the parameter beta.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)

REPORTS_GROUP = "ekvio_reports"
# A run tag rather than op config: it reaches every asset of a run over a partition range, where
# Dagster applies no per-partition config. reconcile_job sets it.
FULL_EXPORT_TAG = "ekvio/full_export"


def report_pool(spec: ReportSpec, namespace: Namespace) -> str:
    """Ekvio runs one task per report and company at a time, so a company's runs take turns per report."""
    return namespace.name(f"ekvio_{spec.name}")


def _declared_schema(spec: ReportSpec) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            dg.TableColumn(name, type_, description=description) for name, type_, description in table_columns(spec)
        ]
    )


def _run_metadata(
    window_label: str, exported: list[ExportedFile], loads: list[LoadResult]
) -> dict[str, dg.MetadataValue | int | str]:
    outcomes = [loaded.outcome for loaded in loads]
    inserted = sum(outcome.inserted for outcome in outcomes)
    updated = sum(outcome.updated for outcome in outcomes)
    return {
        **loads[-1].table_metadata,
        "window": window_label,
        "export_tasks": len(exported),
        "ekvio_task_ids": ", ".join(file.task_id for file in exported),
        "raw_file": dg.MetadataValue.path(str(exported[-1].path)),
        "rows_in_files": sum(outcome.rows_in_file for outcome in outcomes),
        "rows_inserted": inserted,
        "rows_updated": updated,
        "rows_changed": inserted + updated,
        "rows_rejected": sum(outcome.rejected for outcome in outcomes),
        "duplicate_keys_in_files": sum(outcome.duplicates for outcome in outcomes),
    }


def _add_partition_row_counts(
    context: dg.AssetExecutionContext, con: duckdb.DuckDBPyConnection, spec: ReportSpec, key: dg.AssetKey
) -> None:
    """Each partition's row count: the rows whose current version changed that day, so the UI's
    plot of dagster/partition_row_count over partitions shows the daily volume."""
    partitions = context.assets_def.partitions_def
    keys = context.partition_keys
    windows = [partitions.time_window_for_partition_key(key) for key in keys]
    counts = rows_changed_per_window(con, spec.name, [(window.start, window.end) for window in windows])
    for partition, count in zip(keys, counts, strict=True):
        context.add_asset_metadata(
            {"dagster/partition_row_count": dg.MetadataValue.int(count)}, asset_key=key, partition_key=partition
        )


def _asset_spec(
    spec: ReportSpec, description: str, freshness: dg.FreshnessPolicy, namespace: Namespace
) -> dg.AssetSpec:
    metadata: dict[str, object] = {
        "dagster/column_schema": _declared_schema(spec),
        "dagster/table_name": qualified_table_name(spec.name),
        "key": ", ".join(spec.key),
    }
    if spec.change_time is not None:
        metadata["change_time"] = spec.change_time
    return dg.AssetSpec(
        namespace.key(spec.name),
        group_name=namespace.name(REPORTS_GROUP),
        kinds={"duckdb", "python"},
        description=description,
        freshness_policy=freshness,
        metadata=metadata,
    )


def _asset_specs(spec: ReportSpec, freshness: dg.FreshnessPolicy, namespace: Namespace) -> list[dg.AssetSpec]:
    """The report's table, and a nested report's table of parents, which the same export fills."""
    return [
        _asset_spec(table, f"{table_description(table)} DuckDB table `{table.name}`.", freshness, namespace)
        for table in (spec, spec.parents)
        if table is not None
    ]


def build_report_asset(
    spec: ReportSpec,
    partitions: dg.PartitionsDefinition,
    max_window_days: int,
    freshness: dg.FreshnessPolicy,
    namespace: Namespace,
) -> dg.AssetsDefinition:
    tables = [table for table in (spec, spec.parents) if table is not None]
    keys = {table.name: namespace.key(table.name) for table in tables}

    @dg.multi_asset(
        name=namespace.step(spec.name),
        specs=_asset_specs(spec, freshness, namespace),
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=report_pool(spec, namespace),
        check_specs=[check for table in tables for check in report_check_specs(table, keys[table.name])],
        required_resource_keys={namespace.api_resource, namespace.warehouse_resource},
    )
    def report_asset(context: dg.AssetExecutionContext) -> Iterator[dg.MaterializeResult]:
        ekvio_api = namespace.api(context)
        warehouse = namespace.warehouse(context)
        full_export = context.run.tags.get(FULL_EXPORT_TAG) == "true"
        if full_export:
            windows, label = [FULL_EXPORT], FULL_EXPORT.describe()
        else:
            days = context.partition_time_window
            windows = export_windows(days.start, days.end, max_window_days)
            label = f"{days.start.isoformat()} .. {days.end.isoformat()}"
        exported: list[ExportedFile] = []
        loads: list[LoadResult] = []
        try:
            for window in windows:
                exported.append(ekvio_api.export(spec, window, warehouse.raw_dir(spec.name)))
                loads.append(load_report_file(warehouse, spec, exported[-1], window.after, window.to))
        except (EkvioApiError, ReportFileError) as error:
            raise dg.Failure(description=str(error), allow_retries=False) from None
        loads_of = {spec.name: loads}
        if spec.parents is not None:
            loads_of[spec.parents.name] = [loaded.parents for loaded in loads if loaded.parents is not None]
        metadata = {table.name: _run_metadata(label, exported, loads_of[table.name]) for table in tables}
        for table in tables:
            changed = metadata[table.name]["rows_changed"]
            # A table's first load brings rows no refresh before it could have.
            if full_export and changed and not any(loaded.outcome.first_load for loaded in loads_of[table.name]):
                context.log.warning(
                    f"{table.name}: the full export changed {changed} rows that the "
                    "incremental refreshes had not brought (or had brought older versions of)"
                )
        with warehouse.read_connection() as con:
            checks = {table.name: evaluate_report_checks(con, table, keys[table.name]) for table in tables}
            _add_partition_row_counts(context, con, spec, keys[spec.name])
        checks[spec.name].append(export_size_result([loaded.outcome for loaded in loads], keys[spec.name]))
        for table in tables:
            yield dg.MaterializeResult(
                asset_key=keys[table.name], metadata=metadata[table.name], check_results=checks[table.name]
            )

    return report_asset


def build_report_assets(
    partitions: dg.PartitionsDefinition, max_window_days: int, freshness_hours: float, namespace: Namespace
) -> list[dg.AssetsDefinition]:
    """The company's report assets; each turns stale in the UI when not refreshed for `freshness_hours`."""
    freshness = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=freshness_hours))
    return [build_report_asset(spec, partitions, max_window_days, freshness, namespace) for spec in REPORTS]
