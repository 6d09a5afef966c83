"""The learning report: rendered after the publish by the real Definitions, its numbers equal to
hand-written SQL over the published file, self-contained, and readable when data are missing."""

from __future__ import annotations

import re
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest

from ekvio_assets.automation.jobs import ANALYTICS_JOB
from ekvio_assets.config import Settings
from ekvio_assets.models.assets import build_model_assets
from ekvio_assets.models.learning_report.asset import REPORT_ASSET, build_learning_report_asset
from ekvio_assets.models.publish import PUBLISH_ASSET, build_publish_asset
from ekvio_assets.naming import SINGLE_COMPANY
from ekvio_assets.storage.warehouse import DuckDBWarehouse
from ekvio_assets_tests.conftest import full_export, run_job

TIMEZONE = "Europe/Moscow"
SECTIONS = (
    "completion_by_department",
    "completion_by_programme",
    "overdue_by_days",
    "overdue_learners",
    "hardest_tests",
    "weekly_activity",
)


class Page(HTMLParser):
    """What the report shows: headline numbers, tables (cells as text and data-value), empty sections,
    and every tag and reference, to tell whether the page links anything."""

    def __init__(self) -> None:
        super().__init__()
        self.metrics: dict[str, tuple[str, str | None]] = {}
        self.tables: dict[str, list[list[tuple[str, str | None]]]] = {}
        self.empty: set[str] = set()
        self.periods: dict[str, str] = {}
        self.references: list[str] = []
        self.tags: set[str] = set()
        self._open: tuple[str, str, str | None] | None = None
        self._table: str | None = None
        self._in_body = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.add(tag)
        self.references += [
            value or "" for name, value in attrs if name in ("href", "xlink:href", "src", "srcset", "action")
        ]
        if "data-metric" in attributes:
            self._open = ("metric", attributes["data-metric"] or "", attributes.get("data-value"))
        elif "data-period" in attributes:
            self._open = ("period", attributes["data-period"] or "", None)
        elif "data-empty" in attributes:
            self.empty.add(attributes["data-empty"] or "")
        elif tag == "table":
            self._table = attributes.get("data-table")
            self.tables[self._table or ""] = []
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body and self._table:
            self.tables[self._table].append([])
        elif tag == "td" and self._in_body and self._table:
            self._open = ("cell", "", attributes.get("data-value"))

    def handle_endtag(self, tag: str) -> None:
        if tag == "tbody":
            self._in_body = False
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._open is None:
            return
        kind, name, value = self._open
        self._open = None
        if kind == "metric":
            self.metrics[name] = (data, value)
        elif kind == "period":
            self.periods[name] = data
        else:
            self.tables[self._table or ""][-1].append((data, value))


