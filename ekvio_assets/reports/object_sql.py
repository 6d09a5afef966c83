"""SQL over one kind of JSON object of a report (a flat record, a parent, a child), built from its
tree of documented fields: its DuckDB struct, its columns as text, and its undocumented fields as
JSON fragments in the object's own order."""

from __future__ import annotations

import copy
import json
import re

from ekvio_assets.reports.specs import Field
from ekvio_assets.storage.sql import literal, quote

# A tree of the documented source paths: a key maps to a column name, or to a subtree for
# objects such as a programme's `materials` counts.
_SourceTree = dict[str, "str | _SourceTree"]


def source_tree(fields: tuple[Field, ...]) -> _SourceTree:
    tree: _SourceTree = {}
    for field in fields:
        node = tree
        for key in field.source[:-1]:
            subtree = node.setdefault(key, {})
            if not isinstance(subtree, dict):
                raise ValueError(f"{field.column}: the spec reads {key} both as a column and as an object of fields")
            node = subtree
        node[field.source[-1]] = field.column
    return tree


class ObjectSql:
    """SQL over one kind of JSON object (a flat record, a parent, a child), described by its tree
    of documented fields; the undocumented fields and dynamic columns it declares are read into
    its struct by name, and so are the text of a malformed record standing in it (`malformed_key`)
    and the record's number (`number_key`)."""

    def __init__(
        self,
        tree: _SourceTree,
        *,
        children_key: str | None = None,
        dynamic_pattern: re.Pattern[str] | None = None,
        malformed_key: str | None = None,
        number_key: str | None = None,
        undocumented: tuple[str, ...] = (),
        dynamic: tuple[str, ...] = (),
    ) -> None:
        self._tree = tree
        self._children_key = children_key
        self._dynamic_pattern = dynamic_pattern
        self._malformed_key = malformed_key
        self._number_key = number_key
        self._undocumented = undocumented
        self.dynamic = dynamic
        self._reads_children = True

    def with_fields(self, *, undocumented: tuple[str, ...] = (), dynamic: tuple[str, ...] = ()) -> ObjectSql:
        copied = copy.copy(self)
        copied._undocumented, copied.dynamic = undocumented, dynamic
        return copied

    def without_children(self) -> ObjectSql:
        """The object read without its children, a parent on its own: their key stays a known one,
        their list is not read."""
        copied = copy.copy(self)
        copied._reads_children = False
        return copied

    def _known_keys(self, tree: _SourceTree) -> list[str]:
        """The keys of an object of `tree` that are neither undocumented fields nor dynamic columns."""
        known = list(tree)
        if tree is self._tree:
            known += [key for key in (self._children_key, self._malformed_key, self._number_key) if key is not None]
        return known

    def is_dynamic(self, key: str) -> bool:
        return (
            self._dynamic_pattern is not None
            and key not in self._known_keys(self._tree)
            and bool(self._dynamic_pattern.fullmatch(key))
        )

    def is_undocumented(self, key: str) -> bool:
        return key not in self._known_keys(self._tree) and not self.is_dynamic(key)

    def notable_key_sql(self, key: str) -> str:
        """SQL: whether a key of the object says more than a documented value: an undocumented
        field, a subobject, a dynamic column, a malformed record's text."""
        known = [name for name, node in self._tree.items() if isinstance(node, str)]
        known += [key for key in (self._children_key, self._number_key) if key is not None]
        return f"NOT list_contains({varchar_list(known)}, {key})"

    def struct_type(self) -> str:
        """The object's DuckDB struct: documented and dynamic values and a malformed record's text
        as text, subobjects and undocumented fields as JSON, the children as a list of JSON texts."""
        return f"STRUCT({', '.join(f'{quote(key)} {type_}' for key, type_ in self._members())})"

    def _members(self) -> list[tuple[str, str]]:
        members = [(key, "VARCHAR" if isinstance(node, str) else "JSON") for key, node in self._tree.items()]
        members += [(key, "JSON") for key in self._undocumented] + [(key, "VARCHAR") for key in self.dynamic]
        if self._malformed_key is not None:
            members.append((self._malformed_key, "VARCHAR"))
        if self._number_key is not None:
            members.append((self._number_key, "BIGINT"))
        if self._children_key is not None and self._reads_children:
            members.append((self._children_key, "JSON[]"))
        return members

    def malformed_text(self, struct: str) -> str:
        """SQL: the JSON text of the malformed record the struct stands for, else null."""
        if self._malformed_key is None:
            return "NULL::VARCHAR"
        return f"{struct}[{literal(self._malformed_key)}]"

    def transform(self, json_value: str) -> str:
        """The object's struct (without undocumented fields) read from its JSON text; any value fits."""
        structure = _structure(self._tree) | {name: "VARCHAR" for name in self.dynamic}
        return f"json_transform({json_value}, {literal(json.dumps(structure))})"

    def columns(self, struct: str) -> list[tuple[str, str]]:
        """(column, expression) of every documented and dynamic column, from the object's struct."""
        return _columns(self._tree, struct) + [(name, f"{struct}[{literal(name)}]") for name in self.dynamic]

    @property
    def undocumented(self) -> tuple[str, ...]:
        return self._undocumented

    def case_collisions(self) -> set[str]:
        """The undocumented fields whose names equal another member's but for case."""
        members = [name for name, _ in self._members()]
        counts: dict[str, int] = {}
        for name in members:
            counts[name.lower()] = counts.get(name.lower(), 0) + 1
        return {key for key in self._undocumented if counts[key.lower()] > 1}

    def fragments(self, struct: str, keys: str, raw: str, prefix: str = "") -> str:
        """The undocumented fields' fragments: from the record's JSON text where it was kept
        (`raw`, see `case_collisions`), else from its struct."""
        from_raw = self.fragments_from_json(raw, struct, f"json_keys({raw})", prefix)
        return (
            f"CASE WHEN {raw} IS NOT NULL THEN {from_raw} ELSE {self.fragments_from_struct(struct, keys, prefix)} END"
        )

    def fragments_from_json(self, json_value: str, struct: str, keys: str, prefix: str = "") -> str:
        """The object's undocumented fields as a list of `"name":value` JSON fragments (see
        `_fragments`), their values extracted from its JSON text."""
        return self._fragments(struct, keys, f"list_zip({keys}, json_extract({json_value}, '$.*'))", prefix)

    def own_fragments(self, json_value: str, struct: str) -> str:
        """`fragments_from_json` without a prefix. An object without subobjects or dynamic columns,
        such as a child, loses its documented fields by a JSON merge patch that sets them to null:
        one pass over the object, which keeps the others (null ones too) in their order; what
        remains is its one fragment."""
        if _subtrees(self._tree) or self._dynamic_pattern is not None:
            return self.fragments_from_json(json_value, struct, f"json_keys({json_value})")
        patch = json.dumps(dict.fromkeys(self._known_keys(self._tree)))
        rest = f"(json_merge_patch({json_value}, {literal(patch)})::VARCHAR)[2:-2]"
        return f"list_filter([{rest}], lambda fragment: fragment <> '')"

    def fragments_from_struct(self, struct: str, keys: str, prefix: str = "") -> str:
        """`fragments_from_json` with the values read from the struct, which declares every
        undocumented field and subobject the keys name; a null value reads as SQL null there."""
        declared = [*self._undocumented, *(key for key, _ in _subtrees(self._tree))]
        if not declared:
            return "[]::VARCHAR[]"
        value = " ".join(f"WHEN {literal(key)} THEN {struct}[{literal(key)}]" for key in declared)
        pairs = f"list_zip({keys}, list_transform({keys}, lambda k: coalesce(CASE k {value} END, 'null')))"
        return self._fragments(struct, keys, pairs, prefix)

    def _fragments(self, struct: str, keys: str, pairs: str, prefix: str) -> str:
        """The object's undocumented fields as `"name":value` JSON fragments in the object's order,
        named by their dotted path after `prefix`, from `pairs` (key, JSON value) of its fields;
        an empty list when there are none. A documented subobject holding something else than an
        object, null or an empty array (PHP writes an empty object as `[]`: no values) is
        undocumented as a whole. The pairs are only computed for an object that has such fields."""
        return (
            f"CASE WHEN {self._has_undocumented(self._tree, struct, keys, 0)} "
            f"THEN {self._ordered_fragments(self._tree, pairs, prefix, 0)} ELSE []::VARCHAR[] END"
        )

    def _is_undocumented_sql(self, tree: _SourceTree, key: str) -> str:
        """SQL: whether `key` is an undocumented field of an object of `tree` (not one of its subobjects)."""
        known = f"list_contains({varchar_list(self._known_keys(tree))}, {key})"
        if tree is self._tree and self._dynamic_pattern is not None:
            # A CASE, not an AND: the pattern is only matched against the keys that are not known.
            pattern = literal(self._dynamic_pattern.pattern)
            return f"CASE WHEN {known} THEN false ELSE NOT regexp_full_match({key}, {pattern}) END"
        return f"NOT {known}"

    def _has_undocumented(self, tree: _SourceTree, struct: str, keys: str, depth: int) -> str:
        key = f"k{depth}"
        tests = [f"len(list_filter({keys}, lambda {key}: {self._is_undocumented_sql(tree, key)})) > 0"]
        for name, node in _subtrees(tree):
            member = f"{struct}[{literal(name)}]"
            nested_struct = f"json_transform({member}, {literal(json.dumps(_structure(node)))})"
            nested = self._has_undocumented(node, nested_struct, f"json_keys({member})", depth + 1)
            tests.append(
                f"coalesce(CASE json_type({member}) WHEN 'OBJECT' THEN {nested} "
                f"WHEN 'ARRAY' THEN json_array_length({member}) > 0 ELSE true END, false)"
            )
        return "(" + " OR ".join(tests) + ")"

    def _ordered_fragments(self, tree: _SourceTree, pairs: str, prefix: str, depth: int) -> str:
        entry = f"e{depth}"
        name, value = f"{entry}[1]", f"{entry}[2]"
        if not _subtrees(tree):
            return (
                f"list_transform(list_filter({pairs}, lambda {entry}: {self._is_undocumented_sql(tree, name)}), "
                f"lambda {entry}: to_json({literal(prefix)} || {name}) || ':' || {value})"
            )
        fragment = f"[to_json({literal(prefix)} || {name}) || ':' || {value}]"
        branches = []
        for key, node in _subtrees(tree):
            nested_pairs = f"list_zip(json_keys({value}), json_extract({value}, '$.*'))"
            nested = self._ordered_fragments(node, nested_pairs, f"{prefix}{key}.", depth + 1)
            branches.append(
                f"WHEN {name} = {literal(key)} THEN CASE json_type({value}) WHEN 'OBJECT' THEN {nested} "
                f"WHEN 'NULL' THEN []::VARCHAR[] "
                f"WHEN 'ARRAY' THEN CASE WHEN json_array_length({value}) = 0 THEN []::VARCHAR[] ELSE {fragment} END "
                f"ELSE {fragment} END"
            )
        branches.append(f"WHEN {self._is_undocumented_sql(tree, name)} THEN {fragment}")
        return f"flatten(list_transform({pairs}, lambda {entry}: CASE {' '.join(branches)} ELSE []::VARCHAR[] END))"


def _structure(tree: _SourceTree) -> dict[str, str]:
    """The `json_transform` structure of an object: documented values as text, subobjects as JSON."""
    return {key: "VARCHAR" if isinstance(node, str) else "JSON" for key, node in tree.items()}


def _subtrees(tree: _SourceTree) -> list[tuple[str, _SourceTree]]:
    return [(key, node) for key, node in tree.items() if not isinstance(node, str)]


def _columns(tree: _SourceTree, struct: str) -> list[tuple[str, str]]:
    columns = []
    for key, node in tree.items():
        member = f"{struct}[{literal(key)}]"
        if isinstance(node, str):
            columns.append((node, member))
        else:
            columns += _columns(node, f"json_transform({member}, {literal(json.dumps(_structure(node)))})")
    return columns


def varchar_list(items: list[str]) -> str:
    return f"[{', '.join(literal(item) for item in items)}]::VARCHAR[]"
