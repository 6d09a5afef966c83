"""What the models' files must agree on, checked when they load: a disagreement is a `ModelFileError`
naming the file and what to change, before any asset exists.

- A model's SQL is one SELECT whose output columns are its YAML's columns, in order.
- The tables it `reads` (its assets' deps, so the asset graph) are exactly the tables its SQL reads,
  as DuckDB's parse of the SQL lists them, and those its references check.
- The `parameters` it declares are exactly the `$name` parameters its SQL binds.
- A list of columns written out from the report specs (the course report's group columns, a column
  per course content type or per material type) is written out whole: a model that produces one of
  them produces them all, and one whose columns are computed from one of a table's reads them all
  from it; a value added to a report spec fails the load until every model that lists them lists it.
- Its key and references name columns that exist.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ekvio_assets.models.lineage import LineageError, ModelLineage, trace_lineage
from ekvio_assets.reports.specs import COURSE_STATISTICS, MATERIAL_TYPES, REPORT_TABLES
from ekvio_assets.reports.tables import table_columns

if TYPE_CHECKING:
    from ekvio_assets.models.specs import ModelSpec


class ModelFileError(ValueError):
    """A model's files are malformed, or disagree with each other, with its SQL or with the report specs."""


@dataclass(frozen=True)
class WrittenOutList:
    """Columns named after every value of a list in the report specs, which a model writes out in full."""

    what: str
    columns: tuple[str, ...]


def _per_value(template: str, values: Sequence[str], what: str) -> WrittenOutList:
    return WrittenOutList(f"{template.format('<' + what + '>')} for every {what}", tuple(map(template.format, values)))


# The group columns documented in the course report (company-specific ones, such as group_shift, are
# not modelled: they exist only in some companies' tables), and its content types with viewed/total
# counters (pdf, link, html).
GROUP_COLUMNS = tuple(f.column for f in COURSE_STATISTICS.fields if f.column.startswith("group_"))
COURSE_CONTENT_TYPES = tuple(
    f.column.removesuffix("_viewed") for f in COURSE_STATISTICS.fields if f.column.endswith("_viewed")
)
WRITTEN_OUT_LISTS = (
    WrittenOutList("the course report's group columns", GROUP_COLUMNS),
    *(
        _per_value(template, COURSE_CONTENT_TYPES, "course content type")
        for template in ("{}_viewed", "{}_total", "{}_viewed_share")
    ),
    *(_per_value(template, MATERIAL_TYPES, "material type") for template in ("completed_{}", "materials_{}")),
)


def _columns_by_table(models: Iterable[ModelSpec]) -> dict[str, list[str]]:
    """The columns of every table a model may read: the report tables and the models."""
    return {
        **{table.name: [name for name, _, _ in table_columns(table)] for table in REPORT_TABLES},
        **{model.name: list(model.column_names) for model in models},
    }


def check_models(models: Sequence[ModelSpec]) -> dict[str, ModelLineage]:
    """Each model's lineage (what its SQL reads and binds), once it is checked; a `ModelFileError`
    for the first model whose files disagree with its SQL or the report specs."""
    readable = _columns_by_table(models)
    lineages = {}
    for model in models:
        try:
            lineage = trace_lineage(model.sql, readable)
        except LineageError as error:
            raise ModelFileError(f"{model.name}.sql: {error}") from None
        _check_columns(model, lineage)
        _check_named_columns(model, readable)
        _check_reads(model, lineage)
        _check_parameters(model, lineage)
        _check_written_out_lists(model, lineage)
        lineages[model.name] = lineage
    return lineages


def _listed(names: Iterable[str]) -> str:
    return ", ".join(sorted(names)) or "none"


def _check_columns(model: ModelSpec, lineage: ModelLineage) -> None:
    selected = list(lineage.sources_by_column)
    if selected != list(model.column_names):
        raise ModelFileError(
            f"{model.name}.sql selects the columns {', '.join(selected)}; "
            f"{model.name}.yaml declares {', '.join(model.column_names)}"
        )


def _check_named_columns(model: ModelSpec, readable: Mapping[str, Sequence[str]]) -> None:
    """The key columns are the model's, and each reference names columns its tables have."""
    named = [(model.name, column) for column in (*model.key, *model.nullable_key)]
    for r in model.references:
        named += [(r.table, r.column), (r.target, r.target_column)]
        named += [pair for own, target in r.with_columns for pair in ((r.table, own), (r.target, target))]
        named += [(r.target, column) for column, _ in r.target_values]
    unknown = [f"{table}.{column}" for table, column in named if column not in readable.get(table, ())]
    if unknown:
        raise ModelFileError(f"{model.name}.yaml: its key or references name {', '.join(unknown)}, which do not exist")


def _check_reads(model: ModelSpec, lineage: ModelLineage) -> None:
    checked = {table for r in model.references for table in (r.table, r.target) if table != model.name}
    derived = lineage.tables_read | checked
    declared = set(model.reads)
    problems = []
    if derived - declared:
        problems.append(f"it lacks {_listed(derived - declared)}")
    if declared - derived:
        problems.append(f"{_listed(declared - derived)}: read by neither")
    if len(model.reads) != len(declared):
        problems.append("it names a table twice")
    if problems:
        raise ModelFileError(
            f"{model.name}.yaml: reads must be the tables {model.name}.sql reads ({_listed(lineage.tables_read)}) "
            f"and those its references check ({_listed(checked)}); {'; '.join(problems)}"
        )


def _check_parameters(model: ModelSpec, lineage: ModelLineage) -> None:
    if lineage.parameters != set(model.parameters):
        raise ModelFileError(
            f"{model.name}.sql binds the parameters {_listed(lineage.parameters)}; "
            f"{model.name}.yaml declares {_listed(model.parameters)}"
        )


def _check_written_out_lists(model: ModelSpec, lineage: ModelLineage) -> None:
    read: dict[str, set[str]] = defaultdict(set)
    for table, column in (source for sources in lineage.sources_by_column.values() for source in sources):
        read[table].add(column)
    uses: Mapping[str, set[str]] = {
        f"{model.name} produces": set(model.column_names),
        **{f"{model.name}.sql reads from {table}": columns for table, columns in sorted(read.items())},
    }
    for written_out in WRITTEN_OUT_LISTS:
        for use, columns in uses.items():
            found = columns.intersection(written_out.columns)
            if found and len(found) < len(written_out.columns):
                raise ModelFileError(
                    f"{use} {_listed(found)} but not {_listed(set(written_out.columns) - found)}: write out all of "
                    f"{written_out.what} ({', '.join(written_out.columns)}, as the report specs list them)"
                )
