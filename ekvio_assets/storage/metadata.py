"""What the Dagster UI shows about a DuckDB table: row count, column schema, a small preview."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import duckdb

from ekvio_assets.storage.sql import quote, row_count
from ekvio_assets.storage.warehouse import DATABASE_FILE

PREVIEW_ROWS = 5
# The tag of assets whose tables hold personal data (logins, names).
PII_TAG = "pii"
_PREVIEW_CELL_CHARS = 40


def qualified_table_name(table: str) -> str:
    """The table as analysts name it: DuckDB calls a database after its file (ekvio), schema main."""
    return f"{Path(DATABASE_FILE).stem}.main.{table}"


def table_metadata(
    con: duckdb.DuckDBPyConnection, table: str, preview_columns: int = 8, rows: int | None = None
) -> dict[str, Any]:
    """The metadata of `table`, whose `rows` (counted here if not given) the caller may know."""
    described = con.execute(
        "SELECT c.column_name, c.data_type, coalesce(d.comment, '') FROM information_schema.columns c "
        "LEFT JOIN duckdb_columns() d ON d.table_name = c.table_name AND d.column_name = c.column_name "
        "AND d.schema_name = c.table_schema "
        "WHERE c.table_name = ? AND c.table_schema = current_schema() ORDER BY c.ordinal_position",
        [table],
    ).fetchall()
    shown = [name for name, _, _ in described if not name.startswith("_")][:preview_columns]
    preview = con.execute(
        f"SELECT {', '.join(quote(name) for name in shown)} FROM {quote(table)} LIMIT {PREVIEW_ROWS}"
    ).fetchall()
    return {
        "dagster/row_count": dg.MetadataValue.int(row_count(con, table) if rows is None else rows),
        "dagster/table_name": dg.MetadataValue.text(qualified_table_name(table)),
        "dagster/column_schema": dg.MetadataValue.table_schema(
            dg.TableSchema(
                columns=[
                    dg.TableColumn(name=name, type=type_, description=description or None)
                    for name, type_, description in described
                ]
            )
        ),
        "preview": dg.MetadataValue.md(markdown_table(shown, preview)),
    }


def markdown_table(columns: list[str], rows: list[tuple[Any, ...]]) -> str:
    def cell(value: Any) -> str:
        text = "" if value is None else str(value)
        if len(text) > _PREVIEW_CELL_CHARS:
            text = text[: _PREVIEW_CELL_CHARS - 1] + "…"
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)
