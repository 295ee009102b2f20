"""The SaaS world a customer lives in and the Stripe objects its walk creates (saas/lifecycle.py).

Amounts are integer minor units of the object's currency; times are Unix seconds.
"""

from __future__ import annotations

from calendar import monthrange
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from pipelines.sandbox.core.accounts import STRIPE_API_VERSION, STRIPE_PREVIOUS_API_VERSION
from pipelines.sandbox.simulation.saas.catalog import Catalog, Coupon, Price, per_month

DAY = 86400
HOUR = 3600


@dataclass(frozen=True)
class Rates:
    """Behaviour rates of the simulated SaaS (per customer, per subscription or per month)."""

    trial_share: float = 0.4  # signups that start with a 14-day trial
    trial_days: int = 14
    trial_convert: float = 0.65  # trials that become paying
    coupon_share: float = 0.25  # paid signups that redeem a coupon
    metered_share: float = 0.25  # monthly subscriptions that add the metered API-calls price
    change_per_month: float = 0.04  # monthly hazard of a plan or seat change
    cancel_per_month: float = 0.028  # monthly hazard of a cancellation request
    cancel_now_share: float = 0.3  # cancellations that take effect immediately (vs at period end)
    fail_per_renewal: float = 0.05  # renewal charges that fail at first
    fail_recover: float = 0.65  # ... of which a retry succeeds
    fail_unpaid: float = 0.15  # ... of which the subscription becomes unpaid (the rest: canceled)
    reactivate: float = 0.3  # churned customers who come back with a new subscription
    delete_after_churn: float = 0.12  # churned customers (not coming back) who are later deleted
    email_change: float = 0.08  # customers who change their billing email once


@dataclass(frozen=True)
class Window:
    """An injected churn spike: extra immediate cancellations between two Unix times."""

    start: int
    end: int
    plan: str | None = None  # the plan whose subscriptions cancel
    share: float = 0.0  # the share of that plan's active subscriptions that cancel


@dataclass
class World:
    """Everything a customer walk needs besides its own key."""

    seed: int
    workspace: str
    account_name: str
    catalog: Catalog
    currencies: list[str]
    currency_weights: list[float]
    upgraded_at: int  # events created before this use the account's previous API version
    churn_spike: Window
    rates: Rates = field(default_factory=Rates)

    def api_version_at(self, when: int) -> str:
        """The API version an event created at `when` is rendered in."""
        return STRIPE_PREVIOUS_API_VERSION if when < self.upgraded_at else STRIPE_API_VERSION


def add_months(ts: int, months: int) -> int:
    """`ts` moved by whole calendar months in UTC, clamping the day like Stripe's billing anchors."""
    dt = datetime.fromtimestamp(ts, UTC)
    years, month0 = divmod(dt.month - 1 + months, 12)
    year = dt.year + years
    day = min(dt.day, monthrange(year, month0 + 1)[1])
    return int(dt.replace(year=year, month=month0 + 1, day=day).timestamp())


def period_bound(anchor: int, k: int, price: Price) -> int:
    """Start of billing period `k` of a subscription anchored at `anchor`."""
    if price.interval == "week":
        return anchor + 7 * DAY * k * price.interval_count
    months = price.interval_count * (12 if price.interval == "year" else 1)
    return add_months(anchor, k * months)


@dataclass
class Customer:
    id: str
    created: int
    currency: str
    country: str
    name: str
    email: str
    tax_rate: tuple[str, int] | None  # (tax rate id, percent)
    tax_exempt: str
    invoice_prefix: str
    balance: int = 0  # negative: credit owed to the customer (from downgrade prorations)
    delinquent: bool = False
    next_invoice_sequence: int = 1
    deleted: bool = False
    updated: int = 0


@dataclass
class Item:
    id: str
    price: Price
    quantity: int | None  # None for metered items
    created: int


@dataclass
class Discount:
    id: str
    coupon: Coupon
    customer: str
    subscription: str
    start: int
    end: int | None  # only repeating coupons end at a known time
    updated: int = 0


