"""The simulated SaaS business behind the fake Stripe API (see docs/simulator-saas.md).

Customers sign up every day (growth, weekly and yearly seasonality, one campaign). Each customer's
lifecycle is a deterministic walk (`saas_lifecycle.CustomerLife`) keyed by its signup day and index;
its plan row in the store holds that key and the time of its next change. Generating walks every
customer to the end of history; advancing re-walks only the customers with a change due, plus the
new days' signups. The MRR ground truth comes from the same walks, not from the rendered JSON.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from pipelines.sandbox import ecb
from pipelines.currencies import to_major
from pipelines.sandbox.core.accounts import stripe_account
from pipelines.sandbox.simulation.saas.catalog import Catalog
from pipelines.sandbox.simulation.saas.lifecycle import CustomerLife
from pipelines.sandbox.simulation.saas.objects import DAY, Window, World
from pipelines.sandbox.simulation.saas.render import StripeRenderer, catalog_event
from pipelines.sandbox.simulation.simulator import (
    EVENT_RETENTION_DAYS,
    HISTORY_DAYS,
    BusinessSpec,
    Progress,
    local_date,
    local_midnight,
    rng,
)
from pipelines.sandbox.core.store import SandboxStore

SOURCE = "stripe"
BATCH_ROWS = 5000
YEARLY_GROWTH = 1.8  # signups per day grow 80% a year
CHURN_SPIKE = {"offset_days": 12, "days": 2, "plan": "business", "share": 0.08}
CAMPAIGN = {"offset_days": 60, "days": 2, "currency": "eur", "extra": 4.0}  # extra × a normal day's signups
UPGRADE_OFFSET_DAYS = 10  # the account moved to the current API version this long before the end
MOVEMENTS = ("new", "expansion", "contraction", "churn", "reactivation")
CENT = Decimal("0.01")


class SaasSimulator:
    """A seeded SaaS business billed through Stripe (the `BusinessSimulator` protocol).

    Scale knobs (`spec.scale`): `customers` (signups over the history), `currencies`,
    optional `currency_weights` and `history_days` (default simulator.HISTORY_DAYS; the end of
    history is `start + history_days`, which anomaly dates and the API upgrade are relative to).
    """

    def __init__(self, spec: BusinessSpec, *, seed: int, start: date, size: str):
        self.spec, self.seed, self.start, self.size = spec, seed, start, size
        scale = spec.scale
        self.history_days = int(scale.get("history_days", HISTORY_DAYS))
        self.end_day = start + timedelta(days=self.history_days)
        currencies = list(scale["currencies"])
        default_weights = {"usd": 60, "eur": 28, "jpy": 12}
        weights = list(scale.get("currency_weights") or [default_weights.get(c, 10) for c in currencies])
        tz = spec.timezone
        spike_day = self.end_day - timedelta(days=CHURN_SPIKE["offset_days"])
        self.spike_days = [spike_day + timedelta(days=i) for i in range(CHURN_SPIKE["days"])]
        campaign_day = self.end_day - timedelta(days=CAMPAIGN["offset_days"])
        self.campaign_days = [campaign_day + timedelta(days=i) for i in range(CAMPAIGN["days"])]
        catalog = Catalog(seed, spec.workspace, currencies, local_midnight(start - timedelta(days=7), tz))
        self.world = World(
            seed=seed, workspace=spec.workspace, account_name=spec.name, catalog=catalog,
            currencies=currencies, currency_weights=weights,
            upgraded_at=local_midnight(self.end_day - timedelta(days=UPGRADE_OFFSET_DAYS), tz),
            churn_spike=Window(local_midnight(self.spike_days[0], tz),
                               local_midnight(self.spike_days[-1] + timedelta(days=1), tz),
                               plan=CHURN_SPIKE["plan"], share=CHURN_SPIKE["share"]),
        )
        self.renderer = StripeRenderer(self.world)
        shape_total = sum(self._shape(start + timedelta(days=i)) for i in range(self.history_days))
        self.base_rate = scale["customers"] / shape_total

    # -- the protocol -----------------------------------------------------------------------------

    def account(self) -> dict[str, Any]:
        spec = self.spec
        return stripe_account(spec.workspace, spec.name, spec.currency, spec.timezone,
                              api_version_upgraded_at=self.world.upgraded_at)

    def anomalies(self) -> list[dict[str, Any]]:
        plan_name = self.world.catalog.products[CHURN_SPIKE["plan"]]["name"]
        return [
            {
                "workspace": self.spec.workspace, "metric": "churned_mrr",
                "start": self.spike_days[0].isoformat(), "end": self.spike_days[-1].isoformat(),
                "direction": "up", "dimension": "plan", "value": plan_name,
                "description": f"Churn spike: about {CHURN_SPIKE['share']:.0%} of active {plan_name} "
                               "subscriptions cancel immediately (a competitor's launch); churned MRR is "
                               "several times normal.",
            },
            {
                "workspace": self.spec.workspace, "metric": "new_mrr",
                "start": self.campaign_days[0].isoformat(), "end": self.campaign_days[-1].isoformat(),
                "direction": "up", "dimension": "billing_currency", "value": CAMPAIGN["currency"],
                "description": f"EU launch campaign: {CAMPAIGN['extra']:.0f}× a normal day's signups on top, "
                               f"all billed in {CAMPAIGN['currency'].upper()} and paying at once (no trial).",
            },
        ]

    def generate(self, store: SandboxStore, until: int, progress: Progress) -> None:
        """Walk every customer who signed up by `until`; write their state and the last 30 days' events."""
        window = (until - EVENT_RETENTION_DAYS * DAY, until)
        writer = _Writer(store, self.spec.workspace)
        written = 0
        for day in self._days(self.start, local_date(until, self.spec.timezone)):
            for plan in self._signups(day):
                if plan["created"] > until:
                    break
                life = CustomerLife(self.world, plan, events=window, render=self.renderer.render).run(until)
                self._write_life(writer, life, since=None)
                written += 1
            if day.day == 1:
                progress(f"  {self.spec.workspace}: {day.isoformat()[:7]}, {written} customers")
        self._write_catalog(writer, window)
        writer.flush()

    def advance(self, store: SandboxStore, since: int, until: int) -> dict[str, int]:
        """Re-walk the customers with a change due and the new signups; write what changed in the window."""
        window = (since + 1, until)
        writer = _Writer(store, self.spec.workspace)
        lives = (CustomerLife(self.world, plan, events=window, render=self.renderer.render).run(until)
                 for _, _, plan in store.due_plans(self.spec.workspace, SOURCE, until))
        for life in itertools.chain(lives, self._new_lives(since, until, window)):
            self._write_life(writer, life, since=since)
        # Redemptions change a coupon's times_redeemed; Stripe sends no event for that.
        for coupon_id, count in sorted(writer.redeemed.items()):
            stored = store.get(self.spec.workspace, SOURCE, "coupon", coupon_id)
            body = dict(stored.body, times_redeemed=stored.body["times_redeemed"] + count)
            writer.add("coupon", coupon_id, stored.created, writer.last_redeemed[coupon_id], body)
        writer.flush()
        return dict(sorted(writer.counts.items()))

    def truth(self, store: SandboxStore) -> dict[str, Any]:
        """Counts, money sums and the MRR reference series at the store's clock, from the plans."""
        clock = store.clock
        tz = self.spec.timezone
        days = list(self._days(self.start, local_date(clock, tz)))
        ends = [local_midnight(day + timedelta(days=1), tz) for day in days]
        counts: Counter[str] = Counter()
        sums: dict[str, Counter[str]] = defaultdict(Counter)
        daily = _DailyMrr(len(days))
        cohorts = _Cohorts(days)
        current: dict[str, Decimal] = defaultdict(Decimal)
        window = (clock - EVENT_RETENTION_DAYS * DAY, clock)
        for _, plan in store.iter_plans(self.spec.workspace, SOURCE, "customer"):
            life = CustomerLife(self.world, plan, events=window, track_mrr=True).run(clock)
            cus = life.customer
            counts["customers"] += not cus.deleted
            counts["subscriptions"] += len(life.subs)
            counts["subscription_items"] += sum(len(sub.items) for sub in life.subs)
            counts["invoices"] += len(life.invoices)
            counts["events"] += life.events_in_window
            for inv in life.invoices:
                counts["invoice_lines"] += len(inv.lines)
                cur = sums[cus.currency]
                cur["invoice_total"] += inv.total
                cur["invoice_subtotal"] += inv.subtotal
                cur["invoice_amount_paid"] += inv.amount_paid
                cur["invoice_amount_due"] += inv.amount_due
                cur["invoice_tax"] += inv.tax
                cur["line_amount"] += sum(line.amount for line in inv.lines)
            daily.add_customer(life.mrr_points, ends, cus.currency)
            cohorts.add_customer(life.mrr_points, ends)
            if life.mrr_points:
                current[cus.currency] += life.mrr_points[-1][1]
        catalog = self.world.catalog
        counts["products"] = len(catalog.products)
        counts["prices"] = len(catalog.prices)
        counts["coupons"] = len(catalog.coupons)
        if window[0] <= catalog.created:
            counts["events"] += len(catalog.products) + len(catalog.prices) + len(catalog.coupons)
        reporting = self.spec.currency
        today = local_date(clock, tz)
        by_currency = {cur: to_major(amount, cur) for cur, amount in sorted(current.items())}
        total = sum((ecb.convert(store, amount, cur, reporting, today) for cur, amount in by_currency.items()),
                    Decimal(0))
        daily_rows, totals, by_currency_daily = daily.rows(days, reporting, store)
        return {
            "counts": dict(sorted(counts.items())),
            "sums": {cur: dict(sorted(values.items())) for cur, values in sorted(sums.items())},
            "mrr": {
                "reporting_currency": reporting,
                "current": {"by_currency": {cur: _money(v) for cur, v in by_currency.items()},
                            "mrr": _money(total)},
                "totals": {name: _money(value) for name, value in totals.items()},
                "daily": daily_rows,
                # each day's MRR in each billing currency: what the reporting figures convert
                "daily_by_currency": by_currency_daily,
            },
            "cohorts": cohorts.rows(),
        }

    # -- signups ----------------------------------------------------------------------------------

    def _shape(self, day: date) -> float:
        """Relative signup rate of a day: growth × weekly × yearly seasonality."""
        growth = YEARLY_GROWTH ** ((day - self.start).days / 365)
        weekly = 0.6 if day.weekday() >= 5 else 1.0
        yearly = 1 + 0.15 * math.cos(2 * math.pi * (day.timetuple().tm_yday - 15) / 365.25)
        return growth * weekly * yearly

    def _signups(self, day: date) -> list[dict[str, Any]]:
        """The plans of everyone who signs up on local `day`, in signup-time order."""
        r = rng(self.seed, self.spec.workspace, "signups", day.isoformat())
        rate = self.base_rate * self._shape(day)
        count = _poisson(r, rate)
        extra = _poisson(r, rate * CAMPAIGN["extra"]) if day in self.campaign_days else 0
        midnight = local_midnight(day, self.spec.timezone)
        length = local_midnight(day + timedelta(days=1), self.spec.timezone) - midnight
        plans = []
        for index in range(count + extra):
            plan: dict[str, Any] = {"key": [day.isoformat(), index],
                                    "created": midnight + r.randrange(length)}
            if index >= count:
                plan.update(currency=CAMPAIGN["currency"], campaign=True)
            plans.append(plan)
        return sorted(plans, key=lambda p: (p["created"], p["key"][1]))

    def _new_lives(self, since: int, until: int, window: tuple[int, int]) -> Iterator[CustomerLife]:
        tz = self.spec.timezone
        for day in self._days(max(self.start, local_date(since, tz)), local_date(until, tz)):
            for plan in self._signups(day):
                if since < plan["created"] <= until:
                    life = CustomerLife(self.world, plan, events=window, render=self.renderer.render)
                    yield life.run(until)

    @staticmethod
    def _days(first: date, last: date) -> Iterator[date]:
        for offset in range((last - first).days + 1):
            yield first + timedelta(days=offset)

    # -- writing ----------------------------------------------------------------------------------

    def _catalog_bodies(self, redeemed: Counter[str]) -> Iterator[tuple[str, dict[str, Any]]]:
        catalog = self.world.catalog
        for body in catalog.products.values():
            yield "product", body
        for price in catalog.prices.values():
            yield "price", price.body
        for coupon in catalog.coupons.values():
            yield "coupon", catalog.coupon_body(coupon, redeemed[coupon.id])

    def _write_catalog(self, writer: _Writer, window: tuple[int, int]) -> None:
        """Write the catalog (coupons with the redemptions the writer saw) and its creation events."""
        created = self.world.catalog.created
        for kind, body in self._catalog_bodies(writer.redeemed):
            writer.add(kind, body["id"], created, writer.last_redeemed.get(body["id"], created), body)
            if window[0] <= created <= window[1]:
                writer.event(catalog_event(self.world, kind, dict(body, times_redeemed=0) if kind == "coupon"
                                           else body))

    def _write_life(self, writer: _Writer, life: CustomerLife, since: int | None) -> None:
        """Write the customer's objects changed after `since` (all if None), its events and its plan."""
        render = self.renderer
        cus = life.customer
        changed = (lambda obj: True) if since is None else (lambda obj: obj.updated > since)
        if changed(cus):
            writer.add("customer", cus.id, cus.created, cus.updated, render.customer(cus),
                       deleted=cus.deleted)
        for discount in life.discounts:
            if changed(discount):
                writer.add("discount", discount.id, discount.start, discount.updated,
                           render.discount(discount))
        for sub in life.subs:
            if changed(sub):
                writer.add("subscription", sub.id, sub.created, sub.updated, render.subscription(sub))
        for inv in life.invoices:
            if changed(inv):
                writer.add("invoice", inv.id, inv.created, inv.updated, render.invoice(inv))
        for event in life.events:
            writer.event(render.event(cus.id, event))
        writer.plan(cus.id, life.next_due, life.plan)
        for when, coupon in life.redemptions:
            if since is None or when > since:
                writer.redeemed[coupon] += 1
                writer.last_redeemed[coupon] = max(when, writer.last_redeemed.get(coupon, when))


