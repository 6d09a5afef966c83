"""The EKVIO_* settings, read and validated in one place.

A bad value is reported at start (when Dagster loads the code location, or when the CLI starts)
with every problem named, instead of as a stack trace deep inside a run. The API token is only
checked for presence here: its value is read by Dagster through `EnvVar` and never kept by us.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from ekvio_assets.api.setting_names import (
    API_TOKEN,
    API_URL,
    FILE_HOST,
    report_method_variable,
    report_path_variable,
)
from ekvio_assets.companies import Company, api_url_problem, file_host_problem, read_companies, timezone_problem
from ekvio_assets.reports.specs import REPORTS
from ekvio_assets.storage.archive import ARCHIVE_FOLDER

DATA_DIR = "EKVIO_DATA_DIR"
TIMEZONE = "EKVIO_TIMEZONE"
POLL_INTERVAL = "EKVIO_POLL_INTERVAL_SECONDS"
POLL_TIMEOUT = "EKVIO_POLL_TIMEOUT_SECONDS"
START_DATE = "EKVIO_START_DATE"
MAX_WINDOW_DAYS = "EKVIO_MAX_WINDOW_DAYS"
LOOKBACK_DAYS = "EKVIO_LOOKBACK_DAYS"
FRESHNESS_HOURS = "EKVIO_FRESHNESS_HOURS"
MAX_ATTEMPTS = "EKVIO_MAX_ATTEMPTS"
RETRY_BACKOFF = "EKVIO_RETRY_BACKOFF_SECONDS"
ASSET_OWNERS = "EKVIO_ASSET_OWNERS"
COMPANIES = "EKVIO_COMPANIES"


DEFAULT_DATA_DIR = "data"
DEFAULT_TIMEZONE = "Europe/Moscow"
DEFAULT_POLL_INTERVAL_SECONDS = 10.0
# The embedded simulator finishes a task in seconds; polling it every 10 s would only slow the demo.
EMBEDDED_POLL_INTERVAL_SECONDS = 1.0
DEFAULT_POLL_TIMEOUT_SECONDS = 3600.0
DEFAULT_START_DATE = date(2024, 1, 1)
# One export task per report covers up to this many days; a longer backfill is split.
DEFAULT_MAX_WINDOW_DAYS = 92
DEFAULT_LOOKBACK_DAYS = 14
DEFAULT_FRESHNESS_HOURS = 36.0
# Per HTTP call on a transient fault; the delay doubles from the backoff, with jitter.
DEFAULT_MAX_ATTEMPTS = 6
DEFAULT_RETRY_BACKOFF_SECONDS = 1.0
DEFAULT_ASSET_OWNERS = ("team:learning-analytics",)
# What Dagster accepts as an owner: an e-mail address or a team.
_OWNER = re.compile(r"[^@\s,]+@[^@\s,]+\.[^@\s,]+|team:[A-Za-z0-9_-]+")


class ConfigError(ValueError):
    """One or more EKVIO_* settings are missing or malformed."""


@dataclass(frozen=True)
class Settings:
    api_url: str | None
    data_dir: Path
    timezone: str
    poll_interval_seconds: float
    poll_timeout_seconds: float
    start_date: date = DEFAULT_START_DATE
    max_window_days: int = DEFAULT_MAX_WINDOW_DAYS
    lookback_days: int = DEFAULT_LOOKBACK_DAYS
    freshness_hours: float = DEFAULT_FRESHNESS_HOURS
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    retry_backoff_seconds: float = DEFAULT_RETRY_BACKOFF_SECONDS
    # scheme://host[:port] that replaces those of every result file URL; None: the URLs as given.
    file_host: str | None = None
    # Per report name, where set: its path and its method (upper case), instead of the spec's.
    report_paths: Mapping[str, str] = field(default_factory=dict)
    report_methods: Mapping[str, str] = field(default_factory=dict)
    # Shown as every asset's owners in the Dagster UI.
    asset_owners: tuple[str, ...] = DEFAULT_ASSET_OWNERS
    # The variable that holds the API token (read by Dagster through EnvVar, never kept here).
    token_variable: str = API_TOKEN
    # A deployment of many companies (EKVIO_COMPANIES): all of them here, and each company's own
    # settings (`per_company`) name the company they are of.
    companies: tuple[Company, ...] = ()
    company: str | None = None

    @property
    def uses_embedded_simulator(self) -> bool:
        return self.api_url is None

    def per_company(self) -> list[Settings]:
        """The settings of each company of a companies file, each with its data in its own folder;
        without one, these settings alone."""
        if not self.companies:
            return [self]
        return [
            dataclasses.replace(
                self,
                api_url=company.api_url,
                token_variable=company.token_env,
                data_dir=self.data_dir / company.key,
                timezone=company.timezone or self.timezone,
                start_date=company.start_date or self.start_date,
                file_host=company.file_host or self.file_host,
                companies=(),
                company=company.key,
            )
            for company in self.companies
        ]

    @property
    def database_path(self) -> Path:
        """The published file analysts open."""
        return self.data_dir / "ekvio.duckdb"

    @property
    def working_database_path(self) -> Path:
        """The database Dagster writes (see storage/warehouse.py)."""
        return self.data_dir / "work" / "ekvio.duckdb"

    @property
    def raw_dir(self) -> Path:
        return self.data_dir / ARCHIVE_FOLDER

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        problems: list[str] = []

        api_url = _optional(env, API_URL)
        companies_file = _optional(env, COMPANIES)
        companies: tuple[Company, ...] = ()
        if companies_file is not None:
            companies = read_companies(COMPANIES, Path(companies_file).expanduser(), env, problems)
            if api_url is not None:
                problems.append(
                    f"{API_URL} is a single company's setting: with {COMPANIES} set, each company of the file "
                    "has its own api_url and token_env; unset one of the two"
                )
        elif api_url is not None:
            api_url = api_url.rstrip("/")
            if (problem := api_url_problem(api_url)) is not None:
                problems.append(f"{API_URL} {problem}")
            if _optional(env, API_TOKEN) is None:
                problems.append(f"{API_URL} is set, so {API_TOKEN} must be set to the company's API token")

        timezone = _optional(env, TIMEZONE) or DEFAULT_TIMEZONE
        if (problem := timezone_problem(timezone)) is not None:
            problems.append(f"{TIMEZONE} {problem}")

        default_interval = DEFAULT_POLL_INTERVAL_SECONDS if api_url or companies else EMBEDDED_POLL_INTERVAL_SECONDS
        poll_interval = _positive_number(env, POLL_INTERVAL, default_interval, problems)
        poll_timeout = _positive_number(env, POLL_TIMEOUT, DEFAULT_POLL_TIMEOUT_SECONDS, problems)
        start_date = _date(env, START_DATE, DEFAULT_START_DATE, problems)
        max_window_days = _positive_whole(env, MAX_WINDOW_DAYS, DEFAULT_MAX_WINDOW_DAYS, "days", problems)
        lookback_days = _positive_whole(env, LOOKBACK_DAYS, DEFAULT_LOOKBACK_DAYS, "days", problems)
        freshness_hours = _positive_number(env, FRESHNESS_HOURS, DEFAULT_FRESHNESS_HOURS, problems)
        max_attempts = _positive_whole(env, MAX_ATTEMPTS, DEFAULT_MAX_ATTEMPTS, "attempts", problems)
        retry_backoff = _positive_number(env, RETRY_BACKOFF, DEFAULT_RETRY_BACKOFF_SECONDS, problems)
        file_host = _file_host(env, problems)
        report_paths, report_methods = _report_routes(env, problems)
        asset_owners = _asset_owners(env, problems)

        if problems:
            raise ConfigError("Invalid Ekvio configuration:\n- " + "\n- ".join(problems))
        return cls(
            api_url=api_url,
            data_dir=Path(_optional(env, DATA_DIR) or DEFAULT_DATA_DIR).expanduser().absolute(),
            timezone=timezone,
            poll_interval_seconds=poll_interval,
            poll_timeout_seconds=poll_timeout,
            start_date=start_date,
            max_window_days=max_window_days,
            lookback_days=lookback_days,
            freshness_hours=freshness_hours,
            max_attempts=max_attempts,
            retry_backoff_seconds=retry_backoff,
            file_host=file_host,
            report_paths=report_paths,
            report_methods=report_methods,
            asset_owners=asset_owners,
            companies=companies,
        )


def _optional(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _positive_number(env: Mapping[str, str], name: str, default: float, problems: list[str]) -> float:
    raw = _optional(env, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        problems.append(f"{name} must be a positive number, got {raw!r}")
    return value


def _positive_whole(env: Mapping[str, str], name: str, default: int, unit: str, problems: list[str]) -> int:
    raw = _optional(env, name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) < 1:
        problems.append(f"{name} must be a whole number of {unit}, at least 1, got {raw!r}")
        return default
    return int(raw)


def _date(env: Mapping[str, str], name: str, default: date, problems: list[str]) -> date:
    raw = _optional(env, name)
    if raw is None:
        return default
    try:
        return date.fromisoformat(raw)
    except ValueError:
        problems.append(f"{name} must be a date as YYYY-MM-DD, got {raw!r}")
        return default


def _file_host(env: Mapping[str, str], problems: list[str]) -> str | None:
    raw = _optional(env, FILE_HOST)
    if raw is None:
        return None
    if (problem := file_host_problem(raw)) is not None:
        problems.append(f"{FILE_HOST} {problem}")
        return None
    return raw.rstrip("/")


def _report_routes(env: Mapping[str, str], problems: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """The reports' paths and methods set by EKVIO_<REPORT>_PATH and EKVIO_<REPORT>_METHOD."""
    paths, methods = {}, {}
    for spec in REPORTS:
        path = _optional(env, report_path_variable(spec.name))
        if path is not None:
            if not path.startswith("/") or path.startswith("//") or any(c in path for c in "?# \t"):
                problems.append(
                    f"{report_path_variable(spec.name)} must be a path that starts with /, with no scheme, "
                    f"host or query, such as {spec.path}, got {path!r}"
                )
            paths[spec.name] = path
        method = _optional(env, report_method_variable(spec.name))
        if method is not None:
            if method.upper() not in ("GET", "POST"):
                problems.append(f"{report_method_variable(spec.name)} must be GET or POST, got {method!r}")
            methods[spec.name] = method.upper()
    return paths, methods


def _asset_owners(env: Mapping[str, str], problems: list[str]) -> tuple[str, ...]:
    raw = _optional(env, ASSET_OWNERS)
    if raw is None:
        return DEFAULT_ASSET_OWNERS
    owners = tuple(owner.strip() for owner in raw.split(",") if owner.strip())
    wrong = [owner for owner in owners if not _OWNER.fullmatch(owner)]
    if wrong or not owners:
        problems.append(
            f"{ASSET_OWNERS} must be a comma-separated list of e-mail addresses or team:NAME, "
            f"such as team:hr-analytics,anna@example.com, got {raw!r}"
        )
        return DEFAULT_ASSET_OWNERS
    return owners
