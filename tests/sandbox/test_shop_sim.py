"""The Shopify store simulator: determinism, internal consistency, advancing, truth and anomalies.

Most tests share one short simulated history (a small store over ~4 months) so the module stays fast.
"""

from __future__ import annotations

import functools
import hashlib
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from statistics import mean
from zoneinfo import ZoneInfo

import pytest
from graphql import (
    build_schema,
    get_named_type,
    get_nullable_type,
    is_abstract_type,
    is_enum_type,
    is_list_type,
    is_non_null_type,
    is_object_type,
)

from pipelines.sandbox.simulation.shop.simulator import STATE_ID, STATE_KIND, ShopSimulator
from pipelines.sandbox.simulation.shop.orders import (
    Discount,
    Ids,
    LineDraft,
    Money,
    OrderDraft,
    bag_cents,
    build_order,
)
from pipelines.sandbox.simulation.shop.world import Region, ShippingRate
from pipelines.sandbox.simulation.simulator import BusinessSpec, local_midnight, parse_iso
from pipelines.sandbox.core.store import SandboxStore

TZ = "America/New_York"
START = date(2026, 3, 1)
HISTORY = 100
US_SPEC = BusinessSpec("test-us-store", "shopify", "Test Outdoor", "USD", TZ,
                       {"orders_per_day": 55, "products": 14, "countries": ["US", "CA", "GB"],
                        "history_days": HISTORY})
BR_SPEC = BusinessSpec("test-br-store", "shopify", "Teste Verde", "BRL", "America/Sao_Paulo",
                       {"orders_per_day": 35, "products": 10, "countries": ["BR", "PT"], "history_days": HISTORY})
# A quieter, shorter store for the tests that generate several times.
SHORT_SPEC = BusinessSpec(US_SPEC.workspace, "shopify", "Test", "USD", TZ,
                          {**US_SPEC.scale, "orders_per_day": 30, "history_days": 60})


def _end_of_day(day: date, tz: str = TZ) -> int:
    return local_midnight(day + timedelta(days=1), tz) - 1


def _generate(path: Path, spec: BusinessSpec, until: int, seed: int = 7) -> tuple[ShopSimulator, SandboxStore]:
    store = SandboxStore(path)
    sim = ShopSimulator(spec, seed=seed, start=START, size="small")
    sim.generate(store, until, lambda _: None)
    store.set_clock(until)
    return sim, store


def _digest(store: SandboxStore) -> str:
    """A hash of every stored object, so two stores compare equal only if they are byte-identical."""
    digest = hashlib.sha256()
    for row in store.conn.execute(
        "select workspace, source, kind, id, created, updated, deleted, body from objects"
        " order by workspace, source, kind, id"
    ):
        digest.update(repr(tuple(row)).encode())
    return digest.hexdigest()


def _orders(store: SandboxStore, workspace: str = US_SPEC.workspace) -> list[dict]:
    return [o.body for o in store.iter_objects(workspace, "shopify", "order")]


def _local_day(iso_timestamp: str, tz: str = TZ) -> date:
    return datetime.fromtimestamp(parse_iso(iso_timestamp), ZoneInfo(tz)).date()


@pytest.fixture(scope="module")
def us(tmp_path_factory):
    """The US test store, generated through its last history day."""
    last_day = START + timedelta(days=HISTORY)
    return _generate(tmp_path_factory.mktemp("us") / "sandbox.db", US_SPEC, _end_of_day(last_day))


@pytest.fixture(scope="module")
def us_orders(us):
    return _orders(us[1])


# -- determinism ---------------------------------------------------------------------------------


def test_same_seed_gives_a_byte_identical_store(tmp_path, us):
    _, again = _generate(tmp_path / "again.db", US_SPEC, us[1].clock)
    assert _digest(again) == _digest(us[1])


