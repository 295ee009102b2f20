"""The SaaS simulator: determinism, Stripe shapes, events, advancing and the MRR ground truth.

Simulations here are small (a few hundred customers over a few months, built directly with a
recent start) so the whole module runs in seconds. Expected MRR values are worked out by hand in
comments, or recomputed in the test from the stored Stripe JSON.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import threading
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import requests

from pipelines.sandbox import ecb
from pipelines.currencies import to_major
from pipelines.sandbox.core.accounts import STRIPE_API_VERSION, STRIPE_PREVIOUS_API_VERSION
from pipelines.sandbox.core.http import Faults, RequestLog, SandboxHTTPServer
from pipelines.sandbox.simulation.saas.simulator import SaasSimulator
from pipelines.sandbox.simulation.saas.objects import Customer, Discount, Item, Sub
from pipelines.sandbox.simulation.simulator import BusinessSpec
from pipelines.sandbox.core.store import SandboxStore
from pipelines.sandbox.stripe.api import StripeHandler

WORKSPACE = "test-saas"
DAY = 86400
AS_OF = date(2026, 11, 20)
KINDS = ("customer", "product", "price", "coupon", "subscription", "invoice", "event", "discount")
MONEY = ("mrr", "new", "expansion", "contraction", "churn", "reactivation")


def make_sim(customers: int = 500, history_days: int = 150, seed: int = 7) -> SaasSimulator:
    spec = BusinessSpec(WORKSPACE, "stripe", "Test SaaS", "USD", "America/Los_Angeles",
                        {"customers": customers, "currencies": ["usd", "eur", "jpy"],
                         "history_days": history_days})
    return SaasSimulator(spec, seed=seed, start=AS_OF - timedelta(days=history_days), size="small")


def end_of(day: date) -> int:
    return int(datetime.combine(day + timedelta(days=1), time(0), UTC).timestamp()) - 1


def build(path: Path, sim: SaasSimulator, until: int) -> SandboxStore:
    store = SandboxStore(path)
    store.put_account(WORKSPACE, "stripe", sim.account())
    sim.generate(store, until, lambda _: None)
    store.set_clock(until)
    return store


def digest(store: SandboxStore, *, kinds: tuple[str, ...] = KINDS) -> str:
    """A hash of every stored row of `kinds` (and every plan)."""
    h = hashlib.sha256()
    marks = ",".join("?" * len(kinds))
    for row in store.conn.execute(
        f"select kind, id, created, updated, deleted, body from objects where kind in ({marks})"
        " order by kind, id", kinds):
        h.update(repr(tuple(row)).encode())
    for row in store.conn.execute("select kind, id, next_due, plan from plans order by kind, id"):
        h.update(repr(tuple(row)).encode())
    return h.hexdigest()


def bodies(store: SandboxStore, kind: str) -> list[dict]:
    return [o.body for o in store.iter_objects(WORKSPACE, "stripe", kind, include_deleted=True)]


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    sim = make_sim()
    until = end_of(AS_OF)
    return sim, build(tmp_path_factory.mktemp("saas") / "sandbox.db", sim, until), until


def test_same_seed_gives_identical_rows_and_another_seed_does_not(generated, tmp_path):
    sim, store, until = generated
    again = build(tmp_path / "again.db", make_sim(), until)
    assert digest(again) == digest(store)
    other = build(tmp_path / "other.db", make_sim(customers=50, seed=8), until)
    assert digest(other) != digest(store)


def test_objects_carry_every_key_of_stripes_newest_fixtures(generated, reference):
    _, store, _ = generated
    stripe = reference / "stripe"
    fixtures = json.loads((stripe / "fixtures3.json").read_text())["resources"]
    shapes = json.loads((stripe / "stripe-python-16.1.0-shapes.json").read_text())["objects"]
    classes = {"customer": "Customer", "product": "Product", "price": "Price", "coupon": "Coupon",
               "subscription": "Subscription", "invoice": "Invoice", "event": "Event", "discount": "Discount",
               "subscription_item": "SubscriptionItem", "line_item": "InvoiceLineItem"}

    # Keys Stripe's newest fixture still shows but the API removed (2025-03-31.basil moved the
    # invoice's subscription under parent.subscription_details; stripe-python 16.1 has no such field).
    removed = {"invoice": {"subscription"}}

    def check(kind: str, obj: dict) -> None:
        missing = set(fixtures[kind]) - set(obj) - removed.get(kind, set())
        assert not missing, f"{kind} {obj['id']} lacks {sorted(missing)}"
        assert not removed.get(kind, set()) & set(obj), f"{kind} {obj['id']} carries a field the API removed"
        if kind == "event":  # Stripe sends `account` on Connect events only
            assert "account" not in obj, f"event {obj['id']} carries account"
        fields = shapes[classes[kind]]["fields"]
        # No invented keys: every key is in the SDK's shape, or in Stripe's newest fixture.
        assert set(obj) <= set(fields) | set(fixtures[kind]), f"{kind}: {sorted(set(obj) - set(fields))}"
        for name, value in obj.items():
            if value is None and name in fields:
                assert fields[name].get("nullable"), f"{kind}.{name} is null but not nullable"

    seen = Counter()
    for kind in KINDS:
        for body in bodies(store, kind):
            if body.get("deleted"):
                assert body == {"id": body["id"], "object": "customer", "deleted": True}
                continue
            assert body["object"] == kind
            check(kind, body)
            seen[kind] += 1
            if kind == "subscription":
                for item in body["items"]["data"]:
                    check("subscription_item", item)
            if kind == "invoice":
                for line in body["lines"]["data"]:
                    check("line_item", line)
    assert all(seen[kind] for kind in KINDS), seen


def test_invoice_lines_and_amounts_are_consistent(generated):
    _, store, _ = generated
    reasons, statuses = Counter(), Counter()
    for inv in bodies(store, "invoice"):
        lines = inv["lines"]
        assert lines["has_more"] is False and lines["total_count"] == len(lines["data"])
        assert inv["subtotal"] == sum(line["amount"] for line in lines["data"])
        tax = sum(t["amount"] for t in inv["total_taxes"])
        discount = sum(d["amount"] for d in inv["total_discount_amounts"])
        assert inv["total"] == inv["subtotal"] - discount + tax
        remaining = 0 if inv["status"] == "void" else inv["amount_due"] - inv["amount_paid"]
        assert inv["amount_remaining"] == remaining
        assert inv["parent"]["subscription_details"]["subscription"].startswith("sub_")
        for line in lines["data"]:
            assert line["pricing"]["price_details"]["price"].startswith("price_")
            assert line["parent"]["type"] == "subscription_item_details"
        reasons[inv["billing_reason"]] += 1
        statuses[inv["status"]] += 1
        if inv["currency"] == "jpy":
            assert all(line["amount"] % 1 == 0 for line in lines["data"])
    assert {"subscription_create", "subscription_cycle", "subscription_update"} <= set(reasons)
    assert {"paid", "open"} <= set(statuses) or {"paid", "uncollectible"} <= set(statuses), statuses
    prorations = [line for inv in bodies(store, "invoice") for line in inv["lines"]["data"]
                  if line["parent"]["subscription_item_details"]["proration"]]
    assert any(line["amount"] < 0 for line in prorations) and any(line["amount"] > 0 for line in prorations)


def test_mrr_of_hand_built_subscriptions():
    sim = make_sim(customers=10, history_days=70)
    catalog = sim.world.catalog
    cus = Customer("cus_x", 0, "usd", "US", "X", "x@example.com", None, "none", "X")

    def mrr(plan: str, cadence: str, quantity: int, *, currency: str = "usd", coupon: str | None = None,
            status: str = "active", metered: bool = False) -> Decimal:
        items = [Item("si_1", catalog.price(plan, cadence, currency), quantity, 0)]
        if metered:
            items.append(Item("si_2", catalog.price("usage", "month", currency), None, 0))
        sub = Sub("sub_x", cus, 0, items, 0, status, 0, 1)
        if coupon:
            sub.discount = Discount("di_x", catalog.coupons[coupon], cus.id, sub.id, 0, None)
        return sub.mrr()

    assert mrr("starter", "month", 1) == 2900  # $29.00 a month
    assert mrr("team", "year", 4, coupon="LOYAL20") == 4000  # 4 seats × $150.00 / 12 × (1 − 20%)
    assert mrr("starter", "week", 1) == 3900  # $9.00 × 52 / 12
    assert mrr("starter", "month", 1, coupon="FLAT500USD") == 2400  # $29.00 − $5.00 forever
    assert mrr("starter", "month", 1, coupon="WELCOME50") == 2900  # once coupons leave MRR alone
    assert mrr("starter", "month", 1, coupon="QUARTER25") == 2900  # so do repeating ones
    assert mrr("business", "quarter", 1, currency="jpy") == 26600  # ¥79,800 a quarter / 3
    assert mrr("starter", "month", 1, metered=True) == 2900  # metered usage is excluded
    assert mrr("starter", "month", 1, status="trialing") == 0
    assert mrr("starter", "month", 1, status="past_due") == 2900
    assert mrr("starter", "month", 1, status="unpaid") == 0


def stored_mrr(store: SandboxStore) -> dict[str, Decimal]:
    """MRR by currency recomputed from the stored Stripe JSON, following DESIGN.md's definition."""
    coupons = {c["id"]: c for c in bodies(store, "coupon")}
    discounts = {d["id"]: d for d in bodies(store, "discount")}
    total: Counter = Counter()
    for sub in bodies(store, "subscription"):
        if sub["status"] not in ("active", "past_due") or sub["cancel_at_period_end"]:
            continue  # a requested cancellation at the period end ends MRR at once
        amount, months = Decimal(0), None
        for item in sub["items"]["data"]:
            recurring = item["price"]["recurring"]
            if recurring["usage_type"] == "metered":
                continue
            # A month is 1, a year 12, a week 12/52 and a day 12/365 months (numerator, denominator).
            num, den = {"month": (1, 1), "year": (12, 1), "week": (12, 52),
                        "day": (12, 365)}[recurring["interval"]]
            months = (num * recurring["interval_count"], den)
            amount += Decimal(item["price"]["unit_amount"] * item["quantity"] * months[1]) / months[0]
        for discount_id in sub["discounts"]:
            coupon = coupons[discounts[discount_id]["source"]["coupon"]]
            if coupon["duration"] != "forever":
                continue
            if coupon["percent_off"] is not None:
                amount *= 1 - Decimal(str(coupon["percent_off"])) / 100
            else:
                amount -= Decimal(coupon["amount_off"] * months[1]) / months[0]
        total[sub["currency"]] += max(amount, Decimal(0))
    return {cur: to_major(value, cur) for cur, value in total.items()}


