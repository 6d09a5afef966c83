"""The analytics models over a full load of the simulator, against sums computed from its truth."""

from __future__ import annotations

import math
import shutil
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest
import yaml

from ekvio_assets.config import Settings
from ekvio_assets.definitions import build_definitions
from ekvio_assets.models.assets import (
    KEY_CHECK,
    MODELS_GROUP,
    REFERENCES_CHECK,
    build_model_assets,
    key_violations,
    references_check_result,
)
from ekvio_assets.models.specs import MODELS, MODELS_BY_NAME, MODELS_DIR
from ekvio_assets.naming import SINGLE_COMPANY
from ekvio_assets.reports.specs import MATERIAL_TYPES
from ekvio_assets.simulator import Dataset, running_simulator
from ekvio_assets.storage.warehouse import DuckDBWarehouse
from ekvio_assets_tests.conftest import TEST_TOKEN, full_export, settings_for

MODEL_KEYS = [dg.AssetKey(spec.name) for spec in MODELS]
LEARNERS, MATERIALS = MODELS_BY_NAME["learners"], MODELS_BY_NAME["materials"]


@dataclass(frozen=True)
class Loaded:
    settings: Settings
    dataset: Dataset
    result: dg.ExecuteInProcessResult
    built_from: datetime
    built_to: datetime


def _materialize_models(data_dir: Path, timezone_name: str) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        build_model_assets(SINGLE_COMPANY),
        resources={"warehouse": DuckDBWarehouse(data_dir=str(data_dir), timezone=timezone_name)},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


