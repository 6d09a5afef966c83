"""What the CLI reads before it runs: ./.env, DAGSTER_HOME; and how a failed run ends."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any
from unittest import mock

from ekvio_assets.cli.environment import use_instance_home
from ekvio_assets.cli.instance import open_instance
from ekvio_assets.config import Settings
from ekvio_assets.simulator.faults import FaultPlan, FaultRule
from ekvio_assets_tests.conftest import clean_environment, run_cli

PROJECT_CONFIG = Path(__file__).resolve().parents[1] / "dagster.yaml"
# Written as people write them: `export`, quotes, comments, a default through interpolation.
DOTENV = """\
# The company's API
export EKVIO_API_URL="https://api.example.test"   # no token: a configuration error
EKVIO_TIMEZONE='Nowhere/Land'
EKVIO_MAX_ATTEMPTS=${EKVIO_TEST_UNSET:-zero}
"""


def test_dotenv_of_the_working_directory_is_read_and_the_real_environment_wins(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(DOTENV)
    finished = run_cli(tmp_path, "refresh")
    assert finished.returncode == 2, finished.stderr
    assert finished.stdout == "Read EKVIO_API_URL, EKVIO_MAX_ATTEMPTS, EKVIO_TIMEZONE from ./.env\n"
    for problem in ("EKVIO_API_TOKEN must be set", "EKVIO_TIMEZONE", "EKVIO_MAX_ATTEMPTS"):
        assert problem in finished.stderr, problem
    assert "Traceback" not in finished.stderr

    real = run_cli(tmp_path, "refresh", EKVIO_TIMEZONE="Europe/Moscow", EKVIO_MAX_ATTEMPTS="3")
    assert real.returncode == 2, real.stderr
    assert real.stdout == "Read EKVIO_API_URL from ./.env\n"
    assert "EKVIO_API_TOKEN must be set" in real.stderr
    assert "EKVIO_TIMEZONE" not in real.stderr and "EKVIO_MAX_ATTEMPTS" not in real.stderr


def test_dotenv_of_a_parent_folder_is_not_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(DOTENV)
    (tmp_path / "below").mkdir()
    finished = run_cli(tmp_path / "below", "refresh", "--from", "1999-01-01")
    assert finished.returncode == 2
    assert finished.stdout == ""
    assert "1999-01-01 is not a complete day" in finished.stderr and "EKVIO_TIMEZONE" not in finished.stderr


def test_a_dagster_home_that_does_not_exist_yet_is_created(tmp_path: Path) -> None:
    home = tmp_path / "not" / "there"
    settings = Settings.from_env({"EKVIO_DATA_DIR": str(tmp_path / "data")})
    with mock.patch.dict(os.environ, {"DAGSTER_HOME": str(home)}):
        assert use_instance_home(settings) == home
        with open_instance() as instance:
            assert list(instance.get_run_records()) == []
    assert (home / "history").is_dir()
    assert (home / "dagster.yaml").read_text() == PROJECT_CONFIG.read_text()

    # A home of one's own keeps its instance settings.
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with mock.patch.dict(os.environ, {"DAGSTER_HOME": str(home)}):
        assert use_instance_home(settings) == home
    assert (home / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n"


def test_a_failed_step_prints_its_message_and_the_refresh_exits_1(
    tmp_path: Path, simulator_factory: Callable[..., AbstractContextManager[Any]]
) -> None:
    faults = FaultPlan(
        [FaultRule("poll", "task_fail", report="attempts"), FaultRule("poll", "http_503", report="course_statistics")]
    )
    with simulator_factory(faults=faults) as running:
        env = clean_environment(
            EKVIO_API_URL=running.url,
            EKVIO_API_TOKEN=running.token,
            EKVIO_DATA_DIR=str(tmp_path / "data"),
            EKVIO_POLL_INTERVAL_SECONDS="0.05",
            EKVIO_RETRY_BACKOFF_SECONDS="0.05",
            EKVIO_START_DATE=running.dataset.config.start.isoformat(),
            DAGSTER_HOME=str(tmp_path / "new" / "dagster_home"),
        )
        finished = subprocess.run(
            [sys.executable, "-m", "ekvio_assets.cli", "refresh"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert finished.returncode == 1, finished.stdout + finished.stderr
    assert "attempts failed: " in finished.stderr and "failed on the Ekvio side" in finished.stderr
    assert "(reconcile_job) failed; `ekvio-assets ui` shows its full log" in finished.stderr
    assert "  attempts: failed after " in finished.stdout
    # The retried poll is a warning of the step that went on.
    assert "  course_statistics: warning: poll task " in finished.stdout
    assert "  course_statistics: done in " in finished.stdout
    assert "analytics_job" not in finished.stdout
    assert "DEBUG" not in finished.stdout + finished.stderr and "Traceback" not in finished.stderr
    assert running.token not in finished.stdout + finished.stderr
    assert (tmp_path / "new" / "dagster_home" / "dagster.yaml").read_text() == PROJECT_CONFIG.read_text()
