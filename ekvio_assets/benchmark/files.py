"""The benchmark's input files, drawn by the simulator's generator (see `company`).

Writing them takes about as long as a few measurements, so a directory keeps them for the next run
with the same options, as long as neither the simulator's source nor the benchmark's files modules
have changed (`manifest.json`).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ekvio_assets import simulator
from ekvio_assets.benchmark import company
from ekvio_assets.benchmark.company import BenchmarkCompany, DayFile, ReportFile
from ekvio_assets.reports.specs import MATERIAL_STATISTICS, REPORTS

_MATERIAL = MATERIAL_STATISTICS.name
_OTHER_REPORTS = tuple(spec.name for spec in REPORTS if spec is not MATERIAL_STATISTICS)
# Rows of the small company whose files tell how many bytes a row of each report takes.
_CALIBRATION_ROWS = 5000
_DATA_ARRAY_START = len('{"data": ')
_COPY_CHUNK = 1 << 20
_MANIFEST = "manifest.json"


@dataclass(frozen=True)
class BenchmarkFiles:
    material: ReportFile
    material_data_array: Path  # the `data` array of `material` alone, for DuckDB's reader
    material_double: ReportFile  # twice the rows
    material_day: DayFile  # one day of changes to `material_double`
    others: dict[str, ReportFile]  # the other reports, each file about the size of `material`


def prepare_files(
    directory: Path, rows: int, seed: int, changed_rows: int, with_other_reports: bool
) -> tuple[BenchmarkFiles, bool]:
    """The files for these options, and whether they were written now (False: kept from an earlier run)."""
    options = {
        "rows": rows,
        "seed": seed,
        "changed_rows": changed_rows,
        "other_reports": with_other_reports,
        "sources": _sources_digest(),
    }
    manifest = directory / _MANIFEST
    if manifest.is_file():
        kept = json.loads(manifest.read_text(encoding="utf-8"))
        if kept["options"] == options:
            return _files_from_json(directory, kept["files"]), False
    manifest.unlink(missing_ok=True)
    files = _write_files(directory, rows, seed, changed_rows, with_other_reports)
    manifest.write_text(json.dumps({"options": options, "files": _files_to_json(files)}, indent=1), encoding="utf-8")
    return files, True


def _sources_digest() -> str:
    """A digest of the simulator's modules and the benchmark's files modules: the code the files come from."""
    sources = sorted(Path(simulator.__file__).parent.glob("*.py")) + [Path(company.__file__), Path(__file__)]
    return hashlib.sha256(b"".join(path.read_bytes() for path in sources)).hexdigest()


def _write_files(directory: Path, rows: int, seed: int, changed_rows: int, with_other_reports: bool) -> BenchmarkFiles:
    material, _ = BenchmarkCompany(_MATERIAL, rows, seed).write_files(directory / "material_statistics.json")
    material_data_array = directory / "material_statistics.data.json"
    write_data_array(material.path, material_data_array)
    material_double, material_day = BenchmarkCompany(_MATERIAL, 2 * rows, seed).write_files(
        directory / "material_statistics.2x.json", (directory / "material_statistics.2x.day.json", changed_rows)
    )
    assert material_day is not None
    others = {}
    if with_other_reports:
        for name, other_rows in _rows_at_matching_size(rows, seed).items():
            others[name], _ = BenchmarkCompany(name, other_rows, seed).write_files(directory / f"{name}.json")
    return BenchmarkFiles(material, material_data_array, material_double, material_day, others)


def _files_to_json(files: BenchmarkFiles) -> dict[str, Any]:
    def report_file(file: ReportFile) -> dict[str, Any]:
        return {"name": file.path.name, "rows": file.rows, "records": file.records}

    day = files.material_day
    return {
        "material": report_file(files.material),
        "material_data_array": files.material_data_array.name,
        "material_double": report_file(files.material_double),
        "material_day": {
            **report_file(day),
            "updated_rows": day.updated_rows,
            "new_rows": day.new_rows,
            "after": day.after.isoformat(),
            "to": day.to.isoformat(),
        },
        "others": {name: report_file(file) for name, file in files.others.items()},
    }


def _files_from_json(directory: Path, files: dict[str, Any]) -> BenchmarkFiles:
    def report_file(file: dict[str, Any]) -> ReportFile:
        return ReportFile(directory / file["name"], file["rows"], file["records"])

    day = files["material_day"]
    return BenchmarkFiles(
        material=report_file(files["material"]),
        material_data_array=directory / files["material_data_array"],
        material_double=report_file(files["material_double"]),
        material_day=DayFile(
            directory / day["name"],
            day["rows"],
            day["records"],
            day["updated_rows"],
            day["new_rows"],
            datetime.fromisoformat(day["after"]),
            datetime.fromisoformat(day["to"]),
        ),
        others={name: report_file(file) for name, file in files["others"].items()},
    )


def _rows_at_matching_size(material_rows: int, seed: int) -> dict[str, int]:
    """Rows of each other report that make a file about as big as the material report of `material_rows`."""
    with tempfile.TemporaryDirectory(prefix="ekvio-bench-calibration-") as directory:
        bytes_per_row = {}
        for name in (_MATERIAL, *_OTHER_REPORTS):
            written, _ = BenchmarkCompany(name, _CALIBRATION_ROWS, seed).write_files(Path(directory) / f"{name}.json")
            bytes_per_row[name] = written.path.stat().st_size / written.rows
    material_bytes = material_rows * bytes_per_row[_MATERIAL]
    return {name: max(1, round(material_bytes / bytes_per_row[name])) for name in _OTHER_REPORTS}


def write_data_array(report_path: Path, array_path: Path) -> None:
    """Copy the `data` array of a report file as the generator writes it (`{"data": [...]...}`)."""
    size = report_path.stat().st_size
    with report_path.open("rb") as report:
        if report.read(_DATA_ARRAY_START + 1) != b'{"data": [':
            raise ValueError(f"{report_path} does not start with a data array")
        report.seek(max(0, size - 4096))
        tail = report.read()
        end = size - len(tail) + tail.rindex(b"\n]") + 2
        report.seek(_DATA_ARRAY_START)
        with array_path.open("wb") as out:
            remaining = end - _DATA_ARRAY_START
            while remaining:
                chunk = report.read(min(_COPY_CHUNK, remaining))
                out.write(chunk)
                remaining -= len(chunk)
