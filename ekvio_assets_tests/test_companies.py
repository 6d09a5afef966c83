"""Many companies in one deployment (EKVIO_COMPANIES): their settings checked at once, their
definitions side by side under their own names, their data, tokens and failures kept apart."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from ekvio_assets.config import ConfigError, Settings
from ekvio_assets.definitions import build_definitions
from ekvio_assets.simulator import Dataset, generate
from ekvio_assets_tests.conftest import REPORT_ASSETS, assert_tables_equal_truth, run_cli

# Written out here rather than read from the specs: the assets the docs promise per company.
TABLES = REPORT_ASSETS | {
    "learners",
    "materials",
    "courses",
    "programs",
    "learner_course_progress",
    "learner_program_progress",
    "learner_material_progress",
    "learner_summary",
    "analyst_database",
    "learning_report",
}
JOBS = {"refresh_job", "reconcile_job", "analytics_job"}
SCHEDULES = {"daily_refresh_schedule", "weekly_reconcile_schedule"}
SENSORS = {"missing_days_sensor", "analytics_automation_sensor"}
NORTH_TOKEN = "north-token-never-elsewhere"
SOUTH_TOKEN = "south-token-never-elsewhere"


def _companies_file(folder: Path, text: str) -> Path:
    path = folder / "companies.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def _two_companies(folder: Path, north_url: str, south_url: str) -> Path:
    return _companies_file(
        folder,
        f"""\
        companies:
          - key: north
            api_url: {north_url}
            token_env: EKVIO_TOKEN_NORTH
          - key: south
            api_url: {south_url}
            token_env: EKVIO_TOKEN_SOUTH
            timezone: Asia/Vladivostok
            start_date: 2024-02-01
        """,
    )


def test_every_problem_of_a_companies_file_is_named_with_its_company_and_field(tmp_path: Path) -> None:
    path = _companies_file(
        tmp_path,
        """\
        companies:
          - key: north
            api_url: https://north.example.test
            token_env: EKVIO_TOKEN_NORTH
          - key: north
            api_url: https://other.example.test
            token_env: EKVIO_TOKEN_NORTH
          - key: south
            api_url: ftp://south.example.test
            token_env: EKVIO_TOKEN_SOUTH
            timezone: Mars/Olympus
            tokne: typo
          - key: East
            api_url: https://east.example.test
            token_env: EKVIO_TOKEN_EAST
        """,
    )
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"EKVIO_COMPANIES": str(path), "EKVIO_TOKEN_NORTH": "secret-north-value"})
    message = str(raised.value)
    assert "the key 'north' is given to more than one company" in message
    assert "company 3 ('south'): api_url must be an http(s) URL" in message
    assert "company 3 ('south'): token_env names EKVIO_TOKEN_SOUTH, which is not set" in message
    assert "company 3 ('south'): timezone must be an IANA time zone" in message
    assert "company 3 ('south'): unknown field 'tokne'" in message
    assert "company 4: key must be lower-case letters" in message
    assert "secret-north-value" not in message


@pytest.mark.parametrize(
    "text",
    ["companies: []\n", "- key: north\n", "companies: [north]\n", "companies:\n  - {key: north\n"],
    ids=["empty", "no-companies-key", "not-a-mapping", "broken-yaml"],
)
def test_a_companies_file_of_another_shape_is_refused(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError, match="EKVIO_COMPANIES"):
        Settings.from_env({"EKVIO_COMPANIES": str(_companies_file(tmp_path, text))})


def test_a_single_company_url_beside_a_companies_file_is_refused(tmp_path: Path) -> None:
    path = _two_companies(tmp_path, "https://north.example.test", "https://south.example.test")
    environment = {"EKVIO_TOKEN_NORTH": "n", "EKVIO_TOKEN_SOUTH": "s", "EKVIO_COMPANIES": str(path)}
    with pytest.raises(ConfigError, match="EKVIO_API_URL is a single company's setting"):
        Settings.from_env({**environment, "EKVIO_API_URL": "https://api.example.test", "EKVIO_API_TOKEN": "t"})


def _names(items: Any) -> set[str]:
    return {item.name for item in items}


def test_each_company_has_its_own_assets_jobs_schedules_sensors_pools_and_resources(tmp_path: Path) -> None:
    path = _two_companies(tmp_path, "https://north.example.test", "https://south.example.test")
    settings = Settings.from_env(
        {
            "EKVIO_COMPANIES": str(path),
            "EKVIO_TOKEN_NORTH": NORTH_TOKEN,
            "EKVIO_TOKEN_SOUTH": SOUTH_TOKEN,
            "EKVIO_DATA_DIR": str(tmp_path / "data"),
            "EKVIO_TIMEZONE": "Europe/Moscow",
        }
    )
    definitions = build_definitions(settings)
    companies = ("north", "south")
    keys = {tuple(key.path) for key in definitions.resolve_all_asset_keys()}
    assert keys == {(company, table) for company in companies for table in TABLES}
    graph = definitions.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        company = key.path[0]
        assert graph.get(key).group_name.startswith(f"{company}_ekvio_"), key
        assert all(parent.path[0] == company for parent in graph.get(key).parent_keys), key
    jobs = _names(job for job in definitions.resolve_all_job_defs() if not job.name.startswith("__"))
    assert jobs == {f"{company}_{job}" for company in companies for job in JOBS}
    schedules = {schedule.name: schedule for schedule in definitions.schedules or []}
    assert schedules.keys() == {f"{company}_{name}" for company in companies for name in SCHEDULES}
    assert schedules["north_daily_refresh_schedule"].execution_timezone == "Europe/Moscow"
    assert schedules["south_daily_refresh_schedule"].execution_timezone == "Asia/Vladivostok"
    assert _names(definitions.sensors or []) == {f"{company}_{name}" for company in companies for name in SENSORS}
    material = definitions.resolve_assets_def(dg.AssetKey(["south", "material_statistics"]))
    assert material.partitions_def is not None
    assert material.partitions_def.get_first_partition_key() == "2024-02-01"
    assert material.op.pool == "south_ekvio_material_statistics"
    resources = definitions.resources or {}
    assert resources.keys() == {f"{company}_{name}" for company in companies for name in ("ekvio_api", "warehouse")}
    assert resources["south_ekvio_api"].api_url == "https://south.example.test"
    assert resources["south_warehouse"].data_dir == str(tmp_path / "data" / "south")
    # The token is read by Dagster through the company's own variable, never kept in the definitions.
    assert all(
        NORTH_TOKEN not in repr(resource) and SOUTH_TOKEN not in repr(resource) for resource in resources.values()
    )


def test_without_a_companies_file_the_names_are_as_before(tmp_path: Path) -> None:
    definitions = build_definitions(Settings.from_env({"EKVIO_DATA_DIR": str(tmp_path)}))
    assert {tuple(key.path) for key in definitions.resolve_all_asset_keys()} == {(table,) for table in TABLES}
    assert _names(job for job in definitions.resolve_all_job_defs() if not job.name.startswith("__")) == JOBS
    assert (definitions.resources or {}).keys() == {"ekvio_api", "warehouse"}


def test_refresh_serves_every_company_apart_and_one_failing_stops_none_of_the_others(
    tmp_path: Path, dataset: Dataset, simulator_factory: Any
) -> None:
    south_company = generate(dataclasses.replace(dataset.config, seed=23, learners=25, materials=6))
    # South's simulator expects another token than the one its company is configured with: every
    # call of south's is refused (401), after north's were all answered.
    with (
        simulator_factory(token=NORTH_TOKEN) as north,
        simulator_factory(dataset=south_company, token="the-token-south-really-has") as south,
    ):
        path = _two_companies(tmp_path, north.url, south.url)
        environment = {
            "EKVIO_COMPANIES": str(path),
            "EKVIO_TOKEN_NORTH": NORTH_TOKEN,
            "EKVIO_TOKEN_SOUTH": SOUTH_TOKEN,
            "EKVIO_DATA_DIR": str(tmp_path / "data"),
            "EKVIO_POLL_INTERVAL_SECONDS": "0.05",
            "EKVIO_START_DATE": north.dataset.config.start.isoformat(),
        }
        finished = run_cli(tmp_path, "refresh", **environment)
        assert finished.returncode == 1, finished.stderr[-3000:]
        assert "The refresh of south failed; the other companies were refreshed." in finished.stderr
        north_settings = Settings.from_env(environment).per_company()[0]
        assert north_settings.company == "north"
        assert_tables_equal_truth(north_settings, north, as_of=None)
        assert (tmp_path / "data" / "north" / "ekvio.duckdb").is_file()
        assert not (tmp_path / "data" / "south" / "ekvio.duckdb").exists()
        north_headers = {header for headers in north.state.authorization_headers.values() for header in headers}
        south_headers = {header for headers in south.state.authorization_headers.values() for header in headers}
        assert north_headers == {f"Bearer {NORTH_TOKEN}"}
        assert south_headers == {f"Bearer {SOUTH_TOKEN}"}

        south_calls = sum(south.state.requests.values())
        again = run_cli(tmp_path, "refresh", "--company", "north", **environment)
        assert again.returncode == 0, again.stderr[-3000:]
        assert sum(south.state.requests.values()) == south_calls
        for output in (finished, again):
            assert NORTH_TOKEN not in output.stdout + output.stderr
            assert SOUTH_TOKEN not in output.stdout + output.stderr


def test_an_unknown_company_is_one_clear_message(tmp_path: Path) -> None:
    path = _two_companies(tmp_path, "https://north.example.test", "https://south.example.test")
    finished = run_cli(
        tmp_path,
        "refresh",
        "--company",
        "west",
        EKVIO_COMPANIES=str(path),
        EKVIO_TOKEN_NORTH="n",
        EKVIO_TOKEN_SOUTH="s",
        EKVIO_DATA_DIR=str(tmp_path / "data"),
    )
    assert finished.returncode == 2
    assert "--company 'west' is not in EKVIO_COMPANIES, whose companies are north, south" in finished.stderr
    assert "Traceback" not in finished.stderr
