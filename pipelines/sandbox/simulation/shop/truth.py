"""Ground truth for a simulated Shopify store, computed from exactly what the fake API serves.

It streams the stored objects, so it holds for any store (simulated, advanced or fixture-shaped).
The revenue definitions are the ones docs/metrics.md states (see docs/simulator-ecommerce.md):

- test orders are excluded everywhere; cancelled orders are excluded from gross sales, discounts,
  orders and units;
- gross_sales = Σ originalUnitPrice × quantity, discounts = Σ line discount allocations, both dated
  by the order's createdAt in the shop's timezone;
- refunds = Σ refund line items' subtotalSet (no tax, no shipping), dated by the refund's createdAt;
- net_sales = gross_sales − discounts − refunds;
- a person is lower(email); new = first included order that day, returning = ordered that day and
  had an included order on an earlier day;
- a person's cohort is the month of their first included order (their acquisition day); a cohort's
  active customers in a month are its persons with an included order that month.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pipelines.sandbox.simulation.shop.orders import bag_cents, currency_digits, decimal_string
from pipelines.sandbox.simulation.simulator import parse_iso
from pipelines.sandbox.core.store import SandboxStore

SOURCE = "shopify"
MONEY_FIELDS = ("gross_sales", "discounts", "refunds", "net_sales")
COUNT_FIELDS = ("orders", "units", "new_customers", "returning_customers")
ORDER_SUMS = ("totalPriceSet", "subtotalPriceSet", "totalTaxSet", "totalDiscountsSet", "totalShippingPriceSet",
              "totalRefundedSet")


class _LocalDays:
    """Unix time to the shop's local ISO date, cached per quarter hour (every UTC offset is a multiple)."""

    def __init__(self, tz: str):
        self.zone = ZoneInfo(tz)
        self._cache: dict[int, str] = {}

    def __call__(self, ts: int) -> str:
        key = ts // 900
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = datetime.fromtimestamp(key * 900, self.zone).date().isoformat()
        return found


def _cohorts(first_day: dict[str, str], months: dict[str, set[str]]) -> dict[str, dict[str, Any]]:
    """Per cohort month (YYYY-MM of each person's acquisition day): its `customers` and `active`,
    the persons buying in each month since the cohort month (0 = the cohort month), up to the last
    month with an included order."""
    def index(month: str) -> int:
        return int(month[:4]) * 12 + int(month[5:7])
    last = max((index(month) for seen in months.values() for month in seen), default=0)
    cohorts: dict[str, dict[str, Any]] = {}
    for person, day in first_day.items():
        start = index(day[:7])
        cohort = cohorts.setdefault(day[:7], {"customers": 0, "active": [0] * (last - start + 1)})
        cohort["customers"] += 1
        for month in months[person]:
            cohort["active"][index(month) - start] += 1
    return dict(sorted(cohorts.items()))


def _empty_day() -> dict[str, int]:
    return dict.fromkeys(MONEY_FIELDS + COUNT_FIELDS, 0)


