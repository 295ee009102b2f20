"""Risks and opportunities read from warehouse tables on DuckDB and on Postgres: the rules' queries
(pipelines/insights/opportunities.py, `workspace_opportunities`) on hand-made marts, staging and
metric tables, whose findings are the hand-worked ones of tests/unit/test_opportunities.py.

No dbt: the tables are written with the columns the queries read, so the SQL (date and timestamp
comparisons, the seat changes' window function, grouping) is what runs on both databases.
"""

from __future__ import annotations

from datetime import date, datetime, timezone

import pandas as pd
import pytest

from pipelines.insights.opportunities import workspace_opportunities
from pipelines.insights.wording import Wording
from pipelines.settings import load_settings
from pipelines.warehouse import Warehouse
from tests.unit.test_opportunities import AS_OF, saas_tables, weekly_sales

EN = Wording("en", "USD")


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def warehouse(request, tmp_path_factory) -> Warehouse:
    url = (f"duckdb:///{tmp_path_factory.mktemp('opportunities')}/warehouse.duckdb" if request.param == "duckdb"
           else request.getfixturevalue("new_pg_database")())
    warehouse = load_settings({"ABOS_WAREHOUSE_URL": url, "ABOS_HOME": str(tmp_path_factory.mktemp("home"))}).warehouse
    write_saas(warehouse, "saas-w")
    write_ecommerce(warehouse, "shop-w")
    return warehouse


def epoch(day: str) -> int:
    return int(datetime.fromisoformat(day).replace(tzinfo=timezone.utc).timestamp())


def write_saas(warehouse: Warehouse, workspace: str) -> None:
    customers, subscriptions, invoices, movements, _seats = saas_tables()
    tables = {"marts.saas_customers": customers, "marts.subscriptions": subscriptions, "marts.invoices": invoices,
              "marts.mrr_movements": movements}
    for table, frame in tables.items():
        warehouse.upsert(table, frame.assign(workspace_id=workspace, row=range(len(frame))), key=["workspace_id", "row"])
    # Seat Co's subscription went from 5 seats to 4 on 11-02 (the unit test's seat change); Fine Co's
    # grew from 1 to 3 (no signal); a version of another price is no seat change.
    versions = pd.DataFrame([("sub_seat", "cus_seat", epoch("2026-09-01")), ("sub_seat", "cus_seat", epoch("2026-11-02")),
                             ("sub_ok", "cus_ok", epoch("2026-10-01")), ("sub_ok", "cus_ok", epoch("2026-11-02"))],
                            columns=["subscription_id", "customer_id", "valid_from"])
    items = pd.DataFrame([("sub_seat", "price_a", epoch("2026-09-01"), 5), ("sub_seat", "price_a", epoch("2026-11-02"), 4),
                          ("sub_ok", "price_b", epoch("2026-10-01"), 1), ("sub_ok", "price_b", epoch("2026-11-02"), 3),
                          ("sub_ok", "price_c", epoch("2026-11-02"), 1)],
                         columns=["subscription_id", "price_id", "valid_from", "quantity"])
    warehouse.upsert("staging.stg_stripe__subscription_versions", versions.assign(workspace_id=workspace),
                     key=["workspace_id", "subscription_id", "valid_from"])
    warehouse.upsert("staging.stg_stripe__subscription_version_items", items.assign(workspace_id=workspace),
                     key=["workspace_id", "subscription_id", "price_id", "valid_from"])
    cohorts = pd.DataFrame([{"workspace_id": workspace, "cohort_month": date(2026, month, 1), "months_since_start": 3,
                             "activity_month": date(2026, month + 3, 1), "cohort_customers": 20, "starting_mrr": 1000.0,
                             "net_revenue_retention": nrr}
                            for month, nrr in [(1, 1.00), (2, 1.02), (3, 0.98), (4, 0.70)]])
    # the current month's row is incomplete and left out, however far off it is
    cohorts.loc[len(cohorts)] = [workspace, date(2026, 8, 1), 3, date(2026, 11, 1), 20, 1000.0, 0.10]
    warehouse.upsert("metrics.saas_cohorts", cohorts, key=["workspace_id", "cohort_month", "months_since_start"])


