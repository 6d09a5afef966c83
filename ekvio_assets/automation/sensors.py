"""Finds recent days whose report partitions are missing or failed, and requests them again."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import dagster as dg

from ekvio_assets.automation.jobs import Jobs
from ekvio_assets.automation.partitions import recent_days
from ekvio_assets.naming import Namespace


def build_missing_days_sensor(
    jobs: Jobs,
    partitions: dg.DailyPartitionsDefinition,
    report_keys: Sequence[dg.AssetKey],
    lookback_days: int,
    namespace: Namespace,
) -> dg.SensorDefinition:
    @dg.sensor(
        name=namespace.name("missing_days_sensor"),
        job=jobs.refresh,
        minimum_interval_seconds=15 * 60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            f"Requests the days of the last {lookback_days} (EKVIO_LOOKBACK_DAYS) whose report partitions "
            "are missing or failed. The day just ended belongs to the daily schedule and is left to it."
        ),
    )
    def missing_days_sensor(context: dg.SensorEvaluationContext) -> Iterator[dg.RunRequest | dg.SkipReason]:
        # The newest complete day is the daily schedule's; the sensor covers the days before it.
        days = recent_days(partitions, lookback_days)[:-1]
        statuses = {key: context.instance.get_status_by_partition(key, days, partitions) or {} for key in report_keys}
        requested = 0
        for day in days:
            day_statuses = {key: status.get(day) for key, status in statuses.items()}
            if dg.AssetPartitionStatus.IN_PROGRESS in day_statuses.values():
                continue
            failed_runs = sorted(
                {
                    info.run_id
                    for key, status in day_statuses.items()
                    if status is dg.AssetPartitionStatus.FAILED
                    and (info := context.instance.get_latest_planned_materialization_info(key, day)) is not None
                }
            )
            missing = any(status is None for status in day_statuses.values())
            if not failed_runs and not missing:
                continue
            requested += 1
            # The key changes with each new failure and stays while a request waits or runs, so
            # Dagster never requests a day twice for the same reason.
            reason = f"failed-in-{'+'.join(failed_runs)}" if failed_runs else "missing"
            yield dg.RunRequest(partition_key=day, run_key=f"{day}:{reason}")
        if not requested:
            yield dg.SkipReason(f"every report partition of the last {len(days)} days is materialized or in progress")

    return missing_days_sensor


def build_analytics_automation_sensor(
    analytics: dg.AssetSelection, namespace: Namespace
) -> dg.AutomationConditionSensorDefinition:
    """Evaluates the analytics tables' automation conditions; on by default, unlike Dagster's own."""
    return dg.AutomationConditionSensorDefinition(
        namespace.name("analytics_automation_sensor"),
        target=analytics,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Rebuilds the analytics tables after the report tables they read were refreshed.",
    )
