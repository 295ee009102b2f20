"""The SaaS sandbox's catalog: products, prices, coupons and tax rates, and their Stripe JSON.

Amounts are integer minor units of each currency (JPY is zero-decimal, so its amounts are yen).
The catalog is fixed for a business: it is created once, a week before the simulation starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

from pipelines.sandbox.simulation.simulator import stable_id

# Monthly list price per plan and currency. Quarterly is ~5% off (×2.85), annual two months free (×10).
PLANS: dict[str, dict[str, Any]] = {
    "starter": {"name": "Starter", "per_seat": False, "month": {"usd": 2900, "eur": 2700, "jpy": 4000}},
    "team": {"name": "Team", "per_seat": True, "month": {"usd": 1500, "eur": 1400, "jpy": 2000}},
    "business": {"name": "Business", "per_seat": False, "month": {"usd": 19900, "eur": 18900, "jpy": 28000}},
}
PLAN_ORDER = ("starter", "team", "business")  # cheapest first: moving right is an upgrade
WEEKLY_USD = 900  # the one weekly price: Starter, billed weekly, USD only
USAGE_PER_UNIT = {"usd": 50, "eur": 45, "jpy": 75}  # metered "API calls", per 1,000 calls

# cadence key -> (Stripe interval, interval_count)
CADENCES = {"month": ("month", 1), "quarter": ("month", 3), "year": ("year", 1), "week": ("week", 1)}
CADENCE_NAMES = {"month": "monthly", "quarter": "quarterly", "year": "annual", "week": "weekly"}


def months_in(interval: str, count: int) -> Fraction:
    """Length of a billing interval in months, as DESIGN.md's MRR normalization defines it (exact)."""
    per = {"month": Fraction(1), "year": Fraction(12), "week": Fraction(12, 52), "day": Fraction(12, 365)}
    return per[interval] * count


def per_month(amount: int, months: Fraction) -> Decimal:
    """`amount` per `months`, normalized to one month (one rounding, at Decimal's 28 digits)."""
    return Decimal(amount * months.denominator) / months.numerator


@dataclass(frozen=True)
class Price:
    """A recurring price; `body` is its Stripe JSON (shared, never mutated)."""

    id: str
    plan: str  # PLANS key, or "usage" for the metered price
    product: str
    product_name: str
    currency: str
    cadence: str
    interval: str
    interval_count: int
    unit_amount: int
    metered: bool
    body: dict[str, Any]
    plan_body: dict[str, Any]  # the legacy `plan` object that subscription items still embed
    months: Fraction  # the billing interval in months (MRR normalization)


@dataclass(frozen=True)
class Coupon:
    """A coupon; amount_off coupons carry the currency they apply to."""

    id: str
    duration: str  # forever | once | repeating
    percent_off: float | None
    amount_off: int | None
    currency: str | None
    duration_in_months: int | None
    name: str


def _coupons(currencies: list[str]) -> list[Coupon]:
    coupons = [
        Coupon("LOYAL20", "forever", 20.0, None, None, None, "20% off forever"),
        Coupon("WELCOME50", "once", 50.0, None, None, None, "50% off the first invoice"),
        Coupon("QUARTER25", "repeating", 25.0, None, None, 3, "25% off for 3 months"),
    ]
    flat = {"usd": (500, 2000, 1000), "eur": (500, 2000, 1000), "jpy": (700, 3000, 1500)}
    for cur in currencies:
        forever, once, repeating = flat[cur]
        code = cur.upper()
        coupons += [
            Coupon(f"FLAT{forever}{code}", "forever", None, forever, cur, None,
                   f"{forever} {code} off forever"),
            Coupon(f"FIRST{once}{code}", "once", None, once, cur, None,
                   f"{once} {code} off the first invoice"),
            Coupon(f"SAVE{repeating}{code}6M", "repeating", None, repeating, cur, 6,
                   f"{repeating} {code} off for 6 months"),
        ]
    return coupons


# Tax rates by customer country: (percentage, display name). Missing countries are untaxed.
TAX_RATES = {"DE": (19, "MwSt."), "FR": (20, "TVA"), "NL": (21, "BTW"), "ES": (21, "IVA"), "IT": (22, "IVA"),
             "JP": (10, "JCT")}


