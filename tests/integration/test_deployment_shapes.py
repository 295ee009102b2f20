"""Deployment shapes through `abos run`'s path (the real Definitions, `run_all`), on DuckDB and Postgres.

Tenants come from tests/fixtures/deployment_shapes.json (hand-worked figures in its comment):
ecommerce-only, SaaS-only, both, a deployment whose only workspaces are connected but still empty,
and a shop added later to a running SaaS-only deployment. Each shape is one `abos run` (one dbt
build); the later shop is a second run over the SaaS-only deployment's warehouse. The default suite
runs the SaaS-only deployment and the shop added to it on DuckDB; every other shape and database is
behind the `slow` marker (`make test-slow`).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from pipelines.sandbox.server import build_store
from pipelines.transform import KEEP_INVOCATIONS
from pipelines.workspaces import load_workspaces
from tests.integration.test_ecommerce_models import with_password
from tests.scenario import ScenarioWarehouse, serving

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "deployment_shapes.json"
SPECS = json.loads(FIXTURE.read_text())["workspaces"]
SHAPES = {
    "ecommerce-only": ["shop"],
    "saas-only": ["saas-usd"],
    "both": ["shop", "saas-usd"],
    "empty": ["empty-shop", "empty-saas"],
}
# Nothing configured to send with: reports go to the outbox; no LLM, no operator channel.
QUIET = ("ABOS_SMTP_HOST", "ABOS_LLM_API_KEY", "OPENAI_API_KEY", "ABOS_OPERATOR_SLACK_CHANNEL", "ABOS_WORKSPACES",
         "ABOS_DAGSTER_PG_URL", "ABOS_FX_RATES_FILE")


def run_deployment(store, workspace_ids: list[str], home: Path, warehouse_url: str | None,
                   specs: dict | None = None) -> tuple[dict, ScenarioWarehouse]:
    """`abos run` over `workspace_ids` (served from `store`), in `home`: run_all's result and the warehouse."""
    from pipelines.run import run_all

    specs = specs or SPECS
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name in QUIET:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
        with serving(store, {ws: specs[ws] for ws in workspace_ids}, home, warehouse_url, monkeypatch) as (settings, _):
            add_notifications(settings.workspaces_file)
            import pipelines.definitions

            importlib.reload(pipelines.definitions)  # the Definitions read the tenants file when they load
            result = run_all(load_workspaces(settings.workspaces_file), progress=lambda _: None, settings=settings)
    return result, ScenarioWarehouse(settings)


def add_notifications(path: Path) -> None:
    """Every workspace reports by email (to the outbox, as no SMTP host is set)."""
    doc = yaml.safe_load(path.read_text())
    for item in doc["workspaces"]:
        item["notifications"] = {"email": {"to": [f"owner@{item['id']}.example"]}}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return build_store(tmp_path_factory.mktemp("shapes-sandbox") / "sandbox.sqlite", fixtures=FIXTURE)


@pytest.fixture(scope="module")
def deployments(store, tmp_path_factory, request):
    """One `abos run` per (shape, database), built on first use."""
    built: dict[tuple[str, str], tuple[dict, ScenarioWarehouse]] = {}

    def get(shape: str, database: str) -> tuple[dict, ScenarioWarehouse]:
        if (shape, database) not in built:
            url = None
            if database == "postgres":
                url = with_password(request.getfixturevalue("new_pg_database")())
            home = tmp_path_factory.mktemp(f"{shape}-{database}") / "home"
            built[shape, database] = run_deployment(store, SHAPES[shape], home, url)
        return built[shape, database]

    return get


def shape_params(fast: tuple[str, str]) -> list:
    return [pytest.param(shape, database, id=f"{shape}-{database}",
                         marks=() if (shape, database) == fast else pytest.mark.slow)
            for shape in SHAPES for database in ("duckdb", "postgres")]


# -- figures each workspace must show -----------------------------------------------------------


