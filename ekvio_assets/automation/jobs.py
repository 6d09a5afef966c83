"""Jobs that the CLI, the schedules, the sensor and the Dagster UI run."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg

from ekvio_assets.models.assets import MODELS_GROUP
from ekvio_assets.models.publish import PUBLISH_ASSET
from ekvio_assets.models.specs import MODELS
from ekvio_assets.naming import Namespace
from ekvio_assets.reports.assets import FULL_EXPORT_TAG, REPORTS_GROUP
from ekvio_assets.reports.specs import REPORTS

REFRESH_JOB = "refresh_job"
RECONCILE_JOB = "reconcile_job"
ANALYTICS_JOB = "analytics_job"


@dataclass(frozen=True)
class Jobs:
    refresh: dg.UnresolvedAssetJobDefinition
    reconcile: dg.UnresolvedAssetJobDefinition
    analytics: dg.UnresolvedAssetJobDefinition


# What the step processes of a run of the daemon or the UI fork from: Dagster's executor and the
# definitions, imported once per run instead of once per step.
RUN_STEP_PRELOAD = ("dagster._core.executor.multiprocess", "ekvio_assets.definitions")


def report_run_config(preload_modules: Sequence[str] = RUN_STEP_PRELOAD) -> dict[str, Any]:
    """Run config of a report job: every report step at once, since polling Ekvio is waiting, not
    computing. The step processes fork from a server that imported `preload_modules` once, instead
    of each importing Dagster anew (seconds per step on two cores). The server keeps the environment
    it started with, which is right where the process that starts it runs one run and ends (the
    daemon's and the UI's runs, each in a process or pod of its own) or no longer changes its
    environment (the CLI, with its own preload)."""
    multiprocess: dict[str, Any] = {
        "max_concurrent": len(REPORTS),
        "start_method": {"forkserver": {"preload_modules": list(preload_modules)}},
    }
    return {"execution": {"config": {"multiprocess": multiprocess}}}


def analytics_to_rebuild(changed_or_missing: Iterable[str], namespace: Namespace) -> dg.AssetSelection:
    """The company's analytics assets a refresh must run: the models that read (directly or through
    other models) a table that changed or is missing, those that read the clock, and the publish with
    what follows it (the load records in `report_loads` change on every refresh)."""
    stale = [*changed_or_missing, *(model.name for model in MODELS if model.reads_the_clock)]
    models = dg.AssetSelection.groups(namespace.name(MODELS_GROUP))
    return (dg.AssetSelection.assets(*map(namespace.key, stale)).downstream() & models) | (
        dg.AssetSelection.assets(namespace.key(PUBLISH_ASSET)).downstream()
    )


def build_jobs(namespace: Namespace) -> Jobs:
    """The company's jobs; those of the report assets take their daily partitions from them."""
    reports = dg.AssetSelection.groups(namespace.name(REPORTS_GROUP))
    return Jobs(
        refresh=dg.define_asset_job(
            namespace.name(REFRESH_JOB),
            selection=reports,
            config=report_run_config(),
            description="Export the chosen days of every Ekvio report and merge them into the DuckDB tables.",
        ),
        reconcile=dg.define_asset_job(
            namespace.name(RECONCILE_JOB),
            selection=reports,
            tags={FULL_EXPORT_TAG: "true"},
            config=report_run_config(),
            description=(
                "Export every report in full and merge it: the full load, and the weekly check that "
                "the daily refreshes missed nothing (`rows_changed` on each asset should be 0)."
            ),
        ),
        analytics=dg.define_asset_job(
            namespace.name(ANALYTICS_JOB),
            selection=dg.AssetSelection.groups(namespace.name(MODELS_GROUP)),
            # The models and the publish take turns on one DuckDB writer: a process per step
            # would only add its start-up to each of them.
            executor_def=dg.in_process_executor,
            description=(
                "Rebuild every analytics table from the report tables. Under the daemon the tables "
                "follow the reports on their own (declarative automation); the CLI runs this job."
            ),
        ),
    )
