"""Stage a downloaded report file for DuckDB's JSON reader, byte by byte, without parsing it in Python.

A result file is `{"data": [...], ...}`, hundreds of megabytes for a big company. Its `data` array
is copied into a staging file without parsing it in Python, for DuckDB's JSON reader: byte for byte,
or, for records that come one per line, as JSON lines, which the reader reads on all cores (a
nested report's few big records each with its number under a key of its own).
A file of another shape, or one the reader cannot take as it is (a record that is not an object,
children that are not a list, a key twice in an object, a record over the reader's 16 MB), is
streamed record by record by ijson's C backend into the same kind of file, in a shape the reader
takes: a malformed record becomes an object holding its JSON text under a key of its own, a record
too big is cut in several. A broken file gets its error message there.

"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from io import BufferedReader
from pathlib import Path
from typing import Any, BinaryIO

import ijson
import numpy

from ekvio_assets.reports.specs import ReportSpec

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


def _copy_lines(raw: BufferedReader, staged: BinaryIO, start: int, end: int) -> int | None:
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
    chunk_bytes = chunk.data  # the chunk's own memory: reads land in it, writes take from it, uncopied
    filled = 0
    while remaining:
        read = raw.readinto(chunk_bytes[filled : filled + min(_LINES_CHUNK, remaining)])
        if not read:
            raise ReportFileError(f"the file shrank while it was read ({remaining} bytes of records missing)")
        remaining -= read
        filled += read
        commas = numpy.flatnonzero((chunk[: filled - 1] == ord(",")) & (chunk[1:filled] == ord("\n")))
        # The last byte waits for the next chunk, where its comma's newline may be.
        ready = filled - 1 if remaining else filled
        chunk[commas] = ord(" ")
        separators += len(commas)
        staged.write(chunk_bytes[:ready])
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