@pytest.fixture(scope="module")
def loaded(dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    """One full load of every report, then every model, into a DuckDB file shared by the module."""
    data_dir = tmp_path_factory.mktemp("models") / "data"
    with running_simulator(dataset, token=TEST_TOKEN) as running, pytest.MonkeyPatch.context() as patch:
        settings = settings_for(patch, running, data_dir)
        assert full_export(settings).success
        built_from = datetime.now(UTC)
        result = _materialize_models(settings.data_dir, settings.timezone)
        built_to = datetime.now(UTC)
    assert result.success
    yield Loaded(settings, dataset, result, built_from, built_to)


def _rows(settings: Settings, sql: str) -> list[dict[str, Any]]:
    with duckdb.connect(str(settings.working_database_path), read_only=True) as con:
        cursor = con.execute(sql)
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _by_key(settings: Settings, model: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    spec = MODELS_BY_NAME[model]
    return {tuple(row[c] for c in spec.key): row for row in _rows(settings, f'SELECT * FROM "{model}"')}


def test_definitions_register_every_model_with_its_blocking_key_check_and_its_references_check() -> None:
    defs = build_definitions(Settings.from_env({}))
    graph = defs.resolve_asset_graph()
    for spec in MODELS:
        key = dg.AssetKey(spec.name)
        node = graph.get(key)
        assert node.group_name == MODELS_GROUP
        assert node.partitions_def is None
        assert node.automation_condition is not None
        assert {"duckdb", "sql"} <= set(node.kinds)
        assert {parent.to_user_string() for parent in node.parent_keys} == set(spec.reads)
        check = dg.AssetCheckKey(key, KEY_CHECK)
        assert graph.get_check_spec(check).blocking
        referenced = {reference.target for reference in spec.references}
        for name in spec.reads:
            assert name in spec.sql or name in referenced, (spec.name, name)
        assert referenced <= set(spec.reads) | {spec.name}
        if spec.references:
            assert not graph.get_check_spec(dg.AssetCheckKey(key, REFERENCES_CHECK)).blocking
    assert {r.describe() for r in MATERIALS.references} == {
        "attempts.material_id in materials.material_id where material_type = 'test'",
        "material_statistics.(material_id, material_type) in materials.(material_id, material_type)",
    }
    fact_tables = {spec.name for spec in MODELS if spec.name.startswith("learner_")}
    fact_tables |= {"attempts", "material_statistics", "course_statistics", "program_statistics"}
    login_checked = {r.table for spec in MODELS for r in spec.references if r.target == LEARNERS.name}
    assert login_checked == fact_tables


# How duckdb_columns() spells the types the model files name.
_DUCKDB_TYPE_NAMES = {"TIMESTAMPTZ": "TIMESTAMP WITH TIME ZONE"}


def test_models_materialize_with_their_schema_comments_and_passing_checks(loaded: Loaded) -> None:
    for spec in MODELS:
        metadata = loaded.result.asset_materializations_for_node(spec.name)[0].metadata
        assert metadata["dagster/row_count"].value > 0, spec.name
        assert metadata["missing_report_tables"].value == ""
    with duckdb.connect(str(loaded.settings.working_database_path), read_only=True) as con:
        for spec in MODELS:
            # What the model's YAML file says, read as the file itself, against what DuckDB stored.
            written = yaml.safe_load((MODELS_DIR / f"{spec.name}.yaml").read_text(encoding="utf-8"))
            stored = con.execute(
                "SELECT column_name, data_type, comment FROM duckdb_columns() "
                "WHERE table_name = ? ORDER BY column_index",
                [spec.name],
            ).fetchall()
            assert stored == [
                (column["name"], _DUCKDB_TYPE_NAMES.get(column["type"], column["type"]), column["description"])
                for column in written["columns"]
            ], spec.name
            [(table_comment,)] = con.execute(
                "SELECT comment FROM duckdb_tables() WHERE table_name = ?", [spec.name]
            ).fetchall()
            assert table_comment == f"{written['description']} One row per {' + '.join(written['key'])}.", spec.name
    evaluations = _evaluations(loaded.result)
    expected = {(spec.name, KEY_CHECK) for spec in MODELS}
    expected |= {(spec.name, REFERENCES_CHECK) for spec in MODELS if spec.references}
    assert set(evaluations) == expected
    assert all(e.passed for e in evaluations.values()), [e.description for e in evaluations.values() if not e.passed]
    assert evaluations["learners", REFERENCES_CHECK].metadata["orphans: attempts.login in learners.login"].value == 0


def _evaluations(result: dg.ExecuteInProcessResult) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    return {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}


def test_every_learner_of_every_report_and_model_is_in_learners(loaded: Loaded) -> None:
    learners = _by_key(loaded.settings, "learners")
    seen = {
        row["login"]
        for report in ("attempts", "material_statistics", "course_statistics", "program_statistics")
        for row in loaded.dataset.truth(report)
    }
    assert set(login for (login,) in learners) == seen
    for spec in MODELS:
        if spec.name.startswith("learner_"):
            logins = {row["login"] for row in _rows(loaded.settings, f'SELECT login FROM "{spec.name}"')}
            assert logins and logins <= seen, spec.name
    courses = {row["login"]: row for row in loaded.dataset.truth("course_statistics")}
    for (login,), row in learners.items():
        if login in courses:
            assert (row["user_id"], row["fio"], row["group_region"]) == (
                courses[login]["user_id"],
                courses[login]["fio"],
                courses[login]["group_region"],
            )
        else:
            assert row["user_id"] is None


def test_learner_material_progress_counts_attempts_and_best_percent(loaded: Loaded) -> None:
    # An attempt is made on the test of its material id, whatever other material shares the id.
    attempts: dict[tuple[str, int, str], list[dict[str, Any]]] = defaultdict(list)
    for attempt in loaded.dataset.truth("attempts"):
        attempts[(attempt["login"], attempt["material_id"], "test")].append(attempt)
    statistics = {
        (row["login"], row["material_id"], row["material_type"]): row
        for row in loaded.dataset.truth("material_statistics")
    }
    progress = _by_key(loaded.settings, "learner_material_progress")
    assert set(progress) == set(statistics) | set(attempts)
    assert attempts
    for key, row in progress.items():
        tried = attempts.get(key, [])
        assert row["attempts_count"] == len(tried), key
        assert row["best_percent"] == (max(a["percent"] for a in tried) if tried else None), key
        if key in statistics:
            assert row["reported_attempts"] == statistics[key]["attempts"], key
        passed = any(a["status"] == "completed" for a in tried) or statistics[key]["material_status"] == "completed"
        assert row["is_passed"] == passed, key
        if tried:
            last = max(tried, key=lambda a: a["ended_at"])
            assert (row["last_percent"], row["last_attempt_status"]) == (last["percent"], last["status"]), key


def test_learner_summary_counts_for_every_learner(loaded: Loaded) -> None:
    expected: dict[str, dict[str, Any]] = defaultdict(lambda: defaultdict(int))
    for row in loaded.dataset.truth("course_statistics"):
        expected[row["login"]]["courses_assigned"] += 1
        expected[row["login"]]["courses_completed"] += row["complete_date"] is not None
    for row in loaded.dataset.truth("program_statistics"):
        expected[row["login"]]["programs_assigned"] += 1
        expected[row["login"]]["programs_completed"] += row["program_status"] == "completed"
        expected[row["login"]]["programs_failed"] += row["program_status"] == "fail"
    attempts: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for attempt in loaded.dataset.truth("attempts"):
        attempts[(attempt["login"], attempt["material_id"])].append(attempt)
    best: dict[str, list[int]] = defaultdict(list)
    for row in loaded.dataset.truth("material_statistics"):
        if row["material_type"] != "test":
            continue
        tried = attempts.get((row["login"], row["material_id"]), [])
        passed = any(a["status"] == "completed" for a in tried) or row["material_status"] == "completed"
        expected[row["login"]]["tests_assigned"] += 1
        expected[row["login"]]["tests_passed"] += passed
        if tried:
            best[row["login"]].append(max(a["percent"] for a in tried))
    summary = _by_key(loaded.settings, "learner_summary")
    assert len(summary) == len(_by_key(loaded.settings, "learners"))
    checked = 0
    for (login,), row in summary.items():
        for column in (
            "courses_assigned",
            "courses_completed",
            "programs_assigned",
            "programs_completed",
            "programs_failed",
            "tests_assigned",
            "tests_passed",
        ):
            assert row[column] == expected[login][column], (login, column)
        if best[login]:
            assert row["average_test_percent"] == pytest.approx(sum(best[login]) / len(best[login]))
            checked += 1
        else:
            assert row["average_test_percent"] is None
    assert checked > 0


def _days_late(due: datetime, at: datetime) -> int:
    return max(0, math.ceil((at - due).total_seconds() / 86400))


def test_program_progress_completion_share_and_days_late_for_every_row(loaded: Loaded) -> None:
    progress = _by_key(loaded.settings, "learner_program_progress")
    truth = loaded.dataset.truth("program_statistics")
    assert len(progress) == len(truth)
    late = 0
    for expected in truth:
        row = progress[(expected["login"], expected["program_id"])]
        done = sum(expected[f"completed_{kind}"] for kind in MATERIAL_TYPES)
        assert row["materials_completed"] == done
        total = expected["materials_total"]
        assert row["completion_share"] == (pytest.approx(done / total) if total else None)
        due = expected["learner_deadline_at"] or expected["deadline_at"]
        if due is None and expected["deadline_period_at"] and expected["start_at"]:
            due = expected["start_at"] + timedelta(days=int(expected["deadline_period_at"][1:-1]))
        assert row["due_at"] == due
        if due is None:
            assert row["days_late"] is None
        elif expected["end_at"] is not None:
            assert row["days_late"] == _days_late(due, expected["end_at"])
        else:
            assert _days_late(due, loaded.built_from) <= row["days_late"] <= _days_late(due, loaded.built_to)
        late += bool(row["days_late"])
        if expected["program_status"] == "completed" and due is not None:
            assert row["is_on_time"] == (expected["end_at"] <= due) == expected["passed_at_time"]
        elif expected["program_status"] != "completed":
            assert row["is_on_time"] is None
    assert late > 0


def test_every_material_and_programme_sent_is_a_row_with_or_without_learners(loaded: Loaded) -> None:
    dataset = loaded.dataset
    materials = _by_key(loaded.settings, "materials")
    assert set(materials) == {(material.material_id, material.type) for material in dataset.materials}
    assigned = Counter((row["material_id"], row["material_type"]) for row in dataset.truth("material_statistics"))
    tried = Counter(attempt["material_id"] for attempt in dataset.truth("attempts"))
    for material in dataset.materials:
        row = materials[(material.material_id, material.type)]
        assert (row["material_name"], row["max_points"], row["material_visibility"]) == (
            material.name,
            material.points,
            material.visibility,
        )
        assert row["learners_assigned"] == assigned[(material.material_id, material.type)]
        assert row["attempts_count"] == (tried[material.material_id] if material.type == "test" else 0)
    assert any(row["learners_assigned"] == 0 for row in materials.values())
    shared = {material.material_id for material in dataset.materials if material.type == "test"} & {
        material.material_id for material in dataset.materials if material.type != "test"
    }
    assert shared and any(tried[material_id] for material_id in shared)

    programs = _by_key(loaded.settings, "programs")
    assert set(programs) == {(program.program_id,) for program in dataset.programs}
    learners = Counter(row["program_id"] for row in dataset.truth("program_statistics"))
    for program in dataset.programs:
        row = programs[(program.program_id,)]
        assert (row["program_name"], row["learners_assigned"]) == (program.name, learners[program.program_id])
        assert row["materials_total"] == (program.materials_total if program.material_counts else None)
    assert any(row["learners_assigned"] == 0 for row in programs.values())


def test_key_violations_finds_null_and_duplicate_keys_and_passes_clean_data() -> None:
    with duckdb.connect() as con:
        con.execute("CREATE TABLE t (login VARCHAR, material_id BIGINT)")
        con.execute("INSERT INTO t VALUES ('a', 1), ('a', 2), ('b', 1)")
        assert key_violations(con, "t", ("login", "material_id")).passed
        con.execute("INSERT INTO t VALUES ('a', 1), (NULL, 3)")
        found = key_violations(con, "t", ("login", "material_id"))
        assert (found.passed, found.null_keys, found.duplicate_keys, found.examples) == (False, 1, 1, [("a", 1)])


def test_a_nullable_key_column_is_a_value_of_the_key() -> None:
    with duckdb.connect() as con:
        con.execute("CREATE TABLE t (material_id BIGINT, material_type VARCHAR)")
        con.execute("INSERT INTO t VALUES (135, 'video'), (135, 'longread'), (135, NULL), (7, NULL)")
        assert key_violations(con, "t", ("material_id", "material_type"), nullable=("material_type",)).passed
        assert key_violations(con, "t", ("material_id", "material_type")).null_keys == 2
        con.execute("INSERT INTO t VALUES (7, NULL)")
        found = key_violations(con, "t", ("material_id", "material_type"), nullable=("material_type",))
        assert (found.null_keys, found.duplicate_keys, found.examples) == (0, 1, [(7, None)])


def test_attempts_refer_to_the_test_of_their_id_and_statistics_to_their_type_and_id() -> None:
    with duckdb.connect() as con:
        con.execute("CREATE TABLE materials (material_id BIGINT, material_type VARCHAR)")
        con.execute("CREATE TABLE attempts (material_id BIGINT)")
        con.execute("CREATE TABLE material_statistics (material_id BIGINT, material_type VARCHAR)")
        con.execute("INSERT INTO materials VALUES (135, 'video'), (135, 'test'), (75, 'pdf'), (9, NULL)")
        con.execute("INSERT INTO attempts VALUES (135), (NULL)")
        con.execute("INSERT INTO material_statistics VALUES (135, 'video'), (9, NULL)")
        assert references_check_result(con, MATERIALS).passed
        # 75 is a pdf, no test; 135 has no document; 9 has a material of no type, not a longread.
        con.execute("INSERT INTO attempts VALUES (75)")
        con.execute("INSERT INTO material_statistics VALUES (135, 'document'), (9, 'longread'), (75, NULL)")
        result = references_check_result(con, MATERIALS)
    assert not result.passed
    assert (
        result.metadata["orphans: attempts.material_id in materials.material_id where material_type = 'test'"].value
        == 1
    )
    statistics = "material_statistics.(material_id, material_type) in materials.(material_id, material_type)"
    assert result.metadata[f"orphans: {statistics}"].value == 3
    assert f"{statistics}: 3 rows, e.g. (9, 'longread'), (75, None), (135, 'document')" in result.description


def test_the_references_check_names_orphan_logins_and_passes_when_every_reference_resolves() -> None:
    with duckdb.connect() as con:
        con.execute("CREATE TABLE learners (login VARCHAR)")
        for report in ("attempts", "material_statistics", "course_statistics", "program_statistics"):
            con.execute(f"CREATE TABLE {report} (login VARCHAR)")
        con.execute("INSERT INTO learners VALUES ('anna'), ('boris')")
        con.execute("INSERT INTO attempts VALUES ('anna'), (NULL)")
        con.execute("INSERT INTO course_statistics VALUES ('boris')")
        assert references_check_result(con, LEARNERS).passed
        con.execute("INSERT INTO program_statistics VALUES ('ghost'), ('ghost'), ('zoe')")
        result = references_check_result(con, LEARNERS)
    assert not result.passed
    assert result.description == (
        "Rows referring to nothing: program_statistics.login in learners.login: 3 rows, e.g. ghost, zoe"
    )
    assert result.metadata["orphans: program_statistics.login in learners.login"].value == 3
    assert result.metadata["orphans: attempts.login in learners.login"].value == 0


def test_a_duplicate_key_fails_the_blocking_check_and_stops_the_models_downstream(
    loaded: Loaded, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    working = DuckDBWarehouse(data_dir=str(data_dir), timezone=loaded.settings.timezone).working_path
    working.parent.mkdir(parents=True)
    # Loads leave their changes in the write-ahead log: a copy of the file alone needs them in it.
    with duckdb.connect(str(loaded.settings.working_database_path)) as con:
        con.execute("CHECKPOINT")
    shutil.copy(loaded.settings.working_database_path, working)
    with duckdb.connect(str(working)) as con:
        # A report row twice: the report table has no key constraint, so the model inherits the duplicate.
        con.execute("INSERT INTO material_statistics SELECT * FROM material_statistics LIMIT 1")
    result = _materialize_models(data_dir, loaded.settings.timezone)
    assert not result.success
    evaluations = _evaluations(result)
    failed = evaluations["learner_material_progress", KEY_CHECK]
    assert not failed.passed
    assert failed.metadata["duplicate_key_values"].value == 1
    assert evaluations["learners", KEY_CHECK].passed and evaluations["materials", KEY_CHECK].passed
    materialized = {m.asset_key.to_user_string() for m in result.get_asset_materialization_events()}
    assert "learner_material_progress" in materialized
    assert "learner_summary" not in materialized


def test_models_over_a_database_without_report_tables_build_empty_and_say_so(tmp_path: Path) -> None:
    result = _materialize_models(tmp_path / "data", "Europe/Moscow")
    assert result.success
    learners = result.asset_materializations_for_node("learners")[0].metadata
    assert learners["dagster/row_count"].value == 0
    assert learners["missing_report_tables"].value == (
        "attempts, material_statistics, course_statistics, program_statistics"
    )
    warehouse = DuckDBWarehouse(data_dir=str(tmp_path / "data"), timezone="Europe/Moscow")
    with warehouse.read_connection() as con:
        tables = {row[0] for row in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert tables == {spec.name for spec in MODELS}
