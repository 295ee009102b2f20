"""Shopify order bodies: building a new order and applying its later changes.

Money is integer minor units (cents) everywhere and only becomes a decimal string in the body, so
every total adds up exactly. Later changes (fulfillment, cancellation, tag edits, refunds) are plain
JSON dicts, so they can be applied right away while generating history or kept in a plan and
applied by `advance`; both paths call `apply_change`, which is what makes them agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

from pipelines.currencies import minor_digits
from pipelines.sandbox.simulation.shop.world import Region, ShippingRate

_DAY_PREFIXES: dict[int, str] = {}


def iso(ts: int) -> str:
    """`simulator.iso`, about ten times faster: the simulator formats several timestamps per order."""
    day, seconds = divmod(ts, 86400)
    prefix = _DAY_PREFIXES.get(day)
    if prefix is None:
        prefix = _DAY_PREFIXES[day] = datetime.fromtimestamp(day * 86400, timezone.utc).strftime("%Y-%m-%dT")
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{prefix}{hours:02d}:{minutes:02d}:{secs:02d}Z"


def decimal_string(cents: int, digits: int = 2) -> str:
    """Minor units as Shopify's Decimal string with the currency's decimals, e.g. 1250 -> "12.50"
    (two decimals), 1250 -> "1250" (JPY, none), 1250 -> "1.250" (KWD, three)."""
    sign = "-" if cents < 0 else ""
    if not digits:
        return f"{sign}{abs(cents)}"
    whole, frac = divmod(abs(cents), 10**digits)
    return f"{sign}{whole}.{frac:0{digits}d}"


def cents(amount: str, digits: int = 2) -> int:
    """An amount string with `digits` decimals back to minor units."""
    negative = amount.startswith("-")
    whole, _, frac = amount.lstrip("-").partition(".")
    value = int(whole) * 10**digits + int((frac + "0" * digits)[:digits] or 0)
    return -value if negative else value


@lru_cache(maxsize=None)
def currency_digits(currency: str) -> int:
    """Decimals of a shop currency's amounts (ISO 4217 as CLDR states them: JPY 0, USD 2, KWD 3)."""
    return minor_digits(currency)


def bag_cents(bag: dict[str, Any]) -> int:
    """The shop-money amount of a MoneyBag, in minor units of its currency."""
    money = bag["shopMoney"]
    return cents(money["amount"], currency_digits(money["currencyCode"]))


def scaled(amount: int, parts_per_million: int) -> int:
    """`amount × rate`, rounded half up, with the rate in parts per million."""
    return (amount * parts_per_million + 500_000) // 1_000_000


class Money:
    """MoneyBag / MoneyV2 dicts in one currency. Bags are cached and shared: treat them as immutable."""

    def __init__(self, currency: str):
        self.currency = currency
        self.digits = currency_digits(currency)
        self._bags: dict[int, dict[str, Any]] = {}

    def v2(self, amount: int) -> dict[str, str]:
        return {"amount": decimal_string(amount, self.digits), "currencyCode": self.currency}

    def bag(self, amount: int) -> dict[str, Any]:
        found = self._bags.get(amount)
        if found is None:
            if len(self._bags) > 200_000:  # keeps memory bounded on the large store
                self._bags.clear()
            money = self.v2(amount)
            found = self._bags[amount] = {"shopMoney": money, "presentmentMoney": money}
        return found


@dataclass(frozen=True)
class Ids:
    """Deterministic numeric ids, per workspace, derived from the order / person / product number."""

    offset: int  # 0..899, from the workspace name, so two shops never share an id

    def gid(self, kind: str, number: int) -> str:
        return f"gid://shopify/{kind}/{number}"

    def order(self, seq: int) -> int:
        return 5_000_000_000_000 + self.offset * 1_000_000_000 + seq

    def line_item(self, seq: int, line: int) -> int:
        return 14_000_000_000_000 + self.offset * 10_000_000_000 + seq * 8 + line

    def shipping_line(self, seq: int) -> int:
        return 4_000_000_000_000 + self.offset * 1_000_000_000 + seq

    def address(self, seq: int) -> int:
        return 9_000_000_000_000 + self.offset * 1_000_000_000 + seq

    def refund(self, seq: int, index: int) -> int:
        return 900_000_000_000 + self.offset * 10_000_000_000 + seq * 4 + index

    def refund_line_item(self, seq: int, index: int, line: int) -> int:
        return 500_000_000_000_000 + self.offset * 100_000_000_000 + seq * 32 + index * 8 + line

    def customer(self, person: int) -> int:
        return 7_000_000_000_000 + self.offset * 1_000_000_000 + person

    def customer_address(self, person: int) -> int:
        return 9_900_000_000_000 + self.offset * 1_000_000_000 + person

    def product(self, index: int) -> int:
        return 8_000_000_000 + self.offset * 1_000_000 + index

    def variant(self, product: int, variant: int) -> int:
        return 44_000_000_000_000 + self.offset * 100_000_000 + product * 16 + variant

    def inventory_item(self, product: int, variant: int) -> int:
        return 46_000_000_000_000 + self.offset * 100_000_000 + product * 16 + variant


