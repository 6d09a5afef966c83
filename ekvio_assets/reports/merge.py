"""Type staged rows in DuckDB and merge them into a report table, in one transaction.

DuckDB reads the staged rows with an explicit schema (every value as text), converts each column
to its documented type, sets aside the rows it cannot read (table `rejected_records`, with the
fields that failed and the raw values), keeps the newest version of each key, and merges by key:
a row is written only when its data differ and its change time is not older than the stored one,
so re-running a load changes nothing and an older file never rolls a newer row back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb

from ekvio_assets.reports.specs import FieldType, ReportSpec
from ekvio_assets.reports.staging import EXTRA_FIELDS, MALFORMED, ORDINAL, StagedFile
from ekvio_assets.storage.sql import fetch_count, literal, quote, row_count

CHANGED_AT = "_changed_at"
LINEAGE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    (CHANGED_AT, "TIMESTAMPTZ", "Change time that ordered this version (the record's own, else the window's end or the fetch time)"),
    ("_window_start", "TIMESTAMPTZ", "Start of the export window the row came from (null: full export)"),
    ("_window_end", "TIMESTAMPTZ", "End of the export window the row came from (null: full export)"),
    ("_fetched_at", "TIMESTAMPTZ", "When the export that brought this version was requested"),
    ("_task_id", "VARCHAR", "Ekvio task id of that export"),
    ("_raw_file", "VARCHAR", "Archived raw file of that export"),
)
EXTRA_FIELDS_DESCRIPTION = "Fields the API sent that are not documented, as a JSON object"
REJECTS_TABLE = "rejected_records"
LOADS_TABLE = "report_loads"

_SETUP_SQL = f"""
CREATE TEMP MACRO IF NOT EXISTS ekvio_blank(v) AS nullif(trim(v), '');
CREATE TEMP MACRO IF NOT EXISTS ekvio_integer(v) AS
    CASE WHEN TRY_CAST(ekvio_blank(v) AS DOUBLE) = TRY_CAST(ekvio_blank(v) AS BIGINT)
         THEN TRY_CAST(ekvio_blank(v) AS BIGINT) END;
CREATE TEMP MACRO IF NOT EXISTS ekvio_boolean(v) AS TRY_CAST(ekvio_blank(v) AS BOOLEAN);
CREATE TEMP MACRO IF NOT EXISTS ekvio_timestamp(v) AS
    CASE WHEN regexp_full_match(trim(v), '-?[0-9]{{1,11}}(\\.[0-9]+)?')
         THEN to_timestamp(TRY_CAST(trim(v) AS DOUBLE))
         WHEN regexp_full_match(trim(v), '[0-9]{{12,13}}')
         THEN to_timestamp(TRY_CAST(trim(v) AS DOUBLE) / 1000)
         ELSE TRY_CAST(ekvio_blank(v) AS TIMESTAMPTZ) END;
