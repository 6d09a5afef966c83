"""The Ekvio simulator over real HTTP on loopback: protocol, windows, faults, and its data."""

from __future__ import annotations

import itertools
import json
import logging
import random
import re
import signal
import subprocess
import sys
import time
import tracemalloc
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from ekvio_assets.reports.specs import (
    ATTEMPTS,
    COURSE_STATISTICS,
    MATERIAL_STATISTICS,
    MATERIAL_TYPES,
    PROGRAM_STATISTICS,
    REPORTS,
    Field,
    FieldType,
    ReportSpec,
)
from ekvio_assets.simulator import (
    KINDS_BY_CALL,
    NOT_HTTP_FILE_URL,
    TRANSIENT_KINDS,
    TRAVERSAL_FILE_NAME,
    Call,
    CannedAnswer,
    Dataset,
    DatasetConfig,
    FaultKind,
    FaultPlan,
    FaultRule,
    FileRequest,
    InjectedFault,
    ProtocolOptions,
    RecordFilter,
    RowVersion,
    generate,
    parse_fault_rules,
    running_simulator,
)
from ekvio_assets.simulator.entities import COURSE_EXTRA_COLUMNS, POINTED_MATERIAL_TYPES
from ekvio_assets.simulator.rendering import ReportRenderer
from ekvio_assets.simulator.request_selection import MAX_FILTER_VALUES
from ekvio_assets.simulator.rows import Company
from ekvio_assets.simulator.server import RunningSimulator
from ekvio_assets_tests.helpers import ManualClock

SMALL = DatasetConfig(learners=20, materials=10, courses=3, programs=3)


# The demo company (default config) and one simulator serving it; conftest's smaller `dataset`
# and per-test `simulator` serve the other test modules.
@pytest.fixture(scope="module")
def demo_dataset() -> Dataset:
    return generate(DatasetConfig())


@pytest.fixture(scope="module")
def demo_simulator(demo_dataset: Dataset) -> Iterator[RunningSimulator]:
    with running_simulator(demo_dataset) as running:
        yield running


@pytest.fixture(scope="module")
def small_dataset() -> Dataset:
    return generate(SMALL)


Histories = dict[str, dict[tuple[Any, ...], list[RowVersion]]]


@pytest.fixture(scope="module")
def demo_histories(demo_dataset: Dataset) -> Histories:
    """Every row's versions, by report and key."""
    return {spec.name: demo_dataset.history(spec.name) for spec in REPORTS}


def api(simulator: RunningSimulator, token: str | None = None) -> httpx.Client:
    return httpx.Client(
        base_url=simulator.url, headers={"Authorization": f"Bearer {token or simulator.token}"}, timeout=10
    )


def create(client: httpx.Client, spec: ReportSpec, **kwargs: Any) -> httpx.Response:
    return client.request(spec.method, spec.path, **kwargs)


def create_task(client: httpx.Client, spec: ReportSpec, **kwargs: Any) -> int:
    response = create(client, spec, **kwargs)
    assert response.status_code == 200, response.text
    return response.json()["data"]["integration"]


def wait_for(client: httpx.Client, task_id: int, max_polls: int = 100) -> dict[str, Any]:
    """Poll until the task is completed or failed; the last answer's data."""
    for _ in range(max_polls):
        answer = client.get(f"/v3/integration/{task_id}").json()["data"]
        if answer["status"] in ("completed", "fail"):
            return answer
        time.sleep(0.01)
    raise AssertionError(f"task {task_id} did not finish")


def export(client: httpx.Client, spec: ReportSpec, **kwargs: Any) -> bytes:
    """Create, poll and download: the result file's bytes (downloaded without the token)."""
    answer = wait_for(client, create_task(client, spec, **kwargs))
    assert answer["status"] == "completed"
    response = httpx.get(answer["file"])
    assert response.status_code == 200
    return response.content


def error_of(response: httpx.Response) -> dict[str, Any]:
    (error,) = response.json()["errors"]
    return error


# --- a reference reader: what a loader must get out of a payload ----------------------------------


def parse_instant(value: str | int | None, zone: ZoneInfo) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, int):
        return datetime.fromtimestamp(value, UTC)
    moment = datetime.fromisoformat(value)
    return (moment if moment.tzinfo else moment.replace(tzinfo=zone)).astimezone(UTC)


def parse_value(field: Field, value: Any, zone: ZoneInfo) -> Any:
    if value is None:
        return None
    if field.type is FieldType.INTEGER:
        return int(value)
    if field.type is FieldType.TIMESTAMP:
        return parse_instant(value, zone)
    return value


