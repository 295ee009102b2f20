"""Insights assets, partitioned by workspace: anomalies, their drivers, and the weekly report.

Each asset reads the metric tables dbt built, calls the pure logic of this package, and writes its
own table in the `insights` schema (docs/anomalies.md, docs/reports.md). Writes replace the
workspace's rows (or the report's row), so reruns update rather than duplicate.
"""

import base64
from datetime import datetime, timezone

import dagster as dg
import pandas as pd

from pipelines.insights.calendar import Calendar, calendar_for
from pipelines.insights.reports import CHART_FILE, Week, build_report, last_complete_week, write_report
from pipelines.insights.scan import explain_anomalies, find_anomalies
from pipelines.insights.summaries import summarize
from pipelines.packs import pack_for
from pipelines.partitions import workspace_partitions
from pipelines.settings import Settings
from pipelines.transform.health import require_passing
from pipelines.warehouse import Warehouse
from pipelines.workspaces import Workspace, Workspaces

ANOMALIES = dg.AssetKey(["insights", "anomalies"])
DRIVERS = dg.AssetKey(["insights", "anomaly_drivers"])
REPORTS = dg.AssetKey(["insights", "reports"])
METRIC_TABLES = [dg.AssetKey([f"{vertical}_daily_metrics"]) for vertical in ("ecommerce", "saas")]
SLICE_TABLES = [dg.AssetKey([f"{vertical}_daily_slices"]) for vertical in ("ecommerce", "saas")]


class ReportConfig(dg.Config):
    """Which ISO week to report, e.g. "2026-W47"; empty means the last complete week in the workspace's timezone."""

    week: str = ""