CREATE TABLE IF NOT EXISTS {REJECTS_TABLE} (
    report VARCHAR, task_id VARCHAR, raw_file VARCHAR, problems VARCHAR[], record JSON, rejected_at TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS {LOADS_TABLE} (
    report VARCHAR, task_id VARCHAR, raw_file VARCHAR, window_start TIMESTAMPTZ, window_end TIMESTAMPTZ,
    fetched_at TIMESTAMPTZ, loaded_at TIMESTAMPTZ, rows_in_file BIGINT, inserted BIGINT, updated BIGINT,
    rejected BIGINT, duplicates BIGINT
);
"""

# Unix times come in seconds (up to 11 digits) or milliseconds (12-13 digits); longer numbers are
# not instants and fall through to a failed cast, i.e. a reject, instead of an out-of-range error.
_CONVERSIONS = {
    FieldType.TEXT: "{}",
    FieldType.INTEGER: "ekvio_integer({})",
    FieldType.BOOLEAN: "ekvio_boolean({})",
    FieldType.TIMESTAMP: "ekvio_timestamp({})",
}

_READABLE_TYPE = {
    FieldType.INTEGER: "an integer",
    FieldType.BOOLEAN: "a boolean",
    FieldType.TIMESTAMP: "a date-time",
}


@dataclass(frozen=True)
class Lineage:
    task_id: str
    raw_file: Path
    fetched_at: datetime
    window_start: datetime | None
    window_end: datetime | None


@dataclass(frozen=True)
class MergeOutcome:
    rows_in_file: int
    inserted: int
    updated: int
    rejected: int
    duplicates: int
    table_rows: int
    # Rows the table held for the export's window (by change time) before this load: what the
    # earlier refreshes of that window brought, to compare the export's size against.
    rows_held_for_window: int


def prepare(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(_SETUP_SQL)


def ensure_table(con: duckdb.DuckDBPyConnection, spec: ReportSpec, dynamic_columns: tuple[str, ...] = ()) -> None:
    """Create the report table, or add the columns a newer spec or a company's data brings."""
    columns = [(field.column, field.type.duckdb_type, field.description) for field in spec.columns]
    columns += [(name, "VARCHAR", "Company-specific field") for name in dynamic_columns]
    columns += [(EXTRA_FIELDS, "JSON", EXTRA_FIELDS_DESCRIPTION), *LINEAGE_COLUMNS]
    table = quote(spec.name)
    first, *rest = columns
    con.execute(f"CREATE TABLE IF NOT EXISTS {table} ({quote(first[0])} {first[1]})")
    for name, type_, _ in rest:
        con.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {quote(name)} {type_}")
    for name, _, description in columns:
        con.execute(f"COMMENT ON COLUMN {table}.{quote(name)} IS {literal(description)}")


def merge_staged(
    con: duckdb.DuckDBPyConnection, spec: ReportSpec, staged: StagedFile, lineage: Lineage
) -> MergeOutcome:
    """Load one staged file into the report table; the caller owns the transaction."""
    prepare(con)
    ensure_table(con, spec, staged.dynamic_columns)
    raw_columns = [field.column for field in spec.columns] + list(staged.dynamic_columns)
    schema = ", ".join(
        f"{literal(name)}: 'VARCHAR'" for name in [*raw_columns, MALFORMED]
    ) + f", {literal(EXTRA_FIELDS)}: 'JSON', {literal(ORDINAL)}: 'BIGINT'"
    con.execute(
        "CREATE OR REPLACE TEMP TABLE ekvio_staged AS SELECT * FROM read_json("
        f"{literal(str(staged.path))}, format = 'newline_delimited', columns = {{{schema}}})"
    )
    con.execute(f"CREATE OR REPLACE TEMP TABLE ekvio_typed AS {_typed_select(spec, staged.dynamic_columns)}")
    con.execute(
        f"INSERT INTO {REJECTS_TABLE} SELECT ?, ?, ?, t._problems, to_json(s), now() "
        "FROM ekvio_typed t JOIN ekvio_staged s USING (_ordinal) WHERE len(t._problems) > 0",
        [spec.name, lineage.task_id, str(lineage.raw_file)],
    )
    rejected = fetch_count(con, "SELECT count(*) FROM ekvio_typed WHERE len(_problems) > 0")

    keys = ", ".join(quote(column) for column in spec.key)
    change = quote(spec.change_time)
    fallback = lineage.window_end or lineage.fetched_at
    con.execute(
        "CREATE OR REPLACE TEMP TABLE ekvio_latest AS "
        f"SELECT * EXCLUDE (_problems, _ordinal), coalesce({change}, ?::TIMESTAMPTZ) AS {CHANGED_AT}, "
        "?::TIMESTAMPTZ AS _window_start, ?::TIMESTAMPTZ AS _window_end, ?::TIMESTAMPTZ AS _fetched_at, "
        "?::VARCHAR AS _task_id, ?::VARCHAR AS _raw_file "
        "FROM ekvio_typed WHERE len(_problems) = 0 "
        f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY {change} DESC NULLS LAST, _ordinal DESC) = 1",
        [fallback, lineage.window_start, lineage.window_end, lineage.fetched_at, lineage.task_id, str(lineage.raw_file)],
    )
    readable = staged.rows - rejected
    latest = fetch_count(con, "SELECT count(*) FROM ekvio_latest")

    table = quote(spec.name)
    rows_held_for_window = rows_changed_between(con, spec.name, lineage.window_start, lineage.window_end)
    on_keys = " AND ".join(f"t.{quote(column)} = s.{quote(column)}" for column in spec.key)
    inserted = fetch_count(con, f"SELECT count(*) FROM ekvio_latest s ANTI JOIN {table} t ON {on_keys}")
    data_columns = [*raw_columns, EXTRA_FIELDS]
    all_columns = [*data_columns, *(name for name, _, _ in LINEAGE_COLUMNS)]
    data_differs = (
        f"ROW({', '.join(f's.{quote(c)}' for c in data_columns)}) IS DISTINCT FROM "
        f"ROW({', '.join(f't.{quote(c)}' for c in data_columns)})"
    )
    affected = fetch_count(
        con,
        f"MERGE INTO {table} AS t USING ekvio_latest AS s ON {on_keys} "
        f"WHEN MATCHED AND s.{CHANGED_AT} >= t.{CHANGED_AT} AND {data_differs} THEN UPDATE SET "
        + ", ".join(f"{quote(c)} = s.{quote(c)}" for c in all_columns)
        + f" WHEN NOT MATCHED THEN INSERT ({', '.join(quote(c) for c in all_columns)}) "
        f"VALUES ({', '.join(f's.{quote(c)}' for c in all_columns)})",
    )
    outcome = MergeOutcome(
        rows_in_file=staged.rows,
        inserted=inserted,
        updated=affected - inserted,
        rejected=rejected,
        duplicates=readable - latest,
        table_rows=row_count(con, spec.name),
        rows_held_for_window=rows_held_for_window,
    )
    con.execute(
        f"INSERT INTO {LOADS_TABLE} VALUES (?, ?, ?, ?, ?, ?, now(), ?, ?, ?, ?, ?)",
        [
            spec.name, lineage.task_id, str(lineage.raw_file), lineage.window_start, lineage.window_end,
            lineage.fetched_at, outcome.rows_in_file, outcome.inserted, outcome.updated, outcome.rejected,
            outcome.duplicates,
        ],
    )
    for temp in ("ekvio_staged", "ekvio_typed", "ekvio_latest"):
        con.execute(f"DROP TABLE {temp}")
    return outcome