def test_another_seed_gives_another_store(tmp_path):
    until = _end_of_day(START + timedelta(days=10))
    _, one = _generate(tmp_path / "one.db", US_SPEC, until, seed=7)
    _, other = _generate(tmp_path / "other.db", US_SPEC, until, seed=8)
    assert one.count(US_SPEC.workspace, "shopify", "order") > 100
    assert _digest(one) != _digest(other)


def test_generating_then_advancing_equals_generating_further(tmp_path):
    """Plans and the carried-over state let `advance` continue exactly where `generate` stopped,
    even from a clock in the middle of a day (orders placed after it are plans)."""
    spec = SHORT_SPEC
    middle_of_day = local_midnight(START + timedelta(days=40), TZ) + 15 * 3600
    later = _end_of_day(START + timedelta(days=47))
    sim, stepped = _generate(tmp_path / "stepped.db", spec, middle_of_day)
    clock = middle_of_day
    for step in (5 * 3600, 13 * 3600, 86400, 2 * 86400):  # steps ending mid-day and across days
        sim.advance(stepped, clock, clock + step)
        clock += step
    sim.advance(stepped, clock, later)
    _, direct = _generate(tmp_path / "direct.db", spec, later)
    assert _digest(stepped) == _digest(direct)


# -- object shapes -------------------------------------------------------------------------------


@functools.cache
def _decompose(field_type) -> tuple[bool, bool, object, object]:
    """(non-null?, list-like?, item type for lists, named type) of a field type; connections are lists."""
    nullable = get_nullable_type(field_type)
    named = get_named_type(field_type)
    if is_list_type(nullable):
        return is_non_null_type(field_type), True, nullable.of_type, named
    if is_object_type(named) and named.name.endswith("Connection"):
        return is_non_null_type(field_type), True, named.fields["nodes"].type.of_type.of_type, named
    return is_non_null_type(field_type), False, None, named


def _where(path) -> str:
    parts = []
    while path:
        path, part = path
        parts.append(str(part))
    return ".".join(reversed(parts))


def _check_leaf(value, field_type, path, problems: list[str]) -> None:
    """A scalar or enum value; the path is a (parent, key) chain, formatted only on a problem."""
    _, listed, _, named = _decompose(field_type)
    if listed or is_abstract_type(named) or is_object_type(named):
        problems.append(f"{_where(path)}: a plain value for {field_type}")
    elif is_enum_type(named):
        if value not in named.values:
            problems.append(f"{_where(path)}: {value!r} is not a {named.name}")
    else:
        expected = {"Int": int, "Float": (int, float), "Boolean": bool}.get(named.name, str)
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            problems.append(f"{_where(path)}: {value!r} is not a {named.name}")


def _check_node(schema, value, field_type, path, problems: list[str]) -> None:
    """Check a stored value against a GraphQL type: known fields, right scalar types, nullability."""
    non_null, listed, item_type, named = _decompose(field_type)
    if value is None:
        if non_null:
            problems.append(f"{_where(path)}: null for non-null {field_type}")
        return
    if listed:
        if not isinstance(value, list):
            problems.append(f"{_where(path)}: expected a list for {field_type}")
            return
        for index, item in enumerate(value):
            _check_node(schema, item, item_type, (path, index), problems)
        return
    if not isinstance(value, dict):
        _check_leaf(value, field_type, path, problems)
        return
    if is_abstract_type(named):
        concrete = schema.get_type(value.get("__typename", ""))
        if concrete is None or not schema.is_sub_type(named, concrete):
            problems.append(f"{_where(path)}: needs a __typename implementing {named.name}")
            return
        named = concrete
    if not is_object_type(named):
        problems.append(f"{_where(path)}: an object for {field_type}")
        return
    fields = named.fields
    for key, item in value.items():
        if key == "__typename":
            continue
        field = fields.get(key)
        if field is None:
            problems.append(f"{_where((path, key))}: not a field of {named.name}")
        elif item is None or isinstance(item, (dict, list)):
            _check_node(schema, item, field.type, (path, key), problems)
        else:
            _check_leaf(item, field.type, (path, key), problems)


