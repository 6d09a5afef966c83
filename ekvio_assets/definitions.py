"""Assembles the Dagster definitions of ekvio-assets from the validated EKVIO_* settings."""

import dagster as dg

from ekvio_assets.api.resource import EkvioApiResource
from ekvio_assets.automation.jobs import build_jobs
from ekvio_assets.automation.ownership import with_owners_and_tags
from ekvio_assets.automation.partitions import daily_partitions
from ekvio_assets.automation.schedules import build_schedules
from ekvio_assets.automation.sensors import build_analytics_automation_sensor, build_missing_days_sensor
from ekvio_assets.config import Settings
from ekvio_assets.models.assets import MODELS_GROUP, build_model_assets
from ekvio_assets.models.learning_report.asset import build_learning_report_asset
from ekvio_assets.models.publish import build_publish_asset
from ekvio_assets.naming import Namespace
from ekvio_assets.reports.assets import build_report_assets
from ekvio_assets.storage.warehouse import DuckDBWarehouse


def _api_resource_class(settings: Settings) -> type[EkvioApiResource]:
    """The one place that chooses the embedded simulator: only then is the simulator imported."""
    if not settings.uses_embedded_simulator:
        return EkvioApiResource
    from ekvio_assets.simulator.embedded import EmbeddedSimulatorApiResource

    return EmbeddedSimulatorApiResource


def build_company_definitions(settings: Settings) -> dg.Definitions:
    """One company's assets, checks, jobs, schedules, sensors and resources, under its own names."""
    namespace = Namespace(settings.company)
    partitions = daily_partitions(settings)
    reports = build_report_assets(partitions, settings.max_window_days, settings.freshness_hours, namespace)
    models = build_model_assets(namespace)
    jobs = build_jobs(namespace)
    assets = [*reports, *models, build_publish_asset(models, namespace), build_learning_report_asset(namespace)]
    return dg.Definitions(
        assets=with_owners_and_tags(assets, settings.asset_owners, namespace),
        jobs=[jobs.refresh, jobs.reconcile, jobs.analytics],
        schedules=build_schedules(jobs, partitions, settings.lookback_days, namespace),
        sensors=[
            build_missing_days_sensor(
                jobs, partitions, [key for a in reports for key in a.keys], settings.lookback_days, namespace
            ),
            build_analytics_automation_sensor(dg.AssetSelection.groups(namespace.name(MODELS_GROUP)), namespace),
        ],
        resources={
            namespace.api_resource: _api_resource_class(settings)(
                api_url=settings.api_url,
                api_token=None if settings.uses_embedded_simulator else dg.EnvVar(settings.token_variable),
                poll_interval_seconds=settings.poll_interval_seconds,
                poll_timeout_seconds=settings.poll_timeout_seconds,
                max_attempts=settings.max_attempts,
                backoff_base_seconds=settings.retry_backoff_seconds,
                report_paths=dict(settings.report_paths),
                report_methods=dict(settings.report_methods),
                file_host=settings.file_host,
            ),
            namespace.warehouse_resource: DuckDBWarehouse(data_dir=str(settings.data_dir), timezone=settings.timezone),
        },
    )


def build_definitions(settings: Settings) -> dg.Definitions:
    """Every company's definitions side by side (one, with today's names, without a companies file)."""
    return dg.Definitions.merge(*(build_company_definitions(company) for company in settings.per_company()))


defs = build_definitions(Settings.from_env())
