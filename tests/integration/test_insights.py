"""Insights acceptance on the simulated demo businesses: sandbox → real sync → dbt build → the
insights assets of the real Definitions. The warehouse is built once for the module.

Numbers are checked against independent SQL on the metric tables and against the simulator's
injected anomalies (`abos sandbox truth`).
"""

from __future__ import annotations

import importlib
import json
import shutil
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from pipelines.ask import history
from pipelines.ask.answer import ask
from pipelines.cli import main as cli_main
from pipelines.sandbox.core.connection import sandbox_env
from pipelines.insights.anomalies import detect_many
from pipelines.deliver.slack import report_message
from pipelines.insights.forecasts import backtest, backtest_scores, daily_series
from pipelines.insights.ltv import workspace_customer_values
from pipelines.insights.calendar import calendar_for
from pipelines.insights.reports import RETENTION_FILE
from pipelines.insights.summaries import template_summary
from pipelines.packs import pack_for
from pipelines.sandbox.server import Sandbox, build_store
from pipelines.sandbox.simulation.runner import advance, truth
from pipelines.sandbox.core.store import SandboxStore
from pipelines.settings import Settings, load_settings
from pipelines.transform import BUILD, ensure_manifest
from pipelines.transform.reference import ANALYSTS_DOC, SCHEMAS, documented_sql
from pipelines.warehouse import Warehouse
from pipelines.workspaces import load_workspaces
from tests.drawn import charts_drawn
from tests.openai_standin import OpenAIStandIn
from tests.scenario import run_dbt, sync_all, write_workspaces_table

AS_OF = date(2026, 11, 25)  # a Wednesday: 2026-W47 (Nov 16-22) is the last complete week
WEEK = "2026-W47"
TABLES = ["insights.anomalies", "insights.anomaly_drivers", "insights.forecasts", "insights.reports"]
NO_LLM = {"ABOS_LLM_API_KEY": "", "OPENAI_API_KEY": ""}


@dataclass
class Built:
    home: Path
    env: dict[str, str]
    settings: Settings
    truth: dict[str, Any]

    @property
    def warehouse(self) -> Warehouse:
        return self.settings.warehouse


def build(home: Path, size: str) -> Built:
    """Generate the sandbox, sync every demo workspace over HTTP, run one dbt build."""
    store = build_store(home / f"{size}.sqlite", size=size, seed=42, as_of=AS_OF)
    env = {"ABOS_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"), "ABOS_WAREHOUSE_URL": "",
           "ABOS_WORKSPACES": "", **NO_LLM}
    with Sandbox(store) as sandbox, pytest.MonkeyPatch.context() as patch:
        env.update(sandbox_env(sandbox.connection_info()))
        for key, value in env.items():
            patch.setenv(key, value)
        settings = load_settings()
        sync_all(settings)
        write_workspaces_table(settings)
        run_dbt(settings, *BUILD)  # the pipeline's build: the dbt unit tests run in the model tests
        return Built(home, env, settings, truth(store))


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Built:
    return build(tmp_path_factory.mktemp("insights"), "tiny")


