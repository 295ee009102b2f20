"""One SaaS customer's life in Stripe, replayed deterministically to any point in time.

A customer's whole lifecycle is a pure function of the seed and the customer's key (its signup day
and index): every random draw comes from one generator seeded by that key, in the order the walk
processes its actions. Walking to time T therefore always processes the same prefix of actions, so
the state at T, the change times and the event ids are the same whether the walk stops at T or
later. `CustomerLife.run(T)` is how the simulator renders objects, lists changes and computes MRR.

Actions (each at a Unix time, processed in time order): signup, trial end, renewal, invoice
finalization and payment (with retries), plan and seat changes with prorations, cancellation at
period end or immediately, unpaid subscriptions being canceled, reactivation and customer deletion.
"""

from __future__ import annotations

import heapq
from calendar import monthrange
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from pipelines.sandbox.core.accounts import STRIPE_API_VERSION, STRIPE_PREVIOUS_API_VERSION
from pipelines.sandbox.simulation.saas.catalog import PLAN_ORDER, PLANS, TAX_RATES, Catalog, Coupon, Price, per_month
from pipelines.sandbox.simulation.simulator import rng, stable_id

DAY = 86400
HOUR = 3600
FINALIZE_DELAY = HOUR  # Stripe finalizes renewal invoices about an hour after creating them
PAYMENT_DELAY = 5  # seconds from finalization to the charge's outcome
RETRY_DAYS = (3, 5, 7)  # smart-retry schedule after a failed renewal charge (days after the previous)


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


# (kind, object, event type, JSON before the change or None for creations, event number, user request?)
PendingEvent = tuple[str, Any, str, "dict[str, Any] | None", int, bool]
Renderer = Callable[[str, Any, bool], dict[str, Any]]


class WalkEvent(NamedTuple):
    """A change rendered as the data of a Stripe event."""

    created: int
    number: int  # the customer's event counter: the event id's suffix
    type: str
    object: dict[str, Any]
    previous_attributes: dict[str, Any] | None  # only for *.updated events
    request: bool  # made by a user (an API request) rather than by Stripe's automation