def check_shop(warehouse: ScenarioWarehouse) -> None:
    """shop: 117.00 net on 2026-03-02, the 45.00 refund on 2026-03-16 (New York days)."""
    days = {row["date"]: row for row in warehouse.query(
        "select date, net_sales, refunds, orders from metrics.ecommerce_daily_metrics where workspace_id = 'shop'")}
    assert (days[date(2026, 3, 2)]["net_sales"], days[date(2026, 3, 2)]["orders"]) == (Decimal("117.00"), 1)
    assert (days[date(2026, 3, 16)]["refunds"], days[date(2026, 3, 16)]["net_sales"]) == (Decimal("45.00"),
                                                                                         Decimal("-45.00"))


def check_saas(warehouse: ScenarioWarehouse, workspace: str = "saas-usd", mrr: str = "120.00") -> None:
    """One monthly subscription of 12000 minor units since 2026-03-01: MRR 120.00 USD every day."""
    rows = warehouse.query("select date, mrr, active_customers from metrics.saas_daily_metrics "
                           "where workspace_id = %s and date in ('2026-03-01', '2026-04-15', '2026-05-19') "
                           "order by date", [workspace])
    assert [(row["mrr"], row["active_customers"]) for row in rows] == [(Decimal(mrr), 1)] * 3


CHECKS = {"shop": check_shop, "saas-usd": check_saas}


def check_delivered(result: dict, warehouse: ScenarioWarehouse, workspace_ids: list[str], failed: tuple[str, ...] = ()) -> None:
    """Only the runs of the `failed` workspaces failed; each of `workspace_ids` has its report and
    its email in the outbox (sent by this run or, for the same week, an earlier one)."""
    assert {label.rpartition(" for ")[2] for label in result["failed"]} == set(failed), result["failed"]
    workspaces = result["summary"]["workspaces"]
    for workspace_id in workspace_ids:
        assert Path(workspaces[workspace_id]["report"]).is_file(), workspace_id
        outbox = warehouse.settings.outbox_dir / workspace_id
        assert [p.name for p in outbox.glob("*/*.eml")] == [f"email-owner@{workspace_id}.example.eml"], workspace_id


# -- the shapes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("shape", "database"), shape_params(fast=("saas-only", "duckdb")))
def test_each_deployment_shape_runs_end_to_end(deployments, shape, database):
    result, warehouse = deployments(shape, database)
    check_delivered(result, warehouse, SHAPES[shape])
    for workspace_id in SHAPES[shape]:
        if workspace_id in CHECKS:
            CHECKS[workspace_id](warehouse)
        else:  # connected but empty: no figures at all, rather than zeros
            for table in ("ecommerce_daily_metrics", "saas_daily_metrics", "metric_values"):
                assert warehouse.query(f"select count(*) as n from metrics.{table} where workspace_id = %s",
                                       [workspace_id]) == [{"n": 0}], (workspace_id, table)
    verticals = {SPECS[ws].get("shopify") is not None for ws in SHAPES[shape]}
    # The other vertical's tables exist, built from empty stand-ins, with no rows.
    if True not in verticals:
        assert warehouse.query("select count(*) as n from metrics.ecommerce_daily_metrics") == [{"n": 0}]
    if False not in verticals:
        assert warehouse.query("select count(*) as n from metrics.saas_daily_metrics") == [{"n": 0}]


# -- growing, and one tenant broken -----------------------------------------------------------------

GROWN = ["saas-usd", "shop", "saas-kwd", "saas-kwd-usd"]


@pytest.fixture(scope="module", params=["duckdb", pytest.param("postgres", marks=pytest.mark.slow)])
def grown_run(request, deployments, store, tmp_path_factory) -> tuple[dict, ScenarioWarehouse, list[Path], list[Path]]:
    """The SaaS-only deployment, run again with three workspaces added to workspaces.yaml: the shop,
    saas-kwd (billing and reporting in KWD) and saas-kwd-usd (billing in KWD, reporting in USD, with
    no KWD rate anywhere). Its dbt invocation folders go to a target folder of its own
    (`DBT_TARGET_PATH`, which dagster-dbt puts them under), where old ones are planted first, so
    what earlier runs left in dbt_project/target/ takes none of the places kept: the third item is the
    planted folders the run left, the fourth the run's own invocation folders."""
    first, warehouse = deployments("saas-only", request.param)
    assert first["failed"] == []
    url = warehouse.settings.warehouse.url if request.param == "postgres" else None
    target = tmp_path_factory.mktemp("dbt-target")
    with planted_invocation_folders(target) as planted, pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("DBT_TARGET_PATH", str(target))
        result, grown_warehouse = run_deployment(store, GROWN, warehouse.settings.home, url)
        left = [folder for folder in planted if folder.exists()]
        own = sorted(folder for folder in target.glob("dbt_models-*") if folder not in planted)
    return result, grown_warehouse, left, own


