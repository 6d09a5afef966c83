"""The benchmark's company-scale report files, drawn by the simulator's one generator.

A benchmark company is sized for one report: enough materials, courses or programmes that the
report holds the wanted rows. Its report file is the report as of the start of the period's last
day, cut to exactly the wanted rows; its day file holds what changed on that day, a sample of the
rows of the report file that changed then and of rows that first appeared then.
"""

from __future__ import annotations

import contextlib
import functools
import math
import multiprocessing
import os
import random
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ekvio_assets.reports.specs import (
    ATTEMPTS,
    COURSE_STATISTICS,
    MATERIAL_STATISTICS,
    MATERIAL_TYPES,
    PROGRAM_STATISTICS,
)
from ekvio_assets.simulator.company import DatasetConfig
from ekvio_assets.simulator.generator import generate
from ekvio_assets.simulator.result_file import ResultFileWriter

# Learners of every benchmark company: each material, course or programme is assigned to a share of
# them, some hundreds of rows under each parent.
_LEARNERS = 2000
# A short period, so that its last day changes a good share of the rows.
_DAYS = 10
# Expected rows of one parent (one test for attempts) at its generator's assignment shares, and
# parents to spare: a cut company must never run out of rows.
_ROWS_PER_PARENT = {
    ATTEMPTS.name: 0.2 * _LEARNERS,
    MATERIAL_STATISTICS.name: 0.3 * _LEARNERS,
    COURSE_STATISTICS.name: 0.4 * _LEARNERS,
    PROGRAM_STATISTICS.name: 0.5 * _LEARNERS,
}
_SPARE_PARENTS = 1.3
# From this many rows on, a process per core draws the rows: spawning them costs a few seconds.
_PARALLEL_ROWS = 100_000
_NEW_ROWS_SHARE = 0.2  # of a day file's rows: rows that first appear that day, the others are updates


@dataclass(frozen=True)
class ReportFile:
    path: Path
    rows: int  # table rows: children of a nested report
    records: int  # elements of the `data` array


@dataclass(frozen=True)
class DayFile(ReportFile):
    updated_rows: int  # rows of the report file that changed on the day
    new_rows: int  # rows that first appear on the day
    after: datetime  # the day, as an export window
    to: datetime


class BenchmarkCompany:
    """A company whose report `report_name` has `rows` rows as of the start of its last day."""

    def __init__(self, report_name: str, rows: int, seed: int = 7) -> None:
        if rows < 1:
            raise ValueError("rows must be at least 1")
        self.report_name = report_name
        self.rows = rows
        self.seed = seed
        parents = math.ceil(_SPARE_PARENTS * rows / _ROWS_PER_PARENT[report_name]) + 2
        self.dataset = generate(_config(report_name, parents, seed))
        self.timezone = self.dataset.config.timezone
        self.day_after, self.day_to = self.dataset.day_window(_DAYS - 1)

    def write_files(self, path: Path, day: tuple[Path, int] | None = None) -> tuple[ReportFile, DayFile | None]:
        """The report file; given (path, changed rows), the day file too, from the same pass over the rows."""
        renderer = self.dataset.renderer(self.report_name)
        groups = self.dataset.groups(self.report_name)
        day_rows = _DaySample(random.Random(f"{self.seed}/{self.report_name}/day"), day[1] if day else 0)
        remaining = self.rows
        with open(path, "w", encoding="utf-8") as out, self._drawn_groups(with_day=day is not None) as drawn:
            writer = ResultFileWriter(out, renderer.top_level)
            for index, row_texts in enumerate(drawn):
                texts = []
                for file_text, day_text in row_texts:
                    in_file = False
                    if file_text is not None and remaining:
                        texts.append(file_text)
                        remaining -= 1
                        in_file = True
                    # The day's changes to rows of the file, and its rows that are new.
                    if day_text is not None and (in_file or file_text is None):
                        day_rows.offer(index, day_text, updated=in_file)
                writer.write(renderer.records(groups[index].parent, texts))
                if not remaining:
                    break
            writer.finish()
        if remaining:
            raise AssertionError(f"{self.report_name}: the company holds {self.rows - remaining} rows, not {self.rows}")
        report = ReportFile(path, self.rows, writer.records)
        if day is None:
            return report, None
        return report, self._write_day_file(day[0], day_rows)

    @contextlib.contextmanager
    def _drawn_groups(self, *, with_day: bool) -> Iterator[Iterator[list[_RowTexts]]]:
        """The texts of every group's rows, in order; drawn by a process per core for a big company."""
        count = len(self.dataset.groups(self.report_name))
        if self.rows < _PARALLEL_ROWS:
            yield (_row_texts(self, index, with_day) for index in range(count))
            return
        context = multiprocessing.get_context("spawn")  # no fork of a process that may run threads
        arguments = (self.report_name, self.rows, self.seed)
        with context.Pool(os.cpu_count(), initializer=_start_worker, initargs=arguments) as pool:
            yield pool.imap(functools.partial(_worker_row_texts, with_day=with_day), range(count), chunksize=4)

    def _write_day_file(self, path: Path, sample: _DaySample) -> DayFile:
        renderer = self.dataset.renderer(self.report_name)
        groups = self.dataset.groups(self.report_name)
        chosen = sample.chosen()
        with open(path, "w", encoding="utf-8") as out:
            writer = ResultFileWriter(out, renderer.top_level)
            for index in sorted({index for index, _, _ in chosen}):
                texts = [text for i, text, _ in chosen if i == index]
                writer.write(renderer.records(groups[index].parent, texts))
            writer.finish()
        updated = sum(updated for _, _, updated in chosen)
        return DayFile(path, len(chosen), writer.records, updated, len(chosen) - updated, self.day_after, self.day_to)


