"""Small metric tables with hand-worked numbers, for questions' tests (tests/unit/test_ask_query.py, the ask API)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import yaml

from pipelines.packs import all_metrics, slice_tables
from pipelines.settings import Settings, load_settings
from pipelines.warehouse import Warehouse
from pipelines.workspaces import Workspaces, load_workspaces

# The workspaces the tables are about; "quiet" has no ask token.
WORKSPACES = {"workspaces": [
    {"id": "shop", "name": "Shop", "vertical": "ecommerce", "timezone": "America/New_York", "currency": "USD",
     "ask_token_env": "ASK_SHOP_TOKEN",
     "connectors": {"shopify": {"base_url": "https://shop.myshopify.com", "access_token_env": "SHOP_TOKEN"}}},
    {"id": "saas", "name": "SaaS", "vertical": "saas", "timezone": "UTC", "currency": "USD",
     "ask_token_env": "ASK_SAAS_TOKEN",
     "connectors": {"stripe": {"base_url": "https://api.stripe.com", "api_key_env": "SAAS_KEY"}}},
    {"id": "quiet", "name": "No API", "vertical": "saas", "timezone": "UTC", "currency": "USD",
     "connectors": {"stripe": {"base_url": "https://api.stripe.com", "api_key_env": "QUIET_KEY"}}},
]}
NOV = {day: date(2026, 11, day) for day in range(1, 31)}

# metric_values of workspace "shop": Monday Nov 2 to Wednesday Nov 4, and Monday Nov 9.
DAYS = {  # day: (gross_sales, discounts, orders)
    2: (100, 10, 1),
    3: (210, 21, 6),
    4: (0, 0, 0),
    9: (400, 40, 5),
}
# ecommerce_daily_slices by country (zero slices left out, as the model does): Nov 2 only US.
COUNTRY = [(2, "US", 100, 10, 1), (3, "US", 50, 5, 2), (3, "DE", 160, 16, 4)]
# The same days by two dimensions at once (ecommerce_daily_pair_slices), adding up to COUNTRY:
# country × customer type (gross_sales, discounts, orders), product × country (gross_sales, discounts).
COUNTRY_TYPE = [(2, "US", "new", 100, 10, 1), (3, "US", "new", 20, 2, 1), (3, "US", "returning", 30, 3, 1),
                (3, "DE", "returning", 160, 16, 4)]
PRODUCT_COUNTRY = [(2, "Tee", "US", 100, 10), (3, "Tee", "US", 30, 3), (3, "Mug", "US", 20, 2),
                   (3, "Tee", "DE", 160, 16)]
# SaaS: MRR and active customers, levels at each day's end; by plan, Starter falls to 0 on Nov 4.
SAAS_DAYS = {2: (1000, 10), 3: (1100, 11), 4: (1050, 10)}
# Active subscriptions, a level, on two days only: a series carries Nov 2's 8 forward to Nov 3 and 4.
SUBSCRIPTIONS = {2: 8, 5: 9}
PLANS = [(2, "Team", 1000), (3, "Team", 600), (3, "Starter", 500), (4, "Team", 1050)]
# RFM segments of "shop" on two weeks' snapshot days (Sundays Nov 8 and 15): customers and the
# week's net sales per segment (the at_risk net sales of 0 are left out of the slices).
SEGMENTS = [(8, "champions", 3, 300), (8, "at_risk", 2, 0), (15, "champions", 4, 250), (15, "hibernating", 1, 20)]
# Cohorts of "shop", dated on their month: (month, customers buying in month 1, cohort customers).
COHORTS = [(date(2026, 9, 1), 3, 10), (date(2026, 10, 1), 1, 5)]
# MRR by plan × billing currency (saas_daily_pair_slices), adding up to PLANS.
PLAN_CURRENCY = [(2, "Team", "USD", 1000), (3, "Team", "USD", 600), (3, "Starter", "EUR", 500),
                 (4, "Team", "USD", 700), (4, "Team", "EUR", 350)]


def write_metric_tables(warehouse: Warehouse) -> None:
    """metrics.metric_values, the slice and pair slice tables, holding DAYS, COUNTRY, COUNTRY_TYPE,
    PRODUCT_COUNTRY (and their customer type and product slices), SAAS_DAYS, SUBSCRIPTIONS, PLANS,
    PLAN_CURRENCY, SEGMENTS and COHORTS; and metrics.forecast_metrics empty (no forecast written yet)."""
    long, slices, pairs = [], [], []
    for day, (gross, discounts, orders) in DAYS.items():
        long += [("shop", NOV[day], "gross_sales", gross), ("shop", NOV[day], "discounts", discounts),
                 ("shop", NOV[day], "orders", orders), ("shop", NOV[day], "net_sales", gross - discounts),
                 ("other", NOV[day], "net_sales", 1_000_000)]  # another workspace, never read
    for day, (mrr, customers) in SAAS_DAYS.items():
        long += [("saas", NOV[day], "mrr", mrr), ("saas", NOV[day], "active_customers", customers)]
    long += [("saas", NOV[day], "active_subscriptions", count) for day, count in SUBSCRIPTIONS.items()]
    for day, country, gross, discounts, orders in COUNTRY:
        slices += [("shop", NOV[day], metric, "country", country, value) for metric, value in
                   [("gross_sales", gross), ("discounts", discounts), ("orders", orders),
                    ("net_sales", gross - discounts)]]
    for day, country, kind, gross, discounts, orders in COUNTRY_TYPE:
        pairs += [("shop", NOV[day], metric, "country", country, "customer_type", kind, value) for metric, value in
                  [("gross_sales", gross), ("discounts", discounts), ("orders", orders),
                   ("net_sales", gross - discounts)]]
    for day, product, country, gross, discounts in PRODUCT_COUNTRY:
        pairs += [("shop", NOV[day], metric, "product", product, "country", country, value) for metric, value in
                  [("gross_sales", gross), ("discounts", discounts), ("net_sales", gross - discounts)]]
    # the one-dimension slices of the pairs' other dimensions (customer type, product), their sums
    for dimension, at in (("customer_type", 2), ("product", 1)):
        source = COUNTRY_TYPE if dimension == "customer_type" else PRODUCT_COUNTRY
        totals: dict[tuple, dict[str, float]] = {}
        for row in source:
            kept = totals.setdefault((row[0], row[at]), {})
            for metric, value in zip(("gross_sales", "discounts", "orders"), row[3:]):
                kept[metric] = kept.get(metric, 0) + value
        for (day, value), parts in totals.items():
            parts["net_sales"] = parts["gross_sales"] - parts["discounts"]
            slices += [("shop", NOV[day], metric, dimension, value, amount) for metric, amount in parts.items()]
    saas_slices = [("saas", NOV[day], "mrr", "plan", plan, mrr) for day, plan, mrr in PLANS]
    for day in sorted({day for day, *_ in SEGMENTS}):
        week = [(segment, customers, sales) for d, segment, customers, sales in SEGMENTS if d == day]
        long += [("shop", NOV[day], "segment_customers", sum(c for _, c, _ in week)),
                 ("shop", NOV[day], "segment_net_sales", sum(s for _, _, s in week))]
    segment_slices = [row for day, segment, customers, sales in SEGMENTS for row in (
        ("shop", NOV[day], "segment_customers", "segment", segment, customers),
        ("shop", NOV[day], "segment_net_sales", "segment", segment, sales)) if row[-1] != 0]
    for month, retained, customers in COHORTS:
        long += [("shop", month, "retained_customers_m1", retained), ("shop", month, "cohort_customers_m1", customers)]
    with warehouse.transaction() as sql:
        sql.execute("create schema if not exists metrics")
        sql.execute("create table metrics.metric_values (workspace_id text, date date, metric text, "
                    "value decimal(38, 6))")
        for table in slice_tables():
            sql.execute(f"create table metrics.{table} (workspace_id text, date date, metric text, "
                        "dimension text, dimension_value text, value decimal(38, 6))")
        sql.executemany("insert into metrics.metric_values values (%s, %s, %s, %s)", long)
        forecasts = [m.column for m in all_metrics() if m.forecast_of]
        sql.execute("create table metrics.forecast_metrics (workspace_id text, date date, origin date, "
                    + ", ".join(f"{column} decimal(38, 6)" for column in forecasts) + ")")
        for table in ("ecommerce_daily_pair_slices", "saas_daily_pair_slices"):
            sql.execute(f"create table metrics.{table} (workspace_id text, date date, metric text, dimension text, "
                        "dimension_value text, second_dimension text, second_dimension_value text, "
                        "value decimal(38, 6))")
        sql.executemany("insert into metrics.ecommerce_daily_slices values (%s, %s, %s, %s, %s, %s)", slices)
        sql.executemany("insert into metrics.ecommerce_daily_pair_slices values (%s, %s, %s, %s, %s, %s, %s, %s)",
                        pairs)
        sql.executemany("insert into metrics.saas_daily_slices values (%s, %s, %s, %s, %s, %s)", saas_slices)
        sql.executemany("insert into metrics.ecommerce_segment_slices values (%s, %s, %s, %s, %s, %s)",
                        segment_slices)
        sql.executemany("insert into metrics.saas_daily_pair_slices values (%s, %s, %s, %s, %s, %s, %s, %s)",
                        [("saas", NOV[day], "mrr", "plan", plan, "billing_currency", currency, mrr)
                         for day, plan, currency, mrr in PLAN_CURRENCY])


def metric_tables_home(home: Path, warehouse_url: str | None = None, env: dict[str, str] | None = None
                       ) -> tuple[Settings, Workspaces, dict[str, str]]:
    """Settings, WORKSPACES and their environment under `home` (plus `env`), the metric tables
    written to the warehouse (a DuckDB file under `home`, or `warehouse_url`)."""
    (home / "workspaces.yaml").write_text(yaml.safe_dump(WORKSPACES))
    env = {"ABOS_HOME": str(home), "ABOS_WORKSPACES": str(home / "workspaces.yaml"),
           "ABOS_LLM_API_KEY": "", "OPENAI_API_KEY": "", **(env or {})}
    if warehouse_url:
        env["ABOS_WAREHOUSE_URL"] = warehouse_url
    settings = load_settings(env)
    write_metric_tables(settings.warehouse)
    return settings, load_workspaces(settings.workspaces_file, env=env), env
