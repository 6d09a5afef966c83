"""The companies file (EKVIO_COMPANIES): many Ekvio companies served by one deployment.

```yaml
companies:
  - key: north                      # names its assets (north/...), jobs, schedules and data folder
    api_url: https://north.ekvio.example
    token_env: EKVIO_TOKEN_NORTH    # the name of the variable that holds its token, never the token
    timezone: Asia/Yekaterinburg    # optional, else EKVIO_TIMEZONE
    start_date: 2024-01-01          # optional, else EKVIO_START_DATE
    file_host: https://files.north.example  # optional, else EKVIO_FILE_HOST
```

Every problem of the file is collected with the company and the field it is about, so that one
start reports them all; a token is only checked for presence, never read into a message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

COMPANY_KEY = re.compile(r"[a-z][a-z0-9_]{0,30}")
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_REQUIRED = ("key", "api_url", "token_env")
_OPTIONAL = ("timezone", "start_date", "file_host")


@dataclass(frozen=True)
class Company:
    key: str
    api_url: str
    token_env: str
    timezone: str | None = None
    start_date: date | None = None
    file_host: str | None = None


def api_url_problem(url: str) -> str | None:
    """Why `url` is not an API's base URL, or None."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"must be an http(s) URL such as https://api.ekvio.ru, got {url!r}"
    return None


def timezone_problem(name: str) -> str | None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return f"must be an IANA time zone such as Europe/Moscow, got {name!r}"
    return None


def file_host_problem(raw: str) -> str | None:
    """Why `raw` is not scheme://host[:port], or None; a value holding user info is not echoed."""
    parts = urlsplit(raw)
    if "@" in parts.netloc:
        return "must not hold user info (user:password@); give scheme://host[:port]"
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or not _port_readable(parts)
        or parts.path not in ("", "/")
        or "?" in raw
        or "#" in raw
    ):
        return (
            "must be scheme://host[:port], http or https with no path, query or fragment, "
            f"such as https://files.example.com:8443, got {raw!r}"
        )
    return None


def _port_readable(parts: SplitResult) -> bool:
    try:
        return parts.port is None or parts.port > 0
    except ValueError:  # not a number, or out of range
        return False


def read_companies(variable: str, path: Path, env: Mapping[str, str], problems: list[str]) -> tuple[Company, ...]:
    """The companies of the file at `path` (named by `variable`), adding every problem to `problems`."""
    # Imported only where a companies file is read: the CLI reads the settings before anything else.
    import yaml

    where = f"{variable} ({path})"
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        problems.append(f"{where} cannot be read: {error.strerror or error}")
        return ()
    except yaml.YAMLError as error:
        problems.append(f"{where} is not YAML: {error}")
        return ()
    items = document.get("companies") if isinstance(document, dict) else None
    if not isinstance(items, list) or not items:
        problems.append(f"{where} must hold a non-empty list `companies:`")
        return ()
    companies = []
    for number, item in enumerate(items, start=1):
        company = _company(f"{where}: company {number}", item, env, problems)
        if company is not None:
            companies.append(company)
    seen: set[str] = set()
    for company in companies:
        if company.key in seen:
            problems.append(f"{where}: the key {company.key!r} is given to more than one company")
        seen.add(company.key)
    return tuple(companies)


def _company(where: str, item: Any, env: Mapping[str, str], problems: list[str]) -> Company | None:
    if not isinstance(item, dict):
        problems.append(f"{where} must be a mapping of {', '.join(_REQUIRED + _OPTIONAL)}")
        return None
    key = item.get("key")
    if isinstance(key, str) and COMPANY_KEY.fullmatch(key):
        where = f"{where} ({key!r})"
    found = len(problems)
    for field in sorted(set(item) - set(_REQUIRED + _OPTIONAL), key=str):
        problems.append(f"{where}: unknown field {field!r}; the fields are {', '.join(_REQUIRED + _OPTIONAL)}")
    missing = [field for field in _REQUIRED if not isinstance(item.get(field), str) or not item[field].strip()]
    problems += [f"{where}: {field} is required (a text)" for field in missing]
    if missing:
        return None
    key = item["key"].strip()
    api_url = item["api_url"].strip().rstrip("/")
    token_env = item["token_env"].strip()
    if not COMPANY_KEY.fullmatch(key):
        problems.append(f"{where}: key must be lower-case letters, digits and _, starting with a letter, got {key!r}")
    if (problem := api_url_problem(api_url)) is not None:
        problems.append(f"{where}: api_url {problem}")
    if not _VARIABLE_NAME.fullmatch(token_env):
        problems.append(f"{where}: token_env must name an environment variable, such as EKVIO_TOKEN_NORTH")
    elif not env.get(token_env, "").strip():
        problems.append(f"{where}: token_env names {token_env}, which is not set: set it to the company's API token")
    timezone = _optional_text(where, item, "timezone", problems)
    if timezone is not None and (problem := timezone_problem(timezone)) is not None:
        problems.append(f"{where}: timezone {problem}")
    file_host = _optional_text(where, item, "file_host", problems)
    if file_host is not None and (problem := file_host_problem(file_host)) is not None:
        problems.append(f"{where}: file_host {problem}")
    start_date = _start_date(where, item.get("start_date"), problems)
    if len(problems) > found:
        return None
    return Company(key, api_url, token_env, timezone, start_date, file_host and file_host.rstrip("/"))


def _optional_text(where: str, item: dict[str, Any], field: str, problems: list[str]) -> str | None:
    value = item.get(field)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        problems.append(f"{where}: {field} must be a text, got {value!r}")
        return None
    return value.strip()


def _start_date(where: str, value: Any, problems: list[str]) -> date | None:
    # YAML reads 2024-01-01 as a date already; a quoted one is a text.
    if value is None or (isinstance(value, date) and not hasattr(value, "hour")):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        problems.append(f"{where}: start_date must be a date as YYYY-MM-DD, got {value!r}")
        return None
