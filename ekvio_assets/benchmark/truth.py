"""How far a company's report tables are from what its simulated Ekvio sent: the benchmarks' check
that a fast refresh is also a correct one."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from ekvio_assets.reports.specs import REPORTS, ReportSpec
from ekvio_assets.simulator import Dataset
from ekvio_assets.storage.sql import quote, table_names


def table_by_key(
    con: duckdb.DuckDBPyConnection, table: str, key: tuple[str, ...]
) -> dict[tuple[Any, ...], dict[str, Any]]:
    """The table's rows by key, without the lineage columns (`_...`), `extra_fields` as parsed JSON."""
    cursor = con.execute(f"SELECT * FROM {quote(table)}")
    names = [column[0] for column in cursor.description]
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for values in cursor.fetchall():
        row = dict(zip(names, values, strict=True))
        data = {name: value for name, value in row.items() if not name.startswith("_")}
        data["extra_fields"] = json.loads(data["extra_fields"]) if data["extra_fields"] else None
        rows[tuple(row[column] for column in key)] = data
    return rows


def typed(row: Mapping[str, Any]) -> dict[str, tuple[type, Any]]:
    """A row's values with their Python types, so that comparing two rows compares their columns
    exactly (a dropped column whose value is always null differs) and `1 == True` or `1 == 1.0`
    is a difference."""
    return {name: (type(value), value) for name, value in row.items()}


def differences(database: Path, dataset: Dataset, after: datetime | None, to: datetime | None) -> list[str]:
    """What differs between the report tables of `database` and the rows the simulator sends for
    the window [after, to) (None: everything), one line per table that differs."""
    found = []
    with duckdb.connect(str(database), read_only=True) as con:
        present = table_names(con)
        for spec in REPORTS:
            tables: list[tuple[ReportSpec, list[dict[str, Any]]]] = [(spec, dataset.truth(spec.name, after, to))]
            if spec.parents is not None:
                tables.append((spec.parents, dataset.parents_truth(spec.name, after, to)))
            for table, truth in tables:
                if table.name not in present:
                    found.append(f"{table.name}: missing")
                    continue
                rows = table_by_key(con, table.name, table.key)
                expected = {tuple(row[column] for column in table.key): row for row in truth}
                if rows.keys() != expected.keys():
                    found.append(
                        f"{table.name}: {len(rows.keys() - expected.keys())} rows too many, "
                        f"{len(expected.keys() - rows.keys())} missing"
                    )
                    continue
                wrong = sum(1 for key, row in expected.items() if typed(rows[key]) != typed(row))
                if wrong:
                    found.append(f"{table.name}: {wrong} rows with other values")
    return found