def rows_changed_between(
    con: duckdb.DuckDBPyConnection, table: str, start: datetime | None, end: datetime | None
) -> int:
    """Rows of a report table whose version changed in [start, end); an open bound is no bound."""
    return rows_changed_per_window(con, table, [(start, end)])[0]


def rows_changed_per_window(
    con: duckdb.DuckDBPyConnection, table: str, windows: Sequence[tuple[datetime | None, datetime | None]]
) -> list[int]:
    """`rows_changed_between` for many windows in one pass over the table, in the windows' order."""
    counts = con.execute(
        "SELECT w.position, count(t.rowid) FROM (SELECT unnest(range(?)) AS position, "
        "unnest(?::TIMESTAMPTZ[]) AS window_start, unnest(?::TIMESTAMPTZ[]) AS window_end) AS w "
        f"LEFT JOIN {quote(table)} AS t ON t.{CHANGED_AT} >= coalesce(w.window_start, '-infinity') "
        f"AND t.{CHANGED_AT} < coalesce(w.window_end, 'infinity') GROUP BY w.position ORDER BY w.position",
        [len(windows), [start for start, _ in windows], [end for _, end in windows]],
    ).fetchall()
    return [count for _, count in counts]


def _typed_select(spec: ReportSpec, dynamic_columns: tuple[str, ...]) -> str:
    selects = [ORDINAL]
    problems = [f"CASE WHEN {MALFORMED} IS NOT NULL THEN 'record is not a JSON object' END"]
    for field in spec.columns:
        column = quote(field.column)
        converted = _CONVERSIONS[field.type].format(column)
        selects.append(f"{converted} AS {column}")
        if field.type is not FieldType.TEXT:
            problems.append(
                f"CASE WHEN ekvio_blank({column}) IS NOT NULL AND {converted} IS NULL "
                f"THEN {literal(f'{field.column} is not {_READABLE_TYPE[field.type]}: ')} || {column} END"
            )
        if field.column in spec.key:
            problems.append(
                f"CASE WHEN {MALFORMED} IS NULL AND {converted} IS NULL "
                f"THEN {literal(f'key field {field.column} is missing')} END"
            )
    selects += [quote(name) for name in dynamic_columns]
    selects.append(EXTRA_FIELDS)
    selects.append(f"list_filter([{', '.join(problems)}], lambda problem: problem IS NOT NULL) AS _problems")
    return f"SELECT {', '.join(selects)} FROM ekvio_staged"
