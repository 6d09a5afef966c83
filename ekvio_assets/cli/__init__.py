"""`ekvio-assets refresh | replay | ui | tables | pools | simulator | bench`: the project's command line."""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import NoReturn

from ekvio_assets.cli.environment import DOTENV, load_dotenv, use_instance_home
from ekvio_assets.cli.step_server import start_step_server
from ekvio_assets.cli_arguments import ArgumentParser, iso_day
from ekvio_assets.config import ConfigError, Settings
from ekvio_assets.reports.specs import REPORTS


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1-65535)")
    return int(text)


def _parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="ekvio-assets",
        description=__doc__ + f" Reads ./{DOTENV} first; variables set in the environment win over it.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('ekvio-assets')}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    refresh = commands.add_parser(
        "refresh",
        help="export every report (in full, or the days --from .. --to) and merge it into the DuckDB file",
        description="Export every Ekvio report, merge it into the DuckDB tables, rebuild the analytics "
        "tables and publish EKVIO_DATA_DIR/ekvio.duckdb.",
    )
    replay = commands.add_parser(
        "replay",
        help="load an archived result file again without the API (after a load failed on bad data), "
        "then rebuild and publish the analytics tables",
    )
    replay.add_argument("path", type=Path, help="the file, e.g. data/raw/attempts/<time>_task-<id>.json")
    replay.add_argument(
        "--report", choices=[spec.name for spec in REPORTS], help="the file's report (default: its archive folder)"
    )
    for days, subject, default in (
        (refresh, "refresh", "every report in full"),
        (replay, "file's export window", "the whole file"),
    ):
        days.add_argument(
            "--from",
            dest="first",
            type=iso_day,
            metavar="YYYY-MM-DD",
            help=f"first day of the {subject} (default: {default})",
        )
        days.add_argument(
            "--to", dest="last", type=iso_day, metavar="YYYY-MM-DD", help=f"last day of the {subject} (default: --from)"
        )
        days.add_argument(
            "--verbose",
            action="store_true",
            help="print Dagster's full event log instead of the progress (default: progress only)",
        )
    ui = commands.add_parser(
        "ui",
        help="start the Dagster UI (dagster dev) on the instance where this CLI records its runs",
        description="Start `dagster dev -w workspace.yaml` with the DAGSTER_HOME the other commands use, "
        "so that the UI shows their runs and materializations.",
    )
    ui.add_argument("--host", default="127.0.0.1", help="address the webserver listens on (default: %(default)s)")
    ui.add_argument("--port", type=_port, default=3000, help="port the webserver listens on (default: %(default)s)")
    tables = commands.add_parser(
        "tables",
        help="print the data dictionary of the analyst file: tables, grain, columns, types, descriptions",
        description="Print the data dictionary read from the published file's catalog: its tables, what "
        "one row of each is, their columns, types and descriptions.",
    )
    tables.add_argument("--markdown", action="store_true", help="print Markdown tables (default: plain text)")
    commands.add_parser(
        "pools",
        help="register every company's pools on the Dagster instance (DAGSTER_HOME) before its daemon queues "
        "runs; once per deployment and after the companies change",
        description="Store each pool of the definitions at the instance's default limit, so that the run "
        "queue holds a company's runs of one report apart from the first run on, and list the pools.",
    )
    for command in (refresh, replay, tables):
        command.add_argument(
            "--company",
            metavar="KEY",
            help="with a companies file (EKVIO_COMPANIES): the company's key (default: "
            + ("every company" if command is refresh else "required when the file holds several")
            + ")",
        )
    commands.add_parser("simulator", help="run the Ekvio simulator standalone (see its --help)", add_help=False)
    commands.add_parser(
        "bench",
        help="measure the ingest path at company scale against DuckDB's reader and a naive load (see its --help)",
        add_help=False,
    )
    return parser


def run() -> NoReturn:
    """The `ekvio-assets` command: main(), then exit with its code."""
    code = main()
    # All that is left is the interpreter's exit, whose collections would walk the whole heap of
    # Dagster's modules for nothing: half a second of every command.
    gc.freeze()
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args, rest = parser.parse_known_args(argv)
    if args.command == "simulator":
        from ekvio_assets.simulator.cli import main as simulator_main

        return simulator_main(rest)
    if args.command == "bench":
        from ekvio_assets.benchmark import main as bench_main

        return bench_main(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if getattr(args, "last", None) is not None and args.first is None:
        parser.error("--to needs --from")
    # Before anything reads the settings: the definitions, which the step processes import too.
    if from_dotenv := load_dotenv():
        print(f"Read {', '.join(from_dotenv)} from ./{DOTENV}", flush=True)
    try:
        settings = Settings.from_env()
        if args.command == "refresh":
            # Before this process imports Dagster: the server imports it meanwhile (see step_server).
            use_instance_home(settings)
            start_step_server()
        from ekvio_assets.cli import commands
        from ekvio_assets.cli.display import choose_display

        if args.command == "ui":
            commands.ui(settings, args.host, args.port)
        if args.command == "pools":
            return commands.pools(settings)
        if args.command == "tables":
            return commands.tables(settings, args.markdown, args.company)
        display = choose_display(args.verbose)
        if args.command == "replay":
            return commands.replay(
                settings, args.path, args.report, args.first, args.last, display, args.verbose, args.company
            )
        return commands.refresh(settings, args.first, args.last, display, args.verbose, args.company)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
