"""The analytics models, described once: downstream DuckDB tables built by SQL over the report tables.

Every model is a `ModelSpec`: its table name, its grain (key columns), the tables it reads (report
tables and other models), a SELECT that produces exactly its declared columns, and a type and a
description per column. The generic asset factory (`ekvio_assets.models.assets`) rebuilds each
table from its spec; nothing else differs between models.

Conventions shared by every model:

- Joins go on integer ids (`material_id`, `program_id`, `user_id`) and on `login`.
- "Latest" values of a material, course or programme (name, type, points, totals) come from its
  most recently changed report row (`_changed_at`, the change time that ordered the merge).
- Statuses and types compared in SQL are named parameters (`$completed`, ...), never spliced text.
- A learner's `user_id`, `fio` and `group_*` values exist only in the course report: they come from
  the learner's most recently changed course row, and are null for a learner without courses.
- Shares are fractions in [0, 1] (not percents) and are null when there is nothing to share
  (a course without PDFs has a null `pdf_viewed_share`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ekvio_assets.reports.specs import (
    ATTEMPTS,
    COURSE_STATISTICS,
    MATERIAL_STATISTICS,
    MATERIAL_TYPES,
    PROGRAM_STATISTICS,
    ReportSpec,
)
from ekvio_assets.storage.sql import quote


@dataclass(frozen=True)
class ModelColumn:
    name: str
    type: str
    description: str


@dataclass(frozen=True)
class Reference:
    """Every row of `table` with a non-null `column` names a row of `target`: one whose
    `target_column` holds that value, whose columns paired in `with_columns` (this table's, the
    target's) hold the same values, null matching null, and whose `target_values` columns hold
    those values."""

    table: str
    column: str
    target: str
    target_column: str
    with_columns: tuple[tuple[str, str], ...] = ()
    target_values: tuple[tuple[str, str], ...] = ()

    def describe(self) -> str:
        pairs = ((self.column, self.target_column), *self.with_columns)
        names = ", ".join(column for column, _ in pairs)
        targets = ", ".join(column for _, column in pairs)
        if len(pairs) > 1:
            names, targets = f"({names})", f"({targets})"
        values = " AND ".join(f"{column} = '{value}'" for column, value in self.target_values)
        return f"{self.table}.{names} in {self.target}.{targets}" + (f" where {values}" if values else "")


@dataclass(frozen=True)
class ModelSpec:
    """One analytics table: `sql` is a SELECT producing `columns` (names and order); the factory
    casts every column to its declared type."""

    name: str
    description: str
    key: tuple[str, ...]
    reads: tuple[str, ...]
    columns: tuple[ModelColumn, ...]
    sql: str
    parameters: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))
    # Key columns whose null is a value of the key (a material of no type), as in the report specs.
    nullable_key: tuple[str, ...] = ()
    # Checked after every build; each table named here is the model itself or one it reads.
    references: tuple[Reference, ...] = ()
    # Its rows depend on when it is built (lateness measured at now()), not only on what it reads:
    # a refresh rebuilds it even when no table it reads changed.
    reads_the_clock: bool = False

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)


def _c(name: str, type_: str, description: str) -> ModelColumn:
    return ModelColumn(name, type_, description)


# Status and type values the SQL compares against, bound as named parameters.
COMPLETED, FAIL, APPOINTED, TEST = "completed", "fail", "appointed", "test"

# The learner's group columns of the course report spec (company-specific dynamic group columns,
# such as group_shift, are not modelled: they exist only in some companies' tables).
GROUP_COLUMNS: tuple[str, ...] = tuple(f.column for f in COURSE_STATISTICS.fields if f.column.startswith("group_"))
# Content types of a course with viewed/total counters (pdf, link, html).
COURSE_CONTENT_TYPES: tuple[str, ...] = tuple(
    f.column.removesuffix("_viewed") for f in COURSE_STATISTICS.fields if f.column.endswith("_viewed")
)

# Setup run on the model's connection before its SELECT: a relative programme deadline arrives as an
# ISO 8601 period (P30D, P2W, P1M, P1Y2M3D); DuckDB cannot cast that text to INTERVAL.
SETUP_SQL = """
CREATE TEMP MACRO IF NOT EXISTS ekvio_iso_period(p) AS
    CASE WHEN regexp_full_match(trim(p), 'P([0-9]+Y)?([0-9]+M)?([0-9]+W)?([0-9]+D)?') AND trim(p) <> 'P' THEN
        to_years(coalesce(TRY_CAST(regexp_extract(trim(p), '([0-9]+)Y', 1) AS INTEGER), 0))
        + to_months(coalesce(TRY_CAST(regexp_extract(trim(p), '([0-9]+)M', 1) AS INTEGER), 0))
        + to_days(7 * coalesce(TRY_CAST(regexp_extract(trim(p), '([0-9]+)W', 1) AS INTEGER), 0)
                  + coalesce(TRY_CAST(regexp_extract(trim(p), '([0-9]+)D', 1) AS INTEGER), 0))
    END;
"""


def _list(columns: tuple[str, ...], alias: str | None = None) -> str:
    prefix = f"{alias}." if alias else ""
    return ", ".join(f"{prefix}{quote(column)}" for column in columns)


def _group_columns(source: str) -> tuple[ModelColumn, ...]:
    return tuple(
        _c(name, "VARCHAR", f"{COURSE_STATISTICS.column(name).description} ({source})") for name in GROUP_COLUMNS
    )


_LEARNER_GROUPS_SOURCE = "from the learner's latest course row; null without courses"

# ---------------------------------------------------------------------------------------------
# learners

def _logins_known(*tables: str) -> tuple[Reference, ...]:
    return tuple(Reference(table, "login", "learners", "login") for table in tables)


LEARNERS = ModelSpec(
    name="learners",
    description=(
        "Every learner seen in any report (attempts, material, course or programme statistics), "
        "with the course report's user id, name and groups and the first and last activity."
    ),
    key=("login",),
    reads=(ATTEMPTS.name, MATERIAL_STATISTICS.name, COURSE_STATISTICS.name, PROGRAM_STATISTICS.name),
    references=_logins_known(ATTEMPTS.name, MATERIAL_STATISTICS.name, COURSE_STATISTICS.name, PROGRAM_STATISTICS.name),
    columns=(
        _c("login", "VARCHAR", "Learner's login"),
        _c("user_id", "BIGINT", "Learner's user id (only the course report carries it; null without courses)"),
        _c("fio", "VARCHAR", "Learner's full name (from the course report; null without courses)"),
        _c("user_status", "VARCHAR", "Account status (active, blocked) of the learner's most recently changed report row"),
        *_group_columns(_LEARNER_GROUPS_SOURCE),
        _c(
            "first_activity_at",
            "TIMESTAMPTZ",
            "Earliest start of anything: an attempt, a material, a course or a programme (null: never started)",
        ),
        _c(
            "last_activity_at",
            "TIMESTAMPTZ",
            "Latest activity: an attempt's end, a material's last update (not a mere appointment), "
            "a course's last activity, a programme's last activity (null: never active)",
        ),
    ),
    parameters=MappingProxyType({"appointed": APPOINTED}),
    sql=f"""
WITH seen AS (
    SELECT login, started_at AS first_at, ended_at AS last_at,
           NULL::VARCHAR AS user_status, NULL::TIMESTAMPTZ AS status_at
    FROM attempts
    UNION ALL
    SELECT login, start_at, CASE WHEN material_status <> $appointed THEN update_at END, user_status, _changed_at
    FROM material_statistics
    UNION ALL
    SELECT login, start_time, last_activity, user_status, _changed_at
    FROM course_statistics
    UNION ALL
    SELECT login, start_at, active_at, user_status, _changed_at
    FROM program_statistics
),
activity AS (
    SELECT login,
           min(first_at) AS first_activity_at,
           max(last_at) AS last_activity_at,
           arg_max(user_status, status_at) AS user_status
    FROM seen
    WHERE login IS NOT NULL
    GROUP BY login
),
course_learner AS (
    SELECT login, user_id, fio, {_list(GROUP_COLUMNS)}
    FROM course_statistics
    WHERE login IS NOT NULL
    QUALIFY row_number() OVER (PARTITION BY login ORDER BY _changed_at DESC, material_id) = 1
)
SELECT a.login, c.user_id, c.fio, a.user_status, {_list(GROUP_COLUMNS, "c")},
       a.first_activity_at, a.last_activity_at
FROM activity a
LEFT JOIN course_learner c USING (login)
""",
)

# ---------------------------------------------------------------------------------------------
# materials

def _described(report: ReportSpec) -> str:
    """SQL of a nested report's parents with their own fields, one row per parent key: from the
    parent objects the report sent, else (a table filled before they were kept apart) from the
    parent's most recently changed report row."""
    parents = report.parents
    assert parents is not None, f"{report.name} has no parents"
    columns = _list(tuple(field.column for field in parents.columns))
    return f"""
    SELECT {columns} FROM (
        SELECT {columns}, 0 AS fallback, _changed_at, NULL::VARCHAR AS login FROM {parents.name}
        UNION ALL
        SELECT {columns}, 1 AS fallback, _changed_at, login FROM {report.name}
    )
    QUALIFY row_number() OVER (PARTITION BY {_list(parents.key)} ORDER BY fallback, _changed_at DESC, login) = 1"""


_MATERIAL_PARENTS = MATERIAL_STATISTICS.parents
assert _MATERIAL_PARENTS is not None
_MATERIAL_TYPE_MATCHES = "{0}.material_id = {1}.material_id AND {0}.material_type IS NOT DISTINCT FROM {1}.material_type"

MATERIALS = ModelSpec(
    name="materials",
    description=(
        "Every learning material the material report sent (with or without learners) or that test "
        "attempts were made on; a material is its type and its id, which repeats across types."
    ),
    key=("material_id", "material_type"),
    nullable_key=("material_type",),
    reads=(_MATERIAL_PARENTS.name, MATERIAL_STATISTICS.name, ATTEMPTS.name),
    references=(
        Reference(ATTEMPTS.name, "material_id", "materials", "material_id", target_values=(("material_type", TEST),)),
        Reference(
            MATERIAL_STATISTICS.name, "material_id", "materials", "material_id",
            with_columns=(("material_type", "material_type"),),
        ),
    ),
    columns=(
        _c("material_id", "BIGINT", "Id of the learning material (unique within its type only)"),
        _c("material_type", "VARCHAR", f"Material type: {', '.join(MATERIAL_TYPES)} (test for one known only from attempts)"),
        _c("material_name", "VARCHAR", "Name of the material (latest; null if only seen in attempts)"),
        _c("max_points", "BIGINT", "Maximum points for the material (null if it has none)"),
        _c("material_visibility", "VARCHAR", "The material's own status: active, hide (null if only seen in attempts)"),
        _c("is_test", "BOOLEAN", "Whether the material is a test (attempts are made on tests)"),
        _c("attempts_count", "BIGINT", "Test attempts on the material, by every learner"),
        _c("learners_attempted", "BIGINT", "Learners with at least one attempt on the material"),
        _c("learners_assigned", "BIGINT", "Learners with a statistics row for the material (0: none yet)"),
        _c("learners_completed", "BIGINT", "Learners whose status on the material is completed"),
    ),
    parameters=MappingProxyType({"completed": COMPLETED, "test": TEST}),
    sql=f"""
WITH described AS ({_described(MATERIAL_STATISTICS)}
),
assigned AS (
    SELECT material_id, material_type,
           count(*) AS learners_assigned,
           count(*) FILTER (WHERE material_status = $completed) AS learners_completed
    FROM material_statistics
    GROUP BY material_id, material_type
),
tried AS (
    -- Attempts are made on tests: an attempt's material is the test of its id.
    SELECT material_id, $test AS material_type, count(*) AS attempts_count, count(DISTINCT login) AS learners_attempted
    FROM attempts
    WHERE material_id IS NOT NULL
    GROUP BY material_id
),
known AS (
    SELECT material_id, material_type FROM described
    UNION
    SELECT material_id, material_type FROM tried
)
SELECT k.material_id,
       k.material_type,
       d.material_name,
       d.material_points AS max_points,
       d.material_visibility,
       coalesce(k.material_type = $test, false) AS is_test,
       coalesce(t.attempts_count, 0) AS attempts_count,
       coalesce(t.learners_attempted, 0) AS learners_attempted,
       coalesce(s.learners_assigned, 0) AS learners_assigned,
       coalesce(s.learners_completed, 0) AS learners_completed
FROM known k
LEFT JOIN described d ON {_MATERIAL_TYPE_MATCHES.format("d", "k")}
LEFT JOIN assigned s ON {_MATERIAL_TYPE_MATCHES.format("s", "k")}
LEFT JOIN tried t ON {_MATERIAL_TYPE_MATCHES.format("t", "k")}
""",
)

# ---------------------------------------------------------------------------------------------
# courses

COURSES = ModelSpec(
    name="courses",
    description="Every course of the course report, with its latest course-level fields.",
    key=("material_id",),
    reads=(COURSE_STATISTICS.name,),
    columns=(
        _c("material_id", "BIGINT", "Id of the course material"),
        _c("course_name", "VARCHAR", "Name of the course (latest)"),
        _c("is_required", "BOOLEAN", "Whether the course is required"),
        *(_c(f"{kind}_total", "BIGINT", f"{kind.upper()} materials in the course") for kind in COURSE_CONTENT_TYPES),
        _c("has_scorm", "BOOLEAN", "Whether the course has a SCORM material (a SCORM status is reported)"),
        _c("max_interaction_scores", "BIGINT", "Maximum points for interactive inserts"),
        _c("max_final_scores", "BIGINT", "Maximum points of the final test (0: no final test)"),
        _c("learners_assigned", "BIGINT", "Learners with a row for the course"),
        _c("learners_completed", "BIGINT", "Learners with a completion date"),
    ),
    sql=f"""
WITH latest AS (
    SELECT material_id, course_name, is_required, {_list(tuple(f"{kind}_total" for kind in COURSE_CONTENT_TYPES))},
           max_interaction_scores, max_final_scores
    FROM course_statistics
    QUALIFY row_number() OVER (PARTITION BY material_id ORDER BY _changed_at DESC, user_id) = 1
),
assigned AS (
    SELECT material_id,
           bool_or(scorm_status IS NOT NULL) AS has_scorm,
           count(*) AS learners_assigned,
           count(*) FILTER (WHERE complete_date IS NOT NULL) AS learners_completed
    FROM course_statistics
    GROUP BY material_id
)
SELECT material_id, l.course_name, l.is_required = 1 AS is_required,
       {_list(tuple(f"{kind}_total" for kind in COURSE_CONTENT_TYPES), "l")},
       a.has_scorm, l.max_interaction_scores, l.max_final_scores, a.learners_assigned, a.learners_completed
FROM latest l
JOIN assigned a USING (material_id)
""",
)

# ---------------------------------------------------------------------------------------------
# programs

_MATERIAL_COUNTS = tuple(f"materials_{kind}" for kind in MATERIAL_TYPES)

_PROGRAM_PARENTS = PROGRAM_STATISTICS.parents
assert _PROGRAM_PARENTS is not None

PROGRAMS = ModelSpec(
    name="programs",
    description=(
        "Every learning programme the programme report sent, with or without learners, with its "
        "latest programme-level fields."
    ),
    key=("program_id",),
    reads=(_PROGRAM_PARENTS.name, PROGRAM_STATISTICS.name),
    columns=(
        _c("program_id", "BIGINT", "Id of the learning programme"),
        _c("program_name", "VARCHAR", "Name of the programme (latest)"),
        _c("deadline_type", "VARCHAR", "Type of the recommended completion date as sent (e.g. absolute, relative) or null"),
        _c("deadline_at", "TIMESTAMPTZ", "Fixed recommended completion date (null for a relative or no deadline)"),
        _c("relative_deadline", "VARCHAR", "Relative completion period as sent (ISO 8601, e.g. P30D)"),
        _c(
            "relative_deadline_interval",
            "INTERVAL",
            "The relative completion period as an interval, counted from the learner's start (null if unreadable)",
        ),
        _c("max_points", "BIGINT", "Maximum points for the programme"),
        *(
            _c(name, "BIGINT", f"{PROGRAM_STATISTICS.column(name).description} (null: the report sent no counts)")
            for name in (*_MATERIAL_COUNTS, "materials_total")
        ),
        _c("learners_assigned", "BIGINT", "Learners with a row for the programme (0: none yet)"),
        _c("learners_completed", "BIGINT", "Learners whose status on the programme is completed"),
    ),
    parameters=MappingProxyType({"completed": COMPLETED}),
    sql=f"""
WITH described AS ({_described(PROGRAM_STATISTICS)}
),
assigned AS (
    SELECT program_id,
           count(*) AS learners_assigned,
           count(*) FILTER (WHERE program_status = $completed) AS learners_completed
    FROM program_statistics
    GROUP BY program_id
)
SELECT program_id, d.program_name, d.deadline_type, d.deadline_at,
       d.deadline_period_at AS relative_deadline,
       ekvio_iso_period(d.deadline_period_at) AS relative_deadline_interval,
       d.program_points AS max_points,
       {_list((*_MATERIAL_COUNTS, "materials_total"), "d")},
       coalesce(a.learners_assigned, 0) AS learners_assigned,
       coalesce(a.learners_completed, 0) AS learners_completed
FROM described d
LEFT JOIN assigned a USING (program_id)
""",
)

# ---------------------------------------------------------------------------------------------
# learner_material_progress

LEARNER_MATERIAL_PROGRESS = ModelSpec(
    name="learner_material_progress",
    description=(
        "One row per learner and material (type + id): the material statistics row joined with the "
        "learner's test attempts on the test of that id (a pair seen only in attempts is kept, with "
        "null statistics)."
    ),
    key=("login", "material_id", "material_type"),
    nullable_key=("material_type",),
    reads=(MATERIAL_STATISTICS.name, ATTEMPTS.name, MATERIALS.name, LEARNERS.name),
    references=(
        *_logins_known("learner_material_progress"),
        Reference(
            "learner_material_progress", "material_id", MATERIALS.name, "material_id",
            with_columns=(("material_type", "material_type"),),
        ),
    ),
    columns=(
        _c("login", "VARCHAR", "Learner's login"),
        _c("material_id", "BIGINT", "Id of the learning material (unique within its type only)"),
        _c("material_type", "VARCHAR", "Material type (test for an attempt's material)"),
        _c("material_name", "VARCHAR", "Name of the material (from materials)"),
        _c("is_test", "BOOLEAN", "Whether the material is a test (from materials)"),
        _c("max_points", "BIGINT", "Maximum points for the material (from materials)"),
        _c("material_status", "VARCHAR", "Learner's status on the material: appointed, in_progress, completed, checking, fail"),
        _c("progress_percent", "BIGINT", "Learner's progress on the material, percent"),
        _c("points", "BIGINT", "Points the learner scored on the material (the report's figure)"),
        _c("started_at", "TIMESTAMPTZ", "When the learner started the material"),
        _c("ended_at", "TIMESTAMPTZ", "When the learner finished the material"),
        _c("last_activity_at", "TIMESTAMPTZ", "The learner's last update on the material (update_at)"),
        _c("reported_attempts", "BIGINT", "The learner's attempts on the test as the material report counts them"),
        _c("attempts_count", "BIGINT", "The learner's test attempts on the material in the attempts report (0: none)"),
        _c("best_percent", "BIGINT", "Highest percent of any attempt (null: no attempt)"),
        _c("best_points", "BIGINT", "Highest points of any attempt (null: no attempt)"),
        _c("last_attempt_status", "VARCHAR", "Status of the last attempt: fail, completed, checking"),
        _c("last_percent", "BIGINT", "Percent of the last attempt"),
        _c("last_points", "BIGINT", "Points of the last attempt"),
        _c("first_attempt_started_at", "TIMESTAMPTZ", "When the first attempt started (earliest started_at)"),
        _c(
            "last_attempt_ended_at",
            "TIMESTAMPTZ",
            "When the last attempt ended. The last attempt is the one that ended last "
            "(ended_at, else started_at; ties by updated_at, then attempt_id)",
        ),
        _c(
            "is_passed",
            "BOOLEAN",
            "Passed: any attempt has status completed, or the learner's status on the material is completed "
            "(an attempt still checking is not passed)",
        ),
    ),
    parameters=MappingProxyType({"completed": COMPLETED, "test": TEST}),
    sql=f"""
WITH ranked AS (
    SELECT *,
           row_number() OVER (
               PARTITION BY login, material_id
               ORDER BY coalesce(ended_at, started_at) DESC NULLS LAST, updated_at DESC NULLS LAST, attempt_id DESC
           ) AS recency
    FROM attempts
    WHERE login IS NOT NULL AND material_id IS NOT NULL
),
tried AS (
    SELECT login, material_id, $test AS material_type,
           count(*) AS attempts_count,
           max(percent) AS best_percent,
           max(points) AS best_points,
           any_value(status) FILTER (WHERE recency = 1) AS last_attempt_status,
           any_value(percent) FILTER (WHERE recency = 1) AS last_percent,
           any_value(points) FILTER (WHERE recency = 1) AS last_points,
           min(started_at) AS first_attempt_started_at,
           any_value(ended_at) FILTER (WHERE recency = 1) AS last_attempt_ended_at,
           bool_or(status = $completed) AS any_attempt_completed
    FROM ranked
    GROUP BY login, material_id
),
paired AS (
    SELECT coalesce(s.login, t.login) AS login, coalesce(s.material_id, t.material_id) AS material_id,
           CASE WHEN s.login IS NULL THEN t.material_type ELSE s.material_type END AS material_type,
           s.material_status, s.progress, s.points, s.start_at, s.end_at, s.update_at, s.attempts AS reported_attempts,
           t.attempts_count, t.best_percent, t.best_points, t.last_attempt_status, t.last_percent, t.last_points,
           t.first_attempt_started_at, t.last_attempt_ended_at, t.any_attempt_completed
    FROM material_statistics s
    FULL JOIN tried t ON s.login = t.login AND {_MATERIAL_TYPE_MATCHES.format("s", "t")}
)
SELECT p.login, p.material_id, p.material_type, m.material_name, m.is_test, m.max_points,
       p.material_status, p.progress AS progress_percent, p.points,
       p.start_at AS started_at, p.end_at AS ended_at, p.update_at AS last_activity_at,
       p.reported_attempts, coalesce(p.attempts_count, 0) AS attempts_count, p.best_percent, p.best_points,
       p.last_attempt_status, p.last_percent, p.last_points,
       p.first_attempt_started_at, p.last_attempt_ended_at,
       coalesce(p.any_attempt_completed, false) OR coalesce(p.material_status = $completed, false) AS is_passed
FROM paired p
LEFT JOIN materials m ON {_MATERIAL_TYPE_MATCHES.format("m", "p")}
""",
)

# ---------------------------------------------------------------------------------------------
# learner_course_progress

_CONTENT_SHARES = tuple(
    _c(
        f"{kind}_viewed_share",
        "DOUBLE",
        f"Share of the course's {kind.upper()} materials viewed, 0..1 (null: the course has none)",
    )
    for kind in COURSE_CONTENT_TYPES
)

LEARNER_COURSE_PROGRESS = ModelSpec(
    name="learner_course_progress",
    description="One row per learner and course: the course statistics with the learner's dimensions and completion shares.",
    key=("login", "material_id"),
    reads=(COURSE_STATISTICS.name, COURSES.name, LEARNERS.name),
    references=(
        *_logins_known("learner_course_progress"),
        Reference("learner_course_progress", "material_id", COURSES.name, "material_id"),
    ),
    columns=(
        _c("login", "VARCHAR", "Learner's login"),
        _c("material_id", "BIGINT", "Id of the course material"),
        _c("user_id", "BIGINT", "Learner's user id"),
        _c("fio", "VARCHAR", "Learner's full name"),
        _c("user_status", "VARCHAR", "Learner's account status: active, blocked"),
        *_group_columns("as on this course row"),
        _c("course_name", "VARCHAR", "Name of the course"),
        _c("is_required", "BOOLEAN", "Whether the course is required"),
        _c("is_completed", "BOOLEAN", "Whether the learner completed the course (it has a completion date)"),
        _c("started_at", "TIMESTAMPTZ", "When the learner started the course"),
        _c("completed_at", "TIMESTAMPTZ", "When the learner completed the course"),
        _c("last_activity_at", "TIMESTAMPTZ", "The learner's last activity on the course"),
        _c("total_time_seconds", "BIGINT", "Total time spent on the course, seconds"),
        _c("interaction_scores", "BIGINT", "Points the learner scored on interactive inserts"),
        _c("max_interaction_scores", "BIGINT", "Maximum points for interactive inserts"),
        _c("final_test_scores", "BIGINT", "Points scored in the final test"),
        _c("max_final_test_scores", "BIGINT", "Maximum points of the final test (0: no final test)"),
        _c("final_test_percent", "BIGINT", "Percent of the final test passed (null: not taken)"),
        _c("final_test_attempts", "BIGINT", "Final-test attempts taken (null: none)"),
        _c("scorm_status", "VARCHAR", "SCORM status (null: the course has no SCORM material)"),
        *(
            col
            for kind in COURSE_CONTENT_TYPES
            for col in (
                _c(f"{kind}_viewed", "BIGINT", f"{kind.upper()} materials of the course viewed"),
                _c(f"{kind}_total", "BIGINT", f"{kind.upper()} materials in the course"),
            )
        ),
        *_CONTENT_SHARES,
        _c("scorm_share", "DOUBLE", "SCORM percent passed as a share, 0..1 (null: no SCORM progress reported)"),
        _c(
            "content_viewed_share",
            "DOUBLE",
            "Share of all PDF, link and HTML materials of the course viewed, 0..1 (null: the course has none)",
        ),
    ),
    sql=f"""
SELECT login, material_id, user_id, fio, user_status, {_list(GROUP_COLUMNS)},
       course_name,
       is_required = 1 AS is_required,
       complete_date IS NOT NULL AS is_completed,
       start_time AS started_at,
       complete_date AS completed_at,
       last_activity AS last_activity_at,
       total_time AS total_time_seconds,
       user_scores AS interaction_scores,
       max_interaction_scores,
       user_final_scores AS final_test_scores,
       max_final_scores AS max_final_test_scores,
       percent_final_scores AS final_test_percent,
       turns_count AS final_test_attempts,
       scorm_status,
       {", ".join(f"{kind}_viewed, {kind}_total" for kind in COURSE_CONTENT_TYPES)},
       {", ".join(f"{kind}_viewed / nullif({kind}_total, 0) AS {kind}_viewed_share" for kind in COURSE_CONTENT_TYPES)},
       scorm_percent / 100 AS scorm_share,
       ({" + ".join(f"{kind}_viewed" for kind in COURSE_CONTENT_TYPES)})
           / nullif({" + ".join(f"{kind}_total" for kind in COURSE_CONTENT_TYPES)}, 0) AS content_viewed_share
FROM course_statistics
""",
)

# ---------------------------------------------------------------------------------------------
# learner_program_progress

_COMPLETED_COUNTS = tuple(f"completed_{kind}" for kind in MATERIAL_TYPES)

LEARNER_PROGRAM_PROGRESS = ModelSpec(
    name="learner_program_progress",
    description=(
        "One row per learner and programme: the programme statistics with the programme's fields, "
        "the learner's fields (from learners), completion share and lateness against the deadline."
    ),
    key=("login", "program_id"),
    reads=(PROGRAM_STATISTICS.name, PROGRAMS.name, LEARNERS.name),
    reads_the_clock=True,
    references=(
        *_logins_known("learner_program_progress"),
        Reference("learner_program_progress", "program_id", PROGRAMS.name, "program_id"),
    ),
    columns=(
        _c("login", "VARCHAR", "Learner's login"),
        _c("program_id", "BIGINT", "Id of the learning programme"),
        _c("program_name", "VARCHAR", "Name of the programme"),
        _c("user_id", "BIGINT", "Learner's user id (from learners)"),
        _c("fio", "VARCHAR", "Learner's full name (from learners)"),
        _c("user_status", "VARCHAR", "Learner's account status on this programme row: active, blocked"),
        *_group_columns("from learners"),
        _c("program_status", "VARCHAR", "Learner's status on the programme: appointed, in_progress, completed, checking, fail"),
        _c("progress_percent", "BIGINT", "Learner's progress on the programme, percent (the report's figure)"),
        _c("points", "BIGINT", "Points the learner scored on the programme"),
        _c("max_points", "BIGINT", "Maximum points for the programme"),
        _c("started_at", "TIMESTAMPTZ", "When the learner started the programme"),
        _c("last_activity_at", "TIMESTAMPTZ", "The learner's last activity on the programme"),
        _c("ended_at", "TIMESTAMPTZ", "When the learner finished the programme (completed or failed)"),
        _c("materials_total", "BIGINT", "Materials in the programme"),
        _c("materials_completed", "BIGINT", "Materials the learner completed (sum of the completed_<type> counts)"),
        _c("completion_share", "DOUBLE", "materials_completed / materials_total, 0..1 (null: no materials)"),
        _c("deadline_type", "VARCHAR", "Type of the programme's recommended completion date as sent, or null"),
        _c("learner_deadline_at", "TIMESTAMPTZ", "The learner's own deadline on the programme (null: none set)"),
        _c(
            "due_at",
            "TIMESTAMPTZ",
            "The learner's deadline: their own learner_deadline_at where set, else the programme's fixed "
            "deadline_at, else started_at + the relative period (null: no deadline, or a relative one not started)",
        ),
        _c(
            "is_on_time",
            "BOOLEAN",
            "For a completed programme: the report's passed_at_time, else ended_at <= due_at; "
            "null when not completed or without a deadline",
        ),
        _c(
            "days_late",
            "BIGINT",
            "Days past due_at, rounded up (an hour late is 1), at ended_at or, while the programme is open, "
            "at the model's build time; 0 when not late; null without a due date",
        ),
    ),
    parameters=MappingProxyType({"completed": COMPLETED}),
    sql=f"""
WITH progress AS (
    SELECT *,
           coalesce(learner_deadline_at, deadline_at, start_at + ekvio_iso_period(deadline_period_at)) AS due_at,
           {" + ".join(f"coalesce({name}, 0)" for name in _COMPLETED_COUNTS)} AS materials_completed
    FROM program_statistics
)
SELECT p.login, p.program_id, p.program_name, l.user_id, l.fio, p.user_status, {_list(GROUP_COLUMNS, "l")},
       p.program_status, p.progress AS progress_percent, p.points, p.program_points AS max_points,
       p.start_at AS started_at, p.active_at AS last_activity_at, p.end_at AS ended_at,
       p.materials_total, p.materials_completed,
       p.materials_completed / nullif(p.materials_total, 0) AS completion_share,
       p.deadline_type, p.learner_deadline_at, p.due_at,
       CASE WHEN p.program_status = $completed THEN coalesce(p.passed_at_time, p.end_at <= p.due_at) END AS is_on_time,
       CASE WHEN p.due_at IS NOT NULL
            THEN greatest(0, ceil(date_diff('second', p.due_at, coalesce(p.end_at, now())) / 86400))
       END AS days_late
FROM progress p
LEFT JOIN learners l USING (login)
""",
)

# ---------------------------------------------------------------------------------------------
# learner_summary

LEARNER_SUMMARY = ModelSpec(
    name="learner_summary",
    description=(
        "One row per learner: what a manager asks first. Courses, programmes and tests assigned, "
        "completed and failed, the average best test percent and the last activity."
    ),
    key=("login",),
    reads=(LEARNERS.name, LEARNER_COURSE_PROGRESS.name, LEARNER_PROGRAM_PROGRESS.name, LEARNER_MATERIAL_PROGRESS.name),
    references=_logins_known("learner_summary"),
    columns=(
        _c("login", "VARCHAR", "Learner's login"),
        _c("user_id", "BIGINT", "Learner's user id (null without courses)"),
        _c("fio", "VARCHAR", "Learner's full name (null without courses)"),
        _c("user_status", "VARCHAR", "Learner's account status: active, blocked"),
        *_group_columns(_LEARNER_GROUPS_SOURCE),
        _c("courses_assigned", "BIGINT", "Courses with a row for the learner"),
        _c("courses_completed", "BIGINT", "Courses the learner completed (with a completion date)"),
        _c("required_courses_open", "BIGINT", "Required courses not completed yet"),
        _c("programs_assigned", "BIGINT", "Programmes with a row for the learner"),
        _c("programs_completed", "BIGINT", "Programmes with status completed"),
        _c("programs_failed", "BIGINT", "Programmes with status fail"),
        _c("programs_overdue", "BIGINT", "Programmes not completed and past their due date (days_late > 0)"),
        _c("tests_assigned", "BIGINT", "Tests in the learner's material progress (assigned or attempted)"),
        _c("tests_passed", "BIGINT", "Tests passed (learner_material_progress.is_passed)"),
        _c("tests_failed", "BIGINT", "Tests not passed whose last attempt failed"),
        _c(
            "average_test_percent",
            "DOUBLE",
            "Mean over the tests the learner attempted of the best attempt percent (null: no attempt)",
        ),
        _c("last_activity_at", "TIMESTAMPTZ", "The learner's last activity anywhere (from learners)"),
    ),
    parameters=MappingProxyType({"completed": COMPLETED, "fail": FAIL}),
    sql=f"""
WITH courses AS (
    SELECT login,
           count(*) AS courses_assigned,
           count(*) FILTER (WHERE is_completed) AS courses_completed,
           count(*) FILTER (WHERE is_required AND NOT is_completed) AS required_courses_open
    FROM learner_course_progress
    GROUP BY login
),
programs AS (
    SELECT login,
           count(*) AS programs_assigned,
           count(*) FILTER (WHERE program_status = $completed) AS programs_completed,
           count(*) FILTER (WHERE program_status = $fail) AS programs_failed,
           count(*) FILTER (WHERE program_status IS DISTINCT FROM $completed AND days_late > 0) AS programs_overdue
    FROM learner_program_progress
    GROUP BY login
),
tests AS (
    SELECT login,
           count(*) AS tests_assigned,
           count(*) FILTER (WHERE is_passed) AS tests_passed,
           count(*) FILTER (WHERE NOT is_passed AND last_attempt_status = $fail) AS tests_failed,
           avg(best_percent) AS average_test_percent
    FROM learner_material_progress
    WHERE is_test
    GROUP BY login
)
SELECT l.login, l.user_id, l.fio, l.user_status, {_list(GROUP_COLUMNS, "l")},
       coalesce(c.courses_assigned, 0) AS courses_assigned,
       coalesce(c.courses_completed, 0) AS courses_completed,
       coalesce(c.required_courses_open, 0) AS required_courses_open,
       coalesce(p.programs_assigned, 0) AS programs_assigned,
       coalesce(p.programs_completed, 0) AS programs_completed,
       coalesce(p.programs_failed, 0) AS programs_failed,
       coalesce(p.programs_overdue, 0) AS programs_overdue,
       coalesce(t.tests_assigned, 0) AS tests_assigned,
       coalesce(t.tests_passed, 0) AS tests_passed,
       coalesce(t.tests_failed, 0) AS tests_failed,
       t.average_test_percent,
       l.last_activity_at
FROM learners l
LEFT JOIN courses c USING (login)
LEFT JOIN programs p USING (login)
LEFT JOIN tests t USING (login)
""",
)

MODELS: tuple[ModelSpec, ...] = (
    LEARNERS,
    MATERIALS,
    COURSES,
    PROGRAMS,
    LEARNER_MATERIAL_PROGRESS,
    LEARNER_COURSE_PROGRESS,
    LEARNER_PROGRAM_PROGRESS,
    LEARNER_SUMMARY,
)
MODELS_BY_NAME = {spec.name: spec for spec in MODELS}