def insights_assets(workspaces: Workspaces, settings: Settings) -> list[dg.AssetsDefinition]:
    """The three insights assets for the workspaces of `workspaces.yaml`."""
    partitions = workspace_partitions(workspaces)
    kinds = {"python", settings.warehouse.kind}

    @dg.asset(key=ANOMALIES, group_name="insights", kinds=kinds, partitions_def=partitions,
              deps=[dg.AssetKey(["metric_values"])])
    def anomalies(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
        """Flag unusual days in every pack metric of one workspace (band and week-over-week rules)."""
        workspace = workspaces.get(context.partition_key)
        require_passing(warehouse, workspace.id)  # a workspace dbt's tests failed stops here, alone
        pack = pack_for(workspace.vertical)
        daily = _daily_metrics(warehouse, workspace)
        found = find_anomalies(daily, pack, workspace.id, calendar=_calendar(workspace, daily))
        warehouse.upsert("insights.anomalies", found, key=["anomaly_id"], replace={"workspace_id": workspace.id})
        band = found[found["rule"] == "band"]
        reported = found[found["reported"]]
        return dg.MaterializeResult(metadata={
            "anomalies": len(found),
            "band": len(band),
            "week_over_week": len(found) - len(band),
            "events": int(found["event_id"].nunique()),
            "reported": len(reported),
            "holiday_country": workspace.holiday_country or "none",
            "days": len(daily),
            "latest_reported": dg.MetadataValue.md(_table(reported.tail(10), [
                "date", "metric", "value", "expected", "impact", "outcome", "event_rank"])),
        })

    @dg.asset(key=DRIVERS, group_name="insights", kinds=kinds, partitions_def=partitions,
              deps=[ANOMALIES, *SLICE_TABLES])
    def anomaly_drivers(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
        """Rank the dimension values that drove each of one workspace's anomalies."""
        workspace = workspaces.get(context.partition_key)
        pack = pack_for(workspace.vertical)
        found = warehouse.query("select * from insights.anomalies where workspace_id = %s", [workspace.id])
        slices = warehouse.query(
            f"select date, metric, dimension, dimension_value, value from metrics.{pack.vertical}_daily_slices "
            "where workspace_id = %s", [workspace.id])
        drivers = explain_anomalies(found, slices, pack, calendar=_calendar(workspace, found))
        warehouse.upsert("insights.anomaly_drivers", drivers, key=["anomaly_id", "rank"],
                         replace={"workspace_id": workspace.id})
        top = drivers[drivers["rank"] == 1]
        return dg.MaterializeResult(metadata={
            "drivers": len(drivers),
            "explained_anomalies": int(drivers["anomaly_id"].nunique()),
            "top_drivers": dg.MetadataValue.md(_table(top.tail(10), ["date", "metric", "phrase"])),
        })

    @dg.asset(key=REPORTS, group_name="insights", kinds=kinds,
              partitions_def=partitions, deps=[*METRIC_TABLES, ANOMALIES, DRIVERS])
    def reports(context: dg.AssetExecutionContext, config: ReportConfig, warehouse: Warehouse) -> dg.MaterializeResult:
        """Write one workspace's weekly report (files, LLM or template summary, a row in insights.reports)."""
        workspace = workspaces.get(context.partition_key)
        require_passing(warehouse, workspace.id)  # the weekly schedule runs this without anomalies
        week = Week.parse(config.week) if config.week else last_complete_week(datetime.now(timezone.utc),
                                                                                workspace.timezone)
        report = build_report(
            workspace_id=workspace.id, pack=pack_for(workspace.vertical), daily=_daily_metrics(warehouse, workspace),
            week=week, timezone=workspace.timezone, currency=workspace.currency, workspace_name=workspace.name,
            locale=workspace.locale,
            anomalies=warehouse.query("select * from insights.anomalies where workspace_id = %s", [workspace.id]),
            # every column: a table written before `usual_share` existed lacks it (the report then
            # phrases without the usual share)
            drivers=warehouse.query("select * from insights.anomaly_drivers where workspace_id = %s",
                                    [workspace.id]).rename(columns={"dimension_value": "value"}),
        )
        summary = summarize(report.facts, settings.llm)
        report = report.with_summary(summary.text)
        paths = write_report(report, settings.home / "reports" / workspace.id / report.week)
        warehouse.upsert("insights.reports", _report_row(report, summary, paths), key=["report_id"])
        chart = base64.b64encode(report.charts[CHART_FILE]).decode()
        return dg.MaterializeResult(metadata={
            "week": report.week,
            "summary_source": summary.source,
            "summary_reason": summary.reason or "",
            "prompt_tokens": summary.prompt_tokens or 0,
            "completion_tokens": summary.completion_tokens or 0,
            "cost_usd": summary.cost_usd or 0.0,
            "anomalies": report.facts["counts"]["anomalies"],
            "html": dg.MetadataValue.path(str(paths["report.html"])),
            "chart": dg.MetadataValue.path(str(paths[CHART_FILE])),
            "preview": dg.MetadataValue.md(report.markdown + f"\n![trend chart](data:image/png;base64,{chart})\n"),
        })

    return [anomalies, anomaly_drivers, reports]


def _daily_metrics(warehouse: Warehouse, workspace: Workspace) -> pd.DataFrame:
    """The workspace's rows of its vertical's daily metric table, by date."""
    table = pack_for(workspace.vertical).table
    return warehouse.query(f"select * from metrics.{table} where workspace_id = %s order by date", [workspace.id])


def _calendar(workspace: Workspace, rows: pd.DataFrame) -> Calendar:
    """The holidays of the workspace's country over the years of `rows` (their `date` column)."""
    dates = pd.to_datetime(rows["date"]).dt.date if len(rows) else [datetime.now(timezone.utc).date()]
    return calendar_for(workspace.holiday_country, dates)


def _report_row(report, summary, paths) -> pd.DataFrame:
    """The report's row in insights.reports (docs/reports.md)."""
    return pd.DataFrame([{
        "report_id": f"{report.workspace_id}:{report.week}",
        "workspace_id": report.workspace_id,
        "week": report.week,
        "period_start": report.period_start,
        "period_end": report.period_end,
        "html_path": str(paths["report.html"]),
        "text_path": str(paths["report.txt"]),
        "chart_path": str(paths[CHART_FILE]),
        "facts_path": str(paths["facts.json"]),
        "summary": summary.text,
        "summary_source": summary.source,
        "summary_reason": summary.reason,
        "model": summary.model,
        "prompt_tokens": summary.prompt_tokens,
        "completion_tokens": summary.completion_tokens,
        "cost_usd": summary.cost_usd,
        "written_at": pd.Timestamp.now(tz="UTC"),
    }]).astype({"prompt_tokens": "Int64", "completion_tokens": "Int64", "cost_usd": "float64",
                "summary_reason": "string", "model": "string"})


def _table(frame: pd.DataFrame, columns: list[str]) -> str:
    """A small Markdown table for metadata previews."""
    if frame.empty:
        return "none"
    rows = frame[columns].astype(str).values.tolist()
    return "\n".join(["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
                     + ["| " + " | ".join(row) + " |" for row in rows])
