"""Anomaly detection on synthetic series whose anomalies are known by construction."""

import numpy as np
import pandas as pd
import pytest

from pipelines.insights.anomalies import cadence, detect, detect_many, week_over_week
from pipelines.insights.synthetic import metric_frame

# Mon..Sun shape of a store's week: Friday busiest, weekend quiet.
WEEK = np.array([1000.0, 1100.0, 1050.0, 1000.0, 1200.0, 700.0, 600.0])
START = "2024-01-01"  # a Monday, so position % 7 is the weekday


def usual(day: int) -> float:
    """The series' value on `day` before its irregular swings: weekly shape × 30% yearly growth."""
    return WEEK[day % 7] * (1 + 0.3 * day / 365)


def weekly(days: int) -> pd.Series:
    """A growing store's daily sales with irregular swings of up to ±45 on no weekly rhythm.

    The swings are deterministic, so every flag in the behaviour tests comes from what the test
    injected; random noise is tested for its false-alert rate separately.
    """
    t = np.arange(days)
    swings = 30 * np.sin(2 * np.pi * t / 10.3) + 15 * np.sin(2 * np.pi * t / 3.7 + 1)
    values = np.array([usual(day) for day in t]) + swings
    return pd.Series(values, index=pd.date_range(START, periods=days, freq="D"), name="net_sales")


def flagged(result: pd.DataFrame) -> pd.DataFrame:
    return result[result["is_anomaly"]]


def test_weekly_seasonality_with_growth_and_swings_raises_no_alert_in_two_years():
    result = detect(weekly(730))
    judged = result["status"] != "insufficient_history"
    assert judged.sum() >= 730 - 42  # only the warm-up (six weeks) is left unjudged
    alerts = result.index[result["is_anomaly"]]
    assert len(alerts) == 0, f"{len(alerts)} false alerts: {list(alerts[:5])}"


def test_normal_noise_stays_within_the_false_alert_budget():
    # The budget is at most 1 false alert per metric per 90 days. 3σ normal noise alone
    # crosses the band 0.27% of the time (0.24 per 90 days); count what the detector really does.
    rng = np.random.default_rng(11)
    noise = rng.normal(0, 30, (730, 40))  # 3% of a weekday
    frame = pd.DataFrame(WEEK[np.arange(730) % 7, None] + noise, index=pd.date_range(START, periods=730))
    result = detect_many(frame)
    judged = (result["status"] != "insufficient_history").sum()
    alerts = int(result["is_anomaly"].sum())
    per_90_days = alerts / judged * 90
    assert per_90_days <= 1.0, f"{alerts} false alerts in {judged} judged days = {per_90_days:.2f} per 90 days"


def test_a_single_spike_and_a_single_dip_are_flagged_with_their_direction():
    series = weekly(300)
    series.iloc[200] *= 1.6  # day 200 = 28 weeks + 4 days: a Friday (usually 1200) at +60%
    series.iloc[250] *= 0.3  # day 250 = 35 weeks + 5 days: a Saturday (usually 700) at 30%
    result = detect(series)
    assert list(flagged(result).index) == [series.index[200], series.index[250]]
    assert result["direction"].iloc[200] == "up"
    assert result["direction"].iloc[250] == "down"
    assert result["score"].iloc[200] > 3 and result["score"].iloc[250] < -3
    # The expected value is the usual Friday (1200 × (1 + 0.3 × 200/365) ≈ 1397, give or take the
    # swings), not dragged by the spike itself.
    assert result["expected"].iloc[200] == pytest.approx(usual(200), abs=60)


def test_a_level_shift_is_flagged_once_then_becomes_the_new_normal():
    series = weekly(500)
    series.iloc[300:] *= 1.4  # a new sales channel: +40% every day from day 300 on
    result = detect(series)
    after = result.iloc[300:]
    assert list(flagged(after).index) == [series.index[300]]
    assert after["direction"].iloc[0] == "up"
    # The next days are part of the same episode until the level re-anchors (half a week).
    assert set(after["status"].iloc[1:4]) <= {"continuing", "ok"}
    assert (after["status"].iloc[10:] == "ok").mean() > 0.98
    last_week = [usual(day) * 1.4 for day in range(493, 500)]
    assert after["expected"].iloc[-7:].mean() == pytest.approx(np.mean(last_week), rel=0.03)


def test_a_spike_on_top_of_an_ongoing_excursion_is_flagged_again():
    series = weekly(200)
    series.iloc[150] = usual(150) * 1.25  # a mild rise...
    series.iloc[151] = usual(151) * 3.0  # ...then, the next day, a far larger one
    result = detect(series)
    first, second = result.iloc[150], result.iloc[151]
    assert first["status"] == "anomaly" and second["score"] >= 2 * first["score"]
    assert second["status"] == "anomaly"  # not swallowed as "continuing"


