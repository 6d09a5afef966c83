"""The Ekvio API as a Dagster resource: the client of one company's API for the duration of a step."""

from __future__ import annotations

import logging
from contextlib import ExitStack
from pathlib import Path

import dagster as dg
from pydantic import Field, PrivateAttr

from ekvio_assets.api.client import TASK_STATUS_PATH, EkvioClient, ExportedFile, ReportEndpoint
from ekvio_assets.api.retries import RetryPolicy
from ekvio_assets.api.setting_names import API_TOKEN, API_URL
from ekvio_assets.api.windows import ExportWindow

# A step's log (Dagster's log manager is an adapter) or a plain logger outside a run.
Log = logging.Logger | logging.LoggerAdapter


class EkvioApiResource(dg.ConfigurableResource):
    """Creates Ekvio report tasks, polls them and streams their files into the raw archive.

    `_peer` says where the client goes: the configured URL with its token here; a subclass may start
    a peer of its own (the embedded simulator when no URL is configured, chosen in `definitions.py`).
    """

    api_url: str | None = Field(default=None, description="Base URL of the company's Ekvio API (EKVIO_API_URL)")
    api_token: str | None = Field(default=None, description="Bearer token (EKVIO_API_TOKEN), read through EnvVar")
    poll_interval_seconds: float = Field(description="Pause between task status polls (EKVIO_POLL_INTERVAL_SECONDS)")
    poll_timeout_seconds: float = Field(description="Give up on a task after this long (EKVIO_POLL_TIMEOUT_SECONDS)")
    busy_wait_timeout_seconds: float = Field(
        default=900.0, description="How long to keep retrying while another task of the report runs (Ekvio error 1007)"
    )
    request_timeout_seconds: float = Field(default=120.0, description="Timeout of one HTTP request")
    max_attempts: int = Field(default=6, description="Attempts per HTTP call on transient faults")
    backoff_base_seconds: float = Field(default=1.0, description="First retry delay; doubles per attempt, with jitter")
    report_paths: dict[str, str] = Field(
        default_factory=dict,
        description="Per-report path overrides (EKVIO_<REPORT>_PATH), "
        'e.g. {"attempts": "/v2/materials/tests/attempts"}',
    )
    report_methods: dict[str, str] = Field(
        default_factory=dict, description="Per-report method overrides, GET or POST (EKVIO_<REPORT>_METHOD)"
    )
    task_status_path: str = Field(
        default=TASK_STATUS_PATH, description="Path of the task status poll; /v2/integration/{task_id} works the same"
    )
    file_host: str | None = Field(
        default=None,
        description="scheme://host[:port] that replaces those of every result file URL (EKVIO_FILE_HOST); "
        "unset: the URLs as given",
    )

    _client: EkvioClient | None = PrivateAttr(default=None)
    _resources: ExitStack | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        log = context.log or dg.get_dagster_logger()
        self._resources = ExitStack()
        base_url, token = self._peer(self._resources, log)
        self._client = EkvioClient(
            base_url,
            token,
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

    def _peer(self, resources: ExitStack, log: Log) -> tuple[str, str]:
        """The base URL and the token of the API the step talks to; `resources` closes with the step."""
        if not self.api_url:
            raise dg.Failure(f"{API_URL} is not set: set the base URL of the company's Ekvio API")
        if not self.api_token:
            raise dg.Failure(f"{API_URL} is set but {API_TOKEN} is empty: set the company's API token")
        return self.api_url, self.api_token

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._resources is not None:
            self._resources.close()

    def export(self, report: ReportEndpoint, window: ExportWindow, destination_dir: Path) -> ExportedFile:
        if self._client is None:
            raise RuntimeError("EkvioApiResource used outside a Dagster execution")
        return self._client.export(report, window, destination_dir)
