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

from datetime import UTC, datetime
from typing import Any

from pipelines.sandbox.simulation.saas.billing import FINALIZE_DELAY, Billing
from pipelines.sandbox.simulation.saas.catalog import PLAN_ORDER, PLANS, TAX_RATES
from pipelines.sandbox.simulation.saas.objects import (
    DAY, HOUR, Customer, Discount, Item, Line, Sub, World, add_months, base62, period_bound,
)
from pipelines.sandbox.simulation.saas.walk import Renderer


class CustomerLife(Billing):
    """A customer's life: signup, subscriptions, renewals, plan changes, churn and return.

    The walk (saas/walk.py) replays it to any time; billing (saas/billing.py) invoices and charges it.
    Arguments as `Walk`'s.
    """

    def __init__(self, world: World, plan: dict[str, Any], *, events: tuple[int, int] | None = None,
                 render: Renderer | None = None, track_mrr: bool = False):
        super().__init__(world, plan, events=events, render=render, track_mrr=track_mrr)
        self._schedule(plan["created"], self._signup)

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


_ADJECTIVES = ("Blue", "Bright", "Northern", "Quiet", "Rapid", "Silver", "Solid", "Urban", "Clever", "Golden",
               "Open", "True", "Green", "Summit", "Harbor", "Prime")
_NOUNS = ("Labs", "Analytics", "Works", "Studio", "Logistics", "Health", "Foods", "Robotics", "Media",
          "Cloud", "Systems", "Ventures", "Bakery", "Dental", "Finance", "Travel")
_SUFFIXES = ("Inc.", "LLC", "GmbH", "SAS", "BV", "S.L.", "Ltd", "KK", "Co.")
