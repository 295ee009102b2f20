"""What watches every stage, and how the operator hears of a failure (docs/operations.md).

The stages own their assets, checks, schedules and sensors (`pipelines/<stage>/definitions.py`); the
sensors here span them all:

- **`refresh`** evaluates the `REFRESH` automation condition (pipelines/refresh.py) of every asset
  but the weekly ones, every 6 hours (UTC), as one backfill per tick.
- **`freshness_checks`** evaluates the stages' freshness checks on the raw and metric tables.
- **`alert_operator_on_failure`**: a failed run alerts the operator (`alert_operator`: Slack, or the outbox).
- **`recover_runs`**: runs whose process died are failed and their pool slots freed, and runs with a
  step over ABOS_STEP_TIMEOUT_SECONDS are stopped.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from pipelines.deliver.alerts import alert_operator
from pipelines.deliver.definitions import WEEKLY
from pipelines.partitions import FAILED_WORKSPACES
from pipelines.refresh import REFRESH_CRON
from pipelines.reliability import (FRESHNESS_CHECK, LIVE_STATUSES, free_finished_runs_slots, overdue_steps,
                                   recover_dead_runs)
from pipelines.settings import Settings


def defs(stages: Sequence[dg.Definitions], settings: Settings) -> dg.Definitions:
    """The sensors that watch the assets and runs of every stage in `stages`."""
    freshness = [checks for stage in stages for checks in (stage.asset_checks or [])
                 if any(key.name == FRESHNESS_CHECK for key in checks.check_keys)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.SupersessionWarning)  # see pipelines/refresh.py, freshness_checks
        freshness_sensor = dg.build_sensor_for_freshness_checks(
            freshness_checks=freshness, name="freshness_checks", minimum_interval_seconds=300,
            default_status=dg.DefaultSensorStatus.RUNNING,
        )
    return dg.Definitions(sensors=[
        dg.AutomationConditionSensorDefinition(
            "refresh", target=dg.AssetSelection.all() - WEEKLY, default_status=dg.DefaultSensorStatus.RUNNING,
            description=f"Ingestion, dbt and anomalies on `{REFRESH_CRON}` (UTC), as one backfill per tick.",
        ),
        freshness_sensor,
        run_failure_alert(settings),
        recover_runs(settings),
    ])


def run_failure_alert(settings: Settings) -> dg.SensorDefinition:
    """A sensor that tells the operator about every failed run of this code location."""

    @dg.run_failure_sensor(name="alert_operator_on_failure", default_status=dg.DefaultSensorStatus.RUNNING,
                           description="Post every failed run to the operator channel (Slack, or the outbox).")
    def alert_operator_on_failure(context: dg.RunFailureSensorContext) -> None:
        title, text = failure_message(context)
        where = alert_operator(settings, title, text)
        context.log.info(f"alerted the operator about run {context.dagster_run.run_id}: {where}")

    return alert_operator_on_failure


def recover_runs(settings: Settings) -> dg.SensorDefinition:
    """A sensor that fails dead runs (freeing their pool slots) and stops runs with an overdue step."""

    @dg.sensor(name="recover_runs", minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING,
               description="Fail runs whose process died and free their pool slots; stop runs with a step "
                           "over ABOS_STEP_TIMEOUT_SECONDS (pipelines/reliability.py).")
    def _recover_runs(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        instance = context.instance
        failed = recover_dead_runs(instance)
        live = [r.dagster_run for r in instance.get_run_records(dg.RunsFilter(statuses=LIVE_STATUSES))]
        overdue = overdue_steps(instance, live, settings.step_timeout_seconds)
        for step in overdue:
            instance.report_engine_event(step.message, step.run)
            instance.run_launcher.terminate(step.run.run_id)
            instance.report_run_failed(step.run, step.message)
        free_finished_runs_slots(instance)
        return dg.SkipReason(f"{len(failed)} dead runs failed, {len(overdue)} overdue runs stopped")

    return _recover_runs


def failure_message(context: dg.RunFailureSensorContext) -> tuple[str, str]:
    """Title and text of the alert for a failed run: what failed, for which workspace, and why."""
    run = context.dagster_run
    steps = context.get_step_failure_events()
    # A run over many workspaces (pipelines/partitions.py) names the ones that failed in its steps' failures.
    failed = sorted({workspace for event in steps for workspace in _failed_workspaces(event.step_failure_data)})
    partition = run.tags.get("dagster/partition")
    workspaces = ", ".join(failed) or partition
    title = f"Run failed: {run.job_name}" + (f" for {workspaces}" if workspaces else "")
    lines = [f"Run {run.run_id} failed."]
    if workspaces:
        lines.append(f"Workspace{'s' if len(failed) > 1 else ''}: {workspaces}")
    start, end = run.tags.get(ASSET_PARTITION_RANGE_START_TAG), run.tags.get(ASSET_PARTITION_RANGE_END_TAG)
    if start and end:
        lines.append(f"The run covered the workspaces from {start} to {end}; the others' assets are materialized.")
    if run.asset_selection:
        lines.append("Assets: " + ", ".join(sorted(key.to_user_string() for key in run.asset_selection)))
    for event in steps:
        lines.append(f"Step {event.step_key}: {_reason(event.step_failure_data)}")
        if len(_failed_workspaces(event.step_failure_data)) > 1:  # then each workspace's reason, a line each
            lines += [f"- {line}" for line in event.step_failure_data.user_failure_data.description.splitlines()[1:]]
    if not steps:
        lines.append(f"Reason: {context.failure_event.message or 'the run failed outside any step'}")
    lines.append("Logs: open the run in the Dagster UI (Runs, search for the run id).")
    return title, "\n".join(lines)


def _failed_workspaces(failure) -> list[str]:
    metadata = failure.user_failure_data.metadata if failure.user_failure_data else {}
    entry = metadata.get(FAILED_WORKSPACES)
    return [workspace for workspace in str(entry.value).split(",") if workspace] if entry is not None else []


def _reason(failure) -> str:
    """The first line of what made a step fail: a `dg.Failure`'s description, else the root exception."""
    if failure.user_failure_data and failure.user_failure_data.description:
        return failure.user_failure_data.description.strip().splitlines()[0]
    error = failure.error
    while error is not None and error.cause is not None:  # Dagster wraps the exception the asset raised
        error = error.cause
    if error is None or not error.message.strip():
        return "no error message"
    kind, _, message = error.message.strip().splitlines()[0].partition(": ")
    return f"{error.cls_name}: {message}" if message else kind