def test_truth_matches_the_stored_objects(generated):
    sim, store, until = generated
    truth = sim.truth(store)
    counts = truth["counts"]
    assert counts["customers"] == store.count(WORKSPACE, "stripe", "customer")
    for kind in ("product", "price", "coupon", "subscription", "invoice"):
        assert counts[kind + "s"] == store.count(WORKSPACE, "stripe", kind), kind
    subs, invoices = bodies(store, "subscription"), bodies(store, "invoice")
    assert counts["subscription_items"] == sum(len(s["items"]["data"]) for s in subs)
    assert counts["invoice_lines"] == sum(len(i["lines"]["data"]) for i in invoices)
    assert counts["events"] == store.count(WORKSPACE, "stripe", "event")
    sums: dict[str, Counter] = {}
    for inv in invoices:
        cur = sums.setdefault(inv["currency"], Counter())
        cur["invoice_total"] += inv["total"]
        cur["invoice_amount_paid"] += inv["amount_paid"]
        cur["invoice_tax"] += sum(t["amount"] for t in inv["total_taxes"])
        cur["line_amount"] += sum(line["amount"] for line in inv["lines"]["data"])
    for cur, values in sums.items():
        for key, value in values.items():
            assert truth["sums"][cur][key] == value, (cur, key)
    assert set(sums) == {"usd", "eur", "jpy"} and sums["eur"]["invoice_tax"] > 0

    by_currency = stored_mrr(store)
    current = truth["mrr"]["current"]
    assert {cur: Decimal(v) for cur, v in current["by_currency"].items()} == {
        cur: v.quantize(Decimal("0.01")) for cur, v in by_currency.items()}
    usd = sum(ecb.convert(store, v, cur, "USD", AS_OF) for cur, v in by_currency.items())
    assert Decimal(current["mrr"]) == usd.quantize(Decimal("0.01"))
    assert truth["mrr"]["daily"][AS_OF.isoformat()]["mrr"] == current["mrr"]


