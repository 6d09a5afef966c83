"""One Dagster asset per model spec: rebuild the model's DuckDB table from the report tables.

Each asset rebuilds its table in one transaction under the warehouse's write lock
(`CREATE OR REPLACE TABLE ... AS SELECT`, then `COMMENT ON COLUMN` for every column) and checks
its key in the same transaction: a blocking asset check, so a model whose key is null or not
unique stops the models downstream of it in the same run (and, through the automation condition,
in later runs). A model with declared references also checks them there (not blocking: an orphan
login or material is reported with examples, the tables still build).

A report table that was never loaded (a fresh database, a module the company lacks) is read as
empty: the model builds from a temporary stand-in with the report's declared columns, logs a
warning and lists it in the `missing_report_tables` metadata. A model read by another model must
exist: its absence fails the asset, naming the table to materialize first.
"""

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import dagster as dg
import duckdb

from ekvio_assets.models.specs import MODEL_LINEAGE, MODELS, SETUP_SQL, ModelSpec, Reference
from ekvio_assets.naming import Namespace
from ekvio_assets.reports.specs import REPORT_TABLES
from ekvio_assets.reports.tables import table_columns
from ekvio_assets.storage.metadata import qualified_table_name, table_metadata
from ekvio_assets.storage.sql import fetch_count, literal, quote, table_names

MODELS_GROUP = "ekvio_analytics"
_REPORT_TABLES_BY_NAME = {table.name: table for table in REPORT_TABLES}
KEY_CHECK = "key_unique_not_null"
REFERENCES_CHECK = "references_resolve"
_EXAMPLES = 5

# eager(), but without its "no dependency missing" clause: a model reads every day of a daily-
# partitioned report, and the full export records only the last EKVIO_LOOKBACK_DAYS partitions,
# so older days stay "missing" for ever and plain eager() would never run. A model also waits for
# the blocking checks of the models it reads.
MODEL_AUTOMATION = (
    dg.AutomationCondition.eager().without(~dg.AutomationCondition.any_deps_missing())
    & dg.AutomationCondition.all_deps_blocking_checks_passed()
).with_label("eager_after_reports_refresh")


class ModelBuildError(Exception):
    """A model cannot be built: a model table it reads is missing, or its SELECT disagrees with its spec."""


@dataclass(frozen=True)
class KeyViolations:
    null_keys: int
    duplicate_keys: int
    examples: list[tuple[Any, ...]]

    @property
    def passed(self) -> bool:
        return self.null_keys == 0 and self.duplicate_keys == 0


def key_violations(
    con: duckdb.DuckDBPyConnection, table: str, key: tuple[str, ...], nullable: tuple[str, ...] = ()
) -> KeyViolations:
    """Rows with a null key column (but for the `nullable` ones, whose null is a value of the key),
    and key values held by more than one row (with a few examples)."""
    columns = ", ".join(quote(column) for column in key)
    any_null = " OR ".join(f"{quote(column)} IS NULL" for column in key if column not in nullable) or "false"
    null_keys = fetch_count(con, f"SELECT count(*) FROM {quote(table)} WHERE {any_null}")
    duplicated = con.execute(
        f"SELECT {columns}, count(*) AS n FROM {quote(table)} GROUP BY {columns} HAVING count(*) > 1 "
        f"ORDER BY n DESC, {columns}"
    ).fetchall()
    return KeyViolations(int(null_keys), len(duplicated), [row[:-1] for row in duplicated[:_EXAMPLES]])


def key_check_result(spec: ModelSpec, violations: KeyViolations) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=KEY_CHECK,
        passed=violations.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=None
        if violations.passed
        else (
            f"{spec.name}: {violations.null_keys} rows with a null key, {violations.duplicate_keys} key "
            f"values on more than one row (key {', '.join(spec.key)})"
        ),
        metadata={
            "key": ", ".join(spec.key),
            "null_key_rows": violations.null_keys,
            "duplicate_key_values": violations.duplicate_keys,
            "duplicate_key_examples": "; ".join(str(example) for example in violations.examples),
        },
    )


