"""Nothing the API sends becomes SQL code, a path, or a place the token goes."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import subprocess
import threading
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from ekvio_assets.api.client import EkvioApiError, EkvioClient, ExportedFile, RetryPolicy
from ekvio_assets.api.windows import FULL_EXPORT
from ekvio_assets.reports.load import load_report_file
from ekvio_assets.reports.specs import ATTEMPTS, COURSE_STATISTICS, MATERIAL_STATISTICS
from ekvio_assets.storage.warehouse import DuckDBWarehouse

HOSTILE_KEYS = (
    'group_x" VARCHAR); DROP TABLE report_loads; --',
    "form_question_1; DELETE FROM course_statistics",
    "group_Region",
    "../../group_path",
)


def test_hostile_field_names_stay_data_in_extra_fields_and_never_become_sql(tmp_path: Path) -> None:
    warehouse = DuckDBWarehouse(data_dir=str(tmp_path / "data"), timezone="Europe/Moscow")
    record = {
        "user_id": 1,
        "material_id": 2,
        "login": "o'brien",
        "name": "Course'); DROP TABLE learners; --",
        "group_region": "North",
        "form_question_3": "yes",
        **{key: "payload" for key in HOSTILE_KEYS},
    }
    raw = tmp_path / "hostile.json"
    raw.write_text(json.dumps({"data": [record]}), encoding="utf-8")
    exported = ExportedFile(COURSE_STATISTICS.name, "1", raw, raw.stat().st_size, datetime.now(UTC))
    load_report_file(warehouse, COURSE_STATISTICS, exported)

    with duckdb.connect(str(warehouse.working_path), read_only=True) as con:
        columns = {row[0] for row in con.execute("DESCRIBE course_statistics").fetchall()}
        row = con.execute(
            "SELECT login, course_name, group_region, form_question_3, extra_fields FROM course_statistics"
        ).fetchone()
        loads = con.execute("SELECT count(*) FROM report_loads").fetchone()[0]
    assert {"group_region", "form_question_3"} <= columns
    assert not columns & set(HOSTILE_KEYS)
    assert row[:4] == ("o'brien", "Course'); DROP TABLE learners; --", "North", "yes")
    assert json.loads(row[4]) == {key: "payload" for key in HOSTILE_KEYS}
    assert loads == 1


def test_a_server_whose_certificate_does_not_verify_is_refused_at_once(tmp_path: Path) -> None:
    key, certificate = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(certificate),
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate, key)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        accepted: list[int] = []
        handshakes = threading.Thread(target=_fail_handshakes, args=(listener, context, accepted), daemon=True)
        handshakes.start()
        client = EkvioClient(
            f"https://127.0.0.1:{port}",
            "secret-token",
            poll_interval_seconds=0.01,
            poll_timeout_seconds=1,
            retry=RetryPolicy(max_attempts=3, backoff_base_seconds=0.01),
        )
        with pytest.raises(EkvioApiError, match="TLS certificate did not verify") as raised:
            client.create_task(ATTEMPTS, FULL_EXPORT)
        client.close()
    assert "secret-token" not in str(raised.value)
    assert len(accepted) == 1  # not retried: no retry makes a certificate verify


def _fail_handshakes(listener: socket.socket, context: ssl.SSLContext, accepted: list[int]) -> None:
    with contextlib.suppress(OSError):
        while True:
            connection, _ = listener.accept()
            accepted.append(1)
            with contextlib.suppress(OSError, ssl.SSLError), context.wrap_socket(connection, server_side=True):
                pass


def test_a_parent_field_named_like_a_documented_one_but_for_case_is_kept_as_an_extra(tmp_path: Path) -> None:
    warehouse = DuckDBWarehouse(data_dir=str(tmp_path / "data"), timezone="Europe/Moscow")
    learner = {
        "login": "ivanov",
        "user_status": "active",
        "material_status": "completed",
        "points": 5,
        "progress": 100,
        "update_at": "2024-03-01T10:00:00+03:00",
    }
    materials = [
        {"id": 5, "name": "Test", "NAME": "shouting", "type": "test", "points": 10, "statistics": [learner]},
        {"id": 6, "name": "Other", "type": "test", "points": 10, "statistics": [{**learner, "Login": "x"}]},
    ]
    raw = tmp_path / "materials.json"
    raw.write_text(json.dumps({"data": materials}), encoding="utf-8")
    exported = ExportedFile(MATERIAL_STATISTICS.name, "1", raw, raw.stat().st_size, datetime.now(UTC))
    load_report_file(warehouse, MATERIAL_STATISTICS, exported)
    with duckdb.connect(str(warehouse.working_path), read_only=True) as con:
        rows = con.execute(
            "SELECT material_id, material_name, login, extra_fields FROM material_statistics ORDER BY material_id"
        ).fetchall()
    assert [(row[0], row[1], row[2], json.loads(row[3])) for row in rows] == [
        (5, "Test", "ivanov", {"parent.NAME": "shouting"}),
        (6, "Other", "ivanov", {"Login": "x"}),
    ]