class _Writer:
    """Buffers store rows and plans and writes them in batches, counting rows by kind."""

    def __init__(self, store: SandboxStore, workspace: str):
        self.store, self.workspace = store, workspace
        self.rows: list[tuple] = []
        self.plans: list[tuple] = []
        self.counts: Counter[str] = Counter()
        self.redeemed: Counter[str] = Counter()  # coupon redemptions among the customers written
        self.last_redeemed: dict[str, int] = {}

    def add(self, kind: str, obj_id: str, created: int, updated: int, body: dict[str, Any],
            deleted: bool = False) -> None:
        self.rows.append((self.workspace, SOURCE, kind, obj_id, created, updated, deleted, body))
        self.counts[kind] += 1
        if len(self.rows) >= BATCH_ROWS:
            self.flush()

    def event(self, body: dict[str, Any]) -> None:
        self.add("event", body["id"], body["created"], body["created"], body)

    def plan(self, customer_id: str, next_due: int | None, plan: dict[str, Any]) -> None:
        self.plans.append((self.workspace, SOURCE, "customer", customer_id, next_due, plan))

    def flush(self) -> None:
        if self.rows:
            self.store.put_many(self.rows)
            self.rows = []
        if self.plans:
            self.store.put_plans(self.plans)
            self.plans = []


