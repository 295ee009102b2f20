"""A matrix of varied tenants for the sandbox, with their ground truth (docs/sandbox.md, "Tenant matrix").

The demo is one tenant shape among many. This module draws tenants that differ from it where
pipelines break: the currency (zero- and three-decimal ones included), the reporting currency (the
same or another one), the timezone (half-hour and 45-minute offsets, the southern hemisphere's
summer time), the vertical, and a shape: `plain`, `empty` (connected, nothing in it yet),
`huge_order` (one order or subscription of about a trillion), `many_currencies` (one Stripe account
billing customers in several currencies).

A tenant is plain data (`Tenant`, its `Order`s and `Subscription`s), drawn through a `Draw`: a
seeded `RandomDraw` for `abos sandbox serve --matrix N --seed S`, or Hypothesis strategies in the
tests (tests/integration/test_tenant_matrix.py), so both explore the same space. `fixture` renders
tenants as a fixture document (pipelines/sandbox/fixtures.py) that carries the tenants themselves,
and `truth` computes every metric from them, independently of the pipeline: the ecommerce days from
the served orders (`shop_truth`), the SaaS days from the subscriptions' plans, both converted into
the reporting currency at the day's rate from the rates the document lists.
"""

from __future__ import annotations

import calendar
import time as clock_time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Any, Protocol, TypeVar

from pipelines.currencies import stripe_digits, to_major
from pipelines.sandbox import ecb
from pipelines.sandbox.core.accounts import STRIPE_API_VERSION
from pipelines.sandbox.simulation.saas.catalog import CADENCES, months_in
from pipelines.sandbox.simulation.shop.orders import (
    Discount,
    Ids,
    LineDraft,
    Money,
    OrderDraft,
    apply_change,
    build_order,
)
from pipelines.sandbox.simulation.shop.truth import shop_truth
from pipelines.sandbox.simulation.shop.world import Region, ShippingRate
from pipelines.sandbox.simulation.tenants import Tenant as GeneratedTenant
from pipelines.sandbox.simulation.simulator import iso, local_date, local_midnight, parse_iso, rng
from pipelines.sandbox.core.store import SandboxStore

T = TypeVar("T")

ZERO_DECIMAL = ("JPY", "KRW", "CLP")
THREE_DECIMAL = ("KWD", "BHD", "JOD", "OMR", "TND")
TWO_DECIMAL = ("USD", "EUR", "BRL", "GBP", "INR", "AUD", "ZAR")
CURRENCIES = TWO_DECIMAL + ZERO_DECIMAL + THREE_DECIMAL
# Units per euro; the ECB quotes the ones in ecb.LEVELS, the operator's rates file gives the rest.
RATE_LEVELS = {"USD": "1.0812", "BRL": "5.8934", "GBP": "0.8531", "INR": "89.214", "AUD": "1.6127",
               "ZAR": "19.534", "JPY": "162.07", "KRW": "1475.31", "CLP": "1021.5", "KWD": "0.3321",
               "BHD": "0.4071", "JOD": "0.7662", "OMR": "0.4157", "TND": "3.3701"}
RATE_MOVE = Decimal("1.0371")  # every rate moves by this much on the matrix's rate day
TIMEZONES = (
    "UTC", "America/New_York", "Pacific/Honolulu",
    "Asia/Kolkata", "Asia/Kathmandu", "Asia/Tehran", "America/St_Johns",  # +5:30, +5:45, +3:30, −3:30
    "Australia/Adelaide", "Pacific/Chatham",  # half-hour and 45-minute offsets with southern summer time
    "Australia/Sydney", "America/Sao_Paulo", "Pacific/Auckland", "Africa/Johannesburg",
)
SHAPES = ("plain", "empty", "huge_order", "many_currencies")
VERTICALS = ("ecommerce", "saas")
GROUPS = [(shape, vertical) for shape in SHAPES for vertical in VERTICALS
          if (shape, vertical) != ("many_currencies", "ecommerce")]  # one of each, in tenant_matrix too
HISTORY_DAYS = 100  # three month starts (revenue retention), 30-day windows (churn rates), a DST change
HUGE_UNIT = 99_999_999  # Stripe's largest unit_amount; Shopify takes it as a price too
HUGE_QUANTITY = 10_000
DAY = 86400


class Draw(Protocol):
    """Where a tenant's choices come from: a seeded random generator, or Hypothesis."""

    def integer(self, low: int, high: int) -> int:
        """An integer in [low, high]."""

    def choice(self, options: Sequence[T]) -> T:
        """One of `options`."""


class RandomDraw:
    """Draws from `simulator.rng(seed, *key)`: the same seed and key give the same tenant."""

    def __init__(self, seed: int, *key: object):
        self.random = rng(seed, "matrix", *key)

    def integer(self, low: int, high: int) -> int:
        return self.random.randint(low, high)

    def choice(self, options: Sequence[T]) -> T:
        return options[self.random.randrange(len(options))]


@dataclass(frozen=True)
class Order:
    """One Shopify order: placed `day` days before the as-of day at local minute `minute`."""

    day: int
    minute: int
    lines: tuple[tuple[int, int], ...]  # (unit price in minor units, quantity)
    discount_percent: int  # over the whole order
    person: int  # who ordered (an index); guests are matched by email
    guest: bool
    shouted: bool  # the email in upper case: people are matched case-insensitively
    refund_after: int | None  # days after the order one unit of its first line is refunded
    cancelled: bool
    test: bool


