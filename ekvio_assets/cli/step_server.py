"""The server the report steps' processes fork from (see automation.jobs.report_run_config).

Started before this process imports Dagster, so that both import it at once on the two cores: the
server's preload is done when the report run asks for its first step process.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver

DEFINITIONS_MODULE = "ekvio_assets.definitions"
# The modules the server imports once: Dagster's executor (which it asks for first), the
# definitions, and the CLI's instance storage, which every step process opens (half a second of
# imports each otherwise). A module that is not there is skipped.
STEP_SERVER_PRELOAD = (
    "dagster._core.executor.multiprocess",
    DEFINITIONS_MODULE,
    "dagster._core.instance.factory",
    "ekvio_assets.cli.instance",
)


def start_step_server() -> None:
    """Starts the server now, with this process's environment, which must no longer change: the
    step processes get the server's (.env read and DAGSTER_HOME set before)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(STEP_SERVER_PRELOAD))
    multiprocessing.forkserver.ensure_running()