class Catalog:
    """Every product, price, coupon and tax-rate id of one simulated SaaS business."""

    def __init__(self, seed: int, workspace: str, currencies: list[str], created: int):
        self.created = created
        self.products: dict[str, dict[str, Any]] = {}
        self.prices: dict[tuple[str, str, str], Price] = {}  # (plan, cadence, currency)
        self.coupons = {coupon.id: coupon for coupon in _coupons(currencies)}
        self.tax_rates = {country: "txr_" + stable_id(seed, workspace, "txr", country, length=24)
                          for country in TAX_RATES}
        for key, plan in PLANS.items():
            product = self._product(seed, workspace, key, plan["name"], "Metricly " + plan["name"] + " plan",
                                    "seat" if plan["per_seat"] else None)
            for cur in currencies:
                monthly = plan["month"][cur]
                for cadence, amount in (("month", monthly), ("quarter", int(round(monthly * 2.85, -2))),
                                        ("year", monthly * 10)):
                    self._price(seed, workspace, key, product, cadence, cur, amount, metered=False)
            if key == "starter" and "usd" in currencies:
                self._price(seed, workspace, key, product, "week", "usd", WEEKLY_USD, metered=False)
        usage = self._product(seed, workspace, "usage", "API calls", "Metered API usage, per 1,000 calls",
                              "1,000 calls")
        for cur in currencies:
            self._price(seed, workspace, "usage", usage, "month", cur, USAGE_PER_UNIT[cur], metered=True)
        for product in self.products.values():
            product["default_price"] = next(
                p.id for p in self.prices.values() if p.product == product["id"] and p.cadence == "month")

    def price(self, plan: str, cadence: str, currency: str) -> Price:
        return self.prices[(plan, cadence, currency)]

    def _product(self, seed: int, workspace: str, key: str, name: str, description: str,
                 unit_label: str | None) -> dict[str, Any]:
        body = {
            "id": "prod_" + stable_id(seed, workspace, "prod", key),
            "object": "product",
            "active": True,
            "created": self.created,
            "default_price": None,
            "description": description,
            "images": [],
            "livemode": False,
            "marketing_features": [],
            "metadata": {"plan": key},
            "name": name,
            "package_dimensions": None,
            "shippable": None,
            "statement_descriptor": None,
            "tax_code": "txcd_10103001",  # Stripe's "Software as a service (SaaS), business use"
            "type": "service",
            "unit_label": unit_label,
            "updated": self.created,
            "url": None,
        }
        self.products[key] = body
        return body

    def _price(self, seed: int, workspace: str, plan: str, product: dict[str, Any], cadence: str, cur: str,
               amount: int, *, metered: bool) -> None:
        interval, count = CADENCES[cadence]
        usage_type = "metered" if metered else "licensed"
        price_id = "price_" + stable_id(seed, workspace, "price", plan, cadence, cur, length=24)
        nickname = f"{product['name']} {CADENCE_NAMES[cadence]}"
        body = {
            "id": price_id,
            "object": "price",
            "active": True,
            "billing_scheme": "per_unit",
            "created": self.created,
            "currency": cur,
            "custom_unit_amount": None,
            "livemode": False,
            "lookup_key": f"{plan}_{cadence}_{cur}",
            "metadata": {},
            "nickname": nickname,
            "product": product["id"],
            "recurring": {"interval": interval, "interval_count": count,
                          "meter": ("mtr_" + stable_id(seed, workspace, "meter")) if metered else None,
                          "trial_period_days": None, "usage_type": usage_type},
            "tax_behavior": "exclusive",
            "tiers_mode": None,
            "transform_quantity": None,
            "type": "recurring",
            "unit_amount": amount,
            "unit_amount_decimal": str(amount),
        }
        plan_body = {
            "id": price_id,
            "object": "plan",
            "active": True,
            "amount": amount,
            "amount_decimal": str(amount),
            "billing_scheme": "per_unit",
            "created": self.created,
            "currency": cur,
            "interval": interval,
            "interval_count": count,
            "livemode": False,
            "metadata": {},
            "meter": body["recurring"]["meter"],
            "nickname": body["nickname"],
            "product": product["id"],
            "tiers_mode": None,
            "transform_usage": None,
            "trial_period_days": None,
            "usage_type": usage_type,
        }
        self.prices[(plan, cadence, cur)] = Price(
            price_id, plan, product["id"], product["name"], cur, cadence, interval, count, amount, metered,
            body, plan_body, months_in(interval, count))

    def coupon_body(self, coupon: Coupon, times_redeemed: int) -> dict[str, Any]:
        return {
            "id": coupon.id,
            "object": "coupon",
            "amount_off": coupon.amount_off,
            "created": self.created,
            "currency": coupon.currency,
            "duration": coupon.duration,
            "duration_in_months": coupon.duration_in_months,
            "livemode": False,
            "max_redemptions": None,
            "metadata": {},
            "name": coupon.name,
            "percent_off": coupon.percent_off,
            "redeem_by": None,
            "times_redeemed": times_redeemed,
            "valid": True,
        }
