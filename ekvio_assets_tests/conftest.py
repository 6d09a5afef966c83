"""Shared fixtures and helpers: a small simulated company, the simulator serving it on loopback, the
real Definitions configured against it, and the ways tests read what a refresh loaded."""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import dagster as dg
import duckdb
import pytest

from ekvio_assets.api.retries import RetryPolicy
from ekvio_assets.automation.jobs import RECONCILE_JOB, REFRESH_JOB
from ekvio_assets.automation.partitions import daily_partitions, full_export_tags, partition_range_tags
from ekvio_assets.benchmark.truth import table_by_key as rows_by_key
from ekvio_assets.benchmark.truth import typed
from ekvio_assets.config import Settings
from ekvio_assets.definitions import build_definitions
from ekvio_assets.reports.specs import REPORTS, ReportSpec
from ekvio_assets.simulator import Dataset, DatasetConfig, generate, running_simulator


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The workers take tests in this order: the long ones first, or one of them ends the run alone.
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


SHARED_EXAMPLES = Path(__file__).resolve().parents[2] / "shared" / "ekvio-api" / "examples"
TEST_TOKEN = "test-token-Zq8-never-in-logs"


# The company-specific group columns of the vendor's course statistics example, as it writes them.
VENDOR_COURSE_GROUPS = {
    "group_region": "Волгоградская область",
    "group_city": "Волгоград",
    "group_role": "Руководитель",
    "group_position": "Менеджер",
    "group_team": "Команда ИТР",
    "group_department": "Управление",
    "group_function": "Программная разработка",
}

SIMULATED_DAYS = 30
# Written out rather than read from the specs: the report tables' assets the docs promise.
REPORT_ASSETS = frozenset(
    {
        "attempts",
        "material_statistics",
        "reported_materials",
        "course_statistics",
        "program_statistics",
        "reported_programs",
    }
)


@pytest.fixture(autouse=True)
def _signal_dispositions_kept() -> Iterator[None]:
    """Every test starts with the SIGINT and SIGTERM dispositions the worker started with: a Dagster
    run in-process leaves SIGTERM set to SIGINT's (ignored, if the suite runs in the background), and
    the simulator's main() sets handlers of its own; children of later tests would inherit them."""
    kept = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    yield
    for number, handler in kept.items():
        signal.signal(number, handler)


@pytest.fixture(scope="session")
def dataset() -> Dataset:
    """A month of a small company that ends with yesterday, so that its days are Dagster partitions."""
    today = datetime.now(ZoneInfo("Europe/Moscow")).date()
    start = today - timedelta(days=SIMULATED_DAYS)
    return generate(
        DatasetConfig(seed=11, learners=60, materials=16, courses=5, programs=4, start=start, days=SIMULATED_DAYS)
    )


@pytest.fixture
def simulator_factory(dataset: Dataset) -> Callable[..., AbstractContextManager[Any]]:
    def start(**options: Any) -> AbstractContextManager[Any]:
        options.setdefault("token", TEST_TOKEN)
        return running_simulator(options.pop("dataset", dataset), **options)

    return start


@pytest.fixture
def simulator(simulator_factory: Callable[..., AbstractContextManager[Any]]) -> Iterator[Any]:
    with simulator_factory() as running:
        yield running


def shared_folder(folder: Path) -> Path:
    """A folder of ../shared (the API's docs and the vendor's files); in CI its absence fails the
    test instead of skipping it."""
    if folder.is_dir():
        return folder
    if os.environ.get("CI"):
        pytest.fail(f"{folder} is missing: ../shared must be beside the repository in CI")
    pytest.skip(f"{folder} is not beside the repository")


@pytest.fixture
def vendor_examples() -> Path:
    return shared_folder(SHARED_EXAMPLES)


# --- the API client and crafted payloads -----------------------------------------------------------

# Retries in milliseconds: the simulator recovers at once.
FAST_RETRIES = RetryPolicy(max_attempts=4, backoff_base_seconds=0.01, backoff_cap_seconds=0.05)


def result_records(path: Path) -> list[Any]:
    """The `data` array of a (small) result file."""
    return json.loads(path.read_text(encoding="utf-8"))["data"]


def attempt_record(attempt_id: str, updated_at: str, **fields: Any) -> dict[str, Any]:
    """A test attempt as the API sends it, changed at `updated_at`; `fields` add or replace fields."""
    return {
        "id": attempt_id,
        "material_id": 742,
        "login": "ivanov",
        "status": "completed",
        "number": 1,
        "points": 10,
        "percent": 100,
        "q_count": 5,
        "q_success": 5,
        "q_fail": 0,
        "q_checking": 0,
        "started_at": "2024-03-01T10:00:00+03:00",
        "ended_at": "2024-03-01T10:05:00+03:00",
        "created_at": "2024-03-01T10:05:00+03:00",
        "updated_at": updated_at,
        **fields,
    }


# --- the real Definitions against a running simulator ---------------------------------------------


