"""A report's result file: `{"data": [records...], **top_level}`, written one record at a time."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TextIO


class WriteStopped(Exception):
    """A result file was abandoned before it was complete."""


class ResultFileWriter:
    """Writes the records' JSON texts into an open file; `finish` closes the document."""

    def __init__(self, out: TextIO, top_level: Mapping[str, Any]) -> None:
        self._out = out
        self._top_level = top_level
        self.records = 0
        out.write('{"data": [')

    def write(self, record_texts: Iterable[str]) -> None:
        for text in record_texts:
            self._out.write(",\n" if self.records else "\n")
            self._out.write(text)
            self.records += 1

    def finish(self) -> None:
        self._out.write("\n]")
        self._out.writelines(f", {json.dumps(key)}: {json.dumps(value)}" for key, value in self._top_level.items())
        self._out.write("}\n")


def write_report_file(
    path: Path, record_texts: Iterable[str], top_level: Mapping[str, Any], *, stop: threading.Event | None = None
) -> int:
    """Write the records' JSON texts as a result file; return the record count.

    Setting `stop` abandons the file half-written (raises `WriteStopped`).
    """
    with open(path, "w", encoding="utf-8") as out:
        writer = ResultFileWriter(out, top_level)
        for text in record_texts:
            if stop is not None and stop.is_set():
                raise WriteStopped(f"stopped writing {path} after {writer.records} records")
            writer.write((text,))
        writer.finish()
    return writer.records


def record_texts(records: Iterable[Mapping[str, Any]]) -> Iterable[str]:
    """JSON texts of records held as objects."""
    # json.dumps takes the C encoder; json.dump(record, file) would run the pure-Python one.
    return (json.dumps(record, ensure_ascii=False) for record in records)
