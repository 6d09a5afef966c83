"""Result files: where they are fetched from and what a downloaded one holds."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import ijson

from ekvio_assets.api.errors import ekvio_errors

# How much of a file that is no JSON its description quotes.
_HEAD_CHARACTERS = 60


def with_file_host(url: str, file_host: str | None) -> str:
    """An http(s) `url` moved to `file_host` (`scheme://host[:port]`), keeping its path and query.

    Some installations answer with file URLs on a host name only their own servers reach (the
    vendor's SDK rewrites them the same way). Any other URL is left as it is, to be refused.
    """
    parts = urlsplit(url)
    if file_host is None or parts.scheme not in ("http", "https"):
        return url
    host = urlsplit(file_host)
    return urlunsplit((host.scheme, host.netloc, parts.path, parts.query, ""))


def same_origin(url: str, other: str) -> bool:
    return _origin(url) == _origin(other)


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname, parts.port or {"http": 80, "https": 443}.get(parts.scheme)


@dataclass(frozen=True)
class ResultContent:
    """What a downloaded result file holds at its top level."""

    has_data: bool
    errors: list[Any] = field(default_factory=list)  # the entries of its `errors` member
    description: str = ""  # for a file with neither data nor errors: what it holds instead


def inspect_result_file(path: Path) -> ResultContent:
    """Whether the file's top-level object has a `data` member, an `errors` member, or neither.

    The top-level keys are read as a stream until `data` or `errors` comes, so a report of hundreds of
    megabytes is not parsed here: a file cut short after `{"data": [` has data (the loader says what
    is wrong with it), and only an `errors` member's own value is read.
    """
    if path.stat().st_size == 0:
        return ResultContent(False, description="an empty body")
    first, keys = "", []
    with path.open("rb") as file:
        events = ijson.parse(file, use_float=True)
        try:
            _, first, _ = next(events)
            if first != "start_map":
                return ResultContent(False, description=f"a JSON {first.removeprefix('start_')}, not an object")
            for prefix, event, key in events:
                if prefix or event != "map_key":
                    continue
                keys.append(key)
                if key == "data":
                    return ResultContent(True)
                if key == "errors" and (errors := ekvio_errors({"errors": _value(events)})):
                    return ResultContent(False, errors)
        except (ijson.JSONError, UnicodeDecodeError):
            if first != "start_map":
                head = _head(path)
                return ResultContent(False, description=f"no JSON (it begins {head!r})" if head else "only white space")
            return ResultContent(False, description=f"a JSON object that breaks off {_keys(keys)}")
    return ResultContent(False, description=f"a JSON object without data or errors {_keys(keys)}")


def _value(events: Iterator[tuple[str, str, Any]]) -> Any:
    """The value whose events come next."""
    builder = ijson.ObjectBuilder()
    depth = 0
    for _, event, value in events:
        builder.event(event, value)
        depth += event in ("start_map", "start_array")
        depth -= event in ("end_map", "end_array")
        if depth == 0:
            break
    return builder.value


def _keys(keys: list[str]) -> str:
    return f"(keys: {', '.join(repr(key[:40]) for key in keys[:10])})" if keys else "(no keys)"


def _head(path: Path) -> str:
    with path.open("rb") as file:
        head = file.read(_HEAD_CHARACTERS * 4).decode("utf-8", errors="replace")
    return " ".join(head.split())[:_HEAD_CHARACTERS]
