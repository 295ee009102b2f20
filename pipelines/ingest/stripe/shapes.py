"""Bring Stripe objects to the pinned API version's shape, and flatten them into raw-table rows.

Events carry `data.object` in the API version that was current when the event was created, not
the version the connector pins. Objects written before Stripe's 2025-03-31 ("basil") changes, such
as the 2023-08-16 shape, are rewritten here into the pinned (2026-10-28.endive) shape, so one table
never mixes two shapes. Each rewrite keys on the *shape* (the old field present, the new one
absent), so an object already in the new shape passes through untouched. The changes, from
reference/stripe/NOTES.md:

- subscription: `current_period_start/end` moved onto each item; `discount` became `discounts`.
- invoice: `subscription`, `subscription_details`, `quote` moved under `parent`; `discount` became
  `discounts`; `total_tax_amounts` became `total_taxes`; `paid`, `tax`, `charge`, ... were removed.
- invoice line: `price`, `type`, `proration`, `subscription_item`, `invoice_item` moved into
  `pricing` and `parent`; `tax_amounts` became `taxes`.
- discount: `coupon` became `source: {type: "coupon", coupon}`.
- product: `features` became `marketing_features`.
"""

from __future__ import annotations

from typing import Any

# Old invoice fields with no place in the pinned shape once their data has moved (or is derivable:
# `paid` is `status == "paid"`, `tax` is the sum of `total_taxes`).
INVOICE_REMOVED = (
    "paid", "paid_out_of_band", "charge", "payment_intent", "subscription", "subscription_details",
    "subscription_proration_date", "discount", "tax", "total_tax_amounts", "application_fee_amount", "quote",
    "transfer_data", "rendering_options",
)
LINE_REMOVED = (
    "price", "type", "proration", "proration_details", "subscription_item", "invoice_item",
    "tax_amounts", "tax_rates", "amount_excluding_tax", "unit_amount_excluding_tax",
)
# Maps whose keys are user data (or unbounded): kept as one JSON column rather than flattened.
JSON_MAPS = frozenset({"metadata"})


def to_pinned_shape(obj: dict[str, Any]) -> dict[str, Any]:
    """`obj` in the pinned API version's shape (a new dict; `obj` is not changed)."""
    convert = _CONVERTERS.get(obj.get("object"))
    return convert(dict(obj)) if convert else obj