@pytest.fixture(scope="module")
def grown(grown_run) -> tuple[dict, ScenarioWarehouse]:
    return grown_run[:2]


@contextlib.contextmanager
def planted_invocation_folders(target: Path, count: int = KEEP_INVOCATIONS + 5) -> Iterator[list[Path]]:
    """`count` dagster-dbt invocation folders of the dbt step in `target`, two days old and older, oldest last."""
    now = time.time()
    planted = [target / f"dbt_models-planted-{i:02d}" for i in range(count)]
    for age, folder in enumerate(planted):
        (folder / "compiled").mkdir(parents=True)
        (folder / "dbt.log").write_text("an earlier refresh's log")
        for path in (folder / "dbt.log", folder / "compiled", folder):
            os.utime(path, (now - 2 * 86400 - age * 3600,) * 2)
    try:
        yield planted
    finally:
        for folder in planted:
            shutil.rmtree(folder, ignore_errors=True)


def test_workspaces_added_later_to_a_running_deployment_get_their_tables_and_reports(grown):
    result, warehouse = grown
    check_delivered(result, warehouse, ["saas-usd", "shop", "saas-kwd"], failed=("saas-kwd-usd",))
    check_shop(warehouse)
    check_saas(warehouse)


def test_a_missing_fx_rate_fails_only_its_workspace_and_says_which_rate(grown):
    """saas-kwd-usd needs KWD→USD from 2026-03-01 and no rate exists: its figures are absent, its
    partition fails with the currency, the day and the setting, and the operator alert names the
    workspace, the model and the cause. KWD→KWD (saas-kwd) needs no rate: 12.000 KWD MRR."""
    result, warehouse = grown
    check_saas(warehouse, "saas-kwd", "12.000")
    for table in ("saas_daily_metrics", "saas_daily_slices", "metric_values"):
        assert warehouse.query(f"select count(*) as n from metrics.{table} where workspace_id = 'saas-kwd-usd'") \
            == [{"n": 0}], table
    # The healthy workspaces' reports carry their numbers for the last complete week.
    reports = result["summary"]["workspaces"]
    for workspace_id, mrr in (("saas-usd", 120.0), ("saas-kwd", 12.0)):
        facts = json.loads((Path(reports[workspace_id]["report"]).parent / "facts.json").read_text())
        assert {m["name"]: m["current"] for m in facts["metrics"]}["mrr"] == mrr, workspace_id
    assert "report" not in reports.get("saas-kwd-usd", {})

    # One cause, one failed run, one alert: the insights run over the four workspaces failed for
    # saas-kwd-usd alone (the others' insights are materialized, and their weekly_report runs went
    # on), and saas-kwd-usd's weekly_report run was skipped, saying why, rather than failing (and
    # alerting) a second time.
    assert result["failed"] == ["insights for saas-kwd-usd"]
    assert result["skipped"] == ["weekly_report for saas-kwd-usd (after insights for saas-kwd-usd failed)"]
    [insights_run] = [run for run in result["runs"] if run["job"] == "insights"]
    assert (insights_run["workspaces"], insights_run["success"]) == (GROWN, False)
    assert insights_materialized(warehouse.settings, insights_run["run_id"]) == set(GROWN) - {"saas-kwd-usd"}
    alerts = {alert["title"]: alert for alert in operator_alerts(warehouse.settings)}
    assert set(alerts) == {"Run failed: insights for saas-kwd-usd"}
    alert = alerts["Run failed: insights for saas-kwd-usd"]
    assert ("Step find_insights: workspace 'saas-kwd-usd': its figures are withheld, dbt tests failed it: "
            "saas_daily_metrics: no FX rate for KWD on 2026-03-01") in alert["text"]
    assert "ABOS_FX_RATES_FILE" in alert["text"]


