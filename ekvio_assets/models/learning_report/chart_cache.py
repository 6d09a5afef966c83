"""The report's charts, each drawn once per distinct input.

Drawing is most of the report's time (matplotlib lays out and measures every label), and a chart's
input changes only when the data does: a refresh that changed nothing draws nothing. Each chart is
kept as an SVG file named after a hash of all that makes it (the chart, its arguments, the code that
draws charts and matplotlib's version); a page uses the files of its inputs and the others go.
"""

from __future__ import annotations

import functools
import hashlib
from importlib.metadata import version
from pathlib import Path
from typing import Any

from ekvio_assets.storage.files import write_atomically

_CHART_CODE = (Path(__file__).parent / "charts.py", Path(__file__).parent / "chart_inputs.py")


@functools.cache
def _drawing_version() -> bytes:
    code = b"".join(path.read_bytes() for path in _CHART_CODE)
    return code + version("matplotlib").encode()


class ChartCache:
    """The charts of one page, drawn or taken from `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.drawn = 0
        self._used: set[Path] = set()

    def svg(self, chart: str, name: str, *args: Any, **options: Any) -> str:
        """The SVG of `charts.<chart>(name, *args, **options)`."""
        digest = hashlib.sha256(repr((chart, name, args, sorted(options.items()))).encode() + _drawing_version())
        path = self.directory / f"{name}-{digest.hexdigest()[:20]}.svg"
        self._used.add(path)
        if path.is_file():
            return path.read_text(encoding="utf-8")
        # Only a chart to draw loads the plotting library.
        from ekvio_assets.models.learning_report import charts

        drawn = getattr(charts, chart)(name, *args, **options)
        self.directory.mkdir(parents=True, exist_ok=True)
        write_atomically(path, drawn)
        self.drawn += 1
        return drawn

    def drop_unused(self) -> None:
        """Removes the charts that no page drawn since this cache was made uses."""
        for path in self.directory.glob("*.svg"):
            if path not in self._used:
                path.unlink(missing_ok=True)
