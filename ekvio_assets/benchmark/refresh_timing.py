"""`python -m ekvio_assets.benchmark.refresh_timing`: the time a person waits for `ekvio-assets refresh`.

Against a simulated company (5,000 learners by default) served on loopback from this process, it
measures in one run: `T0`, a fresh process importing Dagster and loading the definitions; a full
refresh; a day's refresh with a day of changes; the same day again, with nothing to change. Each
refresh is the real CLI in its own process (the idle day the median of `--rounds` runs, T0 that of
runs between them); the Dagster runs it made are then read from its
instance, so each is shown with the time its steps spent working (the union of their start-to-end
intervals: the four report steps overlap) and the rest, the run's overhead.

The simulator completes a task at its third poll; the poll interval is short (`--poll-interval`),
so that the figures measure this project, not Ekvio's queue.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg

from ekvio_assets.simulator import DatasetConfig, generate, running_simulator

TARGET_IDLE_DAY = 4.0
TARGET_ANALYTICS_OVERHEAD = 2.0


@dataclass(frozen=True)
class RunTiming:
    job: str
    wall: float
    work: float

    @property
    def overhead(self) -> float:
        return self.wall - self.work


@dataclass(frozen=True)
class RefreshTiming:
    name: str
    wall: float
    runs: tuple[RunTiming, ...]

    def run(self, job: str) -> RunTiming:
        return next(run for run in self.runs if run.job == job)


def _union_seconds(intervals: Sequence[tuple[float, float]]) -> float:
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def _runs_since(home: Path, moment: float) -> tuple[RunTiming, ...]:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        timings = []
        for record in reversed(instance.get_run_records(dg.RunsFilter(created_after=datetime.fromtimestamp(moment)))):
            steps = instance.get_run_step_stats(record.dagster_run.run_id)
            work = _union_seconds(
                [(step.start_time, step.end_time) for step in steps if step.start_time and step.end_time]
            )
            stats = instance.get_run_stats(record.dagster_run.run_id)
            if stats.start_time is None or stats.end_time is None:
                raise RuntimeError(f"run {record.dagster_run.run_id} of the benchmark has not finished")
            timings.append(RunTiming(record.dagster_run.job_name, stats.end_time - stats.start_time, work))
    return tuple(timings)


def _refresh(name: str, env: Mapping[str, str], home: Path, log: Path, *args: str) -> RefreshTiming:
    started = time.time()
    begin = time.perf_counter()
    with log.open("w") as output:
        done = subprocess.run(
            [sys.executable, "-m", "ekvio_assets.cli", "refresh", *args],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    wall = time.perf_counter() - begin
    if done.returncode:
        raise SystemExit(f"{name} failed (exit {done.returncode}); its output: {log}")
    return RefreshTiming(name, wall, _runs_since(home, started))


def _t0(env: Mapping[str, str]) -> float:
    begin = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import ekvio_assets.definitions"], env=env, check=True)
    return time.perf_counter() - begin


def measure(
    learners: int, materials: int, poll_interval: float, rounds: int, workdir: Path
) -> tuple[float, list[RefreshTiming]]:
    zone = ZoneInfo(DatasetConfig.timezone)
    today = datetime.now(zone).date()
    config = DatasetConfig(learners=learners, materials=materials, start=today - timedelta(days=60), days=60)
    print(f"Generating a company of {learners:,} learners and {materials:,} materials ...", flush=True)
    dataset = generate(config)
    yesterday = today - timedelta(days=1)
    # The CLI's own instance: EKVIO_DATA_DIR/dagster_home.
    home = workdir / "data" / "dagster_home"
    with running_simulator(dataset) as simulator:
        env = {
            **{name: value for name, value in os.environ.items() if not name.startswith(("EKVIO_", "DAGSTER_"))},
            "EKVIO_API_URL": simulator.url,
            "EKVIO_API_TOKEN": simulator.token,
            "EKVIO_DATA_DIR": str(workdir / "data"),
            "EKVIO_START_DATE": config.start.isoformat(),
            "EKVIO_POLL_INTERVAL_SECONDS": str(poll_interval),
        }
        day = yesterday.isoformat()
        # The full export sees the company as of the day before yesterday, so yesterday brings changes.
        simulator.set_now(datetime.combine(yesterday, clock_time(), zone))
        timings = [_refresh("full refresh", env, home, workdir / "full.log")]
        simulator.set_now(None)
        timings.append(_refresh("a day with changes", env, home, workdir / "day.log", "--from", day, "--to", day))
        # On a shared machine one run can take a third longer than the next: the median of a few,
        # T0 measured between them, so that both ratios' sides meet the same minutes.
        t0s, idle = [], []
        for n in range(rounds):
            t0s.append(_t0(env))
            idle.append(
                _refresh("a day, nothing to change", env, home, workdir / f"idle{n}.log", "--from", day, "--to", day)
            )
        t0s.append(_t0(env))
        timings.append(sorted(idle, key=lambda timing: timing.wall)[len(idle) // 2])
    return statistics.median(t0s), timings


def report(t0: float, timings: Sequence[RefreshTiming]) -> list[str]:
    lines = [f"T0 (a fresh process imports Dagster and loads the definitions): {t0:.2f} s", ""]
    lines.append(f"{'refresh':<26} {'wall':>7} {'run':<15} {'run wall':>8} {'work':>7} {'overhead':>8}")
    for timing in timings:
        for index, run in enumerate(timing.runs):
            head = f"{timing.name:<26} {timing.wall:>6.1f}s" if index == 0 else " " * 34
            lines.append(f"{head} {run.job:<15} {run.wall:>7.1f}s {run.work:>6.1f}s {run.overhead:>7.1f}s")
    idle = timings[-1]
    overhead = max(timing.run("analytics_job").overhead for timing in timings)
    lines += [
        "",
        f"a day with nothing to change / T0: {idle.wall / t0:.2f} (target <= {TARGET_IDLE_DAY:g})",
        f"largest analytics run overhead / T0: {overhead / t0:.2f} (target <= {TARGET_ANALYTICS_OVERHEAD:g})",
    ]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ekvio_assets.benchmark.refresh_timing",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--learners", type=int, default=5000, help="learners of the simulated company")
    parser.add_argument("--materials", type=int, default=200, help="learning materials of the simulated company")
    parser.add_argument("--poll-interval", type=float, default=0.2, help="EKVIO_POLL_INTERVAL_SECONDS of the refreshes")
    parser.add_argument(
        "--rounds", type=int, default=3, help="runs of T0 and of the idle day, of which the median counts"
    )
    parser.add_argument("--workdir", type=Path, help="where the data and logs go (default: a temporary folder)")
    args = parser.parse_args(argv)
    if min(args.learners, args.materials, args.rounds) < 1 or args.poll_interval <= 0:
        parser.error("--learners, --materials and --rounds must be at least 1, --poll-interval above 0")
    with tempfile.TemporaryDirectory(prefix="ekvio-refresh-timing-") as scratch:
        workdir = args.workdir or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        t0, timings = measure(args.learners, args.materials, args.poll_interval, args.rounds, workdir)
    print("\n".join(report(t0, timings)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
