"""The deployment files (deploy/): the image, Docker Compose and the Helm values say what docs/deployment.md says.

The expectations are written out here by hand: a file that drifted from them (a fifth service, the data volume on
the webserver, a literal password, run pods without the data volume) fails one of these tests. Nothing here builds
an image or starts a container; `docker compose config` runs when Docker Compose v2 is on the machine.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from ekvio_assets.companies import read_companies

REPOSITORY = Path(__file__).resolve().parents[1]
DEPLOY = REPOSITORY / "deploy"
COMPOSE_DIR = DEPLOY / "compose"
HELM_DIR = DEPLOY / "helm"

DAGSTER_SERVICES = ("code_server", "pools", "daemon", "webserver")
# What loads the definitions, so reads the companies file and the tokens.
DEFINITION_LOADERS = ("code_server", "pools")
POSTGRES_VARIABLES = {"DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB"}
DATA_DIR = "/data"
COMPANIES_PATH = "/etc/ekvio/companies.yaml"
# A Compose variable reference such as ${DAGSTER_PG_PASSWORD:?...}: the value comes from .env, not from the file.
VARIABLE_REFERENCE = re.compile(r"^\$\{[A-Z][A-Z0-9_]*(?::?[-?][^}]*)?\}$")


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _compose() -> dict[str, Any]:
    return _yaml(COMPOSE_DIR / "compose.yaml")


def _service(name: str) -> dict[str, Any]:
    return _compose()["services"][name]


def _mount_targets(service: dict[str, Any]) -> dict[str, str]:
    """Each mount's target in the container and its source (a named volume or a host path), short or long syntax."""
    targets = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume["source"], volume["target"]
        targets[target] = source
    return targets


def _helm_values() -> dict[str, Any]:
    return _yaml(HELM_DIR / "values.yaml")


def _user_deployment() -> dict[str, Any]:
    (deployment,) = _helm_values()["dagster-user-deployments"]["deployments"]
    return deployment


def _k8s_run_launcher() -> dict[str, Any]:
    return _helm_values()["runLauncher"]["config"]["k8sRunLauncher"]


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (keyword, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text(encoding="utf-8"))
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, arguments = line.partition(" ")
            instructions.append((keyword.upper(), " ".join(arguments.split())))
    return instructions


# Docker Compose


def test_compose_runs_exactly_postgres_and_the_dagster_services() -> None:
    assert set(_compose()["services"]) == {"postgres", *DAGSTER_SERVICES}


def test_the_pools_are_stored_once_before_the_daemon_starts() -> None:
    pools = _service("pools")
    assert pools["command"] == ["ekvio-assets", "pools"]
    assert pools["restart"] == "no", "a one-off: restarted, it would run for ever"
    assert _service("daemon")["depends_on"]["pools"]["condition"] == "service_completed_successfully"


def test_the_dagster_services_share_one_image_and_the_postgres_settings() -> None:
    images = {_service(name)["image"] for name in DAGSTER_SERVICES}
    assert len(images) == 1, images
    for name in DAGSTER_SERVICES:
        service = _service(name)
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (COMPOSE_DIR / service["build"]["context"] / service["build"]["dockerfile"]).resolve() == (
            DEPLOY / "Dockerfile"
        )
        environment = service["environment"]
        assert environment.keys() >= POSTGRES_VARIABLES, name
        assert environment["DAGSTER_PG_HOST"] == "postgres"
        assert VARIABLE_REFERENCE.match(environment["DAGSTER_PG_PASSWORD"]), environment["DAGSTER_PG_PASSWORD"]


def test_postgres_is_version_15_on_a_named_volume_with_a_healthcheck() -> None:
    postgres = _service("postgres")
    assert postgres["image"] == "postgres:15"
    assert _mount_targets(postgres)["/var/lib/postgresql/data"] in _compose()["volumes"]
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert VARIABLE_REFERENCE.match(postgres["environment"]["POSTGRES_PASSWORD"])
    # The server is created with the password the Dagster services log in with.
    assert postgres["environment"]["POSTGRES_PASSWORD"] == _service("code_server")["environment"]["DAGSTER_PG_PASSWORD"]