def read_object(
    spec: ReportSpec, fields: tuple[Field, ...], payload: dict[str, Any], zone: ZoneInfo
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(column values, undocumented fields) of one payload object."""
    values: dict[str, Any] = {}
    for field in fields:
        value: Any = payload
        for key in field.source:
            value = value.get(key) if isinstance(value, dict) else None
        values[field.column] = parse_value(field, value, zone)
    documented = {field.source[0] for field in fields} | {spec.children_key}
    extras = {}
    for key, value in payload.items():
        if key in documented:
            continue
        if spec.dynamic_columns and spec.dynamic_columns.fullmatch(key):
            values[key] = value
        else:
            extras[key] = value
    return values, extras


def table_rows(spec: ReportSpec, records: list[dict[str, Any]], zone: ZoneInfo) -> list[dict[str, Any]]:
    rows = []
    for record in records:
        if not spec.is_nested:
            values, extras = read_object(spec, spec.fields, record, zone)
            rows.append({**values, "extra_fields": extras or None})
            continue
        parent_values, parent_extras = read_object(spec, spec.parent_fields, record, zone)
        for child in record[spec.children_key]:
            values, extras = read_object(spec, spec.fields, child, zone)
            extras.update({f"parent.{key}": value for key, value in parent_extras.items()})
            rows.append({**parent_values, **values, "extra_fields": extras or None})
    return rows


def parent_rows(spec: ReportSpec, records: list[dict[str, Any]], zone: ZoneInfo) -> list[dict[str, Any]]:
    """The rows of a nested report's table of parents: each record's own values and undocumented fields."""
    rows = []
    for record in records:
        values, extras = read_object(spec, spec.parent_fields, record, zone)
        rows.append({**values, "extra_fields": extras or None})
    return rows


def zone_of(dataset: Dataset) -> ZoneInfo:
    return ZoneInfo(dataset.config.timezone)


# --- protocol -----------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", REPORTS, ids=lambda spec: spec.name)
def test_round_trip_serves_the_payload_and_the_truth(
    demo_simulator: RunningSimulator, demo_dataset: Dataset, spec: ReportSpec
) -> None:
    with api(demo_simulator) as client:
        task_id = create_task(client, spec)
        first, second, third = (
            client.get(f"/{version}/integration/{task_id}").json()["data"] for version in ("v3", "v2", "v3")
        )
        # The statuses of the vendor's installations and of its SDK's tests, before "completed".
        assert (first, second) == ({"status": "queued", "file": None}, {"status": "progress", "file": None})
        assert third["status"] == "completed"
        assert third["file"].startswith(f"{demo_simulator.url}/files/")
        document = json.loads(httpx.get(third["file"]).content)
    assert document["data"] == list(demo_dataset.payload_records(spec.name))
    assert table_rows(spec, document["data"], zone_of(demo_dataset)) == demo_dataset.truth(spec.name)
    assert len(demo_dataset.truth(spec.name)) == demo_dataset.row_count(spec.name) > 0
    if spec.is_nested:
        parents = parent_rows(spec, document["data"], zone_of(demo_dataset))
        assert parents == demo_dataset.parents_truth(spec.name)
        assert any(not record[spec.children_key] for record in document["data"])
    assert demo_simulator.state.tasks_created[spec.name] >= 1


@pytest.mark.parametrize("spec", REPORTS, ids=lambda spec: spec.name)
def test_window_selects_records_changed_in_it(
    demo_simulator: RunningSimulator, demo_dataset: Dataset, spec: ReportSpec
) -> None:
    after = demo_dataset.period_start + timedelta(days=20)
    to = after + timedelta(days=10)
    params = {"after_date": after.astimezone(zone_of(demo_dataset)).isoformat(), "to_date": to.isoformat()}
    with api(demo_simulator) as client:
        records = json.loads(export(client, spec, params=params))["data"]
    rows = table_rows(spec, records, zone_of(demo_dataset))
    assert rows == demo_dataset.truth(spec.name, after, to)
    assert 0 < len(rows) < demo_dataset.row_count(spec.name)
    # A row never active has a null change time and is found by the window of its assignment.
    assert all(row[spec.change_time] is None or after <= row[spec.change_time] < to for row in rows)
    if spec.is_nested:
        # A parent comes with the rows changed in the window, or with none when nobody is assigned
        # to it at all (it is in every export).
        assigned = {tuple(row[column] for column in spec.parent_key) for row in demo_dataset.truth(spec.name)}
        parents = parent_rows(spec, records, zone_of(demo_dataset))
        unassigned = [parent for parent, record in zip(parents, records, strict=True) if not record[spec.children_key]]
        assert unassigned and all(tuple(p[c] for c in spec.parent_key) not in assigned for p in unassigned)


def test_window_bounds_are_inclusive_after_and_exclusive_to(demo_dataset: Dataset) -> None:
    spec = ATTEMPTS
    moment = demo_dataset.truth(spec.name)[0][spec.change_time]
    keys = {row["attempt_id"] for row in demo_dataset.truth(spec.name, moment, moment + timedelta(seconds=1))}
    assert demo_dataset.truth(spec.name)[0]["attempt_id"] in keys
    assert not demo_dataset.truth(spec.name, moment, moment)


def test_wrong_or_missing_token_is_401_and_files_need_none(demo_simulator: RunningSimulator) -> None:
    with api(demo_simulator, token="wrong") as client:
        response = create(client, ATTEMPTS)
        assert response.status_code == 401
        assert error_of(response)["field"] == "authorization"
        assert client.get("/v3/integration/4000001").status_code == 401
    assert httpx.get(f"{demo_simulator.url}{ATTEMPTS.path}").status_code == 401
    downloads_before = len(demo_simulator.state.authorization_headers[Call.DOWNLOAD])
    with api(demo_simulator) as client:
        export(client, ATTEMPTS)
    assert demo_simulator.state.authorization_headers[Call.DOWNLOAD][downloads_before:] == [None]
    assert demo_simulator.token not in repr(demo_simulator)


def test_unknown_task_is_404(demo_simulator: RunningSimulator) -> None:
    with api(demo_simulator) as client:
        response = client.get("/v3/integration/1")
    assert response.status_code == 404
    assert error_of(response)["field"] == "integration"


def test_second_task_of_a_report_while_one_runs_is_1007(demo_simulator: RunningSimulator) -> None:
    with api(demo_simulator) as client:
        running = create_task(client, COURSE_STATISTICS)
        refused = create(client, COURSE_STATISTICS)
        other_report = create_task(client, ATTEMPTS)
        assert refused.status_code == 400
        error = error_of(refused)
        assert (error["code"], error["field"]) == (1007, "integration")
        assert error["message"].endswith(f"Running task ID: {running}")
        assert wait_for(client, running)["status"] == "completed"
        assert wait_for(client, other_report)["status"] == "completed"
        assert wait_for(client, create_task(client, COURSE_STATISTICS))["status"] == "completed"


def test_a_task_nobody_polls_stops_blocking(small_dataset: Dataset) -> None:
    idle = ManualClock()
    with (
        running_simulator(small_dataset, task_idle_timeout=30, idle_clock=idle) as simulator,
        api(simulator) as client,
    ):
        create_task(client, ATTEMPTS)
        idle.advance(30)
        assert create(client, ATTEMPTS).status_code == 400
        idle.advance(0.001)
        create_task(client, ATTEMPTS)


def test_starting_the_simulator_leaves_the_logging_of_its_process_alone(small_dataset: Dataset, tmp_path: Path) -> None:
    # The embedded simulator runs inside a Dagster run: its handlers (and a test worker's) must stay open.
    handler = logging.FileHandler(tmp_path / "run.log")
    run_log = logging.getLogger("ekvio-test-run")
    run_log.addHandler(handler)
    try:
        with running_simulator(small_dataset) as simulator, api(simulator) as client:
            create_task(client, ATTEMPTS)
            assert handler.stream is not None  # not closed
            run_log.warning("still written")
    finally:
        run_log.removeHandler(handler)
        handler.close()
    assert (tmp_path / "run.log").read_text(encoding="utf-8") == "still written\n"


UNREADABLE_DATE_TIME = r"Invalid value format. Valid Y-m-d\TH:i:sP"


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"after_date": "yesterday"}, "after_date", UNREADABLE_DATE_TIME),
        ({"after_date": "2024-01-05T10:00:00"}, "after_date", UNREADABLE_DATE_TIME),  # no offset
        ({"to_date": "2024-01-05T10:00:00.250+03:00"}, "to_date", UNREADABLE_DATE_TIME),  # a fraction
        ({"after_date": "2024-02-30T00:00:00+03:00"}, "after_date", UNREADABLE_DATE_TIME),  # no such day
        ({"after_date": "2024-02-01T00:00:00+03:00", "to_date": "2024-01-01T00:00:00+03:00"}, "to_date", None),
        ({"since": "2024-01-01T00:00:00+03:00"}, "since", None),
    ],
)
def test_bad_parameters_are_refused_the_vendors_way(
    demo_simulator: RunningSimulator, params: dict[str, str], field: str, message: str | None
) -> None:
    with api(demo_simulator) as client:
        response = create(client, ATTEMPTS, params=params)
    assert response.status_code == 400
    error = error_of(response)
    assert (error["code"], error["field"]) == (1007, field)
    assert message is None or error["message"] == message


def test_programme_report_filters_by_body(demo_simulator: RunningSimulator, demo_dataset: Dataset) -> None:
    program = demo_dataset.programs[1]
    logins = [learner.login for learner in demo_dataset.learners[:40]]
    body = {"filters": {"login": logins, "program": [program.program_id]}}
    with api(demo_simulator) as client:
        response = client.post(PROGRAM_STATISTICS.path, json=body)
        assert response.status_code == 200, response.text
        answer = wait_for(client, response.json()["data"]["integration"])
        records = json.loads(httpx.get(answer["file"]).content)["data"]
    rows = table_rows(PROGRAM_STATISTICS, records, zone_of(demo_dataset))
    expected = demo_dataset.truth(
        PROGRAM_STATISTICS.name,
        record_filter=RecordFilter(logins=frozenset(logins), program_ids=frozenset({program.program_id})),
    )
    assert rows == expected
    assert rows and {row["program_id"] for row in rows} == {program.program_id}
    assert {row["login"] for row in rows} <= set(logins)


def test_programme_report_filters_by_category(demo_simulator: RunningSimulator, demo_dataset: Dataset) -> None:
    category = demo_dataset.programs[0].category_id
    in_category = {program.program_id for program in demo_dataset.programs if program.category_id == category}
    # Programmes of other categories too, or a filter that ignores the category would pass.
    assert in_category < {program.program_id for program in demo_dataset.programs}
    with api(demo_simulator) as client:
        response = client.post(PROGRAM_STATISTICS.path, json={"filters": {"category": [category]}})
        assert response.status_code == 200, response.text
        answer = wait_for(client, response.json()["data"]["integration"])
        assert answer["status"] == "completed"
        records = json.loads(httpx.get(answer["file"]).content)["data"]
    # Every programme of the category is in the file, learners or not, and no other.
    assert {record["id"] for record in records} == in_category
    rows = table_rows(PROGRAM_STATISTICS, records, zone_of(demo_dataset))
    assert rows == demo_dataset.truth(
        PROGRAM_STATISTICS.name, record_filter=RecordFilter(category_ids=frozenset({category}))
    )
    assert rows and {row["program_id"] for row in rows} <= in_category


def test_user_status_filter(demo_simulator: RunningSimulator, demo_dataset: Dataset) -> None:
    with api(demo_simulator) as client:
        content = export(client, MATERIAL_STATISTICS, params={"user_status": "blocked"})
    rows = table_rows(MATERIAL_STATISTICS, json.loads(content)["data"], zone_of(demo_dataset))
    assert rows == demo_dataset.truth(MATERIAL_STATISTICS.name, record_filter=RecordFilter(user_status="blocked"))
    assert rows and {row["user_status"] for row in rows} == {"blocked"}


def test_body_filter_lists_hold_at_most_500_values(demo_simulator: RunningSimulator) -> None:
    logins = [f"user{index}" for index in range(MAX_FILTER_VALUES + 1)]
    with api(demo_simulator) as client:
        response = client.post(PROGRAM_STATISTICS.path, json={"filters": {"login": logins}})
    assert response.status_code == 400
    assert error_of(response)["field"] == "filters.login"


@pytest.mark.parametrize(
    ("spec", "example"),
    [(COURSE_STATISTICS, "trainings_statistic.json"), (ATTEMPTS, "attempts.json")],
    ids=lambda value: getattr(value, "name", value),
)
def test_payload_files_are_served_verbatim(
    small_dataset: Dataset, vendor_examples: Path, spec: ReportSpec, example: str
) -> None:
    path = vendor_examples / example
    with running_simulator(small_dataset, payload_files={spec.name: path}) as simulator, api(simulator) as client:
        content = export(client, spec, params={"after_date": "2030-01-01T00:00:00+03:00"})
    assert content == path.read_bytes()


# --- faults -------------------------------------------------------------------------------------


def simulator_with(*rules: FaultRule, **options: Any) -> AbstractContextManager[RunningSimulator]:
    return running_simulator(generate(SMALL), faults=FaultPlan(rules), **options)


def test_task_running_fault_then_success() -> None:
    with simulator_with(FaultRule("create", "task_running")) as simulator, api(simulator) as client:
        refused = create(client, MATERIAL_STATISTICS)
        assert refused.status_code == 400
        error = error_of(refused)
        assert (error["code"], error["field"]) == (1007, "integration")
        assert re.search(r"Running task ID: \d+$", error["message"])
        assert export(client, MATERIAL_STATISTICS)
        assert simulator.state.faults_injected == [
            InjectedFault(Call.CREATE, FaultKind.TASK_RUNNING, MATERIAL_STATISTICS.name, None)
        ]
        assert simulator.state.tasks_created[MATERIAL_STATISTICS.name] == 1


def test_task_fail_fault_answers_fail_with_a_log() -> None:
    with simulator_with(FaultRule("poll", "task_fail")) as simulator, api(simulator) as client:
        answer = wait_for(client, create_task(client, ATTEMPTS))
        assert answer["status"] == "fail"
        log = httpx.get(answer["file"])
        assert log.headers["content-type"].startswith("text/plain")
        assert "failed" in log.text
        # A failed task no longer blocks the report.
        assert export(client, ATTEMPTS)


def test_never_complete_fault_keeps_the_task_processing() -> None:
    idle = ManualClock()
    with (
        simulator_with(FaultRule("poll", "never_complete"), task_idle_timeout=30, idle_clock=idle) as simulator,
        api(simulator) as client,
    ):
        task_id = create_task(client, ATTEMPTS)
        answers = [client.get(f"/v3/integration/{task_id}").json()["data"] for _ in range(5)]
        assert answers[:2] == [{"status": "queued", "file": None}, {"status": "progress", "file": None}]
        assert answers[2:] == [{"status": "processing", "file": None}] * 3
        idle.advance(30)
        assert error_of(create(client, ATTEMPTS))["field"] == "integration"
        idle.advance(0.001)
        assert export(client, ATTEMPTS)


def test_http_502_once_then_success_on_every_call() -> None:
    rules = [FaultRule(call, "http_502") for call in ("create", "poll", "download")]
    with simulator_with(*rules) as simulator, api(simulator) as client:
        failed = create(client, ATTEMPTS)
        assert failed.status_code == 502
        assert "text/html" in failed.headers["content-type"]
        task_id = create_task(client, ATTEMPTS)
        assert client.get(f"/v3/integration/{task_id}").status_code == 502
        url = wait_for(client, task_id)["file"]
        assert httpx.get(url).status_code == 502
        assert json.loads(httpx.get(url).content)["data"]
        assert simulator.state.faults_injected == [
            InjectedFault(call, FaultKind.HTTP_502, ATTEMPTS.name, None if call is Call.CREATE else task_id)
            for call in Call
        ]


@pytest.mark.parametrize("kind", ["http_429", "http_500", "http_503", "http_504"])
def test_http_status_faults(kind: str) -> None:
    with simulator_with(FaultRule("poll", kind)) as simulator, api(simulator) as client:
        task_id = create_task(client, ATTEMPTS)
        response = client.get(f"/v3/integration/{task_id}")
        assert response.status_code == int(kind.removeprefix("http_"))
        assert response.headers.get("Retry-After") == ("1" if kind == "http_429" else None)
        assert wait_for(client, task_id)["status"] == "completed"


def test_module_unavailable_fault_is_permanent_for_its_report() -> None:
    rule = FaultRule("create", "module_unavailable", count=None, report=COURSE_STATISTICS.name)
    with simulator_with(rule) as simulator, api(simulator) as client:
        for _ in range(3):
            response = create(client, COURSE_STATISTICS)
            assert response.status_code == 400
            error = error_of(response)
            assert (error["code"], error["field"]) == (1007, "company_id")
        assert export(client, ATTEMPTS)
        assert simulator.state.tasks_created[COURSE_STATISTICS.name] == 0


def test_drop_connection_fault_on_create_and_download() -> None:
    rules = [FaultRule("create", "drop_connection"), FaultRule("download", "drop_connection")]
    with simulator_with(*rules) as simulator, api(simulator) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            create(client, ATTEMPTS)
        url = wait_for(client, create_task(client, ATTEMPTS))["file"]
        received = 0
        with pytest.raises(httpx.RemoteProtocolError), httpx.stream("GET", url) as response:
            size = int(response.headers["content-length"])
            for chunk in response.iter_bytes():
                received += len(chunk)
        assert received == size // 2
        assert len(httpx.get(url).content) == size


def test_completed_without_file_fault() -> None:
    with simulator_with(FaultRule("poll", "completed_without_file")) as simulator, api(simulator) as client:
        task_id = create_task(client, ATTEMPTS)
        assert client.get(f"/v3/integration/{task_id}").json()["data"] == {"status": "completed", "file": None}
        assert export(client, ATTEMPTS)


def download_with(kind: str, spec: ReportSpec = ATTEMPTS) -> tuple[httpx.Response, bytes]:
    """(the spoiled download, the intact one that follows)."""
    with simulator_with(FaultRule("download", kind)) as simulator, api(simulator) as client:
        url = wait_for(client, create_task(client, spec))["file"]
        return httpx.get(url), httpx.get(url).content


def test_file_404_fault() -> None:
    spoiled, intact = download_with("file_404")
    assert spoiled.status_code == 404
    assert json.loads(intact)["data"]


def test_file_truncated_fault() -> None:
    spoiled, intact = download_with("file_truncated")
    assert spoiled.status_code == 200
    assert spoiled.content == intact[: len(intact) // 2]
    with pytest.raises(json.JSONDecodeError):
        json.loads(spoiled.content)


def test_file_html_fault() -> None:
    spoiled, _ = download_with("file_html")
    assert spoiled.status_code == 200
    assert spoiled.headers["content-type"].startswith("text/html")


def test_file_errors_fault() -> None:
    spoiled, _ = download_with("file_errors")
    assert spoiled.status_code == 200
    assert set(spoiled.json()) == {"errors"}
    assert {"code", "field", "message"} <= set(error_of(spoiled))


@pytest.mark.parametrize("spec", [ATTEMPTS, MATERIAL_STATISTICS], ids=lambda spec: spec.name)
def test_file_content_faults(spec: ReportSpec) -> None:
    def first_row(content: bytes) -> dict[str, Any]:
        record = json.loads(content)["data"][0]
        return record[spec.children_key][0] if spec.children_key else record

    bad_types, intact = download_with("file_bad_types", spec)
    row = first_row(bad_types.content)
    assert "n/a" in row.values() and "31.02.2024 25:61" in row.values()
    assert len(json.loads(bad_types.content)["data"]) == len(json.loads(intact)["data"])

    missing_keys, _ = download_with("file_missing_keys", spec)
    row = first_row(missing_keys.content)
    assert "login" not in row if spec.is_nested else "id" not in row

    duplicates, _ = download_with("file_duplicate_keys", spec)
    document = json.loads(duplicates.content)
    if spec.is_nested:
        children = document["data"][0][spec.children_key]
        assert children[0] == children[1]
    else:
        assert document["data"][0] == document["data"][1]
        assert len(document["data"]) == len(json.loads(intact)["data"]) + 1


def test_fault_rules_check_their_call() -> None:
    with pytest.raises(ValueError):
        FaultRule("create", "file_html")
    with pytest.raises(ValueError):
        FaultRule("poll", "task_running", report="no_such_report")
    with pytest.raises(ValueError, match="rate"):
        FaultRule("poll", "http_503", rate=0)


def test_file_url_not_http_fault_answers_a_file_url() -> None:
    with simulator_with(FaultRule("poll", "file_url_not_http")) as simulator, api(simulator) as client:
        task_id = create_task(client, ATTEMPTS)
        assert wait_for(client, task_id) == {"status": "completed", "file": NOT_HTTP_FILE_URL}
        assert simulator.state.faults_injected == [
            InjectedFault(Call.POLL, FaultKind.FILE_URL_NOT_HTTP, ATTEMPTS.name, task_id)
        ]
        assert export(client, ATTEMPTS)


def test_file_name_traversal_fault_suggests_a_name_outside_the_archive() -> None:
    with simulator_with(FaultRule("poll", "file_name_traversal")) as simulator, api(simulator) as client:
        url = wait_for(client, create_task(client, ATTEMPTS))["file"]
        response = httpx.get(url)
        clean = httpx.get(wait_for(client, create_task(client, ATTEMPTS))["file"])
        (request, _) = simulator.state.file_requests
    assert url.endswith("/..%2F..%2Fevil.json")
    assert response.status_code == 200
    assert response.headers["content-disposition"] == f'attachment; filename="{TRAVERSAL_FILE_NAME}"'
    assert response.content == clean.content
    assert request.path.endswith(f"/{TRAVERSAL_FILE_NAME}")
    assert "content-disposition" not in clean.headers


def test_result_files_come_from_another_host_that_sees_no_token(small_dataset: Dataset) -> None:
    with running_simulator(small_dataset, file_host="127.0.0.2") as simulator, api(simulator) as client:
        assert simulator.file_url is not None and simulator.file_url.startswith("http://127.0.0.2:")
        url = wait_for(client, create_task(client, ATTEMPTS))["file"]
        assert url.startswith(f"{simulator.file_url}/files/")
        assert json.loads(httpx.get(url).content)["data"]
        # What a careless client would do: send the API's token along.
        assert client.get(url).status_code == 200
        path = httpx.URL(url).path
        # Each host serves only its own part.
        assert client.get(path).status_code == 404
        assert client.get(f"{simulator.file_url}{ATTEMPTS.path}").status_code == 404
        requests = simulator.state.file_requests
    assert requests == [
        FileRequest("127.0.0.2", path, had_authorization=False),
        FileRequest("127.0.0.2", path, had_authorization=True),
    ]


def test_the_file_host_must_be_another_address(small_dataset: Dataset) -> None:
    with pytest.raises(ValueError, match="another address"), running_simulator(small_dataset, file_host="127.0.0.1"):
        pass


def test_rate_rules_fire_at_their_rate_the_same_way_for_a_seed() -> None:
    def draws(seed: int, count: int | None = None) -> list[FaultKind | None]:
        plan = FaultPlan([FaultRule("poll", "http_503", count=count, rate=0.2)], seed=seed)
        return [plan.take(Call.POLL, ATTEMPTS.name) for _ in range(1000)]

    spoiled = draws(seed=5)
    assert set(spoiled) == {FaultKind.HTTP_503, None}
    assert 0.15 < spoiled.count(FaultKind.HTTP_503) / len(spoiled) < 0.25
    assert draws(seed=5) == spoiled
    assert draws(seed=6) != spoiled
    assert draws(seed=5, count=3).count(FaultKind.HTTP_503) == 3


def test_random_transient_faults_draw_among_the_kinds_each_call_allows() -> None:
    plan = FaultPlan.random_transient(0.3, seed=1)
    counted = FaultPlan([FaultRule("download", "file_404", count=None)], rate=0.3, seed=1)
    spoiled = {call: [plan.take(call, ATTEMPTS.name) for _ in range(2000)] for call in Call}
    for call, kinds in spoiled.items():
        assert set(kinds) - {None} == TRANSIENT_KINDS & KINDS_BY_CALL[call]
        assert 0.25 < (len(kinds) - kinds.count(None)) / len(kinds) < 0.35
    # Rules come first; the random faults take the calls they leave.
    assert {counted.take(Call.DOWNLOAD, ATTEMPTS.name) for _ in range(100)} == {FaultKind.FILE_404}
    assert FaultPlan.random_transient(0.3, seed=1, kinds={FaultKind.TASK_RUNNING}).take(Call.POLL, "attempts") is None


_TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})


def _observed_fault(kind: FaultKind) -> str:
    """How a client sees a transient fault."""
    if kind is FaultKind.TASK_RUNNING:
        return "1007"
    return "dropped" if kind is FaultKind.DROP_CONNECTION else str(kind.http_status)


class PatientClient:
    """Exports reports through transient faults by retrying each call at once, noting what it met."""

    def __init__(self, client: httpx.Client) -> None:
        self._client = client
        self.met: list[tuple[Call, str]] = []

    def export(self, spec: ReportSpec) -> list[dict[str, Any]]:
        task_id = self._call(Call.CREATE, lambda: create(self._client, spec)).json()["data"]["integration"]
        answer = {"status": "queued"}
        while answer["status"] != "completed":
            answer = self._call(Call.POLL, lambda: self._client.get(f"/v3/integration/{task_id}")).json()["data"]
        return json.loads(self._call(Call.DOWNLOAD, lambda: self._download(answer["file"])).content)["data"]

    def _call(self, call: Call, send: Callable[[], httpx.Response]) -> httpx.Response:
        while True:
            try:
                response = send()
            except httpx.RemoteProtocolError:
                self.met.append((call, "dropped"))
                continue
            if response.status_code == 429:
                assert response.headers["Retry-After"] == "0"
            if response.status_code in _TRANSIENT_STATUSES:
                self.met.append((call, str(response.status_code)))
            elif response.status_code == 400 and error_of(response)["code"] == 1007:
                self.met.append((call, "1007"))
            else:
                assert response.status_code == 200, response.text
                return response

    @staticmethod
    def _download(url: str) -> httpx.Response:
        """The file, checking that a dropped connection cut it half-way."""
        with httpx.stream("GET", url) as response:
            body = bytearray()
            try:
                for chunk in response.iter_bytes():
                    body += chunk
            except httpx.RemoteProtocolError:
                assert len(body) == int(response.headers["content-length"]) // 2
                raise
            return httpx.Response(response.status_code, headers=response.headers, content=bytes(body))


def test_random_transient_faults_over_http_are_survivable_and_repeat_for_a_seed(small_dataset: Dataset) -> None:
    def soak(seed: int) -> tuple[list[tuple[Call, str]], list[InjectedFault]]:
        faults = FaultPlan.random_transient(0.4, seed=seed)
        with (
            running_simulator(small_dataset, faults=faults, protocol=ProtocolOptions(retry_after="0")) as simulator,
            api(simulator) as client,
        ):
            patient = PatientClient(client)
            for spec in REPORTS * 2:
                assert patient.export(spec) == list(small_dataset.payload_records(spec.name))
            return patient.met, simulator.state.faults_injected

    # A seed whose draws hold every transient kind and a download cut half-way.
    met, injected = soak(seed=1)
    assert met == [(fault.call, _observed_fault(fault.kind)) for fault in injected]
    assert {fault.kind for fault in injected} == TRANSIENT_KINDS
    assert (Call.DOWNLOAD, "dropped") in met
    assert soak(seed=1) == (met, injected)


@pytest.mark.parametrize(
    ("spec", "rules"),
    [
        ("http_503", [FaultRule(call, "http_503") for call in Call]),
        ("task_running:rate=0.5", [FaultRule("create", "task_running", count=None, rate=0.5)]),
        (
            "file_404@download:count=2:report=attempts",
            [FaultRule("download", "file_404", count=2, report="attempts")],
        ),
        ("drop_connection@poll:rate=0.1:count=4", [FaultRule("poll", "drop_connection", count=4, rate=0.1)]),
    ],
)
def test_fault_specs_of_the_command_line(spec: str, rules: list[FaultRule]) -> None:
    assert parse_fault_rules(spec) == tuple(rules)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_such_fault", "unknown fault kind"),
        ("http_503@upload", "unknown call"),
        ("file_html@create", "cannot happen"),
        ("http_503:times=2", "unknown fault option"),
    ],
)
def test_bad_fault_specs_are_refused(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_fault_rules(spec)


# --- the protocol as installations vary ---------------------------------------------------------


def test_pending_statuses_are_answered_in_turn_and_none_leaves_the_status_out(small_dataset: Dataset) -> None:
    protocol = ProtocolOptions(pending_statuses=("progress", None, "in_work"))
    with (
        running_simulator(small_dataset, polls_to_complete=5, protocol=protocol) as simulator,
        api(simulator) as client,
    ):
        task_id = create_task(client, ATTEMPTS)
        answers = [client.get(f"/v3/integration/{task_id}").json()["data"] for _ in range(5)]
    assert answers[:4] == [
        {"status": "progress", "file": None},
        {"file": None},
        {"status": "in_work", "file": None},
        {"status": "in_work", "file": None},
    ]
    assert answers[4]["status"] == "completed"


@pytest.mark.parametrize("value", ["0", "-3", "Wed, 21 Oct 2015 07:28:00", "soon", None])
def test_the_retry_after_of_a_429_is_sent_verbatim(small_dataset: Dataset, value: str | None) -> None:
    faults = FaultPlan([FaultRule("create", "http_429")])
    with (
        running_simulator(small_dataset, faults=faults, protocol=ProtocolOptions(retry_after=value)) as simulator,
        api(simulator) as client,
    ):
        response = create(client, ATTEMPTS)
    assert response.status_code == 429
    assert response.headers.get("Retry-After") == value


def test_error_answers_can_come_with_http_200(small_dataset: Dataset) -> None:
    faults = FaultPlan([FaultRule("create", "task_running"), FaultRule("create", "module_unavailable")])
    protocol = ProtocolOptions(error_status=200)
    with running_simulator(small_dataset, faults=faults, protocol=protocol) as simulator, api(simulator) as client:
        answers = [create(client, ATTEMPTS, params={"after_date": "2024-01-05T10:00:00"}) for _ in range(3)]
    assert [response.status_code for response in answers] == [200, 200, 200]
    errors = [error_of(response) for response in answers]
    assert [(error["code"], error["field"]) for error in errors] == [
        (1007, "integration"),
        (1007, "company_id"),
        (1007, "after_date"),
    ]
    assert errors[2]["message"] == UNREADABLE_DATE_TIME


def test_canned_answers_replace_the_answers_of_their_calls(small_dataset: Dataset) -> None:
    answers = (
        CannedAnswer(Call.CREATE, b'{"errors": []}', status=200, count=2, report=ATTEMPTS.name),
        CannedAnswer(Call.POLL, b"<html>busy</html>", status=200, media_type="text/html"),
        CannedAnswer(Call.DOWNLOAD, b"", count=1),
    )
    with (
        running_simulator(small_dataset, protocol=ProtocolOptions(answers=answers)) as simulator,
        api(simulator) as client,
    ):
        refused = [create(client, ATTEMPTS) for _ in range(2)]
        task_id = create_task(client, ATTEMPTS)
        busy = client.get(f"/v3/integration/{task_id}")
        url = wait_for(client, task_id)["file"]
        empty, intact = httpx.get(url), httpx.get(url)
        assert create_task(client, COURSE_STATISTICS)
    assert [(response.status_code, response.content) for response in refused] == [(200, b'{"errors": []}')] * 2
    assert (busy.text, busy.headers["content-type"]) == ("<html>busy</html>", "text/html; charset=utf-8")
    assert (empty.status_code, empty.content) == (200, b"")
    assert json.loads(intact.content)["data"] == list(small_dataset.payload_records(ATTEMPTS.name))
    assert simulator.state.tasks_created[ATTEMPTS.name] == 1


@pytest.mark.parametrize("file_host", [None, "127.0.0.2"])
def test_file_urls_can_name_a_host_the_simulator_does_not_serve(small_dataset: Dataset, file_host: str | None) -> None:
    protocol = ProtocolOptions(file_url_host="http://nginx")
    with (
        running_simulator(small_dataset, file_host=file_host, protocol=protocol) as simulator,
        api(simulator) as client,
    ):
        url = httpx.URL(wait_for(client, create_task(client, ATTEMPTS))["file"])
        served_at = httpx.URL(simulator.file_url or simulator.url)
        # The files are where they always were: the URL's path and query on the real address.
        content = httpx.get(served_at.copy_with(path=url.path, query=url.query)).content
    assert (url.scheme, url.host, url.port) == ("http", "nginx", None)
    assert url.path.startswith("/files/")
    assert json.loads(content)["data"] == list(small_dataset.payload_records(ATTEMPTS.name))


def test_a_report_can_be_served_at_another_path_and_method_only(small_dataset: Dataset) -> None:
    protocol = ProtocolOptions(report_routes={ATTEMPTS.name: ("post", "/v1/custom/attempts")})
    with running_simulator(small_dataset, protocol=protocol) as simulator, api(simulator) as client:
        assert client.request("GET", ATTEMPTS.path).status_code == 404
        assert client.get("/v1/custom/attempts").status_code == 405
        task_id = client.post("/v1/custom/attempts", json={}).json()["data"]["integration"]
        content = httpx.get(wait_for(client, task_id)["file"]).content
    assert json.loads(content)["data"] == list(small_dataset.payload_records(ATTEMPTS.name))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"pending_statuses": ()}, "pending_statuses"),
        ({"pending_statuses": ("queued", "completed")}, "pending_statuses"),
        ({"error_status": 99}, "error_status"),
        ({"file_url_host": "nginx"}, "file_url_host"),
        ({"file_url_host": "http://nginx/content"}, "file_url_host"),
        ({"report_routes": {"grades": ("GET", "/v1/grades")}}, "unknown report"),
        ({"report_routes": {"attempts": ("PUT", "/v1/attempts")}}, "GET or POST"),
        ({"report_routes": {"attempts": ("GET", "v1/attempts")}}, "GET or POST, /path"),
    ],
)
def test_protocol_options_are_checked(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ProtocolOptions(**options)


# --- the data -----------------------------------------------------------------------------------


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    def files(config: DatasetConfig, name: str) -> list[bytes]:
        generated = generate(config)
        contents = []
        for spec in REPORTS:
            path = tmp_path / f"{name}-{spec.name}.json"
            generated.write_result_file(spec.name, path)
            contents.append(path.read_bytes())
        return contents

    assert files(SMALL, "first") == files(SMALL, "second")
    other = files(DatasetConfig(seed=8, learners=20, materials=10, courses=3, programs=3), "other")
    assert all(mine != theirs for mine, theirs in zip(files(SMALL, "first"), other, strict=True))


def test_generating_a_company_draws_a_sample_of_rows_whatever_its_size_and_a_selection_only_the_rows_it_serves(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Work counted, not timed: a company is its entities until a selection reaches its rows (but
    # for the few rows each report's self-check draws), which keeps a company of any size quick to
    # generate, on a busy machine too.
    drawn: list[str] = []
    row_random = Company.row_random

    def counted(company: Company, report: str, *key: Any) -> Any:
        drawn.append(report)
        return row_random(company, report, *key)

    monkeypatch.setattr(Company, "row_random", counted)
    big = generate(DatasetConfig(seed=11, learners=3000, materials=200))
    assert big.row_count(MATERIAL_STATISTICS.name) > 100_000
    assert sorted(Counter(drawn)) == [COURSE_STATISTICS.name, MATERIAL_STATISTICS.name, PROGRAM_STATISTICS.name]
    assert max(Counter(drawn).values()) <= 150, Counter(drawn)

    dataset = generate(DatasetConfig(seed=11))
    drawn.clear()
    served = list(dataset.payload_records(COURSE_STATISTICS.name))
    assert len(drawn) == len(served) > 0


def test_change_times_spread_over_the_period(demo_dataset: Dataset) -> None:
    for spec in REPORTS:
        moments = [row[spec.change_time] for row in demo_dataset.truth(spec.name) if row[spec.change_time] is not None]
        assert all(demo_dataset.period_start <= moment < demo_dataset.period_end for moment in moments)
        first_half = sum(moment < demo_dataset.period_start + timedelta(days=30) for moment in moments)
        assert 0.2 < first_half / len(moments) < 0.8, spec.name


def test_attempts_are_consistent(demo_dataset: Dataset, demo_histories: Histories) -> None:
    tests = {material.material_id: material for material in demo_dataset.materials if material.type == "test"}
    logins = {learner.login for learner in demo_dataset.learners}
    for row in every_version(demo_histories[ATTEMPTS.name]):
        material = tests[row["material_id"]]
        assert row["login"] in logins
        assert row["q_success"] + row["q_fail"] + row["q_checking"] == row["q_count"] == material.question_count
        assert 0 <= row["percent"] <= 100
        assert 0 <= row["points"] <= material.points
        assert (row["status"] == "checking") == (row["q_checking"] > 0)
        if row["status"] != "checking":
            assert (row["status"] == "completed") == (row["percent"] >= material.pass_percent)
        assert row["started_at"] <= row["ended_at"]
        assert row["created_at"] <= row["updated_at"]
    rows = demo_dataset.truth(ATTEMPTS.name)
    assert {row["status"] for row in rows} == {"completed", "fail", "checking"}
    assert len({row["attempt_id"] for row in rows}) == len(rows)


def test_material_statistics_agree_with_progress_and_attempts(demo_dataset: Dataset, demo_histories: Histories) -> None:
    attempts = defaultdict(list)
    for versions in demo_histories[ATTEMPTS.name].values():
        # An attempt is made on the test of its material id; other materials may share the id.
        attempts[versions[0].row["material_id"], "test", versions[0].row["login"]].append(versions)
    for key, versions in demo_histories[MATERIAL_STATISTICS.name].items():
        for version in versions:
            row = version.row
            status, progress = row["material_status"], row["progress"]
            assert (status == "appointed") == (progress == 0)
            assert (status == "in_progress") == (0 < progress < 100)
            if row["material_type"] not in POINTED_MATERIAL_TYPES:
                assert row["material_points"] is None and row["points"] is None
            elif row["points"] is not None:
                assert row["points"] <= row["material_points"]
            if row["start_at"] and row["end_at"]:
                assert row["start_at"] <= row["end_at"] <= row["update_at"]
            if row["material_type"] != "test":
                assert status in ("appointed", "in_progress", "completed") and row["attempts"] is None
                continue
            # The learner's attempts as they stood when this version was written.
            mine = [
                visible[-1].row
                for attempt in attempts[key]
                if (visible := [step for step in attempt if step.modified_at <= version.modified_at])
            ]
            mine.sort(key=lambda attempt: attempt["started_at"])
            assert (status == "appointed") == (not mine)
            assert row["attempts"] == len(mine)
            if mine:
                assert status == mine[-1]["status"]
                assert row["update_at"] == max(attempt["updated_at"] for attempt in mine)
        # Every change of an attempt changes its test's statistics too, so the two agree at any moment.
        attempt_moments = {step.modified_at for attempt in attempts[key] for step in attempt}
        assert attempt_moments <= {version.modified_at for version in versions}
    rows = demo_dataset.truth(MATERIAL_STATISTICS.name)
    assert {row["material_status"] for row in rows} == {"appointed", "in_progress", "completed", "checking", "fail"}
    assert {row["material_type"] for row in rows} == {material.type for material in demo_dataset.materials}
    assert len({(row["material_id"], row["material_type"], row["login"]) for row in rows}) == len(rows)
    # Ids repeat across types, as in the vendor's example; a test shares its id with another material.
    types_by_id = defaultdict(set)
    for material in demo_dataset.materials:
        types_by_id[material.material_id].add(material.type)
    assert any("test" in types and len(types) > 1 for types in types_by_id.values())


def test_course_rows_belong_to_real_learners_and_courses(demo_dataset: Dataset, demo_histories: Histories) -> None:
    learners = {learner.user_id: learner for learner in demo_dataset.learners}
    course_ids = {course.material_id for course in demo_dataset.courses}
    assert not course_ids & {material.material_id for material in demo_dataset.materials}
    for row in every_version(demo_histories[COURSE_STATISTICS.name]):
        learner = learners[row["user_id"]]
        assert (row["login"], row["fio"], row["user_status"]) == (learner.login, learner.fio, learner.user_status)
        assert row["material_id"] in course_ids
        assert set(COURSE_EXTRA_COLUMNS) <= set(row)
        for content in ("pdf", "link", "html"):
            assert 0 <= row[f"{content}_viewed"] <= row[f"{content}_total"]
        moments = [row[column] for column in ("start_time", "complete_date", "last_activity") if row[column]]
        assert moments == sorted(moments)
        assert row["user_final_scores"] <= row["max_final_scores"]
    assert any(row["last_activity"] is None for row in demo_dataset.truth(COURSE_STATISTICS.name))


def test_programme_rows_are_consistent(demo_dataset: Dataset, demo_histories: Histories) -> None:
    programs = {program.program_id: program for program in demo_dataset.programs}
    logins = {learner.login for learner in demo_dataset.learners}
    for row in every_version(demo_histories[PROGRAM_STATISTICS.name]):
        program = programs[row["program_id"]]
        assert row["login"] in logins
        assert 0 <= row["progress"] <= 100
        assert (row["progress"] == 100) == (row["program_status"] == "completed")
        for kind in MATERIAL_TYPES:
            count = program.material_counts.get(kind)
            assert row[f"materials_{kind}"] == count and row[f"completed_{kind}"] <= (count or 0)
        assert row["points"] is None or row["points"] <= row["program_points"]
        if row["passed_at_time"] is not None:
            assert row["program_status"] == "completed"
            deadline = row["learner_deadline_at"] or program.deadline_for(row["start_at"])
            assert row["passed_at_time"] == (row["end_at"] <= deadline)
    rows = demo_dataset.truth(PROGRAM_STATISTICS.name)
    assert {True, False} <= {row["passed_at_time"] for row in rows}
    assert any(row["active_at"] is None for row in rows)
    assert any(row["learner_deadline_at"] is not None for row in rows)
    # A programme without materials yet (sent as `materials: []`) still has learners.
    assert any(row["materials_total"] is None for row in rows)


# --- time: versions, as_of, daily windows, the clock ----------------------------------------------


def every_version(history: dict[tuple[Any, ...], list[RowVersion]]) -> Iterator[dict[str, Any]]:
    return (version.row for versions in history.values() for version in versions)


def day_of(dataset: Dataset, moment: datetime) -> int:
    """The index of the period's day (in the company time zone) a moment falls on."""
    return (moment.astimezone(zone_of(dataset)).date() - dataset.config.start).days


def by_key(spec: ReportSpec, rows: list[dict[str, Any]]) -> dict[tuple[Any, ...], dict[str, Any]]:
    keyed = {tuple(row[column] for column in spec.key): row for row in rows}
    assert len(keyed) == len(rows), f"{spec.name}: a key appears twice"
    return keyed


def daily_export(dataset: Dataset, spec: ReportSpec, day: int, as_of: datetime | None = None) -> list[dict[str, Any]]:
    """The rows of day `day`'s window, as of the end of that day unless said otherwise."""
    after, to = dataset.day_window(day)
    return dataset.truth(spec.name, after, to, as_of=as_of or to)


def test_days_are_local_midnights(demo_dataset: Dataset) -> None:
    zone, config = zone_of(demo_dataset), demo_dataset.config
    assert demo_dataset.day_start(0) == demo_dataset.period_start
    assert demo_dataset.day_start(config.days) == demo_dataset.period_end
    assert config.start == date(2024, 1, 1)
    assert demo_dataset.day_start(3) == datetime(2024, 1, 4, tzinfo=zone)
    assert demo_dataset.day_window(3) == (demo_dataset.day_start(3), demo_dataset.day_start(4))


def test_period_ends_at_local_midnight_across_a_clock_change() -> None:
    config = DatasetConfig(
        learners=5, materials=2, courses=1, programs=1, start=date(2024, 3, 1), days=60, timezone="Europe/Berlin"
    )
    dataset = generate(config)
    assert dataset.period_end == dataset.day_start(config.days)
    assert dataset.period_end - dataset.period_start == timedelta(days=60) - timedelta(hours=1)


@pytest.mark.parametrize("spec", REPORTS, ids=lambda spec: spec.name)
def test_versions_are_written_in_order_with_their_change_time(
    demo_dataset: Dataset, demo_histories: Histories, spec: ReportSpec
) -> None:
    history = demo_histories[spec.name]
    assert len(history) == demo_dataset.row_count(spec.name)
    for key, versions in history.items():
        moments = [version.modified_at for version in versions]
        assert moments == sorted(set(moments))
        assert demo_dataset.period_start <= moments[0] and moments[-1] < demo_dataset.period_end
        for version in versions:
            assert tuple(version.row[column] for column in spec.key) == key
            assert version.row[spec.change_time] in (None, version.modified_at)
            # A row is never active before it is assigned: only a first version may lack the change time.
            assert version.row[spec.change_time] is not None or version is versions[0]
    changing_on_several_days = [
        versions for versions in history.values() if len({day_of(demo_dataset, v.modified_at) for v in versions}) > 1
    ]
    assert len(changing_on_several_days) / len(history) > 1 / 3


def test_histories_move_forward(demo_histories: Histories) -> None:
    def never_decreases(history: dict[tuple[Any, ...], list[RowVersion]], *columns: str) -> None:
        for versions in history.values():
            for earlier, later in itertools.pairwise(versions):
                for column in columns:
                    assert (earlier.row[column] or 0) <= (later.row[column] or 0), column

    never_decreases(demo_histories[MATERIAL_STATISTICS.name], "progress", "points")
    never_decreases(demo_histories[COURSE_STATISTICS.name], "total_time", "pdf_viewed", "link_viewed", "html_viewed")
    never_decreases(demo_histories[PROGRAM_STATISTICS.name], "progress", "points")
    for versions in demo_histories[ATTEMPTS.name].values():
        # Submitted, possibly still to be checked; a check is the only later change.
        assert [version.row["status"] for version in versions[:-1]] in ([], ["checking"])
    assert {len(versions) for versions in demo_histories[ATTEMPTS.name].values()} == {1, 2}


def test_rows_never_active_are_found_by_the_window_of_their_assignment(
    demo_dataset: Dataset, demo_histories: Histories
) -> None:
    for spec in (COURSE_STATISTICS, PROGRAM_STATISTICS):
        never_active = [versions for versions in demo_histories[spec.name].values() if len(versions) == 1]
        assert never_active and all(versions[0].row[spec.change_time] is None for versions in never_active)
        for versions in never_active[:20]:
            (assignment,) = versions
            assert assignment.row in daily_export(demo_dataset, spec, day_of(demo_dataset, assignment.modified_at))
        assert len(demo_dataset.truth(spec.name, after=demo_dataset.period_start)) == demo_dataset.row_count(spec.name)


@pytest.mark.parametrize("spec", REPORTS, ids=lambda spec: spec.name)
def test_as_of_hides_the_versions_written_later(
    demo_dataset: Dataset, demo_histories: Histories, spec: ReportSpec
) -> None:
    key, versions = next((key, versions) for key, versions in demo_histories[spec.name].items() if len(versions) > 1)
    first, second = versions[0], versions[1]
    second_second = second.modified_at + timedelta(seconds=1)

    def visible(as_of: datetime) -> list[dict[str, Any]]:
        rows = demo_dataset.truth(spec.name, as_of=as_of)
        return [row for row in rows if tuple(row[column] for column in spec.key) == key]

    assert visible(first.modified_at) == []
    assert visible(second.modified_at) == [first.row]
    assert visible(second_second) == [second.row]
    assert demo_dataset.truth(spec.name, as_of=demo_dataset.period_end) == demo_dataset.truth(spec.name)
    assert demo_dataset.truth(spec.name, as_of=demo_dataset.period_start) == []
    as_of = demo_dataset.day_start(10)
    early = demo_dataset.truth(spec.name, as_of=as_of)
    assert 0 < len(early) < demo_dataset.row_count(spec.name)
    assert all(row[spec.change_time] is None or row[spec.change_time] < as_of for row in early)
    with pytest.raises(ValueError, match="aware"):
        demo_dataset.truth(spec.name, as_of=datetime(2024, 1, 10))


@pytest.mark.parametrize("spec", REPORTS, ids=lambda spec: spec.name)
def test_a_row_changed_on_day_d_and_day_d_plus_2_moves_to_the_later_window(
    demo_dataset: Dataset, demo_histories: Histories, spec: ReportSpec
) -> None:
    def last_on(versions: list[RowVersion], day: int) -> dict[str, Any] | None:
        rows = [version.row for version in versions if day_of(demo_dataset, version.modified_at) == day]
        return rows[-1] if rows else None

    key, versions, day = next(
        (key, versions, day)
        for day in range(demo_dataset.config.days - 2)
        for key, versions in demo_histories[spec.name].items()
        if last_on(versions, day) and not last_on(versions, day + 1) and last_on(versions, day + 2)
    )
    end_of_later_day = demo_dataset.day_window(day + 2)[1]
    assert by_key(spec, daily_export(demo_dataset, spec, day))[key] == last_on(versions, day)
    assert key not in by_key(spec, daily_export(demo_dataset, spec, day, as_of=end_of_later_day))
    assert key not in by_key(spec, daily_export(demo_dataset, spec, day + 1))
    assert by_key(spec, daily_export(demo_dataset, spec, day + 2))[key] == last_on(versions, day + 2)
    assert last_on(versions, day) != last_on(versions, day + 2)


@pytest.mark.parametrize("spec", REPORTS, ids=lambda spec: spec.name)
def test_daily_windows_merged_day_by_day_give_the_final_truth(demo_dataset: Dataset, spec: ReportSpec) -> None:
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    changed_on_a_later_day = 0
    for day in range(demo_dataset.config.days):
        exported = by_key(spec, daily_export(demo_dataset, spec, day))
        changed_on_a_later_day += len(exported.keys() & merged.keys())
        merged.update(exported)
    assert merged == by_key(spec, demo_dataset.truth(spec.name))
    assert changed_on_a_later_day > len(merged) / 3


@pytest.mark.parametrize("spec", REPORTS, ids=lambda spec: spec.name)
def test_a_full_export_as_of_a_moment_is_the_union_of_the_daily_windows_before_it(
    demo_dataset: Dataset, spec: ReportSpec
) -> None:
    as_of = demo_dataset.day_start(25) + timedelta(hours=13, minutes=7)
    union: dict[tuple[Any, ...], dict[str, Any]] = {}
    for day in range(26):
        exported = by_key(spec, daily_export(demo_dataset, spec, day, as_of=as_of))
        assert not exported.keys() & union.keys()
        union.update(exported)
    full = demo_dataset.truth(spec.name, as_of=as_of)
    assert union == by_key(spec, full)
    assert 0 < len(full) < demo_dataset.row_count(spec.name)


@pytest.mark.parametrize("spec", REPORTS, ids=lambda spec: spec.name)
def test_a_window_draws_only_the_rows_written_in_it(demo_dataset: Dataset, spec: ReportSpec) -> None:
    after, to = demo_dataset.day_window(12)
    for group in demo_dataset.groups(spec.name):
        written = [row for row in group.rows() if any(after <= v.modified_at < to for v in row.versions)]
        drawn = list(group.rows_written(after, to))
        assert [row for row in drawn if row in written] == written
        if group.one_row_per_learner:  # else a learner's other attempts at the test come along
            assert drawn == written
    assert any(next(group.rows_written(after, to), None) for group in demo_dataset.groups(spec.name))


# --- drift --------------------------------------------------------------------------------------

COMPANY_OFFSET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+03:00$")
OTHER_OFFSET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\+05:00|Z)$")
LOCAL_T = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$")
LOCAL_SPACE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")


