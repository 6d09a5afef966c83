"""A throwaway PostgreSQL server for a team's Dagster instance (deploy/postgres/dagster.yaml): the
test of the team deployment and the holding benchmark start one on loopback and remove it after.

It runs the server of Debian's `postgresql` package (`/usr/lib/postgresql/<version>/bin`), or the
one whose `initdb` is on PATH. PostgreSQL refuses to run as root: as root, the cluster belongs to
the `postgres` user that the package creates, and lives in a folder of its own under the system's
temporary folder (a test's folder is often one that user cannot enter).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

_PROGRAMS = ("initdb", "pg_ctl", "postgres", "createdb")
_SERVICE_USER = "postgres"
_USER = "dagster"
_DATABASE = "dagster"
# The webserver, the daemon's threads, the code server, every run and its step processes each
# hold their own connections.
_MAX_CONNECTIONS = 300
_START_TIMEOUT_SECONDS = 120


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server programs on this machine."""


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    password: str = field(repr=False)
    database: str

    def dagster_environment(self) -> dict[str, str]:
        """The variables deploy/postgres/dagster.yaml reads."""
        return {
            "DAGSTER_PG_HOST": self.host,
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_USER": self.user,
            "DAGSTER_PG_PASSWORD": self.password,
            "DAGSTER_PG_DB": self.database,
        }


def server_programs() -> Path:
    """The folder of the server's programs, or PostgresUnavailable saying how to get them."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda path: int(path.parent.name), reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for folder in candidates:
        if all((folder / program).exists() for program in _PROGRAMS):
            return folder
    raise PostgresUnavailable(
        "no PostgreSQL server found (initdb, pg_ctl, postgres): install Debian's package, "
        "`apt-get install postgresql`, or put a server's bin folder on PATH"
    )


@contextmanager
def running_postgres(log_folder: Path) -> Iterator[PostgresServer]:
    """A new cluster with one database, listening on 127.0.0.1 with a password; its log goes to
    `log_folder/postgres.log`. Stopped and removed on exit."""
    programs = server_programs()
    as_service_user = os.geteuid() == 0
    prefix = ["runuser", "-u", _SERVICE_USER, "--"] if as_service_user else []

    def run(program: str, *arguments: str, check: bool = True) -> None:
        subprocess.run([*prefix, str(programs / program), *arguments], check=check, capture_output=True, text=True)

    cluster = Path(tempfile.mkdtemp(prefix="ekvio-postgres-"))
    try:
        if as_service_user:
            shutil.chown(cluster, _SERVICE_USER, _SERVICE_USER)
        password = secrets.token_urlsafe(18)
        password_file = cluster / "password"
        password_file.write_text(password, encoding="utf-8")
        if as_service_user:
            shutil.chown(password_file, _SERVICE_USER, _SERVICE_USER)
        data = cluster / "data"
        run(
            "initdb",
            "-D",
            str(data),
            "-U",
            _USER,
            f"--pwfile={password_file}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--no-instructions",
        )
        password_file.unlink()
        port = _free_port()
        server_log = cluster / "server.log"
        options = (
            f"-c listen_addresses=127.0.0.1 -p {port} -k {cluster} -c max_connections={_MAX_CONNECTIONS} "
            # A throwaway cluster: losing it in a power cut costs nothing, waiting for the disk would.
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        try:
            run(
                "pg_ctl",
                "-D",
                str(data),
                "-l",
                str(server_log),
                "-o",
                options,
                "-w",
                "-t",
                str(_START_TIMEOUT_SECONDS),
                "start",
            )
            run("createdb", "-h", str(cluster), "-p", str(port), "-U", _USER, _DATABASE)
            yield PostgresServer("127.0.0.1", port, _USER, password, _DATABASE)
        finally:
            run("pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop", check=False)
            log_folder.mkdir(parents=True, exist_ok=True)
            if server_log.exists():
                shutil.copyfile(server_log, log_folder / "postgres.log")
    finally:
        shutil.rmtree(cluster, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
