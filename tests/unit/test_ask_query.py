"""The query object of questions: validated against the registry, compiled to parameterized SQL over
the metrics tables, run read-only with a timeout; numbers hand-worked on DuckDB and Postgres."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import ValidationError

from pipelines.ask.query import Query, QueryError, check, compile_query, evaluate
from pipelines.packs import pack_for
from pipelines.settings import load_settings
from pipelines.warehouse import Warehouse
from tests.metric_tables import NOV, write_metric_tables

SHOP, SAAS = pack_for("ecommerce"), pack_for("saas")
VALUES = {"country": {"US", "DE"}, "product": {"Tee", "Mug"}, "customer_type": {"new", "returning"}}


def run(warehouse: Warehouse, asked: Query, pack, workspace_id: str):
    with warehouse.reader() as read:
        return evaluate(asked, pack, read, workspace_id)


def query(**fields) -> Query:
    fields.setdefault("range", {"start": NOV[2], "end": NOV[4]})
    return Query(timezone="America/New_York", **fields)


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def warehouse(request, tmp_path_factory) -> Warehouse:
    env = {"ABOS_HOME": str(tmp_path_factory.mktemp("ask"))}
    if request.param == "postgres":
        env["ABOS_WAREHOUSE_URL"] = request.getfixturevalue("new_pg_database")()
    warehouse = load_settings(env).warehouse
    write_metric_tables(warehouse)
    return warehouse


def test_sums_and_a_ratio_of_sums_over_the_range(warehouse):
    found = run(warehouse, query(metrics=("net_sales", "aov")), SHOP, "shop")
    assert len(found) == 1
    assert found["net_sales"].iloc[0] == pytest.approx(90 + 189 + 0)
    # Σ(gross − discounts) / Σorders = 279 / 7, not the mean of the days' AOVs (90, 31.5)
    assert found["aov"].iloc[0] == pytest.approx(279 / 7)


def test_weeks_start_on_monday_and_each_adds_up_its_own_days(warehouse):
    found = run(warehouse, query(metrics=("net_sales", "aov"), grain="week", range={"start": NOV[2], "end": NOV[15]}),
                SHOP, "shop")
    assert found["period"].tolist() == [NOV[2], NOV[9]]
    assert found["net_sales"].tolist() == pytest.approx([279, 360])
    assert found["aov"].tolist() == pytest.approx([279 / 7, 360 / 5])


def test_a_series_lists_every_day_up_to_the_last_with_data_flows_at_0_and_levels_carried(warehouse):
    flows = run(warehouse, query(metrics=("net_sales", "aov"), grain="day", range={"start": NOV[1], "end": NOV[12]}),
                SHOP, "shop")
    # Nov 1 and 5–8 have no rows: 0 sold, no AOV; nothing after Nov 9, the last day with data
    assert flows["period"].tolist() == [NOV[day] for day in range(1, 10)]
    assert flows["net_sales"].tolist() == pytest.approx([0, 90, 189, 0, 0, 0, 0, 0, 360])
    assert flows["aov"].isna().tolist() == [True, False, False, True, True, True, True, True, False]
    levels = run(warehouse, query(metrics=("active_subscriptions",), grain="day",
                                  range={"start": NOV[1], "end": NOV[8]}), SAAS, "saas")
    assert levels["period"].tolist() == [NOV[day] for day in range(1, 6)]
    assert levels["active_subscriptions"].tolist() == [0, 8, 8, 8, 9]  # Nov 2's level carried to Nov 3 and 4
    weeks = run(warehouse, query(metrics=("orders",), grain="week", range={"start": NOV[1], "end": NOV[30]}),
                SHOP, "shop")
    assert weeks["period"].tolist() == [date(2026, 10, 26), NOV[2], NOV[9]]  # the week of Nov 1 began Oct 26
    assert weeks["orders"].tolist() == [0, 7, 5]


def test_a_stock_is_its_last_day_with_data_and_a_ratio_of_stocks_too(warehouse):
    found = run(warehouse, query(metrics=("mrr", "arpa"), range={"start": NOV[1], "end": NOV[8]}), SAAS, "saas")
    assert found["mrr"].iloc[0] == 1050  # Nov 4, the last day with data; not a sum of days
    assert found["arpa"].iloc[0] == pytest.approx(1050 / 10)


def test_a_stock_by_dimension_is_read_on_the_last_day_so_a_vanished_slice_is_not_stale(warehouse):
    found = run(warehouse, query(metrics=("mrr",), dimensions=("plan",)), SAAS, "saas")
    by_plan = dict(zip(found["dimension_value"], found["mrr"]))
    assert by_plan == {"Team": 1050}  # Starter's 500 of Nov 3 is gone by Nov 4


def test_a_breakdown_and_a_filter_on_the_slices(warehouse):
    found = run(warehouse, query(metrics=("net_sales", "aov"), dimensions=("country",)), SHOP, "shop")
    by_country = found.set_index("dimension_value")
    assert by_country.loc["US", "net_sales"] == pytest.approx(90 + 45)
    assert by_country.loc["US", "aov"] == pytest.approx(135 / 3)
    assert by_country.loc["DE", "aov"] == pytest.approx(144 / 4)
    kept = run(warehouse, query(metrics=("orders",), filters=({"dimension": "country", "values": ("DE",)},)),
               SHOP, "shop")
    assert kept["orders"].tolist() == [4]


def test_segments_are_read_on_the_last_snapshot_and_cohorts_add_up_their_parts(warehouse):
    """tests/metric_tables.py: segment snapshots on Sundays Nov 8 and 15. Customers by segment over
    Nov 1-15 are Nov 15's (champions 4, hibernating 1; the at_risk customers of Nov 8 are gone);
    their net sales add up the weeks: champions 300 + 250, hibernating 20 (at_risk, with no customer
    left and no net sales, is no row). Month-1 retention of the
    September and October cohorts: (3 + 1) / (10 + 5)."""
    weeks = {"start": NOV[1], "end": NOV[15]}
    found = run(warehouse, query(metrics=("segment_customers", "segment_net_sales"), dimensions=("segment",),
                                 range=weeks), SHOP, "shop").set_index("dimension_value")
    assert found["segment_customers"].to_dict() == {"champions": 4, "hibernating": 1}
    assert found["segment_net_sales"].to_dict() == {"champions": 550, "hibernating": 20}
    total = run(warehouse, query(metrics=("segment_customers",), range=weeks), SHOP, "shop")
    assert total["segment_customers"].tolist() == [5]
    champions = run(warehouse, query(metrics=("segment_net_sales",), range=weeks,
                                     filters=({"dimension": "segment", "values": ("champions",)},)), SHOP, "shop")
    assert champions["segment_net_sales"].tolist() == [550]
    cohorts = run(warehouse, query(metrics=("customer_retention_m1",), range={"start": "2026-09-01",
                                                                             "end": "2026-10-31"}), SHOP, "shop")
    assert cohorts["customer_retention_m1"].tolist() == [pytest.approx(4 / 15)]


def test_two_dimensions_read_the_pair_slices_in_either_order_and_add_up_to_one(warehouse):
    """Hand-worked (metric_tables.COUNTRY_TYPE, PRODUCT_COUNTRY): Nov 2–4 by country × customer type and
    product × country; each breakdown's rows add up to the one-dimension slices' figures."""
    found = run(warehouse, query(metrics=("net_sales", "orders", "aov"), dimensions=("customer_type", "country")),
                SHOP, "shop")
    cells = {(row.dimension_value, row.dimension_value_2, name): getattr(row, name)
             for row in found.itertuples() for name in ("net_sales", "orders", "aov")}
    assert cells == pytest.approx({("new", "US", "net_sales"): 90 + 18, ("new", "US", "orders"): 2,
                                   ("new", "US", "aov"): 108 / 2, ("returning", "US", "net_sales"): 27,
                                   ("returning", "US", "orders"): 1, ("returning", "US", "aov"): 27,
                                   ("returning", "DE", "net_sales"): 144, ("returning", "DE", "orders"): 4,
                                   ("returning", "DE", "aov"): 144 / 4})
    by_country = run(warehouse, query(metrics=("net_sales", "orders"), dimensions=("country",)), SHOP, "shop")
    for country, net_sales, orders in by_country[["dimension_value", "net_sales", "orders"]].itertuples(index=False):
        kept = found[found["dimension_value_2"] == country]
        assert (kept["net_sales"].sum(), kept["orders"].sum()) == pytest.approx((net_sales, orders))
    products = run(warehouse, query(metrics=("net_sales",), dimensions=("country", "product")), SHOP, "shop")
    assert {(r.dimension_value, r.dimension_value_2): r.net_sales for r in products.itertuples()} == pytest.approx(
        {("US", "Tee"): 90 + 27, ("US", "Mug"): 18, ("DE", "Tee"): 144})
    assert products["net_sales"].sum() == pytest.approx(90 + 189)  # the metric, from metric_values


def test_a_breakdown_with_a_filter_on_another_dimension_reads_the_pairs(warehouse):
    found = run(warehouse, query(metrics=("net_sales",), dimensions=("product",),
                                 filters=({"dimension": "country", "values": ("US",)},)), SHOP, "shop")
    assert dict(zip(found["dimension_value"], found["net_sales"])) == pytest.approx({"Tee": 117, "Mug": 18})
    both = run(warehouse, query(metrics=("orders",), filters=({"dimension": "country", "values": ("US",)},
                                                              {"dimension": "customer_type", "values": ("new",)})),
               SHOP, "shop")
    assert both["orders"].tolist() == [2]


def test_a_stock_by_two_dimensions_is_read_on_the_last_day(warehouse):
    found = run(warehouse, query(metrics=("mrr",), dimensions=("billing_currency", "plan")), SAAS, "saas")
    assert {(r.dimension_value, r.dimension_value_2): r.mrr for r in found.itertuples()} == {
        ("USD", "Team"): 700, ("EUR", "Team"): 350}  # Nov 4; Starter's EUR 500 of Nov 3 is gone
    assert found["mrr"].sum() == 1050  # the plan slice and the metric that day


def test_the_workspace_is_a_parameter_and_every_table_a_metrics_table():
    hostile = "shop' or '1'='1"
    for statement in compile_query(query(metrics=("net_sales", "aov"), dimensions=("country",),
                                         filters=({"dimension": "country", "values": ("US",)},)), SHOP, hostile):
        assert hostile not in statement.sql and hostile in statement.params
        assert statement.table.startswith("metrics.")
        assert "US" not in statement.sql and "US" in statement.params
        tables = {word for word in statement.sql.replace("(", " ").split() if "." in word and not word[0].isdigit()}
        assert {table for table in tables if not table.startswith(("src.", "last_days."))} <= {
            "metrics.metric_values", "metrics.ecommerce_daily_slices"}
    paired = compile_query(query(metrics=("net_sales",), dimensions=("country",),
                                 filters=({"dimension": "product", "values": ("Tee",)},)), SHOP, hostile)
    assert [s.table for s in paired] == ["metrics.ecommerce_daily_pair_slices"]
    assert "Tee" not in paired[0].sql and ("product", "country", "Tee") == paired[0].params[-3:]


def test_reads_cannot_write_and_stop_at_the_timeout(warehouse):
    with warehouse.reader(timeout=0.3) as read:
        with pytest.raises(Exception, match="(?i)read.only|read-only"):
            read("create table metrics.stolen (a int)", ())
        slow = "select count(*) from range(100000000000)" if warehouse.kind == "duckdb" else "select pg_sleep(5)"
        with pytest.raises(TimeoutError):
            read(slow, ())
        assert read("select count(*) as n from metrics.metric_values", ())["n"].iloc[0] > 0  # still usable


def test_the_query_object_holds_to_its_limits():
    with pytest.raises(ValidationError):
        query(metrics=("a", "b", "c", "d", "e"))
    with pytest.raises(ValidationError):
        query(metrics=("net_sales",), limit=51)
    with pytest.raises(ValidationError):
        query(metrics=("net_sales",), dimensions=("a", "b", "c"))
    with pytest.raises(ValidationError, match="ends"):
        query(metrics=("net_sales",), range={"start": NOV[9], "end": NOV[2]})
    with pytest.raises(ValidationError):
        Query.model_validate({"metrics": ["net_sales"], "range": {"start": "2026-11-02", "end": "2026-11-04"},
                              "timezone": "UTC", "sql": "select 1"})  # no field carries SQL


@pytest.mark.parametrize("fields, message", [
    ({"metrics": ("mrr",)}, "no metric 'mrr' for ecommerce"),
    ({"metrics": ("orders",), "dimensions": ("product",)}, "Orders is not split by product"),
    ({"metrics": ("orders",), "dimensions": ("product", "country")}, "Orders is not split by product"),
    ({"metrics": ("new_customers",), "dimensions": ("country", "customer_type")}, "not split by customer_type"),
    ({"metrics": ("net_sales",), "dimensions": ("product", "country"),
      "filters": ({"dimension": "customer_type", "values": ("new",)},)}, "at most two dimensions"),
    ({"metrics": ("net_sales",), "dimensions": ("product",),
      "filters": ({"dimension": "country", "values": ("FR",)},)}, "no country 'FR'"),
    ({"metrics": ("net_sales",), "filters": ({"dimension": "country", "values": ("FR",)},)}, "no country 'FR'"),
    ({"metrics": ("net_sales",), "dimensions": ("channel",)}, "no dimension 'channel'"),
])
def test_check_holds_a_query_to_the_registry_and_the_data(fields, message):
    with pytest.raises(QueryError, match=message):
        check(query(**fields), SHOP, VALUES)