def test_all_movement_types_occur_and_add_up(generated):
    sim, store, _ = generated
    mrr = sim.truth(store)["mrr"]
    totals = {name: Decimal(v) for name, v in mrr["totals"].items()}
    assert totals["new"] > 0 and totals["expansion"] > 0 and totals["reactivation"] > 0
    assert totals["contraction"] > 0 and totals["churn"] > 0  # amounts lost, positive
    days = sorted(mrr["daily"])
    assert days[0] == sim.start.isoformat() and days[-1] == AS_OF.isoformat() and len(days) == 151
    # Movements explain every change of MRR but the exchange rates': each day, yesterday's MRR in
    # each billing currency, at today's rate, plus the day's movements (contraction and churn are
    # amounts lost) is today's MRR.
    signed = {name: -value if name in ("contraction", "churn") else value for name, value in totals.items()}
    previous: dict[str, Decimal] = {}
    revaluations = Decimal(0)
    for day in days:
        row = mrr["daily"][day]
        moved = sum(Decimal(row[name]) * (-1 if name in ("contraction", "churn") else 1) for name in MONEY[1:])
        today = date.fromisoformat(day)
        at_todays_rate = sum((ecb.convert(store, v, cur, "USD", today) for cur, v in previous.items()), Decimal(0))
        at_yesterdays = sum((ecb.convert(store, v, cur, "USD", today - timedelta(days=1)) for cur, v in previous.items()),
                            Decimal(0))
        revaluations += at_todays_rate - at_yesterdays
        assert abs(Decimal(row["mrr"]) - at_todays_rate - moved) < Decimal("0.03"), day
        previous = {cur: Decimal(amount) for cur, amount in mrr["daily_by_currency"][day].items()}
        assert row["active_customers"] <= row["active_subscriptions"]
    assert abs(sum(signed.values()) + revaluations - Decimal(mrr["daily"][days[-1]]["mrr"])) < Decimal("0.05")


