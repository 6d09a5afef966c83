"""A simulated holding of many Ekvio companies refreshed by one deployment: one day, then a backfill
of the days before it, through `ekvio-assets refresh` with a companies file (EKVIO_COMPANIES).

The companies differ in size; one lacks the course module (every course export is refused with
1007 "company_id"), one suffers random transient faults. The script prints, for each phase, its
wall time, the runs it made, the peak RSS of the largest process, the companies whose tables equal
what their simulator sent and those that failed.

    python -m ekvio_assets.benchmark.holding [--companies 20] [--days 7] [--postgres | --dagster-home DIR]

`--postgres` runs on a team's instance, deploy/postgres/dagster.yaml, with a PostgreSQL server of
its own started on loopback (Debian's `postgresql` package); `--dagster-home` points at a prepared
instance (its variables set); without either, the CLI's own SQLite instance under the work folder.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg

from ekvio_assets.benchmark.postgres_server import running_postgres
from ekvio_assets.benchmark.truth import differences
from ekvio_assets.cli_arguments import ArgumentParser
from ekvio_assets.simulator import Dataset, DatasetConfig, FaultPlan, FaultRule, generate, running_simulator
from ekvio_assets.simulator.faults import Call, FaultKind

_DAYS_SIMULATED = 30
# Learners per company, in turn: a holding of small and big subsidiaries.
_SIZES = (40, 80, 160, 320, 60, 120, 240, 30)
_NO_COURSE_MODULE = 3  # the company (by position) whose course exports are refused
_FAULTY = 5  # the company (by position) that suffers random transient faults
# From a clone of the repository (the benchmark's home), not from the installed package.
_TEAM_INSTANCE = Path(__file__).resolve().parents[2] / "deploy" / "postgres" / "dagster.yaml"


@dataclass(frozen=True)
class Company:
    key: str
    dataset: Dataset
    faults: FaultPlan | None
    expected_to_fail: bool


@dataclass(frozen=True)
class Phase:
    name: str
    seconds: float
    exit_code: int
    runs: int
    failed_runs: int
    peak_rss_mb: float
    equal: list[str]
    failed: list[str]
    differing: dict[str, list[str]]


def holding(companies: int, seed: int) -> list[Company]:
    today = datetime.now(ZoneInfo("Europe/Moscow")).date()
    start = today - timedelta(days=_DAYS_SIMULATED)
    made = []
    for number in range(companies):
        learners = _SIZES[number % len(_SIZES)]
        config = DatasetConfig(
            seed=seed + number,
            learners=learners,
            materials=max(6, learners // 8),
            courses=max(3, learners // 40),
            programs=max(2, learners // 80),
            start=start,
            days=_DAYS_SIMULATED,
        )
        faults = None
        if number == _NO_COURSE_MODULE:
            faults = FaultPlan(
                rules=[FaultRule(Call.CREATE, FaultKind.MODULE_UNAVAILABLE, count=None, report="course_statistics")]
            )
        elif number == _FAULTY:
            faults = FaultPlan(rate=0.1, seed=seed)
        made.append(Company(f"c{number:02d}", generate(config), faults, number == _NO_COURSE_MODULE))
    return made


def _refresh(folder: Path, env: dict[str, str], first: str, last: str) -> tuple[float, int, float, str]:
    """`ekvio-assets refresh --from first --to last`: its seconds, exit code, the largest process's
    peak RSS (MB) and its stderr."""
    started = time.perf_counter()
    finished = subprocess.run(
        [sys.executable, "-m", "ekvio_assets.cli", "refresh", "--from", first, "--to", last],
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    seconds = time.perf_counter() - started
    # The largest of the processes waited for so far: the CLI, its step server and steps.
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return seconds, finished.returncode, peak_mb, finished.stderr


def _companies_file(path: Path, urls: dict[str, str]) -> None:
    lines = ["companies:"]
    for key, url in urls.items():
        lines += [f"  - key: {key}", f"    api_url: {url}", f"    token_env: EKVIO_TOKEN_{key.upper()}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _runs_since(dagster_home: Path, started: datetime) -> tuple[int, int]:
    """The runs made since `started` on the instance, and how many of them failed."""
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        runs = instance.get_runs(filters=dg.RunsFilter(created_after=started))
    return len(runs), sum(1 for run in runs if run.status is dg.DagsterRunStatus.FAILURE)


def run(companies: list[Company], folder: Path, days: int, dagster_home: Path | None) -> list[Phase]:
    last_day = _DAYS_SIMULATED - 1
    first_day = last_day - days
    phases: list[Phase] = []
    with contextlib.ExitStack() as stack:
        running = {
            company.key: stack.enter_context(
                running_simulator(company.dataset, token=f"token-{company.key}", faults=company.faults)
            )
            for company in companies
        }
        _companies_file(folder / "companies.yaml", {key: simulator.url for key, simulator in running.items()})
        env = {k: v for k, v in os.environ.items() if not k.startswith("EKVIO_")}
        env.update(
            {f"EKVIO_TOKEN_{key.upper()}": simulator.token for key, simulator in running.items()},
            EKVIO_COMPANIES=str(folder / "companies.yaml"),
            EKVIO_DATA_DIR=str(folder / "data"),
            EKVIO_POLL_INTERVAL_SECONDS="0.2",
            EKVIO_RETRY_BACKOFF_SECONDS="0.05",
            EKVIO_START_DATE=companies[0].dataset.config.start.isoformat(),
        )
        if dagster_home is not None:
            env["DAGSTER_HOME"] = str(dagster_home)
        instance_home = dagster_home or folder / "data" / "dagster_home"
        day = companies[0].dataset.day_window
        for name, first, last in (("one day", last_day, last_day), (f"{days}-day backfill", first_day, last_day - 1)):
            keys = [day(index)[0].date().isoformat() for index in (first, last)]
            started = datetime.now(ZoneInfo("UTC"))
            seconds, code, peak_mb, stderr = _refresh(folder, env, *keys)
            runs, failed_runs = _runs_since(instance_home, started)
            differing = {
                company.key: differences(
                    folder / "data" / company.key / "work" / "ekvio.duckdb",
                    company.dataset,
                    company.dataset.day_start(first_day if phases else last_day),
                    company.dataset.day_start(last_day + 1),
                )
                for company in companies
            }
            named = _failed_companies(stderr)
            failed = [company.key for company in companies if company.key in named]
            equal = [key for key, found in differing.items() if not found]
            phases.append(Phase(name, seconds, code, runs, failed_runs, peak_mb, equal, failed, differing))
    return phases


def _failed_companies(stderr: str) -> list[str]:
    """The companies the CLI's last line names as failed."""
    marker = "The refresh of "
    lines = [line for line in stderr.splitlines() if line.startswith(marker)]
    return lines[-1].removeprefix(marker).split(" failed")[0].split(", ") if lines else []


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m ekvio_assets.benchmark.holding", description=__doc__.split("\n\n")[0])
    parser.add_argument("--companies", type=int, default=20, help="companies of the holding (default: %(default)s)")
    parser.add_argument("--days", type=int, default=7, help="days of the backfill (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=31, help="generator seed (default: %(default)s)")
    instances = parser.add_mutually_exclusive_group()
    instances.add_argument(
        "--postgres", action="store_true", help="a team's instance on a PostgreSQL server started for the run"
    )
    instances.add_argument("--dagster-home", type=Path, help="a prepared Dagster instance (default: the CLI's own)")
    parser.add_argument("--workdir", type=Path, help="keep the data here (default: a temporary folder)")
    args = parser.parse_args(argv)
    companies = holding(args.companies, args.seed)
    with contextlib.ExitStack() as stack:
        folder = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ekvio-holding-")))
        folder.mkdir(parents=True, exist_ok=True)
        dagster_home = args.dagster_home
        if args.postgres:
            server = stack.enter_context(running_postgres(folder / "logs"))
            # The CLI's processes and this one's look at the runs both read the connection from here.
            os.environ.update(server.dagster_environment())
            dagster_home = folder / "dagster_home"
            dagster_home.mkdir(exist_ok=True)
            shutil.copyfile(_TEAM_INSTANCE, dagster_home / "dagster.yaml")
        phases = run(companies, folder, args.days, dagster_home)
    expected_failures = sorted(company.key for company in companies if company.expected_to_fail)
    print(f"{len(companies)} companies, {sum(c.dataset.config.learners for c in companies):,} learners")
    print(f"instance: {'PostgreSQL' if args.postgres else dagster_home or 'the CLI own (SQLite)'}")
    print(
        f"{'phase':<18} {'seconds':>8} {'exit':>5} {'runs':>5} {'failed':>7} {'peak RSS MB':>12} "
        f"{'equal to truth':>15}  failed companies"
    )
    for phase in phases:
        print(
            f"{phase.name:<18} {phase.seconds:8.1f} {phase.exit_code:5d} {phase.runs:5d} {phase.failed_runs:7d} "
            f"{phase.peak_rss_mb:12.0f} "
            f"{len(phase.equal):>9} of {len(companies):<3}  {', '.join(phase.failed) or '-'}"
        )
        for key, found in phase.differing.items():
            if found and key not in expected_failures:
                print(f"  {key}: " + "; ".join(found))
    healthy = all(
        phase.failed == expected_failures and len(phase.equal) == len(companies) - len(expected_failures)
        for phase in phases
    )
    print(f"expected to fail: {', '.join(expected_failures)}; " + ("as expected" if healthy else "NOT as expected"))
    return 0 if healthy else 1


if __name__ == "__main__":
    raise SystemExit(main())
