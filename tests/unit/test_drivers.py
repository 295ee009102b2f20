"""Drivers: hand-worked splits of an anomaly's gap into the slices that made it."""

import warnings

import pandas as pd
import pytest

from pipelines.insights.drivers import UNATTRIBUTED, explain
from pipelines.packs import pack_for

HISTORY = pd.date_range("2024-01-01", "2024-03-11", freq="D")  # ten weeks, Monday to Monday
DAY = pd.Timestamp("2024-03-12")  # a Tuesday

NET_SALES = pack_for("ecommerce").metric("net_sales")
AOV = pack_for("ecommerce").metric("aov")


def rows(dimension: str, daily: dict[str, dict[str, float]], on_day: dict[str, dict[str, float]]) -> list[dict]:
    """Long slice rows: the same `daily` values every history day, then `on_day` on DAY."""
    out = []
    for date in HISTORY:
        out += [{"date": date, "dimension": dimension, "value": value, **measures} for value, measures in daily.items()]
    out += [{"date": DAY, "dimension": dimension, "value": value, **measures} for value, measures in on_day.items()]
    return out


def store_with_a_tent_drop() -> pd.DataFrame:
    # Usual day: Trail Tent 500 (US 400, CA 100), Camp Stove 300 (US 100, CA 200),
    # Headlamp 200 (US 100, CA 100): 1000 in all, US 600 and CA 400.
    # On DAY Trail Tent sells 90 (−82%) in the same US/CA proportions: US 72, CA 18.
    products = rows(
        "product",
        {"Trail Tent": {"net_sales": 500.0}, "Camp Stove": {"net_sales": 300.0}, "Headlamp": {"net_sales": 200.0}},
        {"Trail Tent": {"net_sales": 90.0}, "Camp Stove": {"net_sales": 300.0}, "Headlamp": {"net_sales": 200.0}},
    )
    countries = rows(
        "country",
        {"US": {"net_sales": 600.0}, "CA": {"net_sales": 400.0}},
        {"US": {"net_sales": 72.0 + 100 + 100}, "CA": {"net_sales": 18.0 + 200 + 100}},
    )
    return pd.DataFrame(products + countries)


def test_the_product_that_dropped_is_the_top_driver_with_hand_worked_shares():
    # Total: 590 against 1000 usual, a gap of −410.
    drivers = explain(store_with_a_tent_drop(), metric=NET_SALES, date=DAY, actual=590.0, expected=1000.0)
    by_slice = drivers.set_index(["dimension", "value"])

    top = drivers.iloc[0]
    assert (top["dimension"], top["value"]) == ("product", "Trail Tent")
    assert top["expected"] == pytest.approx(500.0)
    assert top["contribution"] == pytest.approx(-410.0)  # 90 − 500
    assert top["share"] == pytest.approx(1.0)  # −410 / −410
    assert top["change"] == pytest.approx(-0.82)  # 90 / 500 − 1
    assert top["phrase"] == "product Trail Tent −82% vs usual Tuesdays, 100% of the drop"

    assert by_slice.loc[("product", "Camp Stove"), "contribution"] == pytest.approx(0.0)
    # Countries carry the drop along: US 272 − 600 = −328 → 328/410 = 80%, CA 318 − 400 = −82 → 20%.
    assert by_slice.loc[("country", "US"), "share"] == pytest.approx(0.80)
    assert by_slice.loc[("country", "CA"), "share"] == pytest.approx(0.20)
    # US explains 80% of the drop but is 60% of sales (+20 points); Trail Tent explains 100% of it
    # while being 50% of sales (+50 points): the tent ranks first, the US second.
    assert by_slice.loc[("country", "US"), "usual_share"] == pytest.approx(0.60)
    assert list(drivers["value"][:2]) == ["Trail Tent", "US"]
    assert UNATTRIBUTED not in set(drivers["value"])


def test_contributions_of_each_dimension_add_up_to_the_gap():
    drivers = explain(store_with_a_tent_drop(), metric=NET_SALES, date=DAY, actual=590.0, expected=1000.0)
    assert drivers.groupby("dimension")["contribution"].sum().tolist() == pytest.approx([-410.0, -410.0])