def materialize(built: Built, workspace_id: str, llm_env: dict[str, str] | None = None) -> dg.ExecuteInProcessResult:
    """The insights assets of the real Definitions (loaded with `llm_env`) for one workspace."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in {**built.env, **(llm_env or NO_LLM)}.items():
            patch.setenv(key, value)
        import pipelines.definitions

        defs = importlib.reload(pipelines.definitions).defs
        assets = [a for a in defs.resolve_asset_graph().assets_defs if a.is_materializable]
        keys = [key for a in assets for key in a.keys if key.path[0] == "insights"]
        return dg.materialize(assets, selection=keys, partition_key=workspace_id,
                              instance=dg.DagsterInstance.ephemeral(),
                              run_config={"ops": {"insights__reports": {"config": {"week": WEEK}}}})


@pytest.fixture(scope="module")
def insights(built) -> Built:
    for workspace_id in built.truth["workspaces"]:
        assert materialize(built, workspace_id).success
    return built


def counts(warehouse: Warehouse) -> dict[str, dict[str, int]]:
    return {table: dict(warehouse.query(f"select workspace_id, count(*) as n from {table} group by workspace_id")
                        .itertuples(index=False)) for table in TABLES}


def test_reruns_change_no_row_counts(insights, monkeypatch):
    before = counts(insights.warehouse)
    assert set(before["insights.reports"]) == set(insights.truth["workspaces"])
    assert all(before["insights.anomalies"].values()) and all(before["insights.anomaly_drivers"].values())
    drivers = "select * from insights.anomaly_drivers order by anomaly_id, rank"
    stored = insights.warehouse.query(drivers)
    forecasts = "select * exclude (made_at) from insights.forecasts order by workspace_id, metric, date"
    forecast = insights.warehouse.query(forecasts)
    # One workspace's drivers forget what they were computed from, so the rerun explains them afresh;
    # the others' inputs are unchanged, so it reuses their rows. Both ways give the rows stored.
    fresh = "demo-saas"
    with insights.warehouse.transaction() as statements:
        statements.execute("update insights.anomaly_drivers set inputs_digest = null where workspace_id = %s",
                           [fresh])
    # the reports' charts were drawn from these figures: read back from the week's folder, not drawn again
    pngs = {path: path.read_bytes() for path in (insights.home / "reports").rglob("*.png")}
    assert len(pngs) >= len(insights.truth["workspaces"])
    drawn = charts_drawn(monkeypatch)
    for workspace_id in insights.truth["workspaces"]:
        result = materialize(insights, workspace_id)
        assert result.success
        found = {event.asset_key: event.metadata for event in result.asset_materializations_for_node("find_insights")}
        metadata = found[dg.AssetKey(["insights", "anomaly_drivers"])]
        explained = metadata["explained_anomalies"].value
        assert explained > 0
        assert metadata["reused_anomalies"].value == (0 if workspace_id == fresh else explained)
        # nothing changed since the first run: every forecast is kept, none fitted again
        metadata = found[dg.AssetKey(["insights", "forecasts"])]
        assert metadata["reused"].value == metadata["metrics"].value == ", ".join(FORECAST_METRICS[workspace_id])
    assert counts(insights.warehouse) == before
    assert drawn == [] and {path: path.read_bytes() for path in (insights.home / "reports").rglob("*.png")} == pngs
    # every forecast metric's estimate is stored for the next refresh to forward, made on its origin
    fits = insights.warehouse.query("select f.workspace_id, f.model, f.estimated_on, max(o.origin) as origin "
                                    "from insights.model_fits f join insights.forecasts o on o.workspace_id = "
                                    "f.workspace_id and f.model = 'forecast:' || o.metric group by all")
    assert {(row.workspace_id, row.model) for row in fits.itertuples()} >= {
        (workspace_id, f"forecast:{metric}") for workspace_id, metrics in FORECAST_METRICS.items()
        for metric in metrics if metric != "mrr"}  # MRR's smoothing is estimated every time
    assert (pd.to_datetime(fits["estimated_on"]) == pd.to_datetime(fits["origin"])).all()
    pd.testing.assert_frame_equal(insights.warehouse.query(drivers), stored)
    pd.testing.assert_frame_equal(insights.warehouse.query(forecasts), forecast)
    ids = insights.warehouse.query("select anomaly_id, count(*) as n from insights.anomalies group by anomaly_id")
    assert ids["n"].max() == 1


def copied(built: Built, home: Path) -> Built:
    """The built warehouse (with whatever insights it holds) and its reports, copied under `home`."""
    home.mkdir(parents=True)
    for path in built.home.glob("warehouse.duckdb*"):
        shutil.copy2(path, home / path.name)
    if (built.home / "reports").exists():
        shutil.copytree(built.home / "reports", home / "reports")
    env = {**built.env, "ABOS_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        return Built(home, env, load_settings(), built.truth)


@pytest.mark.slow
def test_an_incremental_run_after_a_change_writes_what_a_run_from_scratch_writes(insights, tmp_path):
    """A refresh after a change starts from the last run's insights (stored drivers, forecasts and
    their fits, the kept-open warehouse, the report's files) and must write what a run without any of
    them writes on the same data: the same anomalies and drivers to the bit, the same opportunities,
    customer histories, report facts and charts, and the same forecasts of the series the change left
    alone (the changed ones are forwarded from the stored fit, docs/metrics.md, "Forecasts")."""
    incremental = copied(insights, tmp_path / "incremental")
    # The change: the US store's net sales of a day in the reported week and of the last day 20 times
    # (its slices too, so the drivers split the new gap), and a SaaS day's new MRR halved.
    with incremental.warehouse.transaction() as statements:
        for table in ("ecommerce_daily_metrics", "ecommerce_daily_slices"):
            where = "workspace_id = 'demo-us-store' and (date = '2026-11-20' or date = (select max(date) from " \
                    "metrics.ecommerce_daily_metrics where workspace_id = 'demo-us-store'))"
            column = "net_sales" if table == "ecommerce_daily_metrics" else "value"
            extra = "" if table == "ecommerce_daily_metrics" else " and metric = 'net_sales'"
            statements.execute(f"update metrics.{table} set {column} = 20 * {column} where {where}{extra}")
        statements.execute("update metrics.saas_daily_metrics set new_mrr = new_mrr / 2 "
                           "where workspace_id = 'demo-saas' and date = '2026-11-18'")
    scratch = copied(incremental, tmp_path / "scratch")
    with scratch.warehouse.transaction() as statements:
        statements.execute("drop schema insights cascade")
    shutil.rmtree(scratch.home / "reports")
    for built in (incremental, scratch):
        for workspace_id in insights.truth["workspaces"]:
            assert materialize(built, workspace_id).success

    def rows(built: Built, table: str, order: str, *dropped: str) -> pd.DataFrame:
        found = built.warehouse.query(f"select * from insights.{table} order by {order}")
        return found.drop(columns=list(dropped))

    for table, order, dropped in (("anomalies", "anomaly_id", ()), ("anomaly_drivers", "anomaly_id, rank", ()),
                                  ("opportunities", "opportunity_id", ("found_at",))):
        pd.testing.assert_frame_equal(rows(incremental, table, order, *dropped), rows(scratch, table, order, *dropped),
                                      check_exact=True, obj=table)
    # the change moved the anomalies, so the comparison says something
    before = insights.warehouse.query("select anomaly_id, value from insights.anomalies order by anomaly_id")
    found = rows(incremental, "anomalies", "anomaly_id")
    assert not before.equals(found[["anomaly_id", "value"]])
    assert ((found["workspace_id"] == "demo-us-store") & (found["metric"] == "net_sales")
            & (pd.to_datetime(found["date"]) == pd.Timestamp("2026-11-20"))).any()
    histories = ["workspace_id", "person_id", "as_of", "first_order_date", "last_order_date", "frequency",
                 "recency_days", "age_days", "monetary"]  # predictions: warm-started, docs/metrics.md
    pd.testing.assert_frame_equal(rows(incremental, "customer_values", "workspace_id, person_id")[histories],
                                  rows(scratch, "customer_values", "workspace_id, person_id")[histories])
    # Forecasts: a series the change left alone keeps its stored rows, which equal a fresh estimate;
    # the US store's are forwarded from the stored fit (docs/metrics.md, "Forecasts"), which a 20-fold
    # day moves further than an ordinary one: the same days and origins, from the same inputs.
    forwarded = rows(incremental, "forecasts", "workspace_id, metric, date", "made_at")
    fresh = rows(scratch, "forecasts", "workspace_id, metric, date", "made_at")
    alone = fresh["workspace_id"] != "demo-us-store"
    pd.testing.assert_frame_equal(forwarded[alone], fresh[alone], check_exact=True, obj="forecasts")
    keys = ["workspace_id", "metric", "date", "origin", "days_ahead", "inputs_digest"]
    pd.testing.assert_frame_equal(forwarded[keys], fresh[keys], obj="forecasts")
    for workspace_id in insights.truth["workspaces"]:
        folders = [built.home / "reports" / workspace_id / WEEK for built in (incremental, scratch)]
        facts = [json.loads((folder / "facts.json").read_text()) for folder in folders]
        assert {**facts[0], "outlook": None} == {**facts[1], "outlook": None}  # the outlook reads the forecasts
        for name in ("chart.png", RETENTION_FILE):
            assert (folders[0] / name).read_bytes() == (folders[1] / name).read_bytes(), (workspace_id, name)


def week_sql(warehouse: Warehouse, table: str, workspace_id: str, start: str, end: str) -> dict[str, float]:
    """A week's figures straight from a metric table: sums, the last day of stocks, AOV and ARPA."""
    if table == "ecommerce_daily_metrics":
        sql = """select sum(net_sales) as net_sales, sum(gross_sales) as gross_sales, sum(orders) as orders,
                        sum(refunds) as refunds, (sum(gross_sales) - sum(discounts)) / sum(orders) as aov
                 from metrics.ecommerce_daily_metrics where workspace_id = %s and date between %s and %s"""
    else:
        sql = """select mrr, active_customers, mrr / active_customers as arpa,
                        (select sum(new_mrr) from metrics.saas_daily_metrics w
                         where w.workspace_id = d.workspace_id and w.date between %s and %s) as new_mrr
                 from metrics.saas_daily_metrics d where workspace_id = %s and date = %s"""
        return warehouse.query(sql, [start, end, workspace_id, end]).iloc[0].to_dict()
    return warehouse.query(sql, [workspace_id, start, end]).iloc[0].to_dict()