def test_every_stored_body_fits_the_real_admin_schema(us, reference):
    """`reference` (tests/conftest.py) skips, saying why, where ../shared/reference is absent."""
    schema = build_schema((reference / "shopify" / "admin-2026-10-subset.graphql").read_text())
    problems: list[str] = []
    store = us[1]
    for kind, type_name in (("order", "Order"), ("product", "Product"), ("customer", "Customer")):
        for obj in store.iter_objects(US_SPEC.workspace, "shopify", kind):
            _check_node(schema, obj.body, schema.get_type(type_name), (None, f"{kind} {obj.id}"), problems)
    assert problems[:20] == []


# -- hand-checked arithmetic ---------------------------------------------------------------------


def test_order_arithmetic_by_hand():
    """Two lines, a 10% code, 8.875% tax, $6.95 shipping: every number worked out by hand."""
    region = Region("NY", "New York", "10001", "NY State Tax", 0.08875)
    lines = (
        LineDraft("gid://shopify/Product/1", "gid://shopify/ProductVariant/11", "Tent", None, "T-1", "V", 4999, 1),
        LineDraft("gid://shopify/Product/2", "gid://shopify/ProductVariant/21", "Sock", "M", "S-1", "V", 1250, 2),
    )
    draft = OrderDraft(
        seq=1, number=1001, created=1_767_225_600, email="a@example.com", customer_gid=None, country="US",
        region=region, lines=lines, discounts=(Discount("SAVE10", False, 10.0),),
        shipping=ShippingRate("Standard", "standard", 695, 10000), tax_shipping=False, test=False,
        source="web", authorized_only=False,
    )
    body = build_order(draft, Ids(0), Money("USD"))
    # Lines: 49.99 and 2 × 12.50 = 74.99. 10% of 74.99 = 7.499 -> 7.50, split 4999:2500 -> 4.99 + 2.51.
    assert [bag_cents(li["originalTotalSet"]) for li in body["lineItems"]] == [4999, 2500]
    assert [bag_cents(li["totalDiscountSet"]) for li in body["lineItems"]] == [499, 251]
    assert [bag_cents(li["discountedTotalSet"]) for li in body["lineItems"]] == [4500, 2249]
    # Tax per line: 45.00 × 8.875% = 3.99375 -> 3.99; 22.49 × 8.875% = 1.9959875 -> 2.00.
    assert [bag_cents(li["taxLines"][0]["priceSet"]) for li in body["lineItems"]] == [399, 200]
    assert bag_cents(body["subtotalPriceSet"]) == 6749
    assert bag_cents(body["totalShippingPriceSet"]) == 695  # under the $100 free-shipping line
    assert bag_cents(body["totalTaxSet"]) == 599
    assert bag_cents(body["totalDiscountsSet"]) == 750
    assert bag_cents(body["totalPriceSet"]) == 6749 + 695 + 599
    assert body["discountApplications"][0]["value"] == {"__typename": "PricingPercentageValue", "percentage": 10.0}
    assert body["lineItems"][1]["discountAllocations"][0]["discountApplication"]["index"] == 0
    assert body["lineItems"][1]["name"] == "Sock - M"


# -- invariants of the simulated history ---------------------------------------------------------


def _refunded_lines(order: dict) -> dict[str, tuple[int, int, int]]:
    done: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for refund in order["refunds"]:
        for item in refund["refundLineItems"]:
            entry = done[item["lineItem"]["id"]]
            entry[0] += item["quantity"]
            entry[1] += bag_cents(item["subtotalSet"])
            entry[2] += bag_cents(item["totalTaxSet"])
    return {key: tuple(value) for key, value in done.items()}