class _Cohorts:
    """Customers by first paid month (the local day their day-end MRR first rose above 0), and how
    many of each cohort pay at the end of each month since (the last day so far for the current
    month), from the same day-end MRR as `_DailyMrr`."""

    def __init__(self, days: list[date]):
        self.days = days
        # the index of each month's last day in `days`, by month since the first day's
        self.month_ends: dict[int, int] = {self._month(day): index for index, day in enumerate(days)}
        self.cohorts: dict[int, dict[str, Any]] = {}

    @staticmethod
    def _month(day: date) -> int:
        return day.year * 12 + day.month - 1

    def add_customer(self, points: list[tuple[int, Decimal, int]], ends: list[int]) -> None:
        day_end: dict[int, Decimal] = {}
        for when, mrr, _ in points:
            day_end[bisect.bisect_right(ends, when)] = mrr
        changes = sorted((day, mrr) for day, mrr in day_end.items() if day < len(self.days))
        first = next((day for day, mrr in changes if mrr > 0), None)
        if first is None:  # never paid by a day's end: no movement, no cohort
            return
        start = self._month(self.days[first])
        last = max(self.month_ends)
        cohort = self.cohorts.setdefault(start, {"customers": 0, "active": [0] * (last - start + 1)})
        cohort["customers"] += 1
        for month in range(start, last + 1):
            at_end = [mrr for day, mrr in changes if day <= self.month_ends[month]]
            cohort["active"][month - start] += bool(at_end) and at_end[-1] > 0

    def rows(self) -> dict[str, dict[str, Any]]:
        """{"YYYY-MM": {"customers": n, "active": [paying at the end of month 0, 1, ...]}}."""
        return {f"{month // 12}-{month % 12 + 1:02d}": cohort for month, cohort in sorted(self.cohorts.items())}


