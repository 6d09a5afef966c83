"""Jobs that the CLI, the schedules, the sensor and the Dagster UI run."""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from ekvio_assets.models.assets import MODELS_GROUP
from ekvio_assets.reports.assets import FULL_EXPORT_TAG, REPORTS_GROUP

REFRESH_JOB = "refresh_job"
RECONCILE_JOB = "reconcile_job"
ANALYTICS_JOB = "analytics_job"


@dataclass(frozen=True)
class Jobs:
    refresh: dg.UnresolvedAssetJobDefinition
    reconcile: dg.UnresolvedAssetJobDefinition
    analytics: dg.UnresolvedAssetJobDefinition


def build_jobs() -> Jobs:
    """The jobs; those of the report assets take their daily partitions from them."""
    reports = dg.AssetSelection.groups(REPORTS_GROUP)
    return Jobs(
        refresh=dg.define_asset_job(
            REFRESH_JOB,
            selection=reports,
            description="Export the chosen days of every Ekvio report and merge them into the DuckDB tables.",
        ),
        reconcile=dg.define_asset_job(
            RECONCILE_JOB,
            selection=reports,
            tags={FULL_EXPORT_TAG: "true"},
            description=(
                "Export every report in full and merge it: the full load, and the weekly check that "
                "the daily refreshes missed nothing (`rows_changed` on each asset should be 0)."
            ),
        ),
        analytics=dg.define_asset_job(
            ANALYTICS_JOB,
            selection=dg.AssetSelection.groups(MODELS_GROUP),
            description=(
                "Rebuild every analytics table from the report tables. Under the daemon the tables "
                "follow the reports on their own (declarative automation); the CLI runs this job."
            ),
        ),
    )
