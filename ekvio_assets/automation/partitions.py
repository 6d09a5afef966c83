"""Daily partitions in the company's time zone, and the run tags of a range of them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import dagster as dg

from ekvio_assets.config import ConfigError, Settings

# Dagster's system tags for a run over a range of partitions (the single-run backfill form).
PARTITION_RANGE_START_TAG = "dagster/asset_partition_range_start"
PARTITION_RANGE_END_TAG = "dagster/asset_partition_range_end"


def daily_partitions(settings: Settings) -> dg.DailyPartitionsDefinition:
    """One partition per day [00:00, next day 00:00) in EKVIO_TIMEZONE, from EKVIO_START_DATE."""
    return dg.DailyPartitionsDefinition(start_date=settings.start_date.isoformat(), timezone=settings.timezone)


def partition_range_tags(first: str, last: str) -> Mapping[str, str]:
    """Run tags that make one run cover the partitions from `first` to `last`."""
    return {PARTITION_RANGE_START_TAG: first, PARTITION_RANGE_END_TAG: last}


def recent_days(partitions: dg.DailyPartitionsDefinition, lookback_days: int, now: datetime | None = None) -> list[str]:
    """The day just ended (the daily schedule's) and the `lookback_days` before it (the sensor's)."""
    return list(partitions.get_partition_keys(current_time=now)[-(lookback_days + 1) :])


def full_export_tags(
    partitions: dg.DailyPartitionsDefinition, lookback_days: int, now: datetime | None = None
) -> Mapping[str, str]:
    """The days a full export is recorded against: the recent days, not all of history.

    A full export brings every day's data, but marking years of partitions would write thousands
    of events per report on each weekly reconcile; older days keep the status their own runs gave.
    """
    keys = recent_days(partitions, lookback_days, now)
    if not keys:
        raise ConfigError("EKVIO_START_DATE is not before today: there is no complete day to refresh yet")
    return partition_range_tags(keys[0], keys[-1])
