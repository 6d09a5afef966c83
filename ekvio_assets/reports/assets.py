"""One Dagster asset per report spec: export from Ekvio, archive the file, merge it into DuckDB."""

from __future__ import annotations

import dagster as dg

from ekvio_assets.api.client import FULL_EXPORT, EkvioApiError
from ekvio_assets.api.resource import EkvioApiResource
from ekvio_assets.reports.load import load_report_file
from ekvio_assets.reports.merge import EXTRA_FIELDS_DESCRIPTION, LINEAGE_COLUMNS
from ekvio_assets.reports.specs import REPORTS, ReportSpec
from ekvio_assets.reports.staging import EXTRA_FIELDS, ReportFileError
from ekvio_assets.storage.warehouse import DuckDBWarehouse

REPORTS_GROUP = "ekvio_reports"


def _declared_schema(spec: ReportSpec) -> dg.TableSchema:
    columns = [dg.TableColumn(f.column, f.type.duckdb_type, description=f.description) for f in spec.columns]
    columns.append(dg.TableColumn(EXTRA_FIELDS, "JSON", description=EXTRA_FIELDS_DESCRIPTION))
    columns += [dg.TableColumn(name, type_, description=description) for name, type_, description in LINEAGE_COLUMNS]
    return dg.TableSchema(columns=columns)


def build_report_asset(spec: ReportSpec) -> dg.AssetsDefinition:
    @dg.asset(
        name=spec.name,
        group_name=REPORTS_GROUP,
        kinds={"duckdb", "python"},
        description=(
            f"{spec.title} from the Ekvio API ({spec.method} {spec.path}), one row per "
            f"{' + '.join(spec.key)}, merged into the DuckDB table `{spec.name}`."
        ),
        metadata={
            "dagster/column_schema": _declared_schema(spec),
            "dagster/table_name": spec.name,
            "key": ", ".join(spec.key),
            "change_time": spec.change_time,
        },
    )
    def report_asset(ekvio_api: EkvioApiResource, warehouse: DuckDBWarehouse) -> dg.MaterializeResult:
        window = FULL_EXPORT
        try:
            exported = ekvio_api.export(spec, window, warehouse.raw_dir(spec.name))
            loaded = load_report_file(warehouse, spec, exported, window.after, window.to)
        except (EkvioApiError, ReportFileError) as error:
            raise dg.Failure(description=str(error), allow_retries=False) from None
        outcome = loaded.outcome
        return dg.MaterializeResult(
            metadata={
                **loaded.table_metadata,
                "ekvio_task_id": exported.task_id,
                "raw_file": dg.MetadataValue.path(str(exported.path)),
                "raw_file_bytes": exported.size_bytes,
                "window": window.describe(),
                "rows_in_file": outcome.rows_in_file,
                "rows_inserted": outcome.inserted,
                "rows_updated": outcome.updated,
                "rows_rejected": outcome.rejected,
                "duplicate_keys_in_file": outcome.duplicates,
            }
        )

    return report_asset


report_assets = [build_report_asset(spec) for spec in REPORTS]
