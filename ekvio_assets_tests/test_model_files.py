"""The models' files (NAME.sql and NAME.yaml) load only when they agree with each other, with their SQL
and with the report specs; each disagreement is an error naming the file and what differs."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from ekvio_assets.models import validation
from ekvio_assets.models.specs import MODEL_NAMES, MODELS, MODELS_DIR, SETUP_SQL, load_models
from ekvio_assets.models.validation import GROUP_COLUMNS, ModelFileError, WrittenOutList
from ekvio_assets.reports.specs import REPORT_TABLES
from ekvio_assets.reports.tables import table_columns
from ekvio_assets.storage.sql import quote

Edit = tuple[str, str, str]  # (file name, text in it, replacement)


def _edited_models(tmp_path: Path, *edits: Edit) -> Path:
    """A copy of the model files with `edits` made, each replacing text found once in its file."""
    directory = tmp_path / "sql"
    shutil.copytree(MODELS_DIR, directory)
    for name, old, new in edits:
        path = directory / name
        text = path.read_text(encoding="utf-8")
        assert text.count(old) == 1, (name, old)
        path.write_text(text.replace(old, new), encoding="utf-8")
    return directory


def _scanned(plan_node: dict[str, Any]) -> Iterator[str]:
    """The tables a node of DuckDB's JSON plan and its children scan."""
    info = plan_node.get("extra_info", {})
    if isinstance(info, dict) and "Table" in info:
        yield info["Table"].rsplit(".", 1)[-1]
    for child in plan_node.get("children", []):
        yield from _scanned(child)


def test_the_tables_each_model_declares_are_those_duckdb_plans_to_scan_and_its_references_check() -> None:
    with duckdb.connect() as con:
        # DuckDB's plan needs every table the SELECT reads to exist; unoptimized, it prunes no scan
        # (an empty table would otherwise let the optimizer drop a filtered read).
        for table in REPORT_TABLES:
            columns = ", ".join(f"{quote(name)} {type_}" for name, type_, _ in table_columns(table))
            con.execute(f"CREATE TABLE {quote(table.name)} ({columns})")
        for model in MODELS:
            columns = ", ".join(f"{quote(column.name)} {column.type}" for column in model.columns)
            con.execute(f"CREATE TABLE {quote(model.name)} ({columns})")
        con.execute(SETUP_SQL)
        con.execute("PRAGMA disable_optimizer")
        for model in MODELS:
            [(_, plan)] = con.execute(f"EXPLAIN (FORMAT JSON) {model.sql}", dict(model.parameters)).fetchall()
            scanned = {table for node in json.loads(plan) for table in _scanned(node)}
            checked = {table for r in model.references for table in (r.table, r.target)} - {model.name}
            assert scanned, model.name
            assert scanned | checked == set(model.reads), model.name