def orphans(con: duckdb.DuckDBPyConnection, reference: Reference) -> tuple[int, list[Any]]:
    """Rows whose reference finds no target row, and a few of their distinct values."""
    column = quote(reference.column)
    matches = [f"t.{quote(reference.target_column)} = s.{column}"]
    matches += [f"t.{quote(target)} IS NOT DISTINCT FROM s.{quote(own)}" for own, target in reference.with_columns]
    matches += [f"t.{quote(target)} = {literal(value)}" for target, value in reference.target_values]
    own_columns = [f"s.{quote(own)}" for own in (reference.column, *(own for own, _ in reference.with_columns))]
    named = own_columns[0] if len(own_columns) == 1 else f"({', '.join(own_columns)})"
    [(count, examples)] = con.execute(
        f"SELECT count(*), (list(DISTINCT {named} ORDER BY {named}))[1:{_EXAMPLES}] "
        f"FROM {quote(reference.table)} AS s ANTI JOIN {quote(reference.target)} AS t "
        f"ON {' AND '.join(matches)} WHERE s.{column} IS NOT NULL"
    ).fetchall()
    return int(count), [tuple(value.values()) if isinstance(value, dict) else value for value in examples or []]


def references_check_result(con: duckdb.DuckDBPyConnection, spec: ModelSpec) -> dg.AssetCheckResult:
    found = {reference.describe(): orphans(con, reference) for reference in spec.references}
    broken = {described: result for described, result in found.items() if result[0]}
    return dg.AssetCheckResult(
        check_name=REFERENCES_CHECK,
        passed=not broken,
        severity=dg.AssetCheckSeverity.ERROR,
        description=None
        if not broken
        else "Rows referring to nothing: "
        + "; ".join(
            f"{described}: {count} rows, e.g. {', '.join(map(str, examples))}"
            for described, (count, examples) in broken.items()
        ),
        metadata={f"orphans: {described}": count for described, (count, _) in found.items()},
    )


def declared_schema(spec: ModelSpec) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(c.name, c.type, description=c.description) for c in spec.columns])


def column_lineage(spec: ModelSpec, namespace: Namespace) -> dg.TableColumnLineage:
    """Each column's source columns, traced through the model's SQL (columns counted or constant have none)."""
    lineage = MODEL_LINEAGE[spec.name]
    return dg.TableColumnLineage(
        deps_by_column={
            column: [
                dg.TableColumnDep(asset_key=namespace.key(table), column_name=source)
                for table, source in sorted(sources)
            ]
            for column, sources in lineage.sources_by_column.items()
            if sources
        }
    )


def code_version(spec: ModelSpec) -> str:
    """Changes whenever what the build runs changes: the SQL, its parameters, the columns' types and comments."""
    built_from = [
        SETUP_SQL,
        spec.sql,
        sorted(spec.parameters.items()),
        spec.description,
        [(c.name, c.type, c.description) for c in spec.columns],
    ]
    return hashlib.sha256(json.dumps(built_from, default=str).encode()).hexdigest()[:16]


def _stand_in_for_missing(con: duckdb.DuckDBPyConnection, spec: ModelSpec) -> list[str]:
    """Temporary empty report tables for the reports never loaded; a missing model is an error."""
    existing = table_names(con)
    missing_reports = []
    for name in spec.reads:
        if name in existing:
            continue
        report = _REPORT_TABLES_BY_NAME.get(name)
        if report is None:
            raise ModelBuildError(
                f"model {spec.name} reads the table {name}, which does not exist: materialize the asset {name} first"
            )
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {quote(name)} ("
            + ", ".join(f"{quote(column)} {type_}" for column, type_, _ in table_columns(report))
            + ")"
        )
        missing_reports.append(name)
    return missing_reports


def table_description(spec: ModelSpec) -> str:
    """What the model's table holds and its grain: the Dagster asset's description and the DuckDB table's comment."""
    return f"{spec.description} One row per {' + '.join(spec.key)}."


