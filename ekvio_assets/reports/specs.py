"""The four Ekvio reports, described once.

Everything that differs between reports is data in a `ReportSpec`: the endpoint, the filters, where
the records sit in the payload, the columns with their types, the key and the change time. The
generic export, load and merge code, the Dagster assets and the simulator all read these specs, so
they cannot disagree about a field.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, replace


class FieldType(enum.Enum):
    """How a payload value is read, and the DuckDB type it lands in."""

    TEXT = "VARCHAR"
    INTEGER = "BIGINT"
    BOOLEAN = "BOOLEAN"
    # ISO 8601 date-time (one without an offset is in the company's time zone) or unix time in
    # seconds: the API sends programme deadlines both ways.
    TIMESTAMP = "TIMESTAMPTZ"

    @property
    def duckdb_type(self) -> str:
        return self.value


@dataclass(frozen=True)
class Field:
    """One documented payload field and the table column it becomes."""

    column: str
    source: tuple[str, ...]
    type: FieldType
    description: str


def _field(column: str, type_: FieldType, description: str, source: str | None = None) -> Field:
    path = tuple((source or column).split("."))
    return Field(column=column, source=path, type=type_, description=description)


T, INT, B, TS = FieldType.TEXT, FieldType.INTEGER, FieldType.BOOLEAN, FieldType.TIMESTAMP

# Company-specific columns of the course report: one per questionnaire question and group type.
COURSE_DYNAMIC_COLUMNS = re.compile(r"^(form_question_[0-9]+|group_[a-z][a-z0-9_]{0,62})$")


@dataclass(frozen=True)
class Total:
    """A documented sum: wherever `total` is known, the `parts` add up to it. `check` names the asset
    check that counts the rows where they do not."""

    check: str
    total: str
    parts: tuple[str, ...]

    def describe(self) -> str:
        return f"{' + '.join(self.parts)} = {self.total}"


@dataclass(frozen=True)
class ReportSpec:
    """A report of the Ekvio API as one table.

    For a nested report (`children_key` set) every payload record is a parent object (a material,
    a programme) whose `children_key` array holds one object per learner; the table has one row per
    child, carrying the parent's `parent_fields`. The parent objects themselves, with or without
    learners, are the rows of a table of their own (`parents`), one per `parent_key`.

    A key column named in `nullable_key` may be null: its null is a value of the key like any other
    (a material without a type is still told apart from a video of the same id). Without a
    `change_time`, a row's version is ordered by when its export was requested.
    """

    name: str
    title: str
    method: str
    path: str
    filters: tuple[str, ...]
    fields: tuple[Field, ...]
    key: tuple[str, ...]
    change_time: str | None
    nullable_key: tuple[str, ...] = ()
    parent_fields: tuple[Field, ...] = ()
    children_key: str | None = None
    parents_table: str | None = None
    parent_key: tuple[str, ...] = ()
    dynamic_columns: re.Pattern[str] | None = None
    # Documented bounds: (column, lowest, highest), each bound a number or another column.
    ranges: tuple[tuple[str, str | None, str | None], ...] = ()
    # Documented value sets of status columns.
    statuses: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # Documented sums of columns, each checked by an asset check of its own.
    totals: tuple[Total, ...] = ()

    @property
    def columns(self) -> tuple[Field, ...]:
        return self.parent_fields + self.fields

    @property
    def is_nested(self) -> bool:
        return self.children_key is not None

    def column(self, name: str) -> Field:
        for field in self.columns:
            if field.column == name:
                return field
        raise KeyError(f"report {self.name} has no column {name}")

    @property
    def parents(self) -> ReportSpec | None:
        """The table of a nested report's parent objects: their own fields, checks and key."""
        if self.parents_table is None:
            return None
        own = {field.column for field in self.parent_fields}
        return replace(
            self,
            name=self.parents_table,
            title=f"{self.title}: {self.parents_table.replace('_', ' ')}",
            fields=self.parent_fields,
            key=self.parent_key,
            change_time=None,
            nullable_key=tuple(column for column in self.nullable_key if column in own),
            parent_fields=(),
            children_key=None,
            parents_table=None,
            parent_key=(),
            ranges=tuple(bounds for bounds in self.ranges if {bounds[0], *_columns_named(bounds[1:])} <= own),
            statuses=tuple(status for status in self.statuses if status[0] in own),
            totals=tuple(total for total in self.totals if {total.total, *total.parts} <= own),
        )


def _columns_named(bounds: tuple[str | None, ...]) -> set[str]:
    """The columns among a range's bounds (the others are numbers or open)."""
    return {bound for bound in bounds if bound is not None and not bound.lstrip("-").isdigit()}


