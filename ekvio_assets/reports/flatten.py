"""Flatten the staged records of a report file, in SQL, into the rows of its tables.

`flatten` turns the records into one row per table row: the raw text of every documented field
under its column name (typing happens in `merge`), the company-specific dynamic columns under their
own names, every undocumented field in `extra_fields`, and a malformed record or child as its JSON
text in `_malformed`, so nothing the API sent is dropped. A row's `_record` and `_child` give its
place in the file.

Each record is parsed in place into a struct (documented values as text, undocumented fields as
JSON, children as JSON texts), after a cheaper reading of every record's keys, which says which
undocumented fields there are and where a value is null rather than missing. A nested report's
children become rows of `ekvio_rows`, a JSON transform and a merge patch per child. DuckDB reads
JSON lines on all threads: there `ekvio_rows` is a view, which the typing step reads straight
from the file (see STREAMED_COLUMNS); a JSON array on one thread: there `ekvio_rows` is a table,
read once, that the typing step reads on all threads. A flat report's records, numbered by their
order, are read from JSON lines into a table first.
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from dataclasses import dataclass

import duckdb

from ekvio_assets.reports.object_sql import ObjectSql, source_tree, varchar_list
from ekvio_assets.reports.specs import ReportSpec
from ekvio_assets.reports.staging import StagedFile
from ekvio_assets.storage.sql import fetch_count, literal, quote, setting

EXTRA_FIELDS = "extra_fields"
MALFORMED = "_malformed"
RECORD_NUMBER = "_record"
CHILD_NUMBER = "_child"
PARENT_EXTRA_PREFIX = "parent."

_RECORD_KEYS = "ekvio_record_keys"
_ROWS = "ekvio_rows"
_ROWS_VIEW = "ekvio_rows_view"
_STAGED_VIEW = "ekvio_staged_view"
# A join of the records to their keys hashes the keys, whatever the estimates: the optimizer
# guesses the JSON reader's output small and would hash every record with its children.
_KEYS_HASHED = "build_side_probe_side"
# The typing step reads JSON lines straight from the file for a report of at most this many columns:
# a wider one's chunks of records and row groups in the making, on every thread at once, would
# outgrow the load's memory limit; its rows go through `ekvio_rows` as a table.
STREAMED_COLUMNS = 20
_STAGED = "ekvio_staged"
_PARENTS = "ekvio_parents"
_RAW_RECORDS = "ekvio_raw_records"
_ALL_RECORD_KEYS = "ekvio_all_record_keys"
_RECORDS = "ekvio_records"
_RECORD_TEXTS = "ekvio_record_texts"


class StagedLayoutUnreadable(Exception):
    """The staged copy cannot be read as it is laid out; staged record by record, it can."""


@dataclass(frozen=True)
class FlattenedFile:
    """The rows of a file's report table, and for a nested report the rows of its parents' table:
    every parent object of the file, one row each, with or without children."""

    rows: StagedRows
    parents: StagedRows | None


@dataclass(frozen=True)
class StagedRows:
    """The staged rows as a query (`_record`, `_child`, the raw text of every documented and
    dynamic column, `_malformed`, `extra_fields`) over temporary tables, and the dynamic columns."""

    query: str
    dynamic_columns: tuple[str, ...]

    def reading(self, con: duckdb.DuckDBPyConnection, *disabled_optimizers: str) -> AbstractContextManager[None]:
        """A block whose statements read `query`, with the optimizers it needs disabled (and these)."""
        return setting(con, "disabled_optimizers", ",".join((_KEYS_HASHED, *disabled_optimizers)))


def flatten(con: duckdb.DuckDBPyConnection, spec: ReportSpec, staged: StagedFile) -> FlattenedFile:
    """Flatten the staged records into temporary tables. Run outside any transaction: a statement
    that fails here leaves nothing to roll back. A copy the reader cannot take raises the reader's
    error or `StagedLayoutUnreadable`; `staged.with_staged_rows` stages such a file again."""
    drop_flattened(con)
    record = _record_object(spec, staged)
    records_of = _RecordReader(staged)
    # The keys of each record, kept where they say more than documented values: undocumented
    # fields (in their order), subobjects, dynamic columns. A nested report's few big records are
    # read as maps of nulls: a parse in place, no values; a flat report's many small records by
    # `json_keys`, which is faster per record than building a map.
    json_type, keys = ("""MAP(VARCHAR, "NULL")""", "map_keys(json)") if spec.is_nested else (None, "json_keys(json)")
    notable = f"list_filter(all_keys, lambda k: {record.notable_key_sql('k')})"
    # The reader takes a record that is JSON null for a null struct and a null map, unlike any
    # other malformed record; its null keys mark it.
    con.execute(f"CREATE TEMP TABLE {_RECORD_KEYS} AS {records_of.record_keys(con, json_type, keys, notable)}")
    con.execute(f"DROP TABLE IF EXISTS {_ALL_RECORD_KEYS}")
    found = [
        key
        for (key,) in con.execute(
            f"SELECT DISTINCT key FROM (SELECT unnest(keys) AS key FROM {_RECORD_KEYS}) ORDER BY key"
        ).fetchall()
    ]
    record = record.with_fields(
        undocumented=tuple(key for key in found if record.is_undocumented(key)),
        dynamic=tuple(key for key in found if record.is_dynamic(key)),
    )
    # A struct's member names are case-insensitive: an undocumented field named like another member
    # but for case (group_Region beside group_region) cannot be one. The few records holding such a
    # field keep their JSON text, and their undocumented fields are read from it.
    apart = record.case_collisions()
    record = record.with_fields(
        undocumented=tuple(key for key in record.undocumented if key not in apart), dynamic=record.dynamic
    )
    con.execute(
        f"CREATE TEMP TABLE {_RAW_RECORDS} AS SELECT record_number, json AS raw FROM ({records_of.texts(con)}) "
        f"WHERE list_has_any(json_keys(json), {varchar_list(sorted(apart))})"
        if apart
        else f"CREATE TEMP TABLE {_RAW_RECORDS} (record_number BIGINT, raw JSON)"
    )

    def records(read_as: ObjectSql) -> str:
        return (
            f"SELECT r.record_number, r.json AS record, k.keys, w.raw FROM ({records_of.structs(con, read_as)}) r "
            f"LEFT JOIN {_RECORD_KEYS} k USING (record_number) LEFT JOIN {_RAW_RECORDS} w USING (record_number)"
        )

    with setting(con, "disabled_optimizers", _KEYS_HASHED):
        if spec.children_key is None:
            relation = _STAGED_VIEW if staged.lines else _STAGED
            return FlattenedFile(_flat_rows(con, record, records(record), relation, as_view=staged.lines), None)
        # The parents, read apart from their children: a parent without any is still a material
        # or a programme. A record that is not an object is the report table's reject alone.
        parent = record.without_children()
        parents = _flat_rows(con, parent, records(parent), _PARENTS, as_view=False, objects_only=True)
        streamed = staged.lines and len(spec.columns) <= STREAMED_COLUMNS
        rows = _child_rows(con, spec, _create_rows(con, spec.children_key, record, records(record), as_view=streamed))
        return FlattenedFile(rows, parents)


def drop_flattened(con: duckdb.DuckDBPyConnection) -> None:
    tables = (_ALL_RECORD_KEYS, _RECORD_KEYS, _RECORD_TEXTS, _RAW_RECORDS, _RECORDS, _ROWS, _STAGED, _PARENTS)
    drops = [f"DROP VIEW IF EXISTS {view};" for view in (_ROWS_VIEW, _STAGED_VIEW)]
    drops += [f"DROP TABLE IF EXISTS {table};" for table in tables]
    con.execute(" ".join(drops))


def _record_object(spec: ReportSpec, staged: StagedFile) -> ObjectSql:
    if spec.is_nested:
        return ObjectSql(
            source_tree(spec.parent_fields),
            children_key=spec.children_key,
            malformed_key=staged.malformed_key,
            number_key=staged.number_key,
        )
    return ObjectSql(
        source_tree(spec.fields),
        dynamic_pattern=spec.dynamic_columns,
        malformed_key=staged.malformed_key,
        number_key=staged.number_key,
    )


class _RecordReader:
    """SQL reading the staged records with `record_number`, their place in the file: their order
    in an array file, which the reader reads on one thread; in a JSON lines file, which it reads on
    all threads, the number a nested report's records hold, else the order the reader keeps when
    asked to, numbering the rows of a table it fills."""

    def __init__(self, staged: StagedFile) -> None:
        self._path = literal(str(staged.path))
        self._lines = staged.lines
        self._number_key = staged.number_key
        self._separators = staged.separators
        self._format = "'newline_delimited'" if staged.lines else "'array'"

    def structs(self, con: duckdb.DuckDBPyConnection, record: ObjectSql) -> str:
        """`record_number, json`: each record as the object's struct."""
        if self._number_key is not None:
            read = self.read(record.struct_type())
            return f"SELECT json[{literal(self._number_key)}] AS record_number, json FROM {read}"
        return self._numbered(con, "json", self.read(record.struct_type()), _RECORDS)

    def texts(self, con: duckdb.DuckDBPyConnection) -> str:
        """`record_number, json`: each record's JSON text."""
        if self._number_key is not None:
            number = literal("$." + json.dumps(self._number_key))
            return f"SELECT json_extract(json, {number})::BIGINT AS record_number, json FROM {self.read(None)}"
        return self._numbered(con, "json", self.read(None), _RECORD_TEXTS)

    def record_keys(self, con: duckdb.DuckDBPyConnection, json_type: str | None, keys: str, notable: str) -> str:
        """`record_number, keys`: `notable` (SQL over `all_keys`, the `keys` of a record read as
        `json_type`, JSON text if None) of each record that has some, or that is JSON null."""
        kept = f"all_keys IS NULL OR len({notable}) > 0"
        # A record's keys do not say its number (a map of nulls holds no values).
        numbered = self._numbered(
            con,
            f"{kept} AS kept, CASE WHEN {kept} THEN {notable} END AS keys",
            self.read(json_type),
            _ALL_RECORD_KEYS,
            f"{keys} AS all_keys",
        )
        if self._lines and self._number_key is None:
            records = fetch_count(con, f"SELECT count(*) FROM {_ALL_RECORD_KEYS}")
            if records != self._separators + 1:
                raise StagedLayoutUnreadable(
                    f"the staged lines hold {records} records between {self._separators} commas: not one record a line"
                )
        return f"SELECT record_number, keys FROM ({numbered}) WHERE kept"

    def read(self, json_type: str | None) -> str:
        """The table function that reads each record as `json` of `json_type` (JSON text if None)."""
        if json_type is None:
            return f"read_json_objects({self._path}, format = {self._format})"
        return (
            f"read_json({self._path}, format = {self._format}, records = false, "
            f"columns = {{'json': {literal(json_type)}}})"
        )

    def _numbered(
        self, con: duckdb.DuckDBPyConnection, columns: str, read: str, table: str, inner: str = "json"
    ) -> str:
        """`record_number, <columns>` over `inner` of the records `read` (a table function) reads,
        numbered by their order; in a JSON lines file through `table`."""
        if not self._lines:
            return (
                f"SELECT record_number, {columns} FROM "
                f"(SELECT ordinality - 1 AS record_number, {inner} FROM {read} WITH ORDINALITY)"
            )
        with setting(con, "preserve_insertion_order", "true"):
            con.execute(f"CREATE TEMP TABLE {table} AS SELECT {columns} FROM (SELECT {inner} FROM {read})")
        return f"SELECT rowid AS record_number, * FROM {table}"


