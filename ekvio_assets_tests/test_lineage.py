"""Column lineage read from the models' SQL: hand-written statements, and the real models' graph."""

from __future__ import annotations

import dagster as dg
import duckdb
import pytest

from ekvio_assets.config import Settings
from ekvio_assets.definitions import build_definitions
from ekvio_assets.models.lineage import LineageError, trace_lineage
from ekvio_assets.models.specs import MODELS
from ekvio_assets.storage.sql import quote

TABLES = {"people": ["login", "name", "team"], "scores": ["login", "test", "percent", "at"]}


def test_columns_are_traced_through_ctes_joins_unions_stars_and_subqueries() -> None:
    lineage = trace_lineage(
        """
        WITH best AS (SELECT login, max(percent) AS best_percent, count(*) AS tries FROM scores GROUP BY login),
             everyone AS (SELECT login, name FROM people UNION ALL SELECT login, NULL FROM scores)
        SELECT e.*, upper(p.team) AS team, b.best_percent, b.tries,
               (SELECT max(s.at) FROM scores s WHERE s.login = e.login) AS last_at,
               best_percent * 2 AS doubled, 1 AS one
        FROM everyone e JOIN people p USING (login) LEFT JOIN best b ON b.login = e.login
        """,
        TABLES,
    )
    assert lineage.tables_read == {"people", "scores"}
    assert lineage.sources_by_column == {
        "login": {("people", "login"), ("scores", "login")},
        "name": {("people", "name")},
        "team": {("people", "team")},
        "best_percent": {("scores", "percent")},
        "tries": set(),
        "last_at": {("scores", "at")},
        "doubled": {("scores", "percent")},
        "one": set(),
    }


def test_the_parameters_bound_anywhere_in_the_statement_are_listed() -> None:
    lineage = trace_lineage(
        """
        WITH passed AS (SELECT login FROM scores WHERE percent >= $pass_mark)
        SELECT p.login, $team AS team FROM people p
        WHERE p.login IN (SELECT login FROM passed) AND p.team <> (SELECT $excluded)
        """,
        TABLES,
    )
    assert lineage.parameters == {"pass_mark", "team", "excluded"}


@pytest.mark.parametrize(
    "sql",
    [
        # A CTE named like a table hides it, but not inside itself nor in the CTEs before it.
        "WITH people AS (SELECT * FROM people WHERE team = 'a') SELECT * FROM people",
        "WITH early AS (SELECT * FROM scores), scores AS (SELECT 1 AS login) SELECT * FROM early, scores",
        # Tables read only in a WHERE or HAVING subquery, or in a CTE nested in a subquery.
        "SELECT login FROM people WHERE login IN (SELECT login FROM scores)",
        "SELECT team FROM people GROUP BY team HAVING count(*) > (SELECT count(*) FROM audit)",
        "SELECT (WITH audit AS (SELECT 1 AS n) SELECT max(n) FROM audit) AS n FROM people",
    ],
)
def test_the_tables_read_are_those_duckdb_itself_lists(sql: str) -> None:
    tables = {**TABLES, "audit": ["login"]}
    with duckdb.connect() as con:
        for table, columns in tables.items():
            con.execute(f"CREATE TABLE {table} ({', '.join(f'{quote(column)} VARCHAR' for column in columns)})")
        # DuckDB's own list binds the statement: it needs the tables to exist (and no parameters).
        expected = duckdb.get_table_names(sql, connection=con)
    assert trace_lineage(sql, tables).tables_read == expected


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT login FROM nowhere", "reads nowhere"),
        ("SELECT p.nickname AS nick FROM people p", "p does not provide"),
        ("SELECT login, 1 + 1 FROM people", "have no name"),
        ("SELEC login FROM people", "syntax"),
        ("SELECT login FROM people; SELECT 1 AS one", "expected one SELECT statement, found 2"),
        ("CREATE TABLE copy AS SELECT login FROM people", "Only SELECT statements"),
    ],
)
def test_sql_that_cannot_be_traced_is_an_error_naming_why(sql: str, message: str) -> None:
    with pytest.raises(LineageError, match=message):
        trace_lineage(sql, TABLES)


def test_the_models_show_where_their_columns_come_from() -> None:
    graph = build_definitions(Settings.from_env({})).resolve_asset_graph()

    def sources(model: str, column: str) -> set[tuple[str, str]]:
        lineage = graph.get(dg.AssetKey(model)).metadata["dagster/column_lineage"]
        return {(dep.asset_key.to_user_string(), dep.column_name) for dep in lineage.deps_by_column[column]}

    assert sources("learner_program_progress", "due_at") == {
        ("program_statistics", "learner_deadline_at"),
        ("program_statistics", "deadline_at"),
        ("program_statistics", "start_at"),
        ("program_statistics", "deadline_period_at"),
    }
    assert sources("learner_program_progress", "fio") == {("learners", "fio")}
    assert sources("learner_summary", "average_test_percent") == {("learner_material_progress", "best_percent")}
    assert ("course_statistics", "fio") in sources("learners", "fio")
    assert sources("courses", "course_name") == {("course_statistics", "course_name")}


def test_a_model_reads_in_its_sql_what_its_spec_says_or_what_its_checks_read() -> None:
    graph = build_definitions(Settings.from_env({})).resolve_asset_graph()
    for model in MODELS:
        lineage = graph.get(dg.AssetKey(model.name)).metadata["dagster/column_lineage"]
        read_by_sql = {dep.asset_key.to_user_string() for deps in lineage.deps_by_column.values() for dep in deps}
        checked = {reference.target for reference in model.references} | {
            reference.table for reference in model.references
        }
        assert read_by_sql <= set(model.reads), model.name
        assert set(model.reads) <= read_by_sql | checked, model.name