def test_short_history_says_so_instead_of_flagging():
    series = weekly(30)
    series.iloc[-1] *= 5
    result = detect(series)
    assert (result["status"] == "insufficient_history").all()
    assert not result["is_anomaly"].any()
    assert result["score"].isna().all()


def test_verdicts_never_change_when_future_points_arrive():
    series = weekly(400)
    series.iloc[370:] *= 2  # the future holds a shift and a spike that must not leak backwards
    series.iloc[390] = 0
    early = detect(series.iloc[:365])
    later = detect(series)
    pd.testing.assert_frame_equal(later.iloc[:365], early, check_exact=True)


def test_an_earlier_outlier_does_not_inflate_the_band():
    clean = weekly(300)
    dirty = clean.copy()
    dirty.iloc[150] *= 10  # a data glitch: ten times a normal day
    width_clean = (detect(clean)["upper"] - detect(clean)["lower"]).iloc[160:230]
    width_dirty = (detect(dirty)["upper"] - detect(dirty)["lower"]).iloc[160:230]
    # A standard deviation over the last 84 days would grow from ~30 to ~sqrt(9000² / 84) ≈ 980,
    # a 30-fold widening. The robust band's median over 12 cycles moves by one order statistic
    # when one cycle is spoilt: about a tenth.
    assert (width_dirty / width_clean).max() < 1.25


def test_hourly_data_uses_a_daily_cycle():
    hours = 24 * 40
    rng = np.random.default_rng(3)
    hour_of_day = np.arange(hours) % 24
    values = 100 + 80 * np.sin((hour_of_day - 9) / 24 * 2 * np.pi) + rng.uniform(-5, 5, hours)
    series = pd.Series(values, index=pd.date_range("2024-03-01", periods=hours, freq="h"))
    at_3am = 24 * 35 + 3
    series.iloc[at_3am] = 180  # a normal 3 pm value, but at 3 am
    assert cadence(series.index).cycle == 24
    seasonal = detect(series)
    assert list(flagged(seasonal).index) == [series.index[at_3am]]
    # Without the daily profile, 180 sits inside the swing of the last day and is not unusual.
    assert not detect(series, seasonality=None)["is_anomaly"].iloc[at_3am]


def test_missing_values_are_reported_and_skipped():
    series = weekly(200)
    series.iloc[120:123] = np.nan
    series = series.drop(series.index[150])  # a day absent from the index altogether
    result = detect(series)
    assert (result["status"].iloc[120:123] == "missing").all()
    assert len(result) == len(series)
    assert not result["is_anomaly"].any()
    assert (result["status"].iloc[130:] == "ok").mean() > 0.97


def test_a_zero_day_in_a_flat_zero_history_is_normal_and_a_sale_is_not():
    series = pd.Series(0.0, index=pd.date_range(START, periods=100, freq="D"))
    series.iloc[90] = 50.0
    result = detect(series)
    assert result["status"].iloc[89] == "ok"
    assert result["is_anomaly"].iloc[90] and result["direction"].iloc[90] == "up"


def test_detect_many_matches_detect_and_takes_per_series_sensitivity():
    a, b = weekly(200), weekly(200) / 40 + 3  # net sales, and orders of about 25-30 a day
    a.iloc[150] *= 1.25  # +25%: about 6 band deviations
    frame = pd.DataFrame({("shop", "net_sales"): a, ("shop", "orders"): b})
    frame.columns.names = ["workspace", "metric"]
    loose = {("shop", "net_sales"): 20.0, ("shop", "orders"): 3.0}
    many = detect_many(frame, sensitivity=loose)
    assert many.index.names == ["workspace", "metric", "timestamp"]
    one = detect(b, sensitivity=3.0)
    pd.testing.assert_frame_equal(many.loc[("shop", "orders")], one, check_names=False, check_freq=False)
    assert not many.loc[("shop", "net_sales")]["is_anomaly"].any()  # 6 deviations < 20
    strict = detect_many(frame, anomalies_only=True)
    assert list(strict.index) == [("shop", "net_sales", a.index[150])]
    # `at`: the same rows as the whole result's at those days, and no others
    days = [a.index[150], a.index[199]]
    pd.testing.assert_frame_equal(detect_many(frame, sensitivity=loose, at=days),
                                  many[many.index.get_level_values("timestamp").isin(days)])


