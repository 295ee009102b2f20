"""metrics.forecast_metrics on DuckDB and on Postgres: the view dbt builds over insights.forecasts before
any forecast exists, the forecasts written afterwards as the insights asset writes them (Warehouse.upsert),
read through the view at once, and questions about the coming days answered from it. Numbers by hand.

No pipeline run: the view's parents (the daily metric tables and the FX-gap tables) are hand-made, and
dbt builds the view alone (`dbt run -s forecast_metrics`), as the refresh's build does before the
insights stage.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from pipelines.ask.query import evaluate
from pipelines.ask.resolve import Context, Resolved, resolve
from pipelines.packs import pack_for
from pipelines.settings import load_settings
from tests.scenario import run_dbt

SHOP, SAAS = pack_for("ecommerce"), pack_for("saas")
MARCH = {day: date(2026, 3, day) for day in range(1, 32)}
ORIGIN = MARCH[3]  # the last actual day: the forecasts start on March 4
# ecommerce_daily_metrics: (workspace, day, net_sales, orders); February is not the origin's month.
# "norate" misses an FX rate: the metric tables hold none of its days (has_fx_rates), yet a forecast
# of it is stored (made before the rate went missing): the view leaves it out.
SHOP_DAYS = [("shop", date(2026, 2, 27), 999, 9), ("shop", MARCH[1], 100.25, 2), ("shop", MARCH[2], 50.5, 1),
             ("shop", MARCH[3], 0, 0)]
SAAS_DAYS = [("saas", MARCH[2], 1000), ("saas", MARCH[3], 1010)]  # mrr
# insights.forecasts: (workspace, metric, day, forecast, lower_80, upper_80, lower_95, upper_95)
FORECASTS = [("shop", "net_sales", MARCH[4], 60, 50, 70, 40, 80), ("shop", "net_sales", MARCH[5], 70, 55, 85, 45, 95),
             ("shop", "orders", MARCH[4], 1.5, 1, 2, 0.5, 2.5), ("shop", "orders", MARCH[5], 2.5, 2, 3, 1.5, 3.5),
             ("saas", "mrr", MARCH[4], 1020, 1000, 1040, 990, 1050), ("saas", "mrr", MARCH[5], 1030, 1005, 1060, 995, 1070),
             ("norate", "net_sales", MARCH[4], 5, 4, 6, 3, 7)]  # a workspace missing an FX rate


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def settings(request, tmp_path_factory):
    home = tmp_path_factory.mktemp("forecast-metrics")
    url = (f"duckdb:///{home}/warehouse.duckdb" if request.param == "duckdb"
           else request.getfixturevalue("new_pg_database")())
    settings = load_settings({"ABOS_WAREHOUSE_URL": url, "ABOS_HOME": str(home)})
    with settings.warehouse.transaction() as sql:
        for schema in ("metrics", "intermediate"):
            sql.execute(f"create schema if not exists {schema}")
        sql.execute("create table metrics.ecommerce_daily_metrics (workspace_id text, date date, "
                    "net_sales decimal(38, 4), orders bigint)")
        sql.execute("create table metrics.saas_daily_metrics (workspace_id text, date date, mrr decimal(38, 6))")
        sql.execute("create table intermediate.int_fx_rate_gaps_ecommerce (workspace_id text)")
        sql.execute("create table intermediate.int_fx_rate_gaps_saas (workspace_id text)")
        sql.executemany("insert into metrics.ecommerce_daily_metrics values (%s, %s, %s, %s)", SHOP_DAYS)
        sql.executemany("insert into metrics.saas_daily_metrics values (%s, %s, %s)", SAAS_DAYS)
        sql.execute("insert into intermediate.int_fx_rate_gaps_ecommerce values ('norate')")
    return settings


@pytest.fixture(scope="module")
def warehouse(settings):
    """The view built before any forecast, then the forecasts written as the asset writes them."""
    warehouse = settings.warehouse
    assert not warehouse.table_exists("insights.forecasts")
    run_dbt(settings, "run", "-s", "forecast_metrics")
    assert warehouse.table_exists("insights.forecasts")  # created empty by the view's pre-hook
    assert len(warehouse.query("select * from metrics.forecast_metrics")) == 0
    frame = pd.DataFrame(FORECASTS, columns=["workspace_id", "metric", "date", "forecast", "lower_80", "upper_80",
                                             "lower_95", "upper_95"])
    frame.insert(2, "origin", ORIGIN)
    frame.insert(4, "days_ahead", [(day - ORIGIN).days for day in frame["date"]])
    frame[["forecast", "lower_80", "upper_80", "lower_95", "upper_95"]] = frame[
        ["forecast", "lower_80", "upper_80", "lower_95", "upper_95"]].astype("float64")
    for workspace_id, rows in frame.groupby("workspace_id"):
        warehouse.upsert("insights.forecasts", rows.assign(made_at=pd.Timestamp("2026-03-04 06:00", tz="UTC")),
                         key=["workspace_id", "metric", "date"], replace={"workspace_id": workspace_id})
    return warehouse


def test_the_view_reads_forecasts_written_after_it_was_built_with_the_origin_months_actual_days(warehouse):
    view = warehouse.query("select * from metrics.forecast_metrics order by workspace_id, date")
    shop = view[view["workspace_id"] == "shop"].set_index("date")
    shop.index = [pd.Timestamp(day).date() for day in shop.index]
    # March 1-3 actual (February is another month), March 4-5 forecast; the bounds of actual days are the actuals
    assert list(shop.index) == [MARCH[day] for day in (1, 2, 3, 4, 5)]
    assert shop["net_sales_forecast"].astype(float).tolist() == [100.25, 50.5, 0, 60, 70]
    assert shop["net_sales_forecast_lower_80"].astype(float).tolist() == [100.25, 50.5, 0, 50, 55]
    assert shop["net_sales_forecast_upper_95"].astype(float).tolist() == [100.25, 50.5, 0, 80, 95]
    assert shop["orders_forecast"].astype(float).tolist() == [2, 1, 0, 1.5, 2.5]
    assert shop["mrr_forecast"].isna().all()
    assert {pd.Timestamp(day).date() for day in shop["origin"]} == {ORIGIN}
    saas = view[view["workspace_id"] == "saas"]
    assert saas["mrr_forecast"].astype(float).tolist() == [1000, 1010, 1020, 1030]
    assert saas["mrr_forecast_upper_80"].astype(float).tolist() == [1000, 1010, 1040, 1060]
    assert "norate" not in set(view["workspace_id"])  # a missing FX rate: no rows, as in every metric table


@pytest.mark.parametrize("settings", ["postgres"], indirect=True)  # analyst roles are a Postgres feature
def test_an_analyst_reads_the_forecasts_of_their_own_workspace_only(settings, warehouse):
    """Postgres: the view reads with the analyst's rights (security_invoker); insights.forecasts is
    granted to analysts under the workspace policy (`abos analyst grant`, and the view's pre-hook
    when dbt runs after it), so "shop"'s analyst sees "shop"'s 5 days and no other workspace's."""
    assert warehouse.kind == "postgres"
    from pipelines.transform import access
    from tests.integration.test_analyst_access import as_role

    role = "abos_test_analyst_forecasts"
    access.grant(settings, "shop", role)
    try:
        url = settings.warehouse.location
        assert as_role(url, role, "select workspace_id, count(*) from metrics.forecast_metrics group by 1") == \
            [("shop", 5)]
        assert as_role(url, role, "select count(*) from insights.forecasts where workspace_id <> 'shop'") == [(0,)]
        run_dbt(settings, "run", "-s", "forecast_metrics")  # rebuilt after the grant: the same
        assert as_role(url, role, "select count(*) from metrics.forecast_metrics") == [(5,)]
    finally:
        access.revoke(settings, "shop", role)