@dataclass
class Line:
    id: str
    amount: int
    quantity: int
    price: Price
    start: int
    end: int
    proration: bool
    item: str
    description: str
    credited: tuple[str, str] | None = None  # (invoice, line) a proration credit refers to
    discount: int = 0
    tax: int = 0


@dataclass
class Invoice:
    id: str
    customer: Customer
    sub: Sub
    created: int
    billing_reason: str
    period_start: int
    period_end: int
    lines: list[Line]
    discount: Discount | None
    tax_rate: tuple[str, int] | None
    proration_date: int | None = None
    email: str = ""  # the customer's email, copied until finalization like Stripe does
    status: str = "draft"
    number: str | None = None
    finalized_at: int | None = None
    paid_at: int | None = None
    voided_at: int | None = None
    uncollectible_at: int | None = None
    attempt_count: int = 0
    next_payment_attempt: int | None = None
    starting_balance: int = 0
    ending_balance: int | None = None
    subtotal: int = 0
    discount_total: int = 0
    tax: int = 0
    total: int = 0
    amount_due: int = 0
    amount_paid: int = 0
    failure: tuple[str, int] | None = None  # ("recover", attempt) | ("unpaid", 0) | ("cancel", 0)
    updated: int = 0

    def compute(self) -> None:
        """Derive the amounts from the lines (discounts and exclusive tax per line)."""
        self.subtotal = sum(line.amount for line in self.lines)
        self.discount_total = sum(line.discount for line in self.lines)
        self.tax = sum(line.tax for line in self.lines)
        self.total = self.subtotal - self.discount_total + self.tax


@dataclass
class Sub:
    id: str
    customer: Customer
    created: int
    items: list[Item]
    anchor: int
    status: str
    period_start: int
    period_end: int
    cycle: int = 0
    trial_start: int | None = None
    trial_end: int | None = None
    cancel_at_period_end: bool = False
    cancel_at: int | None = None
    canceled_at: int | None = None
    ended_at: int | None = None
    cancel_reason: str | None = None
    feedback: str | None = None
    discount: Discount | None = None
    latest_invoice: str | None = None
    pending: list[Line] = field(default_factory=list)  # downgrade prorations for the next renewal
    invoice_count: int = 0
    updated: int = 0

    @property
    def price(self) -> Price:
        """The licensed (plan) price; its cadence is the subscription's billing interval."""
        return self.items[0].price

    def mrr(self) -> Decimal:
        """Monthly recurring revenue in minor units of the subscription's currency (DESIGN.md):
        active and past_due only, and none once a cancellation at the period end is requested."""
        if self.status not in ("active", "past_due") or self.cancel_at_period_end:
            return Decimal(0)
        total = sum((per_month(i.price.unit_amount * i.quantity, i.price.months)
                     for i in self.items if not i.price.metered), Decimal(0))
        coupon = self.discount.coupon if self.discount else None
        if coupon is not None and coupon.duration == "forever":
            if coupon.percent_off is not None:
                total = total * (100 - Decimal(str(coupon.percent_off))) / 100
            else:
                total -= per_month(coupon.amount_off, self.price.months)
        return max(total, Decimal(0))


class WalkEvent(NamedTuple):
    """A change rendered as the data of a Stripe event."""

    created: int
    number: int  # the customer's event counter: the event id's suffix
    type: str
    object: dict[str, Any]
    previous_attributes: dict[str, Any] | None  # only for *.updated events
    request: bool  # made by a user (an API request) rather than by Stripe's automation


def base62(number: int, width: int) -> str:
    """`number` in `width` base-62 digits: the counter part of an id."""
    digits = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        digits.append(_ALPHABET[digit])
    if number:
        raise ValueError(f"{number} does not fit in {width} base-62 digits")
    return "".join(reversed(digits))


_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def round_half_up(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half away from zero (Stripe's rounding of tax and discounts)."""
    quotient, remainder = divmod(abs(numerator), denominator)
    if 2 * remainder >= denominator:
        quotient += 1
    return quotient if numerator >= 0 else -quotient