def insights_materialized(settings, run_id: str) -> set[str]:
    """The workspaces whose every insights asset (but the report) the run materialized."""
    import dagster as dg

    from pipelines.insights.assets import ANOMALIES, CUSTOMER_VALUES, DRIVERS, FORECASTS, OPPORTUNITIES
    from pipelines.partitions import fully_materialized

    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        return fully_materialized(instance, run_id, [ANOMALIES, DRIVERS, FORECASTS, OPPORTUNITIES, CUSTOMER_VALUES])


def operator_alerts(settings) -> list[dict]:
    """What the run-failure sensor posts for each failed run of the deployment (to the outbox)."""
    import dagster as dg

    from pipelines.orchestration import run_failure_alert

    alerts = []
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("ABOS_HOME", str(settings.home))
        monkeypatch.delenv("ABOS_OPERATOR_SLACK_CHANNEL", raising=False)
        with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
            for run in instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE])):
                [failure] = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records
                context = dg.build_run_status_sensor_context(
                    sensor_name="alert_operator_on_failure", dagster_instance=instance, dagster_run=run,
                    dagster_event=failure.event_log_entry.dagster_event).for_run_failure()
                run_failure_alert(settings)(context)
        for path in sorted((settings.home / "outbox" / "_operator").glob("*.json")):
            message = json.loads(path.read_text())["chat.postMessage"]
            alerts.append({"title": message["blocks"][0]["text"]["text"], "text": message["text"]})
    return alerts


def test_the_dbt_step_removes_old_invocation_folders_and_keeps_the_newest(grown_run):
    """dagster-dbt leaves a target folder per dbt command (the webhook refresh runs one every few
    seconds): the run's dbt steps removed the planted two-day-old ones beyond the newest kept. After
    the last step's pruning, the target folder holds KEEP_INVOCATIONS of them: the run's own (all
    new, none removed) and the newest planted."""
    *_, left, own = grown_run
    assert own and len(left) + len(own) == KEEP_INVOCATIONS
    ages = [int(p.name.rsplit("-", 1)[1]) for p in left]
    assert ages == list(range(len(left)))  # the newest planted kept, the oldest removed


def test_a_refresh_with_nothing_new_leaves_the_unchanged_views_out_and_shows_them_unchanged(grown_run, store):
    """The grown deployment refreshed twice more with nothing new to load. The grown run's insights stage
    created source tables after its dbt build (`insights.customer_values`, which the project declares),
    which no view reads, so both leave the staging and quarantine views out
    (pipelines/transform/unchanged_views.py); their assets still show those runs (status `unchanged`),
    as many dbt models count as built, and the figures are the same."""
    import dagster as dg

    first, warehouse, *_ = grown_run
    url = warehouse.settings.warehouse.url if warehouse.settings.warehouse.kind == "postgres" else None
    results = []
    for _ in range(2):
        results.append(run_deployment(store, GROWN, warehouse.settings.home, url))
        with dg.DagsterInstance.from_config(str(warehouse.settings.dagster_home)) as instance:
            def left_out(view: str) -> bool:
                event = instance.get_latest_materialization_event(dg.AssetKey([view]))
                return "left_out" in event.asset_materialization.metadata

            views = ("stg_shopify__orders", "stg_stripe__invoices", "quarantine_shopify_orders")
            assert [left_out(view) for view in views] == [True] * 3, len(results)
            assert not left_out("forecast_metrics")  # its hooks run: never left out
    for result, again in results:
        assert result["failed"] == first["failed"]
        assert result["summary"]["dbt_models_built"] == first["summary"]["dbt_models_built"]
        check_shop(again)
        check_saas(again)