def payload_objects(dataset: Dataset, spec: ReportSpec) -> list[tuple[tuple[Field, ...], dict[str, Any]]]:
    """Every payload object of a report with the documented fields it should carry."""
    objects = []
    for record in dataset.payload_records(spec.name):
        if spec.is_nested:
            objects.append((spec.parent_fields, record))
            objects += [(spec.fields, child) for child in record[spec.children_key]]
        else:
            objects.append((spec.fields, record))
    return objects


def documented_keys(spec: ReportSpec, fields: tuple[Field, ...]) -> set[str]:
    return {field.source[0] for field in fields} | {spec.children_key, *COURSE_EXTRA_COLUMNS}


@pytest.mark.parametrize("spec", REPORTS, ids=lambda spec: spec.name)
def test_payload_drifts_on_a_noticeable_share(demo_dataset: Dataset, spec: ReportSpec) -> None:
    objects = payload_objects(demo_dataset, spec)
    rows = [(fields, payload) for fields, payload in objects if fields is spec.fields]
    with_extras = [payload for fields, payload in objects if set(payload) - documented_keys(spec, fields)]
    missing = [payload for fields, payload in rows if {field.source[0] for field in fields} - set(payload)]
    ints_as_text = [
        payload
        for fields, payload in rows
        if any(
            field.type is FieldType.INTEGER
            and field.column != "material_id"
            and isinstance(payload.get(field.source[0]), str)
            for field in fields
        )
    ]
    assert 0.05 < len(with_extras) / len(objects) < 0.3
    assert 0.03 < len(missing) / len(rows) < 0.3
    assert 0.05 < len(ints_as_text) / len(rows) < 0.3
    datetimes = [
        payload[field.source[0]]
        for fields, payload in rows
        for field in fields
        if field.type is FieldType.TIMESTAMP and isinstance(payload.get(field.source[0]), str)
    ]
    for form in (COMPANY_OFFSET, OTHER_OFFSET, LOCAL_T, LOCAL_SPACE):
        assert 0.04 < sum(bool(form.match(value)) for value in datetimes) / len(datetimes) < 0.8, form.pattern