# A row's text in the report file (None: it first appears on the day) and in the day file (None:
# the day does not change it).
_RowTexts = tuple[str | None, str | None]


def _row_texts(company: BenchmarkCompany, group_index: int, with_day: bool) -> list[_RowTexts]:
    rows = company.dataset.renderer(company.report_name).rows
    texts = []
    for row in company.dataset.groups(company.report_name)[group_index].rows():
        version = row.visible(company.day_after)
        file_text = None if version is None else rows.text(version.values, row.drift)
        final = row.versions[-1]
        changes_on_the_day = with_day and company.day_after <= final.modified_at < company.day_to
        texts.append((file_text, rows.text(final.values, row.drift) if changes_on_the_day else None))
    return texts


_worker_company: BenchmarkCompany | None = None


def _start_worker(report_name: str, rows: int, seed: int) -> None:
    # The pool stops its workers with SIGTERM once the file is full. A spawned process inherits an
    # ignored SIGTERM, and Dagster leaves SIGTERM ignored in a process that ran assets in-process with
    # SIGINT ignored (a job started in the background, by nohup or a CI runner): the workers then
    # outlived terminate() and the benchmark waited for them for ever.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    global _worker_company
    _worker_company = BenchmarkCompany(report_name, rows, seed)


def _worker_row_texts(group_index: int, *, with_day: bool) -> list[_RowTexts]:
    assert _worker_company is not None
    return _row_texts(_worker_company, group_index, with_day)


def _config(report_name: str, parents: int, seed: int) -> DatasetConfig:
    """A company with `parents` parents of the report's rows and one of each other kind."""
    # Materials take every type in turn: one in len(MATERIAL_TYPES) is a test, the attempts' parent.
    materials = {ATTEMPTS.name: parents * len(MATERIAL_TYPES), MATERIAL_STATISTICS.name: parents}.get(report_name, 1)
    courses = parents if report_name == COURSE_STATISTICS.name else 1
    programs = parents if report_name == PROGRAM_STATISTICS.name else 1
    return DatasetConfig(
        seed=seed, learners=_LEARNERS, materials=materials, courses=courses, programs=programs, days=_DAYS
    )


class _DaySample:
    """A uniform sample of the day's changed rows, updates and new rows apart, taken as they pass."""

    def __init__(self, rng: random.Random, size: int) -> None:
        self._rng = rng
        self._size = size
        self._limits = {True: size, False: round(size * _NEW_ROWS_SHARE)}
        self._offered = 0
        self._seen = {True: 0, False: 0}
        # By whether the row updates one of the report file: (position offered, group index, text).
        self._kept: dict[bool, list[tuple[int, int, str]]] = {True: [], False: []}

    def offer(self, group_index: int, text: str, *, updated: bool) -> None:
        # Reservoir sampling: the n-th row of its kind replaces a kept one with chance limit / n.
        entry = (self._offered, group_index, text)
        self._offered += 1
        kept, limit = self._kept[updated], self._limits[updated]
        self._seen[updated] += 1
        if len(kept) < limit:
            kept.append(entry)
            return
        slot = self._rng.randrange(self._seen[updated])
        if slot < limit:
            kept[slot] = entry

    def chosen(self) -> list[tuple[int, str, bool]]:
        """(group index, row text, whether it updates a row of the report file), in payload order; the
        updates fill what the new rows leave of the size."""
        new = self._kept[False]
        updates = self._kept[True]
        updates = self._rng.sample(updates, min(len(updates), self._size - len(new)))
        entries = [(entry, True) for entry in updates] + [(entry, False) for entry in new]
        return [(index, text, is_update) for (_, index, text), is_update in sorted(entries, key=lambda e: e[0][0])]
