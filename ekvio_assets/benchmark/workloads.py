"""The measured workloads, each run alone in a fresh process by `cli`.

`python -m ekvio_assets.benchmark.workloads KIND PARAMETERS_JSON` runs one and prints its result
as one JSON line. Each workload imports what it needs inside its function, so that a process
holds only its own workload's modules; the time counts the work only, after the imports.

Peak RSS is the kernel's high-water mark of this process's memory (VmHWM, Linux): unlike
getrusage's ru_maxrss, it starts afresh at exec instead of inheriting the parent's size at fork.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

TOKEN_VARIABLE = "EKVIO_BENCH_API_TOKEN"
_POLL_INTERVAL_SECONDS = 0.05


def ingest(parameters: dict[str, Any]) -> dict[str, Any]:
    """The project's path: export from the API into the raw archive, then `load_report_file`."""
    import dagster as dg

    from ekvio_assets.api.resource import EkvioApiResource
    from ekvio_assets.api.windows import ExportWindow
    from ekvio_assets.reports.load import load_report_file
    from ekvio_assets.reports.specs import REPORTS_BY_NAME
    from ekvio_assets.storage.warehouse import DuckDBWarehouse

    spec = REPORTS_BY_NAME[parameters["report"]]
    window = ExportWindow(*(_moment(parameters[bound]) for bound in ("after", "to")))
    warehouse = DuckDBWarehouse(data_dir=parameters["data_dir"], timezone=parameters["timezone"])
    api = EkvioApiResource(
        api_url=parameters["url"],
        api_token=os.environ[TOKEN_VARIABLE],
        poll_interval_seconds=_POLL_INTERVAL_SECONDS,
        poll_timeout_seconds=600,
    )
    # A run hands its steps a context; building one here creates a Dagster instance, which is not the ingest's cost.
    resource_context = dg.build_init_resource_context()
    rss_before_mb = _peak_rss_mb()
    started = time.perf_counter()
    with api.yield_for_execution(resource_context) as ekvio_api:
        exported = ekvio_api.export(spec, window, warehouse.raw_dir(spec.name))
    downloaded = time.perf_counter()
    loaded = load_report_file(warehouse, spec, exported, window.after, window.to)
    finished = time.perf_counter()
    outcome = loaded.outcome
    return {
        "seconds": finished - started,
        "rows": outcome.rows_in_file,
        "rss_before_mb": rss_before_mb,
        "download_seconds": downloaded - started,
        "load_seconds": finished - downloaded,
        "rejected": outcome.rejected,
        "table_rows": outcome.table_rows,
    }


def duckdb_reader(parameters: dict[str, Any]) -> dict[str, Any]:
    """Baseline A: DuckDB's JSON reader with the documented schema on the `data` array, unnested."""
    import duckdb

    from ekvio_assets.reports.specs import REPORTS_BY_NAME
    from ekvio_assets.storage.sql import literal, quote

    spec = REPORTS_BY_NAME[parameters["report"]]
    assert spec.children_key is not None, "baseline A reads a nested report"

    def struct_members(fields: Sequence[Any]) -> list[tuple[str, str]]:
        return [(field.source[0], field.type.duckdb_type) for field in fields]

    children = ", ".join(f"{quote(name)} {type_}" for name, type_ in struct_members(spec.fields))
    columns = [*struct_members(spec.parent_fields), (spec.children_key, f"STRUCT({children})[]")]
    selects = [f"record.{quote(field.source[0])} AS {quote(field.column)}" for field in spec.parent_fields]
    selects += [f"child.{quote(field.source[0])} AS {quote(field.column)}" for field in spec.fields]
    con = duckdb.connect(parameters["database"])
    con.execute("SET TimeZone = ?", [parameters["timezone"]])
    rss_before_mb = _peak_rss_mb()
    started = time.perf_counter()
    con.execute(
        f"CREATE TABLE {quote(spec.name)} AS SELECT {', '.join(selects)} FROM read_json("
        f"{literal(parameters['path'])}, format = 'array', "
        f"columns = {{{', '.join(f'{literal(name)}: {literal(type_)}' for name, type_ in columns)}}}) AS record, "
        f"unnest(record.{quote(spec.children_key)}) AS children(child)"
    )
    rows = con.execute(f"SELECT count(*) FROM {quote(spec.name)}").fetchone()
    con.close()
    return {"seconds": time.perf_counter() - started, "rows": rows[0] if rows else 0, "rss_before_mb": rss_before_mb}


def naive(parameters: dict[str, Any]) -> dict[str, Any]:
    """Baseline B: what a naive user writes; `errors="ignore"` because real records omit null fields."""
    import duckdb
    import pandas

    from ekvio_assets.reports.specs import REPORTS_BY_NAME

    spec = REPORTS_BY_NAME[parameters["report"]]
    assert spec.children_key is not None, "baseline B reads a nested report"
    con = duckdb.connect(parameters["database"])
    rss_before_mb = _peak_rss_mb()
    started = time.perf_counter()
    with open(parameters["path"], encoding="utf-8") as file:
        document = json.load(file)
    frame = pandas.json_normalize(
        document["data"],
        record_path=spec.children_key,
        meta=[field.source[0] for field in spec.parent_fields],
        meta_prefix="parent_",
        errors="ignore",
    )
    con.register("frame", frame)
    con.execute(f'CREATE TABLE "{spec.name}" AS SELECT * FROM frame')
    con.close()
    return {"seconds": time.perf_counter() - started, "rows": len(frame), "rss_before_mb": rss_before_mb}


WORKLOADS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "ingest": ingest,
    "duckdb_reader": duckdb_reader,
    "naive": naive,
}


def _moment(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("the benchmark measures memory through /proc/self/status (Linux)")


def main(argv: Sequence[str]) -> int:
    kind, parameters = argv
    result = WORKLOADS[kind](json.loads(parameters))
    print(json.dumps({**result, "peak_rss_mb": _peak_rss_mb()}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
