"""Quoting for the few names and paths that must be spliced into SQL text.

Values always go as parameters; identifiers come from the report specs or from dynamic field
names that matched a strict pattern, and are quoted anyway.
"""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import duckdb


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def fetch_count(con: duckdb.DuckDBPyConnection, sql: str, parameters: Sequence[object] = ()) -> int:
    row = con.execute(sql, parameters).fetchone()
    return int(row[0]) if row else 0


def one_row(con: duckdb.DuckDBPyConnection, sql: str, parameters: Sequence[object] = ()) -> tuple[Any, ...]:
    """The row of a query that always has exactly one (an aggregate without GROUP BY, say)."""
    row = con.execute(sql, parameters).fetchone()
    if row is None:
        raise RuntimeError(f"A query that always has a row had none: {sql}")
    return row


def row_count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return fetch_count(con, f"SELECT count(*) FROM {quote(table)}")


def table_names(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The tables of the connection's database and schema, not its temporary stand-ins."""
    rows = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = current_schema() AND NOT temporary"
    ).fetchall()
    return {row[0] for row in rows}


@contextmanager
def setting(con: duckdb.DuckDBPyConnection, name: str, value: str) -> Iterator[None]:
    """Run a block with a DuckDB setting changed, then put the setting back as it was."""
    row = con.execute(f"SELECT current_setting({literal(name)})").fetchone()
    con.execute(f"SET {name} = ?", [value])
    try:
        yield
    except BaseException:
        # A failed statement aborts the transaction, and with it any SET: the error is what matters.
        with suppress(duckdb.Error):
            _set(con, name, row)
        raise
    _set(con, name, row)


def _set(con: duckdb.DuckDBPyConnection, name: str, value: tuple[object, ...] | None) -> None:
    if value is None or value[0] is None:
        con.execute(f"RESET {name}")
    else:
        con.execute(f"SET {name} = ?", [value[0]])
