"""Ecommerce dbt models: hand-worked scenarios, DuckDB = Postgres, sandbox truth, incremental = full refresh.

The scenarios live in tests/fixtures/scenarios_ecommerce.json, one workspace each; they go through
the real path (sandbox over HTTP → Shopify connector → dbt) once per database. Expected values are
worked out by hand in the comments, from the definitions in docs/metrics.md.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import hashlib
import json
import re
import threading
import time

import pytest

import pipelines.ingest.shopify as shopify_connector
from pipelines.insights.ltv import workspace_customer_values
from pipelines.packs import pack_for
from pipelines.transform import manifest_path
from pipelines.sandbox.server import build_store
from pipelines.sandbox.simulation.runner import truth
from pipelines.sandbox.simulation.simulator import SIZES, iso
from tests.scenario import (
    ScenarioWarehouse,
    build_scenario,
    postgres_materialized_ctes,
    run_dbt,
    serving,
    sync_all,
    write_workspaces_table,
)

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "scenarios_ecommerce.json"
# Only the ecommerce models (and what they read): the other verticals' models are not under test here.
ECOMMERCE = ("-s", "+ecommerce_daily_metrics", "+ecommerce_daily_slices", "+ecommerce_daily_pair_slices",
             "+customers", "+products",
             "+ecommerce_cohorts", "+ecommerce_segment_weekly", "+ecommerce_segment_moves",
             "+ecommerce_customer_metrics", "+ecommerce_cohort_metrics", "+ecommerce_segment_metrics",
             "+ecommerce_segment_slices")
METRIC_COLUMNS = [
    "workspace_id",
    "date",
    "gross_sales",
    "discounts",
    "refunds",
    "net_sales",
    "orders",
    "units",
    "aov",
    "new_customers",
    "returning_customers",
]
# Every ecommerce table and its key, for the comparisons.
TABLES = {
    "intermediate.int_orders_identified": "workspace_id, order_id",
    "intermediate.int_customers_unified": "workspace_id, person_id",
    "intermediate.int_ecommerce_order_digests": "workspace_id, order_id, date_day",
    "intermediate.int_ecommerce_day_digests": "workspace_id, date_day",
    "intermediate.int_ecommerce_cohort_activity": "workspace_id, person_id, activity_month nulls first",
    "marts.orders": "workspace_id, order_id",
    "marts.order_lines": "workspace_id, order_line_id",
    "marts.refunds": "workspace_id, refund_id",
    "marts.customers": "workspace_id, person_id",
    "marts.products": "workspace_id, product_id",
    "metrics.ecommerce_daily_metrics": "workspace_id, date",
    "metrics.ecommerce_daily_slices": "workspace_id, date, metric, dimension, dimension_value",
    "metrics.ecommerce_daily_pair_slices": "workspace_id, date, metric, dimension, dimension_value, second_dimension, "
                                           "second_dimension_value",
    "metrics.ecommerce_cohorts": "workspace_id, cohort_month, months_since_first_order",
    "metrics.ecommerce_customer_segments": "workspace_id, week_start, person_id",
    "metrics.ecommerce_segment_weekly": "workspace_id, week_start, segment",
    "metrics.ecommerce_segment_moves": "workspace_id, week_start, from_segment, to_segment",
    "metrics.ecommerce_customer_metrics": "workspace_id, date",
    "metrics.ecommerce_cohort_metrics": "workspace_id, date",
    "metrics.ecommerce_segment_metrics": "workspace_id, date",
    "metrics.ecommerce_segment_slices": "workspace_id, date, metric, dimension, dimension_value",
}
# Fingerprints: each database hashes rows with its own function (macro row_digest).
HASHED = {"intermediate.int_ecommerce_order_digests", "intermediate.int_ecommerce_day_digests"}


# -- builds (once per database) -------------------------------------------------------------------


@pytest.fixture(scope="module")
def duckdb_scenarios(tmp_path_factory) -> ScenarioWarehouse:
    with pytest.MonkeyPatch.context() as monkeypatch:
        return build_scenario(
            FIXTURE, tmp_path_factory.mktemp("ecom-duckdb"), None, monkeypatch, dbt_args=("build", *ECOMMERCE)
        )


def with_password(url: str) -> str:
    """dlt refuses Postgres credentials without a password; a trust-auth test server ignores it."""
    parts = urlsplit(url)
    if parts.password or not parts.username:
        return url
    return parts._replace(
        netloc=parts.netloc.replace(f"{parts.username}@", f"{parts.username}:unused@", 1)
    ).geturl()


@pytest.fixture(scope="module")
def postgres_scenarios(tmp_path_factory, new_pg_database) -> ScenarioWarehouse:
    with pytest.MonkeyPatch.context() as monkeypatch:
        return build_scenario(
            FIXTURE,
            tmp_path_factory.mktemp("ecom-postgres"),
            with_password(new_pg_database()),
            monkeypatch,
            dbt_args=("build", *ECOMMERCE),
        )


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def scenarios(request) -> ScenarioWarehouse:
    return request.getfixturevalue(f"{request.param}_scenarios")


def metric_days(warehouse: ScenarioWarehouse, workspace: str) -> dict[date, dict]:
    rows = warehouse.query(
        f"select {', '.join(METRIC_COLUMNS)} from metrics.ecommerce_daily_metrics"
        " where workspace_id = %s order by date",
        (workspace,),
    )
    return {row["date"]: row for row in rows}


def zero_day(row: dict) -> bool:
    return all(row[name] == 0 for name in METRIC_COLUMNS[2:] if name != "aov") and row["aov"] is None


# -- hand-worked scenarios --------------------------------------------------------------------------


def test_net_sales_with_discounts_shipping_tax_and_a_later_partial_refund(scenarios):
    """ecom-net-sales (America/New_York): order #1001 on 2026-03-02 10:00 EST (15:00 UTC).

    Lines: tent 2 × 50.00 with 10.00 of a 10% code allocated, lamp 1 × 30.00 with 3.00 allocated;
    shipping 8.00 and tax 9.36 on top (total paid 134.36).
      gross_sales = 2 × 50.00 + 1 × 30.00 = 130.00; discounts = 10.00 + 3.00 = 13.00
      net_sales   = 130.00 − 13.00 = 117.00 (shipping and tax are not sales); aov = 117.00 / 1
    On 2026-03-16 (two weeks later, 10:00 EDT) one tent comes back: refund line subtotal 45.00
    (50.00 − 5.00 of its discount) plus 3.60 tax. The refund counts on its own day, for 45.00:
      2026-03-16: refunds 45.00, net_sales −45.00, no orders; 2026-03-02 stays at 117.00.
    The days between are there, all zero: 2026-03-02 … 2026-03-16 is 15 rows.
    """
    days = metric_days(scenarios, "ecom-net-sales")
    order_day, refund_day = days[date(2026, 3, 2)], days[date(2026, 3, 16)]
    assert (
        order_day["gross_sales"],
        order_day["discounts"],
        order_day["refunds"],
        order_day["net_sales"],
    ) == (Decimal("130.00"), Decimal("13.00"), Decimal(0), Decimal("117.00"))
    assert (order_day["orders"], order_day["units"], order_day["aov"]) == (1, 3, Decimal("117.00"))
    assert (order_day["new_customers"], order_day["returning_customers"]) == (1, 0)
    assert (refund_day["refunds"], refund_day["net_sales"], refund_day["orders"], refund_day["aov"]) == (
        Decimal("45.00"),
        Decimal("-45.00"),
        0,
        None,
    )
    assert list(days) == [date(2026, 3, d) for d in range(2, 17)]
    assert all(zero_day(days[date(2026, 3, d)]) for d in range(3, 16))

    refund = scenarios.query("select * from marts.refunds where workspace_id = 'ecom-net-sales'")
    assert [
        (r["refund_date"], r["order_date"], r["refunded_sales"], r["refunded_tax"], r["total_refunded"])
        for r in refund
    ] == [(date(2026, 3, 16), date(2026, 3, 2), Decimal("45.00"), Decimal("3.60"), Decimal("48.60"))]
    (order,) = scenarios.query("select * from marts.orders where workspace_id = 'ecom-net-sales'")
    # 130.00 − 13.00 + 8.00 + 9.36 = 134.36 paid; sales exclude the 8.00 and 9.36
    assert (order["discounted_sales"], order["total_shipping"], order["total_tax"], order["total_price"]) == (
        Decimal("117.00"),
        Decimal("8.00"),
        Decimal("9.36"),
        Decimal("134.36"),
    )
    (customer,) = scenarios.query("select * from marts.customers where workspace_id = 'ecom-net-sales'")
    assert customer["lifetime_net_sales"] == Decimal("72.00")  # 117.00 − 45.00


def test_guest_who_returns_with_an_account_is_one_person(scenarios):
    """ecom-guest (UTC). Bea checks out as a guest on 2026-03-03 typing " Bea@Example.com " (40.00).
    On 2026-03-10 she orders with her new account (bea@example.com, 60.00) and once more as a guest
    typing "BEA@EXAMPLE.COM" (20.00); Cy buys for the first time the same day (25.00).
      2026-03-03: new 1 (Bea), returning 0, orders 1, gross 40.00
      2026-03-10: new 1 (Cy), returning 1 (Bea, counted once for her two orders), orders 3,
                  gross 60.00 + 20.00 + 25.00 = 105.00, aov 105.00 / 3 = 35.00
    marts.customers: Bea is one row with 3 orders, first order 2026-03-03, her account id, and
    lifetime net sales 40.00 + 60.00 + 20.00 = 120.00.
    """
    days = metric_days(scenarios, "ecom-guest")
    first, back = days[date(2026, 3, 3)], days[date(2026, 3, 10)]
    assert (first["new_customers"], first["returning_customers"], first["orders"], first["gross_sales"]) == (
        1,
        0,
        1,
        Decimal("40.00"),
    )
    assert (
        back["new_customers"],
        back["returning_customers"],
        back["orders"],
        back["gross_sales"],
        back["aov"],
    ) == (1, 1, 3, Decimal("105.00"), Decimal("35.00"))

    customers = scenarios.query(
        "select * from marts.customers where workspace_id = 'ecom-guest' order by email"
    )
    assert [c["email"] for c in customers] == ["bea@example.com", "cy@example.com"]
    bea = customers[0]
    assert (
        bea["order_count"],
        bea["first_order_date"],
        bea["customer_id"],
        bea["is_guest"],
        bea["lifetime_net_sales"],
    ) == (3, date(2026, 3, 3), "gid://shopify/Customer/201", False, Decimal("120.00"))
    types = scenarios.query(
        "select order_name, customer_type from marts.orders"
        " where workspace_id = 'ecom-guest' order by created_at"
    )
    assert [(t["order_name"], t["customer_type"]) for t in types] == [
        ("#2001", "new"),
        ("#2002", "returning"),
        ("#2004", "new"),
        ("#2003", "returning"),
    ]


def test_cancelled_and_test_orders_are_excluded(scenarios):
    """ecom-excluded (UTC), 2026-03-04: Dan's order (1 × 50.00) counts. Eve's order (2 × 100.00) is
    cancelled on 2026-03-05 and the 999.00 QA order is a test order: neither is sold.
      2026-03-04: orders 1, units 1, gross 50.00, aov 50.00 / 1 = 50.00, new customers 1 (Eve is not new)
    The cancellation is the last thing that happened (the test order's later update is ignored),
    so the table ends with a zero row on 2026-03-05.
    """
    days = metric_days(scenarios, "ecom-excluded")
    assert list(days) == [date(2026, 3, 4), date(2026, 3, 5)]
    day = days[date(2026, 3, 4)]
    assert (
        day["orders"],
        day["units"],
        day["gross_sales"],
        day["net_sales"],
        day["aov"],
        day["new_customers"],
    ) == (1, 1, Decimal("50.00"), Decimal("50.00"), Decimal("50.00"), 1)
    assert zero_day(days[date(2026, 3, 5)])

    orders = scenarios.query(
        "select order_name, is_cancelled, customer_type from marts.orders"
        " where workspace_id = 'ecom-excluded'"
        " order by order_name"
    )
    assert [(o["order_name"], o["is_cancelled"], o["customer_type"]) for o in orders] == [
        ("#3001", False, "new"),
        ("#3002", True, None),
    ]  # the test order #3003 is not there at all
    lines = scenarios.query(
        "select count(*) as n from marts.order_lines where order_id = 'gid://shopify/Order/3003'"
    )
    assert lines[0]["n"] == 0


def test_a_line_whose_order_is_not_loaded_is_staged_but_not_sold(scenarios):
    """stg_shopify__order_lines drops the lines of test orders and reads no other order: ecom-excluded's
    staged lines are #3001's 30011 and #3002's 30021, not the test order #3003's 30031. A line whose
    order is not in the raw orders table (a load stopped after writing the lines and before the orders;
    the order's next load replaces them) is not known to be a test order's, so it is staged: planted
    here as line 30041 of an order 3004 never loaded. order_lines dates a line by its order, so the
    line is in neither an incremental run that lists order 3004 as changed nor a full refresh: the
    mart holds 30011 and 30021, as it did."""
    warehouse = scenarios
    staged = ("select order_line_id, order_id from staging.stg_shopify__order_lines"
              " where workspace_id = 'ecom-excluded' order by order_line_id")
    sold = "select order_line_id from marts.order_lines where workspace_id = 'ecom-excluded' order by order_line_id"
    line, order = "gid://shopify/LineItem/{}", "gid://shopify/Order/{}"
    assert [(r["order_line_id"], r["order_id"]) for r in warehouse.query(staged)] == [
        (line.format(30011), order.format(3001)), (line.format(30021), order.format(3002))]
    assert [r["order_line_id"] for r in warehouse.query(sold)] == [line.format(30011), line.format(30021)]

    columns = [row["column_name"] for row in warehouse.query(
        "select column_name from information_schema.columns where table_schema = 'shopify'"
        " and table_name = 'order_line_items' order by ordinal_position")]
    planted = {"id": line.format(30041), "order_id": order.format(3004), "_dlt_id": "planted-30041"}  # dlt's row id is unique
    picked = ", ".join("cast(%s as varchar)" if name in planted else f'"{name}"' for name in columns)
    changes = warehouse.query("select * from intermediate.int_ecommerce_changes")
    with warehouse.settings.warehouse.transaction() as sql:
        sql.execute(f"insert into shopify.order_line_items select {picked} from shopify.order_line_items"
                    " where workspace_id = 'ecom-excluded' and id = %s",
                    [planted[name] for name in columns if name in planted] + [line.format(30011)])
        sql.execute("delete from intermediate.int_ecommerce_changes")
        sql.execute("insert into intermediate.int_ecommerce_changes (workspace_id, order_id) values (%s, %s)",
                    ("ecom-excluded", order.format(3004)))
    try:
        assert [(r["order_line_id"], r["order_id"]) for r in warehouse.query(staged)] == [
            (line.format(30011), order.format(3001)), (line.format(30021), order.format(3002)),
            (line.format(30041), order.format(3004))]
        for args in ((), ("--full-refresh",)):
            run_dbt(warehouse.settings, "run", "-s", "order_lines", *args)
            assert [r["order_line_id"] for r in warehouse.query(sold)] == [line.format(30011), line.format(30021)]
    finally:
        with warehouse.settings.warehouse.transaction() as sql:
            sql.execute("delete from shopify.order_line_items where workspace_id = 'ecom-excluded' and id = %s",
                        (line.format(30041),))
            sql.execute("delete from intermediate.int_ecommerce_changes")
            for row in changes:
                sql.execute("insert into intermediate.int_ecommerce_changes (workspace_id, order_id, person_id)"
                            " values (%s, %s, %s)", (row["workspace_id"], row["order_id"], row["person_id"]))


def test_brl_shop_in_sao_paulo_counts_orders_on_the_local_day(scenarios):
    """ecom-brl: a BRL shop in America/Sao_Paulo (UTC−3, no DST) reporting in USD.
    Order #4001 at 2026-03-06 01:30 UTC is 22:30 on 2026-03-05 in São Paulo; #4002 at 03:10 UTC is
    00:10 on 2026-03-06. With the seed's rates (BRL 0.18 USD, USD 1.00):
      2026-03-05: 100.00 BRL → 18.00 USD gross; orders 1
      2026-03-06: 50.00 BRL → 9.00 USD gross, 5.00 BRL → 0.90 USD discount, net 8.10, aov 8.10
    """
    days = metric_days(scenarios, "ecom-brl")
    assert list(days) == [date(2026, 3, 5), date(2026, 3, 6)]
    late, early = days[date(2026, 3, 5)], days[date(2026, 3, 6)]
    assert (late["orders"], late["gross_sales"], late["net_sales"]) == (1, Decimal("18.00"), Decimal("18.00"))
    assert (early["orders"], early["gross_sales"], early["discounts"], early["net_sales"], early["aov"]) == (
        1,
        Decimal("9.00"),
        Decimal("0.90"),
        Decimal("8.10"),
        Decimal("8.10"),
    )
    orders = scenarios.query(
        "select order_name, order_date, currency, gross_sales from marts.orders"
        " where workspace_id = 'ecom-brl'"
        " order by order_name"
    )
    assert [(o["order_name"], o["order_date"], o["currency"], o["gross_sales"]) for o in orders] == [
        ("#4001", date(2026, 3, 5), "BRL", Decimal("100.00")),
        ("#4002", date(2026, 3, 6), "BRL", Decimal("50.00")),
    ]


def test_a_brl_shops_cohort_and_segment_money_is_in_its_reporting_currency(scenarios):
    """ecom-brl (see above): its two orders, 100.00 BRL on 03-05 and 45.00 BRL net on 03-06, make the
    March cohort's month 0 and fall in the week of 03-02, whose snapshot is the last data day, 03-06:
    145.00 BRL in the shop's currency, 18.00 + 8.10 = 26.10 USD at each day's rate. The registry's
    money (segment_net_sales, which metric_values labels USD) is the USD figure, not 145."""
    [cohort] = scenarios.query(
        "select cohort_month, net_sales, reporting_currency, reporting_net_sales from metrics.ecommerce_cohorts"
        " where workspace_id = 'ecom-brl' and months_since_first_order = 0")
    assert cohort == {"cohort_month": date(2026, 3, 1), "net_sales": Decimal("145.00"),
                      "reporting_currency": "USD", "reporting_net_sales": Decimal("26.10")}
    [segments] = scenarios.query(
        "select sum(week_net_sales) as brl, sum(week_reporting_net_sales) as usd"
        " from metrics.ecommerce_customer_segments where workspace_id = 'ecom-brl' and snapshot_date = '2026-03-06'")
    assert segments == {"brl": Decimal("145.00"), "usd": Decimal("26.10")}
    # metric_values labels a "currency" metric with the reporting currency: USD
    assert {m.name: m.unit for m in pack_for("ecommerce").metrics}["segment_net_sales"] == "currency"
    assert scenarios.query(
        "select segment_net_sales from metrics.ecommerce_segment_metrics where workspace_id = 'ecom-brl'"
        " and date = '2026-03-06'") == [{"segment_net_sales": Decimal("26.10")}]


def test_a_shop_missing_an_fx_rate_has_no_figures_in_any_registry_table(scenarios):
    """ecom-no-rate: ecom-brl's two orders in MXN, reporting in USD; the scenario's ECB rates
    (pipelines/sandbox/ecb.py, FIXTURE_RATES) quote no MXN, so every table the metric registry and
    its dimensions read (and so metric_values) has no row for it, the daily tables and the cohort
    and segment ones alike; int_fx_rate_gaps_ecommerce names the rate it lacks."""
    pack = pack_for("ecommerce")
    # (the forecasts' view reads the SaaS tables too, not built here: test_forecast_metrics checks its rule)
    tables = ({metric.table for metric in pack.metrics if not metric.forecast_of} | set(pack.slice_tables)
              | {"ecommerce_daily_pair_slices"})
    assert "ecommerce_cohort_metrics" in tables and "ecommerce_segment_metrics" in tables
    for table in sorted(tables):
        assert scenarios.query(f"select count(*) as n from metrics.{table} where workspace_id = 'ecom-no-rate'") \
            == [{"n": 0}], table
    [gap] = scenarios.query("select currency, missing_currency, first_day from intermediate.int_fx_rate_gaps_ecommerce"
                            " where workspace_id = 'ecom-no-rate'")
    assert gap == {"currency": "MXN", "missing_currency": "MXN", "first_day": date(2026, 3, 5)}
    # its orders are loaded and in the marts: only the converted figures are withheld
    assert scenarios.query("select count(*) as n from marts.orders where workspace_id = 'ecom-no-rate'") == [{"n": 2}]


def test_a_shop_missing_an_fx_rate_has_its_cohort_money_unknown_never_zero(scenarios):
    """ecom-no-rate (above): its March cohort, João's 100.00 MXN and Maria's 45.00 MXN net (two guests),
    keeps its counts and its money in the shop's currency; in USD that money is unknown: null, not 0."""
    assert scenarios.query(
        "select months_since_first_order, cohort_customers, active_customers, orders, net_sales, reporting_currency,"
        " reporting_net_sales from metrics.ecommerce_cohorts where workspace_id = 'ecom-no-rate'") == [
        {"months_since_first_order": 0, "cohort_customers": 2, "active_customers": 2, "orders": 2,
         "net_sales": Decimal("145.00"), "reporting_currency": "USD", "reporting_net_sales": None}]


def rows_by_key(warehouse: ScenarioWarehouse, table: str, key: str, drop: tuple[str, ...] = ()) -> list[dict]:
    return [
        {k: v for k, v in row.items() if k not in drop}
        for row in warehouse.query(f"select * from {table} order by {key}")
    ]


def test_cohorts_by_first_order_month(scenarios):
    """ecom-cohorts (America/New_York), all guests, amounts in USD:
      Ann  2026-01-10 100.00 (20.00 of it refunded 2026-02-20), 2026-02-15 50.00, 2026-03-05 30.00
      Ben  2026-02-01 03:00 UTC = 2026-01-31 22:00 local: 80.00, January cohort
      Cat  2026-02-10 60.00, 2026-02-20 40.00
      Dov  2026-02-25 90.00; 2026-03-10 70.00 cancelled (not sold: Dov is not active in March)
    January cohort (Ann, Ben; 2 customers):
      m0 Jan: active 2, orders 2, net 100 + 80 = 180, per customer 90, retention 1, repeat 0
      m1 Feb: active 1 (Ann), orders 1, net 50 − 20 refund = 30, cumulative 210 → 105, retention 0.5,
              repeat 1/2 (Ann's second order); days to second order: Jan 10 → Feb 15 = 36
      m2 Mar: active 1, orders 1, net 30, cumulative 240 → 120, retention 0.5
    February cohort (Cat, Dov): m0 Feb: active 2, orders 3, net 190, per customer 95, repeat 1/2
      (Cat, 10 days); m1 Mar: all zeros, cumulative stays 95 per customer.
    """
    rows = scenarios.query(
        "select cohort_month, months_since_first_order, cohort_customers, active_customers, orders, net_sales,"
        " cumulative_net_sales_per_customer, retention_rate, repeat_purchase_rate, avg_days_to_second_order"
        " from metrics.ecommerce_cohorts where workspace_id = 'ecom-cohorts'"
        " order by cohort_month, months_since_first_order"
    )
    jan, feb = date(2026, 1, 1), date(2026, 2, 1)
    assert [tuple(r.values()) for r in rows] == [
        (jan, 0, 2, 2, 2, Decimal("180"), Decimal("90"), Decimal("1"), Decimal("0"), Decimal("36")),
        (jan, 1, 2, 1, 1, Decimal("30"), Decimal("105"), Decimal("0.5"), Decimal("0.5"), Decimal("36")),
        (jan, 2, 2, 1, 1, Decimal("30"), Decimal("120"), Decimal("0.5"), Decimal("0.5"), Decimal("36")),
        (feb, 0, 2, 2, 3, Decimal("190"), Decimal("95"), Decimal("1"), Decimal("0.5"), Decimal("10")),
        (feb, 1, 2, 0, 0, Decimal("0"), Decimal("95"), Decimal("0"), Decimal("0.5"), Decimal("10")),
    ]


def test_rfm_segments_week_by_week(scenarios):
    """ecom-cohorts again (see the cohort test); the last data day is 2026-03-11 (Dov's cancellation).
    Scores are 1 + floor(5 × percent_rank) within the week, capped at 5 (ties share the lowest).
    Week of 02-23 (snapshot Sunday 03-01): last orders Ben 01-31, Ann 02-15, Cat 02-20, Dov 02-25
      R: Ben 1, Ann 1+floor(5/3)=2, Cat 1+floor(10/3)=4, Dov 5
      F: Ben 1, Dov 1 (ties), Ann 2, Cat 2 orders → 1+floor(10/3)=4; M: Ben 80 → 1, Dov 90 → 2,
         Cat 100 → 4, Ann 100 + 50 − 20 = 130 → 5
      → Cat champions (R4, F+M 8), Dov new (R5, one order), Ann at_risk (R2, F+M 9), Ben hibernating
    Week of 03-02 (snapshot 03-08): Ann ordered on 03-05 → R5 F5 M5 champions; Cat R2 F4 M4 at_risk.
    Week of 03-09 (snapshot 03-11, the last data day): the same segments, no moves.
    Moves in the week of 03-02: at_risk → champions (Ann), champions → at_risk (Cat); the champions'
    net sales that week are Ann's 30.00."""
    rows = scenarios.query(
        "select s.week_start, c.email, s.snapshot_date, s.recency_days, s.frequency, s.monetary,"
        " s.r_score, s.f_score, s.m_score, s.segment"
        " from metrics.ecommerce_customer_segments as s"
        " join marts.customers as c on c.workspace_id = s.workspace_id and c.person_id = s.person_id"
        " where s.workspace_id = 'ecom-cohorts' and s.week_start >= '2026-02-23'"
        " order by s.week_start, c.email"
    )
    table = {(r["week_start"], r["email"].split("@")[0]): tuple(list(r.values())[2:]) for r in rows}
    feb23, mar2, mar9 = date(2026, 2, 23), date(2026, 3, 2), date(2026, 3, 9)
    assert len(table) == 12
    assert table[feb23, "ann"] == (date(2026, 3, 1), 14, 2, Decimal("130"), 2, 4, 5, "at_risk")
    assert table[feb23, "ben"] == (date(2026, 3, 1), 29, 1, Decimal("80"), 1, 1, 1, "hibernating")
    assert table[feb23, "cat"] == (date(2026, 3, 1), 9, 2, Decimal("100"), 4, 4, 4, "champions")
    assert table[feb23, "dov"] == (date(2026, 3, 1), 4, 1, Decimal("90"), 5, 1, 2, "new")
    assert table[mar2, "ann"] == (date(2026, 3, 8), 3, 3, Decimal("160"), 5, 5, 5, "champions")
    assert table[mar2, "cat"] == (date(2026, 3, 8), 16, 2, Decimal("100"), 2, 4, 4, "at_risk")
    assert [table[mar9, name][-1] for name in ("ann", "ben", "cat", "dov")] == \
        ["champions", "hibernating", "at_risk", "new"]
    assert table[mar9, "ann"][:2] == (date(2026, 3, 11), 6)

    moves = scenarios.query(
        "select week_start, from_segment, to_segment, customers from metrics.ecommerce_segment_moves"
        " where workspace_id = 'ecom-cohorts' and week_start >= '2026-03-02' order by week_start, from_segment"
    )
    assert [tuple(m.values()) for m in moves] == [(mar2, "at_risk", "champions", 1), (mar2, "champions", "at_risk", 1)]
    weekly = {r["segment"]: r for r in scenarios.query(
        "select segment, customers, week_net_sales, customers_moved_in from metrics.ecommerce_segment_weekly"
        " where workspace_id = 'ecom-cohorts' and week_start = '2026-03-02'")}
    assert {name: (row["customers"], row["week_net_sales"], row["customers_moved_in"])
            for name, row in weekly.items()} == {
        "champions": (1, Decimal("30"), 1), "at_risk": (1, Decimal("0"), 1),
        "new": (1, Decimal("0"), 0), "hibernating": (1, Decimal("0"), 0)}


def test_the_segments_last_day_is_the_daily_metrics_last_day_without_waiting_for_them(scenarios):
    """The RFM segments' weeks end at each shop's last data day, ecommerce_daily_metrics' last day, and
    leave out what that table leaves out (ecom-no-rate, a shop missing an exchange rate). They take it
    from the orders and refunds marts, not from the table, so that in a build the segments (the
    slowest node) start beside the daily tables instead of after them: neither the weeks nor their
    day digests may depend on ecommerce_daily_metrics, directly or through another model."""
    daily = {row["workspace_id"]: row["last_day"] for row in scenarios.query(
        "select workspace_id, max(date) as last_day from metrics.ecommerce_daily_metrics group by workspace_id")}
    weeks = {row["workspace_id"]: row["last_day"] for row in scenarios.query(
        "select workspace_id, last_day from intermediate.int_ecommerce_segment_weeks")}
    assert weeks and "ecom-no-rate" not in weeks and "ecom-no-rate" not in daily
    assert weeks == {workspace: day for workspace, day in daily.items() if workspace in weeks}
    assert set(daily) - set(weeks) == set(), daily  # every shop with daily metrics has customers here
    nodes = json.loads(manifest_path().read_text())["nodes"]

    def upstream(unique_id: str) -> set[str]:
        found, todo = set(), [unique_id]
        while todo:
            node = nodes.get(todo.pop())
            parents = set(node["depends_on"]["nodes"]) if node else set()
            todo.extend(parents - found)
            found |= parents
        return found

    for model in ("int_ecommerce_segment_weeks", "int_ecommerce_segment_day_digests", "ecommerce_customer_segments"):
        assert "model.abos.ecommerce_daily_metrics" not in upstream(f"model.abos.{model}"), model


def test_cohort_retention_metrics_count_only_complete_months(scenarios):
    """ecom-cohorts (see the cohort test): the last data month is March 2026, so months before it
    are complete. January cohort (2 customers): month 1 is February, complete: Ann bought, so
    customer retention 1/2; net sales 30 against January's 180, revenue retention 30/180 =
    0.166667. Month 3 (April) is not reached: parts 0, ratios null. February cohort: month 1 is
    March, still running: nothing counted yet."""
    rows = scenarios.query(
        "select date, cohort_customers, retained_customers_m1, cohort_customers_m1, customer_retention_m1,"
        " cohort_net_sales_m1, first_month_net_sales_m1, revenue_retention_m1, cohort_customers_m3,"
        " customer_retention_m3, revenue_retention_m12"
        " from metrics.ecommerce_cohort_metrics where workspace_id = 'ecom-cohorts' order by date")
    assert [tuple(r.values()) for r in rows] == [
        (date(2026, 1, 1), 2, 1, 2, Decimal("0.5"), Decimal("30"), Decimal("180"), Decimal("0.166667"), 0, None, None),
        (date(2026, 2, 1), 2, 0, 0, None, Decimal("0"), Decimal("0"), None, 0, None, None),
    ]


def test_segment_metrics_and_slices_by_week(scenarios):
    """ecom-cohorts (see the RFM test): four customers scored each week, dated on the snapshot day.
    Net sales within the week: 02-23..03-01 Dov's 90.00; 03-02..03-08 Ann's 30.00; 03-09..03-11
    nothing (Dov's order was cancelled). The slices of the week of 03-02: one customer in each of
    champions, at_risk, new and hibernating; net sales only in champions (zero slices left out)."""
    rows = scenarios.query(
        "select date, segment_customers, segment_net_sales from metrics.ecommerce_segment_metrics"
        " where workspace_id = 'ecom-cohorts' and date >= '2026-03-01' order by date")
    assert [tuple(r.values()) for r in rows] == [
        (date(2026, 3, 1), 4, Decimal("90")), (date(2026, 3, 8), 4, Decimal("30")), (date(2026, 3, 11), 4, Decimal("0"))]
    slices = scenarios.query(
        "select metric, dimension, dimension_value, value from metrics.ecommerce_segment_slices"
        " where workspace_id = 'ecom-cohorts' and date = '2026-03-08' order by metric, dimension_value")
    assert [tuple(r.values()) for r in slices] == [
        ("segment_customers", "segment", "at_risk", Decimal("1")),
        ("segment_customers", "segment", "champions", Decimal("1")),
        ("segment_customers", "segment", "hibernating", Decimal("1")),
        ("segment_customers", "segment", "new", Decimal("1")),
        ("segment_net_sales", "segment", "champions", Decimal("30")),
    ]


def test_customer_base_by_day(scenarios):
    """ecom-cohorts (see the cohort test), levels at each day's end:
      01-10 Ann buys: 1 customer, no repeat, net 100 → 100 per customer
      01-31 Ben (local day): 2, net 180 → 90
      02-15 Ann's second purchase day: 3 customers (Cat came 02-10), 1 repeat → 1/3; net 290
      02-20 Cat's second (40) and Ann's refund (−20): 2 repeat of 3; net 310 → 103.3333
      02-25 Dov: 4 customers, 2/4; net 400 → 100
      03-05 Ann's third purchase: still 2 repeat; net 430 → 107.5; 03-11 (Dov's cancelled order): the same."""
    rows = scenarios.query(
        "select date, customers_to_date, repeat_customers_to_date, repeat_purchase_rate, net_sales_to_date,"
        " net_sales_per_customer from metrics.ecommerce_customer_metrics where workspace_id = 'ecom-cohorts'"
        " order by date")
    by_day = {row["date"]: tuple(row.values())[1:] for row in rows}
    assert min(by_day) == date(2026, 1, 10) and max(by_day) == date(2026, 3, 11) and len(by_day) == 61
    D = Decimal
    assert by_day[date(2026, 1, 10)] == (1, 0, D("0"), D("100"), D("100"))
    assert by_day[date(2026, 1, 31)] == (2, 0, D("0"), D("180"), D("90"))
    assert by_day[date(2026, 2, 15)] == (3, 1, D("0.333333333"), D("290"), D("96.6667"))
    assert by_day[date(2026, 2, 20)] == (3, 2, D("0.666666667"), D("310"), D("103.3333"))
    assert by_day[date(2026, 2, 25)] == (4, 2, D("0.5"), D("400"), D("100"))
    assert by_day[date(2026, 3, 5)] == by_day[date(2026, 3, 11)] == (4, 2, D("0.5"), D("430"), D("107.5"))


def test_customer_values_read_purchase_days_and_fit_only_with_enough_customers(scenarios):
    """ecom-cohorts as of its last data day 2026-03-11 (see the cohort test); sold orders by local
    day, net of discounts (refunds are not purchases: Ann's 20.00 refund changes nothing):
      Ann 01-10, 02-15, 03-05 → 2 repeat days, recency 54 days, age 60, mean repeat value (50 + 30) / 2 = 40
      Ben 01-31              → 0, 0, age 39 (31 Jan → 11 Mar), 0
      Cat 02-10, 02-20       → 1, 10, 29, 40
      Dov 02-25 (03-10 cancelled) → 0, 0, 14, 0
    Four customers are too few to fit: the histories are written, the predictions are empty, on
    both databases (the table the `insights/customer_values` asset writes)."""
    found, params = workspace_customer_values(scenarios.settings.warehouse.query, "ecom-cohorts", "USD",
                                              date(2026, 3, 11))
    assert params == {"skipped": "4 customers, 2 with a repeat purchase: a fit needs 50 and 10"}
    scenarios.settings.warehouse.upsert("insights.customer_values", found, key=["workspace_id", "person_id"],
                                        replace={"workspace_id": "ecom-cohorts"})
    rows = scenarios.query(
        "select c.email, v.first_order_date, v.last_order_date, v.frequency, v.recency_days, v.age_days, v.monetary,"
        " v.probability_alive, v.predicted_value_12m, v.as_of, v.currency from insights.customer_values v"
        " join marts.customers c on c.workspace_id = v.workspace_id and c.person_id = v.person_id"
        " where v.workspace_id = 'ecom-cohorts' order by c.email")
    table = {row["email"].split("@")[0]: tuple(row.values())[1:] for row in rows}
    d = date
    assert table == {
        "ann": (d(2026, 1, 10), d(2026, 3, 5), 2, 54, 60, 40.0, None, None, d(2026, 3, 11), "USD"),
        "ben": (d(2026, 1, 31), d(2026, 1, 31), 0, 0, 39, 0.0, None, None, d(2026, 3, 11), "USD"),
        "cat": (d(2026, 2, 10), d(2026, 2, 20), 1, 10, 29, 40.0, None, None, d(2026, 3, 11), "USD"),
        "dov": (d(2026, 2, 25), d(2026, 2, 25), 0, 0, 14, 0.0, None, None, d(2026, 3, 11), "USD"),
    }


def test_incremental_rerun_on_postgres_with_no_new_load_leaves_every_table_as_it_was(postgres_scenarios):
    """A second run on Postgres with no load since the first build: the incremental marts find no
    pending load (int_loads_pending), so int_ecommerce_changes lists nothing, every incremental model
    deletes and rebuilds nothing, and every table stays exactly as the first build made it. The end
    hook empties the change set by truncating it: no page of the first build's change set (every
    order and person) stays behind as dead rows for the next run's readers to scan."""
    before = snapshot(postgres_scenarios)
    # metric_values and forecast_metrics read the SaaS tables too, which this build has not made
    run_dbt(postgres_scenarios.settings, "run", "-s", "int_loads_pending+", "--exclude", "metric_values",
            "forecast_metrics", "int_saas_changed_subscriptions+", "invoices+", "invoice_lines+")
    assert postgres_scenarios.query("select count(*) as n from intermediate.int_loads_pending")[0]["n"] == 0
    assert snapshot(postgres_scenarios) == before
    size = "select pg_relation_size('intermediate.int_ecommerce_changes') as bytes"
    assert postgres_scenarios.query(size) == [{"bytes": 0}]


def test_segments_on_postgres_are_written_by_week_and_read_through_their_weeks_index(postgres_scenarios, monkeypatch):
    """On Postgres the segments are written in week order with an index on (workspace, week)
    (segment_weeks_index, macros/incremental_segments.sql), so an incremental build reads the
    rebuilt weeks alone: with sequential scans disabled, no statement of a build that rebuilds the
    last weeks (the delete, the first week's update, the week before's read, the key and
    relationships tests) scans the table; the delete still removes what it did (the rows of a
    workspace the weeks no longer list, in a kept week, and a week before the window) and keeps the
    rest as it was; the rebuilt weeks go to the table's end in week order; and the scoped tests,
    read through the index, still fail on a duplicate and on an orphan planted in a rebuilt week."""
    warehouse = postgres_scenarios
    segments = "metrics.ecommerce_customer_segments"
    weeks_of = f"select week_start from {segments} order by ctid"
    in_order = [row["week_start"] for row in warehouse.query(weeks_of)]
    assert in_order == sorted(in_order)
    # this table's indexes alone (pg_indexes may run pg_get_indexdef on every index of the database)
    indexes = warehouse.query("select pg_get_indexdef(indexrelid) as indexdef from pg_index"
                              f" where indrelid = '{segments}'::regclass")
    assert [row["indexdef"].split(" USING ")[1] for row in indexes] == ["btree (workspace_id, week_start)"], indexes
    rows = partial(rows_by_key, warehouse, segments, TABLES[segments])
    before = rows()
    # the shop with the most weeks, rebuilt from its third-to-last: its digests of that week altered
    workspace, weeks = max(((w, sorted({r["week_start"] for r in before if r["workspace_id"] == w}))
                            for w in {r["workspace_id"] for r in before}), key=lambda found: len(found[1]))
    assert len(weeks) >= 4, weeks
    rebuilt_from = weeks[-3]
    columns = ", ".join(before[0])
    one_week = f" from {segments} where workspace_id = %s and week_start = %s"
    with warehouse.settings.warehouse.transaction() as sql:
        assert sql.execute("update intermediate.int_ecommerce_segment_day_digests__built set digest = digest + 1"
                           " where workspace_id = %s and date_day >= %s and date_day < %s returning date_day",
                           (workspace, rebuilt_from, rebuilt_from + timedelta(days=7)))
        sql.execute(f"insert into {segments} ({columns}) select {columns.replace('workspace_id', '%s', 1)}"
                    + one_week, ("ghost-shop", workspace, weeks[1]))
        sql.execute(f"insert into {segments} ({columns}) select {columns.replace('week_start', '%s', 1)}"
                    + one_week, (weeks[0] - timedelta(days=7), workspace, weeks[0]))
    scans = f"select seq_scan from pg_stat_user_tables where relid = '{segments}'::regclass"
    seq_scans = warehouse.query(scans)[0]["seq_scan"]
    monkeypatch.setenv("PGOPTIONS", "-c enable_seqscan=off")
    run_dbt(warehouse.settings, "build", "-s", "int_ecommerce_segment_weeks", "ecommerce_customer_segments")
    assert warehouse.query(scans)[0]["seq_scan"] == seq_scans  # read through the index alone
    weeks_built = warehouse.query("select refresh_from, first_week from intermediate.int_ecommerce_segment_weeks"
                                  " where workspace_id = %s", (workspace,))
    assert weeks_built == [{"refresh_from": rebuilt_from, "first_week": weeks[0]}], weeks_built
    assert rows() == before  # the ghost shop's rows and the week before the window gone, the rest kept
    in_order = [row["week_start"] for row in warehouse.query(weeks_of)]
    tail = in_order[-sum(1 for r in before if r["workspace_id"] == workspace and r["week_start"] >= rebuilt_from):]
    assert tail == sorted(tail) and tail[0] == rebuilt_from, tail
    # planted in the last week after the build: each scoped test, read through the index, fails
    with warehouse.settings.warehouse.transaction() as sql:
        sql.execute(f"insert into {segments} ({columns}) select {columns}" + one_week + " limit 1",
                    (workspace, weeks[-1]))
        orphan = columns.replace("person_id", "'nobody'", 1)
        sql.execute(f"insert into {segments} ({columns}) select {orphan}" + one_week + " limit 1", (workspace, weeks[-1]))
    seq_scans = warehouse.query(scans)[0]["seq_scan"]
    try:
        with pytest.raises(AssertionError) as failed:
            run_dbt(warehouse.settings, "build", "-s", "ecommerce_customer_segments", "--resource-type", "test",
                    "--indirect-selection", "eager")
        assert "Failure in test unique_combination_ecommerce_customer_segments " in str(failed.value)
        assert "Failure in test relationships_ecommerce_customer_segments_person_id" in str(failed.value)
        assert warehouse.query(scans)[0]["seq_scan"] == seq_scans
    finally:
        with warehouse.settings.warehouse.transaction() as sql:
            sql.execute(f"delete from {segments} where person_id = 'nobody'")
            sql.execute(f"delete from {segments} where ctid in (select max(ctid)" + one_week
                        + " group by person_id having count(*) > 1)", (workspace, weeks[-1]))
    assert rows() == before
    # a table built before the index (none until its next full refresh) deletes as it did
    monkeypatch.delenv("PGOPTIONS")
    with warehouse.settings.warehouse.transaction() as sql:
        sql.execute(f"drop index metrics.{indexes[0]['indexdef'].split()[2]}")
        sql.execute(f"insert into {segments} ({columns}) select {columns.replace('workspace_id', '%s', 1)}"
                    + one_week, ("ghost-shop", workspace, weeks[1]))
    run_dbt(warehouse.settings, "run", "-s", "ecommerce_customer_segments")
    assert rows() == before


def test_the_segments_build_on_postgres_does_not_wait_on_a_table_another_session_drops(postgres_scenarios, monkeypatch):
    """The segments' pre-hook asks whether the table has its weeks' index (segment_weeks_indexed). Asked
    of `pg_indexes`, a plan that reads every index (here: nested loops off) ran `pg_get_indexdef` on each,
    which opens the relation it describes: it waited on an index whose table another session was
    dropping, then failed with "could not open relation with OID" once the drop committed (dbt's other
    thread drops a rebuilt table's backup: the CI failures of 2026-12-07). The look-up reads this
    table's own index rows: while another session holds the drop of an indexed table, the build
    neither waits on it nor fails. On the old look-up this test fails with that error."""
    warehouse = postgres_scenarios
    dropper = warehouse.settings.warehouse.postgres_connection()
    try:
        with dropper.cursor() as cursor:
            cursor.execute("create table public.dropped_meanwhile (note text)")
            cursor.execute("create index on public.dropped_meanwhile (note)")
            dropper.commit()
            cursor.execute("drop table public.dropped_meanwhile")  # held, not committed
        dropping = dropper.get_backend_pid()
        waited, done = [], threading.Event()

        def release_when_waited_on() -> None:
            """Commit the drop as soon as a backend waits for it (on the table or its index): what
            dbt's other thread does."""
            watcher = warehouse.settings.warehouse.postgres_connection()
            watcher.autocommit = True
            try:
                with watcher.cursor() as cursor:
                    while not done.is_set():
                        cursor.execute("select count(*) from pg_stat_activity where %s = any(pg_blocking_pids(pid))",
                                       (dropping,))
                        if cursor.fetchone()[0]:
                            waited.append(True)
                            dropper.commit()
                            return
                        time.sleep(0.05)
            finally:
                watcher.close()

        watcher = threading.Thread(target=release_when_waited_on, daemon=True)
        watcher.start()
        monkeypatch.setenv("PGOPTIONS", "-c enable_nestloop=off")
        try:
            run_dbt(warehouse.settings, "run", "-s", "ecommerce_customer_segments")
        finally:
            done.set()
            watcher.join(timeout=10)
        assert waited == []  # nothing in the build read the table being dropped
    finally:
        dropper.commit()
        dropper.close()


def test_the_changes_and_cohort_activity_read_the_large_tables_through_on_postgres(postgres_scenarios):
    """On Postgres the CTEs over the staged orders and accounts (int_ecommerce_changes) and the
    customers mart (int_ecommerce_cohort_activity), each read more than once, are not materialized:
    materialized, Postgres wrote every row to disk and, with no statistics on them, planned the
    anti-joins and the changed people's joins as merges of every row sorted (docs/performance.md,
    "Postgres after a small change: the CTEs read twice")."""
    materialized = postgres_materialized_ctes(postgres_scenarios, "int_ecommerce_changes",
                                              "int_ecommerce_cohort_activity")
    assert not materialized["int_ecommerce_changes"] & {"orders", "accounts"}, materialized
    assert "customers" not in materialized["int_ecommerce_cohort_activity"], materialized


def test_key_test_on_postgres_fails_on_each_duplicate_null_and_value_not_accepted(postgres_scenarios):
    """On Postgres the key test groups a 64-bit hash of each row's key (`concat_ws` of the key's
    values) and tests only the rows whose hash is shared or that fail a check
    (macros/test_unique_combination.sql, postgres__unique_combination_failures). It still reports
    every failure as the plain form does, one row each: a duplicated key ('rows share this key',
    counted 2), a null segment and a segment not accepted; and two rows whose keys differ but hash
    alike (`concat_ws` skips nulls: (null, day, person) and ('day', null, person) are both
    'day|person') are told apart, each failing for its own null column only."""
    warehouse = postgres_scenarios
    segments = "metrics.ecommerce_customer_segments"
    rows = warehouse.query(f"select * from {segments} order by workspace_id, week_start, person_id limit 4")
    duplicated, nulled, renamed, hashed = rows
    columns = ", ".join(duplicated)
    key = "workspace_id = %s and week_start = %s and person_id = %s"
    found = ("select workspace_id, week_start, person_id, failure, rows_sharing_key"
             " from audit.unique_combination_ecommerce_customer_segments")
    day = hashed["week_start"].isoformat()
    with warehouse.settings.warehouse.transaction() as sql:
        sql.execute(f"insert into {segments} ({columns}) select {columns} from {segments} where {key}",
                    (duplicated["workspace_id"], duplicated["week_start"], duplicated["person_id"]))
        sql.execute(f"update {segments} set segment = null where {key}",
                    (nulled["workspace_id"], nulled["week_start"], nulled["person_id"]))
        sql.execute(f"update {segments} set segment = 'platinum' where {key}",
                    (renamed["workspace_id"], renamed["week_start"], renamed["person_id"]))
        # the two rows of one hash: the row's columns with its workspace and week given
        given = columns.replace("workspace_id", "%s", 1).replace("week_start", "%s", 1)
        for workspace_id, week_start in ((None, hashed["week_start"]), (day, None)):
            sql.execute(f"insert into {segments} ({columns}) select {given} from {segments} where {key}",
                        (workspace_id, week_start, hashed["workspace_id"], hashed["week_start"], hashed["person_id"]))
    try:
        with pytest.raises(AssertionError) as failed:
            run_dbt(warehouse.settings, "test", "-s", "unique_combination_ecommerce_customer_segments",
                    "--store-failures")
        assert "Failure in test unique_combination_ecommerce_customer_segments " in str(failed.value), \
            str(failed.value)[-3000:]
        assert sorted(warehouse.query(found), key=repr) == sorted([
            {**{name: duplicated[name] for name in ("workspace_id", "week_start", "person_id")},
             "failure": "rows share this key", "rows_sharing_key": 2},
            {**{name: nulled[name] for name in ("workspace_id", "week_start", "person_id")},
             "failure": "null segment", "rows_sharing_key": 1},
            {**{name: renamed[name] for name in ("workspace_id", "week_start", "person_id")},
             "failure": "value not accepted: segment", "rows_sharing_key": 1},
            {"workspace_id": None, "week_start": hashed["week_start"], "person_id": hashed["person_id"],
             "failure": "null workspace_id", "rows_sharing_key": 1},
            {"workspace_id": day, "week_start": None, "person_id": hashed["person_id"],
             "failure": "null week_start", "rows_sharing_key": 1}], key=repr)
    finally:
        with warehouse.settings.warehouse.transaction() as sql:
            sql.execute(f"delete from {segments} where workspace_id is null or week_start is null")
            sql.execute(f"delete from {segments} where ctid = (select max(ctid) from {segments} where {key})",
                        (duplicated["workspace_id"], duplicated["week_start"], duplicated["person_id"]))
            for row in (nulled, renamed):
                sql.execute(f"update {segments} set segment = %s where {key}",
                            (row["segment"], row["workspace_id"], row["week_start"], row["person_id"]))
    run_dbt(warehouse.settings, "test", "-s", "unique_combination_ecommerce_customer_segments")


def test_key_test_on_duckdb_groups_one_hash_of_the_key(duckdb_scenarios):
    """On DuckDB too the key test groups the table's rows by one 64-bit hash of their key and tests
    exactly only the candidates (macros/test_unique_combination.sql): grouping the key's columns, two
    of them text, was the test's largest cost on the segments' 17 M rows at scale 1
    (docs/performance.md, "The full `dbt build` on DuckDB: the key tests by hash"). Its failure rows
    are those of the plain form: test_scoped_data_tests_fail_on_what_the_run_rebuilt."""
    warehouse = duckdb_scenarios
    test = "unique_combination_ecommerce_customer_segments"
    run_dbt(warehouse.settings, "compile", "-s", test)
    compiled = next((warehouse.settings.home / "dbt-target" / "compiled").rglob(f"{test}.sql")).read_text()
    plan = "\n".join(str(value) for row in warehouse.query("explain " + compiled) for value in row.values())
    groupings = re.findall(r"Groups:(.*?)Aggregates", plan, re.DOTALL)
    assert groupings, plan
    # the hashed rows' aggregate groups one value; the exact test proper groups the key's three columns
    assert sorted(len(re.findall(r"#\d+", grouping)) for grouping in groupings) == [1, 3], plan


def test_same_results_on_duckdb_and_postgres(duckdb_scenarios, postgres_scenarios):
    """Every ecommerce table holds the same rows on both databases (load ids differ by nature)."""
    for table, key in TABLES.items():
        if table in HASHED:
            continue
        on_duckdb = rows_by_key(duckdb_scenarios, table, key, drop=("order_load_epoch",))
        on_postgres = rows_by_key(postgres_scenarios, table, key, drop=("order_load_epoch",))
        assert on_duckdb, table
        assert on_duckdb == on_postgres, table


def test_a_workspaces_window_starts_at_the_last_day_its_tables_hold_now(duckdb_scenarios):
    """int_ecommerce_refresh_windows takes each workspace's last day from what the daily tables hold
    when the run starts, not from a record of an earlier run: with the last three days of one shop's
    rows gone from ecommerce_daily_slices alone (a build killed between tables, rows deleted by
    hand), a run with no new load starts that shop's window at or before the first missing day and
    puts the rows back. A window from a stale last day (the day the tables held at the last build,
    or another table's) would start after them and leave them missing."""
    warehouse = duckdb_scenarios
    slices = "metrics.ecommerce_daily_slices"
    key = TABLES[slices]
    held = warehouse.query(f"select workspace_id, count(distinct date) as days from {slices}"
                           " group by workspace_id order by days desc, workspace_id")
    workspace = held[0]["workspace_id"]
    assert held[0]["days"] >= 4, held
    before = warehouse.query(f"select * from {slices} where workspace_id = %s order by {key}", (workspace,))
    missing = sorted({row["date"] for row in before})[-3:]
    with warehouse.settings.warehouse.transaction() as sql:
        sql.execute(f"delete from {slices} where workspace_id = %s and date >= %s", (workspace, missing[0]))
    run_dbt(warehouse.settings, "run", *ECOMMERCE)
    [window] = warehouse.query("select refresh_from from intermediate.int_ecommerce_refresh_windows"
                               " where workspace_id = %s", (workspace,))
    assert window["refresh_from"] <= missing[0], (window, missing)
    after = warehouse.query(f"select * from {slices} where workspace_id = %s order by {key}", (workspace,))
    assert after == before


def test_scoped_data_tests_fail_on_what_the_run_rebuilt(duckdb_scenarios):
    """On an incremental `dbt build` the segments' key test reads the weeks the run rebuilt (from
    int_ecommerce_segment_weeks' refresh_from, written into the test as constants) and order_lines'
    the lines of the orders it rebuilt (int_ecommerce_changes) and every line sharing a key with one
    of them (macros get_where_subquery, segment_rebuilt_rows, rebuilt_rows_disjuncts). Each still
    fails on what is wrong there: a duplicate, a null segment and a segment not among the accepted
    values (folded into the key test: macros/test_unique_combination.sql) planted in the rebuilt week, and a
    line of a rebuilt order that repeats a kept line's key (the kept line is not rebuilt, the
    duplicate falls across the two); a duplicate in an older week and of a kept order's line are not
    read (`dbt test` and `dbt build --full-refresh` read every row: test_saas_models'
    test_data_tests_read_the_rebuilt_rows_and_fail_on_them)."""
    warehouse = duckdb_scenarios
    [weeks] = warehouse.query(
        "select weeks.* from intermediate.int_ecommerce_segment_weeks as weeks where weeks.last_week > weeks.first_week"
        " and (select count(distinct week_start) from metrics.ecommerce_customer_segments as s"
        "      where s.workspace_id = weeks.workspace_id) > 1 order by workspace_id limit 1")
    workspace = weeks["workspace_id"]
    segment = ("select * from metrics.ecommerce_customer_segments where workspace_id = %s and week_start = %s"
               " order by person_id limit 3")
    rebuilt, nulled, renamed = warehouse.query(segment, (workspace, weeks["last_week"]))
    [kept] = warehouse.query(segment.replace("= %s order", "< %s order").replace("limit 3", "limit 1"),
                             (workspace, weeks["last_week"]))
    # three orders of the workspace with lines: one rebuilt (in the change set), two kept
    changed_order, kept_order, other_order = [row["order_id"] for row in warehouse.query(
        "select order_id from marts.order_lines where workspace_id = %s group by order_id order by order_id limit 3",
        (workspace,))]
    line = "select * from marts.order_lines where workspace_id = %s and order_id = %s order by order_line_id limit 1"
    [kept_line] = warehouse.query(line, (workspace, kept_order))
    [other_line] = warehouse.query(line, (workspace, other_order))
    found_segments = ("select week_start, person_id, failure from audit.unique_combination_ecommerce_customer_segments"
                      " order by week_start, person_id, failure")
    found_lines = "select order_line_id, failure from audit.unique_combination_order_lines order by order_line_id"
    all_weeks = warehouse.query("select * from intermediate.int_ecommerce_segment_weeks")
    changes = warehouse.query("select * from intermediate.int_ecommerce_changes")
    segments_columns = ", ".join(rebuilt)
    with warehouse.settings.warehouse.transaction() as sql:
        # this run rebuilt the workspace's last week and nothing of the others
        sql.execute("update intermediate.int_ecommerce_segment_weeks set refresh_from = case when workspace_id = %s"
                    " then last_week else cast('9999-12-27' as date) end", (workspace,))
        for row in (rebuilt, kept):
            sql.execute(f"insert into metrics.ecommerce_customer_segments ({segments_columns})"
                        f" select {segments_columns} from metrics.ecommerce_customer_segments"
                        " where workspace_id = %s and week_start = %s and person_id = %s",
                        (workspace, row["week_start"], row["person_id"]))
        sql.execute("update metrics.ecommerce_customer_segments set segment = null"
                    " where workspace_id = %s and week_start = %s and person_id = %s",
                    (workspace, nulled["week_start"], nulled["person_id"]))
        sql.execute("update metrics.ecommerce_customer_segments set segment = 'platinum'"
                    " where workspace_id = %s and week_start = %s and person_id = %s",
                    (workspace, renamed["week_start"], renamed["person_id"]))
        sql.execute("delete from intermediate.int_ecommerce_changes")
        sql.execute("insert into intermediate.int_ecommerce_changes (workspace_id, order_id) values (%s, %s)",
                    (workspace, changed_order))
        # a line of the rebuilt order under a kept line's key, and a plain copy of another kept line
        for row, order_id in ((kept_line, changed_order), (other_line, other_order)):
            sql.execute("insert into marts.order_lines select * replace (cast(%s as varchar) as order_id)"
                        " from marts.order_lines where workspace_id = %s and order_line_id = %s",
                        (order_id, workspace, row["order_line_id"]))
    try:
        # one build each: `dbt build` skips the segments' tests once a test upstream of them (order_lines') fails
        for test in ("unique_combination_ecommerce_customer_segments", "unique_combination_order_lines"):
            with pytest.raises(AssertionError) as failed:
                run_dbt(warehouse.settings, "build", "-s", test, "--store-failures")
            assert f"Failure in test {test} " in str(failed.value), str(failed.value)[-3000:]
        assert [(row["week_start"], row["person_id"], row["failure"]) for row in warehouse.query(found_segments)] == sorted([
            (weeks["last_week"], rebuilt["person_id"], "rows share this key"),
            (weeks["last_week"], nulled["person_id"], "null segment"),
            (weeks["last_week"], renamed["person_id"], "value not accepted: segment")])
        assert [(row["order_line_id"], row["failure"]) for row in warehouse.query(found_lines)] == [
            (kept_line["order_line_id"], "rows share this key")]
        # what was not read is there: the kept week's and the kept line's copies (`dbt test`, which reads
        # every row as test_saas_models' test shows, would fail on them; one dbt run less here)
        assert warehouse.query("select count(*) as n from metrics.ecommerce_customer_segments where workspace_id = %s"
                               " and week_start = %s and person_id = %s",
                               (workspace, kept["week_start"], kept["person_id"]))[0]["n"] == 2
        assert warehouse.query("select count(*) as n from marts.order_lines where workspace_id = %s and order_line_id = %s",
                               (workspace, other_line["order_line_id"]))[0]["n"] == 2
    finally:
        with warehouse.settings.warehouse.transaction() as sql:
            for row in (rebuilt, kept):  # the planted copy goes (DuckDB's rowid tells the two apart)
                sql.execute("delete from metrics.ecommerce_customer_segments where rowid = (select max(rowid)"
                            " from metrics.ecommerce_customer_segments where workspace_id = %s and week_start = %s"
                            " and person_id = %s)", (workspace, row["week_start"], row["person_id"]))
            for row in (nulled, renamed):
                sql.execute("update metrics.ecommerce_customer_segments set segment = %s"
                            " where workspace_id = %s and week_start = %s and person_id = %s",
                            (row["segment"], workspace, row["week_start"], row["person_id"]))
            for row in (kept_line, other_line):
                sql.execute("delete from marts.order_lines where rowid = (select max(rowid) from marts.order_lines"
                            " where workspace_id = %s and order_line_id = %s)", (workspace, row["order_line_id"]))
            sql.execute("delete from intermediate.int_ecommerce_changes")
            for row in changes:
                sql.execute("insert into intermediate.int_ecommerce_changes (workspace_id, order_id, person_id)"
                            " values (%s, %s, %s)", (row["workspace_id"], row["order_id"], row["person_id"]))
            for row in all_weeks:
                sql.execute("update intermediate.int_ecommerce_segment_weeks set refresh_from = %s"
                            " where workspace_id = %s", (row["refresh_from"], row["workspace_id"]))


# -- a simulated store: truth, late changes, incremental = full refresh -------------------------------


def reconcile(warehouse: ScenarioWarehouse, store_truth: dict, workspace: str) -> list[str]:
    """Differences between ecommerce_daily_metrics and the sandbox truth's revenue days."""
    expected = store_truth["workspaces"][workspace]["revenue"]["days"]
    ours = metric_days(warehouse, workspace)
    problems = [f"{day}: not in the truth" for day in ours if day.isoformat() not in expected]
    for day, values in expected.items():
        row = ours.get(date.fromisoformat(day))
        if row is None:
            if any(Decimal(str(value)) != 0 for value in values.values()):
                problems.append(f"{day}: missing, truth has {values}")
            continue
        problems += [
            f"{day} {name}: ours {row[name]}, truth {value}"
            for name, value in values.items()
            if Decimal(str(value)) != Decimal(row[name])
        ]
    return problems


def snapshot(warehouse: ScenarioWarehouse) -> dict[str, list[dict]]:
    return {table: rows_by_key(warehouse, table, key) for table, key in TABLES.items()}


def plain_orders(store, workspace: str):
    """Stored orders that were placed, never refunded, cancelled or marked as test, oldest first."""
    for stored in store.iter_objects(workspace, "shopify", "order"):
        body = stored.body
        if not body["refunds"] and body["cancelledAt"] is None and not body["test"]:
            yield stored


def change_late(store, workspace: str, older_than: int) -> dict[str, tuple[str, int]]:
    """Late changes the simulation does not make by itself, to orders placed before `older_than`:
    an order edit (its last line removed, a unit added to the first, as Shopify's order editing does)
    and a cancellation weeks after the order. Returns `{"edited"|"cancelled": (order gid, lines)}`.

    The store's truth is computed from what it serves, so it follows these changes too.
    """
    changed: dict[str, tuple[str, int]] = {}
    for stored in plain_orders(store, workspace):
        body = stored.body
        if stored.created >= older_than - 14 * 86400 or len(changed) == 2:
            break
        if "edited" not in changed and len(body["lineItems"]) >= 2:
            body["lineItems"] = body["lineItems"][:-1]
            body["lineItems"][0]["quantity"] += 1
            changed["edited"] = (body["id"], len(body["lineItems"]))
        elif "cancelled" not in changed:
            body["cancelledAt"] = iso(store.clock)
            body["cancelReason"] = "CUSTOMER"
            changed["cancelled"] = (body["id"], len(body["lineItems"]))
        else:
            continue
        body["updatedAt"] = iso(store.clock)
        store.put(
            workspace, "shopify", "order", stored.id, created=stored.created, updated=store.clock, body=body
        )
    assert set(changed) == {"edited", "cancelled"}, changed
    return changed


def move_identities(store, workspace: str, older_than: int) -> dict[str, tuple[str, str]]:
    """Changes that move people, which the incremental marts must follow (int_ecommerce_changes): an
    older order's e-mail changed to an earlier buyer's (the order leaves its person for that one,
    whose first order may be another), and an account's e-mail changed to a guest's (the customers
    mart then matches the guest to the account). Returns `{"moved": (order gid, new e-mail),
    "matched": (customer gid, guest e-mail)}`."""
    orders = [stored for stored in plain_orders(store, workspace) if stored.created < older_than - 14 * 86400]
    accounts = list(store.iter_objects(workspace, "shopify", "customer"))
    account_emails = {stored.body["email"] for stored in accounts}
    earlier, moved = orders[0], orders[len(orders) // 2]
    body = moved.body
    body["email"], body["updatedAt"] = earlier.body["email"], iso(store.clock)
    store.put(workspace, "shopify", "order", moved.id, created=moved.created, updated=store.clock, body=body)
    # a buyer who only ever checked out as a guest, under an e-mail no account has
    with_account = account_emails | {stored.body["email"] for stored in store.iter_objects(workspace, "shopify", "order")
                                     if stored.body["customer"] is not None}
    guest = next(stored.body["email"] for stored in orders
                 if stored.body["customer"] is None and stored.body["email"] not in with_account)
    account = accounts[0]
    body = account.body
    body["email"], body["defaultEmailAddress"]["emailAddress"], body["updatedAt"] = guest, guest, iso(store.clock)
    store.put(workspace, "shopify", "customer", account.id, created=account.created, updated=store.clock, body=body)
    return {"moved": (moved.body["id"], earlier.body["email"]), "matched": (account.body["id"], guest)}


def an_order_known_by_its_account_alone(store, workspace: str, placed_after: int) -> tuple[str, str]:
    """Before the first sync: the e-mail taken off an order placed after `placed_after` (younger than
    the orders the other changes pick) whose account has that e-mail and no other order (and is not
    the first account, whose e-mail move_identities changes), and which no other order shares (an order without an e-mail, as Shopify's POS or API creates them). Its person
    is its account's e-mail (int_orders_identified); the truth's, an order without an e-mail, holds
    this order alone too. Returns `(order gid, customer gid)`."""
    orders = [stored for stored in store.iter_objects(workspace, "shopify", "order") if not stored.body["test"]]
    accounts = {stored.body["id"]: (stored.body["email"] or "").lower()
                for stored in store.iter_objects(workspace, "shopify", "customer")}
    emails = [(stored.body["email"] or "").lower() for stored in orders]
    buyers = [stored.body["customer"]["id"] for stored in orders if stored.body["customer"]]
    assert "" not in emails  # the truth would take every order without an e-mail for one person
    for stored in orders:
        body = stored.body
        customer = (body["customer"] or {}).get("id")
        if (stored.created > placed_after and customer and customer != next(iter(accounts))
                and accounts.get(customer) == body["email"].lower()
                and emails.count(body["email"].lower()) == 1 and buyers.count(customer) == 1):
            body["email"] = None
            store.put(workspace, "shopify", "order", stored.id, created=stored.created, updated=stored.updated, body=body)
            return body["id"], customer
    raise AssertionError(f"no order in {workspace} whose account alone could name its buyer")


def delete_account(store, workspace: str, customer: str) -> None:
    """The merchant deletes an account (gone from the API); `forget` then removes its raw rows."""
    account = next(stored for stored in store.iter_objects(workspace, "shopify", "customer")
                   if stored.body["id"] == customer)
    store.put(workspace, "shopify", "customer", account.id, created=account.created, updated=store.clock,
              body=account.body, deleted=True)


def delete_order(store, workspace: str, older_than: int) -> str:
    """The merchant deletes an older order of a buyer with other orders (gone from the API, as the
    sandbox's `orders/delete` does); returns its gid. `forget` then removes its raw rows, as the
    webhook's targeted sync does: no load brings the deletion to the marts."""
    orders = [stored for stored in plain_orders(store, workspace) if stored.created < older_than - 14 * 86400]
    emails = [stored.body["email"] for stored in store.iter_objects(workspace, "shopify", "order")]
    stored = next(o for o in reversed(orders) if o.body["email"] and emails.count(o.body["email"]) >= 3)
    store.put(workspace, "shopify", "order", stored.id, created=stored.created, updated=store.clock,
              body=stored.body, deleted=True)
    return stored.body["id"]


def change_old_orders_for_segments(store, workspace: str, older_than: int) -> dict[str, tuple[str, str]]:
    """For the RFM segments rebuilt by week, in one shop: its oldest plain order shipped to another
    country (an input of the daily slices, not of the segments: it must not move the segments'
    rebuild earlier), and a unit added to the first line of an order placed about five weeks before
    `older_than` (its person's net sales change from that order's week: the weeks from it on are
    rebuilt, those before kept). Returns `{"shipped"|"edited": (order gid, createdAt)}`."""
    orders = list(plain_orders(store, workspace))
    shipped = orders[0]
    edited = next(stored for stored in orders if stored.created >= older_than - 35 * 86400)
    body = shipped.body
    address = body["shippingAddress"]
    body["shippingAddress"] = {**address, "countryCodeV2": "PT" if address["countryCodeV2"] != "PT" else "BR"}
    body["updatedAt"] = iso(store.clock)
    store.put(workspace, "shopify", "order", shipped.id, created=shipped.created, updated=store.clock, body=body)
    body = edited.body
    body["lineItems"][0]["quantity"] += 1
    body["updatedAt"] = iso(store.clock)
    store.put(workspace, "shopify", "order", edited.id, created=edited.created, updated=store.clock, body=body)
    return {"shipped": (shipped.body["id"], shipped.body["createdAt"]),
            "edited": (edited.body["id"], edited.body["createdAt"])}


def cancel_a_refunded_first_order(store, workspace: str, refunded_before: int, buys_again_after: int) -> str:
    """Before the first sync, for the RFM segments rebuilt by week: the first order of a buyer whose
    first order was refunded before `refunded_before` and whose next order is placed after
    `buys_again_after` is cancelled (as Shopify cancels a refunded order; the refund stands; the
    sandbox never makes such an order). Until that next order the person has a refund and no order, so
    no segment row, yet that refund counts in their monetary from then on: an incremental run that
    rebuilds the weeks between the two must read it, though the week before those has no row of
    theirs. Returns the cancelled order's gid."""
    orders: dict[str, list] = {}
    for stored in store.iter_objects(workspace, "shopify", "order"):
        if stored.body["email"] and not stored.body["test"]:
            orders.setdefault(stored.body["email"], []).append(stored)
    for first, *later in orders.values():
        body = first.body
        refunded = [datetime.fromisoformat(refund["createdAt"]).timestamp() for refund in body["refunds"]]
        if (refunded and max(refunded) < refunded_before and body["cancelledAt"] is None and later
                and all(order.created > buys_again_after for order in later)
                and any(order.body["cancelledAt"] is None for order in later)):
            body["cancelledAt"] = body["refunds"][-1]["createdAt"]
            store.put(workspace, "shopify", "order", first.id, created=first.created, updated=first.updated, body=body)
            return body["id"]
    raise AssertionError(f"no buyer in {workspace} whose refunded first order can be cancelled")


def local_monday(created_at: str, timezone: str) -> date:
    """The Monday of the week of an order's local day."""
    day = datetime.fromisoformat(created_at).astimezone(ZoneInfo(timezone)).date()
    return day - timedelta(days=day.weekday())


# The simulated shops' segments keep 10 weeks, so that the 12 days between the two builds move the
# window's first week on (the as-of day's week moves too); the default 26 would start at the first order.
SEGMENT_WEEKS = ("--vars", "{rfm_weeks: 10}")
# Rows of the BRL shop's segments marked after the first build (recency_days −1), by the week they
# are in: the first build's first week + 1 (the window's first week after the second build: kept,
# its previous segment dropped), + 2 (kept), and its last week (rebuilt: its snapshot day moved on).
MARKED_WEEKS = {"second": 7, "third": 14}
MARKED = "select week_start, person_id, recency_days, previous_segment from metrics.ecommerce_customer_segments" \
         " where workspace_id = %s and week_start = %s and previous_segment is not null order by person_id limit 1"


def mark_segment_rows(warehouse: ScenarioWarehouse, workspace: str) -> dict[str, dict]:
    """Set recency_days to −1 on one row of each of the MARKED_WEEKS and of the last week (the rows as
    they were are returned, to be put back)."""
    [weeks] = warehouse.query("select first_week, last_week from intermediate.int_ecommerce_segment_weeks"
                              " where workspace_id = %s", (workspace,))
    days = {name: weeks["first_week"] + timedelta(days=offset) for name, offset in MARKED_WEEKS.items()}
    marked = {name: warehouse.query(MARKED, (workspace, day))[0] for name, day in
              {**days, "last": weeks["last_week"]}.items()}
    with warehouse.settings.warehouse.transaction() as statements:
        for row in marked.values():
            statements.execute("update metrics.ecommerce_customer_segments set recency_days = -1"
                               " where workspace_id = %s and week_start = %s and person_id = %s",
                               (workspace, row["week_start"], row["person_id"]))
    return marked


def unmark_segment_rows(warehouse: ScenarioWarehouse, workspace: str, marked: dict[str, dict]) -> dict[str, dict]:
    """The marked rows after the run; then those still marked get their recency back."""
    after = {}
    for name, row in marked.items():
        [after[name]] = warehouse.query(
            "select recency_days, previous_segment from metrics.ecommerce_customer_segments"
            " where workspace_id = %s and week_start = %s and person_id = %s",
            (workspace, row["week_start"], row["person_id"]))
    with warehouse.settings.warehouse.transaction() as statements:
        for row in marked.values():
            statements.execute("update metrics.ecommerce_customer_segments set recency_days = %s"
                               " where workspace_id = %s and week_start = %s and person_id = %s and recency_days = -1",
                               (row["recency_days"], workspace, row["week_start"], row["person_id"]))
    return after


@pytest.fixture(scope="module", params=["duckdb", pytest.param("postgres", marks=pytest.mark.slow)])
def simulated(request, tmp_path_factory) -> dict:
    """The tiny simulated shops, synced and built; then 12 days later (late refunds, cancellations,
    one edited order, a guest's e-mail on an older person's account, a deleted order; in the BRL
    shop an old order shipped elsewhere and a later one edited, for the segments), synced and built
    incrementally, then fully refreshed. On DuckDB, and on Postgres under `slow`."""
    home = tmp_path_factory.mktemp("ecom-sim")
    warehouse_url = with_password(request.getfixturevalue("new_pg_database")()) if request.param == "postgres" else None
    store = build_store(home / "sandbox.sqlite", size="tiny", seed=7, as_of=date(2026, 3, 31))
    # refunded and cancelled before the BRL shop's rebuilt weeks (from about five weeks before the
    # first build: change_old_orders_for_segments), bought again in them
    result: dict = {"refund_first": cancel_a_refunded_first_order(
        store, "demo-br-store", refunded_before=store.clock - 50 * 86400, buys_again_after=store.clock - 28 * 86400)}
    # an order whose buyer only its account names, placed in the last ten days before the first sync
    result["vanishing"] = an_order_known_by_its_account_alone(store, "demo-us-store", placed_after=store.clock - 10 * 86400)
    shops = {
        spec.workspace: {
            "name": spec.name,
            "currency": spec.currency,
            "timezone": spec.timezone,
            "shopify": {},
        }
        for spec in SIZES["tiny"]
        if spec.source == "shopify"
    }
    result["workspaces"] = sorted(shops)
    with pytest.MonkeyPatch.context() as monkeypatch, serving(store, shops, home, warehouse_url, monkeypatch) as (
        settings, sandbox
    ):
        warehouse = ScenarioWarehouse(settings)

        sync_all(settings)
        write_workspaces_table(settings)
        run_dbt(settings, "build", *ECOMMERCE, *SEGMENT_WEEKS)
        result["truth_before"] = truth(store)
        result["reconciled_before"] = {ws: reconcile(warehouse, result["truth_before"], ws) for ws in shops}
        result["segment_weeks_before"] = {row["workspace_id"]: row for row in warehouse.query(
            "select * from intermediate.int_ecommerce_segment_weeks")}
        marked = mark_segment_rows(warehouse, "demo-br-store")

        sandbox.advance(days=12)
        result["changed"] = change_late(store, "demo-us-store", older_than=store.clock - 12 * 86400)
        result["moved"] = move_identities(store, "demo-us-store", older_than=store.clock - 12 * 86400)
        result["segment_changes"] = change_old_orders_for_segments(store, "demo-br-store",
                                                                   older_than=store.clock - 12 * 86400)
        # The changed orders are read through the connector's filtered bulk export rather than
        # page by page: the same rows arrive, without minutes of simulated query-cost pacing.
        monkeypatch.setattr(shopify_connector, "BULK_ABOVE", 0)
        result["deleted"] = delete_order(store, "demo-us-store", older_than=store.clock - 12 * 86400)
        delete_account(store, "demo-us-store", result["vanishing"][1])
        sync_all(settings)
        assert shopify_connector.forget(settings.warehouse, "demo-us-store", {
            "orders": [result["deleted"]], "customers": [result["vanishing"][1]]}) == {
            "orders": 1, "products": 0, "customers": 1}
        # Only what the second sync loaded is rebuilt. (`run`, not `build`: the tests run on the full
        # refresh below, which must hold the very same rows.)
        run_dbt(settings, "run", *ECOMMERCE, *SEGMENT_WEEKS)
        result["truth_after"] = truth(store)
        result["reconciled_after"] = {ws: reconcile(warehouse, result["truth_after"], ws) for ws in shops}
        result["segment_weeks"] = {row["workspace_id"]: row for row in warehouse.query(
            "select * from intermediate.int_ecommerce_segment_weeks")}
        # the SQL the incremental run compiled for a table built from the segments (its read of them)
        result["weekly_sql"] = (settings.home / "dbt-target" / "compiled" / "abos" / "models" / "metrics" / "customers"
                                / "ecommerce_segment_weekly.sql").read_text()
        result["marked"] = unmark_segment_rows(warehouse, "demo-br-store", marked)
        result["incremental"] = snapshot(warehouse)
        result["refresh_from"] = {row["workspace_id"]: row["refresh_from"] for row in warehouse.query(
            "select workspace_id, refresh_from from intermediate.int_ecommerce_refresh_windows")}
        result["refresh_days"] = {workspace: [row["date_day"] for row in warehouse.query(
            "select date_day from intermediate.int_ecommerce_refresh_days where workspace_id = %s order by date_day",
            (workspace,))] for workspace in shops}
        run_dbt(settings, "build", *ECOMMERCE, *SEGMENT_WEEKS, "--full-refresh")
        result["full_refresh"] = snapshot(warehouse)
    return result


def test_metrics_reconcile_with_the_sandbox_truth(simulated):
    """Every day of every simulated shop equals the truth's revenue (same definitions, computed from
    what the fake API serves), before and after 12 more days of late refunds and cancellations."""
    for workspace in simulated["workspaces"]:
        assert simulated["reconciled_before"][workspace] == [], workspace
        assert simulated["reconciled_after"][workspace] == [], workspace
    # the shops did have what this is about
    totals = simulated["truth_after"]["workspaces"]["demo-us-store"]["revenue"]["totals"]
    assert Decimal(totals["refunds"]) > 0 and Decimal(totals["discounts"]) > 0


def test_cohorts_agree_with_each_customers_acquisition_in_the_sandbox_truth(simulated):
    """Per simulated shop and first-order month: the cohort's size and its customers buying in each
    month since equal the truth's (each person's acquisition day and sold orders, from what the fake
    API serves); the registry's cohort metrics agree, month-N retention counting complete months."""
    cohorts, metrics = simulated["full_refresh"]["metrics.ecommerce_cohorts"], \
        simulated["full_refresh"]["metrics.ecommerce_cohort_metrics"]
    for workspace in simulated["workspaces"]:
        truth = simulated["truth_after"]["workspaces"][workspace]["cohorts"]
        built: dict[str, dict] = {}
        for row in (r for r in cohorts if r["workspace_id"] == workspace):
            cohort = built.setdefault(str(row["cohort_month"])[:7], {"customers": row["cohort_customers"], "active": []})
            cohort["active"].append(row["active_customers"])
        # the table runs to the last month with a refund too: such a month has no active customers
        trimmed = {month: {"customers": c["customers"], "active": c["active"][:len(truth[month]["active"])]}
                   for month, c in built.items() if month in truth}
        assert built.keys() == truth.keys() and trimmed == truth, workspace
        assert all(n == 0 for month, c in built.items() for n in c["active"][len(truth[month]["active"]):])
        assert sum(c["customers"] for c in truth.values()) > 100, workspace  # the shop has cohorts to check
        last_month = max(str(r["activity_month"])[:10] for r in cohorts if r["workspace_id"] == workspace)
        for row in (r for r in metrics if r["workspace_id"] == workspace):
            month = str(row["date"])[:7]
            assert row["cohort_customers"] == truth[month]["customers"], (workspace, month)
            year, zero_based = divmod(int(month[:4]) * 12 + int(month[5:]), 12)  # the month after
            month_1 = f"{year}-{zero_based + 1:02d}-01"
            if month_1 < last_month:  # complete: the cohort's month 1 is before the shop's last data month
                active = [*truth[month]["active"], 0]  # a refund-only last month has no buyers
                assert (row["retained_customers_m1"], row["cohort_customers_m1"]) == (
                    active[1], truth[month]["customers"]), (workspace, month)
            else:
                assert (row["retained_customers_m1"], row["customer_retention_m1"]) == (0, None), (workspace, month)


def test_incremental_run_after_late_changes_equals_a_full_refresh(simulated):
    incremental, full = simulated["incremental"], simulated["full_refresh"]
    for table in TABLES:
        assert incremental[table] == full[table], table
    lines = [row for row in incremental["marts.order_lines"] if row["workspace_id"] == "demo-us-store"]
    # The incremental run really kept rows of the first load and rewrote the changed orders only.
    loads = sorted({row["order_load_epoch"] for row in lines})
    assert len(loads) == 2
    order_id, line_count = simulated["changed"]["edited"]
    edited = [row for row in lines if row["order_id"] == order_id]
    assert len(edited) == line_count  # the line the edit removed is gone
    assert {row["order_load_epoch"] for row in edited} == {loads[-1]}
    order_id, line_count = simulated["changed"]["cancelled"]
    cancelled = [row for row in lines if row["order_id"] == order_id]
    assert len(cancelled) == line_count and all(row["is_cancelled"] for row in cancelled)
    # late changes reached past days: refunds made after the first sync, of orders from before it
    first_clock = datetime.fromisoformat(simulated["truth_before"]["clock"])
    refunds = incremental["marts.refunds"]
    assert any(r["created_at"] > first_clock and r["order_date"] < first_clock.date() for r in refunds)
    # People moved: the order whose e-mail changed is the earlier buyer's now, and the guest whose
    # e-mail an account took is matched to that account (both rebuilt incrementally, above).
    order_id, email = simulated["moved"]["moved"]
    person = next(row["person_id"] for row in incremental["marts.orders"] if row["order_id"] == order_id)
    assert person == hashlib.md5(f"email:{email}".encode()).hexdigest()
    customer_id, guest = simulated["moved"]["matched"]
    matched = [row for row in incremental["marts.customers"] if row["email"] == guest]
    assert [(row["customer_id"], row["is_guest"]) for row in matched] == [(customer_id, False)]
    # The account deleted in the shop took its e-mail from the order it alone named: no load brought
    # either, and the order (rebuilt as a vanished account's) is its own account's person now.
    order_id, customer_id = simulated["vanishing"]
    [vanished] = [row for row in incremental["marts.orders"] if row["order_id"] == order_id]
    assert vanished["person_id"] == hashlib.md5(f"customer:{customer_id}".encode()).hexdigest(), vanished
    # The order deleted in the shop left every mart (no load brought its deletion).
    deleted = simulated["deleted"]
    assert not [table for table in ("intermediate.int_orders_identified", "marts.orders", "marts.order_lines")
                if any(row["order_id"] == deleted for row in incremental[table])]
    # The daily tables were rebuilt by day: the late changes' days alone, and the days from the first
    # build's last day on; not in full.
    refresh_from = simulated["refresh_from"]["demo-us-store"]
    assert date(2000, 1, 1) < refresh_from <= first_clock.date(), refresh_from
    late_days = simulated["refresh_days"]["demo-us-store"]
    assert late_days and all(day < refresh_from for day in late_days), late_days


def test_segments_rebuild_only_the_weeks_whose_inputs_changed(simulated):
    """The RFM segments after the late changes (macros/incremental_segments.sql): each shop's segment
    tables were rebuilt from the first week whose segment inputs changed, not in full, and equal a
    full refresh (test above). The 10-week window moved on a week: its old first week is gone and
    the new one was kept, its previous segments dropped. In the BRL shop, an order shipped to another
    country (no segment input) before the window did not move the rebuild before the week of an
    order edited five weeks before the first build (a segment input): the weeks before that one were
    kept as they were (rows marked in them are still marked), those from it on rebuilt, the first
    build's last week among them (its snapshot day moved on). In the US shop the oldest changed
    order (edited, cancelled, moved to another person) is older than the window: it rebuilt from
    the window's first week. The tables built from the segments read those weeks as constants."""
    before, after = simulated["segment_weeks_before"], simulated["segment_weeks"]
    brl, brl_before = after["demo-br-store"], before["demo-br-store"]
    shipped, edited = (local_monday(created, "America/Sao_Paulo")
                       for _, created in (simulated["segment_changes"]["shipped"], simulated["segment_changes"]["edited"]))
    assert brl["refresh_from"] == edited, (brl, edited)
    assert brl["first_week"] == brl_before["first_week"] + timedelta(days=7)
    assert shipped < brl["first_week"] < edited < brl_before["last_week"] < brl["last_week"], (shipped, brl)
    marked = simulated["marked"]
    assert marked["second"] == {"recency_days": -1, "previous_segment": None}
    assert marked["third"]["recency_days"] == -1 and marked["third"]["previous_segment"] is not None
    assert marked["last"]["recency_days"] >= 0
    segments = simulated["incremental"]["metrics.ecommerce_customer_segments"]
    assert min(row["week_start"] for row in segments if row["workspace_id"] == "demo-br-store") == brl["first_week"]
    # A buyer with only a refund before the rebuilt weeks has no row in the week before them, and the
    # refund still counts in their monetary in the rebuilt weeks (equal to the full refresh: the test
    # above; a rebuild that started from the week before's rows alone would miss it).
    orders = {row["order_id"]: row for row in simulated["incremental"]["marts.orders"]}
    person = orders[simulated["refund_first"]]["person_id"]
    refunds = [row for row in simulated["incremental"]["marts.refunds"] if row["order_id"] == simulated["refund_first"]]
    assert refunds and max(row["refund_date"] for row in refunds) < brl["refresh_from"], refunds
    weeks = [row["week_start"] for row in segments if row["workspace_id"] == "demo-br-store" and row["person_id"] == person]
    assert weeks and brl["refresh_from"] - timedelta(days=7) not in weeks and min(weeks) >= brl["refresh_from"], weeks
    us = after["demo-us-store"]
    changed = [gid for gid, _ in simulated["changed"].values()] + [simulated["moved"]["moved"][0]]
    first_changed = min(orders[gid]["order_date"] for gid in changed)
    assert first_changed < us["first_week"] == us["refresh_from"], (first_changed, us)
    # The tables built from the segments read the rebuilt weeks by constants, a filter the scan
    # applies, not by a join of every segment row to the weeks (macros/incremental_segments.sql).
    weekly = simulated["weekly_sql"]
    assert "as segment_weeks" not in weekly, weekly
    assert f"segments.week_start >= cast('{brl['refresh_from'].isoformat()}' as date)" in weekly, weekly
    assert f"segments.week_start = cast('{brl['first_week'].isoformat()}' as date)" in weekly, weekly


@pytest.mark.slow
def test_a_changed_exchange_rate_rebuilds_the_cohort_money_of_the_months_from_its_day(tmp_path):
    """ecom-brl alone (see its cohort test: 100.00 BRL on 03-05, 45.00 BRL net on 03-06, 26.10 USD at
    each day's rate): the ECB's BRL rate of 03-06 is revised after the first build. The incremental
    run rebuilds the cohort money from that day's month for every customer, not only for changed
    people (int_ecommerce_cohort_activity: none changed here), so the cohort's reporting_net_sales
    moves and every ecommerce table equals a full refresh."""
    fixture = json.loads(FIXTURE.read_text())
    fixture["workspaces"] = {"ecom-brl": fixture["workspaces"]["ecom-brl"]}
    (tmp_path / "brl.json").write_text(json.dumps(fixture))
    with pytest.MonkeyPatch.context() as monkeypatch:
        warehouse = build_scenario(tmp_path / "brl.json", tmp_path / "home", None, monkeypatch,
                                   dbt_args=("build", *ECOMMERCE))
        cohort = "select reporting_net_sales from metrics.ecommerce_cohorts where workspace_id = 'ecom-brl'"
        assert warehouse.query(cohort) == [{"reporting_net_sales": Decimal("26.10")}]
        with warehouse.settings.warehouse.transaction() as statements:
            statements.execute("update fx.ecb_rates set units_per_eur = units_per_eur * 2"
                               " where currency = 'BRL' and day = '2026-03-06'")
        run_dbt(warehouse.settings, "run", *ECOMMERCE)
        incremental = snapshot(warehouse)
        moved = warehouse.query(cohort)
        run_dbt(warehouse.settings, "build", *ECOMMERCE, "--full-refresh")
        full = snapshot(warehouse)
    assert moved != [{"reporting_net_sales": Decimal("26.10")}], moved  # the 03-06 order's USD halved
    for table in TABLES:
        assert incremental[table] == full[table], table
