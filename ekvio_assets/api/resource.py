"""The Ekvio API as a Dagster resource, with the embedded simulator as its default peer."""

from __future__ import annotations

from contextlib import AbstractContextManager, ExitStack
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field, PrivateAttr

from ekvio_assets.api.client import TASK_STATUS_PATH, EkvioClient, ExportedFile
from ekvio_assets.api.retries import RetryPolicy
from ekvio_assets.api.windows import ExportWindow
from ekvio_assets.reports.specs import ReportSpec

DEMO_DAYS = 60


def _embedded_simulator() -> AbstractContextManager[Any]:
    """The embedded simulator with its company's last two months, so recent partitions hold data.
    Imported here: a run against a real API never loads the simulator (nor pays for importing it)."""
    from ekvio_assets.simulator import DatasetConfig, generate, running_simulator

    return running_simulator(generate(DatasetConfig(start=date.today() - timedelta(days=DEMO_DAYS), days=DEMO_DAYS)))


class EkvioApiResource(dg.ConfigurableResource):
    """Creates Ekvio report tasks, polls them and streams their files into the raw archive.

    With no `api_url` it starts the embedded Ekvio simulator (demo data) on a free loopback port
    for the duration of the step, and says so in the log.
    """

    api_url: str | None = Field(default=None, description="Base URL of the company's Ekvio API (EKVIO_API_URL); unset: the embedded simulator")
    api_token: str | None = Field(default=None, description="Bearer token (EKVIO_API_TOKEN), read through EnvVar")
    poll_interval_seconds: float = Field(description="Pause between task status polls (EKVIO_POLL_INTERVAL_SECONDS)")
    poll_timeout_seconds: float = Field(description="Give up on a task after this long (EKVIO_POLL_TIMEOUT_SECONDS)")
    busy_wait_timeout_seconds: float = Field(default=900.0, description="How long to keep retrying while another task of the report runs (Ekvio error 1007)")
    request_timeout_seconds: float = Field(default=120.0, description="Timeout of one HTTP request")
    max_attempts: int = Field(default=6, description="Attempts per HTTP call on transient faults")
    backoff_base_seconds: float = Field(default=1.0, description="First retry delay; doubles per attempt, with jitter")
    report_paths: dict[str, str] = Field(default_factory=dict, description="Per-report path overrides (EKVIO_<REPORT>_PATH), e.g. {\"attempts\": \"/v2/materials/tests/attempts\"}")
    report_methods: dict[str, str] = Field(default_factory=dict, description="Per-report method overrides, GET or POST (EKVIO_<REPORT>_METHOD)")
    task_status_path: str = Field(default=TASK_STATUS_PATH, description="Path of the task status poll; /v2/integration/{task_id} works the same")
    file_host: str | None = Field(default=None, description="scheme://host[:port] that replaces those of every result file URL (EKVIO_FILE_HOST); unset: the URLs as given")

    _client: EkvioClient | None = PrivateAttr(default=None)
    _resources: ExitStack | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        log = context.log or dg.get_dagster_logger()
        self._resources = ExitStack()
        base_url, token = self.api_url, self.api_token
        if base_url is None:
            simulator = self._resources.enter_context(_embedded_simulator())
            base_url, token = simulator.url, simulator.token
            # Info, not a warning: the CLI says it once for all steps, the run's log for each.
            log.info(f"EKVIO_API_URL is not set: using the embedded Ekvio simulator at {base_url} with its demo data set")
        elif not token:
            raise dg.Failure("EKVIO_API_URL is set but EKVIO_API_TOKEN is empty: set the company's API token")
        self._client = EkvioClient(
            base_url,
            token or "",
            poll_interval_seconds=self.poll_interval_seconds,
            poll_timeout_seconds=self.poll_timeout_seconds,
            busy_wait_timeout_seconds=self.busy_wait_timeout_seconds,
            request_timeout_seconds=self.request_timeout_seconds,
            retry=RetryPolicy(max_attempts=self.max_attempts, backoff_base_seconds=self.backoff_base_seconds),
            report_paths=self.report_paths,
            report_methods=self.report_methods,
            task_status_path=self.task_status_path,
            file_host=self.file_host,
            log=log,
        )
        self._resources.callback(self._client.close)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._resources is not None:
            self._resources.close()

    def export(self, spec: ReportSpec, window: ExportWindow, destination_dir: Path) -> ExportedFile:
        if self._client is None:
            raise RuntimeError("EkvioApiResource used outside a Dagster execution")
        return self._client.export(spec, window, destination_dir)
