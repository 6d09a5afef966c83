"""The analyst file: a consistent snapshot of the working database, published after the models."""

from collections.abc import Sequence

import dagster as dg

from ekvio_assets.models.assets import MODEL_AUTOMATION, MODELS_GROUP
from ekvio_assets.naming import Namespace
from ekvio_assets.storage.metadata import PII_TAG, markdown_table
from ekvio_assets.storage.sql import row_count, table_names
from ekvio_assets.storage.warehouse import PUBLISHED_STORAGE_VERSION

PUBLISH_ASSET = "analyst_database"


def build_publish_asset(models: Sequence[dg.AssetsDefinition], namespace: Namespace) -> dg.AssetsDefinition:
    @dg.asset(
        key=namespace.key(PUBLISH_ASSET),
        group_name=namespace.name(MODELS_GROUP),
        kinds={"duckdb"},
        # Every table, those with logins and names among them.
        tags={PII_TAG: "true"},
        deps=[model.key for model in models],
        # After the models, and only when their blocking checks passed: analysts only ever get
        # a complete, checked refresh.
        automation_condition=MODEL_AUTOMATION,
        required_resource_keys={namespace.warehouse_resource},
        description=(
            "EKVIO_DATA_DIR/ekvio.duckdb, the file analysts open read-only: a copy of the working "
            "database taken when no writer holds it, in the storage format DuckDB 1.1 and every later "
            "release reads, renamed over the old file in one atomic step."
        ),
    )
    def analyst_database(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        warehouse = namespace.warehouse(context)
        path = warehouse.publish()
        with warehouse.published_connection() as con:
            counts = [(table, row_count(con, table)) for table in sorted(table_names(con))]
        return dg.MaterializeResult(
            metadata={
                "path": dg.MetadataValue.path(str(path)),
                "size_bytes": path.stat().st_size,
                "storage_version": PUBLISHED_STORAGE_VERSION,
                "tables": dg.MetadataValue.md(markdown_table(["table", "rows"], counts)),
            }
        )

    return analyst_database
