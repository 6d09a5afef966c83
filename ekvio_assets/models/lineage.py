"""Where each column of a model comes from, read from DuckDB's own parse of the model's SELECT.

`json_serialize_sql` gives the statement's tree (it serializes SELECTs only); every output column
is traced through CTEs, subqueries, joins and set operations down to the columns of the tables the
model reads. Other walks of the same tree list every table the statement reads, wherever it names
one (FROM, joins, subqueries in any clause), a CTE's name meaning the CTE where one is in scope, and
the `$name` parameters it binds: the asset graph is derived from the SQL, not written beside it.

Why not `duckdb.get_table_names`: in DuckDB 2.0 it binds the statement, so it rejects the models'
`$name` parameters ("Unexpected prepared parameter"), needs every table, column and macro the
statement uses to exist already, and even then fails on some valid SELECTs (a USING join on a CTE
that selects `*`); parsing alone needs none of them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb

Source = tuple[str, str]  # (table, column)


class LineageError(ValueError):
    """A model's SQL does not parse, or names a table or column nobody provides."""


@dataclass
class _Scope:
    """The relations a SELECT reads from, by the name its expressions use for them."""

    relations: dict[str, _Relation] = field(default_factory=dict)
    outer: _Scope | None = None


@dataclass
class _Relation:
    table: str | None = None  # a base table, or else a derived relation with `outputs`
    outputs: dict[str, set[Source]] | None = None


def _nodes(expression: Any, wanted: str, into_subqueries: bool = False) -> Iterator[dict[str, Any]]:
    """The nodes of class `wanted` in an expression; it does not descend into them, nor (unless
    told) into subqueries, which have their own scope."""
    if isinstance(expression, dict):
        kind = expression.get("class")
        if kind == wanted:
            yield expression
        elif kind != "SUBQUERY" or into_subqueries:
            for value in expression.values():
                yield from _nodes(value, wanted, into_subqueries)
    elif isinstance(expression, list):
        for item in expression:
            yield from _nodes(item, wanted, into_subqueries)


class _Tracer:
    def __init__(self, table_columns: Mapping[str, Sequence[str]]) -> None:
        self._table_columns = table_columns

    def outputs(
        self, node: dict[str, Any], ctes: Mapping[str, dict[str, Any]], outer: _Scope | None
    ) -> dict[str, set[Source]]:
        """The named output columns of a query node and the sources of each."""
        return {name: sources for name, sources in self._positional(node, ctes, outer) if name}

    def _positional(
        self, node: dict[str, Any], ctes: Mapping[str, dict[str, Any]], outer: _Scope | None
    ) -> list[tuple[str | None, set[Source]]]:
        ctes = {**ctes, **{name: value["query_node"] for name, value in _cte_entries(node)}}
        if node["type"] == "SET_OPERATION_NODE":
            first, *others = [self._positional(child, ctes, outer) for child in node["children"]]
            # Columns of a set operation are matched by position and named by its first branch.
            return [
                (name, sources.union(*(other[index][1] for other in others)))
                for index, (name, sources) in enumerate(first)
            ]
        if node["type"] != "SELECT_NODE":
            raise LineageError(f"unsupported query node {node['type']}")
        scope = _Scope(outer=outer)
        self._add_relations(node["from_table"], scope, ctes)
        outputs: list[tuple[str | None, set[Source]]] = []
        for item in node["select_list"]:
            if item["class"] == "STAR":
                for relation in self._star_relations(item, scope):
                    outputs += [(name, set(found)) for name, found in self._relation_outputs(relation).items()]
                continue
            name = item["alias"] or (item["column_names"][-1] if item["class"] == "COLUMN_REF" else None)
            sources: set[Source] = set()
            earlier = {output: found for output, found in outputs if output}
            for ref in _nodes(item, "COLUMN_REF"):
                sources |= self._resolve(ref["column_names"], scope, earlier)
            for subquery in _nodes(item, "SUBQUERY"):
                for _, found in self._positional(subquery["subquery"]["node"], ctes, scope):
                    sources |= found
            outputs.append((name, sources))
        return outputs

    def _add_relations(self, table: dict[str, Any], scope: _Scope, ctes: Mapping[str, dict[str, Any]]) -> None:
        kind = table["type"]
        if kind == "EMPTY":
            return
        if kind == "JOIN":
            self._add_relations(table["left"], scope, ctes)
            self._add_relations(table["right"], scope, ctes)
            return
        if kind == "SUBQUERY":
            scope.relations[table["alias"]] = _Relation(
                outputs=self.outputs(table["subquery"]["node"], ctes, scope.outer)
            )
            return
        if kind == "TABLE_FUNCTION":
            scope.relations[table["alias"] or "unnest"] = _Relation(outputs={})
            return
        if kind != "BASE_TABLE":
            raise LineageError(f"unsupported FROM item {kind}")
        name = table["table_name"]
        if name in ctes:
            relation = _Relation(outputs=self.outputs(ctes[name], {k: v for k, v in ctes.items() if k != name}, None))
        elif name in self._table_columns:
            relation = _Relation(table=name)
        else:
            raise LineageError(f"the SQL reads {name}, which is neither a CTE nor a known table")
        scope.relations[table["alias"] or name] = relation

    def _relation_outputs(self, relation: _Relation) -> dict[str, set[Source]]:
        if relation.table is not None:
            return {column: {(relation.table, column)} for column in self._table_columns[relation.table]}
        return relation.outputs or {}

    def _star_relations(self, star: dict[str, Any], scope: _Scope) -> list[_Relation]:
        if star.get("relation_name"):
            return [scope.relations[star["relation_name"]]]
        return list(scope.relations.values())

    def _resolve(self, ref: list[str], scope: _Scope | None, earlier: Mapping[str, set[Source]]) -> set[Source]:
        *qualifier, column = ref
        current = scope
        while current is not None:
            if qualifier:
                relation = current.relations.get(qualifier[-1])
                if relation is not None:
                    provided = self._relation_outputs(relation)
                    if column not in provided:
                        raise LineageError(f"the SQL refers to {'.'.join(ref)}, which {qualifier[-1]} does not provide")
                    return set(provided[column])
            else:
                found = [
                    self._relation_outputs(r)[column]
                    for r in current.relations.values()
                    if column in self._relation_outputs(r)
                ]
                if found:
                    return set().union(*found)
            current = current.outer
        if not qualifier and column in earlier:
            return set(earlier[column])  # an alias defined earlier in the same SELECT
        if not qualifier:
            return set()  # a lambda parameter or a struct field
        raise LineageError(f"the SQL refers to {'.'.join(ref)}, which no relation it reads provides")


