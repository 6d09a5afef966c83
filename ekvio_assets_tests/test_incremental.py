"""Partitioned incremental refresh against a simulated company whose data change from day to day."""

from __future__ import annotations

import logging
import time as time_module
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from ekvio_assets.automation.jobs import ANALYTICS_JOB, RECONCILE_JOB, REFRESH_JOB
from ekvio_assets.automation.partitions import daily_partitions, full_export_tags, partition_range_tags
from ekvio_assets.config import Settings
from ekvio_assets.definitions import build_definitions
from ekvio_assets.models.specs import MODELS
from ekvio_assets.reports.specs import ATTEMPTS, REPORT_TABLES, REPORTS, ReportSpec
from ekvio_assets.simulator import Call, Dataset, FaultPlan, FaultRule
from ekvio_assets_tests.conftest import (
    assert_tables_equal_truth,
    cli_refresh,
    day_key,
    end_of_day,
    refresh_days,
    run_job,
    table_by_key,
    truth_by_key,
)
from ekvio_assets_tests.helpers import FirstResultFileHeld


@pytest.fixture
def settings(tmp_path: Path, simulator: Any, configure_api: Callable[..., Settings]) -> Settings:
    return configure_api(simulator, tmp_path / "data")


def test_day_by_day_refreshes_follow_the_truth_and_rerunning_is_a_no_op(settings: Settings, simulator: Any) -> None:
    simulator.set_now(end_of_day(simulator, 0))
    refresh_days(settings, simulator, 0)
    assert_tables_equal_truth(settings, simulator, end_of_day(simulator, 0))

    simulator.set_now(end_of_day(simulator, 1))
    second = refresh_days(settings, simulator, 1)
    assert_tables_equal_truth(settings, simulator, end_of_day(simulator, 1))
    assert sum(e.materialization.metadata["rows_updated"].value for e in second.get_asset_materialization_events()) > 0
    assert all(check.passed for check in second.get_asset_check_evaluations())

    before = {spec.name: table_by_key(settings.working_database_path, spec) for spec in REPORTS}
    again = refresh_days(settings, simulator, 0)
    assert {spec.name: table_by_key(settings.working_database_path, spec) for spec in REPORTS} == before
    assert all(e.materialization.metadata["rows_changed"].value == 0 for e in again.get_asset_materialization_events())
    assert_tables_equal_truth(settings, simulator, end_of_day(simulator, 1))


def test_an_older_window_loaded_after_a_newer_one_keeps_the_newer_values(settings: Settings, simulator: Any) -> None:
    simulator.set_now(end_of_day(simulator, 3))
    refresh_days(settings, simulator, 0, 3)
    before = {spec.name: table_by_key(settings.working_database_path, spec) for spec in REPORTS}

    simulator.set_now(end_of_day(simulator, 0))  # an export taken back then, arriving late
    late = refresh_days(settings, simulator, 0)
    assert sum(e.materialization.metadata["rows_in_files"].value for e in late.get_asset_materialization_events()) > 0
    assert {spec.name: table_by_key(settings.working_database_path, spec) for spec in REPORTS} == before
    assert_tables_equal_truth(settings, simulator, end_of_day(simulator, 3))


def test_a_range_backfill_is_one_run_with_few_tasks(
    tmp_path: Path, simulator: Any, configure_api: Callable[..., Settings]
) -> None:
    settings = configure_api(simulator, tmp_path / "data", EKVIO_MAX_WINDOW_DAYS="4")
    simulator.set_now(end_of_day(simulator, 9))
    instance = dg.DagsterInstance.ephemeral()
    result = refresh_days(settings, simulator, 0, 9, instance=instance)
    assert len(instance.get_runs()) == 1
    for spec in REPORTS:
        windows = [(task.after, task.to) for task in simulator.state.tasks if task.report == spec.name]
        assert windows == [
            (simulator.dataset.day_window(0)[0], simulator.dataset.day_window(4)[0]),
            (simulator.dataset.day_window(4)[0], simulator.dataset.day_window(8)[0]),
            (simulator.dataset.day_window(8)[0], simulator.dataset.day_window(10)[0]),
        ], spec.name
        assert result.asset_materializations_for_node(spec.name)[0].metadata["export_tasks"].value == 3
        events = [e for e in result.get_asset_materialization_events() if e.asset_key.path == [spec.name]]
        assert {e.partition for e in events} == {day_key(simulator, index) for index in range(10)}
        per_day = {e.partition: e.materialization.metadata["dagster/partition_row_count"].value for e in events}
        assert per_day == _truth_changed_per_day(simulator, spec, end_of_day(simulator, 9)), spec.name
        assert len(set(per_day.values())) > 1, spec.name
        assert {e.materialization.metadata["dagster/row_count"].value for e in events} == {
            len(table_by_key(settings.working_database_path, spec))
        }
    assert_tables_equal_truth(settings, simulator, end_of_day(simulator, 9))