@pytest.mark.parametrize("workspace_id, table", [("demo-us-store", "ecommerce_daily_metrics"),
                                                 ("demo-br-store", "ecommerce_daily_metrics"),
                                                 ("demo-saas", "saas_daily_metrics")])
def test_report_numbers_equal_independent_queries(insights, workspace_id, table):
    row = insights.warehouse.query("select * from insights.reports where report_id = %s",
                                   [f"{workspace_id}:{WEEK}"]).iloc[0]
    assert (str(row["period_start"])[:10], str(row["period_end"])[:10]) == ("2026-11-16", "2026-11-22")
    facts = json.loads(Path(row["facts_path"]).read_text())
    assert Path(row["html_path"]).is_file() and Path(row["chart_path"]).read_bytes()[:4] == b"\x89PNG"
    assert Path(row["html_path"]).parent == insights.home / "reports" / workspace_id / WEEK
    shown = {metric["name"]: metric for metric in facts["metrics"]}
    this = week_sql(insights.warehouse, table, workspace_id, "2026-11-16", "2026-11-22")
    last = week_sql(insights.warehouse, table, workspace_id, "2026-11-09", "2026-11-15")
    for name in this:
        if name == "active_customers" or name == "orders":
            assert shown[name]["current"] == this[name] and shown[name]["previous"] == last[name]
        else:
            assert shown[name]["current"] == pytest.approx(float(this[name]), abs=0.005), name
            assert shown[name]["previous"] == pytest.approx(float(last[name]), abs=0.005), name
    # the week's anomalies in the report are the table's reported rows of that week, at most the
    # pack's alert budget, most at stake first; the count of all findings is the table's too
    in_week = insights.warehouse.query(
        "select count(*) as n, coalesce(sum(case when reported then 1 else 0 end), 0) as reported "
        "from insights.anomalies where workspace_id = %s and date between %s and %s",
        [workspace_id, "2026-11-16", "2026-11-22"])
    budget = pack_for(facts["workspace"]["vertical"]).alert_budget
    assert facts["counts"]["anomalies"] == in_week["reported"][0] <= budget
    assert facts["counts"]["anomalies_found"] == in_week["n"][0]
    ranks = [anomaly["event_rank"] for anomaly in facts["anomalies"]]
    assert ranks == sorted(ranks)
    assert row["summary_source"] == "template" and row["summary"] == template_summary(facts)
    assert row["summary_reason"] == "no LLM API key configured"


def faithful(request: dict) -> str:
    """A reply an honest model could write: numbers copied from the facts it was sent."""
    sent = OpenAIStandIn.facts_of(request)
    shown = {metric["name"]: metric["display"] for metric in sent["metrics"]}
    return (f"In {sent['week']['label']} net sales were {shown['net_sales']['current']}, "
            f"{shown['net_sales']['change']} on the week before, from {shown['orders']['current']} orders.")


def test_a_faithful_llm_reply_is_stored_and_no_key_stores_the_template(insights):
    with OpenAIStandIn() as llm:
        llm.reply(faithful)
        llm.prompt_tokens, llm.completion_tokens = 1200, 80
        result = materialize(insights, "demo-us-store", {"ABOS_LLM_API_KEY": "test-key",
                                                          "ABOS_LLM_BASE_URL": llm.base_url,
                                                          "ABOS_LLM_TIMEOUT_SECONDS": "5"})
        assert result.success and len(llm.requests) == 1
        reply = faithful(llm.requests[0].json)
    query = "select * from insights.reports where report_id = %s"
    row = insights.warehouse.query(query, [f"demo-us-store:{WEEK}"]).iloc[0]
    assert (row["summary"], row["summary_source"]) == (reply, "llm")
    assert (row["prompt_tokens"], row["completion_tokens"]) == (1200, 80)
    assert row["cost_usd"] == pytest.approx((1200 * 0.15 + 80 * 0.60) / 1e6)
    assert reply in Path(row["text_path"]).read_text()
    metadata = result.asset_materializations_for_node("insights__reports")[0].metadata
    assert metadata["summary_source"].value == "llm" and reply in metadata["preview"].value
    assert "data:image/png;base64," in metadata["preview"].value

    assert materialize(insights, "demo-us-store").success  # no key: the template, no error
    row = insights.warehouse.query(query, [f"demo-us-store:{WEEK}"]).iloc[0]
    facts = json.loads(Path(row["facts_path"]).read_text())
    assert (row["summary"], row["summary_source"]) == (template_summary(facts), "template")


def test_every_query_in_the_analysts_guide_runs_and_the_mrr_bridge_closes(insights):
    """docs/analysts.md's queries on the built warehouse; the MRR bridge checked against the daily table."""
    warehouse = insights.warehouse
    queries = documented_sql(ANALYSTS_DOC.read_text())
    results = {query: warehouse.query(query) for query in queries}  # raises on a query that does not run
    assert all(len(frame.columns) for frame in results.values())
    bridge = next(frame for query, frame in results.items() if "MRR bridge" in query).iloc[0]
    daily = warehouse.query("select date, mrr, net_new_mrr from metrics.saas_daily_metrics "
                            "where workspace_id = 'demo-saas' and date between '2026-09-30' and '2026-10-31' "
                            "order by date")
    assert bridge["opening_mrr"] == pytest.approx(daily["mrr"].iloc[0]) and bridge["opening_mrr"] > 0
    assert bridge["closing_mrr"] == pytest.approx(daily["mrr"].iloc[-1])
    assert bridge["net_new"] == pytest.approx(daily["net_new_mrr"].iloc[1:].sum())
    movements = bridge["new"] + bridge["expansion"] + bridge["reactivation"] + bridge["contraction"] + bridge["churned"]
    assert movements == pytest.approx(bridge["net_new"])
    assert bridge["opening_mrr"] + bridge["net_new"] + bridge["fx_effect"] == pytest.approx(bridge["closing_mrr"])
    assert bridge["churned"] <= 0 <= bridge["new"]  # the bridge subtracts what was lost
    slices = next(frame for query, frame in results.items() if "daily_slices" in query)
    assert len(slices) > 0