def settings_for(monkeypatch: pytest.MonkeyPatch, running: Any, data_dir: Path, **extra: str) -> Settings:
    """Points the EKVIO_* settings at a running simulator, with `data_dir`, and reads them."""
    values = {
        "EKVIO_API_URL": running.url,
        "EKVIO_API_TOKEN": running.token,
        "EKVIO_DATA_DIR": str(data_dir),
        "EKVIO_POLL_INTERVAL_SECONDS": "0.02",
        "EKVIO_START_DATE": running.dataset.config.start.isoformat(),
        **extra,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return Settings.from_env()


@pytest.fixture
def configure_api(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Settings]:
    """`settings_for` with this test's monkeypatch."""
    return functools.partial(settings_for, monkeypatch)


def full_export(
    settings: Settings, reports: tuple[str, ...] = (), instance: dg.DagsterInstance | None = None
) -> dg.ExecuteInProcessResult:
    """reconcile_job (every report in full) of the real Definitions, or only the assets of the
    steps named in `reports`."""
    definitions = build_definitions(settings)
    selection = [key for report in reports for key in definitions.resolve_assets_def(report).keys]
    return definitions.resolve_job_def(RECONCILE_JOB).execute_in_process(
        instance=instance or dg.DagsterInstance.ephemeral(),
        tags=full_export_tags(daily_partitions(settings), settings.lookback_days),
        asset_selection=selection or None,
        raise_on_error=False,
    )


def day_key(running: Any, index: int) -> str:
    return running.dataset.day_window(index)[0].date().isoformat()


def run_job(settings: Settings, job_name: str, tags: dict[str, str], instance: dg.DagsterInstance | None = None):
    job = build_definitions(settings).resolve_job_def(job_name)
    result = job.execute_in_process(
        instance=instance or dg.DagsterInstance.ephemeral(), tags=tags, raise_on_error=False
    )
    assert result.success
    return result


def refresh_days(settings: Settings, running: Any, first: int, last: int | None = None, **kwargs: Any):
    return run_job(
        settings, REFRESH_JOB, partition_range_tags(day_key(running, first), day_key(running, last or first)), **kwargs
    )


def table_by_key(database: Path, spec: ReportSpec) -> dict[tuple[Any, ...], dict[str, Any]]:
    with duckdb.connect(str(database), read_only=True) as con:
        return rows_by_key(con, spec.name, spec.key)


def truth_by_key(running: Any, spec: ReportSpec, as_of: datetime | None) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {tuple(row[c] for c in spec.key): row for row in running.dataset.truth(spec.name, as_of=as_of)}


def report_truth(
    running: Any, spec: ReportSpec, as_of: datetime | None
) -> list[tuple[ReportSpec, dict[tuple[Any, ...], dict[str, Any]]]]:
    """The rows by key the simulator sent for the report's table, and for its table of parents if
    it has one, as of `as_of`."""
    tables = [(spec, truth_by_key(running, spec, as_of))]
    if spec.parents is not None:
        parents = running.dataset.parents_truth(spec.name, as_of=as_of)
        tables.append((spec.parents, {tuple(row[c] for c in spec.parents.key): row for row in parents}))
    return tables


def assert_report_equals_truth(settings: Settings, running: Any, spec: ReportSpec, as_of: datetime | None) -> None:
    for table_spec, truth in report_truth(running, spec, as_of):
        table = table_by_key(settings.working_database_path, table_spec)
        assert table.keys() == truth.keys(), table_spec.name
        for key, expected in truth.items():
            assert typed(table[key]) == typed(expected), (table_spec.name, key)


def assert_tables_equal_truth(settings: Settings, running: Any, as_of: datetime | None) -> None:
    for spec in REPORTS:
        assert_report_equals_truth(settings, running, spec, as_of)


def end_of_day(running: Any, index: int) -> datetime:
    return running.dataset.day_window(index)[1]


def cli_refresh(data_dir: Path, running: Any, output: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EKVIO_", "DAGSTER_"))}
    env.update(
        EKVIO_API_URL=running.url,
        EKVIO_API_TOKEN=running.token,
        EKVIO_DATA_DIR=str(data_dir),
        EKVIO_POLL_INTERVAL_SECONDS="0.05",
        EKVIO_START_DATE=running.dataset.config.start.isoformat(),
    )
    return subprocess.Popen(
        [sys.executable, "-m", "ekvio_assets.cli", "refresh", *args],
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        # Files, not pipes: a full pipe would stall one run while it holds a pool slot.
        stdout=output.with_suffix(".out").open("w"),
        stderr=output.with_suffix(".err").open("w"),
    )


def free_port() -> int:
    """A loopback port nobody listens on now, for a server a test starts in another process."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def clean_environment(**env: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith(("EKVIO_", "DAGSTER_"))}, **env}


def run_cli(folder: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ekvio_assets.cli", *args],
        cwd=folder,
        env=clean_environment(**env),
        capture_output=True,
        text=True,
        timeout=300,
    )


# --- what the docs promise --------------------------------------------------------------------------

ANALYSTS_GUIDE = Path(__file__).resolve().parents[1] / "docs" / "analysts.md"
EXAMPLE_QUERIES_HEADING = "## Example queries"


def analyst_queries() -> list[str]:
    """The ```sql blocks of the analysts' guide's example queries, as an analyst copies them."""
    text = ANALYSTS_GUIDE.read_text(encoding="utf-8")
    section = text[text.index(EXAMPLE_QUERIES_HEADING) :]
    next_section = section.find("\n## ", 1)
    return re.findall(r"```sql\n(.*?)```", section if next_section < 0 else section[:next_section], re.S)
