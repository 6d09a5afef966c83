"""Jobs that the CLI and the Dagster UI run."""

import dagster as dg

from ekvio_assets.reports.assets import REPORTS_GROUP

REFRESH_JOB = "refresh_job"

refresh_job = dg.define_asset_job(
    REFRESH_JOB,
    selection=dg.AssetSelection.groups(REPORTS_GROUP),
    description="Export every Ekvio report in full and merge it into the DuckDB tables.",
)
