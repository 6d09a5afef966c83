"""Runs a job in this process while a thread follows the run's events in the instance's event log."""

from __future__ import annotations

import importlib
import sys
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import dagster as dg

from ekvio_assets.automation.jobs import report_run_config
from ekvio_assets.cli.step_server import DEFINITIONS_MODULE, STEP_SERVER_PRELOAD

# Tags the runs one CLI command starts, so that its follower finds them among other processes' runs.
INVOCATION_TAG = "ekvio/cli_invocation"
# Dagster's console logger (the run's and each step process's, on stderr): silent, as the CLI prints
# its own progress from the event log, or every event, DEBUG included, with --verbose.
_CONSOLE = {False: "CRITICAL", True: "DEBUG"}
_POLL_SECONDS = 0.25
# The report steps fork from the CLI's step server (see step_server).
REPORT_RUN_CONFIG = report_run_config(preload_modules=STEP_SERVER_PRELOAD)


def definitions() -> dg.Definitions:
    return importlib.import_module(DEFINITIONS_MODULE).defs


def job_definition(name: str) -> dg.JobDefinition:
    """The job `name` of the definitions: how each step process rebuilds the run's job."""
    return definitions().resolve_job_def(name)


class _EventFollower(threading.Thread):
    """Feeds each event of the run tagged `tags` to `on_entry`, in order, until stopped; stopping
    reads the events still unread first."""

    def __init__(self, instance: dg.DagsterInstance, tags: Mapping[str, str], on_entry: Callable[[Any], None]):
        super().__init__(name="ekvio-assets event follower", daemon=True)
        self._instance, self._tags, self._on_entry = instance, dict(tags), on_entry
        self._stopping = threading.Event()
        self._error: BaseException | None = None

    def run(self) -> None:
        run_id: str | None = None
        cursor: str | None = None
        try:
            while True:
                last_round = self._stopping.is_set()
                if run_id is None:
                    records = self._instance.get_run_records(dg.RunsFilter(tags=self._tags), limit=1)
                    run_id = records[0].dagster_run.run_id if records else None
                while run_id is not None:
                    connection = self._instance.get_records_for_run(run_id, cursor=cursor, limit=1000)
                    for record in connection.records:
                        self._on_entry(record.event_log_entry)
                    cursor = connection.cursor
                    if not connection.has_more:
                        break
                if last_round:
                    return
                self._stopping.wait(_POLL_SECONDS)
        except BaseException as error:  # re-raised in the main thread by stop()
            self._error = error

    def stop(self) -> None:
        self._stopping.set()
        self.join()
        if self._error is not None:
            raise self._error


def execute(
    instance: dg.DagsterInstance,
    job_name: str,
    tags: Mapping[str, str],
    on_entry: Callable[[Any], None],
    verbose: bool,
    run_config: Mapping[str, Any] | None = None,
    asset_selection: Sequence[dg.AssetKey] | None = None,
) -> dg.JobExecutionResult:
    """Runs the job (its `asset_selection` only, where given); each of its events goes to
    `on_entry` (from another thread) while it runs."""
    tags = {**tags, INVOCATION_TAG: uuid.uuid4().hex}
    follower = _EventFollower(instance, tags, on_entry)
    follower.start()
    try:
        return dg.execute_job(
            dg.build_reconstructable_job(__name__, job_definition.__name__, (job_name,)),
            instance=instance,
            tags=tags,
            run_config={**(run_config or {}), "loggers": {"console": {"config": {"log_level": _CONSOLE[verbose]}}}},
            asset_selection=asset_selection,
        )
    finally:
        follower.stop()


def report_failure(result: dg.JobExecutionResult) -> None:
    """Prints each failed step's message to stderr."""
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
            print(f"{event.step_key} failed: {event.step_failure_data.error.message.strip()}", file=sys.stderr)
    print(f"Run {result.run_id} ({result.job_def.name}) failed; `ekvio-assets ui` shows its full log", file=sys.stderr)