def shop_truth(store: SandboxStore, workspace: str, tz: str, start: date, currency: str) -> dict[str, Any]:
    """Object counts, money sums and daily revenue of one shop, as the API serves it now, in shop
    money (`currency`, with that currency's decimals)."""
    digits = currency_digits(currency)
    local_day = _LocalDays(tz)
    counts = dict.fromkeys(
        ("orders", "order_line_items", "order_refunds", "order_refund_line_items", "order_shipping_lines",
         "order_tax_lines", "order_discount_applications", "products", "product_variants", "customers"), 0)
    sums = dict.fromkeys([f"orders.{name}" for name in ORDER_SUMS]
                         + ["line_items.originalTotalSet", "refunds.totalRefundedSet"], 0)
    days: dict[str, dict[str, int]] = {}
    first_day: dict[str, str] = {}  # person -> day of their first included order
    counted_day: dict[str, str] = {}  # person -> last day they were counted as new or returning
    months: dict[str, set[str]] = {}  # person -> the months (YYYY-MM) of their included orders

    for order in store.iter_objects(workspace, SOURCE, "order"):
        body = order.body
        counts["orders"] += 1
        counts["order_line_items"] += len(body["lineItems"])
        counts["order_refunds"] += len(body["refunds"])
        counts["order_refund_line_items"] += sum(len(r["refundLineItems"]) for r in body["refunds"])
        counts["order_shipping_lines"] += len(body["shippingLines"])
        counts["order_tax_lines"] += len(body["taxLines"])
        counts["order_discount_applications"] += len(body["discountApplications"])
        for name in ORDER_SUMS:
            sums[f"orders.{name}"] += bag_cents(body[name]) if body.get(name) else 0
        sums["line_items.originalTotalSet"] += sum(bag_cents(line["originalTotalSet"]) for line in body["lineItems"])
        sums["refunds.totalRefundedSet"] += sum(bag_cents(r["totalRefundedSet"]) for r in body["refunds"])
        if body["test"]:
            continue
        for refund in body["refunds"]:
            refund_day = days.setdefault(local_day(parse_iso(refund["createdAt"])), _empty_day())
            refund_day["refunds"] += sum(bag_cents(item["subtotalSet"]) for item in refund["refundLineItems"])
        if body["cancelledAt"] is not None:
            continue
        day = local_day(order.created)
        totals = days.setdefault(day, _empty_day())
        totals["orders"] += 1
        for line in body["lineItems"]:
            totals["gross_sales"] += bag_cents(line["originalUnitPriceSet"]) * line["quantity"]
            totals["discounts"] += sum(bag_cents(a["allocatedAmountSet"]) for a in line["discountAllocations"])
            totals["units"] += line["quantity"]
        person = (body.get("email") or "").lower()
        months.setdefault(person, set()).add(day[:7])
        if person not in first_day:
            first_day[person] = counted_day[person] = day
            totals["new_customers"] += 1
        elif first_day[person] < day and counted_day[person] != day:
            counted_day[person] = day
            totals["returning_customers"] += 1

    for product in store.iter_objects(workspace, SOURCE, "product"):
        counts["products"] += 1
        counts["product_variants"] += len(product.body["variants"])
    counts["customers"] = store.count(workspace, SOURCE, "customer")

    revenue_days = _all_days(days, start, local_day(store.clock) if store.clock else None)
    total = _empty_day()
    for values in revenue_days.values():
        values["net_sales"] = values["gross_sales"] - values["discounts"] - values["refunds"]
        for name in total:
            total[name] += values[name]
    sold = total["gross_sales"] - total["discounts"]
    aov = (2 * sold + total["orders"]) // (2 * total["orders"]) if total["orders"] else 0  # half up
    return {
        "counts": counts,
        "cohorts": _cohorts(first_day, months),
        "sums": {name: decimal_string(value, digits) for name, value in sums.items()},
        "revenue": {
            "totals": {**_formatted(total, digits), "aov": decimal_string(aov, digits)},
            "days": {day: _formatted(values, digits) for day, values in revenue_days.items()},
        },
    }


def _all_days(days: dict[str, dict[str, int]], start: date, last: str | None) -> dict[str, dict[str, int]]:
    """Every local day from the first day of history to the clock's day, zero-filled, in order."""
    first = min([start.isoformat(), *days])
    end = max([d for d in (last, *days) if d is not None], default=first)
    filled = {}
    day = date.fromisoformat(first)
    while day.isoformat() <= end:
        filled[day.isoformat()] = days.get(day.isoformat(), _empty_day())
        day += timedelta(days=1)
    return filled


def _formatted(values: dict[str, int], digits: int) -> dict[str, Any]:
    return {name: decimal_string(value, digits) if name in MONEY_FIELDS else value for name, value in values.items()}
