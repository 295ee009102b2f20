"""Insights acceptance on the simulated demo businesses: sandbox → real sync → dbt build → the
insights assets of the real Definitions. The warehouse is built once for the module.

Numbers are checked against independent SQL on the metric tables and against the simulator's
injected anomalies (`abos sandbox truth`).
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from pipelines.sandbox.connection import sandbox_env
from pipelines.insights.anomalies import detect_many
from pipelines.insights.summaries import template_summary
from pipelines.packs import pack_for
from pipelines.sandbox.server import Sandbox, build_store
from pipelines.sandbox.simulation import truth
from pipelines.settings import Settings, load_settings
from pipelines.transform import ensure_manifest
from pipelines.transform.reference import ANALYSTS_DOC, SCHEMAS, documented_sql
from pipelines.warehouse import Warehouse
from pipelines.workspaces import load_workspaces
from tests.openai_standin import OpenAIStandIn
from tests.scenario import run_dbt, sync_all, write_workspaces_table

AS_OF = date(2026, 11, 25)  # a Wednesday: 2026-W47 (Nov 16-22) is the last complete week
WEEK = "2026-W47"
TABLES = ["insights.anomalies", "insights.anomaly_drivers", "insights.reports"]
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
        run_dbt(settings, "build")
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


def test_reruns_change_no_row_counts(insights):
    before = counts(insights.warehouse)
    assert set(before["insights.reports"]) == set(insights.truth["workspaces"])
    assert all(before["insights.anomalies"].values()) and all(before["insights.anomaly_drivers"].values())
    for workspace_id in insights.truth["workspaces"]:
        assert materialize(insights, workspace_id).success
    assert counts(insights.warehouse) == before
    ids = insights.warehouse.query("select anomaly_id, count(*) as n from insights.anomalies group by anomaly_id")
    assert ids["n"].max() == 1


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
    # the delivery tables appear once a report is delivered: the unit tests hold them to the code
    assert set(found) == set(documented) - {("insights", "deliveries"), ("insights", "delivery_leases")}
    for key, columns in found.items():
        assert sorted(columns) == sorted(documented[key]), key


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
        daily = warehouse.query(f"select * from metrics.{pack.table} where workspace_id = %s", [workspace_id])
        series = daily.assign(date=pd.to_datetime(daily["date"])).set_index("date")[list(pack.metric_names)]
        judged = detect_many(series.astype(float), sensitivity={m.name: m.sensitivity for m in pack.metrics},
                             counts={m.name: m.counts for m in pack.metrics})
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