@dataclass(frozen=True)
class Subscription:
    """One Stripe subscription of customer `customer`, started `day` days before the as-of day."""

    customer: int
    day: int
    minute: int
    trial_days: int
    cadence: str  # saas_catalog.CADENCES: month, quarter, year, week
    unit_amount: int  # minor units of the customer's currency
    quantity: int
    change_after: int | None  # after this many paid periods the price and quantity change, at a renewal
    new_unit_amount: int
    new_quantity: int
    cancel_after: int | None  # days after the start the cancellation is requested
    at_period_end: bool  # the cancellation takes effect at the period's end (else at once)
    percent_off: int = 0  # a forever coupon from the start: percent off...
    amount_off: int = 0  # ... or an amount off each invoice, in minor units of the customer's currency


@dataclass(frozen=True)
class Tenant(GeneratedTenant):
    """A workspace of the matrix: a generated tenant (tenants.py) and everything its store or account holds."""

    orders: tuple[Order, ...] = ()
    customer_currencies: tuple[str, ...] = ()  # SaaS: each customer bills in one currency
    subscriptions: tuple[Subscription, ...] = ()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Tenant":
        return cls(**{**data, "orders": tuple(Order(**{**o, "lines": tuple(map(tuple, o["lines"]))})
                                              for o in data["orders"]),
                      "customer_currencies": tuple(data["customer_currencies"]),
                      "subscriptions": tuple(Subscription(**s) for s in data["subscriptions"])})


# -- drawing tenants --------------------------------------------------------------------------------


def draw_tenant(draw: Draw, workspace: str, shape: str | None = None, vertical: str | None = None) -> Tenant:
    """One tenant; `shape` and `vertical` are drawn unless given."""
    shape = shape or draw.choice(SHAPES)
    vertical = "saas" if shape == "many_currencies" else vertical or draw.choice(VERTICALS)
    currency = draw.choice(CURRENCIES)
    reporting = draw.choice((currency, *CURRENCIES))
    timezone = draw.choice(TIMEZONES)
    tenant = Tenant(workspace, shape, vertical, currency, reporting, timezone)
    if shape == "empty":
        return tenant
    if vertical == "ecommerce":
        orders = [_draw_order(draw, currency, draw.integer(1, 4)) for _ in range(draw.integer(1, 10))]
        if shape == "huge_order":
            orders.append(Order(day=draw.integer(0, HISTORY_DAYS - 1), minute=draw.integer(0, 1439),
                                lines=((HUGE_UNIT, HUGE_QUANTITY),), discount_percent=0, person=0, guest=False,
                                shouted=False, refund_after=None, cancelled=False, test=False))
        return Tenant(**{**asdict(tenant), "orders": tuple(orders)})
    count = 3 if shape == "many_currencies" else 1
    billing = [currency] if count == 1 else [draw.choice(CURRENCIES) for _ in range(count)]
    customers = tuple(billing[i % len(billing)] if i < len(billing) else draw.choice(billing)
                      for i in range(draw.integer(len(billing), 5)))
    subscriptions = [_draw_subscription(draw, index, customers[index]) for index in range(len(customers))]
    for _ in range(draw.integer(0, 2)):  # a second subscription: a reactivation or an add-on
        index = draw.integer(0, len(customers) - 1)
        subscriptions.append(_draw_subscription(draw, index, customers[index]))
    if shape == "huge_order":
        subscriptions.append(Subscription(0, draw.integer(1, HISTORY_DAYS - 1), draw.integer(0, 1439), 0, "month",
                                          HUGE_UNIT, HUGE_QUANTITY, None, 0, 0, None, False))
    return Tenant(workspace, shape, vertical, currency, reporting, timezone,
                  customer_currencies=customers, subscriptions=tuple(subscriptions))


def _price(draw: Draw, currency: str) -> int:
    """A price in minor units: 1 to 500 major units, with or without minor ones."""
    scale = 10 ** stripe_digits(currency)
    return draw.integer(1, 500) * scale + draw.choice((0, 0, draw.integer(0, scale - 1)))


def _draw_order(draw: Draw, currency: str, people: int) -> Order:
    day = draw.integer(0, HISTORY_DAYS - 1)
    refund_after = draw.choice((None, None, draw.integer(0, 20)))
    return Order(
        day=day, minute=draw.choice((draw.integer(0, 1439), 0, 1439, 30)),  # midnight edges on purpose
        lines=tuple((_price(draw, currency), draw.integer(1, 5)) for _ in range(draw.integer(1, 3))),
        discount_percent=draw.choice((0, 0, 10, 15, 100)),
        person=draw.integer(0, people - 1), guest=draw.integer(0, 3) == 0, shouted=draw.integer(0, 3) == 0,
        refund_after=refund_after, cancelled=draw.integer(0, 7) == 0, test=draw.integer(0, 9) == 0,
    )


def _draw_subscription(draw: Draw, customer: int, currency: str) -> Subscription:
    change = draw.choice((None, None, draw.integer(1, 2)))
    kind = draw.choice(("none", "none", "percent", "amount"))
    coupon = draw.choice((10, 25, 100)) if kind == "percent" else _price(draw, currency) // draw.choice((1, 4, 10))
    cancel = draw.choice((None, None, draw.integer(0, HISTORY_DAYS)))
    return Subscription(
        customer=customer, day=draw.integer(1, HISTORY_DAYS - 1), minute=draw.choice((draw.integer(0, 1439), 0, 1439)),
        trial_days=draw.choice((0, 0, 7, 14)), cadence=draw.choice(tuple(CADENCES)),
        unit_amount=_price(draw, currency), quantity=draw.integer(1, 4),
        change_after=change, new_unit_amount=_price(draw, currency), new_quantity=draw.integer(1, 4),
        cancel_after=cancel, at_period_end=draw.integer(0, 1) == 1,
        percent_off=coupon if kind == "percent" else 0, amount_off=coupon if kind == "amount" else 0,
    )


