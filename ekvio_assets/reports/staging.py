"""Stage a downloaded report file for DuckDB, then flatten its records, in SQL, into table rows.

A result file is `{"data": [...], ...}`, hundreds of megabytes for a big company. Its `data` array
is copied into a staging file without parsing it in Python, for DuckDB's JSON reader: byte for byte,
or, for records that come one per line, as JSON lines, which the reader reads on all cores (a
nested report's few big records each with its number under a key of its own).
A file of another shape, or one the reader cannot take as it is (a record that is not an object,
children that are not a list, a key twice in an object, a record over the reader's 16 MB), is
streamed record by record by ijson's C backend into the same kind of file, in a shape the reader
takes: a malformed record becomes an object holding its JSON text under a key of its own, a record
too big is cut in several. A broken file gets its error message there.

`flatten` turns the records into one row per table row: the raw text of every documented field
under its column name (typing happens in `merge`), the company-specific dynamic columns under their
own names, every undocumented field in `extra_fields`, and a malformed record or child as its JSON
text in `_malformed`, so nothing the API sent is dropped. A row's `_record` and `_child` give its
place in the file.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import duckdb
import ijson
import numpy

from ekvio_assets.reports.specs import Field, ReportSpec
from ekvio_assets.storage.sql import fetch_count, literal, quote, setting

EXTRA_FIELDS = "extra_fields"
MALFORMED = "_malformed"
RECORD_NUMBER = "_record"
CHILD_NUMBER = "_child"
PARENT_EXTRA_PREFIX = "parent."

# `{"data": [` at the start of the file, whatever the whitespace.
_DATA_ARRAY_START = re.compile(rb"\A\s*\{\s*\"data\"\s*:\s*\[")
# What follows the `data` array (`]}`, or more top-level keys such as `"include": []`) is looked for
# this far from the end; a file with a longer tail is streamed instead.
_TAIL_BYTES = 64 * 1024
# DuckDB's JSON reader takes records of up to 16 MB (its `maximum_object_size`); a streamed record
# longer than STREAMED_RECORD_CHARACTERS is cut in several.
READER_RECORD_BYTES = 16 << 20
STREAMED_RECORD_CHARACTERS = 4 << 20


class ReportFileError(ValueError):
    """The result file is not a report: broken JSON, an error answer, or no `data` array."""


@dataclass(frozen=True)
class StagedFile:
    """The records of a result file as one JSON array file, in the file's order, or as JSON lines
    that hold their number."""

    path: Path
    # A streamed file's malformed records are objects holding their JSON text under this key,
    # which no record has; a copied file holds the records as they came.
    malformed_key: str | None = None
    # JSON lines (one record a line): a nested report's hold each record's number as the first
    # member of its object, under `number_key`, which no record has; a flat report's hold none,
    # and `separators` says how many commas between records the copy took out.
    lines: bool = False
    number_key: str | None = None
    separators: int = 0

    @property
    def streamed(self) -> bool:
        return self.malformed_key is not None


def copy_report_records(raw_path: Path, staging_path: Path, spec: ReportSpec) -> StagedFile | None:
    """Copy the `data` array of a file that starts with it, unparsed; None for any other file."""
    with raw_path.open("rb") as raw:
        span = _data_array_span(raw, raw_path.stat().st_size)
        if span is None:
            return None
        start, end = span
        number_key = f"ekvio.record.{secrets.token_hex(8)}" if spec.is_nested else None
        with staging_path.open("wb") as staged:
            # A flat report's many small records would cost more to number in Python than the
            # reader saves: they are numbered by their order, which the reader keeps when asked.
            if number_key is not None and _copy_numbered_lines(raw, staged, start + 1, end - 1, number_key):
                return StagedFile(staging_path, lines=True, number_key=number_key)
            if number_key is None and (separators := _copy_lines(raw, staged, start + 1, end - 1)) is not None:
                return StagedFile(staging_path, lines=True, separators=separators)
            staged.seek(0)
            staged.truncate()
            _copy_bytes(raw, staged, start, end - start)
        raw.seek(start)
        empty = end - start <= _TAIL_BYTES and raw.read(end - start)[1:-1].strip() == b""
    if empty:
        # An empty array may come with an error answer beside it.
        _require_data_array(raw_path)
    return StagedFile(staging_path)


_LINES_CHUNK = 8 << 20
# A line this long is copied by the kernel rather than written from the buffer it was read into.
_COPIED_LINE_BYTES = 64 << 10
_BLANK = b" \t\r"


def _copy_numbered_lines(raw: BinaryIO, staged: BinaryIO, start: int, end: int, number_key: str) -> bool:
    """Write the records between `start` and `end` (the inside of the `data` array) as JSON lines,
    each opening with its number under `number_key`, if the lines are several and each holds an
    object (and the comma after it) or nothing; False (having written part) when they are laid out
    otherwise. The reader then takes each line as one record or fails: a line that holds several
    (`{...}, {...}`) is no JSON value."""
    prefix = b'{"' + number_key.encode() + b'":%d'
    remaining = end - start
    pending = b""
    number = 0
    comma_due = False
    while True:
        buffer_offset = end - remaining - len(pending)
        raw.seek(end - remaining)  # where `_copy_bytes` may have left it
        chunk = raw.read(min(_LINES_CHUNK, remaining))
        remaining -= len(chunk)
        buffer = pending + chunk
        view = memoryview(buffer)
        line_start = 0
        while (line_end := buffer.find(b"\n", line_start)) >= 0 or not remaining:
            line_end = len(buffer) if line_end < 0 else line_end
            first, last = _stripped(buffer, line_start, line_end)
            comma = last > first and buffer[last - 1] == ord(",")
            if comma:
                first, last = _stripped(buffer, first, last - 1)
            if first < last:
                if buffer[first] != ord("{") or buffer[last - 1] != ord("}") or (number and not comma_due):
                    return False
                staged.write(prefix % number)
                if _stripped(buffer, first + 1, last - 1) == (last - 1, last - 1):
                    staged.write(b"}\n")  # an empty object
                else:
                    staged.write(b",")
                    if last - first < _COPIED_LINE_BYTES:
                        staged.write(view[first + 1 : last])
                    else:
                        _copy_bytes(raw, staged, buffer_offset + first + 1, last - first - 1)
                    staged.write(b"\n")
                comma_due = comma
                number += 1
            elif comma:
                return False
            line_start = line_end + 1
            if line_start > len(buffer):
                # A single line may as well hold all the records: the array reader takes it.
                return number > 1 and not comma_due
        pending = buffer[line_start:]
        if len(pending) > READER_RECORD_BYTES:
            return False  # a line longer than the reader takes: not one record per line


# The first line of records laid out one a line: an object and the comma before the next.
_FIRST_RECORD_LINE = re.compile(rb"[ \t]*\{.*\},[ \t]*")


def _copy_lines(raw: BinaryIO, staged: BinaryIO, start: int, end: int) -> int | None:
    """Write the records between `start` and `end` (the inside of the `data` array) as JSON lines
    if they look laid out one a line (the first line holds an object and its comma), taking out the
    comma before each line's end; how many it took out, or None (having written nothing) for any
    other layout. The reader then takes each line as one record or fails, and a record count that
    is not one more than the commas taken out is a layout this copy misread. (A comma becomes a
    blank: the lines keep their length.)"""
    raw.seek(start)
    head = raw.read(min(end - start, READER_RECORD_BYTES)).lstrip()
    first_line_end = head.find(b"\n")
    if first_line_end < 0 or not _FIRST_RECORD_LINE.fullmatch(head, 0, first_line_end):
        return None
    raw.seek(start)
    remaining = end - start
    separators = 0
    chunk = numpy.empty(_LINES_CHUNK + 1, dtype=numpy.uint8)
    filled = 0
    while remaining:
        read = raw.readinto(memoryview(chunk)[filled : filled + min(_LINES_CHUNK, remaining)])
        if not read:
            raise ReportFileError(f"the file shrank while it was read ({remaining} bytes of records missing)")
        remaining -= read
        filled += read
        commas = numpy.flatnonzero((chunk[: filled - 1] == ord(",")) & (chunk[1:filled] == ord("\n")))
        # The last byte waits for the next chunk, where its comma's newline may be.
        ready = filled - 1 if remaining else filled
        chunk[commas] = ord(" ")
        separators += len(commas)
        staged.write(memoryview(chunk)[:ready])
        chunk[: filled - ready] = chunk[ready:filled]
        filled -= ready
    return separators


def _stripped(buffer: bytes, first: int, last: int) -> tuple[int, int]:
    """The bounds of `buffer[first:last]` without the blanks around it."""
    while first < last and buffer[first] in _BLANK:
        first += 1
    while last > first and buffer[last - 1] in _BLANK:
        last -= 1
    return first, last


def stream_report_records(raw_path: Path, staging_path: Path, spec: ReportSpec) -> StagedFile:
    """Parse a result file record by record and write its records to `staging_path` as a JSON array
    DuckDB's reader takes, whatever they hold (see the module's description)."""
    malformed_key = f"ekvio.malformed.{secrets.token_hex(8)}"
    records = 0
    separator = "\n"
    with raw_path.open("rb") as raw, staging_path.open("w", encoding="utf-8") as out:
        out.write("[")
        try:
            for record in ijson.items(raw, "data.item", use_float=True):
                for part in _readable_records(record, spec.children_key, malformed_key):
                    out.write(separator)
                    out.write(part)
                    separator = ",\n"
                records += 1
        except ijson.JSONError as error:
            raise ReportFileError(
                f"the file is not valid JSON after {records} records ({_first_line(error)}); "
                "it may be truncated or an error page"
            ) from None
        out.write("\n]")
    if records == 0:
        _require_data_array(raw_path)
    return StagedFile(staging_path, malformed_key)


def _readable_records(record: Any, children_key: str | None, malformed_key: str) -> Iterator[str]:
    """A record as JSON text the reader takes: a malformed one as an object holding its text (with
    one null child, which becomes its row), one too big as several with runs of its children."""
    children = record.get(children_key) if children_key is not None and isinstance(record, Mapping) else None
    if not isinstance(record, Mapping) or not isinstance(children, list | None):
        stand_in: dict[str, Any] = {malformed_key: json.dumps(record, ensure_ascii=False)}
        if children_key is not None:
            stand_in[children_key] = [None]
        yield json.dumps(stand_in, ensure_ascii=False)
        return
    text = json.dumps(record, ensure_ascii=False)
    if children_key is None or not children or len(text) <= STREAMED_RECORD_CHARACTERS:
        yield text
        return
    run: list[Any] = []
    size = 0
    for child in children:
        child_size = len(json.dumps(child, ensure_ascii=False))
        if run and size + child_size > STREAMED_RECORD_CHARACTERS // 2:
            yield json.dumps({**record, children_key: run}, ensure_ascii=False)
            run, size = [], 0
        run.append(child)
        size += child_size
    yield json.dumps({**record, children_key: run}, ensure_ascii=False)


def _data_array_span(raw: BinaryIO, size: int) -> tuple[int, int] | None:
    """Byte offsets [start, end) of the `data` array of a file shaped `{"data": [...] <tail>`."""
    head = _DATA_ARRAY_START.match(raw.read(256))
    if head is None:
        return None
    start = head.end() - 1
    tail_start = max(start + 1, size - _TAIL_BYTES)
    raw.seek(tail_start)
    tail = raw.read()
    # The array ends at the first `]` after which the rest of the file closes the top-level object:
    # after a `]` inside the array the rest of the array follows, which no object tail swallows (a
    # later `]`, such as `"include": []`'s, may be followed by one).
    position = -1
    while (position := tail.find(b"]", position + 1)) >= 0:
        if _closes_object(tail[position + 1 :]):
            return start, tail_start + position + 1
    return None


def _closes_object(rest: bytes) -> bool:
    try:
        json.loads(b'{"data": []' + rest)
    except ValueError:
        return False
    return True


def _copy_bytes(source: BinaryIO, target: BinaryIO, offset: int, count: int) -> None:
    """Copy `count` bytes from `offset` in `source` to where `target` stands, in the kernel where it
    can (no trip through Python), else through a buffer. The source's position is left anywhere."""
    copied = 0
    target.flush()
    try:
        while copied < count:
            step = os.copy_file_range(source.fileno(), target.fileno(), count - copied, offset + copied)
            if step == 0:
                break
            copied += step
    except OSError:  # a file system or kernel without copy_file_range
        source.seek(offset + copied)
        while copied < count and (chunk := source.read(min(1 << 20, count - copied))):
            target.write(chunk)
            copied += len(chunk)
    if copied != count:
        raise ReportFileError(f"the file shrank while it was read ({copied} of {count} bytes of records)")