def test_every_order_adds_up(us_orders):
    for order in us_orders:
        lines = order["lineItems"]
        for line in lines:
            allocated = sum(bag_cents(a["allocatedAmountSet"]) for a in line["discountAllocations"])
            assert bag_cents(line["originalTotalSet"]) == bag_cents(line["originalUnitPriceSet"]) * line["quantity"]
            assert bag_cents(line["discountedTotalSet"]) == bag_cents(line["originalTotalSet"]) - allocated
            assert bag_cents(line["totalDiscountSet"]) == allocated
        subtotal = sum(bag_cents(line["discountedTotalSet"]) for line in lines)
        shipping = sum(bag_cents(s["originalPriceSet"]) for s in order["shippingLines"])
        tax = sum(bag_cents(t["priceSet"]) for t in order["taxLines"])
        assert tax == sum(bag_cents(t["priceSet"]) for x in lines + order["shippingLines"] for t in x["taxLines"])
        assert bag_cents(order["subtotalPriceSet"]) == subtotal
        assert bag_cents(order["totalTaxSet"]) == tax
        assert bag_cents(order["totalPriceSet"]) == subtotal + shipping + tax
        assert bag_cents(order["totalDiscountsSet"]) == sum(bag_cents(li["totalDiscountSet"]) for li in lines)
        refunded = sum(bag_cents(r["totalRefundedSet"]) for r in order["refunds"])
        assert bag_cents(order["totalRefundedSet"]) == refunded
        expected_current = 0 if order["cancelledAt"] else bag_cents(order["totalPriceSet"]) - refunded
        assert bag_cents(order["currentTotalPriceSet"]) == expected_current
        done = _refunded_lines(order)
        for line in lines:
            quantity, subtotal_back, tax_back = done.get(line["id"], (0, 0, 0))
            assert line["currentQuantity"] == (0 if order["cancelledAt"] else line["quantity"] - quantity)
            assert subtotal_back <= bag_cents(line["discountedTotalSet"])
        for refund in order["refunds"]:
            items = sum(bag_cents(i["subtotalSet"]) + bag_cents(i["totalTaxSet"]) for i in refund["refundLineItems"])
            shipping_back = sum(bag_cents(s["subtotalAmountSet"]) + bag_cents(s["taxAmountSet"])
                                for s in refund["refundShippingLines"])
            assert bag_cents(refund["totalRefundedSet"]) == items + shipping_back
            assert refund["createdAt"] > order["createdAt"]
        if refunded:
            full = refunded == bag_cents(order["totalPriceSet"])
            assert order["displayFinancialStatus"] == ("REFUNDED" if full else "PARTIALLY_REFUNDED")


def test_the_history_has_every_behaviour(us_orders):
    cancelled = [o for o in us_orders if o["cancelledAt"]]
    assert cancelled and all(o["displayFinancialStatus"] == "VOIDED" and o["cancelReason"] for o in cancelled)
    assert 0 < sum(o["test"] for o in us_orders) < len(us_orders) * 0.02
    partial = [o for o in us_orders if o["displayFinancialStatus"] == "PARTIALLY_REFUNDED"]
    assert partial and any(o["displayFinancialStatus"] == "REFUNDED" for o in us_orders)
    assert any(len(o["refunds"]) == 2 for o in us_orders)
    assert {o["shippingAddress"]["countryCodeV2"] for o in us_orders} == {"US", "CA", "GB"}
    assert any(o["discountApplications"] for o in us_orders)
    assert any(o["tags"] for o in us_orders)
    fulfilled = [o for o in us_orders if o["displayFulfillmentStatus"] == "FULFILLED"]
    assert all(o["closed"] and o["closedAt"] > o["createdAt"] for o in fulfilled)


