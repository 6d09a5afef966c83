"""`ekvio-assets refresh | simulator`: the project's command line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import dagster as dg
import duckdb

from ekvio_assets.config import ConfigError, Settings
from ekvio_assets.jobs import REFRESH_JOB
from ekvio_assets.reports.specs import REPORTS


def refresh_job_definition() -> dg.JobDefinition:
    """The refresh job, importable so that Dagster can rebuild it in each step process."""
    from ekvio_assets.definitions import defs

    return defs.resolve_job_def(REFRESH_JOB)


def refresh(settings: Settings) -> int:
    os.environ.setdefault("DAGSTER_HOME", str(settings.data_dir / "dagster_home"))
    dagster_home = os.environ["DAGSTER_HOME"]
    os.makedirs(dagster_home, exist_ok=True)
    peer = settings.api_url or "the embedded Ekvio simulator (EKVIO_API_URL is not set)"
    print(f"Refreshing every Ekvio report from {peer}; Dagster instance: {dagster_home}")
    with dg.DagsterInstance.get() as instance:
        result = dg.execute_job(dg.reconstructable(refresh_job_definition), instance=instance)
        if not result.success:
            for event in result.all_events:
                if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
                    print(f"{event.step_key} failed: {event.step_failure_data.error.message.strip()}", file=sys.stderr)
            print(f"Refresh failed (run {result.run_id}); see `dagster dev -w workspace.yaml` for details", file=sys.stderr)
            return 1
    print(f"Run {result.run_id} succeeded. {settings.database_path}:")
    with duckdb.connect(str(settings.database_path), read_only=True) as con:
        for spec in REPORTS:
            rows = con.execute(f'SELECT count(*) FROM "{spec.name}"').fetchone()[0]
            print(f"  {spec.name:<22} {rows:>10,} rows")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ekvio-assets", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("refresh", help="export every report in full and merge it into the DuckDB file")
    commands.add_parser("simulator", help="run the Ekvio simulator standalone", add_help=False)
    args, rest = parser.parse_known_args(argv)
    if args.command == "simulator":
        from ekvio_assets.simulator.cli import main as simulator_main

        return simulator_main(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        settings = Settings.from_env()
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    return refresh(settings)


if __name__ == "__main__":
    sys.exit(main())