def test_attempts_send_material_id_as_a_string_and_other_reports_as_an_int(demo_dataset: Dataset) -> None:
    assert all(isinstance(record["material_id"], str) for record in demo_dataset.payload_records(ATTEMPTS.name))
    material_ids = [record["id"] for record in demo_dataset.payload_records(MATERIAL_STATISTICS.name)]
    assert sum(isinstance(value, int) for value in material_ids) > len(material_ids) / 2


def test_course_rows_carry_company_columns(demo_dataset: Dataset) -> None:
    records = list(demo_dataset.payload_records(COURSE_STATISTICS.name))
    assert all(set(COURSE_EXTRA_COLUMNS) <= set(record) for record in records)
    answers = {record["form_question_12"] for record in records}
    assert None in answers and any(isinstance(answer, str) for answer in answers)


def test_programme_deadlines_come_as_unixtime_text_and_null(demo_dataset: Dataset, tmp_path: Path) -> None:
    deadlines = [record.get("deadline_at") for record in demo_dataset.payload_records(PROGRAM_STATISTICS.name)]
    assert {type(deadline) for deadline in deadlines} == {int, str, type(None)}
    path = tmp_path / "programmes.json"
    demo_dataset.write_result_file(PROGRAM_STATISTICS.name, path)
    assert json.loads(path.read_text())["include"] == []


