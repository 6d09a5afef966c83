"""EKVIO_* settings: defaults, and one clear error that names every bad value."""

import re
from pathlib import Path

import pytest

from ekvio_assets.config import ConfigError, Settings


def test_defaults_use_the_embedded_simulator() -> None:
    settings = Settings.from_env({})
    assert settings.uses_embedded_simulator
    assert settings.data_dir == Path("data").absolute()
    assert settings.database_path == Path("data").absolute() / "ekvio.duckdb"
    assert (settings.timezone, settings.poll_timeout_seconds) == ("Europe/Moscow", 3600.0)
    assert settings.poll_interval_seconds == 1.0


def test_a_configured_api_takes_its_url_and_the_documented_poll_interval() -> None:
    settings = Settings.from_env(
        {"EKVIO_API_URL": "https://api.example.test/", "EKVIO_API_TOKEN": "secret", "EKVIO_DATA_DIR": "/tmp/x"}
    )
    assert settings.api_url == "https://api.example.test"
    assert settings.poll_interval_seconds == 10.0
    assert settings.data_dir == Path("/tmp/x")
    assert (settings.max_attempts, settings.retry_backoff_seconds) == (6, 1.0)


def test_every_problem_is_named_at_once_and_the_token_never_shown() -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(
            {
                "EKVIO_API_URL": "ftp://files",
                "EKVIO_TIMEZONE": "Mars/Olympus",
                "EKVIO_POLL_INTERVAL_SECONDS": "soon",
                "EKVIO_POLL_TIMEOUT_SECONDS": "-5",
                "EKVIO_FRESHNESS_HOURS": "0",
                "EKVIO_MAX_ATTEMPTS": "2.5",
                "EKVIO_RETRY_BACKOFF_SECONDS": "never",
            }
        )
    message = str(raised.value)
    for name in (
        "EKVIO_API_URL must be",
        "EKVIO_API_TOKEN must be set",
        "EKVIO_TIMEZONE",
        "EKVIO_POLL_INTERVAL_SECONDS",
        "EKVIO_POLL_TIMEOUT_SECONDS",
        "EKVIO_FRESHNESS_HOURS",
        "EKVIO_MAX_ATTEMPTS must be a whole number of attempts",
        "EKVIO_RETRY_BACKOFF_SECONDS",
    ):
        assert name in message


def test_a_token_value_is_never_echoed() -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"EKVIO_API_URL": "not a url", "EKVIO_API_TOKEN": "tok-SECRET-123"})
    assert "tok-SECRET-123" not in str(raised.value)


def test_the_file_host_is_read_and_unset_by_default() -> None:
    assert Settings.from_env({"EKVIO_FILE_HOST": "https://files.example.test:8443/"}).file_host == (
        "https://files.example.test:8443"
    )
    assert Settings.from_env({}).file_host is None


@pytest.mark.parametrize(
    "file_host",
    [
        "ftp://files.example.test",
        "files.example.test",
        "http://",
        "https://files.example.test/content",
        "http://files.example.test?x=1",
        "http://files.example.test/#top",
        "http://files.example.test:http",
    ],
)
def test_a_file_host_that_is_not_scheme_host_and_port_is_refused(file_host: str) -> None:
    with pytest.raises(ConfigError, match=re.escape("EKVIO_FILE_HOST must be scheme://host[:port]")) as raised:
        Settings.from_env({"EKVIO_FILE_HOST": file_host})
    assert str(raised.value).endswith(f"got {file_host!r}")


def test_a_file_host_with_user_info_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError, match="EKVIO_FILE_HOST must not hold user info") as raised:
        Settings.from_env({"EKVIO_FILE_HOST": "https://robot:s3cret-pass@files.example.test"})
    assert "s3cret-pass" not in str(raised.value)


def test_the_report_routes_are_read_and_unset_by_default() -> None:
    settings = Settings.from_env(
        {
            "EKVIO_ATTEMPTS_PATH": "/v1/custom/attempts",
            "EKVIO_ATTEMPTS_METHOD": "post",
            "EKVIO_PROGRAM_STATISTICS_METHOD": "Get",
        }
    )
    assert settings.report_paths == {"attempts": "/v1/custom/attempts"}
    assert settings.report_methods == {"attempts": "POST", "program_statistics": "GET"}
    defaults = Settings.from_env({})
    assert (defaults.report_paths, defaults.report_methods) == ({}, {})


def test_every_bad_route_is_named_at_once_with_the_other_problems() -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(
            {
                "EKVIO_TIMEZONE": "Mars/Olympus",
                "EKVIO_FILE_HOST": "nginx",
                "EKVIO_ATTEMPTS_PATH": "v1/attempts",
                "EKVIO_ATTEMPTS_METHOD": "PUT",
                "EKVIO_MATERIAL_STATISTICS_PATH": "https://api.example.test/v3/materials/statistic",
                "EKVIO_COURSE_STATISTICS_PATH": "//api.example.test/v2/trainings/statistic",
                "EKVIO_PROGRAM_STATISTICS_PATH": "/v3/learning-programmes/statistic?include=materials",
            }
        )
    problems = str(raised.value).splitlines()[1:]
    assert len(problems) == 7, problems
    for name in (
        "EKVIO_TIMEZONE",
        "EKVIO_FILE_HOST",
        "EKVIO_ATTEMPTS_PATH must be a path that starts with /",
        "EKVIO_ATTEMPTS_METHOD must be GET or POST, got 'PUT'",
        "EKVIO_MATERIAL_STATISTICS_PATH",
        "EKVIO_COURSE_STATISTICS_PATH",
        "EKVIO_PROGRAM_STATISTICS_PATH",
    ):
        assert any(problem.startswith(f"- {name}") for problem in problems), name


def test_asset_owners_are_read_and_every_bad_one_is_named_with_the_other_problems() -> None:
    assert Settings.from_env({}).asset_owners == ("team:learning-analytics",)
    owners = Settings.from_env({"EKVIO_ASSET_OWNERS": " team:hr-analytics, anna@example.com "}).asset_owners
    assert owners == ("team:hr-analytics", "anna@example.com")
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"EKVIO_ASSET_OWNERS": "hr analytics,anna@example.com", "EKVIO_LOOKBACK_DAYS": "0"})
    message = str(raised.value)
    assert (
        "EKVIO_ASSET_OWNERS must be a comma-separated list" in message and "'hr analytics,anna@example.com'" in message
    )
    assert "EKVIO_LOOKBACK_DAYS" in message
