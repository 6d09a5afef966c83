"""The embedded default: with no EKVIO_API_URL, each step talks to a simulator of its own, started
on a free loopback port with a demo company, and says so in its log."""

from __future__ import annotations

from contextlib import ExitStack
from datetime import date, timedelta

from ekvio_assets.api.resource import EkvioApiResource, Log
from ekvio_assets.api.setting_names import API_URL
from ekvio_assets.simulator.generator import DatasetConfig, generate
from ekvio_assets.simulator.server import running_simulator

# The demo company's activity: the last two months, so that the recent partitions hold data.
DEMO_DAYS = 60


class EmbeddedSimulatorApiResource(EkvioApiResource):
    """The Ekvio API resource when no API URL is configured: the embedded Ekvio simulator with demo data."""

    def _peer(self, resources: ExitStack, log: Log) -> tuple[str, str]:
        company = DatasetConfig(start=date.today() - timedelta(days=DEMO_DAYS), days=DEMO_DAYS)
        simulator = resources.enter_context(running_simulator(generate(company)))
        # Info, not a warning: the CLI says it once for all steps, the run's log for each.
        log.info(f"{API_URL} is not set: using the embedded Ekvio simulator at {simulator.url} with its demo data set")
        return simulator.url, simulator.token