def _require_data_array(raw_path: Path) -> None:
    try:
        with raw_path.open("rb") as raw:
            top = dict(ijson.kvitems(raw, "", use_float=True))
    except ijson.JSONError as error:
        raise ReportFileError(f"the file is not a JSON object ({error})") from None
    errors = top.get("errors")
    if errors:
        messages = "; ".join(
            f"Ekvio error {error.get('code')}: {error.get('message')}" if isinstance(error, Mapping) else str(error)
            for error in (errors if isinstance(errors, list) else [errors])
        )
        raise ReportFileError(f"the file holds an error answer instead of data ({messages})")
    if not isinstance(top.get("data"), list):
        raise ReportFileError(f"the file has no `data` array (top-level keys: {sorted(top) or 'none'})")


def _first_line(error: Exception) -> str:
    """The parser's message without the excerpt it draws over several lines."""
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


# ---------------------------------------------------------------------------------------------
# Flattening, in SQL.
#
# Each record is parsed in place into a struct (documented values as text, undocumented fields as
# JSON, children as JSON texts), after a cheaper reading of every record's keys, which says which
# undocumented fields there are and where a value is null rather than missing. A nested report's
# children become rows of `ekvio_rows`, a JSON transform and a merge patch per child. DuckDB reads
# JSON lines on all threads: there `ekvio_rows` is a view, which the typing step reads straight
# from the file (see STREAMED_COLUMNS); a JSON array on one thread: there `ekvio_rows` is a table,
# read once, that the typing step reads on all threads. A flat report's records, numbered by their
# order, are read from JSON lines into a table first.
# ---------------------------------------------------------------------------------------------

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
_RAW_RECORDS = "ekvio_raw_records"
_ALL_RECORD_KEYS = "ekvio_all_record_keys"
_RECORDS = "ekvio_records"
_RECORD_TEXTS = "ekvio_record_texts"


