"""The Arrow fast path turns bulk JSONL into the same rows as the dict path (rows.TableRows)."""

from __future__ import annotations

import json

import orjson
import pyarrow as pa
import pytest

from pipelines.ingest.shopify import KEYS, TABLES
from pipelines.ingest.shopify.arrow import ArrowTables, blocks
from pipelines.ingest.shopify.columns import COLUMN_TYPES
from pipelines.ingest.shopify.rows import TableRows

WORKSPACE = "shop-test"


def money(amount: str, currency: str = "USD") -> dict:
    return {"shopMoney": {"amount": amount, "currencyCode": currency},
            "presentmentMoney": {"amount": amount, "currencyCode": currency}}


def order(number: int, *, refunds: list | None = None, customer: bool = True, **extra) -> dict:
    return {
        "id": f"gid://shopify/Order/{number}", "legacyResourceId": str(number), "name": f"#{number}",
        "createdAt": "2026-03-02T15:00:00Z", "updatedAt": "2026-03-16T10:00:00Z", "cancelledAt": None,
        "test": False, "email": f"buyer{number}@example.com", "currencyCode": "USD", "tags": ["vip"],
        "discountCodes": [], "customer": {"id": f"gid://shopify/Customer/{number}"} if customer else None,
        "billingAddress": {"city": "Austin", "provinceCode": "TX", "countryCodeV2": "US", "zip": "73301"},
        "shippingAddress": None, "totalPriceSet": money("80.00"), "totalRefundedSet": money("0.00"),
        "taxLines": [{"title": "State", "rate": 0.0625, "priceSet": money("5.00")}],
        "refunds": refunds or [], **extra,
    }


def refund(number: int) -> dict:
    return {"id": f"gid://shopify/Refund/{number}", "legacyResourceId": str(number),
            "createdAt": "2026-03-16T10:00:00Z", "updatedAt": "2026-03-16T10:00:00Z", "processedAt": None,
            "note": "Wrong size", "totalRefundedSet": money("30.00")}


def children(parent: int, refund_number: int | None = None) -> list[dict]:
    of = {"__parentId": f"gid://shopify/Order/{parent}"}
    lines = [
        {"__typename": "LineItem", "id": f"gid://shopify/LineItem/{parent}1", "name": "Tent", "sku": "TENT-2P",
         "quantity": 2, "product": {"id": "gid://shopify/Product/9"}, "variant": None,
         "originalUnitPriceSet": money("50.00"), "taxLines": [],
         "discountAllocations": [{"allocatedAmountSet": money("10.00"), "discountApplication": {"index": 0}}],
         **of},
        {"__typename": "ShippingLine", "id": f"gid://shopify/ShippingLine/{parent}", "title": "Standard",
         "originalPriceSet": money("5.00"), "taxLines": [{"title": "State", "rate": 0.0625,
                                                            "priceSet": money("0.31")}], **of},
        {"__typename": "DiscountCodeApplication", "index": 0, "allocationMethod": "ACROSS",
         "value": {"__typename": "PricingPercentageValue", "percentage": 10.0}, "code": "WELCOME10", **of},
        {"__typename": "ManualDiscountApplication", "index": 1, "allocationMethod": "EACH",
         "value": {"__typename": "MoneyV2", "amount": "5.0", "currencyCode": "USD"}, "title": "Sorry",
         "description": None, **of},
    ]
    if refund_number is not None:
        lines.append({"__typename": "RefundLineItem", "id": f"gid://shopify/RefundLineItem/{refund_number}",
                      "quantity": 1, "restockType": "RETURN", "restocked": True,
                      "lineItem": {"id": f"gid://shopify/LineItem/{parent}1"}, "priceSet": money("50.00"),
                      "__parentId": f"gid://shopify/Refund/{refund_number}"})
    return lines


def jsonl(lines: list[dict]) -> bytes:
    return b"".join(orjson.dumps(line) + b"\n" for line in lines)


def arrow_rows(tables: dict[str, pa.Table], table: str) -> list[dict]:
    """Arrow rows as dicts, JSON text decoded and nulls dropped, the way dict rows look."""
    found = []
    for row in tables[table].to_pylist() if table in tables else []:
        for column, value in row.items():
            if COLUMN_TYPES[table].get(column) == "json" and value is not None:
                row[column] = json.loads(value)
        found.append({k: v for k, v in row.items() if v is not None})
    return found


def assert_same_rows(lines: list[dict]) -> dict[str, pa.Table]:
    keys = {table: KEYS[table][0] for table in TABLES["orders"]}
    tables = ArrowTables("orders", WORKSPACE, keys).split(jsonl(lines))
    expected = TableRows("orders", WORKSPACE).split([orjson.loads(orjson.dumps(line)) for line in lines])
    for table in TABLES["orders"]:
        want = [{k: v for k, v in row.items() if v is not None} for row in expected[table]]
        key = lambda row: tuple(str(row.get(k)) for k in keys[table])  # noqa: E731
        assert sorted(arrow_rows(tables, table), key=key) == sorted(want, key=key), table
    return tables


def test_orders_with_refunds_discount_unions_and_a_new_field_give_the_dict_rows():
    lines = [order(1, refunds=[refund(71)]), order(2, customer=False, poNumber="PO-1"),
             *children(1, refund_number=71), *children(2)]
    tables = assert_same_rows(lines)
    assert tables["orders"].column("po_number").to_pylist() == [None, "PO-1"]  # schema evolution, as dicts
    assert tables["order_discount_applications"].column("value_amount").type == pa.decimal128(38, 9)


