"""The real Definitions, materialized into a DuckDB file under tmp_path, over HTTP to the simulator."""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest

from ekvio_assets.api.resource import EkvioApiResource
from ekvio_assets.automation.jobs import ANALYTICS_JOB, RECONCILE_JOB, REFRESH_JOB
from ekvio_assets.automation.partitions import daily_partitions
from ekvio_assets.config import Settings
from ekvio_assets.definitions import build_definitions
from ekvio_assets.models.assets import code_version
from ekvio_assets.models.learning_report.asset import REPORT_ASSET
from ekvio_assets.models.publish import PUBLISH_ASSET
from ekvio_assets.models.specs import MODELS
from ekvio_assets.reports.specs import ATTEMPTS, COURSE_STATISTICS, REPORT_TABLES, REPORTS, ReportSpec
from ekvio_assets.simulator import FaultPlan, FaultRule
from ekvio_assets_tests.conftest import REPORT_ASSETS, end_of_day, full_export, refresh_days


def _table(settings: Settings, spec: ReportSpec) -> dict[tuple[Any, ...], dict[str, Any]]:
    """The table of `spec` (a report or a report's parents) by key."""
    with duckdb.connect(str(settings.working_database_path), read_only=True) as con:
        cursor = con.execute(f'SELECT * FROM "{spec.name}"')
        names = [column[0] for column in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    return {tuple(row[column] for column in spec.key): row for row in rows}


def _materialization(result: dg.ExecuteInProcessResult, node: str, table: str) -> dg.AssetMaterialization:
    """The first materialization of `table` by the step `node` (one per partition of the run)."""
    return next(m for m in result.asset_materializations_for_node(node) if m.asset_key == dg.AssetKey(table))


def _without_lineage(row: dict[str, Any]) -> dict[str, Any]:
    loaded = {name: value for name, value in row.items() if not name.startswith("_")}
    loaded["extra_fields"] = json.loads(loaded["extra_fields"]) if loaded["extra_fields"] else None
    return loaded


def test_definitions_hold_every_asset_resource_and_job() -> None:
    defs = build_definitions(Settings.from_env({}))
    models = {spec.name for spec in MODELS} | {PUBLISH_ASSET, REPORT_ASSET}
    tables = {table.name for table in REPORT_TABLES}
    assert tables == {spec.name for spec in REPORTS} | {"reported_materials", "reported_programs"}
    assert {key.to_user_string() for key in defs.resolve_all_asset_keys()} == tables | models
    assert set(defs.resources) == {"ekvio_api", "warehouse"}
    assert {node.name for node in defs.resolve_job_def(ANALYTICS_JOB).nodes} == models
    for name in (REFRESH_JOB, RECONCILE_JOB):
        job = defs.resolve_job_def(name)
        assert {node.name for node in job.nodes} == {spec.name for spec in REPORTS}
        assert job.partitions_def == daily_partitions(Settings.from_env({}))
    assert {schedule.name for schedule in defs.schedules} == {"daily_refresh_schedule", "weekly_reconcile_schedule"}
    for table in tables:
        policy = defs.resolve_assets_def(table).specs_by_key[dg.AssetKey(table)].freshness_policy
        assert policy is not None and policy.fail_window.to_timedelta() == timedelta(hours=36)
    assert [sensor.name for sensor in defs.sensors] == ["missing_days_sensor", "analytics_automation_sensor"]


def test_every_asset_has_owners_a_layer_a_qualified_table_and_pii_where_people_are_named() -> None:
    defs = build_definitions(Settings.from_env({"EKVIO_ASSET_OWNERS": "team:hr-analytics,anna@example.com"}))
    graph = defs.resolve_asset_graph()
    personal = {
        "attempts",
        "material_statistics",
        "course_statistics",
        "program_statistics",
        "learners",
        "learner_material_progress",
        "learner_course_progress",
        "learner_program_progress",
        "learner_summary",
        "analyst_database",
        "learning_report",
    }
    reports = REPORT_ASSETS
    for key in graph.get_all_asset_keys():
        node, name = graph.get(key), key.to_user_string()
        assert node.owners == ["team:hr-analytics", "anna@example.com"], name
        assert node.tags["layer"] == ("report" if name in reports else "analytics"), name
        assert (node.tags.get("pii") == "true") == (name in personal), name
        if name not in (PUBLISH_ASSET, REPORT_ASSET):
            assert node.metadata["dagster/table_name"] == f"ekvio.main.{name}"


def test_a_models_code_version_follows_its_sql() -> None:
    graph = build_definitions(Settings.from_env({})).resolve_asset_graph()
    versions = {model.name: graph.get(dg.AssetKey(model.name)).code_version for model in MODELS}
    assert all(versions.values()) and len(set(versions.values())) == len(MODELS)
    assert (
        build_definitions(Settings.from_env({})).resolve_asset_graph().get(dg.AssetKey("learners")).code_version
        == versions["learners"]
    )
    changed = dataclasses.replace(MODELS[0], sql=MODELS[0].sql.replace("SELECT", "SELECT DISTINCT", 1))
    assert code_version(changed) != versions[MODELS[0].name]


def test_a_refresh_loads_every_report_exactly_as_the_simulator_holds_it(
    tmp_path: Path, simulator: Any, configure_api: Callable[..., Settings]
) -> None:
    settings = configure_api(simulator, tmp_path / "data")
    result = full_export(settings)
    assert result.success

    for spec in REPORTS:
        truth = simulator.dataset.truth(spec.name)
        table = _table(settings, spec)
        assert len(table) == len(truth) > 0, spec.name
        for expected in truth:
            row = _without_lineage(table[tuple(expected[column] for column in spec.key)])
            assert {name: row.get(name) for name in expected} == expected, spec.name
        metadata = _materialization(result, spec.name, spec.name).metadata
        assert metadata["dagster/row_count"].value == len(truth)
        assert metadata["rows_rejected"].value == 0
        checks = [e for e in result.get_asset_check_evaluations() if e.asset_key.to_user_string() == spec.name]
        assert checks and all(check.passed for check in checks), [(c.check_name, c.description) for c in checks]
        assert Path(metadata["raw_file"].value).is_file()
        assert Path(metadata["raw_file"].value).parent == settings.raw_dir / spec.name
        assert simulator.token not in json.dumps({key: str(value) for key, value in metadata.items()})
        if spec.parents is not None:
            # Every parent object is a row, those nobody is assigned to included.
            parents = _table(settings, spec.parents)
            truth = simulator.dataset.parents_truth(spec.name)
            assert len(parents) == len(truth) > len({tuple(row[c] for c in spec.parent_key) for row in table.values()})
            for expected in truth:
                row = _without_lineage(parents[tuple(expected[column] for column in spec.parents.key)])
                assert row == expected, spec.parents.name
            metadata = _materialization(result, spec.name, spec.parents.name).metadata
            assert metadata["dagster/table_name"].value == f"ekvio.main.{spec.parents.name}"
            assert (metadata["dagster/row_count"].value, metadata["rows_rejected"].value) == (len(truth), 0)


def test_refreshing_again_changes_nothing(
    tmp_path: Path, simulator: Any, configure_api: Callable[..., Settings]
) -> None:
    settings = configure_api(simulator, tmp_path / "data")
    assert full_export(settings).success
    before = {spec.name: _table(settings, spec) for spec in REPORTS}
    second = full_export(settings)
    assert second.success
    assert {spec.name: _table(settings, spec) for spec in REPORTS} == before
    for event in second.get_asset_materialization_events():
        metadata = event.materialization.metadata
        assert (metadata["rows_inserted"].value, metadata["rows_updated"].value, metadata["rows_changed"].value) == (
            0,
            0,
            0,
        )
    materialized = {event.asset_key.to_user_string() for event in second.get_asset_materialization_events()}
    assert materialized == {table.name for table in REPORT_TABLES}


def test_an_unavailable_module_fails_its_asset_clearly_and_the_others_load(
    tmp_path: Path,
    simulator_factory: Any,
    configure_api: Callable[..., Settings],
) -> None:
    faults = FaultPlan([FaultRule("create", "module_unavailable", count=None, report=COURSE_STATISTICS.name)])
    with simulator_factory(faults=faults) as running:
        settings = configure_api(running, tmp_path / "data")
        result = full_export(settings)
    assert not result.success
    failure = result.failure_data_for_node(COURSE_STATISTICS.name)
    assert failure is not None and "not available for this company" in failure.error.message
    for spec in REPORTS:
        if spec is not COURSE_STATISTICS:
            assert result.asset_materializations_for_node(spec.name), spec.name


def test_without_an_api_url_the_embedded_simulator_is_used_and_said(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("EKVIO_API_URL", "EKVIO_API_TOKEN", "EKVIO_POLL_INTERVAL_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EKVIO_DATA_DIR", str(tmp_path / "data"))
    settings = Settings.from_env()
    instance = dg.DagsterInstance.ephemeral()
    result = full_export(settings, (ATTEMPTS.name,), instance)
    assert result.success
    assert len(_table(settings, ATTEMPTS)) > 0
    messages = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert any("EKVIO_API_URL is not set: using the embedded Ekvio simulator" in m for m in messages)


@pytest.mark.parametrize("command", [["check", "defs"], ["list", "defs", "--json"]])
def test_dagsters_dg_cli_loads_the_project(command: list[str]) -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith(("EKVIO_", "DAGSTER_"))}
    done = subprocess.run(
        [str(Path(sys.executable).with_name("dg")), *command],
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Deprecat" not in done.stdout + done.stderr
    if "--json" in command:
        listed = json.loads(done.stdout[done.stdout.index("{") :])
        assert {asset["asset_key"] for asset in listed["assets"]} >= {"attempts", "learner_summary", "learning_report"}


def test_loading_the_definitions_for_a_real_api_imports_neither_the_simulator_nor_the_benchmark_nor_matplotlib() -> (
    None
):
    env = {name: value for name, value in os.environ.items() if not name.startswith(("EKVIO_", "DAGSTER_"))}
    env.update(EKVIO_API_URL="https://api.example.test", EKVIO_API_TOKEN="not-used")
    script = (
        "import sys, ekvio_assets.definitions; "
        "print(sorted(m for m in sys.modules if m.startswith(('ekvio_assets', 'matplotlib'))))"
    )
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", script], env=env, capture_output=True, text=True, check=True
    )
    loaded = ast.literal_eval(done.stdout)
    assert "ekvio_assets.definitions" in loaded
    # Nor matplotlib: only drawing the learning report needs it.
    assert [
        name for name in loaded if name.startswith(("ekvio_assets.simulator", "ekvio_assets.benchmark", "matplotlib"))
    ] == []


def test_the_api_resource_without_a_url_fails_clearly_instead_of_starting_a_simulator() -> None:
    resource = EkvioApiResource(poll_interval_seconds=1, poll_timeout_seconds=1)
    with pytest.raises(dg.Failure, match="EKVIO_API_URL is not set"):
        resource.setup_for_execution(dg.build_init_resource_context())


def test_an_export_with_less_than_half_the_rows_its_days_held_loads_and_warns_through_the_asset(
    tmp_path: Path, simulator_factory: Callable[..., Any], configure_api: Callable[..., Settings]
) -> None:
    data_dir = tmp_path / "data"
    with simulator_factory() as running:
        running.set_now(end_of_day(running, 4))
        refresh_days(configure_api(running, data_dir), running, 0, 4)
        after, to = running.dataset.day_window(0)[0], end_of_day(running, 4)
        sent = list(running.dataset.payload_records(COURSE_STATISTICS.name, after, to, as_of=to))
    assert len(sent) >= 4  # enough that one row is less than half

    # The same days again, from an Ekvio that answers with one of those rows only.
    one_row = tmp_path / "one-row.json"
    one_row.write_text(json.dumps({"data": sent[:1]}, ensure_ascii=False), encoding="utf-8")
    with simulator_factory(payload_files={COURSE_STATISTICS.name: one_row}) as shrunk:
        result = refresh_days(configure_api(shrunk, data_dir), shrunk, 0, 4)
    (check,) = [
        evaluation
        for evaluation in result.get_asset_check_evaluations()
        if evaluation.asset_key == dg.AssetKey(COURSE_STATISTICS.name) and evaluation.check_name == "export_not_shrunk"
    ]
    assert (check.passed, check.severity) == (False, dg.AssetCheckSeverity.WARN)
    # Held: the rows changed in those days (a row without a change time counts at its window's end).
    assert check.metadata["rows_exported"].value == 1 and check.metadata["rows_held_for_window"].value > 2
    # Loaded all the same: a warning, not a refusal.
    assert result.success and len(_table(Settings.from_env(), COURSE_STATISTICS)) == len(sent)


def test_a_bad_setting_is_the_code_locations_error_with_every_problem_named() -> None:
    # What `ekvio-assets ui` shows on the code location: Dagster's own loading of the project.
    env = {name: value for name, value in os.environ.items() if not name.startswith(("EKVIO_", "DAGSTER_"))}
    env.update(EKVIO_API_URL="https://api.example.test", EKVIO_TIMEZONE="Nowhere/Land")
    done = subprocess.run(
        [str(Path(sys.executable).with_name("dg")), "check", "defs"],
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = done.stdout + done.stderr
    assert done.returncode != 0, output[-3000:]
    assert "ConfigError" in output and "EKVIO_API_TOKEN must be set" in output and "EKVIO_TIMEZONE" in output, output


def test_the_analytics_sensor_rebuilds_every_analytics_table_after_a_refresh_and_then_rests(
    tmp_path: Path, simulator: Any, configure_api: Callable[..., Settings]
) -> None:
    settings = configure_api(simulator, tmp_path / "data")
    defs = build_definitions(settings)
    sensor = defs.resolve_sensor_def("analytics_automation_sensor")
    assert isinstance(sensor, dg.AutomationConditionSensorDefinition)
    instance = dg.DagsterInstance.ephemeral()
    analytics = {model.name for model in MODELS} | {PUBLISH_ASSET, REPORT_ASSET}

    def requested(cursor: Any) -> tuple[set[str], Any]:
        result = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, asset_selection=sensor.asset_selection, cursor=cursor
        )
        keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
        return {key for key in keys if result.get_num_requested(dg.AssetKey.from_user_string(key))}, result.cursor

    asked, cursor = requested(None)
    assert asked == set()  # no report loaded yet: nothing to build from
    simulator.set_now(end_of_day(simulator, 1))
    refresh_days(settings, simulator, 0, 1, instance=instance)
    asked, cursor = requested(cursor)
    assert asked == analytics  # the report tables only by the refresh, never by this sensor
    assert defs.resolve_job_def(ANALYTICS_JOB).execute_in_process(instance=instance).success
    asked, cursor = requested(cursor)
    assert asked == set()