@dataclass(frozen=True)
class StagedRows:
    """The staged rows as a query (`_record`, `_child`, the raw text of every documented and
    dynamic column, `_malformed`, `extra_fields`) over temporary tables, and the dynamic columns."""

    query: str
    dynamic_columns: tuple[str, ...]

    def reading(self, con: duckdb.DuckDBPyConnection, *disabled_optimizers: str) -> AbstractContextManager[None]:
        """A block whose statements read `query`, with the optimizers it needs disabled (and these)."""
        return setting(con, "disabled_optimizers", ",".join((_KEYS_HASHED, *disabled_optimizers)))


def flatten(con: duckdb.DuckDBPyConnection, spec: ReportSpec, staged: StagedFile) -> StagedRows:
    """Flatten the staged records into temporary tables. Run outside any transaction: a statement
    that fails here leaves nothing to roll back. A file the reader cannot take raises its error."""
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
        f"WHERE list_has_any(json_keys(json), {_varchar_list(sorted(apart))})"
        if apart
        else f"CREATE TEMP TABLE {_RAW_RECORDS} (record_number BIGINT, raw JSON)"
    )
    records = (
        f"SELECT r.record_number, r.json AS record, k.keys, w.raw FROM ({records_of.structs(con, record)}) r "
        f"LEFT JOIN {_RECORD_KEYS} k USING (record_number) LEFT JOIN {_RAW_RECORDS} w USING (record_number)"
    )
    with setting(con, "disabled_optimizers", _KEYS_HASHED):
        if spec.children_key is None:
            return _flat_rows(con, record, records, as_view=staged.lines)
        streamed = staged.lines and len(spec.columns) <= STREAMED_COLUMNS
        return _child_rows(con, spec, _create_rows(con, spec.children_key, record, records, as_view=streamed))


