"""Insights assets, partitioned by workspace: anomalies, their drivers, forecasts, risks and
opportunities, predicted customer value, and the weekly report.

Each asset reads the metric tables dbt built, calls the pure logic of this package, and writes its
own table in the `insights` schema (docs/anomalies.md, docs/reports.md). Writes replace the
workspace's rows (or the report's row), so reruns update rather than duplicate.
"""

import base64
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import dagster as dg
import pandas as pd
from threadpoolctl import threadpool_limits

from pipelines.insights import fits as stored_fits
from pipelines.insights.calendar import Calendar, calendar_for
from pipelines.insights.forecast_horizon import HORIZON_DAYS
from pipelines.insights.forecasts import FORECAST_METRICS, fit_name, forecast_workspace
from pipelines.insights.ltv import FIT_NAME, workspace_customer_values
from pipelines.insights.opportunities import workspace_opportunities
from pipelines.insights.reports import CHART_FILE, Week, build_report, last_complete_week, write_report
from pipelines.insights.scan import explain_anomalies, find_anomalies
from pipelines.insights.summaries import summarize
from pipelines.insights.wording import Wording
from pipelines.packs import Pack, all_metrics, metric_tables, pack_for, slice_tables
from pipelines.partitions import WorkspaceFailure, materialize_each, workspace_partitions
from pipelines.settings import Settings
from pipelines.transform.health import require_passing
from pipelines.warehouse import Reads, Warehouse
from pipelines.workspaces import Workspace, Workspaces

ANOMALIES = dg.AssetKey(["insights", "anomalies"])
DRIVERS = dg.AssetKey(["insights", "anomaly_drivers"])
REPORTS = dg.AssetKey(["insights", "reports"])
FORECASTS = dg.AssetKey(["insights", "forecasts"])
OPPORTUNITIES = dg.AssetKey(["insights", "opportunities"])
CUSTOMER_VALUES = dg.AssetKey(["insights", "customer_values"])
# What the assets read, from the metric registry: the tables its metrics and dimensions come from;
# not the forecasts' view (metrics.forecast_metrics), which reads what the forecasts asset writes.
METRIC_TABLES = [dg.AssetKey([table]) for table in metric_tables()
                 if not any(metric.forecast_of for metric in all_metrics() if metric.table == table)]
SLICE_TABLES = [dg.AssetKey([table]) for table in slice_tables()]
COHORT_TABLES = [dg.AssetKey([f"{vertical}_cohorts"]) for vertical in ("ecommerce", "saas")]
# What the opportunity rules read (pipelines/insights/opportunities.py).
OPPORTUNITY_TABLES = [dg.AssetKey([name]) for name in (
    "saas_customers", "subscriptions", "invoices", "mrr_movements", "stg_stripe__subscription_version_items",
    "stg_stripe__subscription_versions", "ecommerce_customer_segments", "customers", "orders",
    "ecommerce_daily_slices")] + COHORT_TABLES


class ReportConfig(dg.Config):
    """Which ISO week to report, e.g. "2026-W47"; empty means the last complete week in the workspace's timezone."""

    week: str = ""