def tenant_matrix(count: int, seed: int) -> list[Tenant]:
    """`count` tenants: first one of each shape and vertical (empty, a huge order, many currencies...),
    then drawn ones, all from `seed`."""
    tenants = []
    for index in range(count):
        shape, vertical = GROUPS[index] if index < len(GROUPS) else (None, None)
        tenants.append(draw_tenant(RandomDraw(seed, index), f"matrix-{index:02d}", shape, vertical))
    return tenants


# -- the fixture document ---------------------------------------------------------------------------


def rate_day(as_of: date) -> date:
    """The TARGET business day, about a month before `as_of`, on which every matrix rate moves."""
    day = as_of - timedelta(days=30)
    while not ecb.target_day(day):
        day -= timedelta(days=1)
    return day


def rates(as_of: date) -> dict[str, dict[str, str]]:
    """The matrix's rates by day: units per euro from ecb.FIXTURE_FIRST_DAY, moved on `rate_day`."""
    moved = {code: str((Decimal(level) * RATE_MOVE).quantize(Decimal(level))) for code, level in RATE_LEVELS.items()}
    return {ecb.FIXTURE_FIRST_DAY.isoformat(): dict(RATE_LEVELS), rate_day(as_of).isoformat(): moved}


def operator_rates_csv(as_of: date) -> str:
    """The operator's rates file (ABOS_FX_RATES_FILE) for the currencies the ECB does not quote."""
    lines = ["date,currency,units_per_eur"]
    for day, by_code in rates(as_of).items():
        lines += [f"{day},{code},{rate}" for code, rate in by_code.items() if code not in ecb.LEVELS]
    return "\n".join(lines) + "\n"


def fixture(tenants: list[Tenant], as_of: date) -> dict[str, Any]:
    """The fixture document serving `tenants` as of the end of `as_of` (UTC); it carries the
    tenants, so `truth` can recompute every metric from the store alone."""
    clock = _end_of(as_of)
    workspaces = {}
    for offset, tenant in enumerate(tenants):
        spec: dict[str, Any] = {"name": f"Matrix {tenant.workspace}", "currency": tenant.currency,
                                "reporting_currency": tenant.reporting_currency, "timezone": tenant.timezone}
        if tenant.vertical == "ecommerce":
            spec["shopify"] = _shop(tenant, offset, as_of, clock)
        else:
            spec["stripe"] = _Account(tenant, as_of, clock).build()
        workspaces[tenant.workspace] = spec
    ecb_rates = {day: {c: r for c, r in by_code.items() if c in ecb.LEVELS} for day, by_code in rates(as_of).items()}
    return {"clock": iso(clock), "workspaces": workspaces, "ecb": ecb_rates,
            "matrix": {"as_of": as_of.isoformat(), "tenants": [asdict(t) for t in tenants],
                       "operator_rates": operator_rates_csv(as_of)}}


def _end_of(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=UTC).timestamp())


def _placed(tenant: Tenant, as_of: date, day: int, minute: int) -> int:
    return local_midnight(as_of - timedelta(days=day), tenant.timezone) + minute * 60


def _shop(tenant: Tenant, offset: int, as_of: date, clock: int) -> dict[str, Any]:
    ids, money = Ids(offset), Money(tenant.currency)
    region = Region(province=None, city="Matrix", zip="1000", tax_title="VAT", tax_rate=0.2)
    shipping = ShippingRate("Standard", "STD", 5 * 10 ** money.digits, None)
    created_at = iso(_placed(tenant, as_of, HISTORY_DAYS + 5, 0))
    lines_seen = max((len(order.lines) for order in tenant.orders), default=0)
    products = [{
        "id": ids.gid("Product", ids.product(i)), "title": f"Product {i}", "handle": f"product-{i}",
        "vendor": "Matrix", "productType": "Goods", "status": "ACTIVE", "createdAt": created_at,
        "updatedAt": created_at, "publishedAt": created_at, "tags": [], "totalInventory": 10,
        "variants": [{"id": ids.gid("ProductVariant", ids.variant(i, 0)), "title": "Default", "sku": f"SKU-{i}",
                      "price": money.v2(1)["amount"], "position": 1, "createdAt": created_at,
                      "updatedAt": created_at}],
    } for i in range(max(lines_seen, 1))]
    orders, first_order = [], {}
    for seq, order in sorted(enumerate(tenant.orders), key=lambda pair: (-pair[1].day, pair[1].minute, pair[0])):
        placed = _placed(tenant, as_of, order.day, order.minute)
        email = f"person{order.person}@{tenant.workspace}.example"
        customer_gid = None if order.guest else ids.gid("Customer", ids.customer(order.person))
        if customer_gid:
            first_order.setdefault(order.person, placed)
        draft = OrderDraft(
            seq=seq, number=1001 + seq, created=placed, email=email.upper() if order.shouted else email,
            customer_gid=customer_gid, country="US", region=region,
            lines=tuple(LineDraft(products[i]["id"], products[i]["variants"][0]["id"], f"Product {i}", None,
                                  f"SKU-{i}", "Matrix", unit, quantity) for i, (unit, quantity) in enumerate(order.lines)),
            discounts=(Discount("MATRIX", False, percent=float(order.discount_percent)),) if order.discount_percent else (),
            shipping=shipping, tax_shipping=False, test=order.test, source="web", authorized_only=order.cancelled)
        body = build_order(draft, ids, money)
        if order.cancelled:
            apply_change(body, {"type": "cancel", "at": placed + 3600, "reason": "CUSTOMER"}, money)
        elif order.refund_after is not None and placed + order.refund_after * DAY + 7200 <= clock:
            apply_change(body, {"type": "refund", "at": placed + order.refund_after * DAY + 7200,
                                "id": ids.refund(seq, 0), "note": "returned",
                                "lines": [(0, 1, "RETURN", ids.refund_line_item(seq, 0, 0))]}, money)
        orders.append(body)
    customers = [{
        "id": ids.gid("Customer", ids.customer(person)), "firstName": "Person", "lastName": str(person),
        "displayName": f"Person {person}", "state": "ENABLED", "createdAt": iso(at), "updatedAt": iso(at),
        "numberOfOrders": "1", "verifiedEmail": True, "tags": [],
        "defaultEmailAddress": {"emailAddress": f"person{person}@{tenant.workspace}.example",
                                "marketingState": "NOT_SUBSCRIBED"},
    } for person, at in sorted(first_order.items())]
    return {"orders": orders, "products": products, "customers": customers}


