"""Files that readers may open at any moment."""

from __future__ import annotations

import os
from pathlib import Path


def write_atomically(path: Path, text: str) -> None:
    """A reader opening `path` gets the old content or the new one, never half of one."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.writing")
    try:
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
