"""The tables a load writes, described once: a report table's comment and columns (documented,
company-specific, undocumented and lineage), and the bookkeeping tables beside the report tables."""

from __future__ import annotations

from dataclasses import dataclass

from ekvio_assets.reports.flatten import EXTRA_FIELDS
from ekvio_assets.reports.specs import REPORTS, ReportSpec
from ekvio_assets.storage.sql import quote

CHANGED_AT = "_changed_at"
LINEAGE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    (
        CHANGED_AT,
        "TIMESTAMPTZ",
        "Change time that ordered this version (the record's own, else the window's end or the fetch time)",
    ),
    ("_window_start", "TIMESTAMPTZ", "Start of the export window the row came from (null: full export)"),
    ("_window_end", "TIMESTAMPTZ", "End of the export window the row came from (null: full export)"),
    ("_fetched_at", "TIMESTAMPTZ", "When the export that brought this version was requested"),
    ("_task_id", "VARCHAR", "Ekvio task id of that export"),
    ("_raw_file", "VARCHAR", "Archived raw file of that export"),
)
EXTRA_FIELDS_DESCRIPTION = "Fields the API sent that are not documented, as a JSON object"
REJECTS_TABLE = "rejected_records"
LOADS_TABLE = "report_loads"
# The row's place among the file's rows, as rejected_records shows it.
ORDINAL = "_ordinal"


@dataclass(frozen=True)
class _Table:
    """A table the loads keep beside the report tables, with its comment and its columns'."""

    name: str
    description: str
    columns: tuple[tuple[str, str, str], ...]

    @property
    def create_sql(self) -> str:
        columns = ", ".join(f"{quote(name)} {type_}" for name, type_, _ in self.columns)
        return f"CREATE TABLE IF NOT EXISTS {quote(self.name)} ({columns});"


BOOKKEEPING_TABLES = (
    _Table(
        REJECTS_TABLE,
        "Records of a result file that could not be read as their documented types or lack their key, set "
        "aside by the load that met them; one row per rejected record.",
        (
            ("report", "VARCHAR", "Table the record was meant for: a report table or its table of parents"),
            ("task_id", "VARCHAR", "Ekvio task id of the export that sent the record"),
            ("raw_file", "VARCHAR", "Archived raw file that holds the record"),
            (
                "problems",
                "VARCHAR[]",
                "Why: each field not of its documented type with its raw value, a missing key field, a record "
                "that is not a JSON object",
            ),
            ("record", "JSON", "The record's raw values as sent, with `_ordinal`, its place among the file's rows"),
            ("rejected_at", "TIMESTAMPTZ", "When the load set the record aside"),
        ),
    ),
    _Table(
        LOADS_TABLE,
        "Every load of a result file into a table (a report table or its table of parents): what the file "
        "held and what the merge changed; one row per load of a table.",
        (
            ("report", "VARCHAR", "Table loaded: a report table or its table of parents"),
            ("task_id", "VARCHAR", "Ekvio task id of the export loaded"),
            ("raw_file", "VARCHAR", "Archived raw file loaded"),
            ("window_start", "TIMESTAMPTZ", "Start of the export's window (null: full export)"),
            ("window_end", "TIMESTAMPTZ", "End of the export's window (null: full export)"),
            ("fetched_at", "TIMESTAMPTZ", "When the export was requested"),
            ("loaded_at", "TIMESTAMPTZ", "When the load ran"),
            ("rows_in_file", "BIGINT", "Rows the file held for the table"),
            ("inserted", "BIGINT", "Rows of new keys added to the table"),
            ("updated", "BIGINT", "Stored rows replaced by a newer or different version"),
            ("rejected", "BIGINT", "Rows set aside in rejected_records"),
            ("duplicates", "BIGINT", "Rows left out because a newer row of the same file had their key"),
        ),
    ),
)
BOOKKEEPING_TABLES_SQL = "\n".join(table.create_sql for table in BOOKKEEPING_TABLES)


def table_columns(spec: ReportSpec, dynamic: tuple[str, ...] = ()) -> list[tuple[str, str, str]]:
    """The report table's columns (name, DuckDB type, description): the documented fields, the
    company's own fields (`dynamic`), the undocumented ones as JSON and the lineage columns."""
    columns = [(field.column, field.type.duckdb_type, field.description) for field in spec.columns]
    columns += [(name, "VARCHAR", "Company-specific field") for name in dynamic]
    return [*columns, (EXTRA_FIELDS, "JSON", EXTRA_FIELDS_DESCRIPTION), *LINEAGE_COLUMNS]


def table_description(table: ReportSpec) -> str:
    """What a table of `REPORT_TABLES` holds and its grain: the Dagster asset's description and the
    DuckDB table's comment."""
    key = " + ".join(table.key)
    for report in REPORTS:
        if report.parents_table == table.name:
            return (
                f"Every parent object of the {report.title} report (with learners in `{report.children_key}` "
                f"or none), one row per {key} with its latest fields, filled by the same exports as `{report.name}`."
            )
    return (
        f"{table.title} from the Ekvio API ({table.method} {table.path}), one row per {key}, "
        f"merged by its change time `{table.change_time}`."
    )
