"""The CLI's progress from a real run's stored events: what a failed asset check looks like."""

from __future__ import annotations

import dagster as dg

from ekvio_assets.cli.progress import CheckFailure, RunProgress
from ekvio_assets.cli.summary import check_lines


@dg.asset(
    check_specs=[
        dg.AssetCheckSpec("positive", asset="balance"),
        dg.AssetCheckSpec("not_empty", asset="balance"),
    ]
)
def balance() -> dg.MaterializeResult:
    return dg.MaterializeResult(
        check_results=[
            dg.AssetCheckResult(
                check_name="positive",
                passed=False,
                severity=dg.AssetCheckSeverity.WARN,
                description="2 rows below zero",
            ),
            dg.AssetCheckResult(check_name="not_empty", passed=True),
        ]
    )


def test_a_failed_check_is_a_warning_with_its_description_and_counted_in_the_summary() -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize([balance], instance=instance)
        records = instance.get_records_for_run(result.run_id, limit=1000).records
    progress = RunProgress("__ASSET_JOB")
    notes = [note for record in records for note in progress.apply(record.event_log_entry)]

    assert progress.failed_checks == [CheckFailure("balance", "positive", "WARN", "2 rows below zero")]
    assert progress.checks_passed == 1
    warnings = [str(note) for note in notes if note.warning]
    assert warnings == ["  balance: warning: check positive failed (WARN): 2 rows below zero"]
    # A step that exports nothing says only what went wrong: the summary shows its time.
    assert [str(note) for note in notes if not note.warning] == []
    assert check_lines([progress]) == [
        "Asset checks: 1 passed, 1 failed:",
        "  balance positive (WARN): 2 rows below zero",
    ]


class BrokenResource(dg.ConfigurableResource):
    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        raise RuntimeError("cannot reach the database")


@dg.asset
def needs_broken(broken: BrokenResource) -> None:
    pass


def broken_job() -> dg.JobDefinition:
    definitions = dg.Definitions(
        assets=[needs_broken], jobs=[dg.define_asset_job("broken_job")], resources={"broken": BrokenResource()}
    )
    return definitions.resolve_job_def("broken_job")


def test_a_step_whose_resources_fail_in_its_process_is_shown_as_failed_before_it_started() -> None:
    # In a step process of its own (the report steps' executor), resources are set up before the
    # step starts: their failure is the step's failure with no start.
    with dg.instance_for_test() as instance:
        result = dg.execute_job(dg.reconstructable(broken_job), instance=instance, raise_on_error=False)
        records = instance.get_records_for_run(result.run_id, limit=1000).records
    assert not result.success
    progress = RunProgress("broken_job")
    notes = [str(note) for record in records for note in progress.apply(record.event_log_entry)]

    assert "  needs_broken: failed before it started" in notes
    assert progress.steps["needs_broken"].status == "failed"
