"""The benchmark at a small size (its code path and output, not its timings) and its company-scale report files."""

from __future__ import annotations

import json
import re
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from ekvio_assets.api.client import ExportedFile
from ekvio_assets.benchmark import company, holding, main
from ekvio_assets.benchmark.cli import Measurement, _typical
from ekvio_assets.benchmark.company import BenchmarkCompany
from ekvio_assets.benchmark.files import write_data_array
from ekvio_assets.reports.checks import evaluate_report_checks
from ekvio_assets.reports.load import load_report_file
from ekvio_assets.reports.specs import ATTEMPTS, MATERIAL_STATISTICS, REPORTS, ReportSpec
from ekvio_assets.storage.warehouse import DuckDBWarehouse

SMALL_ROWS = 20_000
NUMBER = r"[0-9]+\.[0-9]+"


@pytest.mark.long
def test_small_run_measures_every_workload_and_ends_with_the_ratios(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--rows", str(SMALL_ROWS), "--changed-rows", "400", "--rounds", "1", "--workdir", str(tmp_path)]) == 0

    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("machine: ")
    assert not any("median" in line for line in lines)
    table = "\n".join(lines[1:-5])
    for measurement in (
        f"ingest material_statistics {SMALL_ROWS:,}",
        f"A: DuckDB read_json, same data {SMALL_ROWS:,}",
        f"B: json.load + json_normalize {SMALL_ROWS:,}",
        f"ingest material_statistics at 2x {2 * SMALL_ROWS:,}",
        f"incremental: 1 day into {2 * SMALL_ROWS:,} rows 400",
        "ingest attempts",
        "ingest course_statistics",
        "ingest program_statistics",
    ):
        assert measurement in re.sub(" +", " ", table)
    assert re.fullmatch(rf"ingest/A time {NUMBER}", lines[-5])
    assert re.fullmatch(rf"B/ingest time {NUMBER}", lines[-4])
    assert re.fullmatch(r"ingest peak RSS MB [0-9]+", lines[-3])
    assert re.fullmatch(r"RSS growth at 2x rows [+-][0-9]+%", lines[-2])
    assert re.fullmatch(rf"incremental/full time {NUMBER}", lines[-1])
    assert (tmp_path / "databases" / "ingest" / "work" / "ekvio.duckdb").is_file()


@pytest.mark.long
def test_a_second_run_in_the_same_workdir_keeps_the_files_and_starts_from_empty_databases(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments = ["--rows", "2000", "--changed-rows", "50", "--skip-naive", "--skip-other-reports"]
    assert main([*arguments, "--rounds", "2", "--workdir", str(tmp_path)]) == 0
    first = capsys.readouterr()
    assert main([*arguments, "--rounds", "1", "--workdir", str(tmp_path)]) == 0
    second = capsys.readouterr()

    assert "generated in" in first.err and "kept from the last run" in second.err
    assert "round 1 of 2" in first.err and "round 2 of 2" in first.err and "round 1 of" not in second.err
    assert "each measurement: the median time of 2 runs, the highest peak RSS of them" in first.out
    assert first.out.count("ingest material_statistics at 2x") == 1
    for output in (first.out, second.out):
        assert "B/ingest time skipped" in output
        assert "json_normalize" not in output and "ingest attempts" not in output
    assert main([*arguments, "--rounds", "1", "--seed", "8", "--workdir", str(tmp_path)]) == 0
    assert "generated in" in capsys.readouterr().err


def test_rounds_report_the_run_of_median_time_with_the_highest_peak_rss() -> None:
    def run(seconds: float, peak_rss_mb: float) -> Measurement:
        return Measurement("ingest", 10, 1.0, seconds, peak_rss_mb, 100.0, seconds / 4, seconds * 3 / 4)

    typical = _typical([run(5.0, 300), run(4.0, 450), run(9.0, 310)])
    assert (typical.seconds, typical.download_seconds, typical.peak_rss_mb) == (5.0, 1.25, 450)
    assert _typical([run(6.0, 1), run(2.0, 2)]).seconds == 2.0
    assert _typical([run(3.0, 7)]) == run(3.0, 7)


def test_same_seed_writes_the_same_files_and_another_seed_other_ones(tmp_path: Path) -> None:
    def write(seed: int, name: str) -> bytes:
        company = BenchmarkCompany(MATERIAL_STATISTICS.name, 3000, seed)
        report, day = company.write_files(tmp_path / f"{name}.json", (tmp_path / f"{name}.day.json", 100))
        assert day is not None
        return report.path.read_bytes() + day.path.read_bytes()

    assert write(3, "first") == write(3, "again")
    assert write(3, "first") != write(4, "other")


@pytest.mark.parametrize("spec", REPORTS, ids=lambda spec: spec.name)
def test_company_files_load_without_rejects_and_the_day_updates_and_adds_rows(spec: ReportSpec, tmp_path: Path) -> None:
    company = BenchmarkCompany(spec.name, 4000)
    warehouse = DuckDBWarehouse(data_dir=str(tmp_path / "data"), timezone=company.timezone)

    report, day = company.write_files(tmp_path / "report.json", (tmp_path / "day.json", 300))
    assert report.path.stat().st_size > 100 * report.rows
    full = _load(warehouse, spec, report.path).outcome
    assert (full.rows_in_file, full.inserted, full.rejected, full.duplicates) == (4000, 4000, 0, 0)

    assert day is not None
    assert (day.rows, day.updated_rows + day.new_rows) == (300, 300) and day.new_rows > 0
    changed = _load(warehouse, spec, day.path, day.after, day.to).outcome
    assert (changed.inserted, changed.rejected, changed.table_rows) == (day.new_rows, 0, 4000 + day.new_rows)
    if spec in (ATTEMPTS, MATERIAL_STATISTICS):
        # The other reports' rows never active before have no change time; the full export gave
        # them its fetch time, which the day's (simulated, earlier) changes do not beat.
        assert changed.updated == day.updated_rows
    with warehouse.read_connection() as con:
        failed = [
            result.check_name
            for result in evaluate_report_checks(con, spec, dg.AssetKey(spec.name))
            if not result.passed
        ]
        day_changes = con.execute(
            f"SELECT min({spec.change_time}), max({spec.change_time}) FROM {spec.name} WHERE _task_id = 'day'"
        ).fetchone()
    assert failed == []
    assert day_changes is not None and all(day.after <= moment < day.to for moment in day_changes)


def _load(
    warehouse: DuckDBWarehouse, spec: ReportSpec, path: Path, after: datetime | None = None, to: datetime | None = None
) -> Any:
    task_id = "full" if after is None else "day"
    return load_report_file(
        warehouse, spec, ExportedFile(spec.name, task_id, path, path.stat().st_size, datetime.now(UTC)), after, to
    )


def test_the_data_array_file_holds_the_report_records(tmp_path: Path) -> None:
    report, _ = BenchmarkCompany("program_statistics", 500).write_files(tmp_path / "report.json")
    write_data_array(report.path, tmp_path / "data.json")

    document = json.loads(report.path.read_text(encoding="utf-8"))
    assert json.loads((tmp_path / "data.json").read_text(encoding="utf-8")) == document["data"]
    assert document["include"] == []


def test_the_refresh_timing_counts_overlapping_steps_once_and_reports_both_ratios() -> None:
    from ekvio_assets.benchmark.refresh_timing import RefreshTiming, RunTiming, _union_seconds, report

    # Four report steps overlapping, then a gap, then one more step.
    assert _union_seconds([(0.0, 2.0), (1.0, 3.0), (1.5, 2.5), (2.0, 3.5), (5.0, 6.0)]) == 4.5
    assert _union_seconds([]) == 0.0
    timings = [
        RefreshTiming(
            "full refresh", 20.0, (RunTiming("reconcile_job", 12.0, 10.0), RunTiming("analytics_job", 4.0, 3.0))
        ),
        RefreshTiming(
            "a day, nothing to change", 8.0, (RunTiming("refresh_job", 4.0, 2.0), RunTiming("analytics_job", 2.0, 1.5))
        ),
    ]
    lines = report(2.0, timings)
    assert lines[-2] == "a day with nothing to change / T0: 4.00 (target <= 4)"
    assert lines[-1] == "largest analytics run overhead / T0: 0.50 (target <= 2)"


def test_a_drawing_process_stops_on_sigterm_though_it_inherited_sigterm_ignored() -> None:
    # A pool that ends before its last task stops its workers with SIGTERM; whether they are still
    # waiting for a task then is a race, so this checks what the worker's initializer leaves.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    company._start_worker(MATERIAL_STATISTICS.name, 10, 1)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


@pytest.mark.parametrize(
    "parents_sigterm", [signal.SIG_DFL, signal.SIG_IGN], ids=["sigterm-default", "sigterm-ignored"]
)
def test_a_process_per_core_draws_the_same_files_as_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parents_sigterm: signal.Handlers
) -> None:
    # Ignored: as Dagster leaves it after running assets in a process started with SIGINT ignored
    # (by nohup, a background shell, a CI runner); the workers are spawned and inherit it.
    signal.signal(signal.SIGTERM, parents_sigterm)

    def write(name: str) -> bytes:
        report, day = BenchmarkCompany(MATERIAL_STATISTICS.name, 3000).write_files(
            tmp_path / f"{name}.json", (tmp_path / f"{name}.day.json", 100)
        )
        assert day is not None
        return report.path.read_bytes() + day.path.read_bytes()

    one_process = write("one")
    monkeypatch.setattr(company, "_PARALLEL_ROWS", 1)
    assert write("per core") == one_process


@pytest.mark.long
def test_the_holding_benchmark_reports_the_company_without_the_course_module_and_no_other(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Four companies: the fourth (c03) has every course export refused, so its refresh fails.
    assert holding.main(["--companies", "4", "--days", "1", "--workdir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    phases = {line.split("  ")[0].strip(): line.split() for line in lines if line.startswith(("one day", "1-day"))}
    # A refresh run per company, an analytics run per company whose refresh succeeded; one failed.
    for name, columns in phases.items():
        words = columns[len(name.split()) :]
        seconds, exit_code, runs, failed_runs, _peak, equal, _of, total, failed_companies = words
        assert (exit_code, runs, failed_runs, equal, total, failed_companies) == ("1", "7", "1", "3", "4", "c03"), name
    assert set(phases) == {"one day", "1-day backfill"}
    assert "expected to fail: c03; as expected" in lines