def discount_objects(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """Discount objects embedded in a customer, subscription or invoice (expanded or old-shape)."""
    found = []
    for value in [obj.get("discount"), *(obj.get("discounts") or [])]:
        if isinstance(value, dict) and value.get("object") == "discount":
            found.append(_discount(dict(value)))
    return found


def _discount(discount: dict[str, Any]) -> dict[str, Any]:
    if "coupon" in discount and "source" not in discount:
        coupon = discount.pop("coupon")
        coupon_id = coupon.get("id") if isinstance(coupon, dict) else coupon
        discount["source"] = {"type": "coupon", "coupon": coupon_id}
    return discount


def _discount_ids(values: list[Any]) -> list[Any]:
    return [v.get("id") if isinstance(v, dict) else v for v in values]


def _customer(customer: dict[str, Any]) -> dict[str, Any]:
    if isinstance(customer.get("discount"), dict):
        customer["discount"] = _discount(dict(customer["discount"]))
    return customer


def _product(product: dict[str, Any]) -> dict[str, Any]:
    if "features" in product and "marketing_features" not in product:
        product["marketing_features"] = product.pop("features")
    return product


def _subscription(sub: dict[str, Any]) -> dict[str, Any]:
    legacy_period = "current_period_start" in sub or "current_period_end" in sub
    start, end = sub.pop("current_period_start", None), sub.pop("current_period_end", None)
    if "discounts" not in sub:
        discount = sub.get("discount")
        sub["discounts"] = [discount["id"] if isinstance(discount, dict) else discount] if discount else []
    else:
        sub["discounts"] = _discount_ids(sub["discounts"])
    sub.pop("discount", None)
    items = sub.get("items")
    if isinstance(items, dict):
        data = []
        for item in items.get("data") or []:
            item = dict(item)
            # With classic billing every item shares the subscription's period.
            if legacy_period and "current_period_start" not in item:
                item["current_period_start"], item["current_period_end"] = start, end
            item["discounts"] = _discount_ids(item.get("discounts") or [])
            data.append(item)
        sub["items"] = {**items, "data": data}
    return sub


def _taxes(amounts: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    return [
        {
            "amount": tax.get("amount"),
            "tax_behavior": "inclusive" if tax.get("inclusive") else "exclusive",
            "tax_rate_details": {"tax_rate": tax.get("tax_rate")},
            "taxability_reason": tax.get("taxability_reason"),
            "taxable_amount": tax.get("taxable_amount"),
            "type": "tax_rate_details",
        }
        for tax in amounts or []
    ]


def _invoice(invoice: dict[str, Any]) -> dict[str, Any]:
    legacy = "parent" not in invoice
    if legacy:
        subscription, quote = invoice.get("subscription"), invoice.get("quote")
        if subscription:
            details = {"metadata": (invoice.get("subscription_details") or {}).get("metadata"),
                       "subscription": subscription,
                       "subscription_proration_date": invoice.get("subscription_proration_date")}
            invoice["parent"] = {"type": "subscription_details", "quote_details": None,
                                 "subscription_details": details}
        elif quote:
            invoice["parent"] = {"type": "quote_details", "quote_details": {"quote": quote},
                                 "subscription_details": None}
        else:
            invoice["parent"] = None
    if "total_taxes" not in invoice and "total_tax_amounts" in invoice:
        invoice["total_taxes"] = _taxes(invoice["total_tax_amounts"])
    if "discounts" not in invoice:
        discount = invoice.get("discount")
        invoice["discounts"] = [discount["id"]] if isinstance(discount, dict) else []
    else:
        invoice["discounts"] = _discount_ids(invoice["discounts"])
    if "rendering" not in invoice and invoice.get("rendering_options"):
        invoice["rendering"] = {"amount_tax_display": invoice["rendering_options"].get("amount_tax_display")}
    for name in INVOICE_REMOVED if legacy else ():
        invoice.pop(name, None)
    lines = invoice.get("lines")
    if isinstance(lines, dict):
        data = [_line(dict(line), invoice.get("id")) for line in lines.get("data") or []]
        invoice["lines"] = {**lines, "data": data}
    return invoice


def _line(line: dict[str, Any], invoice_id: str | None = None) -> dict[str, Any]:
    legacy = "pricing" not in line
    if legacy and "price" in line:
        price = line.get("price")
        price_id = price.get("id") if isinstance(price, dict) else price
        product = price.get("product") if isinstance(price, dict) else None
        line["pricing"] = {
            "type": "price_details",
            "price_details": {"price": price_id, "product": product},
            "unit_amount_decimal": price.get("unit_amount_decimal") if isinstance(price, dict) else None,
        }
    if "parent" not in line and "type" in line:
        common = {
            "invoice_item": line.get("invoice_item"),
            "proration": bool(line.get("proration")),
            "proration_details": line.get("proration_details"),
            "subscription": line.get("subscription"),
        }
        if line["type"] == "subscription":
            line["parent"] = {"type": "subscription_item_details", "invoice_item_details": None,
                              "subscription_item_details": {**common, "subscription_item": line.get("subscription_item")}}
        else:
            line["parent"] = {"type": "invoice_item_details", "subscription_item_details": None,
                              "invoice_item_details": common}
    if "taxes" not in line and "tax_amounts" in line:
        line["taxes"] = _taxes(line["tax_amounts"])
    if invoice_id and not line.get("invoice"):
        line["invoice"] = invoice_id
    for name in LINE_REMOVED if legacy else ():
        line.pop(name, None)
    return line


_CONVERTERS = {
    "customer": _customer,
    "product": _product,
    "subscription": _subscription,
    "invoice": _invoice,
    "line_item": _line,
    "discount": _discount,
}


def flatten(obj: dict[str, Any], *, drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """A raw-table row: nested objects become `parent__child` columns, lists and metadata stay JSON.

    Lists (discounts, tax breakdowns, ...) stay whole in one JSON column rather than becoming
    child tables, so a row is one object and merging on its key replaces all of it. `drop`: top-level
    keys left out. Called on every object of every page: JSON objects are plain dicts (`type(...) is`).
    """
    row: dict[str, Any] = {}
    stack: list[tuple[str, dict[str, Any]]] = []
    push, pop = stack.append, stack.pop
    for key, value in obj.items():  # the top level, where `drop` applies
        if value is None or key in drop:
            continue  # a null is the same as an absent column, and dlt warns about all-null ones
        if type(value) is dict and value and key not in JSON_MAPS:
            push((f"{key}__", value))
        else:
            row[key] = value
    while stack:
        prefix, node = pop()
        for key, value in node.items():
            if value is None:
                continue
            if type(value) is dict and value and key not in JSON_MAPS:
                push((f"{prefix}{key}__", value))
            else:
                row[prefix + key] = value
    return row
