"""The package's layers point one way: a module imports only from layers below its own (or from its
own package), so the protocol client never learns of report specs, nor production code of its
test doubles. Imports inside functions count too."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ekvio_assets"
# From the ground up; a layer may import from every layer before it, never from one after it.
LAYERS = (
    ("storage", "cli_arguments", "companies"),
    ("api",),
    ("naming",),
    ("reports",),
    ("models", "config"),
    ("simulator",),
    ("automation",),
    ("benchmark",),
    ("definitions", "cli"),
)
RANK = {part: rank for rank, parts in enumerate(LAYERS) for part in parts}


def _part(module: str) -> str:
    """The first name below `ekvio_assets` of a module path such as ekvio_assets.api.client."""
    return module.split(".")[1]


def _imported_parts(path: Path) -> set[str]:
    parts = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        parts |= {_part(name) for name in names if name.startswith("ekvio_assets.")}
    return parts


def test_every_part_of_the_package_has_a_layer() -> None:
    parts = {path.stem if path.is_file() else path.name for path in PACKAGE.iterdir()}
    parts -= {"__init__", "__pycache__"}
    assert {part for part in parts if not part.startswith(".")} - RANK.keys() == set()


def test_no_module_imports_from_a_layer_above_its_own() -> None:
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        own = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        if own == "__init__":
            continue
        for part in _imported_parts(path) - {own}:
            if part in RANK and RANK[part] >= RANK[own]:
                upward.append(f"{path.relative_to(PACKAGE)} imports ekvio_assets.{part}")
    assert upward == []


def _imported_names(path: Path) -> set[str]:
    """Every dotted part of what a module imports: `from a.b import c` names a, b and c."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {part for alias in node.names for part in alias.name.split(".")}
        elif isinstance(node, ast.ImportFrom):
            names |= set((node.module or "").split(".")) | {alias.name for alias in node.names}
    return names


def test_no_test_module_imports_another() -> None:
    """Tests share helpers through conftest.py and helpers.py: a test module importing another's
    names couples the two, and running one alone would collect the other's tests too."""
    tests = PACKAGE.parent / "ekvio_assets_tests"
    test_modules = {path.stem for path in tests.glob("test_*.py")}
    coupled = [
        f"{path.name} imports {name}"
        for path in sorted(tests.glob("*.py"))
        for name in sorted(_imported_names(path) & (test_modules - {path.stem}))
    ]
    assert coupled == []
