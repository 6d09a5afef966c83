"""The analytics models, read from their files: downstream DuckDB tables built by SQL over the report tables.

Every model is a pair of files in `sql/`, named after its table:

- `NAME.sql`, a plain SELECT producing exactly the model's columns, in order; the statuses and types
  it compares against are DuckDB named parameters (`$completed`), never spliced text;
- `NAME.yaml`, what the SELECT alone does not say: the table's description, its grain (`key`, and
  `nullable_key` for key columns whose null is a value of the key), the tables it `reads`, the
  `parameters` it binds, its `references` (foreign-key style checks run after every build; a
  reference's `table` is the model itself and its `target_column` its `column` unless named),
  `reads_the_clock` for a model whose rows depend on when it is built, and every column's name, type
  and description (the factory casts each column to its type and writes the description as the
  column's DuckDB comment).

Why YAML beside the SQL, not a slim Python spec: the pair is the whole model and holds no code, so a
reader who knows SQL finds a model's logic and documentation in two files named after its table, and
can run the SELECT on the analyst file in a DuckDB shell as it stands (`PREPARE` it, `EXECUTE` it with
its parameters; `setup.sql` first for the macros it calls). What must agree with the code
is checked when the files load (`ekvio_assets.models.validation`): the tables a model reads, the
columns its SELECT gives, the parameters it binds, and the column lists written out from the report
specs (a group column or a material type added to a report spec fails the load until every model
that lists them lists it too).

Conventions shared by every model:

- Joins go on integer ids (`material_id`, `program_id`, `user_id`) and on `login`.
- "Latest" values of a material, course or programme (name, type, points, totals) come from its
  most recently changed report row (`_changed_at`, the change time that ordered the merge).
- A learner's `user_id`, `fio` and `group_*` values exist only in the course report: they come from
  the learner's most recently changed course row, and are null for a learner without courses.
- Shares are fractions in [0, 1] (not percents) and are null when there is nothing to share
  (a course without PDFs has a null `pdf_viewed_share`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from ekvio_assets.models.lineage import ModelLineage
from ekvio_assets.models.validation import ModelFileError, check_models

MODELS_DIR = Path(__file__).with_name("sql")
# In the order the CLI lists them: the dimensions, the facts, the summary.
MODEL_NAMES = (
    "learners",
    "materials",
    "courses",
    "programs",
    "learner_material_progress",
    "learner_course_progress",
    "learner_program_progress",
    "learner_summary",
)

# Status and type values the SQL compares against, bound as named parameters of those names.
COMPLETED, FAIL, APPOINTED, TEST = "completed", "fail", "appointed", "test"
PARAMETER_VALUES: Mapping[str, object] = MappingProxyType(
    {"completed": COMPLETED, "fail": FAIL, "appointed": APPOINTED, "test": TEST}
)

# Run on the model's connection before its SELECT (the macros the models' SQL calls).
SETUP_SQL = Path(__file__).with_name("setup.sql").read_text(encoding="utf-8")


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


# libyaml's parser where PyYAML has it: four times faster, and every process that loads the
# definitions reads these files.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_REQUIRED = frozenset({"description", "key", "reads", "columns"})
_OPTIONAL = frozenset({"nullable_key", "parameters", "references", "reads_the_clock"})
_REFERENCE_FIELDS = frozenset({"table", "column", "target", "target_column", "with_columns", "target_values"})


def _fields(value: Any, required: frozenset[str], optional: frozenset[str], where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ModelFileError(f"{where}: expected a mapping with {', '.join(sorted(required))}")
    problems = []
    if missing := required - value.keys():
        problems.append(f"missing {', '.join(sorted(missing))}")
    if unknown := value.keys() - required - optional:
        problems.append(f"unknown {', '.join(sorted(unknown))} (known: {', '.join(sorted(required | optional))})")
    if problems:
        raise ModelFileError(f"{where}: {'; '.join(problems)}")
    return value


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ModelFileError(f"{where}: expected text")
    return value


def _names(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ModelFileError(f"{where}: expected a list of names")
    return tuple(_text(item, where) for item in value)


def _pairs(value: Any, where: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        raise ModelFileError(f"{where}: expected a mapping of names")
    return tuple((_text(own, where), _text(other, where)) for own, other in value.items())


def _reference(value: Any, model: str, where: str) -> Reference:
    """A reference as written: `table` is the model itself unless named, `target_column` is `column`."""
    found = _fields(value, frozenset({"column", "target"}), _REFERENCE_FIELDS, where)
    column = _text(found["column"], where)
    return Reference(
        table=_text(found.get("table", model), where),
        column=column,
        target=_text(found["target"], where),
        target_column=_text(found.get("target_column", column), where),
        with_columns=_pairs(found.get("with_columns", {}), f"{where} with_columns"),
        target_values=_pairs(found.get("target_values", {}), f"{where} target_values"),
    )


def _parameters(names: tuple[str, ...], where: str) -> Mapping[str, object]:
    unknown = [name for name in names if name not in PARAMETER_VALUES]
    if unknown:
        raise ModelFileError(f"{where}: unknown {', '.join(unknown)} (known: {', '.join(PARAMETER_VALUES)})")
    return MappingProxyType({name: PARAMETER_VALUES[name] for name in names})


def load_model(directory: Path, name: str) -> ModelSpec:
    """The model `name` as its two files in `directory` describe it (checked for their shape only)."""
    path = directory / f"{name}.yaml"
    try:
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=_YAML_LOADER)
    except yaml.YAMLError as error:
        raise ModelFileError(f"{path.name}: not YAML: {error}") from None
    found = _fields(document, _REQUIRED, _OPTIONAL, path.name)
    if not isinstance(found["columns"], list):
        raise ModelFileError(f"{path.name} columns: expected a list of columns")
    columns = []
    for index, column in enumerate(found["columns"]):
        where = f"{path.name} column {index + 1}"
        written = _fields(column, frozenset({"name", "type", "description"}), frozenset(), where)
        columns.append(ModelColumn(*(_text(written[part], where) for part in ("name", "type", "description"))))
    references = found.get("references", [])
    if not isinstance(references, list):
        raise ModelFileError(f"{path.name} references: expected a list of references")
    reads_the_clock = found.get("reads_the_clock", False)
    if not isinstance(reads_the_clock, bool):
        raise ModelFileError(f"{path.name} reads_the_clock: expected true or false")
    return ModelSpec(
        name=name,
        description=_text(found["description"], f"{path.name} description"),
        key=_names(found["key"], f"{path.name} key"),
        reads=_names(found["reads"], f"{path.name} reads"),
        columns=tuple(columns),
        sql=(directory / f"{name}.sql").read_text(encoding="utf-8"),
        parameters=_parameters(
            _names(found.get("parameters", []), f"{path.name} parameters"), f"{path.name} parameters"
        ),
        nullable_key=_names(found.get("nullable_key", []), f"{path.name} nullable_key"),
        references=tuple(
            _reference(reference, name, f"{path.name} reference {index + 1}")
            for index, reference in enumerate(references)
        ),
        reads_the_clock=reads_the_clock,
    )


def load_models(directory: Path, names: tuple[str, ...]) -> tuple[tuple[ModelSpec, ...], dict[str, ModelLineage]]:
    """The models `names`, each from its pair of files in `directory`, checked against their SQL and
    the report specs, and their lineage; every model file there must be one of them."""
    for suffix in (".sql", ".yaml"):
        stems = {path.stem for path in directory.glob(f"*{suffix}")}
        if missing := set(names) - stems:
            raise ModelFileError(f"{directory}: no {suffix} file for the models {', '.join(sorted(missing))}")
        if unlisted := stems - set(names):
            raise ModelFileError(
                f"{directory}: {', '.join(sorted(unlisted))} ({suffix}) are no models: name them in MODEL_NAMES"
            )
    models = tuple(load_model(directory, name) for name in names)
    return models, check_models(models)


# MODEL_LINEAGE: what DuckDB's parse of each model's SQL says (the tables it reads, where each
# column comes from), traced once, when the files load.
MODELS, MODEL_LINEAGE = load_models(MODELS_DIR, MODEL_NAMES)
MODELS_BY_NAME = {spec.name: spec for spec in MODELS}
