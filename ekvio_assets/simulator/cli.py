"""`ekvio-assets simulator`: run the Ekvio simulator standalone until Ctrl-C."""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading
from collections.abc import Sequence
from datetime import datetime

from ekvio_assets.cli_arguments import ArgumentParser, iso_day
from ekvio_assets.simulator.faults import KINDS_BY_CALL, Call, FaultPlan, FaultRule, parse_fault_rules
from ekvio_assets.simulator.generator import DatasetConfig, generate
from ekvio_assets.simulator.protocol import ProtocolOptions
from ekvio_assets.simulator.server import running_simulator

_DEFAULTS = DatasetConfig()
_FAULTS_HELP = "\n".join(
    [
        "faults (--fault KIND[@CALL][:count=N][:rate=R][:report=NAME], repeatable):",
        *(f"  on {call}: {', '.join(sorted(KINDS_BY_CALL[call]))}" for call in Call),
        "  Without @CALL the fault is set on every call it can happen on. A fault spoils one",
        "  call (count=N: N calls); with rate=R each matching call is spoiled with probability R,",
        "  for good unless a count is given. report=NAME limits it to one report.",
        "examples:",
        "  --fault http_503@poll:count=3 --fault module_unavailable:rate=1:report=course_statistics",
        "  --fault-rate 0.2 --fault-seed 7 --file-host 127.0.0.2",
    ]
)


def _fault_rules(spec: str) -> tuple[FaultRule, ...]:
    try:
        return parse_fault_rules(spec)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _aware_datetime(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 date-time") from None
    if moment.utcoffset() is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset")
    return moment


def _report_route(text: str) -> tuple[str, tuple[str, str]]:
    report, _, route = text.partition("=")
    method, _, path = route.partition(":")
    try:
        ProtocolOptions(report_routes={report: (method, path)})
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r}: {error}; expected NAME=METHOD:/path") from None
    return report, (method.upper(), path)


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _port(text: str) -> int:
    port = _integer(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535)")
    return port


def _at_least_one(text: str) -> int:
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is less than 1")
    return value


def _probability(text: str) -> float:
    try:
        rate = float(text)
    except ValueError:
        rate = -1.0
    if not 0 <= rate <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a probability between 0 and 1")
    return rate


