"""The data dictionary of the analyst file (`ekvio-assets tables`), read from the file's own catalog.

Every table and column of the published file carries its description as a DuckDB comment (the
report specs, the model specs and the loads' bookkeeping tables write them); this prints what the
file itself says, so it is right for the file at hand, whichever code published it.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

CATALOG_SQL = (Path(__file__).with_name("dictionary.sql")).read_text(encoding="utf-8")
WIDTH = 100
NO_COMMENT = "(no comment)"


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    description: str | None


@dataclass(frozen=True)
class Table:
    name: str
    description: str | None
    columns: tuple[Column, ...]


def read_dictionary(database: Path) -> list[Table]:
    """The tables of `database` with their columns and comments, opened read-only."""
    with duckdb.connect(str(database), read_only=True) as con:
        rows = con.execute(CATALOG_SQL).fetchall()
    tables: dict[str, tuple[str | None, list[Column]]] = {}
    for table, table_comment, column, type_, column_comment in rows:
        tables.setdefault(table, (table_comment, []))[1].append(Column(column, type_, column_comment))
    return [Table(name, description, tuple(columns)) for name, (description, columns) in tables.items()]


def as_text(tables: Sequence[Table]) -> str:
    """Each table, its description, then one line per column: name, type, description."""
    blocks = []
    for table in tables:
        name_width = max(len(column.name) for column in table.columns)
        type_width = max(len(column.type) for column in table.columns)
        indent = " " * (2 + name_width + 2 + type_width + 2)
        lines = [table.name, *_wrapped(table.description, "  ", "  ")]
        for column in table.columns:
            lines += _wrapped(
                column.description, f"  {column.name:<{name_width}}  {column.type:<{type_width}}  ", indent
            )
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def _wrapped(text: str | None, first: str, rest: str) -> list[str]:
    # At least 40 characters of text a line, however long the names and types before it.
    return textwrap.wrap(text or NO_COMMENT, max(WIDTH, len(first) + 40), initial_indent=first, subsequent_indent=rest)


def as_markdown(tables: Sequence[Table]) -> str:
    """A heading per table, its description, and a table of its columns."""
    blocks = []
    for table in tables:
        rows = "\n".join(
            f"| `{column.name}` | {column.type} | {_cell(column.description or NO_COMMENT)} |"
            for column in table.columns
        )
        blocks.append(
            f"## {table.name}\n\n{table.description or NO_COMMENT}\n\n"
            f"| column | type | description |\n| --- | --- | --- |\n{rows}\n"
        )
    return "\n".join(blocks)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