# The backfill's export windows as days [first, end), as the tasks above asked for them.
BACKFILL_WINDOWS = ((0, 4), (4, 8), (8, 10))
# The field of each report that dates a row's last change, as the field tables describe them.
CHANGE_FIELDS = {
    "attempts": "updated_at",
    "material_statistics": "update_at",
    "course_statistics": "last_activity",
    "program_statistics": "active_at",
}


def _truth_changed_per_day(running: Any, spec: ReportSpec, as_of: datetime) -> dict[str, int]:
    """Each day's partition row count, counted in what the simulator sent rather than in the
    loaded table: the rows whose version as of `as_of` was written that day. A row without a change
    time of its own (appointed, never active) is dated by the end of the export window that
    brought it, so it counts on the day that window ends on (none for the last window's)."""
    dataset = running.dataset
    counts = dict.fromkeys(range(BACKFILL_WINDOWS[-1][1]), 0)
    for first, end in BACKFILL_WINDOWS:
        for day in range(first, end):
            for row in dataset.truth(spec.name, *dataset.day_window(day), as_of=as_of):
                if row[CHANGE_FIELDS[spec.name]] is not None:
                    counts[day] += 1
                elif end in counts:
                    counts[end] += 1
    return {day_key(running, day): count for day, count in counts.items()}


@pytest.mark.long
def test_thirty_days_day_by_day_equal_one_full_load_and_reconcile_changes_nothing(
    tmp_path: Path, simulator: Any, configure_api: Callable[..., Settings]
) -> None:
    days = simulator.dataset.config.days
    daily = configure_api(simulator, tmp_path / "daily")
    instance = dg.DagsterInstance.ephemeral()
    for index in range(days):
        simulator.set_now(end_of_day(simulator, index))
        refresh_days(daily, simulator, index, instance=instance)

    full = configure_api(simulator, tmp_path / "full")
    run_job(full, RECONCILE_JOB, full_export_tags(daily_partitions(full), full.lookback_days))
    for table in REPORT_TABLES:
        assert table_by_key(daily.working_database_path, table) == table_by_key(full.working_database_path, table), (
            table.name
        )
    assert_tables_equal_truth(daily, simulator, None)

    daily = configure_api(simulator, tmp_path / "daily")
    reconcile = run_job(
        daily, RECONCILE_JOB, full_export_tags(daily_partitions(daily), daily.lookback_days), instance=instance
    )
    changed = {
        e.asset_key.path[-1]: e.materialization.metadata["rows_changed"].value
        for e in reconcile.get_asset_materialization_events()
    }
    assert changed == {table.name: 0 for table in REPORT_TABLES}


def test_reconcile_counts_the_rows_the_daily_runs_missed(settings: Settings, simulator: Any) -> None:
    simulator.set_now(end_of_day(simulator, 4))
    refresh_days(settings, simulator, 0, 1)
    simulator.set_now(None)
    instance = dg.DagsterInstance.ephemeral()
    tags = full_export_tags(daily_partitions(settings), settings.lookback_days)
    reconcile = run_job(settings, RECONCILE_JOB, tags, instance=instance)
    changed = {
        e.asset_key.path[-1]: e.materialization.metadata["rows_changed"].value
        for e in reconcile.get_asset_materialization_events()
    }
    assert all(count > 0 for count in changed.values()), changed
    said = [entry for entry in instance.all_logs(reconcile.run_id) if "the full export changed" in entry.user_message]
    # A warning, as the operators' guide says: what the daily runs missed is worth a look.
    assert {entry.level for entry in said} == {logging.WARNING}
    assert {entry.user_message.split(":")[0] for entry in said} == set(changed)
    assert_tables_equal_truth(settings, simulator, None)