def insights_assets(workspaces: Workspaces, settings: Settings) -> list[dg.AssetsDefinition]:
    """The insights assets for the workspaces of `workspaces.yaml`."""
    partitions = workspace_partitions(workspaces)
    kinds = {"python", settings.warehouse.kind}

    def anomalies(workspace: Workspace, warehouse: Warehouse, metrics: "_Daily") -> dict:
        """Flag unusual days in every pack metric of one workspace (band and week-over-week rules)."""
        with warehouse.reads() as read:  # one open of the database for all of the asset's reads
            daily = metrics.frame(read)
        pack = pack_for(workspace.vertical)
        found = find_anomalies(daily, pack, workspace.id, calendar=_calendar(workspace, daily))
        warehouse.upsert("insights.anomalies", found, key=["anomaly_id"], replace={"workspace_id": workspace.id})
        band = found[found["rule"] == "band"]
        reported = found[found["reported"]]
        return {
            "anomalies": len(found),
            "band": len(band),
            "week_over_week": len(found) - len(band),
            "events": int(found["event_id"].nunique()),
            "reported": len(reported),
            "holiday_country": workspace.holiday_country or "none",
            "days": len(daily),
            "latest_reported": dg.MetadataValue.md(_table(reported.tail(10), [
                "date", "metric", "value", "expected", "impact", "outcome", "event_rank"])),
        }

    def anomaly_drivers(workspace: Workspace, warehouse: Warehouse, metrics: "_Daily") -> dict:
        """Rank the dimension values that drove each of one workspace's anomalies."""
        pack = pack_for(workspace.vertical).watched()  # the slice tables of watched metrics
        with warehouse.reads() as read:
            found = read.query("select * from insights.anomalies where workspace_id = %s", [workspace.id])
            # Only the slice rows the band anomalies' metrics are explained from: their measures along
            # their dimensions (every row of a shop's products is most of a workspace's slices).
            measures, dimensions = explained_slices(found, pack)
            tables = list(dict.fromkeys(d.table for d in pack.dimensions if d.name in dimensions))
            slices = pd.concat([read.query(
                f"select date, metric, dimension, dimension_value, value from metrics.{table} where workspace_id = %s"
                f" and metric in ({', '.join(['%s'] * len(measures))})"
                f" and dimension in ({', '.join(['%s'] * len(dimensions))})",
                [workspace.id, *measures, *dimensions]) for table in tables], ignore_index=True) if tables else (
                pd.DataFrame(columns=["date", "metric", "dimension", "dimension_value", "value"]))
            # The last run's rows: an anomaly whose inputs are unchanged keeps them instead of being
            # explained again (a refresh after a small change re-explains only what it touched).
            known = _rows(read, "insights.anomaly_drivers", workspace, "anomaly_id, rank")
        drivers = explain_anomalies(found, slices, pack, calendar=_calendar(workspace, found), known=known)
        warehouse.upsert("insights.anomaly_drivers", drivers, key=["anomaly_id", "rank"],
                         replace={"workspace_id": workspace.id})
        top = drivers[drivers["rank"] == 1]
        return {
            "drivers": len(drivers),
            "explained_anomalies": int(drivers["anomaly_id"].nunique()),
            "reused_anomalies": int(drivers.loc[drivers["inputs_digest"].isin(
                known["inputs_digest"] if known is not None and "inputs_digest" in known else []),
                "anomaly_id"].nunique()),
            "top_drivers": dg.MetadataValue.md(_table(top.tail(10), ["date", "metric", "phrase"])),
        }

    def forecasts(workspace: Workspace, warehouse: Warehouse, metrics: "_Daily") -> dict:
        """Forecast one workspace's daily net sales and orders, or MRR, 13 weeks ahead (80% and 95% intervals)."""
        with warehouse.reads() as read:
            daily = metrics.frame(read)
            # The last run's rows: a metric whose history is unchanged (a refresh later the same day)
            # keeps its forecast instead of being fitted again.
            known = _rows(read, "insights.forecasts", workspace, "metric, date")
            # The last estimates: within a week of one, a metric's coefficients are forwarded, not estimated.
            fits = stored_fits.read_fits(_rows(read, stored_fits.TABLE, workspace, "model"))
        pack = pack_for(workspace.vertical)
        through = _last_complete_day(daily, workspace)
        metrics = [(name, pack.metric(name).stock, pack.metric(name).can_be_negative)
                   for name in FORECAST_METRICS[pack.vertical]] if through else []
        days = pd.to_datetime(daily["date"]).dt.date.tolist() + ([through + timedelta(days=HORIZON_DAYS)] if through else [])
        found = forecast_workspace(daily, metrics, calendar_for(workspace.holiday_country, days or [date.today()]),
                                   workspace.id, through=through, known=known, fits=fits)
        warehouse.upsert("insights.forecasts", found.assign(made_at=pd.Timestamp.now(tz="UTC")),
                         key=["workspace_id", "metric", "date"], replace={"workspace_id": workspace.id})
        _write_fits(warehouse, workspace, {fit_name(metric): fits[fit_name(metric)]
                                           for metric in found["metric"].unique() if fit_name(metric) in fits})
        return {
            "rows": len(found),
            "metrics": ", ".join(sorted(found["metric"].unique())) or "none (history too short)",
            "reused": ", ".join(sorted(found.loc[found["inputs_digest"].isin(
                known["inputs_digest"] if known is not None and "inputs_digest" in known else []),
                "metric"].unique())) or "none",
            "origin": str(found["origin"].max()) if len(found) else "",
            "estimated_on": ", ".join(f"{name}: {fit.estimated_on}" for name, fit in sorted(fits.items())
                                      if name.startswith("forecast:")) or "none",
            "next_days": dg.MetadataValue.md(_table(found.head(7), ["metric", "date", "forecast", "lower_80",
                                                                     "upper_80"])),
        }

    def opportunities(workspace: Workspace, warehouse: Warehouse, metrics: "_Daily") -> dict:
        """Rank one workspace's churn risks, slipping customers, product trend breaks and unusual cohorts
        by money at stake, each with a recommended action."""
        with warehouse.reads() as read:
            daily = metrics.frame(read)
            as_of = pd.to_datetime(daily["date"]).max().date() if len(daily) else None
            found = workspace_opportunities(read.query, workspace.id, workspace.vertical, workspace.currency,
                                            Wording(workspace.locale, workspace.currency), as_of)
        warehouse.upsert("insights.opportunities", found.assign(found_at=pd.Timestamp.now(tz="UTC")),
                         key=["opportunity_id"], replace={"workspace_id": workspace.id})
        return {
            "opportunities": len(found),
            "money_at_stake": float(found["money_at_stake"].sum()),
            "by_kind": ", ".join(f"{kind}: {count}" for kind, count in found["kind"].value_counts().items()) or "none",
            "top": dg.MetadataValue.md(_table(found.head(10), ["rank", "kind", "subject", "money_at_stake", "action"])),
        }

    def customer_values(workspace: Workspace, warehouse: Warehouse, metrics: "_Daily") -> dict:
        """Predict each customer's next 12 months of purchases and net sales in one shop (BG/NBD and
        Gamma-Gamma fitted to its purchase histories); a SaaS workspace has none."""
        if workspace.vertical != "ecommerce":
            return {"customers": 0, "skipped": "not an ecommerce workspace"}
        with warehouse.reads() as read:
            daily = metrics.frame(read)
            as_of = pd.to_datetime(daily["date"]).max().date() if len(daily) else None
            # the last estimate: within a week of it, the fit starts from its optimum
            start = stored_fits.read_fits(_rows(read, stored_fits.TABLE, workspace, "model")).get(FIT_NAME)
            # the fit (a fraction of a second) runs between its reads, on this connection
            found, params = workspace_customer_values(read.query, workspace.id, workspace.currency, as_of,
                                                      start=start)
            written = read.table_exists("insights.customer_values")
        if len(found) or written:
            warehouse.upsert("insights.customer_values", found, key=["workspace_id", "person_id"],
                             replace={"workspace_id": workspace.id})
        fit = params.pop("fit", None)
        if fit is not None:
            _write_fits(warehouse, workspace, {FIT_NAME: fit})
        return {
            "customers": len(found),
            "estimated_on": str(fit.estimated_on) if fit else "none",
            "predicted_value_12m": float(found["predicted_value_12m"].sum()),
            "model": ", ".join(f"{name}={value:.4g}" if isinstance(value, float) else f"{name}: {value}"
                               for name, value in params.items()) or "none",
            "top": dg.MetadataValue.md(_table(found.head(10), ["person_id", "frequency", "recency_days",
                                                               "predicted_value_12m"])),
        }

    @dg.asset(key=REPORTS, group_name="insights", kinds=kinds, partitions_def=partitions,
              deps=[*METRIC_TABLES, *COHORT_TABLES, ANOMALIES, DRIVERS, FORECASTS, OPPORTUNITIES])
    def reports(context: dg.AssetExecutionContext, config: ReportConfig, warehouse: Warehouse) -> dg.MaterializeResult:
        """Write one workspace's weekly report (files, LLM or template summary, a row in insights.reports)."""
        workspace = workspaces.get(context.partition_key)
        with warehouse.reads() as read:
            require_passing(read, workspace.id)  # the weekly schedule runs this without anomalies
            inputs = {
                "daily": _daily_metrics(read, workspace),
                "anomalies": read.query("select * from insights.anomalies where workspace_id = %s", [workspace.id]),
                # every column: a table written before `usual_share` existed lacks it (the report then
                # phrases without the usual share)
                "drivers": read.query("select * from insights.anomaly_drivers where workspace_id = %s",
                                      [workspace.id]).rename(columns={"dimension_value": "value"}),
                "forecast": _rows(read, "insights.forecasts", workspace, "metric, date"),
                "opportunities": _rows(read, "insights.opportunities", workspace, "rank"),
                "cohorts": _retention(read, workspace),
            }
        week = Week.parse(config.week) if config.week else last_complete_week(datetime.now(timezone.utc),
                                                                                workspace.timezone)
        folder = settings.home / "reports" / workspace.id / week.label
        report = build_report(
            workspace_id=workspace.id, pack=pack_for(workspace.vertical), week=week, timezone=workspace.timezone,
            currency=workspace.currency, workspace_name=workspace.name, locale=workspace.locale, **inputs,
            charts_from=folder)  # a chart drawn there from the same inputs is read back
        summary = summarize(report.facts, settings.llm)
        report = report.with_summary(summary.text)
        paths = write_report(report, folder)
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

    # One step for the five assets above, over every workspace of its run, one after the other
    # (pipelines/partitions.py): a workspace's failure stops its own insights only.
    work = {ANOMALIES: anomalies, DRIVERS: anomaly_drivers, FORECASTS: forecasts, OPPORTUNITIES: opportunities,
            CUSTOMER_VALUES: customer_values}
    deps = {ANOMALIES: METRIC_TABLES, DRIVERS: [ANOMALIES, *SLICE_TABLES], FORECASTS: METRIC_TABLES,
            OPPORTUNITIES: OPPORTUNITY_TABLES, CUSTOMER_VALUES: [dg.AssetKey(["orders"]), *METRIC_TABLES]}

    @dg.multi_asset(
        name="find_insights",  # the op (the job `insights` runs it)
        specs=[dg.AssetSpec(key, group_name="insights", kinds=kinds, deps=deps[key], skippable=True,
                            description=(function.__doc__ or "").strip()) for key, function in work.items()],
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        can_subset=True,
    )
    def insights(context: dg.AssetExecutionContext, warehouse: Warehouse) -> Iterator[dg.MaterializeResult]:
        """Anomalies, drivers, forecasts, opportunities and customer values of each workspace of the run."""
        selected = [key for key in work if key in context.selected_asset_keys]

        def each(workspace_id: str) -> Iterator[tuple[dg.AssetKey, dict]]:
            workspace = workspaces.get(workspace_id)
            with warehouse.reads() as read:
                require_passing(read, workspace.id)  # a workspace dbt's tests failed stops here, alone
            metrics = _Daily(workspace)  # read once for the assets that read it
            for key in selected:
                yield key, work[key](workspace, warehouse, metrics)

        # One DuckDB connection for the step's reads and writes (it lets go whenever another writer waits).
        # One BLAS thread: the insights' matrices are small (days × regressors), and on a busy machine
        # OpenBLAS's idle threads spin: the forecasts' fits cost 3× the CPU without this. Set once for
        # the step: setting it costs threadpoolctl a look at every loaded library (~1 ms a time).
        with warehouse.kept_open(), threadpool_limits(limits=1, user_api="blas"):
            yield from materialize_each(context, each, _insights_failure)

    return [insights, reports]


