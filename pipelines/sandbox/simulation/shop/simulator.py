"""The Shopify store simulator: a seeded ecommerce business, day by day, as Admin GraphQL nodes.

Each local day is decided from a random stream keyed by the day (so it does not depend on where the
clock stops): how many orders, who places them, what they buy, which discounts apply, and every
later change to each order (cancellation, fulfillment, tag edit, refunds). Changes due by the
clock are applied before the order is written; the rest become a plan that `advance` applies later.
The only state carried between days is small (counters and a capped pool of past buyers) and is
kept in the store, so `advance` continues exactly where `generate` stopped.

docs/simulator-ecommerce.md describes the behaviours, the object shapes and the truth definitions.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from itertools import accumulate
from typing import Any

from pipelines.sandbox.core import accounts
from pipelines.sandbox.simulation.shop.catalog import Catalog, Product, ascii_fold
from pipelines.sandbox.simulation.shop.orders import (
    Discount,
    Ids,
    LineDraft,
    Money,
    OrderDraft,
    apply_change,
    bag_cents,
    build_order,
    cents,
    iso,
)
from pipelines.sandbox.simulation.shop.truth import shop_truth
from pipelines.sandbox.simulation.shop.world import (
    GREEN_BR,
    HOURLY,
    Sale,
    country,
    country_weights,
    flavor_for,
    holiday_multiplier,
    is_busy,
    sales_on,
    yearly_wave,
)
from pipelines.sandbox.simulation.simulator import (
    HISTORY_DAYS,
    BusinessSpec,
    Progress,
    local_date,
    local_midnight,
    parse_iso,
    rng,
)
from pipelines.sandbox.core.store import SandboxStore

SOURCE = "shopify"
STATE_KIND, STATE_ID = "state", "simulation"  # the plans row that carries state between runs

# Shares of orders (or of buyers) with each behaviour.
TEST_ORDER_RATE = 0.005
CANCEL_RATE = 0.02
TAG_EDIT_RATE = 0.05
REFUND_RATE = 0.065
PARTIAL_REFUND_SHARE = 0.55  # of refunded orders with more than one unit
SECOND_REFUND_RATE = 0.2  # of partially refunded orders
NEW_ACCOUNT_RATE = 0.62  # new buyers who create an account (the rest check out as guests)
GUEST_SIGNUP_RATE = 0.35  # returning guests who create an account with the same email
RETURNING_SHARE_START, RETURNING_SHARE_GROWTH = 0.12, 0.26  # ramps up over the first year
WELCOME_CODE_RATE = 0.12
FIXED_CODE_RATE = 0.03
DRAFT_ORDER_RATE = 0.03
EXPEDITED_RATE = 0.12
DEFAULT_POOL_CAP = 100_000  # buyers who may come back; bounds memory on the large store
FLUSH_ROWS = 1500  # objects buffered before a write (~30 KB of Python objects each): bounds memory

LINE_COUNTS, LINE_COUNT_CUM = (1, 2, 3, 4), tuple(accumulate((60, 25, 10, 5)))
QUANTITIES, QUANTITY_CUM = (1, 2, 3), tuple(accumulate((80, 15, 5)))
CANCEL_REASONS, CANCEL_REASON_WEIGHTS = ("CUSTOMER", "FRAUD", "INVENTORY", "DECLINED"), (45, 25, 20, 10)
ORDER_TAGS = ("gift", "priority", "reviewed", "wholesale-inquiry")
HOURLY_CUM = tuple(accumulate(HOURLY))
MARKETING_STATES = ("SUBSCRIBED",) * 4 + ("NOT_SUBSCRIBED",) * 5 + ("UNSUBSCRIBED",)
CUSTOMER_STATES = ("ENABLED",) * 8 + ("DISABLED", "INVITED")

# Injected anomalies: (kind, days before the end of history, length in days).
OUTDOOR_ANOMALIES = (("product_spike", 9, 2), ("outage", 40, 2), ("winback", 150, 1))
GREEN_BR_ANOMALIES = (("refund_spike", 30, 2), ("product_spike", 90, 2))
OUTAGE_DROP = 0.85  # share of home-country orders lost during the checkout outage
SPIKE_EXTRA_ORDERS = 0.8  # flash-sale orders of the product, as a share of the day's usual orders
SPIKE_QUANTITY = 2  # units of the product in each flash-sale order
SPIKE_DISCOUNT_PERCENT = 30.0
WINBACK_FACTOR = 2.5  # returning buyers' orders on the win-back email day
DEFECT_REFUND_RATE = 0.12  # orders of the defective product refunded during the refund spike
DEFECT_ORDER_WINDOW = (30, 5)  # orders placed between 30 and 5 days before the spike are affected

NORMAL, SPIKE, WINBACK = 0, 1, 2  # why a checkout session happened


def _weighted_index(draw: random.Random, cumulative: tuple[float, ...] | list[float]) -> int:
    """An index drawn by cumulative weights: what `random.choices` does, without its per-call overhead."""
    return bisect.bisect(cumulative, draw.random() * cumulative[-1])


def _mix64(value: int) -> int:
    """SplitMix64's finaliser: a fast, well-spread 64-bit hash of an integer."""
    value = (value + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return value ^ (value >> 31)


@dataclass(frozen=True)
class Person:
    """A buyer, derived from their number alone; identified across orders by their email."""

    number: int
    first: str
    last: str
    email: str
    typed_email: str  # what they type at guest checkout: sometimes with capitals
    region: int
    marketing: str
    state: str


@dataclass(frozen=True)
class Injected:
    """One injected anomaly and the dates it covers (local days, inclusive)."""

    kind: str
    start: date
    days: int
    product_index: int | None

    @property
    def end(self) -> date:
        return self.start + timedelta(days=self.days - 1)

    def covers(self, day: date) -> bool:
        return self.start <= day <= self.end


@dataclass
class State:
    """What carries over from one simulated day to the next."""

    next_day: date
    next_seq: int = 1
    next_person: int = 1
    pool: list[list[int]] = field(default_factory=list)  # [person, country index, has account]

    def to_json(self) -> dict[str, Any]:
        return {"next_day": self.next_day.isoformat(), "next_seq": self.next_seq,
                "next_person": self.next_person, "pool": self.pool}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "State":
        return cls(date.fromisoformat(data["next_day"]), data["next_seq"], data["next_person"], data["pool"])


class ShopSimulator:
    """A Shopify store: orders, products and customers over time (the `BusinessSimulator` protocol)."""

    def __init__(self, spec: BusinessSpec, *, seed: int, start: date, size: str):
        self.spec = spec
        self.seed = seed
        self.start = start
        self.size = size
        self.flavor = flavor_for(spec.currency)
        self.history_days = int(spec.scale.get("history_days", HISTORY_DAYS))
        self.countries: list[str] = list(spec.scale.get("countries", ["US"]))
        self.country_cum = list(accumulate(country_weights(self.countries)))
        self.pool_cap = int(spec.scale.get("customer_pool", DEFAULT_POOL_CAP))
        digest = hashlib.blake2b(spec.workspace.encode(), digest_size=4).digest()
        self.ids = Ids(int.from_bytes(digest, "big") % 900)
        self.money = Money(spec.currency)
        self.person_salt = int.from_bytes(
            hashlib.blake2b(f"{seed}|{spec.workspace}|person".encode(), digest_size=8).digest(), "big")
        self.injected = self._place_anomalies()

    # -- protocol ---------------------------------------------------------------------------------

    def account(self) -> dict[str, Any]:
        return accounts.shopify_account(self.spec.workspace, self.spec.name, self.spec.currency, self.spec.timezone)

    def generate(self, store: SandboxStore, until: int, progress: Progress) -> None:
        """Simulate from the first day to `until`, writing each day's objects in their state at `until`."""
        run = _Run(self, store, until, State(next_day=self.start), self._catalog_before(self.start), count=False)
        run.simulate_days(progress)
        self._save_state(store, run.state)

    def advance(self, store: SandboxStore, since: int, until: int) -> dict[str, int]:
        """Apply the plans due by `until`, then simulate the days not simulated yet."""
        state = self._load_state(store)
        run = _Run(self, store, until, state, self._catalog_before(state.next_day), count=True)
        run.apply_plans()
        run.simulate_days(lambda _: None)
        self._save_state(store, state)
        return {kind: len(ids) for kind, ids in run.written.items()}

    def truth(self, store: SandboxStore) -> dict[str, Any]:
        return shop_truth(store, self.spec.workspace, self.spec.timezone, self.start, self.spec.currency)

    def anomalies(self) -> list[dict[str, Any]]:
        catalog = self._catalog_before(self.start)
        home = self.countries[0]
        found = []
        for anomaly in self.injected:
            product = catalog.products[anomaly.product_index].title if anomaly.product_index is not None else None
            metric, direction, dimension, value, description = {
                "outage": ("orders", "down", "country", home,
                           f"Checkout outage in {home}: about {OUTAGE_DROP:.0%} of {home} orders lost"),
                "product_spike": ("units", "up", "product", product,
                                  f"Flash sale ({SPIKE_DISCOUNT_PERCENT:.0f}% off) on {product}: "
                                  f"{SPIKE_EXTRA_ORDERS:.0%} more orders than usual, each for "
                                  f"{SPIKE_QUANTITY} of it"),
                "winback": ("orders", "up", "customer_type", "returning",
                            f"Win-back email: returning customers' orders about {WINBACK_FACTOR}x normal"),
                "refund_spike": ("refunds", "up", "product", product,
                                 f"Defective batch of {product}: about {DEFECT_REFUND_RATE:.0%} of its recent "
                                 "orders refunded"),
            }[anomaly.kind]
            found.append({
                "workspace": self.spec.workspace,
                "metric": metric,
                "start": anomaly.start.isoformat(),
                "end": anomaly.end.isoformat(),
                "direction": direction,
                "dimension": dimension,
                "value": value,
                "description": description,
            })
        return found

    # -- the business model -------------------------------------------------------------------------

    def expected_orders(self, day: date) -> float:
        """Mean orders on `day`: growth (about ×1.8 over two years) × weekly × yearly × holidays."""
        age = (day - self.start).days
        level = float(self.spec.scale.get("orders_per_day", 60)) * 0.55 * 1.8 ** (age / 730)
        return (level * self.flavor.weekly[day.weekday()] * yearly_wave(self.flavor, day)
                * holiday_multiplier(self.flavor, day))

    def returning_share(self, day: date) -> float:
        """Chance that a checkout comes from an earlier buyer: low at opening, higher after a year."""
        return RETURNING_SHARE_START + RETURNING_SHARE_GROWTH * min(1.0, (day - self.start).days / 365)

    def anomaly(self, kind: str, day: date) -> Injected | None:
        return next((a for a in self.injected if a.kind == kind and a.covers(day)), None)

    def person(self, number: int) -> Person:
        h = _mix64(self.person_salt ^ number)

        def pick(options: tuple) -> Any:
            nonlocal h
            h, index = divmod(h, len(options))
            return options[index]

        first = pick(self.flavor.first_names)
        last = pick(self.flavor.last_names)
        domain = pick(("com", "net", "org"))
        local = f"{ascii_fold(first)}.{ascii_fold(last)}{number}"
        capitals = pick(range(8)) == 0
        return Person(
            number=number,
            first=first,
            last=last,
            email=f"{local.lower()}@example.{domain}",
            typed_email=f"{local}@Example.{domain}" if capitals else f"{local.lower()}@example.{domain}",
            region=pick(range(64)),
            marketing=pick(MARKETING_STATES),
            state=pick(CUSTOMER_STATES),
        )

    def customer_body(self, person: Person, country_code: str, created: int) -> dict[str, Any]:
        """A customer account created at checkout: no orders counted yet."""
        place = country(self.flavor, country_code)
        region = place.regions[person.region % len(place.regions)]
        number = self.ids.customer(person.number)
        return {
            "id": self.ids.gid("Customer", number),
            "legacyResourceId": str(number),
            "createdAt": iso(created),
            "updatedAt": iso(created),
            "firstName": person.first,
            "lastName": person.last,
            "displayName": f"{person.first} {person.last}",
            "email": person.email,
            "defaultEmailAddress": {"emailAddress": person.email, "marketingState": person.marketing},
            "state": person.state,
            "tags": [],
            "verifiedEmail": person.state != "INVITED",
            "locale": self.flavor.locale,
            "numberOfOrders": "0",
            "amountSpent": self.money.v2(0),
            "defaultAddress": {
                "id": self.ids.gid("MailingAddress", self.ids.customer_address(person.number)),
                "city": region.city,
                "provinceCode": region.province,
                "countryCodeV2": country_code,
                "zip": region.zip,
            },
        }

    # -- internals ----------------------------------------------------------------------------------

    def _catalog_before(self, day: date) -> Catalog:
        """The catalogue as it stood at the end of the day before `day`."""
        catalog = Catalog.build(self.spec, self.flavor, self.seed, self.start, self.history_days, self.ids)
        replay = self.start
        while replay < day:
            catalog.open_day(replay)
            replay += timedelta(days=1)
        return catalog

    def _place_anomalies(self) -> list[Injected]:
        """Anomalies at fixed offsets before the end of history, moved earlier off holidays and sales."""
        plan = GREEN_BR_ANOMALIES if self.flavor is GREEN_BR else OUTDOOR_ANOMALIES
        end = self.start + timedelta(days=self.history_days)
        catalog = Catalog.build(self.spec, self.flavor, self.seed, self.start, self.history_days, self.ids)
        ranked = catalog.by_popularity(self.start)
        product_rank = {"product_spike": 4, "refund_spike": 1}
        taken: list[date] = []
        placed = []
        for kind, offset, days in plan:
            first = end - timedelta(days=offset)
            while (any(is_busy(self.flavor, first + timedelta(days=k)) for k in range(-2, days + 2))
                   or any(abs((first - other).days) < 10 for other in taken)):
                first -= timedelta(days=1)
            if first < self.start + timedelta(days=DEFECT_ORDER_WINDOW[0] + 7):
                continue  # too early in a short history to have a baseline
            taken.append(first)
            rank = product_rank.get(kind)
            index = ranked[min(rank, len(ranked) - 1)].index if rank is not None else None
            placed.append(Injected(kind, first, days, index))
        return sorted(placed, key=lambda a: a.start)

    def _load_state(self, store: SandboxStore) -> State:
        data = store.get_plan(self.spec.workspace, SOURCE, STATE_KIND, STATE_ID)
        if data is None:
            raise RuntimeError(f"{self.spec.workspace}: no simulation state in {store.path}; generate first")
        return State.from_json(data)

    def _save_state(self, store: SandboxStore, state: State) -> None:
        store.put_plans([(self.spec.workspace, SOURCE, STATE_KIND, STATE_ID, None, state.to_json())])


@dataclass(frozen=True)
class _DayContext:
    """What holds for every checkout of one day."""

    sales: list[Sale]
    spike_product: Product | None
    outage: bool
    defect: tuple[Product, int, int] | None
    returning_share: float


class _CustomerBook:
    """Customers touched in one batch: new accounts plus order-count and spend changes, written once."""

    def __init__(self, store: SandboxStore, workspace: str, money: Money):
        self.store = store
        self.workspace = workspace
        self.money = money
        self.new: dict[str, dict[str, Any]] = {}
        self.deltas: dict[str, list[int]] = {}  # gid -> [orders, amount, latest time]

    def create(self, body: dict[str, Any]) -> None:
        self.new[body["id"]] = body

    def record(self, gid: str, orders: int, amount: int, at: int) -> None:
        delta = self.deltas.setdefault(gid, [0, 0, 0])
        delta[0] += orders
        delta[1] += amount
        delta[2] = max(delta[2], at)

    def flush(self) -> list[str]:
        """Write every touched customer; returns their ids."""
        stored = self.store.get_many(self.workspace, SOURCE, "customer", [g for g in self.deltas if g not in self.new])
        rows = []
        for gid, (orders, amount, at) in self.deltas.items():
            body = self.new[gid] if gid in self.new else stored[gid].body
            count = int(body["numberOfOrders"]) + orders
            body["numberOfOrders"] = str(count)
            body["amountSpent"] = self.money.v2(cents(body["amountSpent"]["amount"], self.money.digits) + amount)
            if count >= 5 and "vip" not in body["tags"]:
                body["tags"] = sorted([*body["tags"], "vip"])
            updated = max(parse_iso(body["updatedAt"]), at)
            body["updatedAt"] = iso(updated)
            rows.append((self.workspace, SOURCE, "customer", gid, parse_iso(body["createdAt"]), updated, False, body))
        self.store.put_many(rows)
        touched = list(self.deltas)
        self.new.clear()
        self.deltas.clear()
        return touched


class _Run:
    """One generate or advance pass: simulates days and applies plans up to `until`."""

    def __init__(self, sim: ShopSimulator, store: SandboxStore, until: int, state: State, catalog: Catalog, *,
                 count: bool):
        self.sim = sim
        self.store = store
        self.until = until
        self.state = state
        self.catalog = catalog
        self.workspace = sim.spec.workspace
        self.tz = sim.spec.timezone
        self.money = sim.money
        self.customers = _CustomerBook(store, self.workspace, self.money)
        self.rows: list[tuple] = []
        self.plans: list[tuple] = []
        self.count = count  # only `advance` reports what it wrote; generate would hold a million ids
        self.written: dict[str, set[str]] = {"order": set(), "customer": set(), "product": set()}

    # -- batches ------------------------------------------------------------------------------------

    def flush(self) -> None:
        """Write the buffered objects and plans in one transaction."""
        with self.store.transaction():
            customers = self.customers.flush()
            self.store.put_many(self.rows)
            self.store.put_plans(self.plans)
        if self.count:
            self.written["customer"].update(customers)
            for row in self.rows:
                self.written[row[2]].add(row[3])
        self.rows.clear()
        self.plans.clear()

    def plan(self, gid: str, due: int | None, payload: dict[str, Any]) -> None:
        self.plans.append((self.workspace, SOURCE, "order", gid, due, payload))

    # -- plans ----------------------------------------------------------------------------------------

    def apply_plans(self, batch: int = 2000) -> None:
        """Apply every planned change due by `until`: orders placed late on the last day, fulfillments,
        cancellations, tag edits and refunds of earlier orders."""
        due = [(gid, plan) for kind, gid, plan in self.store.due_plans(self.workspace, SOURCE, self.until)
               if kind == "order"]
        for first in range(0, len(due), batch):
            chunk = due[first:first + batch]
            stored = self.store.get_many(self.workspace, SOURCE, "order", [g for g, p in chunk if "order" not in p])
            for gid, plan in chunk:
                if "order" in plan:
                    self.place(plan["order"], plan["changes"], plan.get("new_customer"), planned=True)
                else:
                    order = stored[gid]
                    self.settle(order.body, plan["changes"], order.created, order.updated, planned=True)
            self.flush()

    # -- days -----------------------------------------------------------------------------------------

    def simulate_days(self, progress: Progress) -> None:
        last = local_date(self.until, self.tz)
        orders_before = self.state.next_seq
        while self.state.next_day <= last:
            day = self.state.next_day
            self.simulate_day(day)
            if len(self.rows) >= FLUSH_ROWS:
                self.flush()
            self.state.next_day = day + timedelta(days=1)
            if (day - self.sim.start).days % 30 == 29:
                progress(f"{self.workspace}: simulated to {day} "
                         f"({self.state.next_seq - orders_before} orders so far)")
        self.flush()

    def simulate_day(self, day: date) -> None:
        sim = self.sim
        for product in self.catalog.open_day(day):
            self.rows.append((self.workspace, SOURCE, "product", product.gid, product.created, product.updated,
                              False, product.body(self.money)))
        draw = rng(sim.seed, self.workspace, "day", day.isoformat())
        midnight = local_midnight(day, self.tz)
        day_seconds = local_midnight(day + timedelta(days=1), self.tz) - midnight
        expected = sim.expected_orders(day)
        sessions = [NORMAL] * max(0, round(draw.gauss(expected, math.sqrt(expected))))
        spike = sim.anomaly("product_spike", day)
        spike_product = self.catalog.products[spike.product_index] if spike else None
        if spike_product is not None:
            sessions += [SPIKE] * round(SPIKE_EXTRA_ORDERS * expected)
        if sim.anomaly("winback", day):
            sessions += [WINBACK] * round((WINBACK_FACTOR - 1) * expected * sim.returning_share(day))
        timed = sorted(
            (midnight + int((_weighted_index(draw, HOURLY_CUM) * 3600 + draw.random() * 3600)
                            * day_seconds / 86400), reason)
            for reason in sessions
        )
        context = _DayContext(
            sales=sales_on(sim.flavor, day),
            spike_product=spike_product,
            outage=sim.anomaly("outage", day) is not None,
            defect=self._defect_for(day),
            returning_share=sim.returning_share(day),
        )
        newcomers: list[list[int]] = []
        for at, reason in timed:
            self.checkout(draw, context, at, reason, newcomers)
        for entry in newcomers:  # new buyers may come back from tomorrow on
            if len(self.state.pool) < sim.pool_cap:
                self.state.pool.append(entry)
            else:
                self.state.pool[draw.randrange(sim.pool_cap)] = entry

    def _defect_for(self, day: date) -> tuple[Product, int, int] | None:
        """The defective product, and when its refunds happen, if orders placed on `day` are affected."""
        for anomaly in self.sim.injected:
            if anomaly.kind == "refund_spike":
                placed_from = anomaly.start - timedelta(days=DEFECT_ORDER_WINDOW[0])
                placed_to = anomaly.start - timedelta(days=DEFECT_ORDER_WINDOW[1])
                if placed_from <= day < placed_to:
                    begins = local_midnight(anomaly.start, self.tz)
                    ends = local_midnight(anomaly.end + timedelta(days=1), self.tz)
                    return self.catalog.products[anomaly.product_index], begins, ends
        return None

    def checkout(self, draw: random.Random, ctx: _DayContext, at: int, reason: int,
                 newcomers: list[list[int]]) -> None:
        """One checkout session: decide the buyer, the cart and the order's future, then place it."""
        sim = self.sim
        state = self.state
        test = draw.random() < TEST_ORDER_RATE
        person = None
        customer_gid = None
        signup = False
        first_order = False
        if test:
            country_index = 0
        else:
            returning = bool(state.pool) and (reason == WINBACK or draw.random() < ctx.returning_share)
            entry = state.pool[draw.randrange(len(state.pool))] if returning else None
            country_index = entry[1] if entry else _weighted_index(draw, sim.country_cum)
            if ctx.outage and country_index == 0 and draw.random() < OUTAGE_DROP:
                return  # the checkout failed: no order
            if entry is None:
                signup = draw.random() < NEW_ACCOUNT_RATE
                first_order = True
                entry = [state.next_person, country_index, int(signup)]
                state.next_person += 1
                newcomers.append(entry)
            elif not entry[2] and draw.random() < GUEST_SIGNUP_RATE:
                signup = True
                entry[2] = 1
            person = sim.person(entry[0])
            if entry[2]:
                customer_gid = sim.ids.gid("Customer", sim.ids.customer(person.number))
        code = sim.countries[country_index]
        place = country(sim.flavor, code)

        products = self.catalog.pick(draw, LINE_COUNTS[_weighted_index(draw, LINE_COUNT_CUM)])
        if reason == SPIKE:
            extra = self.catalog.pick(draw, 1) if draw.random() < 0.3 else []
            products = [ctx.spike_product] + [p for p in extra if p is not ctx.spike_product]
        lines = []
        for product in products:
            variant = product.variants[draw.randrange(len(product.variants))]
            quantity = SPIKE_QUANTITY if reason == SPIKE and product is ctx.spike_product else \
                QUANTITIES[_weighted_index(draw, QUANTITY_CUM)]
            lines.append(LineDraft(product.gid, variant.gid, product.title, variant.option_value, variant.sku,
                                   product.vendor, variant.price, quantity))

        discounts = [] if test else self._discounts(draw, ctx, lines, first_order)
        rates = place.rates
        shipping = rates[1] if len(rates) > 1 and draw.random() < EXPEDITED_RATE else rates[0]
        source = "shopify_draft_order" if draw.random() < DRAFT_ORDER_RATE else "web"
        cancelled = not test and draw.random() < CANCEL_RATE
        seq = state.next_seq
        state.next_seq += 1
        draft = OrderDraft(
            seq=seq,
            number=1000 + seq,
            created=at,
            email=f"qa@{self.workspace}.example" if person is None else
            person.email if customer_gid else person.typed_email,
            customer_gid=customer_gid,
            country=code,
            region=place.regions[person.region % len(place.regions)] if person else place.regions[0],
            lines=tuple(lines),
            discounts=tuple(discounts),
            shipping=shipping,
            tax_shipping=place.tax_shipping,
            test=test,
            source=source,
            authorized_only=cancelled,
        )
        body = build_order(draft, sim.ids, self.money)
        changes = [] if test else self._future(draw, draft, ctx, cancelled)
        new_customer = sim.customer_body(person, code, at) if signup else None
        self.place(body, changes, new_customer, planned=False)

    def _discounts(self, draw: random.Random, ctx: _DayContext, lines: list[LineDraft],
                   first_order: bool) -> list[Discount]:
        """Product flash sale first, then sitewide sales, then at most one code."""
        flavor = self.sim.flavor
        found = []
        if ctx.spike_product is not None and any(line.product_gid == ctx.spike_product.gid for line in lines):
            found.append(Discount(f"Flash Sale: {ctx.spike_product.title}", True, SPIKE_DISCOUNT_PERCENT,
                                  product_gid=ctx.spike_product.gid))
        for sale in ctx.sales:
            if sale.automatic or draw.random() < sale.usage:
                found.append(Discount(sale.title, sale.automatic, sale.percent))
        if any(not d.automatic for d in found):
            return found
        if first_order and draw.random() < WELCOME_CODE_RATE:
            found.append(Discount(flavor.welcome_code, False, 10.0))
        elif draw.random() < FIXED_CODE_RATE and \
                sum(line.unit * line.quantity for line in lines) >= flavor.fixed_code_minimum_cents:
            found.append(Discount(flavor.fixed_code, False, fixed=flavor.fixed_code_cents))
        return found

    def _future(self, draw: random.Random, draft: OrderDraft, ctx: _DayContext,
                cancelled: bool) -> list[dict[str, Any]]:
        """Everything that will happen to the order later, in time order."""
        at = draft.created
        if cancelled:
            reason = draw.choices(CANCEL_REASONS, weights=CANCEL_REASON_WEIGHTS)[0]
            return [{"at": at + draw.randrange(1200, 36 * 3600), "type": "cancel", "reason": reason}]
        fulfilled = at + draw.randrange(86400, 4 * 86400)
        changes: list[dict[str, Any]] = [{"at": fulfilled, "type": "fulfill"}]
        if draw.random() < TAG_EDIT_RATE:
            changes.append({"at": at + draw.randrange(7200, 12 * 86400), "type": "tag",
                            "tag": draw.choice(ORDER_TAGS)})
        refunds = self._refunds(draw, draft, fulfilled)
        if not refunds and ctx.defect is not None:
            product, begins, ends = ctx.defect
            defective = [i for i, line in enumerate(draft.lines) if line.product_gid == product.gid]
            if defective and draw.random() < DEFECT_REFUND_RATE:
                lines = [(i, draft.lines[i].quantity) for i in defective]
                refunds = [self._refund(draw, draft.seq, 0, begins + draw.randrange(ends - begins), lines, False,
                                        note=self.sim.flavor.refund_notes[0])]
        return sorted(changes + refunds, key=lambda change: change["at"])

    def _refunds(self, draw: random.Random, draft: OrderDraft, fulfilled: int) -> list[dict[str, Any]]:
        if draw.random() >= REFUND_RATE:
            return []
        at = fulfilled + draw.randrange(2 * 86400, 26 * 86400)
        quantities = [line.quantity for line in draft.lines]
        if sum(quantities) == 1 or draw.random() >= PARTIAL_REFUND_SHARE:
            return [self._refund(draw, draft.seq, 0, at, list(enumerate(quantities)), True)]
        i = draw.randrange(len(quantities))
        most = quantities[i] - 1 if len(quantities) == 1 else quantities[i]
        first_quantity = draw.randint(1, most)
        refunds = [self._refund(draw, draft.seq, 0, at, [(i, first_quantity)], False)]
        quantities[i] -= first_quantity
        left = [j for j, q in enumerate(quantities) if q]
        if left and draw.random() < SECOND_REFUND_RATE:
            j = draw.choice(left)
            later = at + draw.randrange(86400, 14 * 86400)
            refunds.append(self._refund(draw, draft.seq, 1, later, [(j, quantities[j])], False))
        return refunds

    def _refund(self, draw: random.Random, seq: int, index: int, at: int, lines: list[tuple[int, int]],
                with_shipping: bool, note: str | None = None) -> dict[str, Any]:
        ids = self.sim.ids
        return {
            "at": at,
            "type": "refund",
            "id": ids.refund(seq, index),
            "lines": [[i, quantity, "RETURN" if draw.random() < 0.8 else "NO_RESTOCK",
                       ids.refund_line_item(seq, index, k)] for k, (i, quantity) in enumerate(lines)],
            "shipping_id": ids.refund(seq, index) if with_shipping else None,
            "note": note if note is not None else draw.choice(self.sim.flavor.refund_notes),
        }

    # -- writing orders ---------------------------------------------------------------------------------

    def place(self, body: dict[str, Any], changes: list[dict[str, Any]], new_customer: dict[str, Any] | None,
              *, planned: bool) -> None:
        """Write a new order (and the account it created), or plan it if it is placed after `until`."""
        created = parse_iso(body["createdAt"])
        if created > self.until:
            self.plan(body["id"], created, {"order": body, "new_customer": new_customer, "changes": changes})
            return
        if new_customer is not None:
            self.customers.create(new_customer)
        if body["customer"] is not None:
            self.customers.record(body["customer"]["id"], 1, bag_cents(body["totalPriceSet"]), created)
        self.settle(body, changes, created, created, planned=planned)

    def settle(self, body: dict[str, Any], changes: list[dict[str, Any]], created: int, updated: int, *,
               planned: bool) -> None:
        """Apply the changes due by `until`, write the order, and plan what is left."""
        left = []
        for change in changes:
            if change["at"] > self.until:
                left.append(change)
                continue
            apply_change(body, change, self.money)
            updated = max(updated, change["at"])
            if change["type"] == "cancel" and body["customer"] is not None:
                self.customers.record(body["customer"]["id"], 0, -bag_cents(body["totalPriceSet"]), change["at"])
        self.rows.append((self.workspace, SOURCE, "order", body["id"], created, updated, False, body))
        if left:
            self.plan(body["id"], left[0]["at"], {"changes": left})
        elif planned:
            self.plan(body["id"], None, {})  # finished: nothing more will happen to this order
