"""Bad records are set aside, the rest load: the real path (fixture served over HTTP → connectors →
warehouse → dbt) on DuckDB and Postgres.

tests/fixtures/scenarios_quarantine.json holds two phases of four workspaces:
- `dq-store` (Shopify, America/New_York), first sync (bulk): two good orders on 2026-05-10, one of
  them with a NUL in a line title, and one order of each bad kind: currency XYZ (5003), quantity -3
  (5004), a duplicate line item id (5005), a null quantity (5006), dated 2999 (5007), a quantity
  "two" (5008), a euro order of 10^20 (5011: the warehouse holds it, but converting it into dollars
  overflowed and stopped the metric models for every workspace). Second sync (paging): 5004 fixed
  upstream to 3, a new order with quantity -1 (5009), a new good order with a NUL in its title
  (5010), a new order of 10^30 (5012: more than decimal(38, 9) holds; it stopped the sync).
- `dq-saas` (Stripe, UTC): a customer created in 2009, two deleted customers (one named by a
  retained `customer.deleted` event, one only by a canceled subscription and its invoice), a good
  subscription (29.00/month from 2026-04-01), one whose price has
  `unit_amount: null`, one with a negative price, one starting in the year 3000, a one-off invoice
  with negative amounts, one of 10^13 dollars with an amount_shipping beyond 64 bits (in_huge:
  it stopped the sync). Second sync (events): the null-price subscription moved to the good
  price on 2026-05-22, a new invoice in currency "xyz".
- `dq-clean-store`, `dq-clean-saas`: healthy tenants next to them, whose metrics must not change.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from pipelines.ingest.quarantine import AMOUNT_REASON
from tests.scenario import ScenarioWarehouse, build_scenario

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "scenarios_quarantine.json"
ORDER = "gid://shopify/Order/{}".format


def phases(directory: Path) -> tuple[Path, Path]:
    doc = json.loads(FIXTURE.read_text())
    paths = directory / "first_sync.json", directory / "second_sync.json"
    for path, phase in zip(paths, ("first_sync", "second_sync")):
        path.write_text(json.dumps(doc[phase]))
    return paths


def build(home: Path, warehouse_url: str | None) -> dict:
    """Sync phase 1 (no dbt), look at the raw tables; sync phase 2, then one dbt build."""
    first, second = phases(home.parent)
    with pytest.MonkeyPatch.context() as monkeypatch:
        warehouse = build_scenario(first, home, warehouse_url, monkeypatch, dbt_args=())
        after_first = {
            "orders": ids(warehouse, "select id from shopify.orders where workspace_id = 'dq-store'"),
            "quarantined_orders": ids(warehouse, "select distinct object_id as id from shopify.quarantine_orders "
                                                 "where workspace_id = 'dq-store' and resolved_at is null"),
            "subscriptions": ids(warehouse, "select id from stripe.subscriptions where workspace_id = 'dq-saas'"),
            "alerts": alerts(home),
        }
        warehouse = build_scenario(second, home, warehouse_url, monkeypatch, dbt_args=("build",))
    return {"warehouse": warehouse, "after_first": after_first, "home": home}


def ids(warehouse: ScenarioWarehouse, sql: str) -> set[str]:
    return {row["id"] for row in warehouse.query(sql)}


def alerts(home: Path) -> list[dict]:
    """The operator alerts written to the outbox (no Slack channel is configured)."""
    found = []
    for path in sorted(home.glob("**/_operator/*.json")):
        found.append(json.loads(path.read_text())["chat.postMessage"])
    return found


@pytest.fixture(scope="module")
def duckdb_build(tmp_path_factory) -> dict:
    return build(tmp_path_factory.mktemp("quarantine-duckdb") / "home", None)


@pytest.fixture(scope="module")
def postgres_build(tmp_path_factory, new_pg_database) -> dict:
    return build(tmp_path_factory.mktemp("quarantine-postgres") / "home", new_pg_database())


@pytest.fixture(scope="module", params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def built(request) -> dict:
    return request.getfixturevalue(f"{request.param}_build")


# -- what loaded, what was set aside ------------------------------------------------------------------


def test_first_sync_loads_the_good_orders_and_sets_every_bad_one_aside(built):
    first = built["after_first"]
    assert first["orders"] == {ORDER(5001), ORDER(5002)}
    assert first["quarantined_orders"] == {ORDER(n) for n in (5003, 5004, 5005, 5006, 5007, 5008, 5011)}
    assert first["subscriptions"] == {"sub_ok", "sub_gone"}


def test_quarantine_rows_name_the_workspace_object_field_and_reason(built):
    warehouse: ScenarioWarehouse = built["warehouse"]
    rows = warehouse.query("select workspace_id, object_id, record_table, field, reason, value, raw_record, resolved_at "
                           "from quarantine.shopify_orders")
    found = {(r["object_id"], r["record_table"], r["field"], r["reason"], r["value"]) for r in rows
             if r["resolved_at"] is None}
    expected = {
        (ORDER(5003), "orders", "currency_code", "unknown currency (not an ISO 4217 code)", "XYZ"),
        (ORDER(5005), "order_line_items", "id", "appears more than once", "gid://shopify/LineItem/50051"),
        (ORDER(5006), "order_line_items", "quantity", "required but missing", None),
        # read again by the second sync (its updated_at lies after every cursor) and judged by its clock
        (ORDER(5007), "orders", "created_at", "later than now plus a day (2026-05-26 00:00 UTC)",
         "2999-01-01T12:00:00+00:00"),
        (ORDER(5008), "order_line_items", "quantity", "not a whole number", "two"),
        (ORDER(5009), "order_line_items", "quantity", "less than 1", "-1"),
        # 10^20 euros, set aside by the bulk sync and read again by the second (paging) sync
        (ORDER(5011), "orders", "total_price_amount", AMOUNT_REASON, "100000000000000000000.00"),
        (ORDER(5011), "order_line_items", "original_unit_price_amount", AMOUNT_REASON, "100000000000000000000.00"),
        (ORDER(5012), "orders", "total_price_amount", AMOUNT_REASON, "1000000000000000000000000000000.00"),
        (ORDER(5012), "order_line_items", "discounted_total_amount", AMOUNT_REASON, "1000000000000000000000000000000.00"),
    }
    assert expected <= found
    assert {r["workspace_id"] for r in rows} == {"dq-store"}
    raw = next(r["raw_record"] for r in rows if r["object_id"] == ORDER(5008))
    raw = json.loads(raw) if isinstance(raw, str) else raw
    assert raw[0]["id"] == ORDER(5008) and raw[1]["quantity"] == "two"  # the order's line, then its line item's

    stripe = {(r["object_id"], r["record_table"], r["field"], r["reason"]) for table in
              ("stripe_subscriptions", "stripe_prices", "stripe_invoices")
              for r in warehouse.query(f"select * from quarantine.{table} where resolved_at is null")}
    assert stripe == {
        ("sub_neg", "subscription_items", "price__unit_amount", "negative amount"),
        # retrieved again by the second sync (the replay) and judged by its clock
        ("sub_future", "subscriptions", "start_date", "later than now plus a day (2026-05-26 00:00 UTC)"),
        ("price_null", "prices", "unit_amount", "missing on a per-unit price"),
        ("price_neg", "prices", "unit_amount", "negative amount"),
        ("in_neg", "invoices", "amount_due", "negative amount"),
        ("in_neg", "invoices", "amount_paid", "negative amount"),
        ("in_neg", "invoice_lines", "amount", "negative amount on a line that is not a proration"),
        # 10^15 cents: within bigint, beyond the warehouse's money range; the shipping beyond bigint
        *{("in_huge", "invoices", column, AMOUNT_REASON)
          for column in ("amount_due", "amount_paid", "subtotal", "total", "total_excluding_tax")},
        ("in_huge", "invoices", "amount_shipping", "a whole number beyond 64 bits (the warehouse's bigint)"),
        ("in_huge", "invoice_lines", "amount", AMOUNT_REASON),
        # the second sync's event, judged by the second sync's clock
        ("in_xyz", "invoices", "currency", "unknown currency (not an ISO 4217 code)"),
    }


def test_records_fixed_upstream_are_resolved_and_load(built):
    warehouse: ScenarioWarehouse = built["warehouse"]
    resolved = warehouse.query("select object_id, raw_record from quarantine.shopify_orders where resolved_at is not null")
    assert {r["object_id"] for r in resolved} == {ORDER(5004)}
    raw = [json.loads(r["raw_record"]) if isinstance(r["raw_record"], str) else r["raw_record"] for r in resolved]
    assert all(record[0]["id"] == ORDER(5004) for record in raw)  # the record as it was set aside
    sub = warehouse.query("select object_id, resolved_at from quarantine.stripe_subscriptions where object_id = 'sub_null'")
    assert sub and all(r["resolved_at"] is not None for r in sub)
    orders = ids(warehouse, "select id from shopify.orders where workspace_id = 'dq-store'")
    assert orders == {ORDER(5001), ORDER(5002), ORDER(5004), ORDER(5010)}
    titles = {r["title"] for r in warehouse.query("select title from shopify.order_line_items where workspace_id = 'dq-store'")}
    assert titles == {"Tent 2P", "Camp Stove", "Kayak", "Tarp XL"}  # NUL removed, by bulk and by paging
    assert ids(warehouse, "select id from stripe.subscriptions where workspace_id = 'dq-saas'") == {
        "sub_ok", "sub_null", "sub_gone"}


def test_a_customer_older_than_2010_is_read_and_sane(built):
    # The full sync's window walk stops at 2010-01-01, and one last window open below reads the rest.
    customers = ids(built["warehouse"], "select id from stripe.customers where workspace_id = 'dq-saas'")
    assert "cus_2009" in customers


def test_deleted_customers_are_kept(built):
    """Stripe lists no deleted customer. cus_evt's deletion is an event Stripe still keeps: the row
    comes from it, with its time. cus_gone was deleted before any retained event, and only its
    canceled subscription and its invoice name it: it is kept, deleted, with the invoice's email."""
    rows = built["warehouse"].query(
        "select customer_id, email, customer_name, is_deleted, deleted_at, created_at from marts.saas_customers "
        "where workspace_id = 'dq-saas' and customer_id in ('cus_evt', 'cus_gone') order by customer_id")
    evt, gone = rows
    assert (evt["customer_id"], evt["email"], evt["is_deleted"]) == ("cus_evt", "cus_evt@example.com", True)
    assert evt["deleted_at"].isoformat().startswith("2026-05-18T09:00:00")
    assert (gone["customer_id"], gone["email"], gone["customer_name"], gone["is_deleted"]) == (
        "cus_gone", "gone@example.com", "Gone Customer", True)
    assert gone["deleted_at"] is None and gone["created_at"] is None  # unknown: no event is left
    # Every customer a subscription or invoice references has a row.
    missing = built["warehouse"].query("""
        select s.customer_id from marts.subscriptions s
        left join marts.saas_customers c on c.workspace_id = s.workspace_id and c.customer_id = s.customer_id
        where c.customer_id is null""")
    assert missing == []