def test_injected_anomalies_stand_out(tmp_path):
    sim = make_sim(customers=1000, history_days=100)
    store = build(tmp_path / "anomalies.db", sim, end_of(AS_OF))
    daily = sim.truth(store)["mrr"]["daily"]
    churn_spike, campaign = sim.anomalies()
    key = ("metric", "dimension", "value")
    assert tuple(churn_spike[k] for k in key) == ("churned_mrr", "plan", "Business")
    assert tuple(campaign[k] for k in key) == ("new_mrr", "billing_currency", "eur")
    for anomaly, movement in ((churn_spike, "churn"), (campaign, "new")):
        assert set(anomaly) == {"workspace", "metric", "start", "end", "direction", "dimension", "value",
                                "description"}
        first, last = date.fromisoformat(anomaly["start"]), date.fromisoformat(anomaly["end"])
        assert 1 <= (last - first).days + 1 <= 3
        inside = [abs(Decimal(daily[d][movement])) for d in daily if anomaly["start"] <= d <= anomaly["end"]]
        outside = [abs(Decimal(daily[d][movement])) for d in sorted(daily)[-90:]
                   if not anomaly["start"] <= d <= anomaly["end"]]
        # Several times a normal day, and above every other day of the last three months.
        assert min(inside) > 3 * statistics.median(outside), (movement, inside, statistics.median(outside))
        assert min(inside) > max(outside), (movement, inside, sorted(outside)[-3:])


def test_events_are_kept_30_days_and_carry_both_api_versions(generated):
    sim, store, until = generated
    events = bodies(store, "event")
    upgraded = sim.account()["api_version_upgraded_at"]
    assert upgraded is not None
    assert all(until - 30 * DAY <= e["created"] <= until for e in events)
    for event in events:
        expected = STRIPE_PREVIOUS_API_VERSION if event["created"] < upgraded else STRIPE_API_VERSION
        assert event["api_version"] == expected
        subscription = event["type"].startswith("customer.subscription.")
        kind = "subscription" if subscription else event["type"].split(".")[0]
        assert event["data"]["object"]["object"] == kind
    assert {e["api_version"] for e in events} == {STRIPE_API_VERSION, STRIPE_PREVIOUS_API_VERSION}
    types = Counter(e["type"] for e in events)
    for expected in ("customer.created", "customer.subscription.created", "customer.subscription.updated",
                     "customer.subscription.deleted", "invoice.created", "invoice.finalized", "invoice.paid",
                     "invoice.payment_failed"):
        assert types[expected], expected
    updates = [e for e in events if e["type"] == "customer.subscription.updated"]
    assert all(e["data"]["previous_attributes"] for e in updates)