# -- Stripe objects ---------------------------------------------------------------------------------


@dataclass
class _Life:
    """What a subscription did up to the clock: its paid periods and how it ended."""

    sub_id: str
    start: int
    trial_end: int | None
    periods: list[tuple[int, int, int, int]] = field(default_factory=list)  # (start, end, unit, quantity)
    canceled_at: int | None = None  # when the cancellation was requested
    ended_at: int | None = None
    cancel_at: int | None = None
    status: str = "active"


def _add_months(ts: int, months: int) -> int:
    moment = datetime.fromtimestamp(ts, UTC)
    month = moment.month - 1 + months
    year, month = moment.year + month // 12, month % 12 + 1
    return int(moment.replace(year=year, month=month,
                              day=min(moment.day, calendar.monthrange(year, month)[1])).timestamp())


def _next_period(ts: int, cadence: str) -> int:
    interval, count = CADENCES[cadence]
    if interval == "week":
        return ts + 7 * DAY * count
    return _add_months(ts, count * (12 if interval == "year" else 1))


def _live(tenant: Tenant, index: int, sub: Subscription, as_of: date, clock: int) -> _Life:
    """Walk one subscription from its start to the clock."""
    start = _placed(tenant, as_of, sub.day, sub.minute)
    trial_end = start + sub.trial_days * DAY if sub.trial_days else None
    life = _Life(f"sub_{tenant.workspace.replace('-', '')}_{index}", start, trial_end)
    requested = start + sub.cancel_after * DAY + 3600 if sub.cancel_after is not None else None
    requested = requested if requested is not None and requested <= clock else None
    paid_from = trial_end or start
    stop = None  # when service ends
    if requested is not None:
        life.canceled_at = requested
        if sub.at_period_end:
            end = trial_end if trial_end and requested < trial_end else paid_from
            while end <= requested:
                end = _next_period(end, sub.cadence)
            life.cancel_at, stop = end, end
        else:
            stop = requested
    begin, number = paid_from, 0
    while begin <= clock and (stop is None or begin < stop):
        end = _next_period(begin, sub.cadence)
        changed = sub.change_after is not None and number >= sub.change_after
        life.periods.append((begin, end, *((sub.new_unit_amount, sub.new_quantity) if changed
                                           else (sub.unit_amount, sub.quantity))))
        begin, number = end, number + 1
    if stop is not None and stop <= clock:
        life.status, life.ended_at = "canceled", stop
    elif trial_end and clock < trial_end:
        life.status = "trialing"
    return life


