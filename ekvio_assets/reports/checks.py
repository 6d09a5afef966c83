"""Data-quality checks of the report tables, declared by the specs and run after every load.

None of them blocks: a report table holds what Ekvio sent, and the analytics tables still rebuild;
the UI shows each result with the offending values.

Merges never delete, so a report table cannot shrink; what can shrink is an export. The size check
compares the rows an export returned with the rows the table already held for the same window
(by change time, i.e. what the earlier refreshes of that window brought): an export with less than
half of them is a partial answer worth a look.
"""

from collections.abc import Sequence
from typing import Any

import dagster as dg
import duckdb

from ekvio_assets.reports.merge import MergeOutcome
from ekvio_assets.reports.specs import ReportSpec, Total
from ekvio_assets.storage.sql import fetch_count, quote

RANGES_CHECK = "values_in_documented_ranges"
STATUSES_CHECK = "statuses_documented"
EXPORT_SIZE_CHECK = "export_not_shrunk"
_EXAMPLES = 5


def report_check_specs(spec: ReportSpec, key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    """The checks of the report's table, the asset `key`."""
    specs = []
    # Rows without change times (a nested report's parents) are not held for a window.
    if spec.change_time is not None:
        specs.append(
            dg.AssetCheckSpec(
                EXPORT_SIZE_CHECK,
                asset=key,
                description="The export returned at least half the rows the table already held for its window",
            )
        )
    if spec.ranges:
        bounds = "; ".join(f"{column} in [{low or '-inf'}, {high or 'inf'}]" for column, low, high in spec.ranges)
        specs.append(dg.AssetCheckSpec(RANGES_CHECK, asset=key, description=f"Documented bounds: {bounds}"))
    if spec.statuses:
        specs.append(
            dg.AssetCheckSpec(
                STATUSES_CHECK,
                asset=key,
                description="Status columns hold documented values; an unknown one is a warning that names it",
            )
        )
    specs += [dg.AssetCheckSpec(total.check, asset=key, description=total.describe()) for total in spec.totals]
    return specs


def evaluate_report_checks(
    con: duckdb.DuckDBPyConnection, spec: ReportSpec, key: dg.AssetKey
) -> list[dg.AssetCheckResult]:
    results = []
    if spec.ranges:
        results.append(_ranges(con, spec, key))
    if spec.statuses:
        results.append(_statuses(con, spec, key))
    results += [_total(con, spec, key, total) for total in spec.totals]
    return results


def export_size_result(outcomes: Sequence[MergeOutcome], key: dg.AssetKey) -> dg.AssetCheckResult:
    exported = sum(outcome.rows_in_file for outcome in outcomes)
    held = sum(outcome.rows_held_for_window for outcome in outcomes)
    problem = (
        f"The export returned {exported} rows for windows the table held {held} rows of: "
        "a partial answer from Ekvio, or data removed there"
    )
    return _result(
        EXPORT_SIZE_CHECK,
        key,
        dg.AssetCheckSeverity.WARN,
        problem if 2 * exported < held else None,
        {"rows_exported": exported, "rows_held_for_window": held},
    )


def _ranges(con: duckdb.DuckDBPyConnection, spec: ReportSpec, key: dg.AssetKey) -> dg.AssetCheckResult:
    outside: dict[str, int] = {}
    for column, low, high in spec.ranges:
        conditions = [f"{quote(column)} < {_bound(spec, low)}"] if low is not None else []
        conditions += [f"{quote(column)} > {_bound(spec, high)}"] if high is not None else []
        rows = fetch_count(con, f"SELECT count(*) FROM {quote(spec.name)} WHERE {' OR '.join(conditions)}")
        if rows:
            outside[column] = rows
    counts = ", ".join(f"{column} {rows}" for column, rows in outside.items())
    return _result(
        RANGES_CHECK,
        key,
        dg.AssetCheckSeverity.ERROR,
        f"Rows outside the documented bounds: {counts}" if outside else None,
        {"rows_outside_bounds": sum(outside.values())},
    )


def _statuses(con: duckdb.DuckDBPyConnection, spec: ReportSpec, key: dg.AssetKey) -> dg.AssetCheckResult:
    unknown: dict[str, list[str]] = {}
    for column, documented in spec.statuses:
        values = con.execute(
            f"SELECT DISTINCT {quote(column)} FROM {quote(spec.name)} "
            f"WHERE {quote(column)} IS NOT NULL AND NOT list_contains(?, {quote(column)}) ORDER BY 1 LIMIT {_EXAMPLES}",
            [list(documented)],
        ).fetchall()
        if values:
            unknown[column] = [value for (value,) in values]
    found = "; ".join(f"{column}: {', '.join(values)}" for column, values in unknown.items())
    return _result(
        STATUSES_CHECK,
        key,
        dg.AssetCheckSeverity.WARN,
        f"Undocumented values: {found}" if unknown else None,
        {"unknown_values": found},
    )


def _total(con: duckdb.DuckDBPyConnection, spec: ReportSpec, key: dg.AssetKey, total: Total) -> dg.AssetCheckResult:
    parts_sum = " + ".join(quote(part) for part in total.parts)
    mismatched = fetch_count(
        con,
        f"SELECT count(*) FROM {quote(spec.name)} "
        f"WHERE {parts_sum} IS DISTINCT FROM {quote(total.total)} AND {quote(total.total)} IS NOT NULL",
    )
    return _result(
        total.check,
        key,
        dg.AssetCheckSeverity.WARN,
        f"{mismatched} rows where {total.describe()} does not hold" if mismatched else None,
        {"rows_not_adding_up": mismatched},
    )


def _result(
    check: str, key: dg.AssetKey, severity: dg.AssetCheckSeverity, problem: str | None, metadata: dict[str, Any]
) -> dg.AssetCheckResult:
    """The check's result on the report's table, the asset `key`: passed unless `problem` says what is wrong."""
    return dg.AssetCheckResult(
        check_name=check,
        asset_key=key,
        passed=problem is None,
        severity=severity,
        description=problem,
        metadata=metadata,
    )


def _bound(spec: ReportSpec, bound: str) -> str:
    """A number as it is, a column of the report quoted as an identifier."""
    return quote(spec.column(bound).column) if not bound.lstrip("-").isdigit() else bound