# -- metrics -----------------------------------------------------------------------------------------


def ecommerce_day(warehouse: ScenarioWarehouse, workspace: str, day: str) -> tuple[Decimal, Decimal, int]:
    rows = warehouse.query("select gross_sales, net_sales, orders from metrics.ecommerce_daily_metrics "
                           "where workspace_id = %s and date = %s", (workspace, date.fromisoformat(day)))
    assert len(rows) == 1, (workspace, day, rows)
    return Decimal(str(rows[0]["gross_sales"])), Decimal(str(rows[0]["net_sales"])), rows[0]["orders"]


def mrr(warehouse: ScenarioWarehouse, workspace: str, day: str) -> Decimal:
    rows = warehouse.query("select mrr from metrics.saas_daily_metrics where workspace_id = %s and date = %s",
                           (workspace, date.fromisoformat(day)))
    return Decimal(str(rows[0]["mrr"])).quantize(Decimal("0.01"))


def test_metrics_count_only_the_records_that_loaded(built):
    warehouse: ScenarioWarehouse = built["warehouse"]
    # 2026-05-10: 2 × 50.00 + 30.00; the XYZ order's 199.00 is not in it (nor in the order count).
    assert ecommerce_day(warehouse, "dq-store", "2026-05-10") == (Decimal("130"), Decimal("130"), 2)
    # 2026-05-11: order 5004 as fixed upstream, 3 × 199.00 (before the fix it was set aside, never -597).
    assert ecommerce_day(warehouse, "dq-store", "2026-05-11") == (Decimal("597"), Decimal("597"), 1)
    # 2026-05-12: three bad orders set aside, none counted.
    assert ecommerce_day(warehouse, "dq-store", "2026-05-12") == (Decimal("0"), Decimal("0"), 0)
    # 2026-05-22: 5010's 80.00 counts; 5009 (quantity -1) does not.
    assert ecommerce_day(warehouse, "dq-store", "2026-05-22") == (Decimal("80"), Decimal("80"), 1)
    # 2026-05-13: 5011's 10^20 euros set aside, not counted, and the day built (5012's day, 05-23,
    # lies after the last order that loaded: no row).
    assert ecommerce_day(warehouse, "dq-store", "2026-05-13") == (Decimal(0), Decimal(0), 0)
    # The subscription starting in 3000 adds nothing; the null and negative prices add nothing until
    # sub_null moved to the 29.00 price on 2026-05-22.
    assert mrr(warehouse, "dq-saas", "2026-05-15") == Decimal("29.00")
    assert mrr(warehouse, "dq-saas", "2026-05-24") == Decimal("58.00")
    last_day = warehouse.query("select max(date) as d from metrics.saas_daily_metrics where workspace_id = 'dq-saas'")
    assert last_day[0]["d"] <= date.today() + timedelta(days=1)  # no daily rows towards the year 3000


