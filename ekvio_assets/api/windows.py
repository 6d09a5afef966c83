"""The change-time window of an export, and the windows a longer range is split into."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class ExportWindow:
    """The change-time window of an export; both bounds None means the full report."""

    after: datetime | None = None
    to: datetime | None = None

    def query_params(self) -> dict[str, str]:
        bounds = {"after_date": self.after, "to_date": self.to}
        return {name: bound.isoformat(timespec="seconds") for name, bound in bounds.items() if bound is not None}

    def describe(self) -> str:
        if self.after is None and self.to is None:
            return "full report"
        return f"changes from {self.after or 'the beginning'} to {self.to or 'now'}"


FULL_EXPORT = ExportWindow()


def export_windows(start: datetime, end: datetime, max_days: int) -> list[ExportWindow]:
    """As few windows as cover [start, end), none longer than `max_days` days."""
    windows: list[ExportWindow] = []
    step = timedelta(days=max_days)
    window_start = start
    while window_start < end:
        window_end = min(window_start + step, end)
        windows.append(ExportWindow(window_start, window_end))
        window_start = window_end
    return windows
