"""The lines the CLI ends with: every table of the analyst file with its rows, what the runs changed and
rejected, the asset checks that failed, the time each step took."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ekvio_assets.cli.progress import RunProgress, TableChange
from ekvio_assets.config import Settings
from ekvio_assets.models.specs import MODELS
from ekvio_assets.naming import Namespace
from ekvio_assets.reports.specs import REPORT_TABLES
from ekvio_assets.storage.sql import row_count, table_names
from ekvio_assets.storage.warehouse import DuckDBWarehouse

_ROW = "  {:<26} {:>10} {:>9} {:>9}  {}"


def summary_lines(
    settings: Settings, runs: Sequence[RunProgress], changes: Mapping[str, TableChange] | None = None
) -> list[str]:
    """`changes`: what was loaded into the report tables, when not by one of `runs` (a replay)."""
    changes = {**(changes or {}), **{name: change for run in runs for name, change in run.tables().items()}}
    namespace = Namespace(settings.company)
    step_seconds = {namespace.table_of_step(key): step.took for run in runs for key, step in run.steps.items()}
    lines = [f"{settings.database_path}:", _ROW.format("table", "rows", "changed", "rejected", "step time")]
    warehouse = DuckDBWarehouse(data_dir=str(settings.data_dir), timezone=settings.timezone)
    with warehouse.published_connection() as con:
        loaded = table_names(con)
        for spec in REPORT_TABLES:
            if spec.name not in loaded:
                lines.append(f"  {spec.name:<26} {'not loaded yet':>25}")
                continue
            change = changes.get(spec.name, TableChange(0, 0, 0))
            # A parents table is filled by its report's step.
            step = next((s.name for s in REPORT_TABLES if s.parents and s.parents.name == spec.name), spec.name)
            lines.append(
                _ROW.format(
                    spec.name,
                    f"{row_count(con, spec.name):,}",
                    f"{change.changed:,}",
                    f"{change.rejected:,}",
                    _seconds(step_seconds.get(step)) if step == spec.name else f"(in {step})",
                )
            )
        for model in MODELS:
            lines.append(
                _ROW.format(
                    model.name, f"{row_count(con, model.name):,}", "", "", _seconds(step_seconds.get(model.name))
                )
            )
    others = [key for key in step_seconds if key not in {t.name for t in REPORT_TABLES} | {m.name for m in MODELS}]
    lines += [_ROW.format(key, "", "", "", _seconds(step_seconds[key])) for key in others]
    lines += check_lines(runs)
    lines.append("Took " + ", ".join(f"{_seconds(_run_seconds(run))} for {run.job_name}" for run in runs) + ".")
    return lines


def check_lines(runs: Sequence[RunProgress]) -> list[str]:
    failed = [failure for run in runs for failure in run.failed_checks]
    passed = sum(run.checks_passed for run in runs)
    lines = [f"Asset checks: {passed} passed, {len(failed)} failed{':' if failed else '.'}"]
    lines += [f"  {f.asset} {f.check} ({f.severity}): {f.description}" for f in failed]
    return lines


def _run_seconds(run: RunProgress) -> float | None:
    if run.started is None or run.finished is None:
        return None
    return run.finished - run.started


def _seconds(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds:.1f} s"