def _page(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def _published(settings_or_dir: Settings | Path) -> duckdb.DuckDBPyConnection:
    data_dir = settings_or_dir.data_dir if isinstance(settings_or_dir, Settings) else settings_or_dir
    con = duckdb.connect(str(data_dir / "ekvio.duckdb"), read_only=True)
    con.execute(f"SET TimeZone = '{TIMEZONE}'")
    return con


def _one(con: duckdb.DuckDBPyConnection, sql: str) -> Any:
    return con.execute(sql).fetchone()[0]


def _metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    (materialization,) = result.asset_materializations_for_node(REPORT_ASSET)
    return {name: value.value for name, value in materialization.metadata.items()}


def _assert_self_contained(path: Path, page: Page) -> None:
    text = path.read_text(encoding="utf-8")
    assert not page.tags & {"script", "link", "img", "iframe", "object", "embed"}
    # Inline SVG refers to its own clip paths and glyphs by id, nothing else.
    assert page.references and all(reference.startswith("#") for reference in page.references)
    assert re.findall(r"url\(\s*([^)\s]*)", text) and all(
        u.startswith("#") for u in re.findall(r"url\(\s*([^)\s]*)", text)
    )
    assert "@import" not in text and "@font-face" not in text
    assert not list(path.parent.glob(f".{path.name}.*")), "the temporary file of the atomic write is left over"


def test_the_report_after_the_publish_shows_the_numbers_of_the_published_file(
    tmp_path: Path, simulator: Any, configure_api: Callable[..., Settings]
) -> None:
    settings = configure_api(simulator, tmp_path / "data")
    assert full_export(settings).success
    result = run_job(settings, ANALYTICS_JOB, {})
    metadata = _metadata(result)
    report = settings.data_dir / "learning_report.html"
    assert metadata["path"] == str(report)
    assert metadata["url"] == report.resolve().as_uri()
    assert metadata["size_bytes"] == report.stat().st_size
    page = _page(report)
    _assert_self_contained(report, page)
    assert page.empty == set() and set(page.tables) == set(SECTIONS)

    with _published(settings) as con:
        expected = {
            "learners": _one(con, "SELECT count(DISTINCT login) FROM learners"),
            "programme_completion_rate": _one(
                con,
                "SELECT avg(CASE WHEN program_status = 'completed' THEN 1 ELSE 0 END) FROM learner_program_progress",
            ),
            "course_completion_rate": _one(con, "SELECT avg(is_completed::INTEGER) FROM learner_course_progress"),
            "overdue_learners": _one(
                con,
                "SELECT count(*) FROM (SELECT DISTINCT login FROM learner_program_progress "
                "WHERE days_late >= 1 AND program_status <> 'completed')",
            ),
            "test_attempts": _one(con, "SELECT count(attempt_id) FROM attempts"),
            "attempt_pass_rate": _one(
                con,
                "SELECT sum((status = 'completed')::INTEGER) / sum((status = 'completed' OR status = 'fail')::INTEGER) "
                "FROM attempts",
            ),
        }
        departments = dict(
            con.execute(
                "SELECT coalesce(l.group_department, '(no department)'), "
                "(count(*) FILTER (WHERE p.program_status = 'completed'))::DOUBLE / count(*) "
                "FROM learner_program_progress p JOIN learners l ON l.login = p.login GROUP BY 1"
            ).fetchall()
        )
        programmes = {
            (row[0], row[1], row[2])
            for row in con.execute(
                "SELECT coalesce(program_name, 'Programme ' || program_id), count(*), "
                "sum(CASE program_status WHEN 'completed' THEN 1 ELSE 0 END) "
                "FROM learner_program_progress GROUP BY program_id, program_name"
            ).fetchall()
        }
        hardest_name, hardest_rate, hardest_attempts = con.execute(
            "SELECT coalesce(m.material_name, 'Test ' || a.material_id), "
            "count(*) FILTER (WHERE a.status = 'completed') "
            "/ count(*) FILTER (WHERE a.status IN ('completed', 'fail')), "
            "count(*) FROM attempts a "
            "LEFT JOIN materials m ON m.material_type = 'test' AND m.material_id = a.material_id "
            "GROUP BY a.material_id, m.material_name ORDER BY 2, avg(a.percent) LIMIT 1"
        ).fetchone()
        most_late = _one(con, "SELECT max(days_late) FROM learner_program_progress WHERE program_status <> 'completed'")
        courses_completed = _one(con, "SELECT count(completed_at) FROM learner_course_progress")
        first_activity = _one(con, "SELECT min(first_activity_at) FROM learners")

    assert all(value for value in expected.values()), expected
    for name, value in expected.items():
        text, shown = page.metrics[name]
        assert shown is not None and float(shown) == pytest.approx(value), name
        assert metadata[name] == pytest.approx(value), name
    assert page.metrics["learners"][0] == str(expected["learners"])
    assert page.metrics["attempt_pass_rate"][0] == f"{expected['attempt_pass_rate'] * 100:.1f}%"
    assert page.periods["first_activity"] == first_activity.strftime("%d %b %Y %H:%M")

    shown_departments = {row[0][0]: row for row in page.tables["completion_by_department"]}
    assert shown_departments.keys() == departments.keys()
    for department, rate in departments.items():
        text, shown = shown_departments[department][3]
        assert text == f"{rate * 100:.1f}%" and float(shown) == pytest.approx(rate), department
    assert {(row[0][0], int(row[1][1]), int(row[2][1])) for row in page.tables["completion_by_programme"]} == programmes

    hardest = page.tables["hardest_tests"][0]
    assert hardest[0][0] == hardest_name and int(hardest[1][1]) == hardest_attempts
    assert float(hardest[3][1]) == pytest.approx(hardest_rate)
    assert f"Hardest test: {hardest_name}" in metadata["summary"]

    overdue = page.tables["overdue_learners"]
    assert len(overdue) == min(20, expected["overdue_learners"])
    assert int(overdue[0][4][1]) == most_late
    assert sum(int(row[1][1]) for row in page.tables["overdue_by_days"]) == expected["overdue_learners"]
    weekly = page.tables["weekly_activity"]
    assert sum(int(row[1][1]) for row in weekly) == expected["test_attempts"]
    assert sum(int(row[2][1]) for row in weekly) == courses_completed


def test_a_company_with_tests_only_gets_a_report_that_says_no_data_where_it_has_none(
    tmp_path: Path, simulator: Any, configure_api: Callable[..., Settings]
) -> None:
    settings = configure_api(simulator, tmp_path / "data")
    assert full_export(settings, reports=("attempts",)).success
    result = run_job(settings, ANALYTICS_JOB, {})
    metadata = _metadata(result)
    page = _page(settings.data_dir / "learning_report.html")

    with _published(settings) as con:
        attempts = _one(con, "SELECT count(*) FROM attempts")
        learners = _one(con, "SELECT count(*) FROM (SELECT DISTINCT login FROM attempts)")
    assert attempts > 0
    assert page.empty == {"completion_by_programme", "overdue_by_days", "overdue_learners"}
    assert page.metrics["test_attempts"][1] == str(attempts) == str(metadata["test_attempts"])
    assert page.metrics["learners"][1] == str(learners)
    assert page.metrics["programme_completion_rate"] == ("–", None)
    assert metadata["programme_completion_rate"] is None and metadata["overdue_learners"] == 0
    (department,) = page.tables["completion_by_department"]
    assert department[0][0] == "(no department)" and department[3] == ("–", None)


def _analytics_assets() -> list[dg.AssetsDefinition]:
    models = build_model_assets(SINGLE_COMPANY)
    return [*models, build_publish_asset(models, SINGLE_COMPANY), build_learning_report_asset(SINGLE_COMPANY)]


def _resources(data_dir: Path) -> dict[str, Any]:
    return {"warehouse": DuckDBWarehouse(data_dir=str(data_dir), timezone=TIMEZONE)}


def _materialize(
    data_dir: Path, selection: list[str] | None = None, instance: dg.DagsterInstance | None = None
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        _analytics_assets(),
        resources=_resources(data_dir),
        instance=instance or dg.DagsterInstance.ephemeral(),
        selection=selection,
    )


def test_automation_requests_the_report_after_each_publish(tmp_path: Path) -> None:
    instance = dg.DagsterInstance.ephemeral()
    definitions = dg.Definitions(assets=_analytics_assets(), resources=_resources(tmp_path / "data"))
    _materialize(tmp_path / "data", instance=instance)
    settled = dg.evaluate_automation_conditions(defs=definitions, instance=instance)
    assert settled.total_requested == 0
    _materialize(tmp_path / "data", selection=[PUBLISH_ASSET], instance=instance)
    after_publish = dg.evaluate_automation_conditions(defs=definitions, instance=instance, cursor=settled.cursor)
    assert after_publish.total_requested == 1
    assert after_publish.get_num_requested(dg.AssetKey(REPORT_ASSET)) == 1


def test_a_database_without_any_report_renders_every_section_as_no_data(tmp_path: Path) -> None:
    metadata = _metadata(_materialize(tmp_path / "data"))
    page = _page(tmp_path / "data" / "learning_report.html")
    assert page.empty == set(SECTIONS)
    assert page.metrics["learners"] == ("0", "0")
    assert metadata["missing_report_tables"] == "attempts"
    assert metadata["learners"] == 0 and metadata["attempt_pass_rate"] is None


def test_text_from_the_data_is_escaped_in_tables_and_charts(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    _materialize(data_dir)
    name = '<script>alert("x")</script> & <b>'
    with DuckDBWarehouse(data_dir=str(data_dir), timezone=TIMEZONE).write_connection() as con:
        con.execute("INSERT INTO learners (login, fio, group_department) VALUES ('ann', ?, ?)", [name, name])
        con.execute(
            "INSERT INTO learner_program_progress (login, program_id, program_name, program_status, group_department) "
            "VALUES ('ann', 1, ?, 'in_progress', ?)",
            [name, name],
        )
    _materialize(data_dir, selection=[PUBLISH_ASSET, REPORT_ASSET])
    report = data_dir / "learning_report.html"
    text = report.read_text(encoding="utf-8")
    page = _page(report)
    assert "<script" not in text and "<b>" not in text
    assert "&lt;script&gt;" in text
    assert page.tables["completion_by_programme"][0][0][0] == name
    _assert_self_contained(report, page)


def _svgs(path: Path) -> list[str]:
    return re.findall(r"<svg.*?</svg>", path.read_text(encoding="utf-8"), flags=re.DOTALL)


def _kept_charts(directory: Path) -> list[str]:
    return sorted(svg for path in directory.glob("*.svg") for svg in _svgs(path))


def test_a_page_drawn_again_from_the_same_numbers_draws_no_chart_and_a_change_redraws_its_charts(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    charts_dir = data_dir / "work" / "learning_report_charts"
    _materialize(data_dir)
    with DuckDBWarehouse(data_dir=str(data_dir), timezone=TIMEZONE).write_connection() as con:
        con.execute(
            "INSERT INTO learners (login, fio, group_department) VALUES ('ann', 'Ann', 'Sales'), ('bob', 'Bob', 'IT')"
        )
        con.execute(
            "INSERT INTO learner_program_progress (login, program_id, program_name, program_status, group_department) "
            "VALUES ('ann', 1, 'Onboarding', 'in_progress', 'Sales'), ('bob', 1, 'Onboarding', 'completed', 'IT')"
        )
    report = data_dir / "learning_report.html"
    first = _metadata(_materialize(data_dir, selection=[PUBLISH_ASSET, REPORT_ASSET]))
    first_charts = _svgs(report)
    # Completion by department and by programme: the sections with rows that have a chart.
    assert first["charts_drawn"] == len(first_charts) == 2
    assert _kept_charts(charts_dir) == sorted(first_charts)

    again = _metadata(_materialize(data_dir, selection=[PUBLISH_ASSET, REPORT_ASSET]))
    assert again["charts_drawn"] == 0
    assert _svgs(report) == first_charts

    with DuckDBWarehouse(data_dir=str(data_dir), timezone=TIMEZONE).write_connection() as con:
        con.execute("UPDATE learner_program_progress SET program_status = 'completed' WHERE login = 'ann'")
    changed = _metadata(_materialize(data_dir, selection=[PUBLISH_ASSET, REPORT_ASSET]))
    changed_charts = _svgs(report)
    assert changed["charts_drawn"] == 2 and changed_charts != first_charts
    # Only the latest page's charts are kept.
    assert _kept_charts(charts_dir) == sorted(changed_charts)
