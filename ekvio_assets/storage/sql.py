"""Quoting for the few names and paths that must be spliced into SQL text.

Values always go as parameters; identifiers come from the report specs or from dynamic field
names that matched a strict pattern, and are quoted anyway.
"""

from collections.abc import Sequence

import duckdb


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def fetch_count(con: duckdb.DuckDBPyConnection, sql: str, parameters: Sequence[object] = ()) -> int:
    row = con.execute(sql, parameters).fetchone()
    return int(row[0]) if row else 0


def row_count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return fetch_count(con, f"SELECT count(*) FROM {quote(table)}")