def test_the_table_reference_documents_every_column_of_the_built_tables(insights):
    """Every table of docs/analysts.md's reference has exactly its documented columns in the warehouse."""
    manifest = json.loads(ensure_manifest().read_text())
    documented = {(node["schema"], node["name"]): list(node["columns"])
                  for node in [*manifest["nodes"].values(), *manifest["sources"].values()]
                  if node["resource_type"] in ("model", "source") and node["schema"] in SCHEMAS}
    built = insights.warehouse.query(
        "select table_schema, table_name, column_name from information_schema.columns "
        "where table_schema in ('marts', 'metrics', 'insights') order by table_schema, table_name, ordinal_position")
    found = {key: list(group["column_name"]) for key, group in built.groupby(["table_schema", "table_name"])}
    # The delivery tables appear once a report is delivered (the unit tests hold them to the code), the
    # questions table once a question is asked (here, if a test of this module asked one before: then its
    # columns are checked below like every other table's).
    later = {("insights", "deliveries"), ("insights", "delivery_leases"), ("insights", "questions")}
    assert set(found) - later == set(documented) - later
    for key, columns in found.items():
        assert sorted(columns) == sorted(documented[key]), key


FORECAST_METRICS = {"demo-us-store": ["net_sales", "orders"], "demo-br-store": ["net_sales", "orders"],
                    "demo-saas": ["mrr"]}


def test_forecasts_reach_13_weeks_with_nested_intervals_and_the_report_says_where_the_month_heads(insights):
    warehouse = insights.warehouse
    for workspace_id, metrics in FORECAST_METRICS.items():
        rows = warehouse.query("select * from insights.forecasts where workspace_id = %s order by metric, date",
                               [workspace_id])
        assert sorted(rows["metric"].unique()) == sorted(metrics)
        table = "saas_daily_metrics" if workspace_id == "demo-saas" else "ecommerce_daily_metrics"
        last = warehouse.query(f"select max(date) as last from metrics.{table} where workspace_id = %s",
                               [workspace_id])["last"].iloc[0]
        for _, one in rows.groupby("metric"):
            assert one["days_ahead"].tolist() == list(range(1, 92))
            # the last day of the table, or yesterday when the table reaches today (still running)
            assert 0 <= (pd.Timestamp(last) - pd.Timestamp(one["origin"].iloc[0])).days <= 1
            assert (one["lower_95"] <= one["lower_80"]).all() and (one["lower_80"] <= one["forecast"]).all()
            assert (one["forecast"] <= one["upper_80"]).all() and (one["upper_80"] <= one["upper_95"]).all()
        # The report's week ends on Sunday 2026-11-22: its readers are in November. November's
        # projection = its actual days to the origin + the forecast of the rest, straight from SQL.
        facts = report_facts(insights, workspace_id)
        for outlook in facts["outlook"]:
            metric = outlook["metric"]
            forecast = rows[rows["metric"] == metric]
            origin = str(forecast["origin"].iloc[0])
            if metric == "mrr":  # a stock: the month's last day
                projected = float(warehouse.query(
                    f"select {metric} as v from metrics.{table} where workspace_id = %s and date = '2026-11-30'",
                    [workspace_id])["v"].iloc[0]) if origin >= "2026-11-30" else \
                    float(forecast.loc[forecast["date"].astype(str) == "2026-11-30", "forecast"].iloc[0])
                previous = warehouse.query(f"select {metric} as v from metrics.{table} where workspace_id = %s "
                                           "and date = '2026-10-31'", [workspace_id])["v"].iloc[0]
            else:
                so_far = warehouse.query(f"select sum({metric}) as v from metrics.{table} where workspace_id = %s "
                                         "and date between '2026-11-01' and %s", [workspace_id, origin])["v"].iloc[0]
                rest = forecast.loc[forecast["date"].astype(str) <= "2026-11-30", "forecast"].sum()
                projected = float(so_far) + float(rest)
                previous = warehouse.query(f"select sum({metric}) as v from metrics.{table} where workspace_id = %s "
                                           "and date between '2026-10-01' and '2026-10-31'",
                                           [workspace_id])["v"].iloc[0]
            assert outlook["month"] == "2026-11"
            rounding = 0.5 if metric == "orders" else 0.005  # counts are shown whole, money in cents
            assert outlook["projected"] == pytest.approx(projected, abs=rounding)
            assert outlook["previous_month"] == pytest.approx(float(previous), abs=rounding)
            assert outlook["change_pct"] == pytest.approx((projected / float(previous) - 1) * 100, abs=1e-3)
            # the same projection asked on the day after the origin, read through metrics.forecast_metrics
            # (the shops' data ends in November; the SaaS table runs to today, so its month may be later)
            asked_on = pd.Timestamp(origin) + pd.Timedelta(days=1, hours=18)  # evening UTC: that day everywhere
            month = pd.Period(asked_on, freq="M")
            if str(month) != "2026-11":
                days = forecast[pd.to_datetime(forecast["date"]).dt.to_period("M") == month]
                so_far = 0.0 if metric == "mrr" or pd.Timestamp(origin).to_period("M") != month else float(
                    warehouse.query(f"select sum({metric}) as v from metrics.{table} where workspace_id = %s and "
                                    "date >= %s and date <= %s", [workspace_id, str(month.start_time.date()),
                                                                  origin])["v"].iloc[0])
                projected = float(days["forecast"].iloc[-1]) if metric == "mrr" else so_far + days["forecast"].sum()
            asked = ask(f"projected {metric.replace('_', ' ')} this month",
                        load_workspaces(insights.settings.workspaces_file).get(workspace_id), warehouse,
                        now=asked_on.tz_localize("UTC").to_pydatetime())
            assert asked.query["metrics"] == [f"{metric}_forecast"], asked.text
            assert asked.query["range"] == {"start": str(month.start_time.date()), "end": str(month.end_time.date()),
                                            "partial": False}
            assert asked.values[0][f"{metric}_forecast"] == pytest.approx(projected, abs=1e-4), asked.text
        assert [outlook["metric"] for outlook in facts["outlook"]] == sorted(metrics)
    text = Path(report_row(insights, "demo-us-store")["text_path"]).read_text()
    assert "Net sales: on track for $" in text and "this month (" in text and "vs last month)" in text
    assert "a caminho de R$" in Path(report_row(insights, "demo-br-store")["text_path"]).read_text()


def report_row(built: Built, workspace_id: str) -> pd.Series:
    return built.warehouse.query("select * from insights.reports where report_id = %s",
                                 [f"{workspace_id}:{WEEK}"]).iloc[0]


def report_facts(built: Built, workspace_id: str) -> dict[str, Any]:
    return json.loads(Path(report_row(built, workspace_id)["facts_path"]).read_text())