def test_extra_fields_of_parents_reach_their_rows(demo_dataset: Dataset) -> None:
    rows = demo_dataset.truth(MATERIAL_STATISTICS.name)
    assert any(key.startswith("parent.") for row in rows for key in row["extra_fields"] or {})


def payload_rows(
    spec: ReportSpec, records: Iterator[dict[str, Any]]
) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    """Every payload object holding a table row's own fields, with the row's key as text."""
    for record in records:
        for row in record[spec.children_key] if spec.is_nested else [record]:
            sources = {**record, **row}
            yield tuple(str(sources[spec.column(column).source[0]]) for column in spec.key), row


def datetime_form(value: str) -> str:
    return next(form.pattern for form in (COMPANY_OFFSET, OTHER_OFFSET, LOCAL_T, LOCAL_SPACE) if form.match(value))


@pytest.mark.parametrize("spec", REPORTS, ids=lambda spec: spec.name)
def test_a_row_drifts_the_same_way_in_every_version_and_window(demo_dataset: Dataset, spec: ReportSpec) -> None:
    exports = [demo_dataset.payload_records(spec.name)]
    for day in range(0, demo_dataset.config.days, 2):
        after, to = demo_dataset.day_window(day)
        exports.append(demo_dataset.payload_records(spec.name, after, to, as_of=to))
    choices: defaultdict[tuple[str, ...], set[tuple[str, Any]]] = defaultdict(set)
    for records in exports:
        for key, row in payload_rows(spec, records):
            choices[key].add(("extra fields", frozenset(set(row) - documented_keys(spec, spec.fields))))
            ints_as_text = any(
                isinstance(row.get(field.source[0]), str)
                for field in spec.fields
                if field.type is FieldType.INTEGER and field.column != "material_id"
            )
            choices[key].add(("ints as text", ints_as_text))
            choices[key].update(
                ("date-time form", datetime_form(row[field.source[0]]))
                for field in spec.fields
                if field.type is FieldType.TIMESTAMP and isinstance(row.get(field.source[0]), str)
            )
    assert len(choices) == demo_dataset.row_count(spec.name)
    for key, chosen in choices.items():
        assert len({kind for kind, _ in chosen}) == len(chosen), key


