"""The tenant matrix generator (pipelines/sandbox/simulation/matrix.py): deterministic, covering, and a truth
that agrees with hand-worked figures (the oracle of tests/integration/test_tenant_matrix.py)."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

from pipelines.sandbox.simulation import matrix
from pipelines.sandbox.server import build_store
from pipelines.sandbox.simulation.shop.orders import Money, bag_cents, cents, decimal_string
from pipelines.sandbox.simulation.runner import truth

AS_OF = date(2026, 6, 30)


def test_the_same_seed_gives_the_same_tenants_and_every_shape_comes_first():
    first = matrix.tenant_matrix(9, seed=5)
    assert first == matrix.tenant_matrix(9, seed=5)
    assert first != matrix.tenant_matrix(9, seed=6)
    assert [(t.shape, t.vertical) for t in first[:len(matrix.GROUPS)]] == matrix.GROUPS
    assert json.dumps(matrix.fixture(first, AS_OF)) == json.dumps(matrix.fixture(matrix.tenant_matrix(9, 5), AS_OF))


def served(tmp_path, *tenants: matrix.Tenant):
    path = tmp_path / "matrix.json"
    path.write_text(json.dumps(matrix.fixture(list(tenants), AS_OF)))
    return build_store(tmp_path / "store.sqlite", fixtures=path)


def test_a_yen_order_at_2359_in_kolkata_and_its_refund_after_midnight(tmp_path):
    """2 × ¥1,500 with 10% off on 06-27 at 23:59 (IST): gross 3000, discounts 300; one unit refunded
    two days and two hours later, on 06-30 (IST): 1350 (half the discounted line). JPY amounts are
    served with no decimals."""
    order = matrix.Order(day=3, minute=1439, lines=((1500, 2),), discount_percent=10, person=0, guest=False,
                         shouted=False, refund_after=2, cancelled=False, test=False)
    shop = matrix.Tenant("hand-shop", "plain", "ecommerce", "JPY", "JPY", "Asia/Kolkata", orders=(order,))
    store = served(tmp_path, shop)
    [body] = [o.body for o in store.iter_objects("hand-shop", "shopify", "order")]
    assert body["createdAt"] == "2026-06-27T18:29:00Z"
    assert body["lineItems"][0]["originalUnitPriceSet"]["shopMoney"] == {"amount": "1500", "currencyCode": "JPY"}
    days = truth(store)["workspaces"]["hand-shop"]["days"]
    assert sorted(days) == ["2026-06-27", "2026-06-28", "2026-06-29", "2026-06-30"]
    placed, refunded = days["2026-06-27"], days["2026-06-30"]
    assert (Decimal(placed["gross_sales"]), Decimal(placed["discounts"]), Decimal(placed["net_sales"])) == (3000, 300, 2700)
    assert (placed["orders"], placed["units"], placed["new_customers"], Decimal(placed["aov"])) == (1, 2, 1, 2700)
    assert (Decimal(refunded["refunds"]), Decimal(refunded["net_sales"]), refunded["aov"]) == (1350, -1350, None)


def test_a_quarterly_kwd_subscription_cancelled_at_once_in_kathmandu(tmp_path):
    """30.000 KWD a quarter from 06-20 00:00 (+05:45) is 10.000 KWD of MRR, reported in USD at the
    day's rates (0.3321 KWD and 1.0812 USD per euro, both ×1.0371 from 2026-05-29); cancelled at
    once five days and an hour later: churn on 06-25. Subscriber churn rate then: 1 / (0 + 1)."""
    sub = matrix.Subscription(customer=0, day=10, minute=0, trial_days=0, cadence="quarter", unit_amount=30000,
                              quantity=1, change_after=None, new_unit_amount=0, new_quantity=0, cancel_after=5,
                              at_period_end=False)
    saas = matrix.Tenant("hand-saas", "plain", "saas", "KWD", "USD", "Asia/Kathmandu",
                         customer_currencies=("KWD",), subscriptions=(sub,))
    store = served(tmp_path, saas)
    result = matrix.truth(store, now=store.clock)["hand-saas"]
    days = result["days"]
    usd = Decimal("10") * Decimal("1.1213") / Decimal("0.3444")  # moved rates: 1.0812 and 0.3321 × 1.0371
    assert matrix.rates(AS_OF)["2026-05-29"] == {**matrix.rates(AS_OF)["2026-05-29"], "USD": "1.1213", "KWD": "0.3444"}
    assert min(days) == "2026-06-20"
    assert abs(Decimal(days["2026-06-20"]["mrr"]) - usd) < Decimal("1e-9")
    assert abs(Decimal(days["2026-06-20"]["new_mrr"]) - usd) < Decimal("1e-9")
    assert Decimal(days["2026-06-24"]["mrr"]) == Decimal(days["2026-06-20"]["mrr"])
    cancelled = days["2026-06-25"]
    assert (Decimal(cancelled["mrr"]), cancelled["active_customers"], cancelled["churned_subscriptions"]) == (0, 0, 1)
    assert abs(Decimal(cancelled["churned_mrr"]) - usd) < Decimal("1e-9")
    assert (Decimal(cancelled["subscriber_churn_rate"]), cancelled["customers_at_risk_30d"]) == (1, 1)
    assert result["by_currency"]["KWD"]["2026-06-21"] == {"mrr": "10.000000000000", "active_customers": 1,
                                                          "active_subscriptions": 1}


def test_shopify_amounts_carry_their_currencys_decimals():
    """Shopify's decimal strings: none for JPY and CLP, three for KWD, two for USD; and back."""
    assert [Money(code).v2(12345)["amount"] for code in ("JPY", "CLP", "KWD", "USD")] == ["12345", "12345", "12.345",
                                                                                        "123.45"]
    assert (decimal_string(-5, 3), cents("12.345", 3), cents("12345", 0), cents("-0.5", 2)) == ("-0.005", 12345,
                                                                                              12345, -50)
    assert bag_cents(Money("KWD").bag(7)) == 7


def test_abos_sandbox_truth_matrix_writes_the_tenants_rates_and_truth(tmp_path, monkeypatch):
    from pipelines.cli import main

    monkeypatch.setenv("ABOS_HOME", str(tmp_path))
    out = tmp_path / "truth.json"
    assert main(["sandbox", "truth", "--matrix", "8", "--seed", "3", "--as-of", "2026-04-20", "-o", str(out)]) == 0
    written = tmp_path / "sandbox" / "matrix-8-seed3-2026-04-20.json"
    assert written.read_text() == json.dumps(matrix.fixture(matrix.tenant_matrix(8, 3), date(2026, 4, 20)))
    assert written.with_name(written.stem + "-rates.csv").read_text() == matrix.operator_rates_csv(date(2026, 4, 20))
    workspaces = json.loads(out.read_text())["workspaces"]
    assert sorted(workspaces) == [f"matrix-{i:02d}" for i in range(8)]
    assert {w["vertical"] for w in workspaces.values()} == {"ecommerce", "saas"}
