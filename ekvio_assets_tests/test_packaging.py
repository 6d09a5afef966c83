"""The install the README's commands make: every dependency pinned by constraints.txt."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    """A distribution's normalized name (PEP 503) out of a requirement such as `duckdb>=2.0`."""
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement.strip())
    assert match is not None, requirement
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


def test_every_declared_dependency_of_every_extra_is_pinned_by_the_constraints_file() -> None:
    project = tomllib.loads((REPOSITORY / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    requirements = [*project["dependencies"], *(r for extra in extras.values() for r in extra)]
    # An extra may name another of the project's own (ekvio-assets[postgres]): that one is listed too.
    declared = {_name(r) for r in requirements} - {_name(project["name"])}
    pins = {}
    for line in (REPOSITORY / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt pins exact versions only, got {line!r}"
            pins[_name(name)] = version
    assert declared - pins.keys() == set()