class _DailyMrr:
    """Per-day MRR, movements and active counts, built from each customer's MRR change points."""

    def __init__(self, days: int):
        self.days = days
        self.mrr_delta: dict[tuple[int, str], Decimal] = defaultdict(Decimal)
        self.moves: dict[tuple[str, int, str], Decimal] = defaultdict(Decimal)
        self.subs_delta = [0] * days
        self.customers_delta = [0] * days

    def add_customer(self, points: list[tuple[int, Decimal, int]], ends: list[int], currency: str) -> None:
        """Compare the customer's MRR at the end of consecutive local days and classify each change."""
        day_end: dict[int, tuple[Decimal, int]] = {}
        for when, mrr, active in points:
            day_end[bisect.bisect_right(ends, when)] = (mrr, active)
        previous, previous_active, ever_paid = Decimal(0), 0, False
        for day in sorted(day_end):
            if day >= self.days:
                break
            mrr, active = day_end[day]
            if mrr != previous:
                if previous == 0:
                    kind = "reactivation" if ever_paid else "new"
                elif mrr == 0:
                    kind = "churn"
                else:
                    kind = "expansion" if mrr > previous else "contraction"
                # contraction and churn are amounts lost: positive (docs/metrics.md)
                self.moves[(kind, day, currency)] += abs(mrr - previous)
                self.mrr_delta[(day, currency)] += mrr - previous
            self.subs_delta[day] += active - previous_active
            self.customers_delta[day] += (active > 0) - (previous_active > 0)
            ever_paid = ever_paid or mrr > 0
            previous, previous_active = mrr, active

    def rows(self, days: list[date], reporting: str, store: SandboxStore) -> tuple[
            dict[str, dict[str, Any]], dict[str, Decimal], dict[str, dict[str, str]]]:
        """Daily rows in the reporting currency (converted at each day's ECB rate), movement totals,
        and each day's MRR in each billing currency."""
        currencies = sorted({cur for _, cur in self.mrr_delta} | {cur for _, _, cur in self.moves})
        running = {cur: Decimal(0) for cur in currencies}
        subs = customers = 0
        totals = {name: Decimal(0) for name in MOVEMENTS}
        out: dict[str, dict[str, Any]] = {}
        by_currency: dict[str, dict[str, str]] = {}
        for index, day in enumerate(days):
            row: dict[str, Any] = {}
            mrr = Decimal(0)
            for cur in currencies:
                running[cur] += self.mrr_delta.get((index, cur), 0)
                mrr += _convert(store, running[cur], cur, reporting, day)
            row["mrr"] = _money(mrr)
            for name in MOVEMENTS:
                value = sum((_convert(store, self.moves[(name, index, cur)], cur, reporting, day)
                             for cur in currencies if (name, index, cur) in self.moves), Decimal(0))
                totals[name] += value
                row[name] = _money(value)
            subs += self.subs_delta[index]
            customers += self.customers_delta[index]
            row["active_subscriptions"], row["active_customers"] = subs, customers
            out[day.isoformat()] = row
            by_currency[day.isoformat()] = {cur: str(to_major(running[cur], cur)) for cur in currencies}
        return out, totals, by_currency


def _convert(store: SandboxStore, minor: Decimal, currency: str, reporting: str, day: date) -> Decimal:
    return ecb.convert(store, to_major(minor, currency), currency, reporting, day) if minor else Decimal(0)


def _money(value: Decimal) -> str:
    return str(value.quantize(CENT, rounding=ROUND_HALF_UP))


def _poisson(r: Any, mean: float) -> int:
    """A Poisson draw (Knuth's method; a rounded normal for large means)."""
    if mean > 40:
        return max(0, round(r.gauss(mean, math.sqrt(mean))))
    limit, count, product = math.exp(-mean), 0, r.random()
    while product > limit:
        count += 1
        product *= r.random()
    return count