def _parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="ekvio-assets simulator",
        description=__doc__,
        epilog=_FAULTS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=_port, default=0, help="port to listen on (default: 0, a free one)")
    parser.add_argument("--token", help="bearer token the API accepts (default: a random one, printed)")
    parser.add_argument(
        "--seed", type=_integer, default=_DEFAULTS.seed, help="seed of the generated company (default: %(default)s)"
    )
    # The counts and --days are checked by DatasetConfig, whose message main() passes on.
    for option, counted in (
        ("learners", "learners"),
        ("materials", "learning materials"),
        ("courses", "courses"),
        ("programs", "learning programmes"),
    ):
        parser.add_argument(
            f"--{option}",
            type=_integer,
            default=getattr(_DEFAULTS, option),
            help=f"{counted} of the company, 0 or more (default: %(default)s)",
        )
    parser.add_argument(
        "--start", type=iso_day, default=_DEFAULTS.start, metavar="YYYY-MM-DD", help="first day (default: %(default)s)"
    )
    parser.add_argument(
        "--days",
        type=_integer,
        default=_DEFAULTS.days,
        help="days of activity from --start, 1 or more (default: %(default)s)",
    )
    parser.add_argument(
        "--polls-to-complete",
        type=_at_least_one,
        default=3,
        help="polls after which a task completes (default: %(default)s)",
    )
    parser.add_argument(
        "--now",
        type=_aware_datetime,
        help="the simulator's clock, an ISO date-time with offset: tasks see the data as of it "
        "(default: the final state of the data)",
    )
    parser.add_argument(
        "--fault",
        dest="fault_rules",
        metavar="KIND[@CALL][:count=N][:rate=R][:report=NAME]",
        type=_fault_rules,
        action="append",
        default=[],
        help="inject a fault (see below); the first matching --fault wins (default: none)",
    )
    parser.add_argument(
        "--fault-rate",
        type=_probability,
        default=0.0,
        metavar="R",
        help="spoil each call no --fault spoiled with probability R by a random transient fault "
        "(HTTP 429, 500, 502, 503, 504, a dropped connection, 1007 another task running) (default: %(default)s)",
    )
    parser.add_argument("--fault-seed", type=_integer, default=0, help="seed of the fault draws (default: %(default)s)")
    parser.add_argument(
        "--file-host",
        metavar="ADDR",
        help="serve the result files from this other address, e.g. 127.0.0.2 (default: the API's)",
    )
    parser.add_argument(
        "--file-url-host",
        metavar="URL",
        help="answer polls with file URLs on this scheme://host[:port], e.g. http://nginx, while the files "
        "are still served where they are (a client then needs EKVIO_FILE_HOST) (default: the file host's)",
    )
    parser.add_argument(
        "--report-route",
        dest="report_routes",
        metavar="NAME=METHOD:/path",
        type=_report_route,
        action="append",
        default=[],
        help="serve a report at this method and path only, e.g. attempts=POST:/v1/custom/attempts "
        "(default: the paths of every report's spec)",
    )
    parser.add_argument(
        "--retry-after",
        default="1",
        metavar="VALUE",
        help="the Retry-After header of a 429, verbatim, e.g. 0 or an HTTP date (default: %(default)s)",
    )
    parser.add_argument(
        "--error-status",
        type=_integer,
        default=400,
        metavar="STATUS",
        help="HTTP status of the simulator's error answers (code 1007), e.g. 200 (default: %(default)s)",
    )
    return parser


def _stop_on_signals() -> None:
    """Ctrl-C and SIGTERM stop the simulator, also where the shell that started it in the background
    left SIGINT ignored (as a shell without job control does for `&`)."""

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, stop)


def main(argv: Sequence[str] | None = None) -> int:
    """Bad arguments end in one line on stderr and exit code 2 (argparse's usage errors)."""
    parser = _parser()
    args = parser.parse_args(argv)
    _stop_on_signals()
    try:
        config = DatasetConfig(
            seed=args.seed,
            learners=args.learners,
            materials=args.materials,
            courses=args.courses,
            programs=args.programs,
            start=args.start,
            days=args.days,
        )
        protocol = ProtocolOptions(
            retry_after=args.retry_after,
            error_status=args.error_status,
            file_url_host=args.file_url_host,
            report_routes=dict(args.report_routes),
        )
    except ValueError as error:
        parser.error(str(error))
    dataset = generate(config)
    rules = [rule for rules in args.fault_rules for rule in rules]
    faults = FaultPlan(rules, rate=args.fault_rate, seed=args.fault_seed)
    with contextlib.ExitStack() as stack:
        try:
            simulator = stack.enter_context(
                running_simulator(
                    dataset,
                    token=args.token,
                    port=args.port,
                    host=args.host,
                    polls_to_complete=args.polls_to_complete,
                    faults=faults,
                    now=args.now,
                    file_host=args.file_host,
                    protocol=protocol,
                )
            )
        except OSError as error:
            files = args.file_host or "the same"
            parser.error(f"cannot listen on {args.host}:{args.port} (file host {files}): {error}")
        # The simulator's token guards demo data only: printing it is the point.
        print(f"Ekvio simulator listening on {simulator.url}", flush=True)
        print(f"API token: {simulator.token}", flush=True)
        if simulator.file_url is not None:
            print(f"Result files served from {simulator.file_url}", flush=True)
        print("Press Ctrl-C (or send SIGTERM) to stop.", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    print(f"faults injected {len(simulator.state.faults_injected)}", flush=True)
    return 0
