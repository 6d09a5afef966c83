"""Shared fixtures: a small simulated company and the simulator serving it on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from ekvio_assets.automation.jobs import RECONCILE_JOB
from ekvio_assets.automation.partitions import daily_partitions, full_export_tags
from ekvio_assets.config import Settings
from ekvio_assets.definitions import build_definitions
from ekvio_assets.simulator import Dataset, DatasetConfig, generate, running_simulator

SHARED_EXAMPLES = Path(__file__).resolve().parents[2] / "shared" / "ekvio-api" / "examples"
TEST_TOKEN = "test-token-Zq8-never-in-logs"


SIMULATED_DAYS = 30


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


@pytest.fixture
def vendor_examples() -> Path:
    if not SHARED_EXAMPLES.is_dir():
        pytest.skip("../shared/ekvio-api/examples is not beside the repository")
    return SHARED_EXAMPLES


@pytest.fixture
def configure_api(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Settings]:
    """Points the EKVIO_* settings at a running simulator, with `data_dir`, and reads them."""

    def settings_for(running: Any, data_dir: Path, **extra: str) -> Settings:
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

    return settings_for


@pytest.fixture
def run_full_export() -> Callable[..., dg.ExecuteInProcessResult]:
    """Runs reconcile_job (every report in full) of the real Definitions, or only the assets of
    the steps named in `reports`."""

    def run(
        settings: Settings, reports: tuple[str, ...] = (), instance: dg.DagsterInstance | None = None
    ) -> dg.ExecuteInProcessResult:
        definitions = build_definitions(settings)
        selection = [key for report in reports for key in definitions.resolve_assets_def(report).keys]
        return definitions.resolve_job_def(RECONCILE_JOB).execute_in_process(
            instance=instance or dg.DagsterInstance.ephemeral(),
            tags=full_export_tags(daily_partitions(settings), settings.lookback_days),
            asset_selection=selection or None,
            raise_on_error=False,
        )

    return run
