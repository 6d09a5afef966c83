"""`ekvio-assets bench`: measure the ingest path at company scale and print how it compares.

Every measurement runs in a fresh process (`workloads`), which reports its own time and peak RSS.
The simulator serves the files on loopback from this process, as the API would: a new simulator
for each ingest, serving the one file that ingest exports.

On a shared machine one run of a workload can take a fifth longer than the next. The measurements
run in rounds, each round all of them from empty databases, so that a busy minute falls on one run
of several workloads rather than on every run of one; each reports its median time and its
highest peak RSS.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from ekvio_assets.benchmark.company import ReportFile
from ekvio_assets.benchmark.files import BenchmarkFiles, prepare_files
from ekvio_assets.benchmark.workloads import TOKEN_VARIABLE
from ekvio_assets.cli_arguments import ArgumentParser
from ekvio_assets.reports.specs import MATERIAL_STATISTICS
from ekvio_assets.simulator import DatasetConfig, generate, running_simulator

DEFAULT_ROWS = 1_500_000
DEFAULT_CHANGED_ROWS = 5000
DEFAULT_ROUNDS = 3
_TIMEZONE = DatasetConfig.timezone
_MATERIAL = MATERIAL_STATISTICS.name
# What is wrong with a workload's result (other rows than its file holds), or None.
_Check = Callable[[dict[str, Any]], str | None]


class BenchmarkError(RuntimeError):
    """A workload failed, or loaded other rows than its file holds: its time would mean nothing."""


@dataclass(frozen=True)
class Measurement:
    name: str
    rows: int
    file_mb: float
    seconds: float
    peak_rss_mb: float
    rss_before_mb: float  # after the workload's imports, before its work
    download_seconds: float | None  # an ingest's two phases: the export, then load_report_file
    load_seconds: float | None

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds


def main(argv: Sequence[str] | None = None) -> int:
    options = _parser().parse_args(argv)
    machine = _machine()  # the load average before the benchmark adds its own
    with _workdir(options.workdir) as workdir:
        started = time.perf_counter()
        _progress(f"preparing the report files in {workdir / 'files'}")
        files, written = prepare_files(
            workdir / "files", options.rows, options.seed, options.changed_rows, not options.skip_other_reports
        )
        _progress(f"generated in {time.perf_counter() - started:.1f} s" if written else "kept from the last run")
        rounds = []
        for number in range(1, options.rounds + 1):
            if options.rounds > 1:
                _progress(f"round {number} of {options.rounds}")
            databases = workdir / "databases"
            shutil.rmtree(databases, ignore_errors=True)
            rounds.append(_measure(files, databases, skip_naive=options.skip_naive))
        measurements = {key: _typical([measured[key] for measured in rounds]) for key in rounds[0]}
    print(machine)
    if options.rounds > 1:
        print(f"each measurement: the median time of {options.rounds} runs, the highest peak RSS of them")
    print(_table(measurements.values()))
    print("\n".join(_summary(measurements)))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="ekvio-assets bench",
        description=(
            "Load a company-scale learning-material report through the project's ingest path, next to "
            "DuckDB's own JSON reader (A) and a naive json.load + pandas load (B); again at twice the rows; "
            "then one day's changes into the bigger table; and the other reports at the same file size. "
            "Each measurement runs in a fresh process."
        ),
    )
    parser.add_argument(
        "--rows",
        type=_positive,
        default=DEFAULT_ROWS,
        help="learner rows of the material report (default: %(default)s)",
    )
    parser.add_argument(
        "--changed-rows",
        type=_positive,
        default=DEFAULT_CHANGED_ROWS,
        help="rows of the incremental day (default: %(default)s)",
    )
    parser.add_argument(
        "--seed", type=int, default=7, help="generator seed: the same seed writes the same files (default: %(default)s)"
    )
    parser.add_argument(
        "--rounds",
        type=_positive,
        default=DEFAULT_ROUNDS,
        help="runs of every measurement, in rounds; each reports its median time (default: %(default)s)",
    )
    parser.add_argument(
        "--skip-naive",
        action="store_true",
        help="leave out baseline B (json.load + pandas), the slowest and hungriest (default: measure it)",
    )
    parser.add_argument(
        "--skip-other-reports",
        action="store_true",
        help="measure the material report only (default: the other reports too)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        help="keep the files and databases here; the next run with the same options reuses the files "
        "(default: a temporary directory, removed)",
    )
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is less than 1")
    return value


@contextlib.contextmanager
def _workdir(path: Path | None) -> Iterator[Path]:
    with contextlib.ExitStack() as stack:
        if path is None:
            path = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ekvio-bench-")))
        (path / "files").mkdir(parents=True, exist_ok=True)
        yield path


def _measure(files: BenchmarkFiles, databases: Path, *, skip_naive: bool) -> dict[str, Measurement]:
    measurements = {}

    def record(key: str, measurement: Measurement) -> None:
        measurements[key] = measurement
        phases = (
            ""
            if measurement.download_seconds is None
            else f" (download {measurement.download_seconds:.2f} s, load {measurement.load_seconds:.2f} s)"
        )
        _progress(f"{measurement.name}: {measurement.seconds:.2f} s{phases}, peak RSS {measurement.peak_rss_mb:.0f} MB")

    material = files.material
    record("ingest", _ingest(f"ingest {_MATERIAL}", _MATERIAL, material, databases / "ingest"))
    baseline = {"report": _MATERIAL, "timezone": _TIMEZONE}
    a_parameters = {**baseline, "path": str(files.material_data_array), "database": str(databases / "a.duckdb")}
    record(
        "A", _run("A: DuckDB read_json, same data", "duckdb_reader", a_parameters, material, _check_rows(material.rows))
    )
    if not skip_naive:
        b_parameters = {**baseline, "path": str(material.path), "database": str(databases / "b.duckdb")}
        record("B", _run("B: json.load + json_normalize", "naive", b_parameters, material, _check_rows(material.rows)))
    double, day = files.material_double, files.material_day
    record("ingest 2x", _ingest(f"ingest {_MATERIAL} at 2x", _MATERIAL, double, databases / "ingest-2x"))
    record(
        "incremental",
        _ingest(
            f"incremental: 1 day into {double.rows:,} rows",
            _MATERIAL,
            day,
            databases / "ingest-2x",
            window=(day.after.isoformat(), day.to.isoformat()),
            table_rows=double.rows + day.new_rows,
        ),
    )
    for name, other in files.others.items():
        record(name, _ingest(f"ingest {name}", name, other, databases / f"ingest-{name}"))
    return measurements


def _typical(runs: Sequence[Measurement]) -> Measurement:
    """One measurement for several runs of a workload: the run of the median time (the lower of
    the two middle ones for an even count), with the highest peak RSS of them all."""
    median = sorted(runs, key=lambda run: run.seconds)[(len(runs) - 1) // 2]
    return dataclasses.replace(
        median,
        peak_rss_mb=max(run.peak_rss_mb for run in runs),
        rss_before_mb=max(run.rss_before_mb for run in runs),
    )


def _ingest(
    title: str,
    report: str,
    served: ReportFile,
    data_dir: Path,
    *,
    window: tuple[str | None, str | None] = (None, None),
    table_rows: int | None = None,
) -> Measurement:
    """The ingest of `served` into the warehouse at `data_dir`; the table then holds `table_rows`
    (by default the file's rows)."""
    token = secrets.token_urlsafe(24)
    # The simulator needs a company of its own; with payload_files it never renders it.
    unused_company = generate(DatasetConfig(learners=1, materials=1, courses=1, programs=1))
    with running_simulator(
        unused_company, token=token, polls_to_complete=1, payload_files={report: served.path}
    ) as api:
        parameters = {
            "report": report,
            "url": api.url,
            "data_dir": str(data_dir),
            "timezone": _TIMEZONE,
            "after": window[0],
            "to": window[1],
        }
        check = _check_ingest(served.rows if table_rows is None else table_rows)
        return _run(title, "ingest", parameters, served, check, {TOKEN_VARIABLE: token})


def _check_rows(expected: int) -> _Check:
    def check(result: dict[str, Any]) -> str | None:
        return None if result["rows"] == expected else f"loaded {result['rows']} rows, the file holds {expected}"

    return check


def _check_ingest(table_rows: int) -> _Check:
    def check(result: dict[str, Any]) -> str | None:
        if result["rejected"]:
            return f"rejected {result['rejected']} rows of a file that holds only valid rows"
        if result["table_rows"] != table_rows:
            return f"the table holds {result['table_rows']} rows, not {table_rows}"
        return None

    return check


def _run(
    title: str,
    workload: str,
    parameters: dict[str, Any],
    served: ReportFile,
    check: _Check,
    environment: dict[str, str] | None = None,
) -> Measurement:
    """Run one workload in a fresh interpreter."""
    # What the files and the measurements before wrote is on disk first: the kernel writing it back
    # would slow whichever measurement happens to run meanwhile (the first ingest after generating
    # the files took a second longer).
    os.sync()
    process = subprocess.run(
        [sys.executable, "-m", "ekvio_assets.benchmark.workloads", workload, json.dumps(parameters)],
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, **(environment or {})},
    )
    if process.returncode != 0:
        raise BenchmarkError(f"{title} failed (exit code {process.returncode}):\n{process.stderr[-4000:]}")
    result = json.loads(process.stdout.strip().splitlines()[-1])
    problem = check(result)
    if problem is not None:
        raise BenchmarkError(f"{title}: {problem}")
    return Measurement(
        name=title,
        rows=result["rows"],
        file_mb=served.path.stat().st_size / 2**20,
        seconds=result["seconds"],
        peak_rss_mb=result["peak_rss_mb"],
        rss_before_mb=result["rss_before_mb"],
        download_seconds=result.get("download_seconds"),
        load_seconds=result.get("load_seconds"),
    )


