"""The `learning_report` asset: after each publish, EKVIO_DATA_DIR/learning_report.html beside ekvio.duckdb."""

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg

from ekvio_assets.models.assets import MODEL_AUTOMATION, MODELS_GROUP
from ekvio_assets.models.learning_report.chart_cache import ChartCache
from ekvio_assets.models.learning_report.queries import MissingModelTables, ReportData, read_report_data
from ekvio_assets.models.publish import PUBLISH_ASSET
from ekvio_assets.naming import Namespace
from ekvio_assets.storage.files import write_atomically
from ekvio_assets.storage.metadata import PII_TAG

REPORT_ASSET = "learning_report"
REPORT_FILE = "learning_report.html"
# The charts of the latest page, beside the working database (see chart_cache).
CHARTS_DIR = "learning_report_charts"


def _headline_metadata(data: ReportData, headline: Sequence[tuple[str, str, str]]) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    for key, _, kind in headline:
        value = data.headline[key]
        if value is None:
            metadata[key] = dg.MetadataValue.null()
        elif kind == "percent":
            metadata[key] = dg.MetadataValue.float(float(value))
        else:
            metadata[key] = dg.MetadataValue.int(int(value))
    return metadata


def _summary(data: ReportData, path: Path) -> str:
    def rate(value: float | None) -> str:
        return "no data" if value is None else f"{value * 100:.1f}%"

    headline = data.headline
    lines = [
        f"**{headline['learners']}** learners; "
        f"programme assignments completed **{rate(headline['programme_completion_rate'])}**, "
        f"course assignments **{rate(headline['course_completion_rate'])}**; "
        f"**{headline['overdue_learners']}** learners overdue on a programme; "
        f"**{headline['test_attempts']}** test attempts, "
        f"**{rate(headline['attempt_pass_rate'])}** of the graded ones passed.",
    ]
    if data.hardest_tests:
        hardest = data.hardest_tests[0]
        lines.append(
            f"Hardest test: {hardest['test']} ({rate(hardest['pass_rate'])} of {hardest['attempts']} attempts passed)."
        )
    lines.append(f"[Open the report]({path.resolve().as_uri()})")
    return "\n\n".join(lines)


def build_learning_report_asset(namespace: Namespace) -> dg.AssetsDefinition:
    @dg.asset(
        key=namespace.key(REPORT_ASSET),
        group_name=namespace.name(MODELS_GROUP),
        kinds={"html"},
        # It names the overdue learners.
        tags={PII_TAG: "true"},
        deps=[namespace.key(PUBLISH_ASSET)],
        # After every publish: the page always shows what analysts find in the file.
        automation_condition=MODEL_AUTOMATION,
        required_resource_keys={namespace.warehouse_resource},
        description=(
            f"EKVIO_DATA_DIR/{REPORT_FILE}, beside the analyst file: completion by department and "
            "programme, overdue learners, the hardest tests and the activity by week, as one HTML page "
            "that works offline (charts inline, nothing linked)."
        ),
    )
    def learning_report(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        warehouse = namespace.warehouse(context)
        try:
            with warehouse.published_connection() as con:
                data = read_report_data(con)
        except MissingModelTables as error:
            raise dg.Failure(description=str(error), allow_retries=False) from None
        if data.missing_report_tables:
            context.log.warning(
                f"learning_report: the report tables {', '.join(data.missing_report_tables)} "
                "were never loaded and were read as empty"
            )
        # The page's template and formats: imported when a report is made, not by every process
        # that loads the definitions.
        from ekvio_assets.models.learning_report.render import HEADLINE, render_report

        charts = ChartCache(warehouse.working_path.parent / CHARTS_DIR)
        page = render_report(data, timezone=warehouse.timezone, generated_at=datetime.now(UTC), charts=charts)
        path = warehouse.root / REPORT_FILE
        write_atomically(path, page)
        charts.drop_unused()
        return dg.MaterializeResult(
            metadata={
                "path": dg.MetadataValue.path(str(path)),
                "url": dg.MetadataValue.url(path.resolve().as_uri()),
                "size_bytes": dg.MetadataValue.int(path.stat().st_size),
                # The others were drawn for an earlier page from the same numbers.
                "charts_drawn": dg.MetadataValue.int(charts.drawn),
                **_headline_metadata(data, HEADLINE),
                "summary": dg.MetadataValue.md(_summary(data, path)),
                "missing_report_tables": ", ".join(data.missing_report_tables),
            }
        )

    return learning_report
