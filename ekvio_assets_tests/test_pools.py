"""`ekvio-assets pools` stores every company's pools on the Dagster instance before a run of them is
queued (Dagster's queue lets every queued run of a pool it has not stored yet start at once), at the
limit of the project's dagster.yaml, and leaves alone a limit an operator has set."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg

from ekvio_assets_tests.conftest import clean_environment, run_cli

PROJECT_INSTANCE = Path(__file__).resolve().parents[1] / "dagster.yaml"
# The four reports of ../shared/ekvio-api/reports, one pool each per company.
REPORTS = ("attempts", "course_statistics", "material_statistics", "program_statistics")
COMPANIES = """\
companies:
  - key: north
    api_url: https://north.example.test
    token_env: EKVIO_TOKEN_NORTH
  - key: south
    api_url: https://south.example.test
    token_env: EKVIO_TOKEN_SOUTH
"""


def _limits(home: Path) -> dict[str, tuple[int, bool]]:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return {pool.name: (pool.limit, pool.from_default) for pool in instance.event_log_storage.get_pool_limits()}


def _companies_env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "companies.yaml").write_text(COMPANIES, encoding="utf-8")
    return {
        "EKVIO_COMPANIES": str(tmp_path / "companies.yaml"),
        "EKVIO_TOKEN_NORTH": "north-token",
        "EKVIO_TOKEN_SOUTH": "south-token",
        "EKVIO_DATA_DIR": str(tmp_path / "data"),
    }


def test_every_companys_report_pools_are_stored_once_at_the_default_limit(tmp_path: Path) -> None:
    env = _companies_env(tmp_path)
    first = run_cli(tmp_path, "pools", **env)
    assert first.returncode == 0, first.stderr
    expected = {f"{company}_ekvio_{report}" for company in ("north", "south") for report in REPORTS}
    home = tmp_path / "data" / "dagster_home"
    assert _limits(home) == dict.fromkeys(expected, (1, True))
    assert "8 of them new" in first.stdout
    assert {line.split(":")[0].strip() for line in first.stdout.splitlines()[1:]} == expected

    again = run_cli(tmp_path, "pools", **env)
    assert again.returncode == 0 and "0 of them new" in again.stdout, again.stderr
    assert _limits(home) == dict.fromkeys(expected, (1, True))


def test_a_limit_the_operator_set_is_kept(tmp_path: Path) -> None:
    env = _companies_env(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    shutil.copyfile(PROJECT_INSTANCE, home / "dagster.yaml")
    # What an operator types to let north's attempts run twice at once.
    subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "instance", "concurrency", "set", "north_ekvio_attempts", "2"],
        env=clean_environment(DAGSTER_HOME=str(home)),
        check=True,
        capture_output=True,
    )
    registered = run_cli(tmp_path, "pools", **env, DAGSTER_HOME=str(home))
    assert registered.returncode == 0, registered.stderr
    assert "7 of them new" in registered.stdout and "north_ekvio_attempts: 2 run" in registered.stdout
    limits = _limits(home)
    assert limits.pop("north_ekvio_attempts") == (2, False)
    assert set(limits.values()) == {(1, True)} and len(limits) == 7


def test_an_instance_without_a_default_pool_limit_is_refused_and_left_unchanged(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    # The team instance without its concurrency block, on SQLite: what a hand-written dagster.yaml may be.
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n", encoding="utf-8")
    refused = run_cli(tmp_path, "pools", EKVIO_DATA_DIR=str(tmp_path / "data"), DAGSTER_HOME=str(home))
    assert refused.returncode == 1
    assert "concurrency.pools.default_limit" in refused.stderr, refused.stderr
    assert _limits(home) == {}
