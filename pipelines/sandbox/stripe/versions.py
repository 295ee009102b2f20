"""Render stored Stripe objects in the API version a request (or an event) asks for.

The store holds every object in the version the connector pins, 2026-10-28.endive. The fake API can
also answer in 2023-08-16, the version of the OpenAPI spec in ../shared/reference and the version
events created before the account's upgrade were written in. Going back means undoing the breaking
changes between the two versions (reference/stripe/NOTES.md lists them): restore the fields that
were removed, rebuilt from where their data lives now, and drop the fields that were introduced
since. Price and coupon did not change.

Some old fields hold whole objects where the new shape holds ids (a line item's `price`, a
discount's `coupon`), so rendering needs a way to look objects up: `Lookup(kind, id)` returns the
stored body or None. Looked-up bodies may be shared (the API caches them per request), so they are
copied before they become part of a response.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipelines import json_io

LATEST = "2026-10-28.endive"
LEGACY = "2023-08-16"
SUPPORTED = (LATEST, LEGACY)

Lookup = Callable[[str, str], dict[str, Any] | None]

# Top-level fields introduced after 2023-08-16, found by comparing the 2023 spec's schemas with
# stripe-python 16.1.0. `deleted` is left alone (it only appears on deleted stubs), and so is
# `subscription_item.plan`, which 2023 responses carried although that spec left it out.
ADDED_SINCE_LEGACY: dict[str, frozenset[str]] = {
    "customer": frozenset({"business_name", "customer_account", "individual_name"}),
    "product": frozenset({"marketing_features", "tax_details", "type"}),
    "subscription": frozenset({
        "billing_cycle_anchor_config", "billing_mode", "billing_schedules", "customer_account", "discounts",
        "invoice_settings", "managed_payments", "presentment_details", "status_details",
    }),
    "subscription_item": frozenset({"billed_until", "current_period_end", "current_period_start", "current_trial",
                                    "discounts"}),
    "invoice": frozenset({
        "amount_overpaid", "amount_paid_off_stripe", "automatically_finalizes_at", "confirmation_secret",
        "customer_account", "issuer", "parent", "payments", "rendering", "status_details",
        "total_pretax_credit_amounts", "total_taxes",
    }),
    "line_item": frozenset({"invoice", "parent", "pretax_credit_amounts", "pricing", "quantity_decimal", "subtotal",
                            "taxes"}),
    "discount": frozenset({"customer_account", "source", "subscription_item"}),
    "event": frozenset({"context"}),
}


def _copy(value: Any) -> Any:
    """A deep copy of a JSON value, through JSON: several times faster than `copy.deepcopy`."""
    return None if value is None else json_io.loads(json_io.dumps(value))


class UnsupportedVersion(ValueError):
    """A Stripe-Version the sandbox cannot render."""


def render(obj: dict[str, Any], version: str, lookup: Lookup) -> dict[str, Any]:
    """`obj` (stored, latest shape) as API `version` returns it. Never mutates `obj`.

    Events keep their own `data.object` untouched here: that part follows the event's
    `api_version`, not the request's (see `render_event_data`).
    """
    if version == LATEST or obj.get("deleted"):
        return obj
    if version != LEGACY:
        raise UnsupportedVersion(version)
    return _legacy(_copy(obj), lookup)


def render_event_data(event: dict[str, Any], lookup: Lookup) -> dict[str, Any]:
    """Render an event's `data.object` in the event's own `api_version`, as Stripe does."""
    version = event.get("api_version") or LATEST
    data = event.get("data") or {}
    if version not in SUPPORTED or not isinstance(data.get("object"), dict):
        return event
    return {**event, "data": {**data, "object": render(data["object"], version, lookup)}}


def _legacy(obj: dict[str, Any], lookup: Lookup) -> dict[str, Any]:
    kind = obj.get("object")
    convert = _LEGACY_CONVERTERS.get(kind)
    if convert is not None:
        convert(obj, lookup)
    for name in ADDED_SINCE_LEGACY.get(kind, ()):
        obj.pop(name, None)
    return obj


def _legacy_customer(customer: dict[str, Any], lookup: Lookup) -> None:
    if isinstance(customer.get("discount"), dict):
        customer["discount"] = _legacy(customer["discount"], lookup)


def _legacy_product(product: dict[str, Any], lookup: Lookup) -> None:
    # 2024-04-10 renamed `features` (a list of {name}) to `marketing_features`.
    product["features"] = [{"name": f.get("name")} for f in product.get("marketing_features") or []]


def _legacy_discount(discount: dict[str, Any], lookup: Lookup) -> None:
    source = discount.get("source") or {}
    coupon = source.get("coupon")
    if isinstance(coupon, str):
        coupon = _copy(lookup("coupon", coupon))
    discount["coupon"] = coupon


def _single_discount(ids: list[Any], lookup: Lookup) -> dict[str, Any] | None:
    """The old singular `discount`: set only when exactly one discount applies."""
    if len(ids) != 1:
        return None
    found = ids[0] if isinstance(ids[0], dict) else lookup("discount", ids[0])
    return _legacy(_copy(found), lookup) if found else None


def _legacy_subscription(subscription: dict[str, Any], lookup: Lookup) -> None:
    # 2025-03-31.basil moved the billing period onto each item; with classic billing all items
    # share one period, and the widest span is the right answer for mixed ones.
    items = (subscription.get("items") or {}).get("data") or []
    starts = [i["current_period_start"] for i in items if i.get("current_period_start") is not None]
    ends = [i["current_period_end"] for i in items if i.get("current_period_end") is not None]
    subscription["current_period_start"] = min(starts) if starts else subscription.get("start_date")
    subscription["current_period_end"] = max(ends) if ends else subscription.get("start_date")
    subscription["discount"] = _single_discount(subscription.get("discounts") or [], lookup)
    if isinstance(subscription.get("items"), dict):
        subscription["items"]["data"] = [_legacy(item, lookup) for item in items]


def _legacy_tax_amounts(taxes: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    return [
        {
            "amount": tax.get("amount", 0),
            "inclusive": tax.get("tax_behavior") == "inclusive",
            "tax_rate": (tax.get("tax_rate_details") or {}).get("tax_rate"),
            "taxability_reason": tax.get("taxability_reason"),
            "taxable_amount": tax.get("taxable_amount"),
        }
        for tax in taxes or []
    ]


def _legacy_invoice(invoice: dict[str, Any], lookup: Lookup) -> None:
    parent = invoice.get("parent") or {}
    details = parent.get("subscription_details") or {}
    payments = ((invoice.get("payments") or {}).get("data") or [])
    payment = next((p.get("payment") or {} for p in payments if p.get("is_default")), {})
    taxes = invoice.get("total_taxes")
    invoice.update(
        paid=invoice.get("status") == "paid",
        paid_out_of_band=bool(invoice.get("amount_paid_off_stripe")),
        charge=payment.get("charge"),
        payment_intent=payment.get("payment_intent"),
        subscription=details.get("subscription"),
        subscription_details={"metadata": details.get("metadata")} if details else None,
        quote=(parent.get("quote_details") or {}).get("quote"),
        discount=_single_discount(invoice.get("discounts") or [], lookup),
        tax=sum(t.get("amount", 0) for t in taxes) if taxes else None,
        total_tax_amounts=_legacy_tax_amounts(taxes),
        application_fee_amount=None,
        transfer_data=None,
        rendering_options=(
            {"amount_tax_display": invoice["rendering"].get("amount_tax_display")}
            if invoice.get("rendering") else None
        ),
    )
    if details.get("subscription_proration_date") is not None:  # 2023 sent it only when set
        invoice["subscription_proration_date"] = details["subscription_proration_date"]
    if isinstance(invoice.get("lines"), dict):
        invoice["lines"]["data"] = [_legacy(line, lookup) for line in invoice["lines"].get("data") or []]


def _legacy_line_item(line: dict[str, Any], lookup: Lookup) -> None:
    parent = line.get("parent") or {}
    from_subscription = parent.get("type") == "subscription_item_details"
    details = parent.get("subscription_item_details" if from_subscription else "invoice_item_details") or {}
    price_details = (line.get("pricing") or {}).get("price_details") or {}
    price = price_details.get("price")
    if isinstance(price, str):
        price = _copy(lookup("price", price))
    taxes = _legacy_tax_amounts(line.get("taxes"))
    inclusive_tax = sum(t["amount"] for t in taxes if t["inclusive"])
    amount_excluding_tax = line.get("amount", 0) - inclusive_tax
    quantity = line.get("quantity") or 1
    line.update(
        type="subscription" if from_subscription else "invoiceitem",
        price=price,
        proration=bool(details.get("proration")),
        proration_details={"credited_items": (details.get("proration_details") or {}).get("credited_items")},
        tax_amounts=taxes,
        tax_rates=[],  # tax rate objects are not part of the sandbox
        amount_excluding_tax=amount_excluding_tax,
        unit_amount_excluding_tax=str(round(amount_excluding_tax / quantity, 12)).removesuffix(".0"),
    )
    # 2023 omitted these ids rather than sending null.
    for name in ("subscription_item", "invoice_item"):
        if details.get(name):
            line[name] = details[name]


def _legacy_subscription_item(item: dict[str, Any], lookup: Lookup) -> None:
    if item.get("quantity") is None:  # metered items: 2023 left `quantity` out instead of sending null
        item.pop("quantity", None)


def _legacy_event(event: dict[str, Any], lookup: Lookup) -> None:
    if event.get("account") is None:  # 2023 sent `account` only on Connect events
        event.pop("account", None)


_LEGACY_CONVERTERS: dict[str, Callable[[dict[str, Any], Lookup], None]] = {
    "customer": _legacy_customer,
    "product": _legacy_product,
    "discount": _legacy_discount,
    "subscription": _legacy_subscription,
    "subscription_item": _legacy_subscription_item,
    "invoice": _legacy_invoice,
    "line_item": _legacy_line_item,
    "event": _legacy_event,
}