@dataclass(frozen=True)
class Discount:
    """A discount to apply to an order: a code or an automatic discount, percent or fixed amount."""

    label: str  # the code, or the automatic discount's title
    automatic: bool
    percent: float | None = None
    fixed: int | None = None  # minor units
    product_gid: str | None = None  # only lines of this product are entitled


@dataclass(frozen=True)
class LineDraft:
    product_gid: str
    variant_gid: str
    title: str
    variant_title: str | None  # None for a product's single default variant
    sku: str
    vendor: str
    unit: int  # minor units
    quantity: int


@dataclass(frozen=True)
class OrderDraft:
    """What the day's simulation decided about one order; `build_order` turns it into the body."""

    seq: int
    number: int  # the order number shown as the name (#1001...)
    created: int
    email: str
    customer_gid: str | None
    country: str
    region: Region
    lines: tuple[LineDraft, ...]
    discounts: tuple[Discount, ...]
    shipping: ShippingRate
    tax_shipping: bool
    test: bool
    source: str
    authorized_only: bool  # payment only authorized (held for review): cancellations void these


def _allocate(amount: int, weights: list[int]) -> list[int]:
    """Split `amount` in proportion to `weights`; the last share takes the rounding remainder."""
    total = sum(weights)
    shares = [amount * w // total for w in weights[:-1]]
    return shares + [amount - sum(shares)]


def _discount_application(index: int, discount: Discount, money: Money) -> dict[str, Any]:
    value = ({"__typename": "PricingPercentageValue", "percentage": discount.percent}
             if discount.percent is not None else {"__typename": "MoneyV2", **money.v2(discount.fixed or 0)})
    app: dict[str, Any] = {
        "__typename": "AutomaticDiscountApplication" if discount.automatic else "DiscountCodeApplication",
        "index": index,
        "allocationMethod": "ACROSS",
        "targetSelection": "ENTITLED" if discount.product_gid else "ALL",
        "targetType": "LINE_ITEM",
        "value": value,
    }
    app["title" if discount.automatic else "code"] = discount.label
    return app


Allocation = list[tuple[int, dict[str, Any]]]  # (share in minor units, discount application) of one line


def build_order(draft: OrderDraft, ids: Ids, money: Money) -> dict[str, Any]:
    """The GraphQL node of a just-placed order: unfulfilled, not refunded.

    The story of the checkout: the lines' prices, less the discounts spread over the entitled lines,
    make the subtotal; shipping is free over the rate's threshold; tax is charged on each discounted
    line (and on shipping where the region taxes it); the total adds them up.
    """
    originals = [line.unit * line.quantity for line in draft.lines]
    discounted, allocations, applications = _apply_discounts(draft, originals, money)
    subtotal = sum(discounted)
    shipping = _shipping_cents(draft, subtotal)
    tax = _Tax(draft, money)
    line_taxes = [tax.on(amount) for amount in discounted]
    shipping_tax = tax.on(shipping) if draft.tax_shipping else 0
    total_tax = sum(line_taxes) + shipping_tax
    total = subtotal + shipping + total_tax
    line_items = [
        _line_item(draft, index, ids, money, original, amount, line_tax, allocation, tax)
        for index, (original, amount, line_tax, allocation)
        in enumerate(zip(originals, discounted, line_taxes, allocations))
    ]
    return {
        **_order_header(draft, ids, money),
        "subtotalPriceSet": money.bag(subtotal),
        "totalPriceSet": money.bag(total),
        "currentTotalPriceSet": money.bag(total),
        "totalDiscountsSet": money.bag(sum(originals) - subtotal),
        "totalTaxSet": money.bag(total_tax),
        "totalShippingPriceSet": money.bag(shipping),
        "totalRefundedSet": money.bag(0),
        "taxLines": tax.lines(total_tax),
        "shippingLines": [{
            "id": ids.gid("ShippingLine", ids.shipping_line(draft.seq)),
            "title": draft.shipping.title,
            "code": draft.shipping.code,
            "source": "shopify",
            "originalPriceSet": money.bag(shipping),
            "discountedPriceSet": money.bag(shipping),
            "taxLines": tax.lines(shipping_tax),
        }],
        "discountApplications": applications,
        "lineItems": line_items,
        "refunds": [],
    }


def _apply_discounts(
    draft: OrderDraft, originals: list[int], money: Money
) -> tuple[list[int], list[Allocation], list[dict[str, Any]]]:
    """Each discount in turn, spread over its entitled lines in proportion to what they still cost.

    Returns each line's discounted amount, each line's allocations, and the discount applications.
    """
    remaining = list(originals)
    allocations: list[Allocation] = [[] for _ in draft.lines]
    applications = []
    for discount in draft.discounts:
        entitled = [i for i, line in enumerate(draft.lines)
                    if discount.product_gid is None or line.product_gid == discount.product_gid]
        base = sum(remaining[i] for i in entitled)
        if base <= 0:
            continue
        if discount.percent is not None:
            amount = scaled(base, round(discount.percent * 10_000))
        else:
            amount = min(discount.fixed or 0, base)
        app = _discount_application(len(applications), discount, money)
        applications.append(app)
        for i, share in zip(entitled, _allocate(amount, [remaining[i] for i in entitled])):
            if share:
                allocations[i].append((share, app))
                remaining[i] -= share
    return remaining, allocations, applications


def _shipping_cents(draft: OrderDraft, subtotal: int) -> int:
    """The shipping rate's price, or nothing when the discounted subtotal reaches its free threshold."""
    free_over = draft.shipping.free_over_cents
    return 0 if free_over is not None and subtotal >= free_over else draft.shipping.cents


class _Tax:
    """The region's one tax: its amount on a taxable amount, and the tax lines that show it."""

    def __init__(self, draft: OrderDraft, money: Money):
        self.rate = draft.region.tax_rate
        self.rate_ppm = round(self.rate * 1_000_000)
        self.title = draft.region.tax_title
        self.money = money

    def on(self, amount: int) -> int:
        return scaled(amount, self.rate_ppm) if self.rate_ppm else 0

    def lines(self, amount: int) -> list[dict[str, Any]]:
        if not self.rate_ppm:
            return []
        return [{"title": self.title, "rate": self.rate, "priceSet": self.money.bag(amount)}]


def _line_item(draft: OrderDraft, index: int, ids: Ids, money: Money, original: int, discounted: int,
               tax: int, allocation: Allocation, taxes: _Tax) -> dict[str, Any]:
    line = draft.lines[index]
    return {
        "id": ids.gid("LineItem", ids.line_item(draft.seq, index)),
        "name": f"{line.title} - {line.variant_title}" if line.variant_title else line.title,
        "title": line.title,
        "variantTitle": line.variant_title,
        "sku": line.sku,
        "quantity": line.quantity,
        "currentQuantity": line.quantity,
        "vendor": line.vendor,
        "product": {"id": line.product_gid},
        "variant": {"id": line.variant_gid},
        "originalUnitPriceSet": money.bag(line.unit),
        "originalTotalSet": money.bag(original),
        "discountedTotalSet": money.bag(discounted),
        "totalDiscountSet": money.bag(original - discounted),
        "taxLines": taxes.lines(tax),
        "discountAllocations": [
            {"allocatedAmountSet": money.bag(share),
             "discountApplication": {"__typename": app["__typename"], "index": app["index"]}}
            for share, app in allocation
        ],
    }


def _order_header(draft: OrderDraft, ids: Ids, money: Money) -> dict[str, Any]:
    """Who placed the order, when, where it ships, and its status at checkout."""
    address = {
        "id": ids.gid("MailingAddress", ids.address(draft.seq)),
        "city": draft.region.city,
        "provinceCode": draft.region.province,
        "countryCodeV2": draft.country,
        "zip": draft.region.zip,
    }
    created = iso(draft.created)
    order_id = ids.order(draft.seq)
    return {
        "id": ids.gid("Order", order_id),
        "legacyResourceId": str(order_id),
        "name": f"#{draft.number}",
        "number": draft.number,
        "createdAt": created,
        "updatedAt": created,
        "processedAt": created,
        "cancelledAt": None,
        "cancelReason": None,
        "closed": False,
        "closedAt": None,
        "test": draft.test,
        "email": draft.email,
        "currencyCode": money.currency,
        "presentmentCurrencyCode": money.currency,
        "displayFinancialStatus": "AUTHORIZED" if draft.authorized_only else "PAID",
        "displayFulfillmentStatus": "UNFULFILLED",
        "tags": [],
        "sourceName": draft.source,
        "discountCodes": [d.label for d in draft.discounts if not d.automatic],
        "taxesIncluded": False,
        "customer": {"id": draft.customer_gid} if draft.customer_gid else None,
        "billingAddress": address,
        "shippingAddress": address,
    }


# -- later changes --------------------------------------------------------------------------------


def _close(body: dict[str, Any], at: int) -> None:
    body["closed"] = True
    body["closedAt"] = iso(at)


def _fulfill(body: dict[str, Any], change: dict[str, Any], money: Money) -> None:
    body["displayFulfillmentStatus"] = "FULFILLED"
    _close(body, change["at"])


def _cancel(body: dict[str, Any], change: dict[str, Any], money: Money) -> None:
    # The payment was only authorized, so cancelling voids it: nothing is refunded.
    body["cancelledAt"] = iso(change["at"])
    body["cancelReason"] = change["reason"]
    body["displayFinancialStatus"] = "VOIDED"
    body["currentTotalPriceSet"] = money.bag(0)
    for line in body["lineItems"]:
        line["currentQuantity"] = 0
    _close(body, change["at"])


def _tag(body: dict[str, Any], change: dict[str, Any], money: Money) -> None:
    body["tags"] = sorted({*body["tags"], change["tag"]})


def _refund(body: dict[str, Any], change: dict[str, Any], money: Money) -> None:
    lines = body["lineItems"]
    done_quantity = [0] * len(lines)
    done_subtotal = [0] * len(lines)
    done_tax = [0] * len(lines)
    position = {line["id"]: i for i, line in enumerate(lines)}
    for refund in body["refunds"]:
        for item in refund["refundLineItems"]:
            i = position[item["lineItem"]["id"]]
            done_quantity[i] += item["quantity"]
            done_subtotal[i] += bag_cents(item["subtotalSet"])
            done_tax[i] += bag_cents(item["totalTaxSet"])

    refund_items = []
    total = 0
    for i, quantity, restock_type, item_id in change["lines"]:
        line = lines[i]
        discounted = bag_cents(line["discountedTotalSet"])
        tax = sum(bag_cents(t["priceSet"]) for t in line["taxLines"])
        if done_quantity[i] + quantity == line["quantity"]:  # the last units take what is left
            subtotal, item_tax = discounted - done_subtotal[i], tax - done_tax[i]
        else:
            subtotal = (discounted * quantity + line["quantity"] // 2) // line["quantity"]
            item_tax = (tax * quantity + line["quantity"] // 2) // line["quantity"]
        total += subtotal + item_tax
        line["currentQuantity"] -= quantity
        refund_items.append({
            "id": f"gid://shopify/RefundLineItem/{item_id}",
            "quantity": quantity,
            "restockType": restock_type,
            "restocked": restock_type == "RETURN",
            "lineItem": {"id": line["id"]},
            "priceSet": line["originalUnitPriceSet"],
            "subtotalSet": money.bag(subtotal),
            "totalTaxSet": money.bag(item_tax),
        })
    refund_shipping = []
    if change.get("shipping_id"):
        shipping_line = body["shippingLines"][0]
        amount = bag_cents(shipping_line["discountedPriceSet"])
        tax = sum(bag_cents(t["priceSet"]) for t in shipping_line["taxLines"])
        total += amount + tax
        refund_shipping.append({
            "id": f"gid://shopify/RefundShippingLine/{change['shipping_id']}",
            "shippingLine": {"id": shipping_line["id"]},
            "subtotalAmountSet": money.bag(amount),
            "taxAmountSet": money.bag(tax),
        })
    at = iso(change["at"])
    body["refunds"].append({
        "id": f"gid://shopify/Refund/{change['id']}",
        "legacyResourceId": str(change["id"]),
        "createdAt": at,
        "updatedAt": at,
        "processedAt": at,
        "note": change["note"],
        "totalRefundedSet": money.bag(total),
        "refundLineItems": refund_items,
        "refundShippingLines": refund_shipping,
    })
    refunded = bag_cents(body["totalRefundedSet"]) + total
    order_total = bag_cents(body["totalPriceSet"])
    body["totalRefundedSet"] = money.bag(refunded)
    body["currentTotalPriceSet"] = money.bag(order_total - refunded)
    body["displayFinancialStatus"] = "REFUNDED" if refunded >= order_total else "PARTIALLY_REFUNDED"


_APPLY = {"fulfill": _fulfill, "cancel": _cancel, "tag": _tag, "refund": _refund}


def apply_change(body: dict[str, Any], change: dict[str, Any], money: Money) -> None:
    """Apply one later change to an order body in place and bump its updatedAt."""
    _APPLY[change["type"]](body, change, money)
    body["updatedAt"] = iso(change["at"])
