"""Type staged rows in DuckDB and merge them into a report table, in one transaction.

DuckDB converts each column of the staged rows (`flatten.flatten`, every value as text) to its
documented type (`conversions`), sets aside the rows it cannot read (table `rejected_records`, with the fields that
failed and the raw values), keeps the newest version of each key, and merges by key: a row is
written only when its data differ and its change time is not older than the stored one, so
re-running a load changes nothing and an older file never rolls a newer row back.

A load touches what it brings, not the whole table: an empty table takes the rows straight from the
file (counting them and the unreadable ones in the same pass), a changed row is replaced rather than
updated in place, and the table's columns are altered only when they change.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb

from ekvio_assets.reports.conversions import CONVERSION_MACROS, typed_select
from ekvio_assets.reports.flatten import CHILD_NUMBER, EXTRA_FIELDS, RECORD_NUMBER, StagedRows
from ekvio_assets.reports.specs import ReportSpec
from ekvio_assets.reports.tables import (
    BOOKKEEPING_TABLES,
    BOOKKEEPING_TABLES_SQL,
    CHANGED_AT,
    LINEAGE_COLUMNS,
    LOADS_TABLE,
    ORDINAL,
    REJECTS_TABLE,
    table_columns,
    table_description,
)
from ekvio_assets.storage.sql import fetch_count, literal, one_row, quote, row_count


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
    # No load of the table came before: whatever it brings, no earlier refresh could have.
    first_load: bool = False


def prepare(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(CONVERSION_MACROS + BOOKKEEPING_TABLES_SQL)
    for table in BOOKKEEPING_TABLES:
        _describe(con, table.name, table.description, [(name, description) for name, _, description in table.columns])


def _describe(con: duckdb.DuckDBPyConnection, table: str, description: str, columns: Sequence[tuple[str, str]]) -> None:
    """Comment the table and its columns where their comments differ (a new table, an older spec)."""
    # One catalog query: the table's comment under the name '' (no column has it), then its columns'.
    existing = dict(
        con.execute(
            "SELECT '', coalesce(comment, '') FROM duckdb_tables() WHERE table_name = $table "
            "AND schema_name = current_schema() AND database_name = current_database() "
            "UNION ALL SELECT column_name, coalesce(comment, '') FROM duckdb_columns() WHERE table_name = $table "
            "AND schema_name = current_schema() AND database_name = current_database()",
            {"table": table},
        ).fetchall()
    )
    if existing.get("") != description:
        con.execute(f"COMMENT ON TABLE {quote(table)} IS {literal(description)}")
    for name, text in columns:
        if existing.get(name) != text:
            con.execute(f"COMMENT ON COLUMN {quote(table)}.{quote(name)} IS {literal(text)}")


def ensure_table(con: duckdb.DuckDBPyConnection, spec: ReportSpec, dynamic: tuple[str, ...] = ()) -> None:
    """Create the report table, or add the columns and comments a newer spec or a company's data
    brings; a table that has them all is left alone."""
    columns = table_columns(spec, dynamic)
    table = quote(spec.name)
    existing = {
        name
        for (name,) in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE table_name = ? "
            "AND schema_name = current_schema() AND database_name = current_database()",
            [spec.name],
        ).fetchall()
    }
    if not existing:
        con.execute(f"CREATE TABLE {table} ({', '.join(f'{quote(name)} {type_}' for name, type_, _ in columns)})")
    for name, type_, _ in columns:
        if existing and name not in existing:
            con.execute(f"ALTER TABLE {table} ADD COLUMN {quote(name)} {type_}")
    _describe(con, spec.name, table_description(spec), [(name, description) for name, _, description in columns])


def merge_staged(
    con: duckdb.DuckDBPyConnection, spec: ReportSpec, staged: StagedRows, lineage: Lineage
) -> MergeOutcome:
    """Type the staged rows (`flatten.flatten`) and merge them into the report table; the caller
    owns the transaction."""
    prepare(con)
    ensure_table(con, spec, staged.dynamic_columns)
    load = _Load(spec, staged, lineage)
    table_rows = row_count(con, spec.name)
    if table_rows:
        outcome = load.into_table(con, table_rows)
    else:
        loaded_before = fetch_count(con, f"SELECT count(*) FROM {LOADS_TABLE} WHERE report = ?", [spec.name])
        outcome = dataclasses.replace(load.into_empty_table(con), first_load=not loaded_before)
    con.execute(
        f"INSERT INTO {LOADS_TABLE} VALUES (?, ?, ?, ?, ?, ?, now(), ?, ?, ?, ?, ?)",
        [
            spec.name,
            lineage.task_id,
            str(lineage.raw_file),
            lineage.window_start,
            lineage.window_end,
            lineage.fetched_at,
            outcome.rows_in_file,
            outcome.inserted,
            outcome.updated,
            outcome.rejected,
            outcome.duplicates,
        ],
    )
    return outcome


class _Load:
    """The statements that merge one file's staged rows into a report table."""

    def __init__(self, spec: ReportSpec, staged: StagedRows, lineage: Lineage) -> None:
        self._spec = spec
        self._staged = staged
        self._lineage = lineage
        self._table = quote(spec.name)
        self._typed = typed_select(spec, staged.dynamic_columns, staged.query)
        self._data_columns = [field.column for field in spec.columns] + [*staged.dynamic_columns, EXTRA_FIELDS]
        self._all_columns = [*self._data_columns, *(name for name, _, _ in LINEAGE_COLUMNS)]

    def into_empty_table(self, con: duckdb.DuckDBPyConnection) -> MergeOutcome:
        """Nothing to match against: the rows go straight from the file into the table, without
        being kept aside first, and the unreadable ones out again, which counts them in the same
        pass; a file that holds a key twice is loaded again newest first."""
        # A filter on `_has_problem` stays above the conversions: pushed below them, it would
        # repeat every conversion it reads.
        with self._staged.reading(con, "filter_pushdown"):
            rows = fetch_count(
                con,
                self._insert(self._rows(self._typed, newest_only=False, marking_unreadable=True)),
                self._parameters(),
            )
            # Every readable row has a task id: the statistics of a file without unreadable rows
            # say so, and the delete reads nothing.
            rejected = fetch_count(con, f"DELETE FROM {self._table} WHERE _task_id IS NULL")
            readable = rows - rejected
            if rejected:
                self._set_aside_rejects(con, self._typed)
            inserted = readable
            if self._may_have_duplicate_keys(con):
                con.execute(f"DELETE FROM {self._table}")
                inserted = fetch_count(con, self._insert(self._rows(self._typed, newest_only=True)), self._parameters())
        return MergeOutcome(
            rows_in_file=rows,
            inserted=inserted,
            updated=0,
            rejected=rejected,
            duplicates=readable - inserted,
            table_rows=inserted,
            rows_held_for_window=0,
        )

    def into_table(self, con: duckdb.DuckDBPyConnection, table_rows: int) -> MergeOutcome:
        """Merge by key into the table of `table_rows` rows: a row is written only when its data
        differ and its change time is not older than the stored one."""
        lineage = self._lineage
        # Rows without change times of their own (a report's parents) are held for no window.
        rows_held_for_window = (
            rows_changed_between(con, self._spec.name, lineage.window_start, lineage.window_end)
            if self._spec.change_time
            else 0
        )
        with self._staged.reading(con):
            con.execute(f"CREATE OR REPLACE TEMP TABLE ekvio_typed AS {self._typed}")
        rows, rejected = one_row(con, "SELECT count(*), count(*) FILTER (WHERE _has_problem) FROM ekvio_typed")
        if rejected:
            with self._staged.reading(con):
                self._set_aside_rejects(con, "SELECT * FROM ekvio_typed")
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE ekvio_latest AS {self._rows('SELECT * FROM ekvio_typed', newest_only=True)}",
            self._parameters(),
        )
        con.execute("DROP TABLE ekvio_typed")
        latest = fetch_count(con, "SELECT count(*) FROM ekvio_latest")
        on_keys = " AND ".join(
            f"t.{quote(column)} {'IS NOT DISTINCT FROM' if column in self._spec.nullable_key else '='} "
            f"s.{quote(column)}"
            for column in self._spec.key
        )
        data_differs = (
            f"ROW({', '.join(f's.{quote(c)}' for c in self._data_columns)}) IS DISTINCT FROM "
            f"ROW({', '.join(f't.{quote(c)}' for c in self._data_columns)})"
        )
        # One pass over the table's keys and change times pairs each row with its stored version:
        # older, newer (its change time differs, hence its data), or of the same time, whose data
        # only a second pass, over every column, compares (a window loaded again, not a new day).
        # Rows without change times of their own are of the same time unless older: a later export
        # that shows the same data changes nothing.
        newer = (
            f"WHEN s.{quote(self._spec.change_time)} IS DISTINCT FROM t.{quote(self._spec.change_time)} THEN 'newer' "
            if self._spec.change_time
            else ""
        )
        con.execute(
            f"CREATE TEMP TABLE ekvio_stored AS SELECT s.rowid AS latest_row, t.rowid AS stored_row, "
            f"CASE WHEN s.{CHANGED_AT} < t.{CHANGED_AT} THEN 'older' {newer}ELSE 'same time' END AS version "
            f"FROM ekvio_latest s JOIN {self._table} t ON {on_keys}"
        )
        if fetch_count(con, "SELECT count(*) FROM ekvio_stored WHERE version = 'same time'"):
            con.execute(
                f"UPDATE ekvio_stored m SET version = 'newer' FROM ekvio_latest s, {self._table} t "
                f"WHERE m.version = 'same time' AND s.rowid = m.latest_row AND t.rowid = m.stored_row "
                f"AND {data_differs}"
            )
        # A changed row is deleted and inserted anew rather than updated in place: an update
        # rewrites, at the next checkpoint, every row group it touches (a day's changes touch
        # them all), a delete only marks the row.
        updated = fetch_count(
            con,
            f"DELETE FROM {self._table} WHERE rowid IN (SELECT stored_row FROM ekvio_stored WHERE version = 'newer')",
        )
        written = fetch_count(
            con,
            self._insert(
                f"SELECT {', '.join(f's.{quote(c)}' for c in self._all_columns)} FROM ekvio_latest s "
                "LEFT JOIN ekvio_stored m ON m.latest_row = s.rowid WHERE m.version IS NULL OR m.version = 'newer'"
            ),
        )
        inserted = written - updated
        con.execute("DROP TABLE ekvio_stored; DROP TABLE ekvio_latest")
        return MergeOutcome(
            rows_in_file=rows,
            inserted=inserted,
            updated=updated,
            rejected=rejected,
            duplicates=rows - rejected - latest,
            table_rows=table_rows + inserted,
            rows_held_for_window=rows_held_for_window,
        )

    def _rows(self, typed: str, *, newest_only: bool, marking_unreadable: bool = False) -> str:
        """The readable rows of `typed` with their lineage (parameters: `_parameters`); with
        `newest_only`, one per key: the newest change time, then the later row in the file; with
        `marking_unreadable`, every row, those that cannot be read without a task id."""
        keys = ", ".join(quote(column) for column in self._spec.key)
        # Without change times, every row of the file has the same version: the later one wins.
        change = f"{quote(self._spec.change_time)} DESC NULLS LAST, " if self._spec.change_time else ""
        newest = (
            f" QUALIFY row_number() OVER (PARTITION BY {keys} "
            f"ORDER BY {change}{RECORD_NUMBER} DESC, {CHILD_NUMBER} DESC) = 1"
        )
        data = ", ".join(quote(c) for c in self._data_columns)
        task_id = "CASE WHEN _has_problem THEN NULL ELSE ?::VARCHAR END" if marking_unreadable else "?::VARCHAR"
        return (
            f"SELECT {data}, {self._changed_at} AS {CHANGED_AT}, "
            "?::TIMESTAMPTZ AS _window_start, ?::TIMESTAMPTZ AS _window_end, ?::TIMESTAMPTZ AS _fetched_at, "
            f"{task_id} AS _task_id, ?::VARCHAR AS _raw_file FROM ({typed})"
            + ("" if marking_unreadable else " WHERE NOT _has_problem")
            + (newest if newest_only else "")
        )

    @property
    def _changed_at(self) -> str:
        """SQL of `_changed_at`: the record's own change time, else the moment `_parameters` gives first."""
        if self._spec.change_time is None:
            return "?::TIMESTAMPTZ"
        return f"coalesce({quote(self._spec.change_time)}, ?::TIMESTAMPTZ)"

    def _parameters(self) -> list[object]:
        lineage = self._lineage
        # A record of a window changed in it, by its end at the latest (a full export: its request);
        # a row of a table without change times is as its export showed it when requested.
        default_change = (
            lineage.fetched_at if self._spec.change_time is None else lineage.window_end or lineage.fetched_at
        )
        return [
            default_change,
            lineage.window_start,
            lineage.window_end,
            lineage.fetched_at,
            lineage.task_id,
            str(lineage.raw_file),
        ]

    def _insert(self, rows: str) -> str:
        return f"INSERT INTO {self._table} ({', '.join(quote(c) for c in self._all_columns)}) {rows}"

    def _may_have_duplicate_keys(self, con: duckdb.DuckDBPyConnection) -> bool:
        """Whether two rows share a key's hash: grouping one number is faster than grouping the key,
        and the rare collision only costs the reload that keeps the newest row of each key."""
        keys = ", ".join(quote(column) for column in self._spec.key)
        return (
            con.execute(f"SELECT 1 FROM {self._table} GROUP BY hash({keys}) HAVING count(*) > 1 LIMIT 1").fetchone()
            is not None
        )

    def _set_aside_rejects(self, con: duckdb.DuckDBPyConnection, typed: str) -> None:
        """Copy the rows of `typed` that cannot be read, with their raw values and their place among
        the file's rows, to rejected_records."""
        # A row's place: the rows of the records before its own, then its place among its record's.
        first_rows = (
            f"SELECT {RECORD_NUMBER}, sum(count(*)) OVER (ORDER BY {RECORD_NUMBER}) - count(*) AS first_row "
            f"FROM ({self._staged.query}) GROUP BY {RECORD_NUMBER}"
        )
        con.execute(
            f"INSERT INTO {REJECTS_TABLE} SELECT ?, ?, ?, t._problems, "
            f"to_json(struct_insert(t._raw, {ORDINAL} := f.first_row + t.{CHILD_NUMBER})), now() "
            f"FROM ({typed}) t JOIN ({first_rows}) f USING ({RECORD_NUMBER}) WHERE t._has_problem",
            [self._spec.name, self._lineage.task_id, str(self._lineage.raw_file)],
        )


def rows_changed_between(
    con: duckdb.DuckDBPyConnection, table: str, start: datetime | None, end: datetime | None
) -> int:
    """Rows of a report table whose version changed in [start, end); an open bound is no bound."""
    # A filter rather than `rows_changed_per_window`'s join: it skips the row groups whose change
    # times lie outside the window.
    return fetch_count(
        con,
        f"SELECT count(*) FROM {quote(table)} WHERE {CHANGED_AT} >= coalesce(?::TIMESTAMPTZ, '-infinity') "
        f"AND {CHANGED_AT} < coalesce(?::TIMESTAMPTZ, 'infinity')",
        [start, end],
    )


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