def build_model_table(con: duckdb.DuckDBPyConnection, spec: ModelSpec) -> list[str]:
    """Rebuild the model's table on `con`; the caller owns the transaction. Returns the report
    tables that were missing: read as empty, their stand-ins last as long as the connection."""
    con.execute(SETUP_SQL)
    missing = _stand_in_for_missing(con, spec)
    parameters = dict(spec.parameters)
    produced = [d[0] for d in con.execute(f"SELECT * FROM ({spec.sql}) AS q LIMIT 0", parameters).description]
    if produced != list(spec.column_names):
        raise ModelBuildError(
            f"model {spec.name}: its SELECT gives the columns {produced}, its spec declares {list(spec.column_names)}"
        )
    casts = ", ".join(f"CAST(q.{quote(c.name)} AS {c.type}) AS {quote(c.name)}" for c in spec.columns)
    con.execute(f"CREATE OR REPLACE TABLE {quote(spec.name)} AS SELECT {casts} FROM ({spec.sql}) AS q", parameters)
    con.execute(f"COMMENT ON TABLE {quote(spec.name)} IS {literal(table_description(spec))}")
    for column in spec.columns:
        con.execute(f"COMMENT ON COLUMN {quote(spec.name)}.{quote(column.name)} IS {literal(column.description)}")
    return missing


def _model_check_specs(spec: ModelSpec, key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    key_check = dg.AssetCheckSpec(
        name=KEY_CHECK,
        asset=key,
        blocking=True,
        description=f"The key ({', '.join(spec.key)}) of {spec.name} is never null and unique; "
        "a failure stops the models downstream.",
    )
    if not spec.references:
        return [key_check]
    references_check = dg.AssetCheckSpec(
        name=REFERENCES_CHECK,
        asset=key,
        description="Every reference resolves: " + "; ".join(r.describe() for r in spec.references),
    )
    return [key_check, references_check]


def build_model_asset(spec: ModelSpec, namespace: Namespace) -> dg.AssetsDefinition:
    key = namespace.key(spec.name)

    @dg.asset(
        key=key,
        group_name=namespace.name(MODELS_GROUP),
        kinds={"duckdb", "sql"},
        description=f"{table_description(spec)} DuckDB table `{spec.name}`.",
        deps=[namespace.key(name) for name in spec.reads],
        automation_condition=MODEL_AUTOMATION,
        check_specs=_model_check_specs(spec, key),
        code_version=code_version(spec),
        required_resource_keys={namespace.warehouse_resource},
        metadata={
            "dagster/column_schema": declared_schema(spec),
            "dagster/column_lineage": column_lineage(spec, namespace),
            "dagster/table_name": qualified_table_name(spec.name),
            "key": ", ".join(spec.key),
            "reads": ", ".join(spec.reads),
        },
    )
    def model_asset(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        warehouse = namespace.warehouse(context)
        with warehouse.write_connection() as con:
            con.begin()
            try:
                missing = build_model_table(con, spec)
                violations = key_violations(con, spec.name, spec.key, spec.nullable_key)
                check_results = [key_check_result(spec, violations)]
                if spec.references:
                    check_results.append(references_check_result(con, spec))
                metadata = table_metadata(con, spec.name)
                con.commit()
            except ModelBuildError as error:
                con.rollback()
                raise dg.Failure(description=str(error), allow_retries=False) from None
            except BaseException:
                con.rollback()
                raise
        if missing:
            context.log.warning(
                f"{spec.name}: the report tables {', '.join(missing)} were never loaded and were read as empty"
            )
        return dg.MaterializeResult(
            metadata={**metadata, "missing_report_tables": ", ".join(missing)},
            check_results=check_results,
        )

    return model_asset


def build_model_assets(namespace: Namespace) -> list[dg.AssetsDefinition]:
    return [build_model_asset(spec, namespace) for spec in MODELS]
