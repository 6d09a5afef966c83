"""What the CLI reads before it runs anything: `./.env`, the project files, the Dagster instance home."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from dotenv import dotenv_values

from ekvio_assets.config import Settings

INSTANCE_CONFIG = "dagster.yaml"
WORKSPACE = "workspace.yaml"
DOTENV = ".env"
# The source checkout this package runs from (an editable install), where dagster.yaml and
# workspace.yaml live; an installed wheel has neither, and the working directory's are used.
PROJECT_DIR = Path(__file__).resolve().parents[2]


def load_dotenv() -> list[str]:
    """Sets the variables of `./.env` that the environment does not set; returns their names.

    The file is parsed as `dagster dev` parses it (python-dotenv's `dotenv_values` of the working
    directory's `.env`, no search in parent folders, keys without a value skipped), but a variable
    set in the real environment wins over the file.
    """
    path = Path.cwd() / DOTENV
    if not path.is_file():
        return []
    added = {key: value for key, value in dotenv_values(path).items() if value is not None and key not in os.environ}
    os.environ.update(added)
    return sorted(added)


def project_file(name: str) -> Path | None:
    """The working directory's file of that name, else the project's, else None."""
    for folder in (Path.cwd(), PROJECT_DIR):
        if (folder / name).is_file():
            return (folder / name).absolute()
    return None


def use_instance_home(settings: Settings) -> Path:
    """$DAGSTER_HOME, or EKVIO_DATA_DIR/dagster_home; created if missing, with the project's dagster.yaml
    (copied again each time into EKVIO_DATA_DIR/dagster_home; into $DAGSTER_HOME only if it has none).

    Sets DAGSTER_HOME, so that the runs, their step processes and `ekvio-assets ui` share it.
    """
    own_home = "DAGSTER_HOME" not in os.environ
    home = settings.data_dir / "dagster_home" if own_home else Path(os.environ["DAGSTER_HOME"]).expanduser().absolute()
    home.mkdir(parents=True, exist_ok=True)
    config = project_file(INSTANCE_CONFIG)
    if config is not None and (own_home or not (home / INSTANCE_CONFIG).exists()):
        shutil.copyfile(config, home / INSTANCE_CONFIG)
    os.environ["DAGSTER_HOME"] = str(home)
    return home