def _cte_entries(node: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(entry["key"], entry["value"]) for entry in (node.get("cte_map") or {}).get("map", [])]


@dataclass(frozen=True)
class ModelLineage:
    tables_read: frozenset[str]
    sources_by_column: Mapping[str, frozenset[Source]]
    # The names of the `$name` parameters the statement binds.
    parameters: frozenset[str]


def _tables_in(tree: Any, ctes: frozenset[str]) -> Iterator[str]:
    """The names of the base tables anywhere in a parse tree; `ctes` are the CTE names in scope."""
    if isinstance(tree, list):
        for item in tree:
            yield from _tables_in(item, ctes)
    elif isinstance(tree, dict):
        in_scope = ctes
        for name, cte in _cte_entries(tree):
            # A CTE sees the CTEs before it, not itself nor later ones: there the name is a table's.
            yield from _tables_in(cte, in_scope)
            in_scope = in_scope | {name}
        if tree.get("type") == "BASE_TABLE" and tree["table_name"] not in in_scope:
            yield tree["table_name"]
        for key, value in tree.items():
            if key != "cte_map":
                yield from _tables_in(value, in_scope)


def _statement(sql: str) -> dict[str, Any]:
    [(serialized,)] = duckdb.execute("SELECT json_serialize_sql(?)", [sql]).fetchall()
    parsed = json.loads(serialized)
    if parsed["error"]:
        raise LineageError(parsed.get("error_message", "the SQL does not parse"))
    if len(parsed["statements"]) != 1:
        raise LineageError(f"expected one SELECT statement, found {len(parsed['statements'])}")
    return parsed["statements"][0]["node"]


def trace_lineage(sql: str, table_columns: Mapping[str, Sequence[str]]) -> ModelLineage:
    """The tables `sql` reads, the parameters it binds and, per output column, the (table, column)
    pairs it is computed from; `table_columns` are the columns of every table a model may read."""
    statement = _statement(sql)
    outputs = _Tracer(table_columns)._positional(statement, {}, None)
    unnamed = [str(index + 1) for index, (name, _) in enumerate(outputs) if not name]
    if unnamed:
        raise LineageError(f"the output columns {', '.join(unnamed)} have no name: give them an alias")
    return ModelLineage(
        tables_read=frozenset(_tables_in(statement, frozenset())),
        sources_by_column={name: frozenset(found) for name, found in outputs if name},
        parameters=frozenset(
            parameter["identifier"] for parameter in _nodes(statement, "PARAMETER", into_subqueries=True)
        ),
    )