def stripe_objects(built: Built, kind: str) -> list[dict[str, Any]]:
    """The simulator's own objects of the SaaS business (its truth), as the sandbox stores them."""
    store = SandboxStore(next(built.home.glob("*.sqlite")))
    return [obj.body for obj in store.iter_objects("demo-saas", "stripe", kind)]


def test_opportunities_rank_money_at_stake_and_reach_the_report_and_slack(insights):
    warehouse = insights.warehouse
    found = warehouse.query("select * from insights.opportunities order by workspace_id, rank")
    assert set(found["workspace_id"]) <= set(FORECAST_METRICS)
    for workspace_id, rows in found.groupby("workspace_id"):
        assert rows["rank"].tolist() == list(range(1, len(rows) + 1))
        assert rows["money_at_stake"].is_monotonic_decreasing and (rows["money_at_stake"] > 0).all()
        assert rows["action"].str.len().min() > 20 and rows["opportunity_id"].is_unique
        facts = report_facts(insights, workspace_id)
        top = rows.head(5)
        assert [item["subject"] for item in facts["opportunities"]] == top["subject"].tolist()
        assert [item["action"] for item in facts["opportunities"]] == top["action"].tolist()
    # The simulator's truth: every paying customer whose subscription it left past_due, or whose
    # cancellation it requested, is a churn risk, with 12 months of that MRR at stake.
    risks = found[(found["workspace_id"] == "demo-saas") & (found["kind"] == "churn_risk")].set_index("subject_id")
    subscriptions = stripe_objects(insights, "subscription")
    mrr = warehouse.query("select customer_id, current_mrr from marts.saas_customers where workspace_id = 'demo-saas'")
    mrr = dict(zip(mrr["customer_id"], mrr["current_mrr"].astype(float)))
    past_due = {sub["customer"] for sub in subscriptions if sub["status"] == "past_due" and mrr.get(sub["customer"])}
    paid = set(warehouse.query("select distinct customer_id from marts.mrr_movements "
                               "where workspace_id = 'demo-saas'")["customer_id"])  # had MRR at some point
    leaving = {sub["customer"] for sub in subscriptions
               if sub["status"] in ("active", "past_due") and sub.get("cancel_at_period_end") and sub["customer"] in paid}
    assert past_due and leaving
    assert past_due | leaving <= set(risks.index)
    for customer in past_due:
        assert risks.loc[customer, "money_at_stake"] >= 12 * mrr[customer] - 0.01
        assert "past due" in risks.loc[customer, "evidence"]
    assert all("cancellation requested" in risks.loc[customer, "evidence"] for customer in leaving)
    message = report_message(report_facts(insights, "demo-saas"), None, channel="#c", key="k", report_id="r")
    shown = "\n".join(block["text"]["text"] for block in message["blocks"] if block.get("text"))
    assert "Top risks and opportunities" in shown and risks.sort_values("rank")["action"].iloc[0] in shown
    assert "MRR: on track for" in shown


def test_customer_values_cover_every_buyer_and_predict_the_held_out_weeks(insights):
    """The asset's table holds every person with a sold order, fitted (tiny's shops have hundreds of
    customers). A backtest through the same code: fitted on the history up to 60 days before the last
    day, the next 60 days' predicted purchase days of those customers are within 30% of the days they
    bought (measured on tiny: 103 vs 82 in the US store, 43 vs 40 in the Brazilian one), and their net
    sales within a factor 2 (24,684 vs 13,008 USD; 12,438 vs 8,099 BRL: Gamma-Gamma overestimates the
    repeat order value here, docs/metrics.md)."""
    warehouse = insights.warehouse
    for workspace_id, currency in (("demo-us-store", "USD"), ("demo-br-store", "BRL")):
        stored = warehouse.query("select * from insights.customer_values where workspace_id = %s", [workspace_id])
        buyers = warehouse.query("select distinct person_id from marts.orders where workspace_id = %s "
                                 "and not is_cancelled and person_id is not null", [workspace_id])
        assert sorted(stored["person_id"]) == sorted(buyers["person_id"])
        assert stored["predicted_value_12m"].notna().all() and (stored["predicted_value_12m"] > 0).all()
        assert stored["probability_alive"].between(0, 1).all() and (stored["currency"] == currency).all()
        last = pd.Timestamp(stored["as_of"].iloc[0]).date()
        cut = last - timedelta(days=60)
        fitted, params = workspace_customer_values(warehouse.query, workspace_id, currency, cut, horizon_days=60)
        assert "skipped" not in params
        actual = warehouse.query(
            "select person_id, count(distinct order_date) as days, sum(discounted_sales) as net_sales from marts.orders "
            "where workspace_id = %s and not is_cancelled and order_date > %s and order_date <= %s group by person_id",
            [workspace_id, cut, last])
        held_out = fitted.merge(actual, on="person_id", how="left").fillna({"days": 0, "net_sales": 0})
        assert held_out["expected_purchases_12m"].sum() == pytest.approx(held_out["days"].sum(), rel=0.30)
        ratio = held_out["predicted_value_12m"].sum() / float(held_out["net_sales"].astype(float).sum())
        assert 0.5 < ratio < 2.0, ratio


def test_the_retention_chart_is_written_next_to_the_report(insights):
    for workspace_id in FORECAST_METRICS:
        chart = Path(report_row(insights, workspace_id)["html_path"]).parent / RETENTION_FILE
        assert chart.read_bytes()[:4] == b"\x89PNG"


def test_the_slice_tables_split_exactly_the_registrys_metrics_by_their_dimensions(built):
    """The registry (pipelines/packs) says which metric splits by which dimension; the slice models must agree."""
    for vertical in ("ecommerce", "saas"):
        pack = pack_for(vertical)
        # ratios are not sliced: their parts are, by every dimension of the ratio
        declared = {(metric.name, dimension) for metric in pack.metrics for dimension in metric.dimensions
                    if metric.ratio is None}
        assert {(part, dimension) for metric in pack.metrics if metric.ratio for part in metric.measures
                for dimension in metric.dimensions} <= declared
        for table in pack.slice_tables:
            found = set(built.warehouse.query(f"select distinct metric, dimension from metrics.{table}")
                        .itertuples(index=False, name=None))
            assert found <= declared, table
            # zero slices are left out: a declared split is missing only where the metric is always 0
            here = {(metric, dimension) for metric, dimension in declared if pack.dimension(dimension).table == table}
            for metric, _ in here - found:
                assert built.warehouse.query(f"select sum(abs({metric})) as total from metrics."
                                             f"{pack.metric(metric).table}")["total"].iloc[0] == 0, (table, metric)