def _flat_rows(
    con: duckdb.DuckDBPyConnection,
    record: ObjectSql,
    records: str,
    relation: str,
    *,
    as_view: bool,
    objects_only: bool = False,
) -> StagedRows:
    """Staged rows one per record, read from the records' structs, as the table or (where the
    records are a table already) the view `relation`; with `objects_only`, none for a record that
    is not an object."""
    fragments = record.fragments("record", "coalesce(keys, [])", "raw")
    malformed = record.malformed_text("record")
    _create_relation(
        con,
        relation,
        as_view,
        f"SELECT record_number AS {RECORD_NUMBER}, 0 AS {CHILD_NUMBER}, "
        + "".join(f"{expression} AS {quote(name)}, " for name, expression in record.columns("record"))
        + f"CASE WHEN record IS NULL THEN 'null' ELSE {malformed} END AS {MALFORMED}, "
        f"{_extras_sql('[]::VARCHAR[]', 'fragments')} AS {EXTRA_FIELDS} "
        f"FROM (SELECT *, {fragments} AS fragments FROM ({records}))"
        + (f" WHERE record IS NOT NULL AND {malformed} IS NULL" if objects_only else ""),
    )
    return StagedRows(f"SELECT * FROM {relation}", record.dynamic)


def _create_rows(
    con: duckdb.DuckDBPyConnection, children_key: str, parent: ObjectSql, records: str, *, as_view: bool
) -> str:
    """`ekvio_rows`, as a table or a view, named as returned: each child of each record with its
    parent's columns and undocumented fields."""
    columns = parent.columns("record")
    fragments = parent.fragments("record", "coalesce(keys, [])", "raw", PARENT_EXTRA_PREFIX)
    malformed = parent.malformed_text("record")
    # The children list goes to unnest as it is: any expression around it would copy every list.
    children = f"record[{literal(children_key)}]"
    # The parent's values are computed per record, below the unnest that repeats them per child.
    parents = (
        "SELECT record_number, "
        + "".join(f"{expression} AS {quote(name)}, " for name, expression in columns)
        + f"{malformed} IS NULL AS well_formed, {malformed} AS malformed_record, {fragments} AS parent_fragments, "
        f"{children} AS children FROM ({records})"
    )
    names = "".join(f"{quote(name)}, " for name, _ in columns)
    return _create_relation(
        con,
        (_ROWS_VIEW if as_view else _ROWS),
        as_view,
        f"SELECT record_number, {names}well_formed, malformed_record, parent_fragments, "
        f"unnest(children) AS child, unnest(range(len(children))) AS child_number FROM ({parents}) "
        "UNION ALL SELECT record_number, "
        + "".join(f"NULL AS {quote(name)}, " for name, _ in columns)
        + f"false, 'null', []::VARCHAR[], NULL::JSON, 0 FROM {_RECORD_KEYS} WHERE keys IS NULL",
    )


