"""`ekvio-assets refresh`, the README's main command, as a new user runs it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb

from ekvio_assets.models.specs import MODELS
from ekvio_assets.reports.specs import REPORTS

README = Path(__file__).resolve().parents[1] / "README.md"


def _analyst_queries() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## For analysts") :]
    section = section[: section.index("\n## ", 1)]
    return re.findall(r"```sql\n(.*?)```", section, re.S)


def _run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("EKVIO_", "DAGSTER_"))}
    return subprocess.run(
        [sys.executable, "-m", "ekvio_assets.cli", *args],
        cwd=tmp_path,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_refresh_on_the_embedded_simulator_fills_the_report_and_analytics_tables(tmp_path: Path) -> None:
    finished = _run(tmp_path, "refresh")
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "embedded Ekvio simulator" in finished.stdout
    database = tmp_path / "data" / "ekvio.duckdb"
    assert str(database) in finished.stdout
    with duckdb.connect(str(database), read_only=True) as con:
        for name in [spec.name for spec in REPORTS] + [model.name for model in MODELS]:
            rows = con.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
            assert rows > 0, name
            assert f"  {name} " in finished.stdout
        queries = _analyst_queries()
        assert len(queries) == 5
        for query in queries:
            assert con.execute(query).fetchall(), query
    assert (tmp_path / "data" / "dagster_home").is_dir()


def test_a_bad_configuration_is_one_clear_message(tmp_path: Path) -> None:
    finished = _run(tmp_path, "refresh", EKVIO_API_URL="https://api.example.test", EKVIO_TIMEZONE="Nowhere/Land")
    assert finished.returncode == 2
    assert "EKVIO_API_TOKEN must be set" in finished.stderr and "EKVIO_TIMEZONE" in finished.stderr
    assert "Traceback" not in finished.stderr