def test_the_code_server_serves_the_module_on_port_4000() -> None:
    service = _service("code_server")
    command = service["command"]
    assert command[:3] == ["dagster", "code-server", "start"]
    assert command[command.index("-m") + 1] == "ekvio_assets.definitions"
    assert command[command.index("--location-name") + 1] == "ekvio_assets"
    assert command[command.index("-p") + 1] == "4000"
    assert command[command.index("-h") + 1] == "0.0.0.0"
    assert service["healthcheck"]["test"] == ["CMD", "dagster", "api", "grpc-health-check", "-p", "4000"]


def test_the_workspace_loads_the_code_server_over_grpc() -> None:
    (location,) = _yaml(COMPOSE_DIR / "workspace.yaml")["load_from"]
    assert location == {"grpc_server": {"host": "code_server", "port": 4000, "location_name": "ekvio_assets"}}


def test_the_daemon_and_the_webserver_read_the_mounted_workspace() -> None:
    assert _service("daemon")["command"] == ["dagster-daemon", "run", "-w", "workspace.yaml"]
    webserver = _service("webserver")["command"]
    assert webserver[0] == "dagster-webserver"
    assert webserver[webserver.index("-w") + 1] == "workspace.yaml"
    assert webserver[webserver.index("-p") + 1] == "3000"
    assert any(port.endswith(":3000") for port in _service("webserver")["ports"])
    for name in ("daemon", "webserver"):
        service = _service(name)
        mounted = _mount_targets(service)
        assert mounted[f"{service['working_dir']}/workspace.yaml"] == "./workspace.yaml", name


def test_only_the_code_server_mounts_the_data_volume_and_only_what_loads_the_definitions_reads_the_tokens() -> None:
    assert _mount_targets(_service("code_server"))[DATA_DIR] in _compose()["volumes"]
    assert DATA_DIR not in _mount_targets(_service("pools"))
    for name in DEFINITION_LOADERS:
        service = _service(name)
        assert _mount_targets(service)[COMPANIES_PATH] == "./companies.yaml", name
        assert service["environment"]["EKVIO_COMPANIES"] == COMPANIES_PATH, name
        assert service["env_file"] == ["ekvio.env"], name
    for name in ("daemon", "webserver"):
        service = _service(name)
        assert DATA_DIR not in _mount_targets(service), name
        assert "env_file" not in service, name
        assert not any(key.startswith("EKVIO_") for key in service["environment"]), name


def test_each_service_waits_for_what_it_needs_to_be_healthy() -> None:
    for name in DAGSTER_SERVICES:
        assert _service(name)["depends_on"]["postgres"]["condition"] == "service_healthy", name
    for name in ("daemon", "webserver"):
        assert _service(name)["depends_on"]["code_server"]["condition"] == "service_healthy", name
    for name in ("postgres", "code_server", "webserver"):
        assert _service(name)["healthcheck"]["test"], name


def test_the_examples_give_a_companies_file_the_project_accepts_with_its_tokens_by_name() -> None:
    example = COMPOSE_DIR / "companies.example.yaml"
    token_names = {item["token_env"] for item in _yaml(example)["companies"]}
    env_example_names = {
        line.partition("=")[0]
        for line in (COMPOSE_DIR / "ekvio.env.example").read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    }
    assert token_names == {"EKVIO_TOKEN_NORTH", "EKVIO_TOKEN_SOUTH"}
    assert token_names <= env_example_names
    problems: list[str] = []
    companies = read_companies("EKVIO_COMPANIES", example, dict.fromkeys(token_names, "placeholder"), problems)
    assert problems == []
    assert [company.key for company in companies] == ["north", "south"]
    # The example's empty values are refused at start, as a missing token is.
    read_companies("EKVIO_COMPANIES", example, dict.fromkeys(token_names, ""), problems)
    assert len(problems) == 2, problems