# --- the clock ----------------------------------------------------------------------------------


def test_the_clock_decides_what_new_tasks_see_and_tasks_record_their_windows(demo_dataset: Dataset) -> None:
    spec = MATERIAL_STATISTICS
    end_of_day_3 = demo_dataset.day_window(3)[1]
    day_20, end_of_day_20 = demo_dataset.day_window(20)
    window = {"after_date": day_20.isoformat(), "to_date": end_of_day_20.isoformat()}
    with running_simulator(demo_dataset, now=end_of_day_3) as simulator, api(simulator) as client:
        assert simulator.now == end_of_day_3
        early = json.loads(export(client, spec))["data"]
        created_early = create_task(client, spec)
        simulator.set_now(end_of_day_20)
        assert simulator.now == end_of_day_20
        # A task keeps the moment it was created at.
        answer = wait_for(client, created_early)
        assert json.loads(httpx.get(answer["file"]).content)["data"] == early
        daily = json.loads(export(client, spec, params=window))["data"]
        simulator.set_now(None)
        final = json.loads(export(client, spec))["data"]
        with pytest.raises(ValueError, match="aware"):
            simulator.set_now(datetime(2024, 1, 5))
    assert early == list(demo_dataset.payload_records(spec.name, as_of=end_of_day_3))
    assert daily == list(demo_dataset.payload_records(spec.name, day_20, end_of_day_20, as_of=end_of_day_20))
    assert final == list(demo_dataset.payload_records(spec.name))
    assert 0 < len(table_rows(spec, early, zone_of(demo_dataset))) < demo_dataset.row_count(spec.name)
    assert daily
    tasks = simulator.state.tasks
    assert [(task.report, task.after, task.to, task.as_of) for task in tasks] == [
        (spec.name, None, None, end_of_day_3),
        (spec.name, None, None, end_of_day_3),
        (spec.name, day_20, end_of_day_20, end_of_day_20),
        (spec.name, None, None, None),
    ]
    assert tasks[1].task_id == created_early
    assert simulator.state.tasks_created[spec.name] == len(tasks)