def test_guests_have_an_email_and_some_come_back_with_an_account(us_orders):
    guests = [o for o in us_orders if o["customer"] is None and not o["test"]]
    assert guests and all(o["email"] for o in guests)
    assert any(o["email"] != o["email"].lower() for o in guests)  # typed with capitals: match on lower()
    guest_emails = {o["email"].lower(): o["createdAt"] for o in reversed(guests)}  # first guest order
    came_back = [o for o in us_orders if o["customer"] and o["createdAt"] > guest_emails.get(o["email"], "~")]
    assert came_back, "no guest later ordered with an account under the same email"


def test_customers_count_their_orders(us):
    sim, store = us
    orders = _orders(store)
    by_customer: dict[str, list[dict]] = defaultdict(list)
    for order in orders:
        if order["customer"]:
            by_customer[order["customer"]["id"]].append(order)
    customers = list(store.iter_objects(US_SPEC.workspace, "shopify", "customer"))
    assert len(customers) == len(by_customer)
    assert any(int(c.body["numberOfOrders"]) > 1 for c in customers)
    for customer in customers:
        placed = by_customer[customer.id]
        assert int(customer.body["numberOfOrders"]) == len(placed)
        spent = sum(bag_cents(o["totalPriceSet"]) for o in placed if not o["cancelledAt"])
        assert round(float(customer.body["amountSpent"]["amount"]) * 100) == spent
        assert customer.body["updatedAt"] >= max(o["createdAt"] for o in placed)


def test_products_change_only_occasionally(us):
    products = [p.body for p in us[1].iter_objects(US_SPEC.workspace, "shopify", "product")]
    changed = [p for p in products if p["updatedAt"] > p["createdAt"]]
    assert changed and len(changed) <= len(products)
    assert all(len(p["variants"]) >= 1 for p in products)


# -- advancing -----------------------------------------------------------------------------------


def test_advance_applies_due_changes_once_and_adds_new_days(tmp_path):
    spec = SHORT_SPEC
    since = _end_of_day(START + timedelta(days=50))
    sim, store = _generate(tmp_path / "advance.db", spec, since)
    before = {o.id: o.updated for o in store.iter_objects(spec.workspace, "shopify", "order")}
    until = since + 6 * 86400
    changed = sim.advance(store, since, until)
    store.set_clock(until)
    after = {o.id: o for o in store.iter_objects(spec.workspace, "shopify", "order")}
    new = [o for oid, o in after.items() if oid not in before]
    edited = [o for oid, o in after.items() if oid in before and o.updated != before[oid]]
    assert new and all(since < o.created <= until and o.updated > since for o in new)
    assert edited and all(since < o.updated <= until for o in edited)
    assert any(r["createdAt"] > sim_iso(since) for o in edited for r in o.body["refunds"])
    assert any(o.body["displayFulfillmentStatus"] == "FULFILLED" for o in edited)
    assert changed["order"] == len(new) + len(edited)
    assert changed["customer"] > 0
    assert not [p for p in store.due_plans(spec.workspace, "shopify", until)]  # nothing left due
    assert store.get_plan(spec.workspace, "shopify", STATE_KIND, STATE_ID)["next_day"] == \
        (START + timedelta(days=57)).isoformat()
    assert sim.advance(store, until, until) == {"order": 0, "customer": 0, "product": 0}  # applied once


def sim_iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- truth ---------------------------------------------------------------------------------------


