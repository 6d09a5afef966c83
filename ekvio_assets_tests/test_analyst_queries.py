"""The analysts' guide's example queries give the right numbers, not only rows: counted here in
Python from what the simulated company sent, apart from the SQL models they read."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest

from ekvio_assets.automation.jobs import ANALYTICS_JOB
from ekvio_assets.definitions import build_definitions
from ekvio_assets.simulator import Dataset, running_simulator
from ekvio_assets_tests.conftest import TEST_TOKEN, analyst_queries, full_export, settings_for

NO_DEPARTMENT = "(no department)"  # the queries' own label


@pytest.fixture(scope="module")
def published(dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The analyst file after a full refresh of the simulated company and its analytics."""
    data_dir = tmp_path_factory.mktemp("queries") / "data"
    with running_simulator(dataset, token=TEST_TOKEN) as running, pytest.MonkeyPatch.context() as patch:
        settings = settings_for(patch, running, data_dir)
        assert full_export(settings).success
        analytics = build_definitions(settings).resolve_job_def(ANALYTICS_JOB)
        assert analytics.execute_in_process(instance=dg.DagsterInstance.ephemeral()).success
    yield settings.database_path


def _run(database: Path, query: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(database), read_only=True) as con:
        return con.execute(query).fetchall()


def test_how_far_each_department_is_through_each_programme(published: Path, dataset: Dataset) -> None:
    # A learner's department as the learners table holds it (the newest a report sent): the numbers
    # checked here are the programme report's, counted per department.
    department = dict(_run(published, "SELECT login, group_department FROM learners"))
    learners: Counter[tuple[str, str]] = Counter()
    completed: Counter[tuple[str, str]] = Counter()
    for row in dataset.truth("program_statistics"):
        group = (row["program_name"], department[row["login"]] or NO_DEPARTMENT)
        learners[group] += 1
        completed[group] += row["program_status"] == "completed"
    answer = _run(published, analyst_queries()[0])
    assert [row[:4] for row in answer] == [(*group, learners[group], completed[group]) for group in sorted(learners)]
    for program, group_department, count, done, percent in answer:
        assert percent == pytest.approx(100 * done / count, abs=0.05), (program, group_department)
    assert any(done for _, _, _, done, _ in answer) and any(done < count for _, _, count, done, _ in answer)


def test_which_required_courses_are_still_open_by_department(published: Path, dataset: Dataset) -> None:
    open_ones: Counter[tuple[str, str]] = Counter(
        (row["group_department"] or NO_DEPARTMENT, row["course_name"])
        for row in dataset.truth("course_statistics")
        if row["is_required"] == 1 and row["complete_date"] is None
    )
    expected = sorted(((*group, count) for group, count in open_ones.items()), key=lambda r: (-r[2], r[0], r[1]))
    assert expected and _run(published, analyst_queries()[3]) == expected
