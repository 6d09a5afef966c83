"""The daily refresh of the day just ended, and the weekly full reconcile."""

from __future__ import annotations

import dagster as dg

from ekvio_assets.automation.jobs import Jobs
from ekvio_assets.automation.partitions import full_export_tags
from ekvio_assets.naming import Namespace

DAILY_REFRESH_HOUR = 3
WEEKLY_RECONCILE_CRON = "0 5 * * 0"  # Sundays 05:00, after that day's daily refresh


def build_schedules(
    jobs: Jobs, partitions: dg.DailyPartitionsDefinition, lookback_days: int, namespace: Namespace
) -> list[dg.ScheduleDefinition]:
    """The company's schedules, in its time zone (the partitions')."""

    @dg.schedule(
        name=namespace.name("daily_refresh_schedule"),
        job=jobs.refresh,
        cron_schedule=f"0 {DAILY_REFRESH_HOUR} * * *",
        execution_timezone=partitions.timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Every morning, export the day just ended (in EKVIO_TIMEZONE) of every report.",
    )
    def daily_refresh_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        ended = partitions.get_partition_keys(current_time=context.scheduled_execution_time)
        if not ended:
            return dg.SkipReason("EKVIO_START_DATE is not before today: no day has ended yet")
        return dg.RunRequest(partition_key=ended[-1], run_key=ended[-1])

    @dg.schedule(
        name=namespace.name("weekly_reconcile_schedule"),
        job=jobs.reconcile,
        cron_schedule=WEEKLY_RECONCILE_CRON,
        execution_timezone=partitions.timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Every week, export every report in full and count the rows the daily refreshes missed.",
    )
    def weekly_reconcile_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        return dg.RunRequest(tags=full_export_tags(partitions, lookback_days, context.scheduled_execution_time))

    return [daily_refresh_schedule, weekly_reconcile_schedule]
