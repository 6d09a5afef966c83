"""Stream a downloaded report file into flat, newline-delimited JSON rows, one per table row.

The file is never held in memory: ijson's C backend yields one record (one material or programme
with its learners, or one flat record) at a time. Each row keeps the raw values of the documented
fields under their column names (typing happens in DuckDB), the company-specific dynamic columns
under their own names, and every undocumented field in `extra_fields`, so nothing the API sent is
dropped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import ijson

from ekvio_assets.reports.specs import Field, ReportSpec

EXTRA_FIELDS = "extra_fields"
ORDINAL = "_ordinal"
MALFORMED = "_malformed"
PARENT_EXTRA_PREFIX = "parent."


class ReportFileError(ValueError):
    """The result file is not a report: broken JSON, an error answer, or no `data` array."""


@dataclass(frozen=True)
class StagedFile:
    path: Path
    rows: int
    records: int
    dynamic_columns: tuple[str, ...]


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


def _split(value: Mapping[str, Any], tree: _SourceTree, prefix: str = "") -> tuple[dict[str, Any], dict[str, Any]]:
    """Documented values by column name, and everything else by its dotted path."""
    columns: dict[str, Any] = {}
    extras: dict[str, Any] = {}
    for key, item in value.items():
        node = tree.get(key)
        if isinstance(node, str):
            columns[node] = item
        elif isinstance(node, dict) and isinstance(item, Mapping):
            nested_columns, nested_extras = _split(item, node, f"{prefix}{key}.")
            columns.update(nested_columns)
            extras.update(nested_extras)
        elif not (isinstance(node, dict) and item is None):
            extras[f"{prefix}{key}"] = item
    return columns, extras


class _RowWriter:
    def __init__(self, spec: ReportSpec, out: Any) -> None:
        self._spec = spec
        self._out = out
        self._record_tree = _source_tree(spec.fields)
        self._parent_tree = _source_tree(spec.parent_fields)
        self.rows = 0
        self.dynamic_columns: set[str] = set()

    def write_record(self, record: Any) -> None:
        if not self._spec.is_nested:
            self._write_row(record, {}, {})
            return
        if not isinstance(record, Mapping) or not isinstance(record.get(self._spec.children_key), list | None):
            self._write_malformed(record)
            return
        parent = {key: value for key, value in record.items() if key != self._spec.children_key}
        parent_columns, parent_extras = _split(parent, self._parent_tree)
        parent_extras = {f"{PARENT_EXTRA_PREFIX}{key}": value for key, value in parent_extras.items()}
        for child in record.get(self._spec.children_key) or ():
            self._write_row(child, parent_columns, parent_extras)

    def _write_row(self, record: Any, parent_columns: dict[str, Any], parent_extras: dict[str, Any]) -> None:
        if not isinstance(record, Mapping):
            self._write_malformed(record)
            return
        columns, extras = _split(record, self._record_tree)
        if self._spec.dynamic_columns is not None:
            for key in [key for key in extras if self._spec.dynamic_columns.fullmatch(key)]:
                columns[key] = extras.pop(key)
                self.dynamic_columns.add(key)
        row = {**parent_columns, **columns, EXTRA_FIELDS: {**parent_extras, **extras} or None}
        self._emit(row)

    def _write_malformed(self, record: Any) -> None:
        self._emit({MALFORMED: json.dumps(record, ensure_ascii=False)})

    def _emit(self, row: dict[str, Any]) -> None:
        row[ORDINAL] = self.rows
        self.rows += 1
        self._out.write(json.dumps(row, ensure_ascii=False))
        self._out.write("\n")


def _records(raw: BinaryIO) -> Iterator[Any]:
    return ijson.items(raw, "data.item", use_float=True)


def _top_level(raw_path: Path) -> dict[str, Any]:
    """The top-level object of a file that held no records: small by construction."""
    with raw_path.open("rb") as raw:
        return dict(ijson.kvitems(raw, "", use_float=True))


def stage_report_file(spec: ReportSpec, raw_path: Path, staging_path: Path) -> StagedFile:
    records = 0
    with raw_path.open("rb") as raw, staging_path.open("w", encoding="utf-8") as out:
        writer = _RowWriter(spec, out)
        try:
            for record in _records(raw):
                records += 1
                writer.write_record(record)
        except ijson.JSONError as error:
            raise ReportFileError(
                f"the file is not valid JSON after {records} records ({_first_line(error)}); "
                "it may be truncated or an error page"
            ) from None
    if records == 0:
        _require_data_array(raw_path)
    return StagedFile(staging_path, writer.rows, records, tuple(sorted(writer.dynamic_columns)))


def _require_data_array(raw_path: Path) -> None:
    try:
        top = _top_level(raw_path)
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
