"""The analysts' guide's example queries give the right numbers, not only rows: counted here in
Python from what the simulated company sent, apart from the SQL models they read."""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any, NamedTuple

import dagster as dg
import duckdb
import pytest

from ekvio_assets.automation.jobs import ANALYTICS_JOB
from ekvio_assets.definitions import build_definitions
from ekvio_assets.simulator import Dataset, running_simulator
from ekvio_assets_tests.conftest import TEST_TOKEN, analyst_queries, full_export, settings_for

NO_DEPARTMENT = "(no department)"  # the queries' own label
DAY_SECONDS = 86400


class Published(NamedTuple):
    database: Path
    # The models read the clock once while the analytics run builds them, somewhere in between.
    built_after: datetime
    built_before: datetime


@pytest.fixture(scope="module")
def published(dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Published]:
    """The analyst file after a full refresh of the simulated company and its analytics."""
    data_dir = tmp_path_factory.mktemp("queries") / "data"
    with running_simulator(dataset, token=TEST_TOKEN) as running, pytest.MonkeyPatch.context() as patch:
        settings = settings_for(patch, running, data_dir)
        assert full_export(settings).success
        analytics = build_definitions(settings).resolve_job_def(ANALYTICS_JOB)
        built_after = datetime.now(UTC)
        assert analytics.execute_in_process(instance=dg.DagsterInstance.ephemeral()).success
        built_before = datetime.now(UTC)
    yield Published(settings.database_path, built_after, built_before)


def _run(database: Path, query: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(database), read_only=True) as con:
        return con.execute(query).fetchall()


def _due_at(row: dict[str, Any]) -> datetime | None:
    """The learner's own deadline, else the programme's fixed one, else the start plus its period."""
    fixed: datetime | None = row["learner_deadline_at"] or row["deadline_at"]
    if fixed is not None or row["deadline_period_at"] is None or row["start_at"] is None:
        return fixed
    days = re.fullmatch(r"P(\d+)D", row["deadline_period_at"])
    assert days, row["deadline_period_at"]  # the only kind of period the simulated company sets
    return row["start_at"] + timedelta(days=int(days[1]))