def test_the_pair_slices_split_the_registrys_pairs_and_add_up_to_the_slices(built):
    """Each pair slice table holds only the pairs the registry declares, and a pair summed over either
    of its dimensions is the other dimension's slice: exactly for the shop's money and every count
    (the same converted cells), to the 6 decimals each row is stored with for SaaS money (converted
    to 9 decimals per plan and currency, so a sum of stored rows can differ in the 6th)."""
    for vertical in ("ecommerce", "saas"):
        pack = pack_for(vertical)
        declared = {(metric.name, *pack.pair(*pair).dimensions) for metric in pack.metrics for pair in metric.pairs
                    if metric.ratio is None}
        (table,) = pack.pair_tables
        pairs = built.warehouse.query(f"select * from metrics.{table}")
        found = set(pairs[["metric", "dimension", "second_dimension"]].itertuples(index=False, name=None))
        assert found <= declared
        for metric, *_ in declared - found:  # zero pairs are left out: missing only where the metric is always 0
            assert built.warehouse.query(f"select sum(abs({metric})) as total from metrics.{pack.table}")[
                "total"].iloc[0] == 0, (table, metric)
        slices = built.warehouse.query(f"select * from metrics.{pack.slice_tables[0]}")
        for (metric, first, second), rows in pairs.groupby(["metric", "dimension", "second_dimension"]):
            for side, column in ((first, "dimension_value"), (second, "second_dimension_value")):
                summed = rows.groupby(["workspace_id", "date", column])["value"].sum().astype(float)
                kept = slices[(slices["metric"] == metric) & (slices["dimension"] == side)]
                expected = kept.set_index(["workspace_id", "date", "dimension_value"])["value"].astype(float)
                summed.index.names = expected.index.names
                both = pd.concat([summed.rename("pairs"), expected.rename("slices")], axis=1).fillna(0.0)
                tolerance = 1e-5 if vertical == "saas" else 1e-9
                assert (both["pairs"] - both["slices"]).abs().max() <= tolerance, (table, metric, side)


ASKED_AT = datetime(2026, 11, 25, 20, tzinfo=timezone.utc)  # Wednesday afternoon in New York and Los Angeles


def test_answers_to_questions_match_the_metric_tables(built):
    """`ask` on the built warehouse: each number recomputed here from the metric tables with pandas."""
    workspaces, warehouse = load_workspaces(built.settings.workspaces_file), built.warehouse
    shop = warehouse.query("select * from metrics.ecommerce_daily_metrics where workspace_id = 'demo-us-store'")
    shop["date"] = pd.to_datetime(shop["date"]).dt.date

    def total(frame, column, first, last):
        return frame[(frame["date"] >= date.fromisoformat(first)) & (frame["date"] <= date.fromisoformat(last))][
            column].sum()

    answer = ask("net sales last week vs the week before", workspaces.get("demo-us-store"), warehouse, now=ASKED_AT)
    assert answer.status == "answered" and answer.query["range"] == {"start": "2026-11-16", "end": "2026-11-22",
                                                                     "partial": False}
    assert answer.values[0]["net_sales"] == pytest.approx(total(shop, "net_sales", "2026-11-16", "2026-11-22"))
    assert answer.values[0]["compared"]["net_sales"] == pytest.approx(total(shop, "net_sales", "2026-11-09",
                                                                            "2026-11-15"))
    cited = answer.citations
    assert cited["timezone"] == "America/New_York" and cited["tables"] == ["metrics.metric_values"]
    assert cited["definitions"]["Net sales"].startswith("gross_sales − discounts − refunds")
    assert cited["data_through"] == shop["date"].max().isoformat() and cited["last_sync"]["shopify"]

    slices = warehouse.query("select date, metric, dimension_value, value from metrics.ecommerce_daily_slices "
                             "where workspace_id = 'demo-us-store' and dimension = 'country' "
                             "and date between '2026-10-01' and '2026-10-31'")
    parts = slices.pivot_table(index="dimension_value", columns="metric", values="value", aggfunc="sum").fillna(0)
    expected = ((parts["gross_sales"] - parts["discounts"]) / parts["orders"]).sort_values(ascending=False)
    answer = ask("AOV by country last month", workspaces.get("demo-us-store"), warehouse, now=ASKED_AT)
    assert [row["dimension_value"] for row in answer.values] == list(expected.index)
    assert [row["aov"] for row in answer.values] == pytest.approx(list(expected))

    saas = warehouse.query("select * from metrics.saas_daily_metrics where workspace_id = 'demo-saas'")
    saas["date"] = pd.to_datetime(saas["date"]).dt.date
    october_31 = saas.set_index("date").loc[date(2026, 10, 31)]
    answer = ask("ARPA last month", workspaces.get("demo-saas"), warehouse, now=ASKED_AT)
    assert answer.values[0]["arpa"] == pytest.approx(october_31["mrr"] / october_31["active_customers"])
    # RFM segments: last week's figure of a level is its snapshot's (Sunday Nov 22)
    answer = ask("customers by segment last week", workspaces.get("demo-us-store"), warehouse, now=ASKED_AT)
    segments = warehouse.query("select dimension_value, value from metrics.ecommerce_segment_slices where "
                               "workspace_id = 'demo-us-store' and metric = 'segment_customers' and date = '2026-11-22'")
    assert answer.query["metrics"] == ["segment_customers"] and len(segments) >= 4
    assert {row["dimension_value"]: row["segment_customers"] for row in answer.values} == pytest.approx(
        dict(zip(segments["dimension_value"], segments["value"].astype(float))))
    # cohort retention: this year's cohorts' parts added up, the cohorts still in month 1 counting in neither
    answer = ask("month 1 retention this year", workspaces.get("demo-us-store"), warehouse, now=ASKED_AT)
    parts = warehouse.query("select sum(retained_customers_m1) as kept, sum(cohort_customers_m1) as cohort from "
                            "metrics.ecommerce_cohort_metrics where workspace_id = 'demo-us-store' and date >= '2026-01-01'")
    assert parts["cohort"].iloc[0] > 0
    assert answer.values[0]["customer_retention_m1"] == pytest.approx(parts["kept"].iloc[0] / parts["cohort"].iloc[0])
    answer = ask("MRR by plan last week", workspaces.get("demo-saas"), warehouse, now=ASKED_AT)
    plans = warehouse.query("select dimension_value, value from metrics.saas_daily_slices where workspace_id = "
                            "'demo-saas' and dimension = 'plan' and metric = 'mrr' and date = '2026-11-22'")
    assert {row["dimension_value"]: row["mrr"] for row in answer.values} == pytest.approx(
        dict(zip(plans["dimension_value"], plans["value"])))
    assert sum(row["mrr"] for row in answer.values) == pytest.approx(saas.set_index("date").loc[date(2026, 11, 22),
                                                                                               "mrr"])

    # two dimensions: each cell from the pair slices, the cells adding up to the month's net sales
    pairs = warehouse.query("select dimension_value, second_dimension_value, value from metrics.ecommerce_daily_pair_slices "
                            "where workspace_id = 'demo-us-store' and metric = 'net_sales' and dimension = 'product' "
                            "and second_dimension = 'country' and date between '2026-10-01' and '2026-10-31'")
    cells = pairs.groupby(["second_dimension_value", "dimension_value"])["value"].sum().astype(float)
    answer = ask("net sales by country and product last month", workspaces.get("demo-us-store"), warehouse,
                 now=ASKED_AT)
    assert answer.query["dimensions"] == ["country", "product"] and answer.columns[:2] == ["country", "product"]
    assert len(answer.values) == min(len(cells), 50)
    assert {(row["dimension_value"], row["dimension_value_2"]): row["net_sales"] for row in answer.values} == \
        pytest.approx(cells.sort_values(ascending=False).head(50).to_dict())
    assert cells.sum() == pytest.approx(total(shop, "net_sales", "2026-10-01", "2026-10-31"))
    answer = ask("net new MRR by movement and plan last month", workspaces.get("demo-saas"), warehouse, now=ASKED_AT)
    assert sum(row["net_new_mrr"] for row in answer.values) == pytest.approx(
        saas[(saas["date"] >= date(2026, 10, 1)) & (saas["date"] <= date(2026, 10, 31))]["net_new_mrr"].sum())