class CustomerLife:
    """A customer's objects, walked forward in time by `run`.

    Args:
        world: the business this customer belongs to.
        plan: the stored plan: `key` (signup day and index), `created`, and optionally `campaign`.
        events: `(first, last)` Unix times (inclusive) whose events are rendered into `events`.
        render: renders an object to Stripe JSON (`StripeRenderer.render`); needed only with `events`.
        track_mrr: record the customer's MRR after every change in `mrr_points`.
    """

    def __init__(self, world: World, plan: dict[str, Any], *, events: tuple[int, int] | None = None,
                 render: Renderer | None = None, track_mrr: bool = False):
        self.world = world
        self.rates = world.rates
        self.plan = plan
        self.rng = rng(world.seed, world.workspace, "customer", *plan["key"])
        # Every id of this customer's objects extends this key (one hash per customer, not per object).
        self.key = stable_id(world.seed, world.workspace, "cus", *plan["key"])
        self.events_window = events
        self.render = render
        self.track_mrr = track_mrr
        self.customer: Customer | None = None
        self.subs: list[Sub] = []
        self.invoices: list[Invoice] = []
        self.discounts: list[Discount] = []
        self.events: list[WalkEvent] = []
        self.events_in_window = 0
        self.redemptions: list[tuple[int, str]] = []
        self.mrr_points: list[tuple[int, Decimal, int]] = []  # (time, MRR, active subscriptions)
        self.now = plan["created"]
        self._heap: list[tuple[int, int, Callable[..., None], tuple]] = []
        self._seq = 0
        self._event_seq = 0
        self._pending: list[PendingEvent] = []
        self._mrr_dirty = False  # a subscription changed since MRR was last recorded
        self._schedule(plan["created"], self._signup)

    # -- the walk ---------------------------------------------------------------------------------

    def run(self, until: int) -> CustomerLife:
        """Process every action at or before `until`."""
        while self._heap and self._heap[0][0] <= until:
            when, _, action, args = heapq.heappop(self._heap)
            self.now = when
            action(*args)
            if self._pending:
                self._flush()
            if self.track_mrr and self._mrr_dirty:
                self._record_mrr()
        return self

    @property
    def next_due(self) -> int | None:
        """When the next change happens (None: this customer never changes again)."""
        return self._heap[0][0] if self._heap else None

    def _schedule(self, when: int, action: Callable[..., None], *args: Any) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, action, args))

    def _emitting(self) -> bool:
        window = self.events_window
        return window is not None and window[0] <= self.now <= window[1]

    def _touch(self, kind: str, obj: Any, event: str | None, *, created: bool = False,
               request: bool = False) -> None:
        """Record that `obj` changes now. Call before mutating it (after, for creations)."""
        obj.updated = self.now
        if kind == "subscription":
            self._mrr_dirty = True
        if event is None:  # Stripe sends no event for this change (e.g. next_invoice_sequence)
            return
        self._event_seq += 1
        if not self._emitting():
            return
        self.events_in_window += 1
        if self.render is None:
            return
        before = None if created else self.render(kind, obj, True)
        self._pending.append((kind, obj, event, before, self._event_seq, request))

    def _flush(self) -> None:
        for kind, obj, event, before, number, request in self._pending:
            after = self.render(kind, obj, True)
            previous = None
            if event.endswith(".updated"):
                previous = {k: v for k, v in before.items() if after.get(k) != v}
            self.events.append(WalkEvent(self.now, number, event, after, previous, request))
        self._pending = []

    def _record_mrr(self) -> None:
        self._mrr_dirty = False
        mrr = sum((sub.mrr() for sub in self.subs), Decimal(0))
        active = sum(1 for sub in self.subs if sub.mrr() > 0)  # docs/metrics.md: active = MRR > 0
        if not self.mrr_points or self.mrr_points[-1][1:] != (mrr, active):
            self.mrr_points.append((self.now, mrr, active))

    # -- signup and subscriptions -----------------------------------------------------------------

    def _signup(self) -> None:
        world, r = self.world, self.rng
        currency = self.plan.get("currency") or r.choices(world.currencies, world.currency_weights)[0]
        if currency == "usd":
            country = r.choices(("US", "CA"), (9, 1))[0]
        elif currency == "jpy":
            country = "JP"
        else:
            country = r.choices(("DE", "FR", "NL", "ES", "IT"), (35, 25, 15, 15, 10))[0]
        reverse_charge = currency == "eur" and r.random() < 0.3  # EU B2B: VAT reverse-charged
        tax = None
        if country in TAX_RATES and not reverse_charge:
            tax = (world.catalog.tax_rates[country], TAX_RATES[country][0])
        name = f"{r.choice(_ADJECTIVES)} {r.choice(_NOUNS)}"
        cus_id = "cus_" + self.key
        slug = name.lower().replace(" ", "") + cus_id[-4:].lower()
        self.customer = Customer(
            id=cus_id, created=self.now, currency=currency, country=country,
            name=f"{name} {r.choice(_SUFFIXES)}", email=f"billing@{slug}.example.com", tax_rate=tax,
            tax_exempt="reverse" if reverse_charge else "none",
            invoice_prefix=self.key[:8].upper(),
        )
        self._touch("customer", self.customer, "customer.created", created=True, request=True)
        if r.random() < self.rates.email_change:
            self._schedule(self.now + r.randrange(10 * DAY, 400 * DAY), self._change_email)
        campaign = bool(self.plan.get("campaign"))
        self._start_sub(trial=not campaign and r.random() < self.rates.trial_share, campaign=campaign)

    def _start_sub(self, *, trial: bool, campaign: bool = False) -> None:
        r, cus, catalog = self.rng, self.customer, self.world.catalog
        plan = r.choices(PLAN_ORDER, (45, 35, 20))[0]
        cadence = r.choices(("month", "year", "quarter", "week"), (70, 20, 9, 1))[0]
        if cadence == "week" and (cus.currency != "usd" or campaign):
            cadence = "month"
        if cadence == "week":
            plan = "starter"
        price = catalog.price(plan, cadence, cus.currency)
        sub_key = self.key + base62(len(self.subs), 2)
        sub_id = "sub_" + sub_key
        items = [Item(f"si_{sub_key}0", price, self._seats(plan), self.now)]
        if cadence == "month" and r.random() < self.rates.metered_share:
            items.append(Item(f"si_{sub_key}1", catalog.price("usage", "month", cus.currency),
                              None, self.now))
        trial_end = self.now + self.rates.trial_days * DAY if trial else None
        anchor = trial_end or self.now
        sub = Sub(sub_id, cus, self.now, items, anchor, "trialing" if trial else "active",
                  period_start=self.now, period_end=trial_end or period_bound(anchor, 1, price),
                  trial_start=self.now if trial else None, trial_end=trial_end)
        self.subs.append(sub)
        if not trial and not campaign and r.random() < self.rates.coupon_share:
            coupons = [c for c in catalog.coupons.values() if c.currency in (None, cus.currency)]
            coupon = r.choice(coupons)
            end = add_months(self.now, coupon.duration_in_months) if coupon.duration == "repeating" else None
            sub.discount = Discount("di_" + sub_key, coupon, cus.id, sub_id, self.now, end)
            self.discounts.append(sub.discount)
            self._touch("discount", sub.discount, None, created=True)
            self.redemptions.append((self.now, coupon.id))
        self._touch("subscription", sub, "customer.subscription.created", created=True, request=True)
        if trial:
            lines = [Line("", 0, it.quantity, it.price, self.now, trial_end, False, it.id,
                          f"Trial period for {it.price.product_name}")
                     for it in items if not it.price.metered]
            invoice = self._invoice(sub, "subscription_create", lines, self.now, self.now)
            self._finalize(invoice)
            self._schedule(trial_end, self._end_trial, sub)
        else:
            lines = self._period_lines(sub, None)
            invoice = self._invoice(sub, "subscription_create", lines, self.now, self.now)
            self._finalize(invoice, may_fail=False)
            if sub.discount is not None and sub.discount.coupon.duration == "once":
                sub.discount = None  # used up by the first invoice
            self._plan_period(sub)

    def _seats(self, plan: str) -> int:
        if not PLANS[plan]["per_seat"]:
            return 1
        return min(50, 2 + int(self.rng.expovariate(1 / 5)))

    def _end_trial(self, sub: Sub) -> None:
        if sub.status != "trialing":
            return
        if self.rng.random() >= self.rates.trial_convert:  # no payment method: Stripe cancels
            self._touch("subscription", sub, "customer.subscription.deleted")
            sub.status, sub.canceled_at, sub.ended_at = "canceled", self.now, self.now
            sub.cancel_reason = "cancellation_requested"
            self._after_end(sub)
            return
        self._renew(sub, trial_end=True)

    def _plan_period(self, sub: Sub) -> None:
        """Draw what happens to `sub` during its current period: changes, cancellation, anomaly churn."""
        r, rates = self.rng, self.rates
        start, end, cycle = sub.period_start, sub.period_end, sub.cycle
        months = float(sub.price.months)
        if r.random() < 1 - (1 - rates.change_per_month) ** months:
            self._schedule(r.randrange(start + HOUR, end - HOUR), self._change_plan, sub, cycle)
        if r.random() < 1 - (1 - rates.cancel_per_month) ** months:
            now = r.random() < rates.cancel_now_share
            self._schedule(r.randrange(start + HOUR, end - HOUR), self._cancel, sub, cycle, now)
        spike = self.world.churn_spike
        if sub.price.plan == spike.plan and start < spike.end and end > spike.start:
            if r.random() < spike.share:
                when = r.randrange(spike.start, spike.end)
                if start < when < end:
                    self._schedule(when, self._cancel, sub, cycle, True)
        self._schedule(end, self._renew, sub)

    # -- invoices -----------------------------------------------------------------------------------

    def _period_lines(self, sub: Sub, previous: tuple[int, int] | None) -> list[Line]:
        """Lines of a period's invoice: licensed items in advance, metered usage of `previous` in arrears."""
        lines = []
        for item in sub.items:
            price = item.price
            if price.metered:
                usage = 0 if previous is None else self._usage()
                start, end = previous or (sub.period_start, sub.period_start)
                lines.append(Line("", usage * price.unit_amount, usage, price, start, end, False, item.id,
                                  f"{usage} × {price.product_name} (per 1,000 calls)"))
            else:
                lines.append(Line("", price.unit_amount * item.quantity, item.quantity, price,
                                  sub.period_start, sub.period_end, False, item.id,
                                  f"{item.quantity} × {price.product_name} ({price.body['nickname']})"))
        return lines

    def _usage(self) -> int:
        return int(self.rng.lognormvariate(4.0, 0.8))

    def _invoice(self, sub: Sub, reason: str, lines: list[Line], period_start: int, period_end: int,
                 proration_date: int | None = None) -> Invoice:
        """Create a draft invoice (with discounts and tax applied) and make it the latest one."""
        cus = self.customer
        invoice_key = sub.id[4:] + base62(sub.invoice_count, 3)
        invoice_id = "in_" + invoice_key
        sub.invoice_count += 1
        for index, line in enumerate(lines):
            line.id = f"il_{invoice_key}{base62(index, 2)}"
        discount = sub.discount if reason != "subscription_update" else None
        if discount is not None and discount.end is not None and self.now >= discount.end:
            discount = None
        if discount is not None:
            self._apply_discount(discount.coupon, [line for line in lines if not line.proration])
        if cus.tax_rate is not None:
            for line in lines:
                line.tax = _round_half_up((line.amount - line.discount) * cus.tax_rate[1], 100)
        invoice = Invoice(invoice_id, cus, sub, self.now, reason, period_start, period_end, lines,
                          discount if discount and any(line.discount for line in lines) else None,
                          cus.tax_rate, proration_date)
        invoice.compute()
        invoice.amount_due, invoice.email = invoice.total, cus.email
        self.invoices.append(invoice)
        self._touch("invoice", invoice, "invoice.created", created=True)
        self._touch("subscription", sub, None)
        sub.latest_invoice = invoice_id
        return invoice

    @staticmethod
    def _apply_discount(coupon: Coupon, lines: list[Line]) -> None:
        """Spread a coupon over the discountable lines, in proportion to their amounts."""
        base = sum(line.amount for line in lines)
        if base <= 0:
            return
        if coupon.percent_off is not None:
            total = _round_half_up(base * int(coupon.percent_off * 100), 10000)
        else:
            total = min(coupon.amount_off, base)
        left = total
        for line in lines[1:]:
            line.discount = total * line.amount // base
            left -= line.discount
        lines[0].discount = left

    def _finalize(self, invoice: Invoice, *, may_fail: bool = True) -> None:
        """Finalize now (applying customer credit), then charge it a few seconds later.

        Args:
            may_fail: whether the first charge can fail (not at signup or on upgrades).
        """
        cus = self.customer
        balance = min(0, invoice.total + cus.balance)
        self._touch("invoice", invoice, "invoice.finalized")
        self._touch("customer", cus, "customer.updated" if balance != cus.balance else None)
        invoice.status, invoice.finalized_at, invoice.email = "open", self.now, cus.email
        invoice.number = f"{cus.invoice_prefix}-{cus.next_invoice_sequence:04d}"
        cus.next_invoice_sequence += 1
        invoice.starting_balance = cus.balance
        invoice.amount_due = max(0, invoice.total + cus.balance)
        invoice.ending_balance = cus.balance = balance
        if invoice.amount_due == 0:
            self._touch("invoice", invoice, "invoice.paid")
            invoice.status, invoice.paid_at = "paid", self.now
            return
        # Weekly periods are shorter than the retry schedule, so weekly charges never fail here.
        weekly = invoice.sub.price.interval == "week"
        if may_fail and not weekly and self.rng.random() < self.rates.fail_per_renewal:
            draw = self.rng.random()
            if draw < self.rates.fail_recover:
                invoice.failure = ("recover", 2 + self.rng.randrange(len(RETRY_DAYS)))
            elif draw < self.rates.fail_recover + self.rates.fail_unpaid:
                invoice.failure = ("unpaid", 0)
            else:
                invoice.failure = ("cancel", 0)
        self._schedule(self.now + PAYMENT_DELAY, self._charge, invoice)

    def _charge(self, invoice: Invoice) -> None:
        if invoice.status != "open":
            return
        sub, cus = invoice.sub, self.customer
        invoice.attempt_count += 1
        failure = invoice.failure
        succeeds = failure is None or (failure[0] == "recover" and invoice.attempt_count >= failure[1])
        if succeeds:
            self._touch("invoice", invoice, "invoice.paid")
            invoice.status, invoice.paid_at, invoice.amount_paid = "paid", self.now, invoice.amount_due
            invoice.next_payment_attempt = None
            if sub.status == "past_due":
                self._touch("subscription", sub, "customer.subscription.updated")
                sub.status = "active"
            if cus.delinquent:
                self._touch("customer", cus, "customer.updated")
                cus.delinquent = False
            return
        self._touch("invoice", invoice, "invoice.payment_failed")
        if invoice.attempt_count <= len(RETRY_DAYS):
            invoice.next_payment_attempt = self.now + RETRY_DAYS[invoice.attempt_count - 1] * DAY
            self._schedule(invoice.next_payment_attempt, self._charge, invoice)
            if sub.status == "active":
                self._touch("subscription", sub, "customer.subscription.updated")
                sub.status = "past_due"
            if not cus.delinquent:
                self._touch("customer", cus, "customer.updated")
                cus.delinquent = True
            return
        invoice.next_payment_attempt = None  # retries exhausted
        if failure[0] == "unpaid":
            self._touch("subscription", sub, "customer.subscription.updated")
            sub.status = "unpaid"
            give_up = self.now + self.rng.randrange(15 * DAY, 45 * DAY)
            self._schedule(give_up, self._cancel_unpaid, sub, invoice)
            return
        self._touch("invoice", invoice, "invoice.marked_uncollectible")
        invoice.status, invoice.uncollectible_at = "uncollectible", self.now
        self._end_now(sub, "payment_failed")

    def _cancel_unpaid(self, sub: Sub, invoice: Invoice) -> None:
        """The owner gives up on an unpaid subscription: cancel it and void its open invoice."""
        if sub.status != "unpaid":
            return
        self._touch("invoice", invoice, "invoice.voided")
        invoice.status, invoice.voided_at = "void", self.now
        self._end_now(sub, "payment_failed")

    # -- renewals, changes and cancellations --------------------------------------------------------

    def _renew(self, sub: Sub, *, trial_end: bool = False) -> None:
        if sub.status not in ("active", "trialing"):
            return  # past_due renewals cannot happen: retries end within a period; unpaid stops billing
        if sub.cancel_at_period_end:
            self._touch("subscription", sub, "customer.subscription.deleted")
            sub.status, sub.ended_at = "canceled", self.now
            self._after_end(sub)
            return
        self._touch("subscription", sub, "customer.subscription.updated")
        previous = (sub.period_start, sub.period_end)
        if trial_end:
            sub.status, sub.cycle = "active", 0
            sub.period_start, sub.period_end = self.now, period_bound(sub.anchor, 1, sub.price)
            previous = None
        else:
            sub.cycle += 1
            sub.period_start = sub.period_end
            sub.period_end = period_bound(sub.anchor, sub.cycle + 1, sub.price)
        if sub.discount is not None and (sub.discount.end is not None and self.now >= sub.discount.end):
            sub.discount = None  # a repeating coupon ran out
        lines = sub.pending + self._period_lines(sub, previous)
        sub.pending = []
        invoice = self._invoice(sub, "subscription_cycle", lines, *(previous or (self.now, self.now)))
        if sub.discount is not None and sub.discount.coupon.duration == "once":
            sub.discount = None
        self._schedule(self.now + FINALIZE_DELAY, self._finalize_later, invoice)
        self._plan_period(sub)

    def _finalize_later(self, invoice: Invoice) -> None:
        if invoice.status == "draft":
            self._finalize(invoice)

    def _change_plan(self, sub: Sub, cycle: int) -> None:
        """An upgrade, downgrade or seat change, prorated over the rest of the period."""
        if sub.status != "active" or sub.cycle != cycle or sub.cancel_at_period_end:
            return
        if sub.price.cadence == "week":
            return  # Starter is the only plan with a weekly price
        r, item = self.rng, sub.items[0]
        old_price, old_qty = item.price, item.quantity
        index = PLAN_ORDER.index(old_price.plan)
        if old_price.plan == "team" and r.random() < 0.5:
            new_plan, new_qty = "team", max(1, old_qty + r.choice((-3, -2, -1, 1, 1, 2, 3, 5)))
        else:
            step = r.choice((1, 1, -1)) if 0 < index < len(PLAN_ORDER) - 1 else (1 if index == 0 else -1)
            new_plan = PLAN_ORDER[index + step]
            new_qty = self._seats(new_plan) if new_plan == "team" else 1
        new_price = self.world.catalog.price(new_plan, old_price.cadence, old_price.currency)
        if (new_price.id, new_qty) == (old_price.id, old_qty):
            return
        self._touch("subscription", sub, "customer.subscription.updated", request=True)
        left = (sub.period_end - self.now) / (sub.period_end - sub.period_start)
        when = datetime.fromtimestamp(self.now, UTC).strftime("%d %b %Y")
        credited = self._charged_line(sub, item)
        lines = [
            Line("", -round(old_price.unit_amount * old_qty * left), old_qty, old_price, self.now,
                 sub.period_end, True, item.id,
                 f"Unused time on {old_qty} × {old_price.product_name} after {when}", credited),
            Line("", round(new_price.unit_amount * new_qty * left), new_qty, new_price, self.now,
                 sub.period_end, True, item.id,
                 f"Remaining time on {new_qty} × {new_price.product_name} after {when}"),
        ]
        item.price, item.quantity = new_price, new_qty
        upgrade = new_price.unit_amount * new_qty > old_price.unit_amount * old_qty
        if upgrade:  # upgrades are invoiced immediately, downgrades credited on the next renewal
            invoice = self._invoice(sub, "subscription_update", lines, self.now, self.now,
                                    proration_date=self.now)
            self._finalize(invoice, may_fail=False)
        else:
            sub.pending.extend(lines)

    def _charged_line(self, sub: Sub, item: Item) -> tuple[str, str] | None:
        """The invoice line that charged `item` for the current period (what a proration credits)."""
        for invoice in reversed(self.invoices):
            if invoice.sub is sub:
                for line in invoice.lines:
                    if line.item == item.id and line.amount > 0 and line.start <= self.now < line.end:
                        return invoice.id, line.id
        return None

    def _cancel(self, sub: Sub, cycle: int, now: bool) -> None:
        if sub.status != "active" or sub.cycle != cycle or sub.cancel_at_period_end:
            return
        sub.feedback = self.rng.choice(("too_expensive", "missing_features", "unused", "switched_service",
                                        "low_quality", "other"))
        if now:
            sub.canceled_at = self.now
            self._end_now(sub, "cancellation_requested", request=True)
            return
        self._touch("subscription", sub, "customer.subscription.updated", request=True)
        sub.cancel_at_period_end, sub.cancel_at, sub.canceled_at = True, sub.period_end, self.now
        sub.cancel_reason = "cancellation_requested"

    def _end_now(self, sub: Sub, reason: str, *, request: bool = False) -> None:
        self._touch("subscription", sub, "customer.subscription.deleted", request=request)
        sub.status, sub.ended_at, sub.cancel_reason = "canceled", self.now, reason
        sub.canceled_at = sub.canceled_at or self.now
        sub.pending = []
        if self.customer.delinquent:
            self._touch("customer", self.customer, "customer.updated")
            self.customer.delinquent = False
        self._after_end(sub)

    def _after_end(self, sub: Sub) -> None:
        """A subscription ended: the customer may come back later, or be deleted."""
        if any(s.status != "canceled" for s in self.subs):
            return
        r = self.rng
        if r.random() < self.rates.reactivate / len(self.subs):
            self._schedule(self.now + r.randrange(20 * DAY, 200 * DAY), self._reactivate)
        elif r.random() < self.rates.delete_after_churn:
            self._schedule(self.now + r.randrange(30 * DAY, 120 * DAY), self._delete)

    def _reactivate(self) -> None:
        self._start_sub(trial=False)

    def _delete(self) -> None:
        self._touch("customer", self.customer, "customer.deleted", request=True)
        self.customer.deleted = True
        self._heap.clear()  # nothing happens to a deleted customer any more

    def _change_email(self) -> None:
        if self.customer.deleted:
            return
        self._touch("customer", self.customer, "customer.updated", request=True)
        self.customer.email = self.customer.email.replace("billing@", "finance@")


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


def _round_half_up(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half away from zero (Stripe's rounding of tax and discounts)."""
    quotient, remainder = divmod(abs(numerator), denominator)
    if 2 * remainder >= denominator:
        quotient += 1
    return quotient if numerator >= 0 else -quotient


_ADJECTIVES = ("Blue", "Bright", "Northern", "Quiet", "Rapid", "Silver", "Solid", "Urban", "Clever", "Golden",
               "Open", "True", "Green", "Summit", "Harbor", "Prime")
_NOUNS = ("Labs", "Analytics", "Works", "Studio", "Logistics", "Health", "Foods", "Robotics", "Media",
          "Cloud", "Systems", "Ventures", "Bakery", "Dental", "Finance", "Travel")
_SUFFIXES = ("Inc.", "LLC", "GmbH", "SAS", "BV", "S.L.", "Ltd", "KK", "Co.")