def test_week_over_week_is_its_own_rule_with_a_threshold():
    index = pd.date_range(START, periods=15, freq="D")
    series = pd.Series([100.0] * 7 + [125.0, 60.0, 0.0, 100.0, 100.0, 100.0, 100.0, 50.0], index=index)
    series.iloc[2] = 0.0  # a zero base: no week-over-week ratio on day 9
    result = week_over_week(series, threshold=0.3)
    assert result["change"].iloc[7] == pytest.approx(0.25)  # 125 vs 100: below the threshold
    assert result["change"].iloc[8] == pytest.approx(-0.40)  # 60 vs 100
    assert np.isnan(result["change"].iloc[9])  # 0 vs a zero base
    assert result["change"].iloc[14] == pytest.approx(-0.60)  # 50 vs day 7's 125
    assert list(result.index[result["is_anomaly"]]) == [index[8], index[14]]
    assert result["direction"].iloc[8] == "down"
    assert result["previous"].iloc[:7].isna().all()


@pytest.mark.parametrize(
    "index, message",
    [
        (pd.RangeIndex(10), "timestamps"),
        (pd.date_range(START, periods=10, freq="W"), "daily or hourly"),
        (pd.DatetimeIndex([START, START, "2024-01-02"]), "duplicate"),
    ],
)
def test_series_that_are_not_daily_or_hourly_are_refused(index, message):
    with pytest.raises(ValueError, match=message):
        detect(pd.Series(1.0, index=index))


def test_a_seasonality_that_does_not_fit_the_data_is_refused():
    with pytest.raises(ValueError, match="does not fit daily data"):
        detect(weekly(60), seasonality="daily")


def test_synthetic_scan_finds_the_injected_anomalies():
    # 200 series: enough injected anomalies (~380) that the recall is measured to about ±2%.
    synthetic = metric_frame(workspaces=20, metrics=10, days=400, seed=3)
    assert synthetic.frame.shape == (400, 200)
    again = metric_frame(workspaces=20, metrics=10, days=400, seed=3)
    pd.testing.assert_frame_equal(synthetic.frame, again.frame)  # seeded: the same input every time

    found = detect_many(synthetic.frame, anomalies_only=True).index.to_frame(index=False)
    hits = synthetic.truth.merge(found, on=["workspace", "metric", "date"])
    assert len(synthetic.truth) > 300
    # Injected anomalies are ×1.6 or more, ×0.5 or less, or shifts of ×1.5 / ×0.6, on metrics
    # whose noise is 5% (amounts) or Poisson (counts, some of them small): most must be found.
    assert len(hits) / len(synthetic.truth) >= 0.85, f"{len(hits)} of {len(synthetic.truth)} found"


# --- seasonality of business series: hour of week, holidays, last year, counts -----------------


def test_hourly_data_uses_an_hour_of_week_profile():
    # Evenings are busy on weekdays, afternoons at weekends: 180 at 3 pm is a normal Saturday but
    # three times a normal Tuesday. An hour-of-day profile averages the two and sees nothing.
    hours = pd.date_range("2024-03-04", periods=24 * 7 * 8, freq="h")  # 8 weeks from a Monday
    weekend = hours.day_of_week >= 5
    peak = np.where(weekend, 15, 19)
    values = 20 + 160 * np.exp(-0.5 * ((hours.hour - peak) / 2.5) ** 2)
    rng = np.random.default_rng(5)
    series = pd.Series(values * rng.uniform(0.97, 1.03, len(hours)), index=hours)
    tuesday_3pm = hours.get_loc(pd.Timestamp("2024-04-23 15:00"))  # week 8
    series.iloc[tuesday_3pm] = series.iloc[tuesday_3pm - 3 * 24]  # Saturday's 3 pm value
    assert cadence(hours).period == 168
    assert detect(series)["is_anomaly"].iloc[tuesday_3pm]
    assert not detect(series, seasonality="daily")["is_anomaly"].iloc[tuesday_3pm]


def years_of_sales(years: int = 3) -> pd.Series:
    """A US store's daily sales over whole years, with Black Friday at ×3 every year."""
    days = pd.date_range("2023-01-02", periods=364 * years, freq="D")
    rng = np.random.default_rng(8)
    values = WEEK[days.day_of_week.to_numpy()] * rng.normal(1, 0.03, len(days))
    black_fridays = [pd.Timestamp(d) for d in ("2023-11-24", "2024-11-29", "2025-11-28")]
    for day in black_fridays:
        if day in days:
            values[days.get_loc(day)] *= 3
    return pd.Series(values, index=days)


