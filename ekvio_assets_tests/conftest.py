"""Shared fixtures: a small simulated company and the simulator serving it on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

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
