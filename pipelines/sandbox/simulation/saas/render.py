"""Stripe JSON for the SaaS walk's objects, in API version 2026-10-28.endive (accounts.STRIPE_API_VERSION).

Objects are unexpanded (expandable fields hold ids), except what Stripe always embeds: a
subscription item's `price` and legacy `plan`. Embedded lists (`subscription.items`,
`invoice.lines`) are complete; the API server truncates them the way Stripe does.
"""

from __future__ import annotations

from typing import Any

from pipelines.sandbox.simulation.saas.objects import Customer, Discount, Invoice, Line, Sub, WalkEvent, World, base62
from pipelines.sandbox.simulation.simulator import stable_id

_CITIES = {"US": ("Austin", "78701", "TX"), "CA": ("Toronto", "M5V 2T6", "ON"),
           "DE": ("Berlin", "10115", None), "FR": ("Lyon", "69002", None), "NL": ("Utrecht", "3511 AB", None),
           "ES": ("Valencia", "46001", None), "IT": ("Torino", "10121", None),
           "JP": ("Osaka", "530-0001", None)}
_LOCALES = {"US": "en-US", "CA": "en-CA", "DE": "de", "FR": "fr", "NL": "nl", "ES": "es", "IT": "it",
            "JP": "ja"}


class StripeRenderer:
    """Renders walk objects as the Stripe API returns them."""

    def __init__(self, world: World):
        self.world = world

    def render(self, kind: str, obj: Any, full: bool = False) -> dict[str, Any]:
        """The object's Stripe JSON now; `full` renders a deleted customer as it was before deletion."""
        if kind == "customer":
            return self.customer(obj, full)
        if kind == "subscription":
            return self.subscription(obj)
        if kind == "invoice":
            return self.invoice(obj)
        return self.discount(obj)

    def customer(self, cus: Customer, full: bool = False) -> dict[str, Any]:
        if cus.deleted and not full:
            return {"id": cus.id, "object": "customer", "deleted": True}
        return {
            "id": cus.id,
            "object": "customer",
            "address": _address(cus.country),
            "balance": cus.balance,
            "business_name": cus.name,
            "created": cus.created,
            "currency": cus.currency,
            "customer_account": None,
            "default_source": None,
            "delinquent": cus.delinquent,
            "description": None,
            "discount": None,
            "email": cus.email,
            "individual_name": None,
            "invoice_prefix": cus.invoice_prefix,
            "invoice_settings": {"custom_fields": None, "default_payment_method": None, "footer": None,
                                 "rendering_options": None},
            "livemode": False,
            "metadata": {},
            "name": cus.name,
            "next_invoice_sequence": cus.next_invoice_sequence,
            "phone": None,
            "preferred_locales": [_LOCALES[cus.country]],
            "shipping": None,
            "tax_exempt": cus.tax_exempt,
            "test_clock": None,
        }

    def subscription(self, sub: Sub) -> dict[str, Any]:
        items = [
            {
                "id": item.id,
                "object": "subscription_item",
                "billing_thresholds": None,
                "created": item.created,
                "current_period_end": sub.period_end,
                "current_period_start": sub.period_start,
                "discounts": [],
                "metadata": {},
                "plan": item.price.plan_body,
                "price": item.price.body,
                "quantity": item.quantity,
                "subscription": sub.id,
                "tax_rates": [],
            }
            for item in sub.items
        ]
        return {
            "id": sub.id,
            "object": "subscription",
            "application": None,
            "application_fee_percent": None,
            "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
            "billing_cycle_anchor": sub.anchor,
            "billing_cycle_anchor_config": None,
            "billing_mode": {"flexible": None, "type": "classic", "updated_at": None},
            "billing_schedules": [],
            "billing_thresholds": None,
            "cancel_at": sub.cancel_at,
            "cancel_at_period_end": sub.cancel_at_period_end,
            "canceled_at": sub.canceled_at,
            "cancellation_details": {
                "comment": None,
                "feedback": sub.feedback if sub.cancel_reason == "cancellation_requested" else None,
                "reason": sub.cancel_reason,
            },
            "collection_method": "charge_automatically",
            "created": sub.created,
            "currency": sub.customer.currency,
            "customer": sub.customer.id,
            "customer_account": None,
            "days_until_due": None,
            "default_payment_method": None,
            "default_source": None,
            "default_tax_rates": [],
            "description": None,
            "discounts": [sub.discount.id] if sub.discount else [],
            "ended_at": sub.ended_at,
            "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
            "items": {"object": "list", "data": items, "has_more": False, "total_count": len(items),
                      "url": f"/v1/subscription_items?subscription={sub.id}"},
            "latest_invoice": sub.latest_invoice,
            "livemode": False,
            "managed_payments": None,
            "metadata": {},
            "next_pending_invoice_item_invoice": None,
            "on_behalf_of": None,
            "pause_collection": None,
            "payment_settings": {"payment_method_options": None, "payment_method_types": None,
                                 "save_default_payment_method": "off"},
            "pending_invoice_item_interval": None,
            "pending_setup_intent": None,
            "pending_update": None,
            "presentment_details": None,
            "schedule": None,
            "start_date": sub.created,
            "status": sub.status,
            "status_details": None,
            "test_clock": None,
            "transfer_data": None,
            "trial_end": sub.trial_end,
            "trial_settings": {"end_behavior": {"missing_payment_method": "cancel"}},
            "trial_start": sub.trial_start,
        }

    def discount(self, discount: Discount) -> dict[str, Any]:
        return {
            "id": discount.id,
            "object": "discount",
            "checkout_session": None,
            "customer": discount.customer,
            "customer_account": None,
            "end": discount.end,
            "invoice": None,
            "invoice_item": None,
            "promotion_code": None,
            "source": {"coupon": discount.coupon.id, "type": "coupon"},
            "start": discount.start,
            "subscription": discount.subscription,
            "subscription_item": None,
        }

    def line(self, invoice: Invoice, line: Line) -> dict[str, Any]:
        price = line.price
        credited = line.credited
        details = {
            "invoice_item": "ii_" + line.id[3:] if line.proration else None,
            "proration": line.proration,
            "proration_details": {
                "credited_items": {"invoice": credited[0], "invoice_line_items": [credited[1]]}
                if credited else None
            },
            "subscription": invoice.sub.id,
            "subscription_item": line.item,
        }
        discount = invoice.discount
        return {
            "id": line.id,
            "object": "line_item",
            "amount": line.amount,
            "currency": price.currency,
            "description": line.description,
            "discount_amounts": [{"amount": line.discount, "discount": discount.id}] if discount else [],
            "discountable": not line.proration,
            "discounts": [discount.id] if discount and line.discount else [],
            "invoice": invoice.id,
            "livemode": False,
            "metadata": {},
            "parent": {"invoice_item_details": None, "subscription_item_details": details,
                       "type": "subscription_item_details"},
            "period": {"end": line.end, "start": line.start},
            "pretax_credit_amounts": [],
            "pricing": {"price_details": {"price": price.id, "product": price.product},
                        "type": "price_details", "unit_amount_decimal": str(price.unit_amount)},
            "quantity": line.quantity,
            "quantity_decimal": str(line.quantity),
            "subscription": invoice.sub.id,
            "subtotal": line.amount,
            "taxes": [_tax(invoice.tax_rate[0], line.tax, line.amount - line.discount)]
            if invoice.tax_rate else [],
        }

    def invoice(self, inv: Invoice) -> dict[str, Any]:
        cus, discount = inv.customer, inv.discount
        lines = [self.line(inv, line) for line in inv.lines]
        finalized = inv.status != "draft"
        return {
            "id": inv.id,
            "object": "invoice",
            "account_country": "US",
            "account_name": self.world.account_name,
            "account_tax_ids": None,
            "amount_due": inv.amount_due,
            "amount_overpaid": 0,
            "amount_paid": inv.amount_paid,
            "amount_paid_off_stripe": 0,
            "amount_remaining": inv.amount_due - inv.amount_paid if inv.status != "void" else 0,
            "amount_shipping": 0,
            "application": None,
            "attempt_count": inv.attempt_count,
            "attempted": inv.attempt_count > 0 or inv.status == "paid",
            "auto_advance": inv.status == "draft"
            or (inv.status == "open" and inv.next_payment_attempt is not None),
            "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None, "provider": None,
                              "status": None},
            "automatically_finalizes_at": inv.created + 3600 if inv.status == "draft" else None,
            "billing_reason": inv.billing_reason,
            "collection_method": "charge_automatically",
            "created": inv.created,
            "currency": cus.currency,
            "custom_fields": None,
            "customer": cus.id,
            "customer_account": None,
            "customer_address": _address(cus.country),
            "customer_email": inv.email,
            "customer_name": cus.name,
            "customer_phone": None,
            "customer_shipping": None,
            "customer_tax_exempt": cus.tax_exempt,
            "customer_tax_ids": [],
            "default_payment_method": None,
            "default_source": None,
            "default_tax_rates": [],
            "description": None,
            "discounts": [discount.id] if discount else [],
            "due_date": None,
            "effective_at": inv.finalized_at,
            "ending_balance": inv.ending_balance if finalized else None,
            "footer": None,
            "from_invoice": None,
            "hosted_invoice_url": None,
            "invoice_pdf": None,
            "issuer": {"type": "self"},
            "last_finalization_error": None,
            "latest_revision": None,
            "lines": {"object": "list", "data": lines, "has_more": False, "total_count": len(lines),
                      "url": f"/v1/invoices/{inv.id}/lines"},
            "livemode": False,
            "metadata": {},
            "next_payment_attempt": inv.next_payment_attempt,
            "number": inv.number,
            "on_behalf_of": None,
            "parent": {"quote_details": None, "type": "subscription_details",
                       "subscription_details": {"metadata": {}, "subscription": inv.sub.id,
                                                "subscription_proration_date": inv.proration_date}},
            "payment_settings": {"default_mandate": None, "payment_method_options": None,
                                 "payment_method_types": None},
            "period_end": inv.period_end,
            "period_start": inv.period_start,
            "post_payment_credit_notes_amount": 0,
            "pre_payment_credit_notes_amount": 0,
            "receipt_number": None,
            "rendering": {"amount_tax_display": None, "pdf": {"page_size": "auto"}, "template": None,
                          "template_version": None},
            "shipping_cost": None,
            "shipping_details": None,
            "starting_balance": inv.starting_balance,
            "statement_descriptor": None,
            "status": inv.status,
            "status_transitions": {"finalized_at": inv.finalized_at,
                                   "marked_uncollectible_at": inv.uncollectible_at,
                                   "paid_at": inv.paid_at, "voided_at": inv.voided_at},
            "subtotal": inv.subtotal,
            "subtotal_excluding_tax": inv.subtotal,
            "test_clock": None,
            "total": inv.total,
            "total_discount_amounts": [{"amount": inv.discount_total, "discount": discount.id}]
            if discount else [],
            "total_excluding_tax": inv.subtotal - inv.discount_total,
            "total_pretax_credit_amounts": [],
            "total_taxes": [_tax(inv.tax_rate[0], inv.tax, inv.subtotal - inv.discount_total)]
            if inv.tax_rate else [],
            "webhooks_delivered_at": inv.created,
        }

    def event(self, customer_id: str, event: WalkEvent) -> dict[str, Any]:
        """A Stripe event; data.object is stored in the current shape whatever `api_version` says."""
        event_id = f"evt_{customer_id[4:]}{base62(event.number, 4)}"
        data: dict[str, Any] = {"object": event.object}
        if event.previous_attributes is not None:
            data["previous_attributes"] = event.previous_attributes
        return {
            "id": event_id,
            "object": "event",
            "api_version": self.world.api_version_at(event.created),
            "context": None,
            "created": event.created,
            "data": data,
            "livemode": False,
            "pending_webhooks": 0,
            "request": {"id": "req_" + event_id[4:18], "idempotency_key": event_id[4:]} if event.request
            else {"id": None, "idempotency_key": None},
            "type": event.type,
        }


def catalog_event(world: World, kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """The `<kind>.created` event of a catalog object (product, price or coupon)."""
    event_id = "evt_" + stable_id(world.seed, world.workspace, "evt", body["id"], length=24)
    return {
        "id": event_id, "object": "event",
        "api_version": world.api_version_at(body["created"]),
        "context": None, "created": body["created"], "data": {"object": body}, "livemode": False,
        "pending_webhooks": 0, "request": {"id": "req_" + event_id[4:18], "idempotency_key": event_id[4:]},
        "type": f"{kind}.created",
    }


def _address(country: str) -> dict[str, Any]:
    city, postal, state = _CITIES[country]
    return {"city": city, "country": country, "line1": "1 Market Street", "line2": None,
            "postal_code": postal, "state": state}


def _tax(rate_id: str, amount: int, taxable: int) -> dict[str, Any]:
    return {"amount": amount, "tax_behavior": "exclusive", "tax_rate_details": {"tax_rate": rate_id},
            "taxability_reason": "standard_rated", "taxable_amount": taxable, "type": "tax_rate_details"}

