"""One workspace's scan: every finding kept with its impact, events, and the weekly alert budget."""

import numpy as np
import pandas as pd
import pytest

from pipelines.insights.calendar import calendar_for
from pipelines.insights.scan import find_anomalies
from pipelines.packs import pack_for
from tests.unit.test_reports import with_customer_base

ECOMMERCE = pack_for("ecommerce")
DAYS = pd.date_range("2024-01-01", "2025-06-29", freq="D")  # Monday to Sunday


def store(seed: int = 1) -> pd.DataFrame:
    """A quiet store: ~200 orders a day at $50, 2 units an order, 5% discounts, few refunds."""
    rng = np.random.default_rng(seed)
    orders = rng.poisson(200, len(DAYS)).astype(float)
    gross = orders * 50 * rng.normal(1, 0.01, len(DAYS))
    frame = pd.DataFrame({"date": DAYS.date, "orders": orders, "gross_sales": gross, "discounts": 0.05 * gross,
                          "refunds": 0.02 * gross, "units": 2 * orders,
                          "new_customers": np.round(0.3 * orders), "returning_customers": orders - np.round(0.3 * orders)})
    frame["net_sales"] = frame["gross_sales"] - frame["discounts"] - frame["refunds"]
    frame["aov"] = (frame["gross_sales"] - frame["discounts"]) / frame["orders"]
    return with_customer_base(frame)


def lift(frame: pd.DataFrame, day: str, factor: float) -> None:
    """Every amount and count of `day` times `factor` (AOV unchanged)."""
    at = frame["date"] == pd.Timestamp(day).date()
    for column in ("orders", "gross_sales", "discounts", "refunds", "units", "new_customers",
                   "returning_customers", "net_sales"):
        frame.loc[at, column] = np.round(frame.loc[at, column] * factor, 2)


def test_every_finding_is_kept_and_only_the_weeks_top_three_events_are_reported():
    frame = store()
    # Five unusual days in one week (2025-03-10 to 16), up and down in turn (each its own episode).
    # Net sales' gap on a usual ~$9,300 day: +$5,600, −$4,700, +$9,300, −$6,500, +$14,000.
    for day, factor in [("2025-03-10", 1.6), ("2025-03-11", 0.5), ("2025-03-12", 2.0), ("2025-03-13", 0.3),
                        ("2025-03-14", 2.5)]:
        lift(frame, day, factor)
    found = find_anomalies(frame, ECOMMERCE, "shop")
    week = found[pd.to_datetime(found["date"]).between("2025-03-10", "2025-03-16") & (found["rule"] == "band")]
    assert set(pd.to_datetime(week["date"]).dt.day) == {10, 11, 12, 13, 14}  # all kept
    assert week["event_id"].nunique() == 5  # one event a day, whatever the metrics moved
    reported = week[week["reported"]].sort_values("event_rank")
    assert len(reported) == 3 == ECOMMERCE.alert_budget
    # The most money at stake first (all five are far outside the band: confidence ~1); the
    # +60% day and the −50% day stay in the table only.
    assert [pd.Timestamp(day).day for day in reported["date"]] == [14, 12, 13]
    # Net sales' impact is its gap in money; orders' is its gap times the AOV of the 4 weeks before.
    row = week[(week["metric"] == "net_sales") & (pd.to_datetime(week["date"]).dt.day == 14)].iloc[0]
    assert row["impact"] == pytest.approx(abs(row["value"] - row["expected"]))
    orders = week[(week["metric"] == "orders") & (pd.to_datetime(week["date"]).dt.day == 14)].iloc[0]
    before = frame[(pd.to_datetime(frame["date"]) >= "2025-02-14") & (pd.to_datetime(frame["date"]) <= "2025-03-13")]
    aov = (before["gross_sales"] - before["discounts"]).sum() / before["orders"].sum()
    assert orders["impact"] == pytest.approx(abs(orders["value"] - orders["expected"]) * aov)
    assert 0.5 <= row["confidence"] <= 1


def test_directions_read_from_the_pack_not_from_signs():
    frame = store()
    at = frame["date"] == pd.Timestamp("2025-03-12").date()
    frame.loc[at, "refunds"] *= 20  # from 2% of gross sales to 40%
    frame["net_sales"] = frame["gross_sales"] - frame["discounts"] - frame["refunds"]
    found = find_anomalies(frame, ECOMMERCE, "shop")
    day = found[pd.to_datetime(found["date"]) == "2025-03-12"].set_index("metric")
    assert (day.loc["refunds", "direction"], day.loc["refunds", "outcome"]) == ("up", "bad")
    assert (day.loc["net_sales", "direction"], day.loc["net_sales", "outcome"]) == ("down", "bad")


