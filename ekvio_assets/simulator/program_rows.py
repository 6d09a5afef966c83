"""Rows of the programme statistics report: a learner's way through a programme's materials."""

from __future__ import annotations

import functools
from collections import Counter
from datetime import timedelta
from typing import Any

from ekvio_assets.reports.specs import MATERIAL_TYPES, PROGRAM_STATISTICS
from ekvio_assets.simulator.draws import RowRandom, Weighted
from ekvio_assets.simulator.entities import Learner, Program
from ekvio_assets.simulator.rows import Company, RowGroup, Version

_ASSIGNED_SHARE = (0.3, 0.7)
_STATUSES = ("appointed", "in_progress", "completed", "checking", "fail")
_OUTCOMES_WITH_TESTS = Weighted(_STATUSES, (20, 30, 40, 5, 5))
_OUTCOMES = Weighted(_STATUSES, (20, 40, 40, 0, 0))
_OUTCOMES_WITHOUT_MATERIALS = Weighted(_STATUSES, (20, 80, 0, 0, 0))


def program_groups(company: Company) -> list[RowGroup]:
    """One group per programme. Of two or more programmes, the last is assigned to nobody yet."""
    groups = []
    for number, program in enumerate(company.programs, start=1):
        key = (program.program_id,)
        share = None if number == len(company.programs) > 1 else _ASSIGNED_SHARE
        versions = functools.partial(_versions, company, program)
        groups.append(company.learner_group(PROGRAM_STATISTICS.name, key, share, versions, _parent_values(program)))
    return groups


def _parent_values(program: Program) -> dict[str, Any]:
    return {
        "program_id": program.program_id,
        "program_name": program.name,
        "deadline_type": program.deadline_type,
        "deadline_at": program.deadline_at,
        "deadline_period_at": program.deadline_period,
        "program_points": program.points,
        **{f"materials_{type_}": program.material_counts.get(type_) for type_ in MATERIAL_TYPES},
        "materials_total": program.materials_total if program.material_counts else None,
    }


def _versions(company: Company, program: Program, rng: RowRandom, learner: Learner) -> list[Version]:
    """One learner's programme row over time.

    Assigned, it is appointed and was never active (null active_at). Every session completes more
    materials and is the new active_at. The last planned session ends the plan: completed (end_at,
    passed_at_time), or with one test left open (checking) or failed (fail, with end_at); an
    in_progress plan never finishes, nor does one of a programme without materials. Some learners
    have a deadline of their own, which passed_at_time then measures against.
    """
    assigned_at = company.period.moment(rng)
    has_tests = program.material_counts.get("test", 0) > 0
    total = program.materials_total
    outcome = rng.pick(_OUTCOMES_WITH_TESTS if has_tests else _OUTCOMES if total else _OUTCOMES_WITHOUT_MATERIALS)
    planned = 0 if outcome == "appointed" else rng.randint(1, 5)
    completion_order = [type_ for type_, count in program.material_counts.items() for _ in range(count)]
    rng.shuffle(completion_order)
    if outcome in ("checking", "fail"):
        # The open test is the one material never completed.
        completion_order.remove("test")
        completion_order.append("test")
    done_after_session = sorted(rng.randint(0, max(0, total - 1)) for _ in range(planned))
    if outcome != "in_progress" and planned:
        done_after_session[-1] = total if outcome == "completed" else total - 1
    skill = rng.uniform(0.5, 1.0)
    own_deadline = assigned_at + timedelta(days=rng.randint(7, 45)) if rng.chance(0.3) else None
    row: dict[str, Any] = {
        "login": learner.login,
        "user_status": learner.user_status,
        "program_status": "appointed",
        "progress": 0,
        "points": None,
        "start_at": None,
        "active_at": None,
        "end_at": None,
        "passed_at_time": None,
        "learner_deadline_at": own_deadline,
        **{f"completed_{type_}": 0 for type_ in MATERIAL_TYPES},
    }
    versions = [Version(assigned_at, row)]
    sessions = company.period.sessions(rng, assigned_at, planned)
    deadline = own_deadline or (program.deadline_for(sessions[0]) if sessions else None)
    for number, (moment, done) in enumerate(zip(sessions, done_after_session[: len(sessions)], strict=True), 1):
        status = outcome if number == planned and outcome != "in_progress" else "in_progress"
        end_at = moment if status in ("completed", "fail") else None
        completed = Counter(completion_order[:done])
        row = {
            **row,
            "program_status": status,
            "progress": 100 * done // total if total else 0,
            "points": int(program.points * skill * done / total) if total else 0,
            "start_at": sessions[0],
            "active_at": moment,
            "end_at": end_at,
            "passed_at_time": None if status != "completed" or deadline is None else moment <= deadline,
            **{f"completed_{type_}": completed[type_] for type_ in MATERIAL_TYPES},
        }
        versions.append(Version(moment, row))
    return versions