def test_a_holiday_is_excused_the_first_year_then_compared_with_the_same_holiday():
    # Black Friday moves (Nov 24, 2023; Nov 29, 2024): it is found by name, not by date.
    series = years_of_sales(2)
    result = detect(series, calendar="US")
    assert result.loc["2023-11-24", "status"] == "holiday"  # no Black Friday a year before
    assert result.loc["2023-11-24", "holiday"] == "Black Friday"
    assert result.loc["2024-11-29", "status"] in ("ok", "recurring")  # ×3 as last year
    assert result.loc["2024-11-29", "expected"] == pytest.approx(3 * WEEK[4], rel=0.1)
    assert not result["is_anomaly"].any()
    # Without the calendar both Black Fridays are surprises.
    plain = detect(series, calendar=None)
    assert plain.loc["2023-11-24", "is_anomaly"] and plain.loc["2024-11-29", "is_anomaly"]
    # A Black Friday that flops (an ordinary Friday) is news against last year's.
    flop = series.copy()
    flop.loc["2024-11-29"] /= 3
    found = detect(flop, calendar="US").loc["2024-11-29"]
    assert found["is_anomaly"] and found["direction"] == "down"


def test_a_yearly_promotion_alerts_once_then_is_recurring():
    series = years_of_sales(3)
    for day in ("2023-06-15", "2024-06-15", "2025-06-15"):  # the store's anniversary sale, ×2.2
        series.loc[day] *= 2.2
    result = detect(series, calendar=None)
    assert result.loc["2023-06-15", "is_anomaly"]  # news the first time
    for day in ("2024-06-15", "2025-06-15"):
        assert result.loc[day, "status"] == "recurring" and not result.loc[day, "is_anomaly"]
    # A one-off spike a year later on another day is still news.
    series.loc["2025-03-12"] *= 2.2
    assert detect(series, calendar=None).loc["2025-03-12", "is_anomaly"]


def test_low_counts_get_a_count_model_with_a_band_that_never_goes_below_zero():
    # Churned subscriptions: about 2 a day (Poisson). A normal band around a median of 2 is
    # crossed by an ordinary 7; the count model says 7 is a 1-in-200 day, 14 is news.
    rng = np.random.default_rng(21)
    counts = pd.DataFrame(rng.poisson(2.0, (730, 40)).astype(float),
                          index=pd.date_range(START, periods=730, freq="D"))
    result = detect_many(counts)
    last = result.index.get_level_values(-1) == counts.index[-1]  # the count bands of `at` are the same
    pd.testing.assert_frame_equal(detect_many(counts, at=[counts.index[-1]]), result[last])
    judged = result[result["status"] != "insufficient_history"]
    assert (judged["lower"] >= 0).all()
    alerts_per_90_days = judged["is_anomaly"].sum() / len(judged) * 90
    assert alerts_per_90_days <= 0.2, alerts_per_90_days
    one = counts[0].copy()
    one.iloc[500] = 14
    assert detect(one)["is_anomaly"].iloc[500]
    assert 6 <= detect(one)["upper"].iloc[500] <= 11  # Poisson(2)'s 4-sigma quantile is 9-10
    one.iloc[500] = 6
    assert not detect(one)["is_anomaly"].iloc[500]
    # told that the values are not counts (a level), the normal band judges them instead
    assert detect(one, counts=False)["upper"].iloc[500] != detect(one)["upper"].iloc[500]


def test_a_metric_at_its_usual_zero_is_never_an_anomaly():
    # Contraction MRR: 0 on most days, a lump of a few hundred on some. A 0 day is never news,
    # whatever the lumps made the expected value.
    rng = np.random.default_rng(4)
    days = pd.date_range(START, periods=400, freq="D")
    lumps = np.where(rng.random(400) < 0.3, rng.lognormal(5.5, 0.8, 400), 0.0)
    result = detect(pd.Series(lumps, index=days))
    assert not result.loc[lumps == 0, "is_anomaly"].any()
    assert (result["lower"].dropna() >= 0).all()


def test_a_shop_with_two_weeks_of_history_is_scanned_without_flags():
    """A new shop (15 days, fewer than the count forecast's window) is judged as too young, not an error."""
    from pipelines.insights.scan import find_anomalies
    from pipelines.packs import pack_for

    pack = pack_for("ecommerce")
    dates = pd.date_range("2026-03-02", periods=15, freq="D")
    daily = pd.DataFrame({"date": dates.date, **{metric.name: np.arange(15.0) % 3 for metric in pack.metrics}})
    found = find_anomalies(daily, pack, "new-shop")
    assert found.empty
