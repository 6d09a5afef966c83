"""How a run's progress reaches the terminal: a live table on a terminal, one line per event elsewhere
(CI, cron, a log file), Dagster's own log with --verbose."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import dagster as dg
from rich.console import Console
from rich.live import Live
from rich.table import Table

from ekvio_assets.cli.progress import RunProgress, TableChange

# Takes each event of the run; what it returns (the verbose display's notes) is not read.
EntryHandler = Callable[[dg.EventLogEntry], object]


class Display(Protocol):
    def following(self, progress: RunProgress) -> Any:
        """A context manager yielding the handler of the run's events."""


class PlainDisplay:
    """One line per thing that happened: a task's change of status, a download, a step's end, a warning."""

    @contextmanager
    def following(self, progress: RunProgress) -> Iterator[EntryHandler]:
        headed = False

        def on_entry(entry: Any) -> None:
            nonlocal headed
            for note in progress.apply(entry):
                if not headed:
                    print(f"{progress.job_name}:", flush=True)
                    headed = True
                print(note, flush=True)

        yield on_entry


class VerboseDisplay:
    """Dagster's console log (at DEBUG with --verbose) says it all; this adds nothing."""

    @contextmanager
    def following(self, progress: RunProgress) -> Iterator[EntryHandler]:
        yield progress.apply


class LiveDisplay:
    """A table of the steps, redrawn while the run goes on; warnings are printed above it."""

    def __init__(self, console: Console | None = None) -> None:
        self._console = console or Console()
        self._lock = threading.Lock()  # the follower thread updates what rich's refresh thread draws

    @contextmanager
    def following(self, progress: RunProgress) -> Iterator[EntryHandler]:
        def render() -> Table:
            with self._lock:
                return _steps_table(progress, time.time())

        def on_entry(entry: Any) -> None:
            with self._lock:
                notes = progress.apply(entry)
            for note in notes:
                if note.warning:
                    live.console.print(str(note), markup=False, highlight=False)

        with Live(console=self._console, get_renderable=render, refresh_per_second=4) as live:
            yield on_entry


def _steps_table(progress: RunProgress, now: float) -> Table:
    table = Table(title=progress.job_name, title_justify="left", box=None, pad_edge=False)
    for column in ("step", "status", "time", "downloaded", "inserted", "updated", "rejected"):
        table.add_column(column, justify="left" if column in ("step", "status") else "right")
    for step in progress.steps.values():
        seconds = step.seconds(now)
        status = step.status
        if step.task_status not in (None, "downloaded") and step.succeeded is None:
            status += f" ({step.task_elapsed_seconds} s)"
        changes = list(step.tables.values())
        table.add_row(
            step.key,
            status,
            "" if seconds is None else f"{seconds:.1f} s",
            f"{step.bytes_downloaded:,} B" if step.bytes_downloaded else "",
            *(_total(changes, name) for name in ("inserted", "updated", "rejected")),
        )
    return table


def _total(changes: list[TableChange], name: str) -> str:
    return f"{sum(getattr(change, name) for change in changes):,}" if changes else ""


def choose_display(verbose: bool) -> Display:
    if verbose:
        return VerboseDisplay()
    return LiveDisplay() if sys.stdout.isatty() else PlainDisplay()