@pytest.mark.long
def test_two_runs_at_once_meet_on_the_same_report_and_both_succeed(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    dataset: Dataset,
    simulator_factory: Callable[..., AbstractContextManager[Any]],
) -> None:
    # The first attempts task of either run stays "processing" until the other run has asked for
    # one too and been told 1007 (another task of the report is running): the runs overlap, on
    # every run of this test, however the two processes happen to be scheduled.
    held = FirstResultFileHeld(dataset, ATTEMPTS.name)
    data_dir = tmp_path / "data"
    with simulator_factory(dataset=held) as simulator:
        simulator.set_now(end_of_day(simulator, 7))
        days = [day_key(simulator, index) for index in range(8)]
        ranges = [(days[0], days[5]), (days[3], days[7])]
        runs = [
            cli_refresh(data_dir, simulator, tmp_path / f"run{n}", "--from", first, "--to", last)
            for n, (first, last) in enumerate(ranges)
        ]
        try:
            deadline = time_module.monotonic() + 300
            while not _refused_creates(simulator) and time_module.monotonic() < deadline:
                assert all(process.poll() is None for process in runs), "a run ended while the other's task was held"
                time_module.sleep(0.05)
        finally:
            held.release.set()
        refused = _refused_creates(simulator)
        for n, process in enumerate(runs):
            assert process.wait(timeout=300) == 0, (tmp_path / f"run{n}.err").read_text()[-3000:]
            assert "could not set lock" not in (tmp_path / f"run{n}.err").read_text().lower()
            assert "succeeded" in (tmp_path / f"run{n}.out").read_text()
        attempts_tasks = [task for task in simulator.state.tasks if task.report == ATTEMPTS.name]
    assert held.held.is_set() and refused >= 1
    # One attempts task per run, each of its run's window: the refused one was asked again and made.
    assert sorted((task.after, task.to) for task in attempts_tasks) == sorted(
        (simulator.dataset.day_window(first)[0], end_of_day(simulator, last)) for first, last in ((0, 5), (3, 7))
    )
    monkeypatch.setenv("DAGSTER_HOME", str(data_dir / "dagster_home"))
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs()
        assert sorted(run.job_name for run in runs) == [ANALYTICS_JOB, ANALYTICS_JOB, REFRESH_JOB, REFRESH_JOB]
        assert {run.status for run in runs} == {dg.DagsterRunStatus.SUCCESS}
    for spec in REPORTS:
        assert (
            table_by_key(data_dir / "ekvio.duckdb", spec).keys()
            == truth_by_key(simulator, spec, end_of_day(simulator, 7)).keys()
        )


def _refused_creates(simulator: Any) -> int:
    """Create requests the simulator answered without a task: with no fault planned, each is a 1007."""
    return simulator.state.requests[Call.CREATE] - len(simulator.state.tasks)