def test_the_local_copies_of_the_examples_are_ignored_by_git_and_docker() -> None:
    ignored = set((COMPOSE_DIR / ".gitignore").read_text(encoding="utf-8").split())
    assert {".env", "ekvio.env", "companies.yaml"} <= ignored
    for example in (".env.example", "ekvio.env.example", "companies.example.yaml"):
        assert (COMPOSE_DIR / example).is_file(), example
    docker_ignored = set((REPOSITORY / ".dockerignore").read_text(encoding="utf-8").split())
    assert {".git", ".env", "**/.env", "deploy/compose/ekvio.env", "data/"} <= docker_ignored


def _deploy_text_files() -> list[Path]:
    files = [path for path in DEPLOY.rglob("*") if path.is_file()]
    return [*files, REPOSITORY / ".dockerignore"]


def test_no_token_or_password_is_written_in_any_deployment_file() -> None:
    # A generated token (the simulator's is secrets.token_urlsafe): a long run of letters mixed with digits.
    long_secret_like = re.compile(r"(?<![\w-])(?=[\w-]*\d)(?=[\w-]*[A-Za-z])[\w-]{24,}")
    for path in _deploy_text_files():
        text = path.read_text(encoding="utf-8")
        relative = path.relative_to(REPOSITORY)
        # The test suite's and the simulator's tokens, and anything shaped like a generated token.
        assert "test-token-" not in text and "secret-token" not in text, relative
        assert not long_secret_like.search(text), (relative, long_secret_like.search(text))
        assert "Bearer " not in text, relative
        for line in text.splitlines():
            assignment = re.match(r"\s*(?:-\s*)?\"?([A-Z][A-Z0-9_]*(?:TOKEN|PASSWORD)[A-Z0-9_]*)[=:]\s*(.*)$", line)
            if assignment and not line.lstrip().startswith("#"):
                name, value = assignment.groups()
                value = value.strip().strip("\"'")
                assert value == "" or VARIABLE_REFERENCE.match(value), (relative, name, value)
    companies = _yaml(COMPOSE_DIR / "companies.example.yaml")["companies"]
    for company in companies:
        assert "token" not in company
        assert re.fullmatch(r"[A-Z][A-Z0-9_]*", company["token_env"])


# The image


def test_the_dockerfile_installs_the_tested_versions_as_a_non_root_user() -> None:
    instructions = _instructions(DEPLOY / "Dockerfile")
    assert instructions[0] == ("FROM", "python:3.11-slim")
    (install,) = [arguments for keyword, arguments in instructions if keyword == "RUN" and "pip install" in arguments]
    words = shlex.split(install)
    assert words[:3] == ["pip", "install", "--no-cache-dir"]
    assert words[words.index("-c") + 1] == "constraints.txt"
    (target,) = [word for word in words if word.startswith(".[")]
    assert {"postgres", "k8s"} <= set(target[2:-1].split(","))
    users = [arguments for keyword, arguments in instructions if keyword == "USER"]
    assert users and users[-1] not in {"root", "0"}
    exposed = {port for keyword, arguments in instructions if keyword == "EXPOSE" for port in arguments.split()}
    assert exposed == {"4000", "3000"}
    for keyword, arguments in instructions:
        if keyword in {"ENV", "ARG"}:
            assert "TOKEN" not in arguments and "PASSWORD" not in arguments, arguments


def test_the_image_carries_the_team_instance_in_dagster_home() -> None:
    instructions = _instructions(DEPLOY / "Dockerfile")
    environment = " ".join(arguments for keyword, arguments in instructions if keyword == "ENV")
    assert "DAGSTER_HOME=/opt/dagster/dagster_home" in environment.split()
    assert f"EKVIO_DATA_DIR={DATA_DIR}" in environment.split()
    copies = [arguments.split() for keyword, arguments in instructions if keyword == "COPY"]
    assert ["deploy/postgres/dagster.yaml", "${DAGSTER_HOME}/dagster.yaml"] in copies
    copied = {source for sources in copies for source in sources[:-1]}
    assert {"pyproject.toml", "constraints.txt", "README.md", "ekvio_assets"} <= copied