def test_a_baseline_gap_the_slices_cannot_explain_is_shown_as_unattributed():
    # The detector expected 1010, the slices' usual values add up to 1000: 10 of the 420 stay open.
    drivers = explain(store_with_a_tent_drop(), metric=NET_SALES, date=DAY, actual=590.0, expected=1010.0)
    rest = drivers[drivers["value"] == UNATTRIBUTED].set_index("dimension")
    assert rest["contribution"].tolist() == pytest.approx([-10.0, -10.0])
    assert rest.loc["product", "share"] == pytest.approx(10 / 420)
    assert drivers.iloc[0]["value"] == "Trail Tent"
    assert drivers.iloc[0]["share"] == pytest.approx(410 / 420)


def test_a_ratio_metric_splits_into_rate_and_mix_that_sum_to_the_gap():
    # AOV is (gross − discounts) / orders; in net of discounts:
    # Usual day: US 100 orders, 8400 − 400 = 8000 (AOV 80); CA 50 orders, 6000 − 0 (AOV 120).
    #   AOV = 14000 / 150 = 93.33; weights US 2/3, CA 1/3.
    # On DAY: US 150 orders, 12600 − 600 = 12000 (AOV 80, more orders); CA 50, 5500 − 500 (AOV 100).
    #   AOV = 17000 / 200 = 85; weights US 3/4, CA 1/4. Gap = 85 − 280/3 = −25/3 = −8.33.
    # US: rate (80 − 80) × … = 0; mix (3/4 − 2/3) × ((80 + 80)/2 − 280/3) = 1/12 × −40/3 = −10/9.
    # CA: rate (100 − 120) × (1/3 + 1/4)/2 = −35/6; mix (1/4 − 1/3) × ((120 + 100)/2 − 280/3)
    #   = −1/12 × 50/3 = −25/18; total −65/9. Check: −10/9 − 65/9 = −75/9 = −25/3.
    # Shares: US (10/9)/(25/3) = 2/15 = 13%, CA 13/15 = 87%.
    slices = pd.DataFrame(rows(
        "country",
        {"US": {"gross_sales": 8400.0, "discounts": 400.0, "orders": 100.0},
         "CA": {"gross_sales": 6000.0, "discounts": 0.0, "orders": 50.0}},
        {"US": {"gross_sales": 12600.0, "discounts": 600.0, "orders": 150.0},
         "CA": {"gross_sales": 5500.0, "discounts": 500.0, "orders": 50.0}},
    ))
    drivers = explain(slices, metric=AOV, date=DAY, actual=85.0, expected=280 / 3)
    by_slice = drivers.set_index("value")

    assert by_slice.loc["US", "rate_effect"] == pytest.approx(0.0)
    assert by_slice.loc["US", "mix_effect"] == pytest.approx(-10 / 9)
    assert by_slice.loc["CA", "rate_effect"] == pytest.approx(-35 / 6)
    assert by_slice.loc["CA", "mix_effect"] == pytest.approx(-25 / 18)
    assert drivers["contribution"].sum() == pytest.approx(-25 / 3)
    assert by_slice.loc["CA", "share"] == pytest.approx(13 / 15)
    assert drivers.iloc[0]["value"] == "CA"
    assert by_slice.loc["CA", "expected"] == pytest.approx(120.0)  # the slice's own AOV
    assert by_slice.loc["CA", "change"] == pytest.approx(100 / 120 - 1)
    assert drivers.iloc[0]["phrase"] == "country CA Average order value −17% vs usual Tuesdays, 87% of the drop"