# --- the command line ---------------------------------------------------------------------------


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_cli_serves_until_interrupted(stop_signal: int) -> None:
    command = [sys.executable, "-m", "ekvio_assets.simulator", "--learners", "10", "--token", "demo"]
    # Started as a shell without job control starts `simulator &`: with SIGINT ignored.
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().split()[-1]
        assert process.stdout.readline().strip() == "API token: demo"
        response = httpx.get(f"{url}{ATTEMPTS.path}", headers={"Authorization": "Bearer demo"})
        assert response.status_code == 200
        process.send_signal(stop_signal)
        assert process.wait(timeout=10) == 0
    finally:
        process.kill()


def test_cli_injects_faults_serves_files_from_another_host_and_sets_the_clock() -> None:
    dataset = generate(DatasetConfig(learners=10))
    now = dataset.day_window(5)[1]
    command = [sys.executable, "-m", "ekvio_assets.simulator", "--learners", "10", "--token", "demo"]
    command += ["--fault", "http_503@create", "--file-host", "127.0.0.2", "--now", now.isoformat()]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().split()[-1]
        process.stdout.readline()
        file_url = process.stdout.readline().split()[-1]
        assert file_url.startswith("http://127.0.0.2:")
        with httpx.Client(base_url=url, headers={"Authorization": "Bearer demo"}, timeout=10) as client:
            assert create(client, ATTEMPTS).status_code == 503
            answer = wait_for(client, create_task(client, ATTEMPTS))
        assert answer["file"].startswith(f"{file_url}/files/")
        records = json.loads(httpx.get(answer["file"]).content)["data"]
        assert records == list(dataset.payload_records(ATTEMPTS.name, as_of=now))
        assert records != list(dataset.payload_records(ATTEMPTS.name))
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
        assert process.stdout.read().splitlines()[-1] == "faults injected 1"
    finally:
        process.kill()