def test_abos_ask_answers_in_json_and_refuses_another_workspace(built, capsys):
    with pytest.MonkeyPatch.context() as patch:
        for key, value in built.env.items():
            patch.setenv(key, value)
        assert cli_main(["ask", "new MRR last month", "--workspace", "demo-saas", "--json"]) == 0
        answered = json.loads(capsys.readouterr().out)
        assert cli_main(["ask", "new MRR last month for demo-us-store", "--workspace", "demo-saas"]) == 2
        refused = capsys.readouterr().out
    month = answered["query"]["range"]
    new_mrr = built.warehouse.query(
        "select sum(new_mrr) as total from metrics.saas_daily_metrics where workspace_id = 'demo-saas' "
        "and date between %s and %s", [month["start"], month["end"]])["total"].iloc[0]
    assert answered["status"] == "answered" and answered["values"][0]["new_mrr"] == pytest.approx(new_mrr)
    assert "MRR" in answered["text"] and answered["citations"]["last_sync"]["stripe"]
    assert refused.startswith("I can only answer questions about this workspace's own metrics")


def test_suggested_questions_follow_the_recent_anomalies_and_each_answers(insights, tmp_path, capsys):
    workspaces, warehouse = load_workspaces(insights.settings.workspaces_file), insights.warehouse
    for workspace_id in insights.truth["workspaces"]:
        workspace = workspaces.get(workspace_id)
        found = warehouse.query("select metric, date, rule, value from insights.anomalies where workspace_id = %s "
                                "and reported and date >= %s order by date desc, event_rank, metric",
                                [workspace_id, ASKED_AT.date() - timedelta(days=history.ANOMALY_DAYS)])
        found["date"] = pd.to_datetime(found["date"]).dt.date
        firsts = found.drop_duplicates(["metric", "date"])  # one suggestion per metric and day
        offered = history.suggestions(warehouse, workspace, now=ASKED_AT, limit=50)
        from_anomalies = [s for s in offered if s.source == "anomaly"]
        pack = pack_for(workspace.vertical)
        assert [(s.question.split(" on ")[0].split(" by ")[0], s.question.split(" on ")[1][:10])
                for s in from_anomalies] == [(pack.metric(m).label, d.isoformat())
                                             for m, d in zip(firsts["metric"], firsts["date"])]
        assert [s.source for s in offered[len(from_anomalies):]] == ["pack"] * (len(offered) - len(from_anomalies))
        for suggestion in offered:
            answered = ask(suggestion.question, workspace, warehouse, now=ASKED_AT)
            assert answered.status == "answered", suggestion
        for suggestion, anomaly in zip(from_anomalies, firsts.itertuples()):
            if anomaly.rule == "band" and pack.metric(anomaly.metric).ratio is None:  # the day's value, split
                answered = ask(suggestion.question, workspace, warehouse, now=ASKED_AT)
                assert sum(row[anomaly.metric] for row in answered.values) == pytest.approx(anomaly.value), suggestion
    with pytest.MonkeyPatch.context() as patch:
        for key, value in insights.env.items():
            patch.setenv(key, value)
        assert cli_main(["ask", "--suggest", "--json", "--workspace", "demo-saas"]) == 0
        assert json.loads(capsys.readouterr().out)[-1]["source"] == "pack"
        assert cli_main(["ask", "new MRR by week last quarter", "--workspace", "demo-saas", "--json"]) == 0
        weekly = json.loads(capsys.readouterr().out)
    png = Path(weekly["chart"])
    assert png.parent == insights.settings.home / "ask" / "charts" / "demo-saas" and png.name.startswith(
        weekly["question_id"]) and png.read_bytes().startswith(b"\x89PNG")
    kept = history.recent(warehouse, "demo-saas", conversation="cli:default")
    assert kept[0].question_id == weekly["question_id"] and kept[0].chart == weekly["chart"]