def test_the_k8s_extra_is_pinned_to_the_dagster_release() -> None:
    extras = tomllib.loads((REPOSITORY / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert any(requirement.startswith("dagster-k8s") for requirement in extras["optional-dependencies"]["k8s"])
    pins = dict(
        line.split("==")
        for line in (REPOSITORY / "constraints.txt").read_text(encoding="utf-8").splitlines()
        if "==" in line and not line.startswith("#")
    )
    # Dagster's integrations are versioned 0.(minor + 16).patch beside dagster 1.minor.patch.
    assert pins["dagster"] == "1.13.27"
    assert pins["dagster-k8s"] == "0.29.27"
    assert pins["dagster-postgres"] == "0.29.27"
    assert "kubernetes" in pins


# Helm


def _claim() -> dict[str, Any]:
    return _yaml(HELM_DIR / "ekvio-data-pvc.yaml")


def _mount_path_of_claim(pod: dict[str, Any], claim_name: str) -> str:
    (volume,) = [v for v in pod["volumes"] if v.get("persistentVolumeClaim", {}).get("claimName") == claim_name]
    (mount,) = [m for m in pod["volumeMounts"] if m["name"] == volume["name"]]
    return mount["mountPath"]


def test_the_claim_is_read_write_many() -> None:
    claim = _claim()
    assert claim["kind"] == "PersistentVolumeClaim"
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim["spec"]["resources"]["requests"]["storage"]


def test_the_code_server_and_every_run_pod_mount_the_claim_at_the_data_dir() -> None:
    claim_name = _claim()["metadata"]["name"]
    deployment, launcher = _user_deployment(), _k8s_run_launcher()
    assert _mount_path_of_claim(deployment, claim_name) == DATA_DIR
    assert _mount_path_of_claim(launcher, claim_name) == DATA_DIR
    assert deployment["env"]["EKVIO_DATA_DIR"] == DATA_DIR
    assert f"EKVIO_DATA_DIR={DATA_DIR}" in launcher["envVars"]


def test_the_code_server_and_every_run_pod_get_the_companies_file_and_the_tokens() -> None:
    deployment, launcher = _user_deployment(), _k8s_run_launcher()
    assert deployment["envSecrets"] == launcher["envSecrets"] == [{"name": "ekvio-tokens"}]
    assert deployment["env"]["EKVIO_COMPANIES"] == COMPANIES_PATH
    assert f"EKVIO_COMPANIES={COMPANIES_PATH}" in launcher["envVars"]
    for pod in (deployment, launcher):
        (volume,) = [v for v in pod["volumes"] if "configMap" in v]
        assert volume["configMap"]["name"] == "ekvio-companies"
        (mount,) = [m for m in pod["volumeMounts"] if m["name"] == volume["name"]]
        assert COMPANIES_PATH.startswith(mount["mountPath"] + "/")
        assert mount["readOnly"] is True


def test_the_user_deployment_serves_the_module_from_a_fixed_image_tag() -> None:
    deployment = _user_deployment()
    arguments = deployment["codeServerArgs"]
    assert arguments[arguments.index("-m") + 1] == "ekvio_assets.definitions"
    assert deployment["port"] == 4000
    assert deployment["image"]["tag"] not in {"", "latest"}
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True


def test_helm_runs_each_run_in_its_own_pod_behind_the_queue_with_the_pools_and_run_monitoring() -> None:
    values = _helm_values()
    instance = _yaml(DEPLOY / "postgres" / "dagster.yaml")
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    coordinator = values["dagsterDaemon"]["runCoordinator"]
    assert coordinator["enabled"] is True
    assert coordinator["type"] == "QueuedRunCoordinator" == instance["run_coordinator"]["class"]
    # The chart refuses a run limit both here and in concurrency.runs.
    assert coordinator["config"]["queuedRunCoordinator"]["maxConcurrentRuns"] is None
    concurrency = values["concurrency"]
    assert concurrency["enabled"] is True
    assert concurrency["pools"]["defaultLimit"] == instance["concurrency"]["pools"]["default_limit"] == 1
    assert concurrency["pools"]["granularity"] == instance["concurrency"]["pools"]["granularity"] == "run"
    assert concurrency["runs"]["maxConcurrentRuns"] == instance["concurrency"]["runs"]["max_concurrent_runs"]
    monitoring = values["dagsterDaemon"]["runMonitoring"]
    assert monitoring["enabled"] is True is instance["run_monitoring"]["enabled"]
    assert monitoring["startTimeoutSeconds"] == instance["run_monitoring"]["start_timeout_seconds"]


def test_helm_takes_the_postgres_password_from_a_secret() -> None:
    values = _helm_values()
    assert values["postgresql"]["enabled"] is False
    assert values["postgresql"]["postgresqlHost"]
    assert "postgresqlPassword" not in values["postgresql"]
    assert values["generatePostgresqlPasswordSecret"] is False
    assert values["global"]["postgresqlSecretName"]


# docker compose config, where Docker Compose v2 is installed


def _compose_command() -> list[str] | None:
    """`docker compose` (the CLI plugin) or a standalone `docker-compose` of version 2, else None."""
    candidates = [["docker", "compose"]] if shutil.which("docker") else []
    if shutil.which("docker-compose"):
        candidates.append(["docker-compose"])
    for candidate in candidates:
        try:
            version = subprocess.run(
                [*candidate, "version", "--short"], capture_output=True, text=True, timeout=30, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if version.returncode == 0 and version.stdout.strip().lstrip("v").startswith("2"):
            return candidate
    return None


def test_docker_compose_accepts_the_file_once_the_examples_are_copied(tmp_path: Path) -> None:
    command = _compose_command()
    if command is None:
        pytest.skip("Docker Compose v2 is not installed here (neither `docker compose` nor `docker-compose` v2)")
    folder = tmp_path / "deploy" / "compose"
    shutil.copytree(COMPOSE_DIR, folder)
    for local in (".env", "ekvio.env", "companies.yaml"):
        (folder / local).unlink(missing_ok=True)
    shutil.copy(folder / "ekvio.env.example", folder / "ekvio.env")
    shutil.copy(folder / "companies.example.yaml", folder / "companies.yaml")
    config = [*command, "--project-directory", str(folder), "-f", str(folder / "compose.yaml"), "config", "-q"]

    # The example leaves the password empty: Compose refuses to start without one.
    shutil.copy(folder / ".env.example", folder / ".env")
    refused = subprocess.run(config, capture_output=True, text=True, timeout=120, check=False)
    assert refused.returncode != 0
    assert "DAGSTER_PG_PASSWORD" in refused.stderr

    (folder / ".env").write_text("DAGSTER_PG_PASSWORD=placeholder-for-config\n", encoding="utf-8")
    accepted = subprocess.run(config, capture_output=True, text=True, timeout=120, check=False)
    assert accepted.returncode == 0, accepted.stderr


def _options_of(command: list[str]) -> set[str]:
    """The options that the installed program's `--help` lists for this (sub)command."""
    words = [word for word in command if not word.startswith("-")]
    program, subcommands = words[0], [word for word in words[1:] if word.replace("-", "").isalpha()]
    depth = {"dagster": 2, "dagster-daemon": 1, "dagster-webserver": 0, "ekvio-assets": 1}[program]
    shown = subprocess.run(
        [str(Path(sys.executable).parent / program), *subcommands[:depth], "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", shown))


def test_every_command_in_the_deployment_uses_options_the_installed_release_knows() -> None:
    dockerfile_command = next(
        arguments for keyword, arguments in _instructions(DEPLOY / "Dockerfile") if keyword == "CMD"
    )
    commands = [
        *(_service(name)["command"] for name in DAGSTER_SERVICES),
        _service("code_server")["healthcheck"]["test"][1:],
        yaml.safe_load(dockerfile_command),
        ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", *_user_deployment()["codeServerArgs"]],
    ]
    for command in commands:
        used = {word for word in command if word.startswith("-")}
        assert used <= _options_of(command), (command, used - _options_of(command))