def test_cli_speaks_the_protocol_as_an_installation_would() -> None:
    command = [sys.executable, "-m", "ekvio_assets.simulator", "--learners", "10", "--token", "demo"]
    command += ["--fault", "http_429@create", "--retry-after", "0", "--error-status", "200"]
    command += ["--file-url-host", "http://nginx", "--report-route", "attempts=POST:/v1/custom/attempts"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().split()[-1]
        with httpx.Client(base_url=url, headers={"Authorization": "Bearer demo"}, timeout=10) as client:
            assert client.get(ATTEMPTS.path).status_code == 404
            limited = client.post("/v1/custom/attempts", json={})
            refused = client.post("/v1/custom/attempts", params={"after_date": "today"}, json={})
            task_id = client.post("/v1/custom/attempts", json={}).json()["data"]["integration"]
            answer = wait_for(client, task_id)
        assert (limited.status_code, limited.headers["Retry-After"]) == (429, "0")
        assert (refused.status_code, error_of(refused)["code"], error_of(refused)["field"]) == (200, 1007, "after_date")
        assert answer["file"].startswith("http://nginx/files/")
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    finally:
        process.kill()


def test_cli_refuses_a_report_route_it_cannot_read() -> None:
    command = [sys.executable, "-m", "ekvio_assets.simulator", "--report-route", "attempts=PUT:/v1/attempts"]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert finished.returncode == 2
    assert "--report-route" in finished.stderr and "expected NAME=METHOD:/path" in finished.stderr


@pytest.mark.parametrize(
    ("zone_name", "start"),
    [
        ("Europe/Moscow", date(2024, 1, 1)),
        ("Europe/Berlin", date(2024, 10, 20)),  # the autumn fold: a local time names two instants
        ("Asia/Kolkata", date(2024, 1, 1)),  # an offset of hours and a half
    ],
)
@pytest.mark.parametrize("spec", REPORTS, ids=lambda spec: spec.name)
def test_rendered_records_read_back_as_their_values_in_any_zone(spec: ReportSpec, zone_name: str, start: date) -> None:
    zone = ZoneInfo(zone_name)
    period_start = datetime.combine(start, datetime.min.time(), zone).astimezone(UTC)
    renderer = ReportRenderer(spec, zone)
    rng = random.Random(5)
    samples: dict[FieldType, Callable[[], Any]] = {
        FieldType.TEXT: lambda: rng.choice(("active", "Иванов Иван", 'say "hi"\\')),
        FieldType.INTEGER: lambda: rng.randrange(10**6),
        FieldType.BOOLEAN: lambda: rng.random() < 0.5,
        FieldType.TIMESTAMP: lambda: period_start + timedelta(seconds=rng.randrange(14 * 86400)),
    }
    extra_columns = COURSE_EXTRA_COLUMNS if spec is COURSE_STATISTICS else ()
    for fields, record_renderer, extras in (
        (spec.fields, renderer.rows, extra_columns),
        (spec.parent_fields, renderer.parents, ()),
    ):
        for _ in range(500):
            values = {field.column: None if rng.random() < 0.3 else samples[field.type]() for field in fields}
            values |= {column: rng.choice((None, "Ночная смена")) for column in extras}
            payload = json.loads(record_renderer.text(values, rng.getrandbits(64)))
            read, _ = read_object(spec, fields, payload, zone)
            assert read == values


def test_a_big_company_serves_its_first_record_without_drawing_every_row() -> None:
    # 30,000 learners make some 700,000 rows: as version histories in memory, gigabytes. A company
    # keeps its entities and assignments; a selection draws rows a material at a time.
    tracemalloc.start()
    try:
        dataset = generate(DatasetConfig(learners=30_000))
        first = next(dataset.payload_records(MATERIAL_STATISTICS.name))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    rows_of_first_material = len(first[MATERIAL_STATISTICS.children_key])
    assert 0 < rows_of_first_material < dataset.row_count(MATERIAL_STATISTICS.name) / 10
    assert peak < 200 * 2**20
