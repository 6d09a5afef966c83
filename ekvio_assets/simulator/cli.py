"""`ekvio-assets simulator`: run the Ekvio simulator standalone until Ctrl-C."""

from __future__ import annotations

import argparse
import contextlib
import threading
from collections.abc import Sequence
from datetime import date

from ekvio_assets.simulator.generator import DatasetConfig, generate
from ekvio_assets.simulator.server import running_simulator

_DEFAULTS = DatasetConfig()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ekvio-assets simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one)")
    parser.add_argument("--token", help="bearer token the API accepts (default: a random one, printed)")
    parser.add_argument("--seed", type=int, default=_DEFAULTS.seed)
    parser.add_argument("--learners", type=int, default=_DEFAULTS.learners)
    parser.add_argument("--materials", type=int, default=_DEFAULTS.materials)
    parser.add_argument("--courses", type=int, default=_DEFAULTS.courses)
    parser.add_argument("--programs", type=int, default=_DEFAULTS.programs)
    parser.add_argument("--start", type=date.fromisoformat, default=_DEFAULTS.start, help="first day, YYYY-MM-DD")
    parser.add_argument("--days", type=int, default=_DEFAULTS.days, help="days of activity from --start")
    parser.add_argument("--polls-to-complete", type=int, default=2, help="polls after which a task completes")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    config = DatasetConfig(
        seed=args.seed,
        learners=args.learners,
        materials=args.materials,
        courses=args.courses,
        programs=args.programs,
        start=args.start,
        days=args.days,
    )
    dataset = generate(config)
    with running_simulator(
        dataset, token=args.token, port=args.port, host=args.host, polls_to_complete=args.polls_to_complete
    ) as simulator:
        # The simulator's token guards demo data only: printing it is the point.
        print(f"Ekvio simulator listening on {simulator.url}", flush=True)
        print(f"API token: {simulator.token}", flush=True)
        print("Press Ctrl-C to stop.", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    return 0
