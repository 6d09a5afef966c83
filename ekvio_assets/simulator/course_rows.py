"""Rows of the course statistics report: a learner's progress through a course."""

from __future__ import annotations

import functools
import math
from typing import Any

from ekvio_assets.reports.specs import COURSE_STATISTICS
from ekvio_assets.simulator.draws import RowRandom, Weighted
from ekvio_assets.simulator.entities import COURSE_CONTENT_TYPES, Course, Learner
from ekvio_assets.simulator.rows import Company, RowGroup, Version

_ASSIGNED_SHARE = (0.2, 0.6)
_PLANNED_SESSIONS = Weighted((0, 1, 2, 3, 4, 5), (30, 14, 14, 14, 14, 14))
_FILLED_TYPES = Weighted((None, "Польз.", "Импорт"), (70, 20, 10))


def course_groups(company: Company) -> list[RowGroup]:
    """The report is flat; its rows come a course at a time."""
    return [
        company.learner_group(
            COURSE_STATISTICS.name,
            (course.material_id,),
            _ASSIGNED_SHARE,
            functools.partial(_versions, company, course),
        )
        for course in company.courses
    ]


def _versions(company: Company, course: Course, rng: RowRandom, learner: Learner) -> list[Version]:
    """One learner's course row over time.

    Assigned, it is not started and has no dates at all (null last_activity). Every session views
    more content, scores more, may take a turn at the final test, and is the new last_activity.
    The last planned session may complete the course: everything viewed, the final test passed.
    """
    assigned_at = company.period.moment(rng)
    planned = rng.pick(_PLANNED_SESSIONS)
    completes = planned > 0 and rng.chance(0.55)
    takes_final_test = course.max_final_scores > 0 and planned > 0 and (completes or rng.chance(0.5))
    # The final test is taken once in each of the last sessions; only the completing turn passes it.
    final_turns = rng.randint(1, min(3, planned)) if takes_final_test else 0
    pass_scores = math.ceil(course.max_final_scores * 0.6)
    skill = rng.uniform(0.5, 1.0)
    scorm_completed_status = rng.choice(("completed", "passed"))
    scorm_unfinished_status = rng.choice(("not completed", "Unknown", "failed"))
    row: dict[str, Any] = {
        "user_id": learner.user_id,
        "material_id": course.material_id,
        "fio": learner.fio,
        "user_status": learner.user_status,
        "login": learner.login,
        "start_time": None,
        "complete_date": None,
        "total_time": 0,
        "course_name": course.name,
        "is_required": course.is_required,
        "user_scores": 0,
        "max_interaction_scores": course.max_interaction_scores,
        **{f"{content}_viewed": 0 for content in COURSE_CONTENT_TYPES},
        **{f"{content}_total": course.content_totals[content] for content in COURSE_CONTENT_TYPES},
        "scorm_total_time": None,
        "scorm_status": "not started" if course.has_scorm else None,
        "scorm_percent": None,
        "user_final_scores": 0,
        "max_final_scores": course.max_final_scores,
        "percent_final_scores": None,
        "last_activity": None,
        "current_turn": None,
        "turns_count": None,
        "filled_type": rng.pick(_FILLED_TYPES),
        **learner.groups,
        **learner.answers,
    }
    versions = [Version(assigned_at, row)]
    sessions = company.period.sessions(rng, assigned_at, planned)
    for number, moment in enumerate(sessions, start=1):
        completed = completes and number == planned
        share = 1.0 if completed else number / (planned if completes else planned + 1)
        session_seconds = rng.randint(60, 3600)
        row = {
            **row,
            "start_time": sessions[0],
            "complete_date": moment if completed else None,
            "total_time": row["total_time"] + session_seconds,
            "user_scores": round(course.max_interaction_scores * skill * share),
            **{f"{content}_viewed": math.floor(total * share) for content, total in course.content_totals.items()},
            "last_activity": moment,
        }
        if course.has_scorm:
            row["scorm_total_time"] = (row["scorm_total_time"] or 0) + rng.randint(30, session_seconds)
            if completed:
                row["scorm_status"], row["scorm_percent"] = scorm_completed_status, 100
            else:
                row["scorm_status"], row["scorm_percent"] = scorm_unfinished_status, round(99 * share)
        turns = number - (planned - final_turns)
        if turns > 0:
            scores = rng.randint(pass_scores, course.max_final_scores) if completed else rng.randint(0, pass_scores - 1)
            row["user_final_scores"] = scores
            row["percent_final_scores"] = round(100 * scores / course.max_final_scores)
            row["current_turn"] = row["turns_count"] = turns
        versions.append(Version(moment, row))
    return versions