def explained_slices(anomalies: pd.DataFrame, pack: Pack) -> tuple[list[str], list[str]]:
    """The slice metrics and dimensions `explain_anomalies` reads for `anomalies`: the measures and the
    dimensions of the metrics with dimensions that have a band anomaly. It reads no other slice rows (a
    metric's history, its inputs digest and `explain` keep only its own measures along its own
    dimensions), so the drivers asset leaves them out, with the same drivers and digests."""
    metrics = [pack.metric(name) for name in dict.fromkeys(anomalies.loc[anomalies["rule"] == "band", "metric"])]
    metrics = [metric for metric in metrics if metric.dimensions]
    return (list(dict.fromkeys(measure for metric in metrics for measure in metric.measures)),
            list(dict.fromkeys(dimension for metric in metrics for dimension in metric.dimensions)))


def _insights_failure(workspace_id: str, exc: Exception) -> WorkspaceFailure:
    """A workspace's failed insights: what stopped them (a `dg.Failure`'s description, e.g. the dbt
    tests that withheld its figures, else the error), not retried."""
    if isinstance(exc, dg.Failure) and exc.description:
        return WorkspaceFailure(workspace_id, exc.description, retryable=False)
    return WorkspaceFailure(workspace_id, f"workspace {workspace_id!r}: {type(exc).__name__}: {exc}", retryable=False)