def _create_relation(con: duckdb.DuckDBPyConnection, name: str, as_view: bool, select: str) -> str:
    """A temporary view or table `name` of `select`; its name."""
    con.execute(f"CREATE TEMP {'VIEW' if as_view else 'TABLE'} {name} AS {select}")
    return name


def _child_rows(con: duckdb.DuckDBPyConnection, spec: ReportSpec, rows: str) -> StagedRows:
    """The staged rows of `ekvio_rows` (`rows`), read from each child's JSON text."""
    child = ObjectSql(source_tree(spec.fields), dynamic_pattern=spec.dynamic_columns)
    if spec.dynamic_columns is not None:
        found = con.execute(
            f"SELECT DISTINCT key FROM (SELECT unnest(json_keys(child)) AS key FROM {rows} WHERE well_formed) "
            "ORDER BY key"
        ).fetchall()
        child = child.with_fields(dynamic=tuple(key for (key,) in found if child.is_dynamic(key)))
    fragments = child.own_fragments("object", "fields")
    # Only an object is read; anything else (or the row of a malformed record) is the row's
    # `_malformed`, with null columns.
    query = (
        f"SELECT record_number AS {RECORD_NUMBER}, child_number AS {CHILD_NUMBER}, "
        + "".join(
            f"CASE WHEN object IS NOT NULL THEN {quote(field.column)} END AS {quote(field.column)}, "
            for field in spec.parent_fields
        )
        + "".join(f"{expression} AS {quote(name)}, " for name, expression in child.columns("fields"))
        + f"CASE WHEN object IS NULL THEN coalesce(malformed_record, child::VARCHAR, 'null') END AS {MALFORMED}, "
        f"CASE WHEN object IS NOT NULL THEN {_extras_sql('parent_fragments', 'child_fragments')} END AS {EXTRA_FIELDS} "
        f"FROM (SELECT *, {fragments} AS child_fragments FROM "
        f"(SELECT *, {child.transform('object')} AS fields FROM "
        f"(SELECT *, CASE WHEN well_formed AND starts_with(child, '{{') THEN child END AS object FROM {rows})))"
    )
    return StagedRows(query, child.dynamic)


def _extras_sql(parent_fragments: str, fragments: str) -> str:
    """`extra_fields`: the parent's undocumented fields then the row's own, as one JSON object."""
    return (
        f"CASE WHEN len({parent_fragments}) > 0 OR len({fragments}) > 0 "
        f"THEN ('{{' || array_to_string({parent_fragments} || {fragments}, ',') || '}}')::JSON END"
    )