def test_week_over_week_and_the_band_never_fire_twice_for_one_event():
    frame = store()
    for day in pd.date_range("2025-03-13", DAYS[-1]):  # a lasting fall of 40% from a Thursday
        lift(frame, str(day.date()), 0.6)
    found = find_anomalies(frame, ECOMMERCE, "shop")
    orders = found[found["metric"] == "orders"]
    band = orders[orders["rule"] == "band"]
    weekly = orders[orders["rule"] == "week_over_week"]
    assert list(pd.to_datetime(band["date"])) == [pd.Timestamp("2025-03-13")]
    # The week of the fall (−26%) and the next (−19% more) are below the 30% threshold or joined
    # to the band's event; whatever the weekly rule stores belongs to the same event, unreported.
    assert set(weekly["event_id"]) <= set(band["event_id"])
    assert not weekly["reported"].any()


def test_a_holiday_week_is_not_a_week_over_week_alert():
    # Black Friday weekend at ×3 lifts that week's total by more than 30%; the band excuses the
    # first Black Friday (no earlier one to compare with), so the weekly rule must stay quiet too.
    frame = store()
    for day in ("2024-11-29", "2024-11-30", "2024-12-01", "2024-12-02"):
        lift(frame, day, 3.0)
    found = find_anomalies(frame, ECOMMERCE, "shop", calendar=calendar_for("US", DAYS.date))
    around = found[pd.to_datetime(found["date"]).between("2024-11-25", "2024-12-15")]
    assert around.empty, around[["metric", "date", "rule", "value", "expected"]]
    plain = find_anomalies(frame, ECOMMERCE, "shop")  # without the calendar: news
    assert (pd.to_datetime(plain["date"]) == "2024-11-29").any()


def test_a_week_well_above_the_one_before_is_one_week_over_week_finding_on_its_sunday():
    # Monday 2025-03-10 to Sunday 2025-03-16 at 1.6 times the usual day, every metric's amounts and counts.
    frame = store()
    for day in pd.date_range("2025-03-10", "2025-03-16"):
        lift(frame, str(day.date()), 1.6)
    found = find_anomalies(frame, ECOMMERCE, "shop")
    weekly = found[(found["rule"] == "week_over_week") & (found["metric"] == "orders")]
    dates = pd.to_datetime(frame["date"])
    this_week = frame.loc[dates.between("2025-03-10", "2025-03-16"), "orders"].sum()
    week_before = frame.loc[dates.between("2025-03-03", "2025-03-09"), "orders"].sum()
    week_after = frame.loc[dates.between("2025-03-17", "2025-03-23"), "orders"].sum()
    # On the lifted week's Sunday: the weeks' sums, +60%, ±30% of last week as the band; and on the
    # next Sunday the fall back (−37.5%, "low": within ±50%), which the band's days agree with.
    assert list(pd.to_datetime(weekly["date"])) == [pd.Timestamp("2025-03-16"), pd.Timestamp("2025-03-23")]
    up, down = weekly.iloc[0], weekly.iloc[1]
    assert (up["value"], up["expected"]) == (pytest.approx(this_week), pytest.approx(week_before))
    assert up["score"] == pytest.approx(this_week / week_before - 1)
    assert (up["lower"], up["upper"]) == (pytest.approx(0.7 * week_before), pytest.approx(1.3 * week_before))
    assert (up["direction"], up["severity"]) == ("up", "medium")
    assert (down["value"], down["expected"]) == (pytest.approx(week_after), pytest.approx(this_week))
    assert down["score"] == pytest.approx(week_after / this_week - 1)
    assert (down["direction"], down["severity"]) == ("down", "low")
    # The same weeks for every summed metric the lift moved, and nothing else week over week.
    assert set(found.loc[found["rule"] == "week_over_week", "metric"]) == {
        "gross_sales", "net_sales", "new_customers", "orders", "returning_customers", "units"}


def product_slices(frame: pd.DataFrame, *, lifted: dict[str, str]) -> pd.DataFrame:
    """Each summed metric with a product dimension split over three products (50/30/20%); on each
    `lifted` day the named product carries everything above the usual day."""
    shares = {"Tent": 0.5, "Stove": 0.3, "Lamp": 0.2}
    usual = frame.drop(columns="date").median(numeric_only=True)
    rows = []
    for metric in ECOMMERCE.watched().metrics:
        if metric.ratio is not None or "product" not in metric.dimensions or metric.name not in frame:
            continue
        for day, value in zip(frame["date"], frame[metric.name]):
            base = min(value, usual[metric.name]) if day.isoformat() in lifted else value
            for product, share in shares.items():
                extra = value - base if lifted.get(day.isoformat()) == product else 0.0
                rows.append((day, metric.name, "product", product, base * share + extra))
    return pd.DataFrame(rows, columns=["date", "metric", "dimension", "dimension_value", "value"])


