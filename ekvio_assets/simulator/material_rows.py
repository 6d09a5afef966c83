"""Rows of the test attempts and material statistics reports: a learner's activity on a material.

Both reports draw a (material, learner) pair from the same stream, so a test's statistics follow
the learner's attempts whichever report asks first.
"""

from __future__ import annotations

import functools
import uuid
from array import array
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from ekvio_assets.reports.specs import MATERIAL_STATISTICS
from ekvio_assets.simulator.company import after_a_gap
from ekvio_assets.simulator.draws import RowRandom, Weighted
from ekvio_assets.simulator.entities import Learner, Material
from ekvio_assets.simulator.rows import Company, Row, RowGroup, Version

# Share of attempts with open-answer questions: such an attempt is "checking" until a reviewer
# grades it, usually on a later day.
_MANUAL_CHECK_SHARE = 0.6
_ASSIGNED_SHARE = (0.15, 0.45)
_PLANNED_ATTEMPTS = Weighted((0, 1, 2, 3, 4), (30, 35, 20, 10, 5))
_PLANNED_SESSIONS = Weighted((0, 1, 2, 3, 4), (25, 20, 20, 20, 15))


def material_groups(company: Company) -> tuple[list[RowGroup], list[RowGroup]]:
    """The attempts report's groups (one per test) and the material statistics report's (one per
    material). Of two or more materials, the last is assigned to nobody yet."""
    attempt_groups, statistics_groups = [], []
    for number, material in enumerate(company.materials, start=1):
        key = (material.material_id, material.type)
        share = None if number == len(company.materials) > 1 else _ASSIGNED_SHARE
        versions = functools.partial(_statistics_versions, company, material)
        statistics = company.learner_group(MATERIAL_STATISTICS.name, key, share, versions, _parent_values(material))
        statistics_groups.append(statistics)
        if material.type == "test":
            attempts = functools.partial(_attempt_rows, company, material)
            attempt_groups.append(RowGroup(None, statistics.assign, attempts, one_row_per_learner=False))
    return attempt_groups, statistics_groups


def _parent_values(material: Material) -> dict[str, Any]:
    return {
        "material_id": material.material_id,
        "material_type": material.type,
        "material_name": material.name,
        "material_points": material.points,
        "material_visibility": material.visibility,
    }


def _statistics_versions(company: Company, material: Material, rng: RowRandom, learner: Learner) -> list[Version]:
    assigned_at = company.period.moment(rng)
    if material.type == "test":
        return _test_versions(learner, assigned_at, _attempts(company, rng, material, learner, assigned_at))
    return _other_versions(company, rng, material, learner, assigned_at)


def _attempt_rows(company: Company, material: Material, learners: array[int]) -> Iterator[Row]:
    """The attempts of the learners assigned to a test, drawn from their statistics rows' streams."""
    for position in learners:
        learner = company.learners[position]
        rng = company.row_random(MATERIAL_STATISTICS.name, (material.material_id, material.type), learner)
        rng.getrandbits(64)  # the statistics row's drift: its versions follow in the stream
        yield from _attempts(company, rng, material, learner, company.period.moment(rng))


def _attempts(
    company: Company, rng: RowRandom, material: Material, learner: Learner, assigned_at: datetime
) -> list[Row]:
    """A learner's attempts at a test, oldest first.

    An attempt is written when submitted. One with open-answer questions stays "checking" until
    they are graded (possibly after the period). The learner tries again only after a fail.
    """
    assert material.question_count is not None
    period_end = company.period.end
    planned = rng.pick(_PLANNED_ATTEMPTS)
    attempts: list[Row] = []
    ready_at = assigned_at
    for number in range(1, planned + 1):
        drift = rng.getrandbits(64)
        started_at = after_a_gap(rng, ready_at)
        ended_at = started_at + timedelta(seconds=rng.randint(60, 45 * 60))
        submitted_at = ended_at + timedelta(seconds=rng.randint(0, 60))
        if submitted_at >= period_end:
            break
        q_checking = rng.randint(1, min(3, material.question_count)) if rng.chance(_MANUAL_CHECK_SHARE) else 0
        q_success = rng.randint(0, material.question_count - q_checking)
        attempt = functools.partial(
            _attempt_values,
            attempt_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            material=material,
            login=learner.login,
            # The vendor example leaves most numbers null.
            number=None if rng.chance(0.4) else number,
            started_at=started_at,
            ended_at=ended_at,
        )
        versions = [Version(submitted_at, attempt(q_success=q_success, q_checking=q_checking, updated_at=submitted_at))]
        if q_checking:
            checked_at = after_a_gap(rng, submitted_at)
            if checked_at < period_end:
                graded = attempt(q_success=q_success + rng.randint(0, q_checking), q_checking=0, updated_at=checked_at)
                versions.append(Version(checked_at, graded))
        attempts.append(Row(drift, versions))
        if versions[-1].values["status"] != "fail":
            break
        ready_at = versions[-1].modified_at
    return attempts