def test_columns_are_declared_in_order_typed_and_keys_not_null():
    tables = assert_same_rows([order(1), *children(1)])
    for table, found in tables.items():
        declared = list(COLUMN_TYPES[table])
        assert found.column_names[:len(declared)] == declared, table
        assert all(not found.schema.field(key).nullable for key in KEYS[table][0]), table
    assert tables["orders"].schema.field("created_at").type == pa.timestamp("us", tz="UTC")


@pytest.mark.parametrize("count", [1, 3000])
def test_blocks_whose_refunds_are_all_empty(count):
    """Parse blocks holding no refund at all (whose type the parallel JSON parse cannot infer), next
    to one that has a refund, still convert."""
    lines = [order(n) for n in range(1, count + 1)]
    lines[-1] = order(count, refunds=[refund(99)])
    assert_same_rows(lines)


def test_file_blocks_end_on_line_breaks(tmp_path):
    lines = [order(n) for n in range(1, 200)]
    path = tmp_path / "bulk.jsonl"
    path.write_bytes(jsonl(lines))
    pieces = list(blocks(path, size=1000))
    assert all(piece.endswith(b"\n") for piece in pieces)
    assert b"".join(pieces) == path.read_bytes()


def test_rows_keep_file_order_by_node_type_and_no_column_of_another_type():
    """Child lines of several types interleaved: each table's rows in file order (discount
    applications: by type, in the order the types first appear), and no column a table's own nodes
    never had (the block's columns are the union of every type's fields)."""
    lines = [order(3, refunds=[refund(73)]), *reversed(children(3, refund_number=73)), order(1), *children(1),
             order(2, poNumber="PO-2"), *children(2)]
    tables = assert_same_rows(lines)
    assert tables["orders"].column("id").to_pylist() == [f"gid://shopify/Order/{n}" for n in (3, 1, 2)]
    assert tables["order_line_items"].column("order_id").to_pylist() == [
        f"gid://shopify/Order/{n}" for n in (3, 1, 2)]
    # ManualDiscountApplication appears first (order 3's lines reversed), then DiscountCodeApplication.
    found = tables["order_discount_applications"]
    assert list(zip(found.column("type").to_pylist(), found.column("order_id").to_pylist())) == [
        ("ManualDiscountApplication", f"gid://shopify/Order/{n}") for n in (3, 1, 2)] + [
        ("DiscountCodeApplication", f"gid://shopify/Order/{n}") for n in (3, 1, 2)]
    for table, found in tables.items():
        extra = set(found.column_names) - set(COLUMN_TYPES[table]) - {"_dlt_load_id", "_dlt_id"}
        assert extra == ({"po_number"} if table == "orders" else set()), table


def test_a_child_line_of_an_unknown_or_missing_type_is_refused():
    keys = {table: KEYS[table][0] for table in TABLES["orders"]}
    for typename in ("GiftCard", None):
        child = {"__typename": typename, "id": "gid://shopify/GiftCard/1",
                 "__parentId": "gid://shopify/Order/1"}
        with pytest.raises(ValueError, match="unexpected nested Shopify node"):
            ArrowTables("orders", WORKSPACE, keys).split(jsonl([order(1), *children(1), child]))


def test_a_bad_child_row_sets_its_whole_order_aside_as_the_dict_path_does():
    """Interleaved node types, one order with a line of quantity 0 and one whose refund line has a
    negative quantity: both evaluators find the same two orders, and dropping them leaves no row of
    theirs in any table while every row of the good order stays."""
    from datetime import UTC, datetime

    from pipelines.ingest.quarantine import Bounds
    from pipelines.ingest.shopify.contract import drop_arrow, screen_arrow, screen_rows

    bad_line, bad_refund = children(1), children(2, refund_number=72)
    bad_line[0]["quantity"] = 0
    bad_refund[-1]["quantity"] = -1
    lines = [order(2, refunds=[refund(72)]), *reversed(bad_refund), order(1), *bad_line,
             order(3), *children(3)]
    keys = {table: KEYS[table][0] for table in TABLES["orders"]}
    tables = ArrowTables("orders", WORKSPACE, keys).split(jsonl(lines))
    bounds = Bounds.at(datetime(2026, 5, 20, tzinfo=UTC))
    by_arrow = screen_arrow(tables, bounds)
    dict_rows = TableRows("orders", WORKSPACE).split([orjson.loads(orjson.dumps(x)) for x in lines])
    by_rows = screen_rows(dict_rows, bounds)
    bad = {"gid://shopify/Order/1", "gid://shopify/Order/2"}
    assert set(by_arrow) == set(by_rows) == bad
    assert {(v.record_table, v.field, v.reason) for v in by_arrow["gid://shopify/Order/1"]} == {
        ("order_line_items", "quantity", "less than 1")}
    assert {(v.record_table, v.field) for v in by_arrow["gid://shopify/Order/2"]} == {
        ("order_refund_line_items", "quantity")}
    kept = drop_arrow(tables, set(by_arrow))
    good = ArrowTables("orders", WORKSPACE, keys).split(jsonl([order(3), *children(3)]))
    assert set(kept) == set(good)
    def key(row: dict) -> tuple:  # discount applications come by type, in the order the types first appear
        return str(row.get("order_id") or row.get("refund_id")), str(row.get("id")), row.get("index") or 0

    for table in good:
        assert sorted(kept[table].to_pylist(), key=key) == sorted(good[table].to_pylist(), key=key), table