def test_drivers_of_unchanged_inputs_are_reused_and_changed_ones_recomputed():
    from pandas.testing import assert_frame_equal

    from pipelines.insights.scan import explain_anomalies

    frame = store()
    lift(frame, "2025-03-12", 1.8)
    lift(frame, "2025-05-14", 0.4)
    calendar = calendar_for("US", DAYS.date)
    found = find_anomalies(frame, ECOMMERCE, "shop", calendar=calendar)
    slices = product_slices(frame, lifted={"2025-03-12": "Lamp", "2025-05-14": "Tent"})
    fresh = explain_anomalies(found, slices, ECOMMERCE, calendar=calendar)
    explained = fresh.groupby("anomaly_id")["date"].first()
    early = explained[explained == pd.Timestamp("2025-03-12").date()].index
    late = explained[explained == pd.Timestamp("2025-05-14").date()].index
    assert len(early) and len(late)
    assert fresh.loc[fresh["anomaly_id"].isin(early) & (fresh["rank"] == 1), "dimension_value"].eq("Lamp").all()

    # Stored rows with the same inputs come back as they were stored (marked here to tell them apart).
    stored = fresh.assign(phrase="stored")
    again = explain_anomalies(found, slices, ECOMMERCE, calendar=calendar, known=stored)
    assert again["phrase"].eq("stored").all()
    assert_frame_equal(explain_anomalies(found, slices, ECOMMERCE, calendar=calendar, known=fresh), fresh)

    # A late change to a day between the two anomalies: the later one is explained again, the earlier kept.
    changed = slices.copy()
    changed.loc[(changed["date"] == pd.Timestamp("2025-04-01").date()) & (changed["dimension_value"] == "Stove"),
                "value"] *= 1.5
    recomputed = explain_anomalies(found, changed, ECOMMERCE, calendar=calendar)
    partly = explain_anomalies(found, changed, ECOMMERCE, calendar=calendar, known=stored)
    assert partly.loc[partly["anomaly_id"].isin(early), "phrase"].eq("stored").all()
    assert_frame_equal(partly[partly["anomaly_id"].isin(late)], recomputed[recomputed["anomaly_id"].isin(late)])
    assert not recomputed.loc[recomputed["anomaly_id"].isin(late), "inputs_digest"].isin(stored["inputs_digest"]).any()
    assert_frame_equal(explain_anomalies(found, changed, ECOMMERCE, calendar=calendar, known=fresh), recomputed)


def test_drivers_explained_from_only_their_metrics_slices_are_the_drivers_of_every_slice():
    """The drivers asset reads the slice rows `explained_slices` names, not every slice of the workspace:
    for each metric's anomalies alone, and for all of them, the drivers (and their inputs digests) must be
    those explained from every slice row."""
    from pandas.testing import assert_frame_equal

    from pipelines.insights.assets import explained_slices
    from pipelines.insights.scan import explain_anomalies

    frame = store()
    lift(frame, "2025-03-12", 1.8)
    calendar = calendar_for("US", DAYS.date)
    found = find_anomalies(frame, ECOMMERCE, "shop", calendar=calendar)
    rows = [(day, metric.name, "country", country, value * share)
            for metric in ECOMMERCE.watched().metrics if metric.ratio is None and "country" in metric.dimensions
            for day, value in zip(frame["date"], frame[metric.name]) for country, share in (("US", 0.7), ("CA", 0.3))]
    slices = pd.concat([product_slices(frame, lifted={"2025-03-12": "Lamp"}),
                        pd.DataFrame(rows, columns=["date", "metric", "dimension", "dimension_value", "value"])],
                       ignore_index=True)
    band = found[found["rule"] == "band"]
    assert {"orders", "net_sales"} <= set(band["metric"])
    explained = set()
    for metrics in [[name] for name in sorted(set(band["metric"]))] + [sorted(set(band["metric"]))]:
        anomalies = found[found["metric"].isin(metrics) | (found["rule"] != "band")]
        measures, dimensions = explained_slices(anomalies, ECOMMERCE)
        narrowed = slices[slices["metric"].isin(measures) & slices["dimension"].isin(dimensions)]
        assert len(narrowed) < len(slices) or len(metrics) > 1
        everything = explain_anomalies(anomalies, slices, ECOMMERCE, calendar=calendar)
        explained |= set(everything["metric"])
        assert_frame_equal(explain_anomalies(anomalies, narrowed, ECOMMERCE, calendar=calendar), everything)
    assert {"orders", "net_sales", "units"} <= explained  # by country only; by product and country
    assert explained_slices(found[found["metric"] == "orders"], ECOMMERCE) == (["orders"], ["country", "customer_type"])
    assert explained_slices(found[found["rule"] != "band"], ECOMMERCE) == ([], [])
    assert explain_anomalies(found, slices.iloc[:0], ECOMMERCE, calendar=calendar).empty  # the asset's read of none