def _table(measurements: Iterable[Measurement]) -> str:
    header = ("measurement", "rows", "file MB", "seconds", "rows/s", "peak RSS MB", "RSS before work MB")
    lines = [
        (
            m.name,
            f"{m.rows:,}",
            f"{m.file_mb:.1f}",
            f"{m.seconds:.2f}",
            f"{m.rows_per_second:,.0f}",
            f"{m.peak_rss_mb:.0f}",
            f"{m.rss_before_mb:.0f}",
        )
        for m in measurements
    ]
    widths = [max(len(line[column]) for line in (header, *lines)) for column in range(len(header))]
    return "\n".join(
        "  ".join(
            cell.ljust(width) if column == 0 else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(line, widths, strict=True))
        )
        for line in (header, *lines)
    )


def _summary(measurements: dict[str, Measurement]) -> list[str]:
    ingest, double, incremental = measurements["ingest"], measurements["ingest 2x"], measurements["incremental"]
    naive = measurements.get("B")
    return [
        f"ingest/A time {ingest.seconds / measurements['A'].seconds:.2f}",
        f"B/ingest time {naive.seconds / ingest.seconds:.2f}" if naive else "B/ingest time skipped",
        f"ingest peak RSS MB {ingest.peak_rss_mb:.0f}",
        f"RSS growth at 2x rows {double.peak_rss_mb / ingest.peak_rss_mb - 1:+.0%}",
        f"incremental/full time {incremental.seconds / double.seconds:.3f}",
    ]


def _machine() -> str:
    cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "unknown CPU")
    meminfo = Path("/proc/meminfo").read_text(encoding="utf-8").splitlines()
    memory_kb = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal:"))
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return (
        f"machine: {os.cpu_count()} CPUs ({cpu}), {memory_kb / 2**20:.0f} GiB; load average {load}; "
        f"Python {platform.python_version()}, DuckDB {duckdb.__version__}"
    )


def _progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