def test_other_tenants_metrics_are_unchanged(built):
    warehouse: ScenarioWarehouse = built["warehouse"]
    # dq-clean-store: one order of 1 × 50.00 on 2026-05-10, and nothing else.
    rows = warehouse.query("select date, gross_sales, orders from metrics.ecommerce_daily_metrics "
                           "where workspace_id = 'dq-clean-store' and orders > 0")
    assert [(r["date"], Decimal(str(r["gross_sales"])), r["orders"]) for r in rows] == [
        (date(2026, 5, 10), Decimal("50"), 1)]
    # dq-clean-saas: 2 seats × 10.00 from 2026-04-01.
    assert mrr(warehouse, "dq-clean-saas", "2026-04-15") == Decimal("20.00")
    assert mrr(warehouse, "dq-clean-saas", "2026-05-24") == Decimal("20.00")
    clean = warehouse.query("select * from metrics.data_quality_daily where workspace_id like 'dq-clean%%'")
    assert clean == []


def test_data_quality_daily_counts_open_records_by_their_own_day(built):
    warehouse: ScenarioWarehouse = built["warehouse"]
    rows = warehouse.query("select workspace_id, date, object_table, quarantined_objects "
                           "from metrics.data_quality_daily order by workspace_id, date, object_table")
    got = [(r["workspace_id"], r["date"].isoformat(), r["object_table"], r["quarantined_objects"]) for r in rows]
    assert got == [
        ("dq-saas", "2026-01-01", "prices", 2),         # price_null, price_neg (created 2026-01-01)
        ("dq-saas", "2026-04-01", "subscriptions", 2),  # sub_neg, sub_future (sub_null resolved)
        ("dq-saas", "2026-05-01", "invoices", 1),       # in_neg
        ("dq-saas", "2026-05-05", "invoices", 1),       # in_huge
        ("dq-saas", "2026-05-22", "invoices", 1),       # in_xyz
        ("dq-store", "2026-05-10", "orders", 1),        # 5003 (XYZ)
        ("dq-store", "2026-05-12", "orders", 3),        # 5005, 5006, 5008 (5004 resolved)
        ("dq-store", "2026-05-13", "orders", 1),        # 5011 (10^20 euros)
        ("dq-store", "2026-05-19", "orders", 1),        # 5007, dated 2999: counted on the day it was set
                                                        # aside (2026-05-20 00:00 UTC, in New York)
        ("dq-store", "2026-05-22", "orders", 1),        # 5009
        ("dq-store", "2026-05-23", "orders", 1),        # 5012 (10^30 dollars)
    ]