def test_a_ratio_whose_slices_usually_have_no_denominator_is_all_mix_against_the_expected_ratio():
    # A small shop with no orders on usual Tuesdays: every slice's usual orders are 0, so there is no
    # usual AOV or weight. On DAY: US 2 orders, 200 (AOV 100); CA 1 order, 60 (AOV 60); AOV 260/3.
    # The detector expected 90 (the metric's own history): gap 260/3 − 90 = −10/3. Each slice is
    # today's weight × (its AOV − 90): US 2/3 × 10 = 20/3, CA 1/3 × −30 = −10; sum −10/3.
    slices = pd.DataFrame(rows(
        "country",
        {"US": {"gross_sales": 0.0, "discounts": 0.0, "orders": 0.0},
         "CA": {"gross_sales": 0.0, "discounts": 0.0, "orders": 0.0}},
        {"US": {"gross_sales": 200.0, "discounts": 0.0, "orders": 2.0},
         "CA": {"gross_sales": 60.0, "discounts": 0.0, "orders": 1.0}},
    ))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no division by a zero denominator
        drivers = explain(slices, metric=AOV, date=DAY, actual=260 / 3, expected=90.0)
    by_slice = drivers.set_index("value")
    assert by_slice.loc["US", "contribution"] == pytest.approx(20 / 3)
    assert by_slice.loc["CA", "contribution"] == pytest.approx(-10.0)
    assert by_slice.loc["CA", "mix_effect"] == pytest.approx(-10.0)
    assert by_slice.loc["CA", "rate_effect"] == pytest.approx(0.0)
    assert by_slice.loc["CA", "share"] == pytest.approx(3.0)  # −10 of a −10/3 drop, US offsetting
    assert UNATTRIBUTED not in set(drivers["value"])
    assert drivers.iloc[0]["value"] == "CA"


def test_a_slice_new_on_the_day_is_explained_against_none():
    frame = store_with_a_tent_drop()
    launch = pd.DataFrame([{"date": DAY, "dimension": "product", "value": "Kayak", "net_sales": 700.0}])
    slices = pd.concat([frame[frame["dimension"] == "product"], launch])
    slices.loc[(slices["date"] == DAY) & (slices["value"] == "Trail Tent"), "net_sales"] = 500.0
    # Only the kayak is new: 1700 against 1000, and the kayak is all of the +700.
    drivers = explain(slices, metric=NET_SALES, date=DAY, actual=1700.0, expected=1000.0)
    top = drivers.iloc[0]
    assert top["value"] == "Kayak" and top["share"] == pytest.approx(1.0)
    assert top["phrase"] == "product Kayak 700.00 vs none on usual Tuesdays, 100% of the rise"


def test_only_the_metric_dimensions_are_explained():
    # Orders cannot be split by product (an order holds several): product rows are ignored.
    frame = store_with_a_tent_drop().rename(columns={"net_sales": "orders"})
    drivers = explain(frame, metric=pack_for("ecommerce").metric("orders"), date=DAY, actual=590.0,
                      expected=1000.0)
    assert set(drivers["dimension"]) == {"country"}


def test_missing_measure_columns_are_named():
    with pytest.raises(ValueError, match=r"lack columns \['discounts', 'gross_sales', 'orders'\]"):
        explain(store_with_a_tent_drop(), metric=AOV, date=DAY, actual=1.0, expected=2.0)


def test_a_sparse_metric_is_explained_against_each_slice_usual_size():
    # Churn happens on one day in seven: 70 in USD (Starter 50, Business 20), EUR none. Its usual
    # value on any other day is (next to) 0 in every slice, so usual sizes come from the history: USD 100%,
    # Starter 5/7, Business 2/7. On DAY Business churns 300 (USD): USD carries 100% of the rise
    # as usual, Business carries 100% against its usual 2/7 and is the driver.
    churn = pack_for("saas").metric("churned_subscriptions")
    out = []
    for date in HISTORY[::7]:
        out += [{"date": date, "dimension": "plan", "value": "Starter", "churned_subscriptions": 50.0},
                {"date": date, "dimension": "plan", "value": "Business", "churned_subscriptions": 20.0},
                {"date": date, "dimension": "billing_currency", "value": "USD", "churned_subscriptions": 70.0}]
    out += [{"date": DAY, "dimension": "plan", "value": "Business", "churned_subscriptions": 300.0},
            {"date": DAY, "dimension": "billing_currency", "value": "USD", "churned_subscriptions": 300.0}]
    drivers = explain(pd.DataFrame(out), metric=churn, date=DAY, actual=300.0, expected=0.0)
    by_slice = drivers.set_index("value")
    assert by_slice.loc["USD", "usual_share"] == pytest.approx(1.0)
    assert by_slice.loc["Business", "usual_share"] == pytest.approx(2 / 7)
    # The count model expects a trace of churn on any day (its pseudo-event over four weeks, about
    # 0.07 here), so Business explains all of the rise but that trace.
    assert drivers.iloc[0]["value"] == "Business" and drivers.iloc[0]["share"] == pytest.approx(1.0, abs=1e-3)