def write_ecommerce(warehouse: Warehouse, workspace: str) -> None:
    segments = pd.DataFrame([
        ("p1", "at_risk", "champions", 95, 6), ("p2", "hibernating", "loyal", 200, 3),
        ("p3", "at_risk", "promising", 90, 2), ("p4", "loyal", "champions", 30, 5), ("p5", "at_risk", "loyal", 400, 4)],
        columns=["person_id", "segment", "previous_segment", "recency_days", "frequency"]).assign(
        week_start=date(2026, 11, 23))
    # the week before: p1 slipped then too, but only the latest week counts
    earlier = segments.assign(week_start=date(2026, 11, 16), segment="champions", previous_segment="champions")
    warehouse.upsert("metrics.ecommerce_customer_segments", pd.concat([segments, earlier]).assign(workspace_id=workspace),
                     key=["workspace_id", "week_start", "person_id"])
    people = pd.DataFrame({"person_id": ["p1", "p2", "p3", "p4", "p5"],
                           "email": ["one@x", "two@x", "three@x", "four@x", "five@x"]})
    warehouse.upsert("marts.customers", people.assign(workspace_id=workspace), key=["workspace_id", "person_id"])
    # net sales of the last 365 days (after 2025-11-25): p1 400 + 240 = 640 (its 1,000 of 2025-06 is
    # older, its cancelled 75 not sold), p2 90.50, p3 50, p4 300; p5 bought nothing in the year
    orders = pd.DataFrame([("o1", "p1", date(2026, 3, 1), 400.0, False), ("o2", "p1", date(2026, 7, 1), 240.0, False),
                           ("o3", "p1", date(2025, 6, 1), 1000.0, False), ("o4", "p1", date(2026, 8, 1), 75.0, True),
                           ("o5", "p2", date(2026, 5, 9), 90.5, False), ("o6", "p3", date(2026, 8, 26), 50.0, False),
                           ("o7", "p4", date(2026, 10, 26), 300.0, False), ("o8", "p5", date(2025, 10, 22), 80.0, False)],
                          columns=["order_id", "person_id", "order_date", "discounted_sales", "is_cancelled"])
    warehouse.upsert("marts.orders", orders.assign(workspace_id=workspace), key=["workspace_id", "order_id"])
    # 16 complete weeks up to Sunday 11-22 (as of Wednesday 11-25): 2026-08-03 to 11-22, each week's
    # product sales on its Monday (the unit test's shares: the shop doubles, Rising and Falling break)
    totals = [1000.0] * 12 + [2000.0] * 4
    weekly = weekly_sales({"Steady": [0.50, 0.52, 0.48, 0.50] * 3 + [0.52] * 4,
                           "Rising": [0.10, 0.11, 0.09, 0.10] * 3 + [0.20] * 4,
                           "Falling": [0.40, 0.37, 0.43, 0.40] * 3 + [0.28] * 4}, totals)
    slices = pd.DataFrame({"workspace_id": workspace, "date": weekly["week_start"].dt.date, "metric": "net_sales",
                           "dimension": "product", "dimension_value": weekly["product"], "value": weekly["net_sales"]})
    # another metric and another dimension on the same days: not read
    slices = pd.concat([slices, slices.assign(metric="gross_sales", value=1e6),
                        slices.drop_duplicates("date").assign(dimension="country", dimension_value="US", value=1e6)],
                       ignore_index=True)
    warehouse.upsert("metrics.ecommerce_daily_slices", slices,
                     key=["workspace_id", "date", "metric", "dimension", "dimension_value"])
    cohorts = pd.DataFrame([{"workspace_id": workspace, "cohort_month": date(2026, month, 1),
                             "months_since_first_order": 1, "activity_month": date(2026, month + 1, 1),
                             "cohort_customers": 400, "active_customers": 400 * rate, "retention_rate": rate,
                             "net_sales": 400 * rate * 50.0}
                            for month, rate in [(1, 0.10), (2, 0.11), (3, 0.09), (4, 0.10), (5, 0.20)]])
    warehouse.upsert("metrics.ecommerce_cohorts", cohorts, key=["workspace_id", "cohort_month",
                                                                "months_since_first_order"])


def test_saas_risks_from_the_tables(warehouse):
    """The unit test's churn risks (12 × MRR now and lost in the window) and its cohort (−0.30 NRR ×
    1,000 × 12), ranked by money, ties by kind and subject."""
    found = workspace_opportunities(warehouse.query, "saas-w", "saas", "USD", EN, AS_OF)
    assert [(row.rank, row.subject_id, row.money_at_stake) for row in found.itertuples()] == [
        (1, "2026-04", 3600.0), (2, "cus_year", 3000.0), (3, "cus_bye", 1440.0), (4, "cus_down", 1200.0),
        (5, "cus_pay", 1200.0), (6, "cus_due", 600.0), (7, "cus_seat", 600.0)]
    rows = found.set_index("subject_id")
    assert rows.loc["cus_seat", "evidence"] == "fewer seats; $50.00 MRR"  # from the staging versions
    assert rows.loc["cus_pay", "evidence"] == "a failed payment; $100.00 MRR"
    assert rows.loc["2026-04", "kind"] == "cohort_retention" and rows.loc["2026-04", "direction"] == "risk"
    assert (found["as_of"] == pd.Timestamp(AS_OF)).all() and set(found["currency"]) == {"USD"}


def test_ecommerce_risks_and_opportunities_from_the_tables(warehouse):
    """The unit test's cohort (+0.10 retention × 400 × $50 × 12), product breaks (±share × 2,000 ×
    52) and slipped customers (their last year's net sales, counted here from marts.orders)."""
    found = workspace_opportunities(warehouse.query, "shop-w", "ecommerce", "USD", EN, AS_OF)
    assert [(row.rank, row.kind, row.subject_id, row.direction) for row in found.itertuples()] == [
        (1, "cohort_retention", "2026-05", "opportunity"), (2, "product_trend", "Falling", "risk"),
        (3, "product_trend", "Rising", "opportunity"), (4, "segment_slip", "p1", "risk"),
        (5, "segment_slip", "p2", "risk")]
    assert found["money_at_stake"].tolist() == pytest.approx([24_000.0, 12_480.0, 10_400.0, 640.0, 90.5])
    slipped = found.set_index("subject_id").loc["p1"]
    assert slipped["subject"] == "one@x"
    assert slipped["evidence"] == "fell from champions to at risk: 6 orders, none in 95 days, $640.00 in the last year"