def _days_late(due: datetime, ended: datetime | None, clock_second: int) -> int:
    """Whole days past due at the end or the clock, an hour late being a day; whole seconds apart."""
    late = (math.floor(ended.timestamp()) if ended else clock_second) - math.floor(due.timestamp())
    return max(0, -(-late // DAY_SECONDS))


def _test_outcomes(dataset: Dataset) -> dict[tuple[str, int], tuple[int, int | None, bool]]:
    """Per learner and test, from the material report and the attempts: attempts, best percent, passed."""
    outcomes = {
        (row["login"], row["material_id"]): (0, None, row["material_status"] == "completed")
        for row in dataset.truth("material_statistics")
        if row["material_type"] == "test"
    }
    for attempt in dataset.truth("attempts"):
        pair = (attempt["login"], attempt["material_id"])
        count, best, passed = outcomes.get(pair, (0, None, False))
        percent = attempt["percent"]
        best = best if percent is None or (best is not None and best >= percent) else percent
        outcomes[pair] = (count + 1, best, passed or attempt["status"] == "completed")
    return outcomes


def _round_half_up(value: Fraction, digits: int) -> float:
    scale = 10**digits
    return math.floor(value * scale + Fraction(1, 2)) / scale


def test_how_far_each_department_is_through_each_programme(published: Published, dataset: Dataset) -> None:
    # A learner's department as the learners table holds it (the newest a report sent): the numbers
    # checked here are the programme report's, counted per department.
    department = dict(_run(published.database, "SELECT login, group_department FROM learners"))
    learners: Counter[tuple[str, str]] = Counter()
    completed: Counter[tuple[str, str]] = Counter()
    for row in dataset.truth("program_statistics"):
        group = (row["program_name"], department[row["login"]] or NO_DEPARTMENT)
        learners[group] += 1
        completed[group] += row["program_status"] == "completed"
    answer = _run(published.database, analyst_queries()[0])
    assert [row[:4] for row in answer] == [(*group, learners[group], completed[group]) for group in sorted(learners)]
    for program, group_department, count, done, percent in answer:
        assert percent == pytest.approx(100 * done / count, abs=0.05), (program, group_department)
    assert any(done for _, _, _, done, _ in answer) and any(done < count for _, _, count, done, _ in answer)


def test_who_is_overdue_on_a_programme_and_by_how_many_days(published: Published, dataset: Dataset) -> None:
    fio = {row["login"]: row["fio"] for row in dataset.truth("course_statistics")}
    open_with_due = [
        (row, due)
        for row in dataset.truth("program_statistics")
        if row["program_status"] != "completed" and (due := _due_at(row)) is not None
    ]

    def overdue_at(clock_second: int) -> list[tuple[Any, ...]]:
        rows = [
            (
                row["login"],
                fio.get(row["login"]),
                row["program_name"],
                due,
                _days_late(due, row["end_at"], clock_second),
            )
            for row, due in open_with_due
        ]
        return sorted(row for row in rows if row[4] > 0)

    # The model read the clock at one second of the analytics run: the answer is the one of some
    # second in it, so a run across a day's boundary of any row has its two answers, not a flake.
    first, last = (math.floor(moment.timestamp()) for moment in (published.built_after, published.built_before))
    answers = [overdue_at(second) for second in range(first, last + 1)]
    answer = _run(published.database, analyst_queries()[1])
    assert sorted(answer) in answers
    # The query orders by days late and login only; a learner late on two programmes by as many days
    # may come in either order.
    assert answer == sorted(answer, key=lambda row: (-row[4], row[0]))
    assert len({row[2] for row in answer}) > 1 and len({row[4] for row in answer}) > 1


def test_which_tests_are_hardest(published: Published, dataset: Dataset) -> None:
    names = {
        (row["material_id"], row["material_type"]): row["material_name"]
        for row in dataset.parents_truth("material_statistics")
    }
    # An attempt is made on the test of its id; another material may have the same id.
    tested: defaultdict[str, list[tuple[int | None, bool]]] = defaultdict(list)
    for (_, material_id), (attempts, best, passed) in _test_outcomes(dataset).items():
        if attempts:
            tested[names[material_id, "test"]].append((best, passed))
    expected = []
    for name, learners in tested.items():
        bests = [best for best, _ in learners if best is not None]
        average = _round_half_up(Fraction(sum(bests), len(bests)), 1)
        expected.append((name, len(learners), average, sum(not passed for _, passed in learners)))
    expected.sort(key=lambda row: (row[2], row[0]))
    answer = _run(published.database, analyst_queries()[2])
    assert answer == [(*row[:2], pytest.approx(row[2]), row[3]) for row in expected[:10]]
    assert len(answer) > 1 and any(not_passed for *_, not_passed in answer)
    assert any(not_passed < learners for _, learners, _, not_passed in answer)


def test_which_required_courses_are_still_open_by_department(published: Published, dataset: Dataset) -> None:
    open_ones: Counter[tuple[str, str]] = Counter(
        (row["group_department"] or NO_DEPARTMENT, row["course_name"])
        for row in dataset.truth("course_statistics")
        if row["is_required"] == 1 and row["complete_date"] is None
    )
    expected = sorted(((*group, count) for group, count in open_ones.items()), key=lambda r: (-r[2], r[0], r[1]))
    assert expected and _run(published.database, analyst_queries()[3]) == expected


def test_who_finished_the_most_and_how_well(published: Published, dataset: Dataset) -> None:
    courses = dataset.truth("course_statistics")
    programs = dataset.truth("program_statistics")
    materials = dataset.truth("material_statistics")
    attempts = dataset.truth("attempts")
    fio = {row["login"]: row["fio"] for row in courses}
    courses_completed = Counter(row["login"] for row in courses if row["complete_date"] is not None)
    programs_completed = Counter(row["login"] for row in programs if row["program_status"] == "completed")
    tests_passed: Counter[str] = Counter()
    best_percents: defaultdict[str, list[int]] = defaultdict(list)
    for (login, _), (_, best, passed) in _test_outcomes(dataset).items():
        tests_passed[login] += passed
        if best is not None:
            best_percents[login].append(best)
    # A learner's activity: an attempt's end, a material's update once it is more than appointed, a
    # course's and a programme's last activity.
    activity: defaultdict[str, list[datetime]] = defaultdict(list)
    for login, moment in [
        *((row["login"], row["ended_at"]) for row in attempts),
        *((row["login"], row["update_at"]) for row in materials if row["material_status"] != "appointed"),
        *((row["login"], row["last_activity"]) for row in courses),
        *((row["login"], row["active_at"]) for row in programs),
    ]:
        if moment is not None:
            activity[login].append(moment)
    logins = {row["login"] for report in (courses, programs, materials, attempts) for row in report}
    summary = [
        (
            login,
            fio.get(login),
            courses_completed[login],
            programs_completed[login],
            tests_passed[login],
            pytest.approx(sum(best_percents[login]) / len(best_percents[login])) if best_percents[login] else None,
            max(activity[login], default=None),
        )
        for login in logins
    ]
    summary.sort(key=lambda row: (-row[3], -row[4], row[0]))
    answer = _run(published.database, analyst_queries()[4])
    assert len(logins) > 10 and answer == summary[:10]
    assert len({row[4] for row in answer}) > 1 and {row[5] is None for row in answer} == {True, False}
    # The LIMIT leaves out learners with fewer programmes completed, and cuts a tie the logins break.
    assert summary[-1][3] < answer[-1][3] == summary[10][3] and answer[-1][4] == summary[10][4]