_WINDOW_FILTERS = ("after_date", "to_date")
_USER_STATUSES = ("user_status", ("active", "blocked"))
_PROGRESS_STATUSES = ("appointed", "in_progress", "completed", "checking", "fail")
# The material types of the vendor's field tables and examples, in the programme report's order.
MATERIAL_TYPES = ("pdf", "scorm", "link", "html", "test", "video", "longread", "document")

ATTEMPTS = ReportSpec(
    name="attempts",
    title="Test attempts",
    method="GET",
    path="/v2/materials/tests/attempts",
    filters=_WINDOW_FILTERS,
    key=("attempt_id",),
    change_time="updated_at",
    ranges=(
        ("percent", "0", "100"),
        ("points", "0", None),
        *((column, "0", None) for column in ("q_count", "q_success", "q_fail", "q_checking")),
    ),
    statuses=(("status", ("fail", "completed", "checking")),),
    totals=(Total("question_counts_add_up", "q_count", ("q_success", "q_fail", "q_checking")),),
    fields=(
        _field("attempt_id", T, "Attempt id (a UUID)", source="id"),
        _field("material_id", INT, "Id of the test material"),
        _field("login", T, "Learner's login"),
        _field("status", T, "Attempt status: fail, completed, checking"),
        _field("number", INT, "Sequence number of the attempt"),
        _field("points", INT, "Points scored"),
        _field("percent", INT, "Percent of the test passed"),
        _field("q_count", INT, "Number of questions"),
        _field("q_success", INT, "Questions answered correctly"),
        _field("q_fail", INT, "Questions answered wrongly"),
        _field("q_checking", INT, "Questions waiting for a manual check"),
        _field("started_at", TS, "When the attempt started"),
        _field("ended_at", TS, "When the attempt ended"),
        _field("created_at", TS, "When the record was created"),
        _field("updated_at", TS, "When the record last changed"),
    ),
)

MATERIAL_STATISTICS = ReportSpec(
    name="material_statistics",
    title="Learning-material statistics",
    method="POST",
    path="/v3/materials/statistic",
    filters=("material_status", "user_status", *_WINDOW_FILTERS),
    # Ids repeat across material types (the vendor's example has 135 as a video, a longread and a
    # document): a material is its type and its id.
    key=("material_id", "material_type", "login"),
    nullable_key=("material_type",),
    change_time="update_at",
    ranges=(
        ("progress", "0", "100"),
        ("points", "0", "material_points"),
        ("material_points", "0", None),
        ("attempts", "0", None),
    ),
    statuses=(
        _USER_STATUSES,
        ("material_status", _PROGRESS_STATUSES),
        ("material_type", MATERIAL_TYPES),
        ("material_visibility", ("active", "hide")),
    ),
    children_key="statistics",
    parents_table="reported_materials",
    parent_key=("material_id", "material_type"),
    parent_fields=(
        _field("material_id", INT, "Id of the learning material (unique within its type only)", source="id"),
        _field("material_type", T, f"Material type: {', '.join(MATERIAL_TYPES)}", source="type"),
        _field("material_name", T, "Name of the material", source="name"),
        _field("material_points", INT, "Maximum points for the material (null if it has none)", source="points"),
        _field(
            "material_visibility",
            T,
            "The material's own status: active, hide (what the API's material_status filter selects)",
            source="status",
        ),
    ),
    fields=(
        _field("login", T, "Learner's login"),
        _field("user_status", T, "Learner's account status: active, blocked"),
        _field(
            "material_status", T, "Learner's status on the material: appointed, in_progress, completed, checking, fail"
        ),
        _field("points", INT, "Points the learner scored on the material"),
        _field("attempts", INT, "Attempts the learner made on the material, a test (null for other types)"),
        _field("progress", INT, "Learner's progress on the material, percent"),
        _field("start_at", TS, "When the learner started the material"),
        _field("end_at", TS, "When the learner finished the material"),
        _field("update_at", TS, "The learner's last activity on the material"),
    ),
)

_COURSE_CONTENT = ("pdf", "link", "html")