@pytest.fixture(scope="module")
def advanced(tmp_path_factory):
    """A simulation generated to two weeks before AS_OF, then advanced to the end of AS_OF."""
    sim = make_sim(customers=1000, history_days=200)
    since, until = end_of(AS_OF - timedelta(days=14)), end_of(AS_OF)
    store = build(tmp_path_factory.mktemp("advanced") / "sandbox.db", sim, since)
    changed = sim.advance(store, since, until)
    store.set_clock(until)
    return sim, store, since, until, changed


def test_advancing_gives_the_state_generating_would(advanced, tmp_path):
    _, store, since, until, changed = advanced
    fresh = build(tmp_path / "fresh.db", make_sim(customers=1000, history_days=200), until)
    assert digest(store, kinds=KINDS[:-2] + ("discount",)) == digest(fresh, kinds=KINDS[:-2] + ("discount",))
    # Events of the last 30 days are the same too: advance wrote every change, generate the last 30 days.
    recent = {e["id"]: e for e in bodies(store, "event") if e["created"] >= until - 30 * DAY}
    assert recent == {e["id"]: e for e in bodies(fresh, "event")}
    expected = dict(store.conn.execute(
        "select kind, count(*) from objects where updated > ? and kind != 'event' group by kind", (since,)))
    expected["event"] = store.conn.execute(
        "select count(*) from objects where kind = 'event' and created > ?", (since,)).fetchone()[0]
    assert changed == expected
    for _, plan in store.iter_plans(WORKSPACE, "stripe", "customer"):
        assert plan["created"] <= until


def test_advance_brings_upgrades_cancellations_reactivations_and_invoices(advanced):
    _, store, since, until, changed = advanced
    events = [e for e in bodies(store, "event") if e["created"] > since]
    assert changed["invoice"] and changed["subscription"] and changed["event"] == len(events)
    types = Counter(e["type"] for e in events)
    assert types["invoice.created"] and types["invoice.paid"] and types["customer.created"]
    upgrades = [e for e in events if e["type"] == "invoice.created"
                and e["data"]["object"]["billing_reason"] == "subscription_update"]
    assert upgrades
    cancellations = [e for e in events if e["type"] == "customer.subscription.deleted"
                     or e["data"].get("previous_attributes", {}).get("cancel_at_period_end") is False]
    assert cancellations
    subs_by_customer: dict[str, list[dict]] = {}
    for sub in bodies(store, "subscription"):
        subs_by_customer.setdefault(sub["customer"], []).append(sub)
    reactivations = [e for e in events if e["type"] == "customer.subscription.created"
                     and any(s["created"] < e["created"] and s["status"] == "canceled"
                             for s in subs_by_customer[e["data"]["object"]["customer"]])]
    assert reactivations
    for event in events:
        obj = event["data"]["object"]
        stored = store.get(WORKSPACE, "stripe", obj["object"], obj["id"])
        assert stored is not None and since < stored.updated <= until


def test_the_stripe_api_serves_the_simulation(generated):
    """Through the real fake-Stripe server: complete paging, expandable discounts, old-version events."""
    sim, store, _ = generated
    counts = sim.truth(store)["counts"]
    server = SandboxHTTPServer(("127.0.0.1", 0), StripeHandler, store=store, faults=Faults.parse(None),
                               log=RequestLog(), advance=lambda payload: {}, truth=lambda: {})
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {store.accounts('stripe')[WORKSPACE]['api_key']}"

    def page_all(path: str, **params: str) -> list[dict]:
        objects, params = [], {**params, "limit": 100}
        while True:
            response = session.get(server.base_url + path, params=params, timeout=10)
            assert response.status_code == 200, response.text
            body = response.json()
            objects += body["data"]
            if not body["has_more"]:
                return objects
            params["starting_after"] = body["data"][-1]["id"]

    try:
        subscriptions = page_all("/v1/subscriptions", status="all", **{"expand[]": "data.discounts"})
        assert len(subscriptions) == counts["subscriptions"]
        assert any(d["object"] == "discount" for s in subscriptions for d in s["discounts"])
        assert len(page_all("/v1/customers")) == counts["customers"]
        assert len(page_all("/v1/invoices")) == counts["invoices"]
        events = page_all("/v1/events")
        assert len(events) == counts["events"]
        old = next(e for e in events if e["type"] == "customer.subscription.updated"
                   and e["api_version"] == STRIPE_PREVIOUS_API_VERSION)
        assert "current_period_end" in old["data"]["object"]  # rendered in the 2023 shape
    finally:
        session.close()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
