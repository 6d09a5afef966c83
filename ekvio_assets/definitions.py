"""Assembles the Dagster definitions of ekvio-assets from the validated EKVIO_* settings."""

import dagster as dg

from ekvio_assets.api.resource import EkvioApiResource
from ekvio_assets.config import API_TOKEN, Settings
from ekvio_assets.jobs import refresh_job
from ekvio_assets.reports.assets import report_assets
from ekvio_assets.storage.warehouse import DuckDBWarehouse


def build_definitions(settings: Settings) -> dg.Definitions:
    return dg.Definitions(
        assets=report_assets,
        jobs=[refresh_job],
        resources={
            "ekvio_api": EkvioApiResource(
                api_url=settings.api_url,
                api_token=None if settings.uses_embedded_simulator else dg.EnvVar(API_TOKEN),
                poll_interval_seconds=settings.poll_interval_seconds,
                poll_timeout_seconds=settings.poll_timeout_seconds,
            ),
            "warehouse": DuckDBWarehouse(data_dir=str(settings.data_dir), timezone=settings.timezone),
        },
    )


defs = build_definitions(Settings.from_env())