def ask(warehouse, question: str, pack, workspace_id: str) -> pd.DataFrame:
    found = resolve(question, Context(pack=pack, timezone="UTC", today=ORIGIN))
    assert isinstance(found, Resolved), found
    with warehouse.reader() as read:
        return evaluate(found.query, pack, read, workspace_id)


def test_questions_about_the_coming_days_are_answered_from_the_view(warehouse):
    # this month as a whole: the actual days and the forecast of the rest, 100.25 + 50.5 + 0 + 60 + 70
    assert ask(warehouse, "projected net sales this month", SHOP, "shop")["net_sales_forecast"].tolist() == \
        pytest.approx([280.75])
    # the next 7 days from March 3: March 4-10, of which March 4 and 5 are forecast: 1.5 + 2.5
    assert ask(warehouse, "orders forecast", SHOP, "shop")["orders_forecast"].tolist() == pytest.approx([4.0])
    # a level: the last day forecast in the period (March 5), and its 80% interval's ends there
    month = ask(warehouse, "mrr forecast this month", SAAS, "saas")
    assert month["mrr_forecast"].tolist() == pytest.approx([1030])
    assert ask(warehouse, "optimistic mrr forecast this month", SAAS, "saas")["mrr_forecast_upper_80"].tolist() == \
        pytest.approx([1060])
    assert ask(warehouse, "what will mrr be tomorrow", SAAS, "saas")["mrr_forecast"].tolist() == pytest.approx([1020])
    # by day: every day up to the last one forecast
    days = ask(warehouse, "daily net sales forecast this month", SHOP, "shop")
    assert days["net_sales_forecast"].tolist() == pytest.approx([100.25, 50.5, 0, 60, 70])
    # the workspace without a rate has no forecast to read
    assert ask(warehouse, "projected net sales this month", SHOP, "norate").empty