# -- the operator ------------------------------------------------------------------------------------


def test_the_operator_alert_names_workspace_objects_and_reasons(built):
    messages = built["after_first"]["alerts"]
    assert len(messages) == 2  # one per workspace with bad records, none for the clean ones
    texts = {message["blocks"][0]["text"]["text"]: message["text"] for message in messages}
    shop = texts["Quarantined shopify records in workspace dq-store"]
    for order_id in (5003, 5004, 5005, 5006, 5007, 5008, 5011):
        assert ORDER(order_id) in shop
    assert "unknown currency" in shop and "appears more than once" in shop and "not a whole number" in shop
    assert AMOUNT_REASON in shop
    stripe = texts["Quarantined stripe records in workspace dq-saas"]
    for object_id in ("sub_null", "sub_neg", "sub_future", "price_null", "price_neg", "in_neg", "in_huge"):
        assert object_id in stripe
    assert not any("dq-clean" in title for title in texts)
    # The second sync alerts only about what is new in quarantine (5007 is read, and set aside,
    # again by every sync: it is not news).
    later = [m for m in alerts(built["home"]) if m not in messages]
    shop = next(m["text"] for m in later if "dq-store" in m["text"])
    assert ORDER(5009) in shop and ORDER(5012) in shop and ORDER(5007) not in shop and ORDER(5011) not in shop
    assert "in_xyz" in next(m["text"] for m in later if "dq-saas" in m["text"])