def _attempt_values(
    *,
    attempt_id: str,
    material: Material,
    login: str,
    number: int | None,
    started_at: datetime,
    ended_at: datetime,
    q_success: int,
    q_checking: int,
    updated_at: datetime,
) -> dict[str, Any]:
    assert material.question_count is not None and material.pass_percent is not None and material.points is not None
    q_count = material.question_count
    percent = round(100 * q_success / q_count)
    return {
        "attempt_id": attempt_id,
        "material_id": material.material_id,
        "login": login,
        "status": "checking" if q_checking else "completed" if percent >= material.pass_percent else "fail",
        "number": number,
        "points": round(material.points * q_success / q_count),
        "percent": percent,
        "q_count": q_count,
        "q_success": q_success,
        "q_fail": q_count - q_checking - q_success,
        "q_checking": q_checking,
        "started_at": started_at,
        "ended_at": ended_at,
        "created_at": ended_at,
        "updated_at": updated_at,
    }


def _statistics_values(
    learner: Learner,
    status: str,
    progress: int,
    points: int | None,
    start_at: datetime | None,
    end_at: datetime | None,
    update_at: datetime,
    attempts: int | None = None,
) -> dict[str, Any]:
    return {
        "login": learner.login,
        "user_status": learner.user_status,
        "material_status": status,
        "points": points,
        "attempts": attempts,
        "progress": progress,
        "start_at": start_at,
        "end_at": end_at,
        "update_at": update_at,
    }


def _appointment(learner: Learner, assigned_at: datetime, attempts: int | None = None) -> Version:
    """A material row's first version; unlike the other reports, an appointment sets the change time."""
    return Version(assigned_at, _statistics_values(learner, "appointed", 0, None, None, None, assigned_at, attempts))


def _test_versions(learner: Learner, assigned_at: datetime, attempts: list[Row]) -> list[Version]:
    """Statistics of a test: appointed, then a version with every attempt version, showing the latest
    attempt and how many there were."""
    versions = [_appointment(learner, assigned_at, attempts=0)]
    best_earlier_points = 0
    for count, attempt in enumerate(attempts, start=1):
        for attempt_version in attempt.versions:
            values, moment = attempt_version.values, attempt_version.modified_at
            status = values["status"]
            versions.append(
                Version(
                    moment,
                    _statistics_values(
                        learner,
                        status,
                        100,
                        max(best_earlier_points, values["points"]),
                        attempts[0].versions[0].values["started_at"],
                        None if status == "checking" else values["ended_at"],
                        moment,
                        count,
                    ),
                )
            )
        best_earlier_points = max(best_earlier_points, attempt.versions[-1].values["points"])
    return versions


def _other_versions(
    company: Company, rng: RowRandom, material: Material, learner: Learner, assigned_at: datetime
) -> list[Version]:
    """Statistics of a material that is not a test.

    Appointed, then every session raises the progress (and points), and the last planned session
    may complete it.
    """
    versions = [_appointment(learner, assigned_at)]
    planned = rng.pick(_PLANNED_SESSIONS)
    progresses = sorted(1 + offset for offset in rng.sample(99, planned))
    if planned and rng.chance(0.65):
        progresses[-1] = 100
    skill = rng.uniform(0.5, 1.0)
    sessions = company.period.sessions(rng, assigned_at, planned)
    for moment, progress in zip(sessions, progresses[: len(sessions)], strict=True):
        completed = progress == 100
        points = None if material.points is None else round(material.points * skill * progress / 100)
        values = _statistics_values(
            learner,
            "completed" if completed else "in_progress",
            progress,
            points,
            sessions[0],
            moment if completed else None,
            moment,
        )
        versions.append(Version(moment, values))
    return versions