class _Daily:
    """One workspace's daily metrics (`_daily_metrics`) for the insights step: read at the first asset
    that asks and kept for the others of the step (dbt's tables, which no insights asset writes).
    Each asset gets its own copy."""

    def __init__(self, workspace: Workspace):
        self.workspace = workspace
        self._frame: pd.DataFrame | None = None

    def frame(self, read: Warehouse | Reads) -> pd.DataFrame:
        if self._frame is None:
            self._frame = _daily_metrics(read, self.workspace)
        return self._frame.copy()


def _daily_metrics(warehouse: Warehouse | Reads, workspace: Workspace) -> pd.DataFrame:
    """The workspace's watched pack metrics by date, one column each, from the tables the registry names."""
    pack = pack_for(workspace.vertical).watched()
    frames = [warehouse.query(
        f"select date, {', '.join(m.column for m in pack.metrics if m.table == table)} from metrics.{table} "
        "where workspace_id = %s order by date", [workspace.id]) for table in pack.tables]
    daily = frames[0]
    for frame in frames[1:]:
        daily = daily.merge(frame, on="date", how="outer")
    return daily.sort_values("date", ignore_index=True)


def _write_fits(warehouse: Warehouse, workspace: Workspace, fits: dict[str, stored_fits.Fit]) -> None:
    """Store these fits of the workspace (`insights.model_fits`), replacing those of the same models."""
    if fits:
        warehouse.upsert(stored_fits.TABLE, stored_fits.fit_rows(workspace.id, fits), key=["workspace_id", "model"])


