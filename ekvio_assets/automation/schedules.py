"""The daily refresh of the day just ended, and the weekly full reconcile."""

from __future__ import annotations

import dagster as dg

from ekvio_assets.automation.jobs import Jobs
from ekvio_assets.automation.partitions import full_export_tags

DAILY_REFRESH_HOUR = 3
WEEKLY_RECONCILE_CRON = "0 5 * * 0"  # Sundays 05:00, after that day's daily refresh


def build_schedules(
    jobs: Jobs, partitions: dg.DailyPartitionsDefinition, lookback_days: int
) -> list[dg.ScheduleDefinition | dg.UnresolvedPartitionedAssetScheduleDefinition]:
    daily_refresh = dg.build_schedule_from_partitioned_job(
        jobs.refresh,
        name="daily_refresh_schedule",
        description="Every morning, export the day just ended (in EKVIO_TIMEZONE) of every report.",
        hour_of_day=DAILY_REFRESH_HOUR,
        minute_of_hour=0,
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )

    @dg.schedule(
        name="weekly_reconcile_schedule",
        job=jobs.reconcile,
        cron_schedule=WEEKLY_RECONCILE_CRON,
        execution_timezone=partitions.timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Every week, export every report in full and count the rows the daily refreshes missed.",
    )
    def weekly_reconcile_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        return dg.RunRequest(tags=full_export_tags(partitions, lookback_days, context.scheduled_execution_time))

    return [daily_refresh, weekly_reconcile_schedule]