@pytest.mark.long
def test_on_the_clis_instance_the_sensor_requests_the_days_no_refresh_brought(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, simulator: Any, configure_api: Callable[..., Settings]
) -> None:
    data_dir = tmp_path / "data"
    settings = configure_api(simulator, data_dir)
    yesterday = datetime.now(ZoneInfo(settings.timezone)).date() - timedelta(days=1)
    watched = [(yesterday - timedelta(days=back)).isoformat() for back in range(settings.lookback_days, 0, -1)]
    defs = build_definitions(settings)
    sensor = defs.resolve_sensor_def("missing_days_sensor")
    monkeypatch.setenv("DAGSTER_HOME", str(data_dir / "dagster_home"))

    def requested_days_and_rebuilt_analytics() -> tuple[list[str], set[str]]:
        with dg.DagsterInstance.get() as instance:
            tick = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs))
            analytics = instance.get_runs(dg.RunsFilter(job_name=ANALYTICS_JOB), limit=1)[0]
            built = instance.all_logs(analytics.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
        return [request.partition_key for request in tick.run_requests], {
            event.dagster_event.asset_key.to_user_string() for event in built
        }

    every_analytics_table = {
        "learners",
        "materials",
        "courses",
        "programs",
        "learner_material_progress",
        "learner_course_progress",
        "learner_program_progress",
        "learner_summary",
        "analyst_database",
        "learning_report",
    }
    for args, still_missing, rebuilt in (
        (("--from", watched[3], "--to", watched[4]), watched[:3] + watched[5:], every_analytics_table),
        ((), [], every_analytics_table),
        # Nothing changed: only the models measuring lateness at build time, the publish and its report.
        (
            ("--from", watched[3], "--to", watched[3]),
            [],
            {"learner_program_progress", "learner_summary", "analyst_database", "learning_report"},
        ),
    ):
        process = cli_refresh(data_dir, simulator, tmp_path / "run", *args)
        assert process.wait(timeout=300) == 0, (tmp_path / "run.err").read_text()[-3000:]
        assert requested_days_and_rebuilt_analytics() == (still_missing, rebuilt)


def test_a_model_that_reads_the_clock_says_so() -> None:
    for model in MODELS:
        sql = model.sql.lower()
        assert model.reads_the_clock == any(call in sql for call in ("now()", "current_", "today()")), model.name


def test_the_daily_schedule_requests_the_day_just_ended(settings: Settings) -> None:
    defs = build_definitions(settings)
    schedule = defs.resolve_schedule_def("daily_refresh_schedule")
    sixth_day = datetime.combine(settings.start_date + timedelta(days=5), time(3), ZoneInfo(settings.timezone))
    context = dg.build_schedule_context(scheduled_execution_time=sixth_day, repository_def=defs.get_repository_def())
    data = schedule.evaluate_tick(context)
    assert [request.partition_key for request in data.run_requests] == [
        (settings.start_date + timedelta(days=4)).isoformat()
    ]
    assert (schedule.execution_timezone, schedule.cron_schedule) == (settings.timezone, "0 3 * * *")

    reconcile = defs.resolve_schedule_def("weekly_reconcile_schedule")
    data = reconcile.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=sixth_day))
    last_complete_day = (settings.start_date + timedelta(days=4)).isoformat()
    first_recorded_day = max(settings.start_date, settings.start_date + timedelta(days=4 - settings.lookback_days))
    range_tags = partition_range_tags(first_recorded_day.isoformat(), last_complete_day)
    assert [{name: request.tags.get(name) for name in range_tags} for request in data.run_requests] == [range_tags]
    assert data.run_requests[0].job_name in (None, RECONCILE_JOB)


def test_the_sensor_requests_missing_and_failed_days_once(
    tmp_path: Path, simulator_factory: Any, configure_api: Callable[..., Settings]
) -> None:
    today = datetime.now(ZoneInfo("Europe/Moscow")).date()
    faults = FaultPlan([FaultRule("create", "module_unavailable", count=None, report=ATTEMPTS.name)])
    with simulator_factory(faults=faults) as running:
        settings = configure_api(running, tmp_path / "data", EKVIO_START_DATE=(today - timedelta(days=20)).isoformat())
        defs = build_definitions(settings)
        days = daily_partitions(settings).get_partition_keys()[:-1][-settings.lookback_days :]
        assert len(days) == 14
        instance = dg.DagsterInstance.ephemeral()
        for day in days[:10]:
            for table in REPORT_TABLES:
                instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=table.name, partition=day))
        for table in REPORT_TABLES[1:]:
            instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=table.name, partition=days[10]))
        failed = defs.resolve_job_def(REFRESH_JOB).execute_in_process(
            instance=instance, partition_key=days[12], raise_on_error=False
        )
        assert not failed.success

    sensor = defs.resolve_sensor_def("missing_days_sensor")
    ticks = [sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs)) for _ in range(2)]
    for tick in ticks:
        assert [(request.partition_key, request.run_key) for request in tick.run_requests] == [
            (days[10], f"{days[10]}:missing"),
            (days[11], f"{days[11]}:missing"),
            (days[12], f"{days[12]}:failed-in-{failed.run_id}"),
            (days[13], f"{days[13]}:missing"),
        ]