@pytest.mark.parametrize(
    ("edits", "message"),
    [
        pytest.param(
            [("courses.yaml", "reads: [course_statistics]", "reads: [course_statistics, programs]")],
            "courses.yaml: reads must be the tables courses.sql reads (course_statistics) and those its "
            "references check (none); programs: read by neither",
            id="a table declared that the SQL does not read",
        ),
        pytest.param(
            [("learner_summary.yaml", ", learner_material_progress]", "]")],
            "and those its references check (learners); it lacks learner_material_progress",
            id="a table the SQL reads left undeclared",
        ),
        pytest.param(
            [
                (
                    "learner_course_progress.yaml",
                    "reads: [course_statistics, courses, learners]",
                    "reads: [course_statistics]",
                )
            ],
            "learner_course_progress.sql reads (course_statistics) and those its references check (courses, "
            "learners); it lacks courses, learners",
            id="a table only the references check reads left undeclared",
        ),
        pytest.param(
            [("courses.sql", "a.has_scorm,", "a.has_scorm, a.learners_assigned AS assigned,")],
            "courses.sql selects the columns material_id, course_name, is_required, pdf_total, link_total, "
            "html_total, has_scorm, assigned, max_interaction_scores",
            id="a column selected but not declared",
        ),
        pytest.param(
            [("learners.yaml", "parameters: [appointed]", "parameters: [appointed, fail]")],
            "learners.sql binds the parameters appointed; learners.yaml declares appointed, fail",
            id="a parameter declared but not bound",
        ),
        pytest.param(
            [("learners.yaml", "parameters: [appointed]", "parameters: [appointed, overdue]")],
            "learners.yaml parameters: unknown overdue (known: completed, fail, appointed, test)",
            id="a parameter of no known value",
        ),
        pytest.param(
            [("courses.sql", "FROM latest l", "FROM latest l JOIN nowhere n USING (material_id)")],
            "courses.sql: the SQL reads nowhere, which is neither a CTE nor a known table",
            id="a table nobody provides",
        ),
        pytest.param(
            [
                (
                    "learner_program_progress.sql",
                    "\n               + coalesce(completed_longread, 0) + coalesce(completed_document, 0)",
                    "",
                )
            ],
            "learner_program_progress.sql reads from program_statistics completed_html, completed_link, "
            "completed_pdf, completed_scorm, completed_test, completed_video but not completed_document, "
            "completed_longread: write out all of completed_<material type> for every material type",
            id="a list of the report specs written out in part in the SQL",
        ),
        pytest.param(
            [
                ("learner_summary.sql", ", l.group_function,", ","),
                (
                    "learner_summary.yaml",
                    "  - name: group_function\n    type: VARCHAR\n    description: "
                    '"Group: function (from the learner\'s latest course row; null without courses)"\n',
                    "",
                ),
            ],
            "learner_summary produces group_city, group_department, group_position, group_region, group_role, "
            "group_team but not group_function: write out all of the course report's group columns",
            id="a list of the report specs left out in part of both files",
        ),
        pytest.param(
            [("courses.yaml", "key: [material_id]", "key: [course_id]")],
            "courses.yaml: its key or references name courses.course_id, which do not exist",
            id="a key column the model does not have",
        ),
        pytest.param(
            [("materials.yaml", "target_values: {material_type: test}", "target_values: {material_kind: test}")],
            "materials.yaml: its key or references name materials.material_kind, which do not exist",
            id="a reference to a column the target does not have",
        ),
        pytest.param(
            [("materials.yaml", "key: [material_id, material_type]", "key: [material_id, material_type]\nowner: me")],
            "materials.yaml: unknown owner (known: columns, description, key, nullable_key, parameters, reads, "
            "reads_the_clock, references)",
            id="a key the YAML does not know",
        ),
    ],
)
def test_a_model_whose_files_disagree_fails_the_load_naming_what_differs(
    tmp_path: Path, edits: list[Edit], message: str
) -> None:
    directory = _edited_models(tmp_path, *edits)
    with pytest.raises(ModelFileError, match=re.escape(message)):
        load_models(directory, MODEL_NAMES)


def test_a_value_added_to_a_report_spec_list_fails_the_load_until_the_models_write_it_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What the load would see the day the course report documents a group_shift column.
    groups = WrittenOutList("the course report's group columns", (*GROUP_COLUMNS, "group_shift"))
    monkeypatch.setattr(validation, "WRITTEN_OUT_LISTS", (groups,))
    with pytest.raises(ModelFileError, match="^learners produces group_city, .* but not group_shift: "):
        load_models(MODELS_DIR, MODEL_NAMES)


def test_every_model_file_is_a_model_and_every_model_has_both_files(tmp_path: Path) -> None:
    directory = _edited_models(tmp_path)
    shutil.copy(directory / "courses.sql", directory / "course_drafts.sql")
    with pytest.raises(ModelFileError, match=r"course_drafts \(\.sql\) are no models: name them in MODEL_NAMES"):
        load_models(directory, MODEL_NAMES)
    (directory / "course_drafts.sql").unlink()
    (directory / "courses.yaml").unlink()
    with pytest.raises(ModelFileError, match=r"no \.yaml file for the models courses"):
        load_models(directory, MODEL_NAMES)
