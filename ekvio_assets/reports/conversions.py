"""Typing the staged rows in DuckDB: each documented field's raw text converted once to its type,
and for a row that cannot be read, the problems spelled out and its raw values kept for
rejected_records."""

from __future__ import annotations

from ekvio_assets.reports.flatten import CHILD_NUMBER, EXTRA_FIELDS, MALFORMED, RECORD_NUMBER
from ekvio_assets.reports.specs import FieldType, ReportSpec
from ekvio_assets.storage.sql import literal, quote

# The conversions, as macros of the load's connection.
CONVERSION_MACROS = r"""
CREATE TEMP MACRO IF NOT EXISTS ekvio_blank(v) AS nullif(trim(v), '');
CREATE TEMP MACRO IF NOT EXISTS ekvio_integer(v) AS
    CASE WHEN TRY_CAST(v AS DOUBLE) = TRY_CAST(v AS BIGINT) THEN TRY_CAST(v AS BIGINT) END;
CREATE TEMP MACRO IF NOT EXISTS ekvio_boolean(v) AS TRY_CAST(ekvio_blank(v) AS BOOLEAN);
CREATE TEMP MACRO IF NOT EXISTS ekvio_timestamp(v) AS
    CASE WHEN contains(v, ':') THEN TRY_CAST(v AS TIMESTAMPTZ)
         WHEN regexp_full_match(trim(v), '-?[0-9]{1,11}(\.[0-9]+)?')
         THEN to_timestamp(TRY_CAST(trim(v) AS DOUBLE))
         WHEN regexp_full_match(trim(v), '[0-9]{12,13}')
         THEN to_timestamp(TRY_CAST(trim(v) AS DOUBLE) / 1000)
         ELSE TRY_CAST(ekvio_blank(v) AS TIMESTAMPTZ) END;
"""

# Unix times come in seconds (up to 11 digits) or milliseconds (12-13 digits); longer numbers are
# not instants and fall through to a failed cast, i.e. a reject, instead of an out-of-range error.
# A text with a colon is no number: it skips the patterns, which most date-times would only fail;
# the casts ignore the white space around a value by themselves.
_CONVERSIONS = {
    FieldType.TEXT: "{}",
    FieldType.INTEGER: "ekvio_integer({})",
    FieldType.BOOLEAN: "ekvio_boolean({})",
    FieldType.TIMESTAMP: "ekvio_timestamp({})",
}

_READABLE_TYPE = {
    FieldType.INTEGER: "an integer",
    FieldType.BOOLEAN: "a boolean",
    FieldType.TIMESTAMP: "a date-time",
}


def typed_select(spec: ReportSpec, dynamic: tuple[str, ...], staged_rows: str) -> str:
    """The staged rows typed; for a row that cannot be read, `_has_problem`, the `_problems` and its
    raw values as a struct (the staged row as rejected_records shows it), else null.

    Each value is converted once; the problems are spelled out only for the rows that have one.
    """
    typed = [(field, f"_typed_{number}") for number, field in enumerate(spec.columns)]
    conversions = [f"{_CONVERSIONS[field.type].format(quote(field.column))} AS {name}" for field, name in typed]
    checks = [(f"{MALFORMED} IS NOT NULL", "'record is not a JSON object'")]
    for field, name in typed:
        column = quote(field.column)
        if field.type is not FieldType.TEXT:
            # A CASE, not an AND: only its branches are evaluated for the rows that reach them.
            checks.append(
                (
                    f"CASE WHEN {name} IS NOT NULL OR {column} IS NULL THEN false ELSE trim({column}) <> '' END",
                    f"{literal(f'{field.column} is not {_READABLE_TYPE[field.type]}: ')} || {column}",
                )
            )
        if field.column in spec.key and field.column not in spec.nullable_key:
            checks.append((f"{MALFORMED} IS NULL AND {name} IS NULL", literal(f"key field {field.column} is missing")))
    problems = ", ".join(f"CASE WHEN {test} THEN {problem} END" for test, problem in checks)
    raw = [*(field.column for field in spec.columns), *dynamic, MALFORMED, EXTRA_FIELDS]
    selects = [
        RECORD_NUMBER,
        CHILD_NUMBER,
        *(f"{name} AS {quote(field.column)}" for field, name in typed),
        *(quote(name) for name in dynamic),
        EXTRA_FIELDS,
        "_has_problem",
        f"CASE WHEN _has_problem THEN list_filter([{problems}], lambda problem: problem IS NOT NULL) END AS _problems",
        f"CASE WHEN _has_problem THEN {{{', '.join(f'{literal(name)}: {quote(name)}' for name in raw)}}} END AS _raw",
    ]
    converted = f"SELECT *, {', '.join(conversions)} FROM ({staged_rows})"
    has_problem = f"CASE {' '.join(f'WHEN {test} THEN true' for test, _ in checks)} ELSE false END"
    checked = f"SELECT *, {has_problem} AS _has_problem FROM ({converted})"
    return f"SELECT {', '.join(selects)} FROM ({checked})"