def detection_scores(built: Built) -> dict[str, Any]:
    """Recall, false alerts and top drivers of the band rule against the injected anomalies."""
    warehouse = built.warehouse
    found = warehouse.query("select * from insights.anomalies where rule = 'band'")
    found["date"] = pd.to_datetime(found["date"])
    drivers = warehouse.query("select * from insights.anomaly_drivers where rank = 1").set_index("anomaly_id")
    injected = built.truth["anomalies"]
    hits, misses, wrong_drivers, explained = [], [], [], set()
    for anomaly in injected:
        start, end = pd.Timestamp(anomaly["start"]), pd.Timestamp(anomaly["end"])
        direction = anomaly["direction"]
        # The truth says "up" for more churn. A metric stored as negative amounts (churned MRR
        # before docs/metrics.md made it positive) falls when churn rises.
        stored = found.loc[(found["workspace_id"] == anomaly["workspace"]) & (found["metric"] == anomaly["metric"]),
                           "value"]
        if len(stored) and (stored <= 0).all() and (stored < 0).any():
            direction = {"up": "down", "down": "up"}[direction]
        match = found[(found["workspace_id"] == anomaly["workspace"]) & (found["metric"] == anomaly["metric"])
                      & found["date"].between(start, end) & (found["direction"] == direction)]
        if match.empty:
            misses.append(anomaly)
            continue
        hits.append(anomaly)
        explained |= set(match["anomaly_id"])
        top = [drivers.loc[i] for i in match["anomaly_id"] if i in drivers.index]
        if not any(d["dimension"] == anomaly["dimension"] and str(d["dimension_value"]).lower()
                   == str(anomaly["value"]).lower() for d in top):
            wrong_drivers.append((anomaly, [(d["dimension"], d["dimension_value"]) for d in top]))
    # "Elsewhere": any day outside every injected range of the same workspace (an injected event
    # legitimately moves related metrics too, e.g. a flash sale moves gross sales with units).
    covered = found.apply(lambda row: any(
        row["workspace_id"] == a["workspace"] and pd.Timestamp(a["start"]) <= row["date"] <= pd.Timestamp(a["end"])
        for a in injected), axis=1)
    false_alerts = found[~covered.astype(bool)]
    judged_metric_days = 0
    for workspace_id, spec in built.truth["workspaces"].items():
        pack = pack_for("ecommerce" if spec["source"] == "shopify" else "saas")
        metrics = [m for m in pack.metrics if not m.forecast_of]  # forecasts are days to come: nothing to judge
        daily = pd.concat([warehouse.query(f"select * from metrics.{table} where workspace_id = %s", [workspace_id])
                           .assign(date=lambda frame: pd.to_datetime(frame["date"])).set_index("date")
                           for table in dict.fromkeys(m.table for m in metrics)], axis=1)  # every table, by day
        series = daily[[m.name for m in metrics]]
        judged = detect_many(series.astype(float), sensitivity={m.name: m.sensitivity for m in metrics},
                             counts={m.name: m.counts for m in metrics})
        judged_metric_days += int(judged["status"].isin(["ok", "anomaly", "continuing"]).sum())
    everything = warehouse.query("select * from insights.anomalies")
    everything["week"] = pd.to_datetime(everything["date"]).dt.strftime("%G-W%V")
    reported = everything[everything["reported"].astype(bool)].groupby(["workspace_id", "week"]).size()
    return {"injected": len(injected), "hits": hits, "misses": misses, "wrong_drivers": wrong_drivers,
            "recall": len(hits) / len(injected), "false_alerts": false_alerts,
            "allowed_false_alerts": judged_metric_days / 90, "most_reported_in_a_week": int(reported.max()),
            "stored": len(everything), "reported": int(reported.sum())}


# On tiny only these two injections stand out of the day-to-day noise; the other three (a US
# checkout outage at ~10 orders a day, a flash sale at ~25 units a day, an EUR campaign on a new-MRR
# series that is mostly zeros) are within the band there and are scored on small below.
STRONG_ON_TINY = {("demo-br-store", "refunds"), ("demo-saas", "churned_mrr")}


def test_strong_injected_anomalies_are_found_and_explained_on_tiny(insights):
    scores = detection_scores(insights)
    assert {(a["workspace"], a["metric"]) for a in scores["hits"]} >= STRONG_ON_TINY
    assert scores["wrong_drivers"] == []


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Built:
    built = build(tmp_path_factory.mktemp("small"), "small")
    for workspace_id in built.truth["workspaces"]:
        assert materialize(built, workspace_id).success
    return built


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_the_detector_finds_the_injected_anomalies_and_their_drivers_on_small(small):
    scores = detection_scores(small)
    print({key: value for key, value in scores.items() if key not in ("hits", "misses", "false_alerts")},
          "false alerts:", len(scores["false_alerts"]))
    assert scores["recall"] >= 0.9, [(a["workspace"], a["metric"], a["start"]) for a in scores["misses"]]
    assert len(scores["false_alerts"]) <= scores["allowed_false_alerts"], \
        scores["false_alerts"][["workspace_id", "metric", "date", "value", "expected", "score"]].to_string()
    assert scores["wrong_drivers"] == []
    assert scores["most_reported_in_a_week"] <= 3  # the packs' alert budget


# The backtest: forecasts from six origins four weeks apart, each 13 weeks ahead, against what happened.
BACKTEST_ORIGINS = [date(2026, 3, 1) + pd.Timedelta(days=28 * i) for i in range(6)]


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_forecast_backtest_on_small_covers_what_the_intervals_say(small):
    """docs/metrics.md, "Forecasts": MAPE and interval coverage per metric on the small sandbox."""
    countries = {"demo-us-store": "US", "demo-br-store": "BR", "demo-saas": "US"}
    scores = {}
    for workspace_id, metrics in FORECAST_METRICS.items():
        table = "saas_daily_metrics" if workspace_id == "demo-saas" else "ecommerce_daily_metrics"
        daily = small.warehouse.query(f"select * from metrics.{table} where workspace_id = %s and date < %s "
                                      "order by date", [workspace_id, AS_OF])
        calendar = calendar_for(countries[workspace_id], pd.date_range("2024-01-01", "2027-03-31").date)
        for metric in metrics:
            results = backtest(daily_series(daily, metric), calendar, BACKTEST_ORIGINS, stock=metric == "mrr")
            scores[(workspace_id, metric)] = backtest_scores(results)
    for key, score in scores.items():
        print(key, {name: round(value, 3) for name, value in score.items()})
    for key, score in scores.items():
        assert 0.75 <= score["coverage_80"] <= 0.85, (key, score)
        assert score["coverage_95"] >= 0.9, (key, score)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_churn_risks_churn_far_more_than_other_customers_in_the_simulators_next_weeks(small):
    """The simulator's truth after the fact: move its clock 45 days on and see who left."""
    warehouse = small.warehouse
    flagged = set(warehouse.query("select subject_id from insights.opportunities "
                                  "where workspace_id = 'demo-saas' and kind = 'churn_risk'")["subject_id"])
    paying = set(warehouse.query("select customer_id from marts.saas_customers "
                                 "where workspace_id = 'demo-saas' and current_mrr > 0")["customer_id"])
    store = SandboxStore(small.home / "small.sqlite")
    advance(store, days=45)
    staying = {sub["customer"] for sub in stripe_objects(small, "subscription")
               if sub["status"] in ("active", "past_due") and not sub.get("cancel_at_period_end")}
    flagged_rate = len(flagged - staying) / len(flagged)
    others = paying - flagged
    others_rate = len(others - staying) / len(others)
    print(f"churned within 45 days: flagged {flagged_rate:.1%} of {len(flagged)}, others {others_rate:.1%} of "
          f"{len(others)}")
    assert flagged_rate >= 0.3 and flagged_rate >= 4 * others_rate