def test_truth_matches_a_day_recomputed_from_raw_bodies(us, us_orders):
    sim, store = us
    truth = sim.truth(store)
    refund_days = Counter(_local_day(r["createdAt"]) for o in us_orders for r in o["refunds"])
    day = refund_days.most_common(1)[0][0]
    sold = [o for o in us_orders if not o["test"] and not o["cancelledAt"] and _local_day(o["createdAt"]) == day]
    gross = sum(float(li["originalUnitPriceSet"]["shopMoney"]["amount"]) * li["quantity"]
                for o in sold for li in o["lineItems"])
    discounts = sum(float(a["allocatedAmountSet"]["shopMoney"]["amount"])
                    for o in sold for li in o["lineItems"] for a in li["discountAllocations"])
    refunds = sum(float(i["subtotalSet"]["shopMoney"]["amount"]) for o in us_orders if not o["test"]
                  for r in o["refunds"] if _local_day(r["createdAt"]) == day for i in r["refundLineItems"])
    earlier = {o["email"].lower() for o in us_orders if not o["test"] and not o["cancelledAt"]
               and _local_day(o["createdAt"]) < day}
    today = {o["email"].lower() for o in sold}
    expected = truth["revenue"]["days"][day.isoformat()]
    assert expected["orders"] == len(sold)
    assert expected["units"] == sum(li["quantity"] for o in sold for li in o["lineItems"])
    assert expected["gross_sales"] == f"{gross:.2f}"
    assert expected["discounts"] == f"{discounts:.2f}"
    assert expected["refunds"] == f"{refunds:.2f}"
    assert expected["net_sales"] == f"{gross - discounts - refunds:.2f}"
    assert expected["new_customers"] == len(today - earlier)
    assert expected["returning_customers"] == len(today & earlier)
    assert truth["counts"]["orders"] == len(us_orders)
    assert truth["sums"]["orders.totalRefundedSet"] == truth["sums"]["refunds.totalRefundedSet"]
    days = truth["revenue"]["days"].values()
    assert truth["revenue"]["totals"]["orders"] == sum(d["orders"] for d in days)


# -- injected anomalies --------------------------------------------------------------------------


def _same_weekday_baseline(series: dict[date, float], day: date, weeks: int = 4) -> float:
    return mean(series.get(day - timedelta(weeks=w), 0) for w in range(1, weeks + 1))


def test_injected_anomalies_show_in_the_data(us, us_orders):
    sim, _ = us
    found = {a["dimension"]: a for a in sim.anomalies()}
    outage, spike = found["country"], found["product"]
    us_orders_by_day: Counter[date] = Counter()
    units_by_day: Counter[date] = Counter()
    for order in us_orders:
        day = _local_day(order["createdAt"])
        if order["shippingAddress"]["countryCodeV2"] == outage["value"] and not order["test"]:
            us_orders_by_day[day] += 1
        units_by_day[day] += sum(li["quantity"] for li in order["lineItems"] if li["title"] == spike["value"])
    for day in _days(outage):
        assert us_orders_by_day[day] < 0.35 * _same_weekday_baseline(us_orders_by_day, day)
    for day in _days(spike):
        assert units_by_day[day] > 3 * _same_weekday_baseline(units_by_day, day)


def test_the_refund_spike_shows_in_the_br_store(tmp_path):
    sim, store = _generate(tmp_path / "br.db", BR_SPEC, _end_of_day(START + timedelta(days=HISTORY), BR_SPEC.timezone))
    spike = next(a for a in sim.anomalies() if a["metric"] == "refunds")
    refunds_by_day: Counter[date] = Counter()
    for order in _orders(store, BR_SPEC.workspace):
        titles = {li["id"]: li["title"] for li in order["lineItems"]}
        for refund in order["refunds"]:
            for item in refund["refundLineItems"]:
                if titles[item["lineItem"]["id"]] == spike["value"]:
                    refunds_by_day[_local_day(refund["createdAt"], BR_SPEC.timezone)] += item["quantity"]
    spike_units = sum(refunds_by_day[d] for d in _days(spike))
    usual = mean(refunds_by_day[d] for d in _days({"start": spike["start"], "end": spike["start"]}, back=30))
    assert spike_units > 10 * max(usual, 0.2)


def _days(anomaly: dict, back: int = 0) -> list[date]:
    first, last = date.fromisoformat(anomaly["start"]), date.fromisoformat(anomaly["end"])
    if back:
        return [first - timedelta(days=d) for d in range(1, back + 1)]
    return [first + timedelta(days=d) for d in range((last - first).days + 1)]