def _rows(warehouse: Warehouse | Reads, table: str, workspace: Workspace, order: str) -> pd.DataFrame | None:
    """The workspace's rows of an insights table; None when the table does not exist yet."""
    if not warehouse.table_exists(table):
        return None
    return warehouse.query(f"select * from {table} where workspace_id = %s order by {order}", [workspace.id])


def _retention(warehouse: Warehouse | Reads, workspace: Workspace) -> pd.DataFrame | None:
    """Retention by cohort and month of age for the retention chart: customers buying again
    (ecommerce) or still paying (SaaS), complete months only; None when the cohort table is not built
    (the report goes out without the chart rather than not at all)."""
    table = f"metrics.{workspace.vertical}_cohorts"
    if not warehouse.table_exists(table):
        return None
    if workspace.vertical == "ecommerce":
        # month 0 is 100% by definition, and would flatten the months that say something
        columns, ages = "cohort_month, months_since_first_order as age, retention_rate as rate", "months_since_first_order >= 1"
    else:
        columns, ages = "cohort_month, months_since_start as age, logo_retention as rate", "months_since_start >= 0"
    today = datetime.now(ZoneInfo(workspace.timezone)).date()
    return warehouse.query(f"select {columns}, cohort_customers as customers from {table} "
                           f"where workspace_id = %s and activity_month < %s and {ages} order by cohort_month, age",
                           [workspace.id, today.replace(day=1)])


def _last_complete_day(daily: pd.DataFrame, workspace: Workspace) -> date | None:
    """The daily table's last day, or yesterday in the workspace's timezone if the table reaches today
    (a day still running is no day to learn from); None for an empty table."""
    if daily.empty:
        return None
    today = datetime.now(ZoneInfo(workspace.timezone)).date()
    return min(pd.to_datetime(daily["date"]).max().date(), today - timedelta(days=1))


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
    rows = [["" if pd.isna(value) else str(value) for value in row] for row in frame[columns].itertuples(index=False)]
    return "\n".join(["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
                     + ["| " + " | ".join(row) + " |" for row in rows])