COURSE_STATISTICS = ReportSpec(
    name="course_statistics",
    title="Course (training) statistics",
    method="GET",
    path="/v2/trainings/statistic",
    filters=_WINDOW_FILTERS,
    key=("material_id", "user_id"),
    change_time="last_activity",
    ranges=(
        ("scorm_percent", "0", "100"),
        ("percent_final_scores", "0", "100"),
        ("user_final_scores", "0", "max_final_scores"),
        ("user_scores", "0", None),
    ),
    statuses=(
        _USER_STATUSES,
        ("scorm_status", ("completed", "not completed", "not started", "Unknown", "passed", "failed")),
    ),
    dynamic_columns=COURSE_DYNAMIC_COLUMNS,
    fields=(
        _field("user_id", INT, "Learner's user id"),
        _field("material_id", INT, "Id of the course material"),
        _field("fio", T, "Learner's full name"),
        _field("user_status", T, "Learner's account status: active, blocked"),
        _field("login", T, "Learner's login"),
        _field("start_time", TS, "When the learner started the course"),
        _field("complete_date", TS, "When the learner completed the course"),
        _field("total_time", INT, "Total time spent on the course, seconds"),
        _field("course_name", T, "Name of the course", source="name"),
        _field("is_required", INT, "1 if the course is required, else 0"),
        _field("user_scores", INT, "Points the learner scored"),
        _field("max_interaction_scores", INT, "Maximum points for interactive inserts"),
        *(
            field
            for content in _COURSE_CONTENT
            for field in (
                _field(f"{content}_viewed", INT, f"{content.upper()} materials of the course viewed"),
                _field(f"{content}_total", INT, f"{content.upper()} materials in the course"),
            )
        ),
        _field("scorm_total_time", INT, "Time spent on the SCORM material"),
        _field("scorm_status", T, "SCORM status: completed, not completed, not started, Unknown, passed, failed"),
        _field("scorm_percent", INT, "Percent of the SCORM material passed"),
        _field("user_final_scores", INT, "Points scored in the final test"),
        _field("max_final_scores", INT, "Maximum points of the final test"),
        _field("percent_final_scores", INT, "Percent of the final test passed"),
        _field("last_activity", TS, "The learner's last activity on the course"),
        _field("current_turn", INT, "Number of the current final-test attempt"),
        _field("turns_count", INT, "Number of final-test attempts"),
        _field("filled_type", T, "Source that filled the record"),
        _field("group_region", T, "Group: region"),
        _field("group_city", T, "Group: city"),
        _field("group_role", T, "Group: role"),
        _field("group_position", T, "Group: position"),
        _field("group_team", T, "Group: team"),
        _field("group_department", T, "Group: department"),
        _field("group_function", T, "Group: function"),
    ),
)


PROGRAM_STATISTICS = ReportSpec(
    name="program_statistics",
    title="Learning-programme statistics",
    method="GET",
    path="/v3/learning-programmes/statistic",
    filters=("program_status", "material_status", "user_status", "include", *_WINDOW_FILTERS),
    key=("program_id", "login"),
    change_time="active_at",
    ranges=(("progress", "0", "100"), ("points", "0", "program_points"), ("program_points", "0", None)),
    statuses=(_USER_STATUSES, ("program_status", _PROGRESS_STATUSES)),
    children_key="statistics",
    parents_table="reported_programs",
    parent_key=("program_id",),
    parent_fields=(
        _field("program_id", INT, "Id of the learning programme", source="id"),
        _field("program_name", T, "Name of the programme", source="name"),
        _field("deadline_type", T, "Type of the recommended completion date"),
        _field("deadline_at", TS, "The programme's recommended completion date (sent as unix time or as a date-time)"),
        _field("deadline_period_at", T, "Period of a relative completion date"),
        _field("program_points", INT, "Maximum points for the programme", source="points"),
        *(
            _field(f"materials_{kind}", INT, f"{kind.upper()} materials in the programme", source=f"materials.{kind}")
            for kind in MATERIAL_TYPES
        ),
        _field("materials_total", INT, "Materials in the programme", source="materials.total"),
    ),
    fields=(
        _field("login", T, "Learner's login"),
        _field("user_status", T, "Learner's account status: active, blocked"),
        _field(
            "program_status", T, "Learner's status on the programme: appointed, in_progress, completed, checking, fail"
        ),
        _field("progress", INT, "Learner's progress on the programme, percent"),
        _field("points", INT, "Points the learner scored on the programme"),
        _field("start_at", TS, "When the learner started the programme"),
        _field("active_at", TS, "The learner's last activity on the programme"),
        _field("end_at", TS, "When the learner finished the programme"),
        _field("passed_at_time", B, "Whether the programme was completed on time"),
        # The same name as the programme's deadline_at, one level down: the learner's own date.
        _field(
            "learner_deadline_at",
            TS,
            "The learner's own deadline on the programme (null: none set; the programme's is deadline_at)",
            source="deadline_at",
        ),
        *(
            _field(f"completed_{kind}", INT, f"{kind.upper()} materials the learner completed", source=kind)
            for kind in MATERIAL_TYPES
        ),
    ),
)

REPORTS: tuple[ReportSpec, ...] = (ATTEMPTS, MATERIAL_STATISTICS, COURSE_STATISTICS, PROGRAM_STATISTICS)
REPORTS_BY_NAME = {spec.name: spec for spec in REPORTS}
# Every table the reports fill: each report's own, and a nested report's table of parents.
REPORT_TABLES: tuple[ReportSpec, ...] = tuple(
    table for spec in REPORTS for table in (spec, spec.parents) if table is not None
)