def drop_flattened(con: duckdb.DuckDBPyConnection) -> None:
    tables = (_ALL_RECORD_KEYS, _RECORD_KEYS, _RECORD_TEXTS, _RAW_RECORDS, _RECORDS, _ROWS, _STAGED)
    drops = [f"DROP VIEW IF EXISTS {view};" for view in (_ROWS_VIEW, _STAGED_VIEW)]
    drops += [f"DROP TABLE IF EXISTS {table};" for table in tables]
    con.execute(" ".join(drops))


def _record_object(spec: ReportSpec, staged: StagedFile) -> _ObjectSql:
    reserved = {"malformed_key": staged.malformed_key, "number_key": staged.number_key}
    if spec.is_nested:
        return _ObjectSql(_source_tree(spec.parent_fields), children_key=spec.children_key, **reserved)
    return _ObjectSql(_source_tree(spec.fields), dynamic_pattern=spec.dynamic_columns, **reserved)


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

    def structs(self, con: duckdb.DuckDBPyConnection, record: _ObjectSql) -> str:
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
            con, f"{kept} AS kept, CASE WHEN {kept} THEN {notable} END AS keys", self.read(json_type),
            _ALL_RECORD_KEYS, f"{keys} AS all_keys",
        )
        if self._lines and self._number_key is None:
            records = fetch_count(con, f"SELECT count(*) FROM {_ALL_RECORD_KEYS}")
            if records != self._separators + 1:
                raise duckdb.InvalidInputException(
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


def _flat_rows(con: duckdb.DuckDBPyConnection, record: _ObjectSql, records: str, *, as_view: bool) -> StagedRows:
    """The staged rows of a flat report, one per record, read from the records' structs, as a table
    or (where the records are a table already) a view."""
    fragments = record.fragments("record", "coalesce(keys, [])", "raw")
    relation = _create_relation(
        con, (_STAGED_VIEW if as_view else _STAGED), as_view,
        f"SELECT record_number AS {RECORD_NUMBER}, 0 AS {CHILD_NUMBER}, "
        + "".join(f"{expression} AS {quote(name)}, " for name, expression in record.columns("record"))
        + f"CASE WHEN record IS NULL THEN 'null' ELSE {record.malformed_text('record')} END AS {MALFORMED}, "
        f"{_extras_sql('[]::VARCHAR[]', 'fragments')} AS {EXTRA_FIELDS} "
        f"FROM (SELECT *, {fragments} AS fragments FROM ({records}))"
    )
    return StagedRows(f"SELECT * FROM {relation}", record.dynamic)


def _create_rows(
    con: duckdb.DuckDBPyConnection, children_key: str, parent: _ObjectSql, records: str, *, as_view: bool
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
        con, (_ROWS_VIEW if as_view else _ROWS), as_view,
        f"SELECT record_number, {names}well_formed, malformed_record, parent_fragments, "
        f"unnest(children) AS child, unnest(range(len(children))) AS child_number FROM ({parents}) "
        "UNION ALL SELECT record_number, "
        + "".join(f"NULL AS {quote(name)}, " for name, _ in columns)
        + f"false, 'null', []::VARCHAR[], NULL::JSON, 0 FROM {_RECORD_KEYS} WHERE keys IS NULL"
    )


def _create_relation(con: duckdb.DuckDBPyConnection, name: str, as_view: bool, select: str) -> str:
    """A temporary view or table `name` of `select`; its name."""
    con.execute(f"CREATE TEMP {'VIEW' if as_view else 'TABLE'} {name} AS {select}")
    return name


def _child_rows(con: duckdb.DuckDBPyConnection, spec: ReportSpec, rows: str) -> StagedRows:
    """The staged rows of `ekvio_rows` (`rows`), read from each child's JSON text."""
    child = _ObjectSql(_source_tree(spec.fields), dynamic_pattern=spec.dynamic_columns)
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


# A tree of the documented source paths: a key maps to a column name, or to a subtree for
# objects such as a programme's `materials` counts.
_SourceTree = dict[str, "str | _SourceTree"]


def _source_tree(fields: tuple[Field, ...]) -> _SourceTree:
    tree: _SourceTree = {}
    for field in fields:
        node = tree
        for key in field.source[:-1]:
            node = node.setdefault(key, {})  # type: ignore[assignment]
        node[field.source[-1]] = field.column
    return tree


class _ObjectSql:
    """SQL over one kind of JSON object (a flat record, a parent, a child), described by its tree
    of documented fields; the undocumented fields and dynamic columns it declares are read into
    its struct by name, and so are the text of a malformed record standing in it (`malformed_key`)
    and the record's number (`number_key`)."""

    def __init__(
        self,
        tree: _SourceTree,
        *,
        children_key: str | None = None,
        dynamic_pattern: re.Pattern[str] | None = None,
        malformed_key: str | None = None,
        number_key: str | None = None,
        undocumented: tuple[str, ...] = (),
        dynamic: tuple[str, ...] = (),
    ) -> None:
        self._tree = tree
        self._children_key = children_key
        self._dynamic_pattern = dynamic_pattern
        self._malformed_key = malformed_key
        self._number_key = number_key
        self._undocumented = undocumented
        self.dynamic = dynamic

    def with_fields(self, *, undocumented: tuple[str, ...] = (), dynamic: tuple[str, ...] = ()) -> _ObjectSql:
        return _ObjectSql(
            self._tree,
            children_key=self._children_key,
            dynamic_pattern=self._dynamic_pattern,
            malformed_key=self._malformed_key,
            number_key=self._number_key,
            undocumented=undocumented,
            dynamic=dynamic,
        )

    def _known_keys(self, tree: _SourceTree) -> list[str]:
        """The keys of an object of `tree` that are neither undocumented fields nor dynamic columns."""
        known = list(tree)
        if tree is self._tree:
            known += [key for key in (self._children_key, self._malformed_key, self._number_key) if key is not None]
        return known

    def is_dynamic(self, key: str) -> bool:
        return (
            self._dynamic_pattern is not None
            and key not in self._known_keys(self._tree)
            and bool(self._dynamic_pattern.fullmatch(key))
        )

    def is_undocumented(self, key: str) -> bool:
        return key not in self._known_keys(self._tree) and not self.is_dynamic(key)

    def notable_key_sql(self, key: str) -> str:
        """SQL: whether a key of the object says more than a documented value: an undocumented
        field, a subobject, a dynamic column, a malformed record's text."""
        known = [name for name, node in self._tree.items() if isinstance(node, str)]
        known += [key for key in (self._children_key, self._number_key) if key is not None]
        return f"NOT list_contains({_varchar_list(known)}, {key})"

    def struct_type(self) -> str:
        """The object's DuckDB struct: documented and dynamic values and a malformed record's text
        as text, subobjects and undocumented fields as JSON, the children as a list of JSON texts."""
        return f"STRUCT({', '.join(f'{quote(key)} {type_}' for key, type_ in self._members())})"

    def _members(self) -> list[tuple[str, str]]:
        members = [(key, "VARCHAR" if isinstance(node, str) else "JSON") for key, node in self._tree.items()]
        members += [(key, "JSON") for key in self._undocumented] + [(key, "VARCHAR") for key in self.dynamic]
        if self._malformed_key is not None:
            members.append((self._malformed_key, "VARCHAR"))
        if self._number_key is not None:
            members.append((self._number_key, "BIGINT"))
        if self._children_key is not None:
            members.append((self._children_key, "JSON[]"))
        return members

    def malformed_text(self, struct: str) -> str:
        """SQL: the JSON text of the malformed record the struct stands for, else null."""
        if self._malformed_key is None:
            return "NULL::VARCHAR"
        return f"{struct}[{literal(self._malformed_key)}]"

    def transform(self, json_value: str) -> str:
        """The object's struct (without undocumented fields) read from its JSON text; any value fits."""
        structure = _structure(self._tree) | {name: "VARCHAR" for name in self.dynamic}
        return f"json_transform({json_value}, {literal(json.dumps(structure))})"

    def columns(self, struct: str) -> list[tuple[str, str]]:
        """(column, expression) of every documented and dynamic column, from the object's struct."""
        return _columns(self._tree, struct) + [(name, f"{struct}[{literal(name)}]") for name in self.dynamic]

    @property
    def undocumented(self) -> tuple[str, ...]:
        return self._undocumented

    def case_collisions(self) -> set[str]:
        """The undocumented fields whose names equal another member's but for case."""
        members = [name for name, _ in self._members()]
        counts: dict[str, int] = {}
        for name in members:
            counts[name.lower()] = counts.get(name.lower(), 0) + 1
        return {key for key in self._undocumented if counts[key.lower()] > 1}

    def fragments(self, struct: str, keys: str, raw: str, prefix: str = "") -> str:
        """The undocumented fields' fragments: from the record's JSON text where it was kept
        (`raw`, see `case_collisions`), else from its struct."""
        from_raw = self.fragments_from_json(raw, struct, f"json_keys({raw})", prefix)
        return f"CASE WHEN {raw} IS NOT NULL THEN {from_raw} ELSE {self.fragments_from_struct(struct, keys, prefix)} END"

    def fragments_from_json(self, json_value: str, struct: str, keys: str, prefix: str = "") -> str:
        """The object's undocumented fields as a list of `"name":value` JSON fragments (see
        `_fragments`), their values extracted from its JSON text."""
        return self._fragments(struct, keys, f"list_zip({keys}, json_extract({json_value}, '$.*'))", prefix)

    def own_fragments(self, json_value: str, struct: str) -> str:
        """`fragments_from_json` without a prefix. An object without subobjects or dynamic columns,
        such as a child, loses its documented fields by a JSON merge patch that sets them to null:
        one pass over the object, which keeps the others (null ones too) in their order; what
        remains is its one fragment."""
        if _subtrees(self._tree) or self._dynamic_pattern is not None:
            return self.fragments_from_json(json_value, struct, f"json_keys({json_value})")
        patch = json.dumps(dict.fromkeys(self._known_keys(self._tree)))
        rest = f"(json_merge_patch({json_value}, {literal(patch)})::VARCHAR)[2:-2]"
        return f"list_filter([{rest}], lambda fragment: fragment <> '')"

    def fragments_from_struct(self, struct: str, keys: str, prefix: str = "") -> str:
        """`fragments_from_json` with the values read from the struct, which declares every
        undocumented field and subobject the keys name; a null value reads as SQL null there."""
        declared = [*self._undocumented, *(key for key, _ in _subtrees(self._tree))]
        if not declared:
            return "[]::VARCHAR[]"
        value = " ".join(f"WHEN {literal(key)} THEN {struct}[{literal(key)}]" for key in declared)
        pairs = f"list_zip({keys}, list_transform({keys}, lambda k: coalesce(CASE k {value} END, 'null')))"
        return self._fragments(struct, keys, pairs, prefix)

    def _fragments(self, struct: str, keys: str, pairs: str, prefix: str) -> str:
        """The object's undocumented fields as `"name":value` JSON fragments in the object's order,
        named by their dotted path after `prefix`, from `pairs` (key, JSON value) of its fields;
        an empty list when there are none. A documented subobject holding something else than an
        object or null is undocumented as a whole. The pairs are only computed for an object that
        has such fields."""
        return (
            f"CASE WHEN {self._has_undocumented(self._tree, struct, keys, 0)} "
            f"THEN {self._ordered_fragments(self._tree, pairs, prefix, 0)} ELSE []::VARCHAR[] END"
        )

    def _is_undocumented_sql(self, tree: _SourceTree, key: str) -> str:
        """SQL: whether `key` is an undocumented field of an object of `tree` (not one of its subobjects)."""
        known = f"list_contains({_varchar_list(self._known_keys(tree))}, {key})"
        if tree is self._tree and self._dynamic_pattern is not None:
            # A CASE, not an AND: the pattern is only matched against the keys that are not known.
            pattern = literal(self._dynamic_pattern.pattern)
            return f"CASE WHEN {known} THEN false ELSE NOT regexp_full_match({key}, {pattern}) END"
        return f"NOT {known}"

    def _has_undocumented(self, tree: _SourceTree, struct: str, keys: str, depth: int) -> str:
        key = f"k{depth}"
        tests = [f"len(list_filter({keys}, lambda {key}: {self._is_undocumented_sql(tree, key)})) > 0"]
        for name, node in _subtrees(tree):
            member = f"{struct}[{literal(name)}]"
            nested_struct = f"json_transform({member}, {literal(json.dumps(_structure(node)))})"
            nested = self._has_undocumented(node, nested_struct, f"json_keys({member})", depth + 1)
            tests.append(f"coalesce(json_type({member}) <> 'OBJECT' OR {nested}, false)")
        return "(" + " OR ".join(tests) + ")"

    def _ordered_fragments(self, tree: _SourceTree, pairs: str, prefix: str, depth: int) -> str:
        entry = f"e{depth}"
        name, value = f"{entry}[1]", f"{entry}[2]"
        if not _subtrees(tree):
            return (
                f"list_transform(list_filter({pairs}, lambda {entry}: {self._is_undocumented_sql(tree, name)}), "
                f"lambda {entry}: to_json({literal(prefix)} || {name}) || ':' || {value})"
            )
        fragment = f"[to_json({literal(prefix)} || {name}) || ':' || {value}]"
        branches = []
        for key, node in _subtrees(tree):
            nested_pairs = f"list_zip(json_keys({value}), json_extract({value}, '$.*'))"
            nested = self._ordered_fragments(node, nested_pairs, f"{prefix}{key}.", depth + 1)
            branches.append(
                f"WHEN {name} = {literal(key)} THEN CASE json_type({value}) WHEN 'OBJECT' THEN {nested} "
                f"WHEN 'NULL' THEN []::VARCHAR[] ELSE {fragment} END"
            )
        branches.append(f"WHEN {self._is_undocumented_sql(tree, name)} THEN {fragment}")
        return f"flatten(list_transform({pairs}, lambda {entry}: CASE {' '.join(branches)} ELSE []::VARCHAR[] END))"


def _structure(tree: _SourceTree) -> dict[str, str]:
    """The `json_transform` structure of an object: documented values as text, subobjects as JSON."""
    return {key: "VARCHAR" if isinstance(node, str) else "JSON" for key, node in tree.items()}


def _subtrees(tree: _SourceTree) -> list[tuple[str, _SourceTree]]:
    return [(key, node) for key, node in tree.items() if not isinstance(node, str)]


def _columns(tree: _SourceTree, struct: str) -> list[tuple[str, str]]:
    columns = []
    for key, node in tree.items():
        member = f"{struct}[{literal(key)}]"
        if isinstance(node, str):
            columns.append((node, member))
        else:
            columns += _columns(node, f"json_transform({member}, {literal(json.dumps(_structure(node)))})")
    return columns


def _varchar_list(items: list[str]) -> str:
    return f"[{', '.join(literal(item) for item in items)}]::VARCHAR[]"
