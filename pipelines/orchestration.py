"""When each stage runs, what watches it, and how the operator hears of a failure (docs/operations.md).

- **Refresh, every 6 hours** (`REFRESH_CRON`, UTC): every asset but the weekly ones carries the
  `REFRESH` automation condition, evaluated by the `refresh` sensor. At the tick it requests ingestion
  for every workspace (one backfill); each dbt model follows once all its parents have updated since
  the tick and no parent partition is still running, and each workspace's anomalies and drivers follow
  the metric tables. (A single run could not do all this: it holds assets of one partitions
  definition, and the dbt models are unpartitioned while ingestion and insights are per workspace.)
- **Weekly report, Monday 08:00 in each workspace's own timezone**: one schedule per workspace runs
  `insights/reports` and the `deliver` group for that workspace's partition, for the week that just
  ended there.
- **Sensors**: a failed run alerts the operator (`alert_operator`: Slack, or the outbox); freshness
  checks on the raw and metric tables, evaluated by their own sensor; failed deliveries are retried
  within hours (`pipelines/deliver/sensors.py`); runs whose process died are failed and their pool
  slots freed, and runs with a step over ABOS_STEP_TIMEOUT_SECONDS are stopped (`recover_runs`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

import dagster as dg

from pipelines.deliver.alerts import alert_operator
from pipelines.deliver.sensors import retry_sensor
from pipelines.insights.assets import REPORTS, ReportConfig
from pipelines.insights.reports import last_complete_week
from pipelines.reliability import LIVE_STATUSES, free_finished_runs_slots, overdue_steps, recover_dead_runs
from pipelines.settings import Settings
from pipelines.workspaces import Workspace, Workspaces

REFRESH_CRON = "0 */6 * * *"  # the seed's cadence; UTC
WEEKLY_REPORT_CRON = "0 8 * * 1"  # Monday 08:00, in each workspace's execution_timezone
# A refresh lands within two hours of its tick (three for the metric tables, built after ingestion);
# past that, the data missed a refresh.
RAW_TABLES_FRESH_FOR = timedelta(hours=8)
METRIC_TABLES_FRESH_FOR = timedelta(hours=9)

# Requested once per tick, after every parent updated since the tick and none is still running. An
# unpartitioned dbt model therefore waits for all its workspaces' ingestion (any partition in progress
# blocks it), and per-workspace insights wait for the dbt models they read.
REFRESH = (dg.AutomationCondition.on_cron(REFRESH_CRON) & ~dg.AutomationCondition.any_deps_in_progress()).with_label(
    f"refresh on {REFRESH_CRON} (UTC), after its parents"
)
WEEKLY_ASSETS = [REPORTS]
WEEKLY_GROUPS = ["deliver"]
WEEKLY = dg.AssetSelection.assets(*WEEKLY_ASSETS) | dg.AssetSelection.groups(*WEEKLY_GROUPS)
WEEK_TAG = "abos/week"


def orchestrate(assets: Sequence[dg.AssetsDefinition], workspaces: Workspaces, settings: Settings) -> dg.Definitions:
    """The stages' `assets` on the refresh cadence, with the weekly schedules, sensors and freshness checks."""
    assets = dg.map_asset_specs(
        lambda spec: spec if _weekly(spec) else spec.replace_attributes(automation_condition=REFRESH), assets
    )
    specs = [spec for a in assets for spec in a.specs]
    raw = [spec.key for spec in specs if (spec.group_name or "").startswith("ingest_")]
    metrics = [spec.key for spec in specs if spec.group_name == "metrics"]
    with warnings.catch_warnings():
        # FreshnessPolicy supersedes these checks, but needs an instance flag and reports no check
        # result; checks show pass/fail on every asset page and in the asset graph.
        warnings.simplefilter("ignore", dg.SupersessionWarning)
        freshness = [
            *(dg.build_last_update_freshness_checks(assets=raw, lower_bound_delta=RAW_TABLES_FRESH_FOR)
              if raw else []),
            *(dg.build_last_update_freshness_checks(assets=metrics, lower_bound_delta=METRIC_TABLES_FRESH_FOR)
              if metrics else []),
        ]
        freshness_sensor = dg.build_sensor_for_freshness_checks(
            freshness_checks=freshness, name="freshness_checks", minimum_interval_seconds=300,
            default_status=dg.DefaultSensorStatus.RUNNING,
        )
    weekly = weekly_report_job()
    return dg.Definitions(
        assets=assets,
        asset_checks=freshness,
        jobs=[weekly],
        schedules=weekly_report_schedules(workspaces, weekly),
        sensors=[
            dg.AutomationConditionSensorDefinition(
                "refresh", target=dg.AssetSelection.all() - WEEKLY, default_status=dg.DefaultSensorStatus.RUNNING,
                description=f"Ingestion, dbt and anomalies on `{REFRESH_CRON}` (UTC), as one backfill per tick.",
            ),
            freshness_sensor,
            run_failure_alert(settings),
            retry_sensor(workspaces, settings),
            recover_runs(settings),
        ],
    )


def _weekly(spec: dg.AssetSpec) -> bool:
    """Whether the asset runs with the weekly report rather than on every refresh."""
    return spec.key in WEEKLY_ASSETS or spec.group_name in WEEKLY_GROUPS


def weekly_report_job() -> dg.UnresolvedAssetJobDefinition:
    """The weekly report and its delivery, for one workspace (partition) per run."""
    return dg.define_asset_job(
        "weekly_report", selection=WEEKLY,
        description="Write a workspace's weekly report and deliver it to its Slack and email targets.",
    )


def weekly_report_schedules(workspaces: Workspaces, job: dg.UnresolvedAssetJobDefinition) -> list[dg.ScheduleDefinition]:
    """One schedule per workspace: Monday 08:00 in its timezone, for the ISO week that just ended there."""
    return [_weekly_report_schedule(workspace, job) for workspace in workspaces]


def _weekly_report_schedule(workspace: Workspace, job: dg.UnresolvedAssetJobDefinition) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=f"weekly_report_{workspace.id.replace('-', '_')}",
        cron_schedule=WEEKLY_REPORT_CRON,
        execution_timezone=workspace.timezone,
        job=job,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"{workspace.name}: the weekly report and its delivery, Monday 08:00 {workspace.timezone}.",
    )
    def _schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        # A tick names its week explicitly, so a retried or late run reports the same week.
        tick = context.scheduled_execution_time or datetime.now(timezone.utc)
        week = last_complete_week(tick, workspace.timezone).label
        return dg.RunRequest(
            run_key=f"{workspace.id}:{week}",
            partition_key=workspace.id,
            run_config=dg.RunConfig(ops={REPORTS.to_python_identifier(): ReportConfig(week=week)}),
            tags={WEEK_TAG: week},
        )

    return _schedule


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
    partition = run.tags.get("dagster/partition")
    title = f"Run failed: {run.job_name}" + (f" for {partition}" if partition else "")
    lines = [f"Run {run.run_id} failed."]
    if partition:
        lines.append(f"Workspace: {partition}")
    if run.asset_selection:
        lines.append("Assets: " + ", ".join(sorted(key.to_user_string() for key in run.asset_selection)))
    steps = context.get_step_failure_events()
    for event in steps:
        lines.append(f"Step {event.step_key}: {_reason(event.step_failure_data)}")
    if not steps:
        lines.append(f"Reason: {context.failure_event.message or 'the run failed outside any step'}")
    lines.append("Logs: open the run in the Dagster UI (Runs, search for the run id).")
    return title, "\n".join(lines)


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
