"""The deliver stage's Definitions: report delivery and its check, the weekly report schedules (the
report and its delivery, Monday 08:00 in each workspace's own timezone), and the retry sensor."""

from __future__ import annotations

from datetime import datetime, timezone

import dagster as dg

from pipelines.deliver.assets import deliver_assets
from pipelines.deliver.sensors import retry_sensor
from pipelines.insights.assets import ANOMALIES, REPORTS, ReportConfig
from pipelines.insights.reports import last_complete_week
from pipelines.partitions import fully_materialized
from pipelines.refresh import stage_job
from pipelines.settings import Settings
from pipelines.workspaces import Workspace, Workspaces

WEEKLY_REPORT_CRON = "0 8 * * 1"  # Monday 08:00, in each workspace's execution_timezone
# What runs with the weekly report rather than on every refresh.
WEEKLY = dg.AssetSelection.assets(REPORTS) | dg.AssetSelection.groups("deliver")
WEEK_TAG = "abos/week"
OWNER = "team:analytics"  # who to ask about a delivery (the asset's Owners in the UI)


def defs(workspaces: Workspaces, settings: Settings) -> dg.Definitions:
    """Delivery of every workspace's reports, on the weekly schedules."""
    weekly = weekly_report_job()
    assets = dg.map_asset_specs(lambda spec: spec.replace_attributes(owners=[OWNER]),
                                deliver_assets(workspaces, settings))
    return dg.Definitions(assets=assets, jobs=[weekly],
                          schedules=weekly_report_schedules(workspaces, weekly),
                          sensors=[retry_sensor(workspaces, settings)])


def weekly_report_job() -> dg.UnresolvedAssetJobDefinition:
    """The weekly report and its delivery, for one workspace (partition) per run."""
    return stage_job("weekly_report", WEEKLY,
                     "Write a workspace's weekly report and deliver it to its Slack and email targets.")


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
    def _schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        failed = failed_insights_run(context.instance, workspace.id)
        if failed:  # one cause, one alert: the failed insights run alerted already
            return dg.SkipReason(f"{workspace.id}: its last insights run {failed} failed (the operator was "
                                 "alerted); no report until its insights succeed")
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


def failed_insights_run(instance: dg.DagsterInstance, workspace_id: str) -> str | None:
    """The id of the workspace's last run of its insights (the run that last set out to materialize its
    anomalies: its own, or one over many workspaces), if that run failed without materializing them
    (a run over many workspaces fails for the workspaces it could not do, and does the others); else None."""
    run_id = _last_planned_run(instance, ANOMALIES, workspace_id)
    if run_id is None:
        return None
    run = instance.get_run_by_id(run_id)
    if run is None or run.status != dg.DagsterRunStatus.FAILURE:
        return None
    return None if workspace_id in fully_materialized(instance, run_id, [ANOMALIES]) else run_id


def _last_planned_run(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str, scan: int = 1000) -> str | None:
    """The run that last planned to materialize `key` for `partition`: a planned event of that
    partition, or of a partition range holding it (one event per asset of a run over many partitions)."""
    records = instance.get_event_records(dg.EventRecordsFilter(
        dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED, asset_key=key), limit=scan, ascending=False)
    for record in records:
        planned = record.event_log_entry.dagster_event.event_specific_data
        if planned.partition == partition or (
                planned.partitions_subset is not None and partition in planned.partitions_subset.get_partition_keys()):
            return record.run_id
    return None
