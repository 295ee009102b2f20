"""The contract's money range: amounts the warehouse holds load, larger ones are set aside (both
connectors, both Shopify evaluators), at the exact edge of quarantine.AMOUNT_LIMIT (10^13)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pyarrow as pa

from pipelines.ingest.quarantine import AMOUNT_REASON, Bounds, _json_safe
from pipelines.ingest.shopify.contract import screen_arrow, screen_rows
from pipelines.ingest.stripe.contract import violations

BOUNDS = Bounds.at(datetime(2026, 5, 20, tzinfo=UTC))
EDGE = Decimal("9999999999999.999999999")  # the largest decimal(38, 9) amount below 10^13
LIMIT = Decimal(10) ** 13


def order(order_id: str, total: Decimal) -> dict:
    return {"id": order_id, "created_at": datetime(2026, 5, 1, tzinfo=UTC), "total_price_amount": total}


def test_shopify_amounts_at_and_past_the_limit_by_both_evaluators():
    rows = [order("ok", EDGE), order("neg_ok", Decimal(0)), order("at", LIMIT), order("huge", Decimal("1E+20"))]
    by_rows = screen_rows({"orders": rows}, BOUNDS)
    table = pa.table({"id": [r["id"] for r in rows], "created_at": [r["created_at"] for r in rows],
                      "total_price_amount": pa.array([r["total_price_amount"] for r in rows], pa.decimal128(38, 9))})
    by_arrow = screen_arrow({"orders": table}, BOUNDS)
    for found in (by_rows, by_arrow):
        assert set(found) == {"at", "huge"}
        assert {(v.field, v.reason) for v in found["huge"]} == {("total_price_amount", AMOUNT_REASON)}
    # Past decimal(38, 9) (the Arrow cast fails, so only the dict path sees it), and not a number at all.
    found = screen_rows({"orders": [order("wide", Decimal("1E+30")), order("nan", Decimal("NaN"))]}, BOUNDS)
    assert [v.reason for v in found["wide"]] == [AMOUNT_REASON]
    assert [v.reason for v in found["nan"]] == ["not a finite number"]


def invoice(amount: int, currency: str = "usd", **extra) -> dict:
    return {"id": "in_1", "created": 1777593600, "currency": currency, "amount_due": amount, **extra}


def test_stripe_minor_units_are_judged_in_major_units_of_their_currency():
    assert violations("invoices", invoice(999_999_999_999_999), None, BOUNDS) == []  # $9,999,999,999,999.99
    assert [v.field for v in violations("invoices", invoice(10**15), None, BOUNDS)] == ["amount_due"]
    assert violations("invoices", invoice(9_999_999_999_999, "jpy"), None, BOUNDS) == []  # zero-decimal yen
    assert [v.reason for v in violations("invoices", invoice(10**13, "jpy"), None, BOUNDS)] == [AMOUNT_REASON]
    assert violations("invoices", invoice(0, "kwd", total=-(10**16 - 1)), None, BOUNDS) == []  # three decimals
    assert [(v.field, v.reason) for v in violations("invoices", invoice(0, "kwd", total=-(10**16)), None, BOUNDS)] == [
        ("total", AMOUNT_REASON)]
    # A credit line (a proration) of -10^13 dollars is as far out as a charge.
    line = {"id": "il_1", "amount": -(10**15), "currency": "usd", "parent__subscription_item_details__proration": True}
    assert [(v.record_table, v.field) for v in violations("invoices", invoice(0), ("invoice_lines", [line]), BOUNDS)] == [
        ("invoice_lines", "amount")]


def test_stripe_item_price_times_quantity_and_integers_beyond_64_bits():
    item = {"id": "si_1", "created": 1777593600, "current_period_start": 1777593600, "price__unit_amount": 2900,
            "price__currency": "usd", "price__billing_scheme": "per_unit", "quantity": 344_827_586_206}
    assert violations("subscription_items", item, None, BOUNDS) == []  # $9,999,999,999,974
    item["quantity"] += 1                                               # $10,000,000,000,003
    assert [(v.field, v.reason) for v in violations("subscription_items", item, None, BOUNDS)] == [
        ("quantity", AMOUNT_REASON + ", as price × quantity")]
    wide = violations("invoices", invoice(100, discounts=[{"amount": 2**63}], ending_balance=2**63 - 1), None, BOUNDS)
    assert [(v.field, v.reason) for v in wide] == [("discounts", "a whole number beyond 64 bits (the warehouse's bigint)")]
    # The quarantine row keeps such a number as text: the JSON writer stops on it.
    assert _json_safe({"a": [2**63, 2**63 - 1]}) == {"a": [str(2**63), 2**63 - 1]}