class _Account:
    """The Stripe objects of one tenant's account, as they stand at the clock."""

    def __init__(self, tenant: Tenant, as_of: date, clock: int):
        self.tenant, self.as_of, self.clock = tenant, as_of, clock
        self.key = tenant.workspace.replace("-", "")
        self.created = _placed(tenant, as_of, HISTORY_DAYS + 5, 0)  # the catalog predates every customer
        self.product = {
            "id": f"prod_{self.key}", "object": "product", "active": True, "created": self.created,
            "default_price": None, "description": None, "images": [], "livemode": False, "marketing_features": [],
            "metadata": {}, "name": "Plan", "tax_code": None, "type": "service", "unit_label": None,
            "updated": self.created, "url": None}
        self.prices: dict[tuple[str, int, str], dict[str, Any]] = {}
        self.objects: dict[str, list[dict[str, Any]]] = {
            "customers": [], "products": [], "prices": [], "coupons": [], "discounts": [], "subscriptions": [],
            "invoices": [], "events": []}

    def price(self, currency: str, amount: int, cadence: str) -> dict[str, Any]:
        """The price of `amount` per `cadence` in `currency`, created the first time it is used."""
        found = self.prices.get((currency, amount, cadence))
        if found is None:
            interval, count = CADENCES[cadence]
            found = self.prices[(currency, amount, cadence)] = {
                "id": f"price_{self.key}_{len(self.prices)}", "object": "price", "active": True,
                "billing_scheme": "per_unit", "created": self.created, "currency": currency.lower(),
                "livemode": False, "lookup_key": None, "metadata": {}, "nickname": None,
                "product": self.product["id"],
                "recurring": {"interval": interval, "interval_count": count, "meter": None,
                              "trial_period_days": None, "usage_type": "licensed"},
                "tax_behavior": "exclusive", "type": "recurring", "unit_amount": amount,
                "unit_amount_decimal": str(amount)}
        return found

    def build(self) -> dict[str, list[dict[str, Any]]]:
        tenant = self.tenant
        starts: dict[int, int] = {}
        for sub in tenant.subscriptions:
            at = _placed(tenant, self.as_of, sub.day, sub.minute)
            starts[sub.customer] = min(at, starts.get(sub.customer, at))
        for number, at in sorted(starts.items()):
            self.objects["customers"].append({
                "id": f"cus_{self.key}_{number}", "object": "customer", "balance": 0, "created": at - 60,
                "currency": tenant.customer_currencies[number].lower(), "delinquent": False,
                "email": f"customer{number}@{tenant.workspace}.example", "invoice_prefix": f"M{number:04d}",
                "livemode": False, "metadata": {}, "name": f"Customer {number}", "next_invoice_sequence": 1,
                "preferred_locales": [], "tax_exempt": "none"})
        for index, sub in enumerate(tenant.subscriptions):
            self.subscription(index, sub, _live(tenant, index, sub, self.as_of, self.clock))
        customers = self.objects["customers"]
        if customers:  # the newest event dates the first sync's snapshot (the connector lists up to it)
            self.objects["products"].append(self.product)
            self.objects["events"].append({
                "id": f"evt_{self.key}_clock", "object": "event", "api_version": STRIPE_API_VERSION,
                "context": None, "created": self.clock,
                "data": {"object": customers[0], "previous_attributes": {"metadata": None}}, "livemode": False,
                "pending_webhooks": 0, "request": {"id": None, "idempotency_key": None}, "type": "customer.updated"})
        self.objects["prices"] = list(self.prices.values())
        return self.objects

    def subscription(self, index: int, sub: Subscription, life: _Life) -> None:
        """The subscription, its forever coupon if any, and one paid invoice per period (a trial's is 0)."""
        currency = self.tenant.customer_currencies[sub.customer]
        customer = f"cus_{self.key}_{sub.customer}"
        unit, quantity = life.periods[-1][2:] if life.periods else (sub.unit_amount, sub.quantity)
        current = self.price(currency, unit, sub.cadence)
        item_id = f"si_{self.key}_{index}"
        discount = self.coupon(index, sub, currency, customer, life) if sub.percent_off or sub.amount_off else None
        bills = [(life.start, life.trial_end, 0, sub.quantity)] if life.trial_end else []
        bills += life.periods
        for number, (begin, end, amount, count) in enumerate(bills):
            subtotal = amount * count
            off = min(subtotal, sub.amount_off or subtotal * sub.percent_off // 100) if discount else 0
            reason = "subscription_create" if number == 0 else "subscription_cycle"
            line_price = self.price(currency, amount or unit, sub.cadence)
            self.objects["invoices"].append(self.invoice(
                f"in_{self.key}_{index}_{number}", life.sub_id, item_id, customer, currency, reason, begin, end,
                line_price["id"], amount, count, off, discount))
        plan = {"id": current["id"], "object": "plan", "active": True, "amount": unit, "amount_decimal": str(unit),
                "billing_scheme": "per_unit", "created": self.created, "currency": currency.lower(),
                **{name: current["recurring"][name] for name in ("interval", "interval_count")},
                "livemode": False, "metadata": {}, "meter": None, "nickname": None, "product": self.product["id"],
                "usage_type": "licensed"}
        period = life.periods[-1][:2] if life.periods else (life.start, life.trial_end or life.start)
        self.objects["subscriptions"].append({
            "id": life.sub_id, "object": "subscription", "automatic_tax": {"enabled": False},
            "billing_cycle_anchor": life.trial_end or life.start, "billing_mode": {"type": "classic"},
            "cancel_at": life.cancel_at, "cancel_at_period_end": bool(sub.at_period_end and life.canceled_at),
            "canceled_at": life.canceled_at,
            "cancellation_details": {"comment": None, "feedback": None,
                                     "reason": "cancellation_requested" if life.canceled_at else None},
            "collection_method": "charge_automatically", "created": life.start, "currency": currency.lower(),
            "customer": customer, "default_tax_rates": [], "discounts": [discount["id"]] if discount else [],
            "ended_at": life.ended_at,
            "items": {"object": "list", "data": [{
                "id": item_id, "object": "subscription_item", "created": life.start,
                "current_period_end": period[1], "current_period_start": period[0], "discounts": [],
                "metadata": {}, "plan": plan, "price": current, "quantity": quantity, "subscription": life.sub_id,
                "tax_rates": []}],
                "has_more": False, "total_count": 1, "url": f"/v1/subscription_items?subscription={life.sub_id}"},
            "latest_invoice": f"in_{self.key}_{index}_{len(bills) - 1}" if bills else None, "livemode": False,
            "metadata": {}, "start_date": life.start, "status": life.status, "trial_end": life.trial_end,
            "trial_start": life.start if life.trial_end else None})

    def coupon(self, index: int, sub: Subscription, currency: str, customer: str, life: _Life) -> dict[str, Any]:
        """A forever coupon of the subscription's own, applied from its start; returns the discount."""
        coupon = {
            "id": f"co_{self.key}_{index}", "object": "coupon", "amount_off": sub.amount_off or None,
            "created": self.created, "currency": currency.lower() if sub.amount_off else None,
            "duration": "forever", "duration_in_months": None, "livemode": False, "max_redemptions": None,
            "metadata": {}, "name": f"Forever {index}", "percent_off": sub.percent_off or None, "redeem_by": None,
            "times_redeemed": 1, "valid": True}
        discount = {
            "id": f"di_{self.key}_{index}", "object": "discount", "created": life.start,  # fixtures need it
            "checkout_session": None, "customer": customer, "customer_account": None, "end": None, "invoice": None,
            "invoice_item": None, "promotion_code": None, "source": {"coupon": coupon["id"], "type": "coupon"},
            "start": life.start, "subscription": life.sub_id, "subscription_item": None}
        self.objects["coupons"].append(coupon)
        self.objects["discounts"].append(discount)
        return discount

    def invoice(self, invoice_id: str, sub_id: str, item_id: str, customer: str, currency: str, reason: str,
                begin: int, end: int, price_id: str, amount: int, count: int, off: int,
                discount: dict[str, Any] | None) -> dict[str, Any]:
        """A paid subscription invoice with one line for the period [begin, end), `off` taken by `discount`."""
        subtotal = amount * count
        total = subtotal - off
        discounted = [{"amount": off, "discount": discount["id"]}] if discount else []
        line = {
            "id": "il_" + invoice_id[3:], "object": "line_item", "amount": subtotal, "currency": currency.lower(),
            "description": f"{count} × Plan", "discount_amounts": discounted, "discountable": True,
            "discounts": [discount["id"]] if discount else [], "invoice": invoice_id, "livemode": False,
            "metadata": {},
            "parent": {"type": "subscription_item_details", "invoice_item_details": None,
                       "subscription_item_details": {"invoice_item": None, "proration": False,
                                                     "proration_details": {"credited_items": None},
                                                     "subscription": sub_id, "subscription_item": item_id}},
            "period": {"start": begin, "end": end}, "pretax_credit_amounts": [],
            "pricing": {"type": "price_details", "price_details": {"price": price_id, "product": self.product["id"]},
                        "unit_amount_decimal": str(amount)},
            "quantity": count, "quantity_decimal": str(count), "subtotal": subtotal, "taxes": []}
        return {
            "id": invoice_id, "object": "invoice", "account_country": "US", "account_name": "Matrix",
            "amount_due": total, "amount_overpaid": 0, "amount_paid": total, "amount_remaining": 0,
            "amount_shipping": 0, "attempt_count": 1 if total else 0, "attempted": True, "auto_advance": False,
            "billing_reason": reason, "collection_method": "charge_automatically", "created": begin,
            "currency": currency.lower(), "customer": customer, "customer_tax_exempt": "none",
            "customer_tax_ids": [], "default_tax_rates": [], "discounts": [discount["id"]] if discount else [],
            "effective_at": begin, "ending_balance": 0, "issuer": {"type": "self"},
            "lines": {"object": "list", "data": [line], "has_more": False, "total_count": 1,
                      "url": f"/v1/invoices/{invoice_id}/lines"},
            "livemode": False, "metadata": {}, "number": invoice_id[3:].upper(),
            "parent": {"type": "subscription_details", "quote_details": None,
                       "subscription_details": {"metadata": {}, "subscription": sub_id}},
            "period_end": begin, "period_start": begin, "post_payment_credit_notes_amount": 0,
            "pre_payment_credit_notes_amount": 0, "starting_balance": 0, "status": "paid",
            "status_transitions": {"finalized_at": begin, "marked_uncollectible_at": None, "paid_at": begin,
                                   "voided_at": None},
            "subtotal": subtotal, "subtotal_excluding_tax": subtotal, "total": total,
            "total_discount_amounts": discounted, "total_excluding_tax": total, "total_taxes": [],
            "webhooks_delivered_at": begin}


# -- the truth --------------------------------------------------------------------------------------


class _Rates:
    """Units per euro on a day: the operator's file where it has the currency, else the sandbox's ECB."""

    def __init__(self, store: SandboxStore, operator_csv: str):
        self.store = store
        self.operator: dict[str, list[tuple[date, Decimal]]] = defaultdict(list)
        for line in operator_csv.strip().splitlines()[1:]:
            day, code, rate = line.split(",")
            self.operator[code].append((date.fromisoformat(day), Decimal(rate)))
        for listed in self.operator.values():
            listed.sort()

    def per_eur(self, currency: str, day: date) -> Decimal:
        code = currency.upper()
        if code in self.operator:
            return [rate for since, rate in self.operator[code] if since <= day][-1]
        return ecb.units_per_eur(self.store, code, day)

    def convert(self, amount: Decimal, currency: str, reporting: str, day: date) -> Decimal:
        if currency.upper() == reporting.upper() or not amount:
            return amount
        return amount * self.per_eur(reporting, day) / self.per_eur(currency, day)


def is_matrix(store: SandboxStore) -> bool:
    return bool((store.get_meta("fixture") or {}).get("matrix"))


def truth(store: SandboxStore, now: int | None = None) -> dict[str, Any]:
    """Every metric of every matrix tenant, per local day, as the warehouse must show it.

    Ecommerce days run from the first order day to the last day with data; SaaS days from the first
    subscription's day to today (`now`, default the machine's clock) or the clock's day, whichever
    is later, in the tenant's timezone: after the store's clock nothing changes. Amounts are exact
    amounts in the reporting currency (SaaS stocks also per billing currency), as decimal strings
    to 12 places, so the truth is JSON like the simulator's."""
    meta = store.get_meta("fixture")["matrix"]
    as_of = date.fromisoformat(meta["as_of"])
    fx = _Rates(store, meta["operator_rates"])
    now = int(clock_time.time()) if now is None else now
    result = {}
    with localcontext() as context:
        context.prec = 60
        for data in meta["tenants"]:
            tenant = Tenant.from_dict(data)
            if tenant.vertical == "ecommerce":
                result[tenant.workspace] = _shop_truth(store, tenant, as_of, fx)
            else:
                result[tenant.workspace] = _saas_truth(tenant, as_of, store.clock, max(now, store.clock), fx)
        return _plain(result)


def _plain(value: Any) -> Any:
    """Decimals as strings (12 places), recursively."""
    if isinstance(value, Decimal):
        return format(value.quantize(Decimal("1e-12")), "f")
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def _shop_truth(store: SandboxStore, tenant: Tenant, as_of: date, fx: _Rates) -> dict[str, Any]:
    """The ecommerce days of one shop: the served orders' revenue (`shop_truth`), converted."""
    served = shop_truth(store, tenant.workspace, tenant.timezone, as_of, tenant.currency)["revenue"]["days"]
    # the warehouse's days run from the first order's day to the last day an order changed or was refunded
    first, last = None, None
    for stored in store.iter_objects(tenant.workspace, "shopify", "order"):
        if stored.body["test"]:
            continue
        placed = local_date(stored.created, tenant.timezone).isoformat()
        touched = [placed, local_date(stored.updated, tenant.timezone).isoformat(),
                   *(local_date(parse_iso(r["createdAt"]), tenant.timezone).isoformat() for r in stored.body["refunds"])]
        first, last = min(first or placed, placed), max(last or placed, *touched)
    days = {}
    if first is None:
        return {"vertical": "ecommerce", "days": days}
    for offset in range((date.fromisoformat(last) - date.fromisoformat(first)).days + 1):
        when = date.fromisoformat(first) + timedelta(days=offset)
        day = when.isoformat()
        # a day with no sales is zeros (a cancelled order's day, say); shop_truth starts at the first sale
        values = served.get(day) or dict.fromkeys(("gross_sales", "discounts", "refunds", "orders", "units",
                                                   "new_customers", "returning_customers"), 0)
        row = {name: fx.convert(Decimal(values[name]), tenant.currency, tenant.reporting_currency, when)
               .quantize(Decimal("0.0001"), ROUND_HALF_UP) for name in ("gross_sales", "discounts", "refunds")}
        row["net_sales"] = row["gross_sales"] - row["discounts"] - row["refunds"]
        row.update({name: values[name] for name in ("orders", "units", "new_customers", "returning_customers")})
        # docs/metrics.md: (gross_sales − discounts) / orders, of the day's (rounded) figures
        row["aov"] = (((row["gross_sales"] - row["discounts"]) / values["orders"]).quantize(Decimal("0.0001"), ROUND_HALF_UP)
                      if values["orders"] else None)
        days[day] = row
    return {"vertical": "ecommerce", "days": days}


def _saas_truth(tenant: Tenant, as_of: date, clock: int, now: int, fx: _Rates) -> dict[str, Any]:
    """The SaaS days of one tenant, from its subscriptions' plans (not from the served JSON)."""
    tz = tenant.timezone
    lives = [(sub, _live(tenant, index, sub, as_of, clock)) for index, sub in enumerate(tenant.subscriptions)]
    if not lives:
        return {"vertical": "saas", "days": {}, "by_currency": {}}

    def mrr_at(sub: Subscription, life: _Life, moment: int) -> Decimal:
        """The subscription's MRR in its billing currency at `moment` (after the clock: at the clock)."""
        moment = min(moment, clock)
        stop = life.canceled_at if life.canceled_at is not None else None
        if stop is not None and moment >= stop:
            return Decimal(0)
        currency = tenant.customer_currencies[sub.customer]
        for begin, end, unit, quantity in life.periods:
            if begin <= moment < end or (moment == clock and begin <= moment and end > moment):
                months = months_in(*CADENCES[sub.cadence])
                gross = to_major(unit * quantity, currency) * months.denominator / months.numerator
                off = to_major(sub.amount_off, currency) * months.denominator / months.numerator
                return max(gross * (100 - sub.percent_off) / 100 - off, Decimal(0))  # forever coupons only
        return Decimal(0)

    first_day = min(local_date(life.start, tz) for _, life in lives)
    last_day = local_date(now, tz)
    day_list = [first_day + timedelta(days=i) for i in range((last_day - first_day).days + 1)]
    # end-of-day MRR per subscription, per customer
    sub_mrr: list[list[Decimal]] = []
    for sub, life in lives:
        sub_mrr.append([mrr_at(sub, life, local_midnight(day + timedelta(days=1), tz) - 1) for day in day_list])
    customers = sorted({sub.customer for sub, _ in lives})
    cus_mrr = {c: [sum((sub_mrr[i][d] for i, (sub, _) in enumerate(lives) if sub.customer == c), Decimal(0))
                   for d in range(len(day_list))] for c in customers}
    currency_of = {c: tenant.customer_currencies[c] for c in customers}
    reporting = tenant.reporting_currency

    def conv(amount: Decimal, currency: str, day: date) -> Decimal:
        return fx.convert(amount, currency, reporting, day)

    # per billing currency: stocks from the currency's first day
    by_currency: dict[str, dict[str, dict[str, Any]]] = {}
    for currency in sorted(set(currency_of.values())):
        start = min(local_date(life.start, tz) for sub, life in lives if currency_of[sub.customer] == currency)
        rows = {}
        for d, day in enumerate(day_list):
            if day < start:
                continue
            members = [c for c in customers if currency_of[c] == currency]
            rows[day.isoformat()] = {
                "mrr": sum((cus_mrr[c][d] for c in members), Decimal(0)),
                "active_customers": sum(1 for c in members if cus_mrr[c][d] > 0),
                "active_subscriptions": sum(1 for i, (sub, _) in enumerate(lives)
                                            if currency_of[sub.customer] == currency and sub_mrr[i][d] > 0),
            }
        by_currency[currency] = rows

    daily = []
    had_mrr = {c: False for c in customers}
    first_paying = {i: next((d for d in range(len(day_list)) if sub_mrr[i][d] > 0), None) for i in range(len(lives))}
    for d, day in enumerate(day_list):
        row = dict.fromkeys(("new_mrr", "expansion_mrr", "contraction_mrr", "churned_mrr", "reactivation_mrr"),
                            Decimal(0))
        row.update(churned_customers=0, started_customers=0)
        for c in customers:
            before = cus_mrr[c][d - 1] if d else Decimal(0)
            after = cus_mrr[c][d]
            if before != after:
                delta = conv(after, currency_of[c], day) - conv(before, currency_of[c], day)
                if before == 0:
                    kind = "reactivation_mrr" if had_mrr[c] else "new_mrr"
                    row["started_customers"] += 1
                elif after == 0:
                    kind = "churned_mrr"
                    row["churned_customers"] += 1
                else:
                    kind = "expansion_mrr" if after > before else "contraction_mrr"
                row[kind] += abs(delta)
            had_mrr[c] = had_mrr[c] or after > 0
        row["mrr"] = sum((conv(cus_mrr[c][d], currency_of[c], day) for c in customers), Decimal(0))
        row["net_new_mrr"] = (row["new_mrr"] + row["expansion_mrr"] + row["reactivation_mrr"]
                              - row["contraction_mrr"] - row["churned_mrr"])
        row["active_customers"] = sum(1 for c in customers if cus_mrr[c][d] > 0)
        row["active_subscriptions"] = sum(1 for i in range(len(lives)) if sub_mrr[i][d] > 0)
        row["new_subscriptions"] = sum(1 for i in range(len(lives)) if first_paying[i] == d)
        row["churned_subscriptions"] = sum(1 for i in range(len(lives))
                                           if d and sub_mrr[i][d - 1] > 0 and sub_mrr[i][d] == 0)
        # trials that ended today (at their end, or earlier if canceled), converted if paying today
        trials = [(i, life) for i, (sub, life) in enumerate(lives) if life.trial_end]
        ended = [i for i, life in trials
                 if local_date(min(life.trial_end, life.ended_at or life.trial_end), tz) == day]
        row["trials_ended"] = len(ended)
        row["trials_converted"] = sum(1 for i in ended if first_paying[i] == d)
        # revenue retention, month to date: the cohort paying at the end of the day before the month
        month_start = day.replace(day=1)
        cohort_index = (month_start - first_day).days - 1
        start_mrr = {c: cus_mrr[c][cohort_index] for c in customers if cohort_index >= 0 and cus_mrr[c][cohort_index] > 0}
        row["mrr_at_month_start"] = sum((conv(v, currency_of[c], day) for c, v in start_mrr.items()), Decimal(0))
        row["retained_mrr"] = sum((conv(cus_mrr[c][d], currency_of[c], day) for c in start_mrr), Decimal(0))
        row["retained_gross_mrr"] = sum((conv(min(cus_mrr[c][d], v), currency_of[c], day)
                                         for c, v in start_mrr.items()), Decimal(0))
        daily.append(row)

    days = {}
    for d, day in enumerate(day_list):
        row = daily[d]
        window = daily[max(0, d - 29): d + 1]
        churned = sum(r["churned_customers"] for r in window)
        at_risk = (daily[d - 30]["active_customers"] if d >= 30 else 0) + sum(r["started_customers"] for r in window)
        churned_mrr = sum((r["churned_mrr"] for r in window), Decimal(0))
        mrr_at_risk = (daily[d - 30]["mrr"] if d >= 30 else Decimal(0)) + sum(
            (r["new_mrr"] + r["reactivation_mrr"] for r in window), Decimal(0))
        trials_ended = sum(r["trials_ended"] for r in window)
        trials_converted = sum(r["trials_converted"] for r in window)
        active = row["active_customers"]
        out = {name: row[name] for name in (
            "mrr", "new_mrr", "expansion_mrr", "contraction_mrr", "churned_mrr", "reactivation_mrr", "net_new_mrr",
            "active_subscriptions", "active_customers", "new_subscriptions", "churned_subscriptions",
            "mrr_at_month_start", "retained_mrr", "retained_gross_mrr")}
        out.update(
            arr=12 * row["mrr"],
            arpa=row["mrr"] / active if active else None,
            churned_customers_30d=churned, customers_at_risk_30d=at_risk,
            subscriber_churn_rate=Decimal(churned) / at_risk if at_risk else None,
            churned_mrr_30d=churned_mrr, mrr_at_risk_30d=mrr_at_risk,
            mrr_churn_rate=churned_mrr / mrr_at_risk if mrr_at_risk > 0 else None,
            net_revenue_retention=row["retained_mrr"] / row["mrr_at_month_start"] if row["mrr_at_month_start"] > 0 else None,
            gross_revenue_retention=(row["retained_gross_mrr"] / row["mrr_at_month_start"]
                                     if row["mrr_at_month_start"] > 0 else None),
            trials_ended_30d=trials_ended, trials_converted_30d=trials_converted,
            trial_conversion_rate=Decimal(trials_converted) / trials_ended if trials_ended else None,
            ltv=(row["mrr"] / active) * at_risk / churned if active and churned else None,
        )
        days[day.isoformat()] = out
    return {"vertical": "saas", "days": days, "by_currency": by_currency}
