"""Weekly reports: week bounds in the workspace's timezone, every number against pandas worked out here."""

from __future__ import annotations

import io
import json
import re
from html import escape as html_escape
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from pipelines.insights import charts
from pipelines.insights.reports import (
    CHART_CID,
    Week,
    build_report,
    chart_panels,
    format_money,
    last_complete_week,
    write_report,
)
from pipelines.insights.summaries import check_numbers
from pipelines.insights.wording import Wording
from pipelines.packs import pack_for
from tests.drawn import charts_drawn

ECOMMERCE = pack_for("ecommerce")
SAAS = pack_for("saas")
THIS_WEEK = slice("2026-03-02", "2026-03-08")  # 2026-W10; US clocks go forward on Sunday 2026-03-08
LAST_WEEK = slice("2026-02-23", "2026-03-01")


def ecommerce_days(seed: int = 7) -> pd.DataFrame:
    """Fourteen weeks of random but consistent shop days (net = gross − discounts − refunds)."""
    rng = np.random.default_rng(seed)
    days = pd.date_range("2025-11-24", "2026-03-08", freq="D", name="date")
    frame = pd.DataFrame(index=days)
    frame["orders"] = rng.integers(20, 80, len(days)).astype(float)
    frame["gross_sales"] = (frame["orders"] * rng.uniform(40, 90, len(days))).round(2)
    frame["discounts"] = (frame["gross_sales"] * rng.uniform(0, 0.2, len(days))).round(2)
    frame["refunds"] = rng.uniform(0, 300, len(days)).round(2)
    frame["net_sales"] = frame["gross_sales"] - frame["discounts"] - frame["refunds"]
    frame["units"] = frame["orders"] * 2
    frame["aov"] = frame["gross_sales"] / frame["orders"]
    frame["new_customers"] = rng.integers(5, 30, len(days)).astype(float)
    frame["returning_customers"] = frame["orders"] - frame["new_customers"]
    return with_customer_base(frame)[list(ECOMMERCE.watched().metric_names)]


def with_customer_base(frame: pd.DataFrame) -> pd.DataFrame:
    """The customer-base levels (ecommerce_customer_metrics) of a frame of shop days: every new
    customer joins the base, one returning customer in four is a second purchase."""
    frame = frame.copy()
    frame["customers_to_date"] = frame["new_customers"].cumsum()
    frame["repeat_customers_to_date"] = (frame["returning_customers"] // 4).cumsum()
    frame["repeat_purchase_rate"] = frame["repeat_customers_to_date"] / frame["customers_to_date"]
    frame["net_sales_to_date"] = frame["net_sales"].cumsum()
    frame["net_sales_per_customer"] = frame["net_sales_to_date"] / frame["customers_to_date"]
    return frame


def saas_days() -> pd.DataFrame:
    """SaaS days whose stocks grow daily, so a week's last day differs from its sum and its mean."""
    days = pd.date_range("2025-11-24", "2026-03-08", freq="D", name="date")
    step = np.arange(len(days), dtype=float)
    frame = pd.DataFrame(index=days)
    frame["mrr"] = 10_000 + 37.5 * step
    frame["arr"] = frame["mrr"] * 12
    frame["active_customers"] = 100 + (step // 3)
    frame["active_subscriptions"] = frame["active_customers"] + 5
    frame["arpa"] = frame["mrr"] / frame["active_customers"]
    for column in ["net_new_mrr", "new_mrr", "expansion_mrr", "contraction_mrr", "churned_mrr",
                   "reactivation_mrr", "new_subscriptions", "churned_subscriptions"]:
        frame[column] = (step % 5) + 1
    # the SaaS ratios' parts (windows) and the ratios themselves
    frame["churned_customers_30d"], frame["customers_at_risk_30d"] = 3 + (step // 7), 100 + (step // 3)
    frame["churned_mrr_30d"], frame["mrr_at_risk_30d"] = 300 + step, 10_000 + 30 * step
    frame["mrr_at_month_start"], frame["retained_mrr"], frame["retained_gross_mrr"] = 10_000.0, 10_100.0, 9_800.0
    frame["trials_ended_30d"], frame["trials_converted_30d"] = 20.0, 8 + (step % 3)
    for name in ("subscriber_churn_rate", "mrr_churn_rate", "net_revenue_retention", "gross_revenue_retention",
                 "trial_conversion_rate"):
        frame[name] = SAAS.metric(name).value(frame)
    frame["ltv"] = frame["arpa"] / frame["subscriber_churn_rate"]
    return frame[list(SAAS.watched().metric_names)]


def metric(report, name):
    return next(item for item in report.facts["metrics"] if item["name"] == name)


def shop_report(**options):
    return build_report(workspace_id="demo-store", workspace_name="Demo Store", pack=ECOMMERCE,
                        daily=ecommerce_days(), week="2026-W10", timezone="America/New_York", currency="USD",
                        **options)


def test_last_complete_week_is_the_workspace_calendars():
    # Sunday 23:30 in New York is already Monday in UTC: New York's week W10 has not ended yet.
    late_sunday_new_york = datetime(2026, 3, 9, 3, 30, tzinfo=timezone.utc)
    assert last_complete_week(late_sunday_new_york, "America/New_York") == Week(2026, 9)
    assert last_complete_week(late_sunday_new_york, "UTC") == Week(2026, 10)
    # Monday 00:30 in Tokyo is still Sunday in UTC: Tokyo's W10 has ended, UTC's has not.
    early_monday_tokyo = datetime(2026, 3, 8, 15, 30, tzinfo=timezone.utc)
    assert last_complete_week(early_monday_tokyo, "Asia/Tokyo") == Week(2026, 10)
    assert last_complete_week(early_monday_tokyo, "UTC") == Week(2026, 9)
    with pytest.raises(ValueError, match="timezone-aware"):
        last_complete_week(datetime(2026, 3, 9), "UTC")


def test_iso_week_labels_at_year_ends():
    assert Week.containing(datetime(2026, 1, 1).date()).label == "2026-W01"
    assert Week.containing(datetime(2027, 1, 1).date()).label == "2026-W53"  # 2026 has 53 ISO weeks
    assert Week.parse("2026-W53").end.isoformat() == "2027-01-03"
    with pytest.raises(ValueError):
        Week.parse("2025-W53")


def test_week_across_a_dst_change_keeps_seven_local_days():
    report = shop_report()
    days = ecommerce_days()
    starts_at = datetime.fromisoformat(report.facts["week"]["starts_at"])
    ends_at = datetime.fromisoformat(report.facts["week"]["ends_at"])
    assert (report.period_start.isoformat(), report.period_end.isoformat()) == ("2026-03-02", "2026-03-08")
    assert starts_at.utcoffset() == timedelta(hours=-5) and ends_at.utcoffset() == timedelta(hours=-4)
    assert ends_at - starts_at == timedelta(hours=167)  # the Sunday lost an hour, not a day
    assert report.facts["week"]["days_with_data"] == 7
    assert metric(report, "orders")["current"] == days.loc[THIS_WEEK, "orders"].sum()
    # Europe's change falls on Sunday 2026-03-29, the last day of W13.
    berlin_start, berlin_end = Week(2026, 13).bounds("Europe/Berlin")
    # Same-zone datetimes subtract as wall clocks in Python: measure elapsed time in UTC.
    assert berlin_end.astimezone(timezone.utc) - berlin_start.astimezone(timezone.utc) == timedelta(hours=167)
    assert berlin_end.isoformat() == "2026-03-30T00:00:00+02:00"


def test_summed_and_ratio_metrics_week_over_week():
    report = shop_report()
    days = ecommerce_days()
    this, last = days.loc[THIS_WEEK], days.loc[LAST_WEEK]
    for name in ["net_sales", "gross_sales", "discounts", "refunds"]:
        facts = metric(report, name)
        assert facts["aggregation"] == "sum"
        assert facts["current"] == pytest.approx(round(this[name].sum(), 2), abs=1e-9)
        assert facts["previous"] == pytest.approx(round(last[name].sum(), 2), abs=1e-9)
        assert facts["display"]["current"] == f"${this[name].sum():,.2f}"
    orders = metric(report, "orders")
    assert (orders["current"], orders["previous"]) == (this["orders"].sum(), last["orders"].sum())
    change = this["orders"].sum() / last["orders"].sum() - 1
    assert orders["change_pct"] == pytest.approx(change * 100, abs=1e-4)
    assert orders["display"]["change"] == f"{change:+.1%}".replace("-", "−")
    # AOV is the week's sales after discounts over its orders, not the mean of the daily AOVs.
    aov = metric(report, "aov")
    assert aov["aggregation"] == "ratio"
    after_discounts = this["gross_sales"].sum() - this["discounts"].sum()
    assert aov["current"] == pytest.approx(round(after_discounts / this["orders"].sum(), 2))
    assert aov["current"] != pytest.approx(round(this["aov"].mean(), 2))


def test_stock_metrics_take_the_weeks_last_day():
    report = build_report(workspace_id="demo-saas", pack=SAAS, daily=saas_days(), week=Week(2026, 10),
                          timezone="Europe/Berlin", currency="EUR")
    days = saas_days()
    mrr = metric(report, "mrr")
    assert mrr["aggregation"] == "last_day"
    assert mrr["current"] == days.loc["2026-03-08", "mrr"]
    assert mrr["previous"] == days.loc["2026-03-01", "mrr"]
    assert mrr["display"]["current"] == f"€{days.loc['2026-03-08', 'mrr']:,.2f}"
    assert metric(report, "active_customers")["current"] == days.loc["2026-03-08", "active_customers"]
    arpa = metric(report, "arpa")  # a ratio of two stocks: both read on the last day
    assert arpa["current"] == pytest.approx(
        round(days.loc["2026-03-08", "mrr"] / days.loc["2026-03-08", "active_customers"], 2))
    new_mrr = metric(report, "new_mrr")
    assert new_mrr["current"] == days.loc[THIS_WEEK, "new_mrr"].sum()
    assert len(mrr["weekly"]) == 12 and mrr["weekly"][-1] == mrr["current"]


def test_top_movers_by_relative_change_with_good_and_bad():
    days = ecommerce_days()
    report = shop_report()
    changes = {}
    for name in ECOMMERCE.watched().metric_names:
        if name == "aov":
            this = days.loc[THIS_WEEK, "gross_sales"].sum() / days.loc[THIS_WEEK, "orders"].sum()
            last = days.loc[LAST_WEEK, "gross_sales"].sum() / days.loc[LAST_WEEK, "orders"].sum()
        else:
            this, last = days.loc[THIS_WEEK, name].sum(), days.loc[LAST_WEEK, name].sum()
        changes[name] = this / last - 1
    expected = sorted(changes, key=lambda name: -abs(changes[name]))[:5]
    movers = report.facts["movers"]
    assert [mover["metric"] for mover in movers] == expected
    for mover in movers:
        up = changes[mover["metric"]] > 0
        assert mover["outcome"] == ("good" if up == ECOMMERCE.metric(mover["metric"]).up_is_good else "bad")


def test_rising_refunds_are_bad_news():
    days = ecommerce_days()
    days.loc[THIS_WEEK, "refunds"] *= 3
    report = build_report(workspace_id="s", pack=ECOMMERCE, daily=days, week="2026-W10", timezone="UTC",
                          currency="USD")
    assert report.facts["movers"][0]["metric"] == "refunds"
    assert report.facts["movers"][0]["outcome"] == "bad"


def anomaly_frames():
    anomalies = pd.DataFrame([
        {"anomaly_id": "a-refunds", "metric": "refunds", "date": "2026-03-04", "value": 912.5,
         "expected": 150.0, "lower": 20.0, "upper": 280.0, "score": 6.25, "severity": "high",
         "direction": "up", "rule": "seasonal"},
        {"anomaly_id": "a-orders", "metric": "orders", "date": "2026-03-06", "value": 12.0, "expected": 55.0,
         "lower": 35.0, "upper": 75.0, "score": -4.4, "severity": "medium", "direction": "down",
         "rule": "seasonal"},
        {"anomaly_id": "a-old", "metric": "orders", "date": "2026-02-20", "value": 1.0, "expected": 50.0,
         "lower": 30.0, "upper": 70.0, "score": -5.0, "severity": "high", "direction": "down",
         "rule": "seasonal"},
    ])
    drivers = pd.DataFrame([
        {"anomaly_id": "a-refunds", "rank": rank, "dimension": "product", "value": value, "share": share,
         "phrase": f"product {value} +{pct}% vs usual Wednesdays, {round(share * 100)}% of the rise"}
        for rank, value, share, pct in [(2, "Mug", 0.12, 40), (1, "Trail Tent", 0.81, 610),
                                        (3, "Cap", 0.05, 9), (4, "Sock", 0.02, 1)]
    ] + [{"anomaly_id": "a-orders", "rank": 1, "dimension": "country", "value": "DE", "share": 0.64,
          "phrase": "country DE −90% vs usual Fridays, 64% of the drop"}])
    return anomalies, drivers


def test_the_weeks_anomalies_with_their_top_drivers():
    anomalies, drivers = anomaly_frames()
    report = shop_report(anomalies=anomalies, drivers=drivers)
    shown = report.facts["anomalies"]
    assert [item["id"] for item in shown] == ["a-refunds", "a-orders"]  # a-old is from an earlier week
    refunds = shown[0]
    assert refunds["display"] == {"value": "$912.50", "expected": "$150.00", "band": "$20.00 to $280.00",
                                  "score": "6.2", "direction": "above expected, bad news", "severity": "high",
                                  "impact": "n/a"}
    assert refunds["outcome"] == "bad"  # the pack: refunds up is bad news
    assert [driver["value"] for driver in refunds["drivers"]] == ["Trail Tent", "Mug", "Cap"]
    assert refunds["drivers"][0]["share_pct"] == 81.0
    assert report.facts["counts"]["anomalies"] == 2
    for rendering in (report.text, report.html, report.markdown):
        assert "2026-03-04" in rendering and "$912.50" in rendering
    for phrase in ["product Trail Tent +610% vs usual Wednesdays, 81% of the rise",
                   "country DE −90% vs usual Fridays, 64% of the drop"]:
        assert phrase in report.text and phrase in report.html
    assert "Sock" not in report.text  # only the top three drivers
    assert "2026-02-20" not in report.text


class _TextOf(HTMLParser):
    """The text a reader sees in the body (the <title> repeats the heading)."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._in_title = False

    def handle_starttag(self, tag: str, _attrs: object) -> None:
        self._in_title = self._in_title or tag == "title"

    def handle_endtag(self, tag: str) -> None:
        self._in_title = self._in_title and tag != "title"

    def handle_data(self, data: str) -> None:
        if not self._in_title:
            self.parts.append(data)


def numbers_in(text: str) -> list[str]:
    return sorted(re.findall(r"[+−-]?[$€]?\d[\d,]*(?:\.\d+)?%?", text))


def test_text_and_html_show_the_same_numbers_all_from_the_facts():
    anomalies, drivers = anomaly_frames()
    report = shop_report(anomalies=anomalies, drivers=drivers)
    parser = _TextOf()
    parser.feed(report.html)
    html_text = " ".join(parser.parts)
    text_numbers, html_numbers = numbers_in(report.text), numbers_in(html_text)
    # The text numbers its movers and drivers ("1."); HTML lists number themselves.
    list_ranks = re.findall(r"^\s+(\d)\.", report.text, flags=re.MULTILINE)
    for rank in list_ranks:
        text_numbers.remove(rank)
    assert text_numbers == html_numbers
    for item in report.facts["metrics"]:
        for shown in item["display"].values():
            assert shown in report.text and shown in html_text
    # Every number shown is a fact: the summary's fact check finds nothing unknown in either.
    assert check_numbers(report.text, report.facts) == []
    assert check_numbers(html_text, report.facts) == []


def test_chart_is_a_png_and_files_are_written(tmp_path):
    report = shop_report()
    png = report.charts["chart.png"]
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    image = matplotlib.image.imread(io.BytesIO(png), format="png")
    assert image.shape[0] > 200 and image.shape[1] > 400
    written = write_report(report, tmp_path / "reports" / "demo-store" / report.week)
    assert sorted(written) == ["chart.png", "facts.json", "report.html", "report.txt"]
    assert written["chart.png"].read_bytes() == png
    assert 'src="chart.png"' in written["report.html"].read_text()
    assert f'src="cid:{CHART_CID}"' in report.render_html(cid=True)
    assert "<style" not in report.html  # email clients drop style blocks: inline styles only
    assert pd.read_json(written["facts.json"], typ="series")["week"]["label"] == "2026-W10"


def test_summary_is_shown_in_every_rendering():
    report = shop_report().with_summary("A quiet week.")
    assert report.text.splitlines()[3] == "A quiet week."
    assert "A quiet week." in report.html and "A quiet week." in report.render_html(cid=True)
    assert "A quiet week." in report.markdown


def test_amounts_follow_the_currency():
    assert format_money(1234.5, "USD") == "$1,234.50"
    assert format_money(1234.5, "JPY") == "¥1,234"  # zero-decimal: banker's rounding of .5
    assert format_money(-1234.5678, "KWD") == "−KWD 1,234.568"
    assert format_money(0.001, "CHF", signed=True) == "CHF 0.00"
    assert format_money(12, "EUR", signed=True) == "+€12.00"
    # no number: None, or NaN (a ratio whose denominator is 0, a NULL read into a float column)
    assert [format_money(value, "USD") for value in (None, float("nan"), np.float64("nan"))] == ["n/a"] * 3
    english = Wording("en", "USD")
    assert [english.percent(float("nan")), english.count(float("nan")), english.value("ratio", np.nan)] == ["n/a"] * 3


def test_missing_pack_metric_is_an_error():
    with pytest.raises(ValueError, match="aov"):
        build_report(workspace_id="s", pack=ECOMMERCE, daily=ecommerce_days().drop(columns="aov"),
                     week="2026-W10", timezone="UTC", currency="USD")


def test_only_the_reported_events_are_shown_most_at_stake_first_with_their_related_findings():
    # Rows as find_anomalies stores them: four events in 2026-W10, the first three reported.
    base = {"lower": 0.0, "upper": 1.0, "score": 5.0, "severity": "high", "rule": "band", "holiday": None}
    anomalies = pd.DataFrame([
        {**base, "anomaly_id": "small", "metric": "orders", "date": "2026-03-02", "value": 70.0, "expected": 55.0,
         "direction": "up", "impact": 600.0, "event_id": "e4", "event_rank": 4, "reported": False},
        {**base, "anomaly_id": "big", "metric": "net_sales", "date": "2026-03-05", "value": 9000.0,
         "expected": 4000.0, "direction": "up", "impact": 5000.0, "event_id": "e1", "event_rank": 1, "reported": True},
        {**base, "anomaly_id": "big-units", "metric": "units", "date": "2026-03-05", "value": 400.0,
         "expected": 150.0, "direction": "up", "impact": 4100.0, "event_id": "e1", "event_rank": 1,
         "reported": False},
        {**base, "anomaly_id": "mid", "metric": "refunds", "date": "2026-03-03", "value": 2000.0,
         "expected": 200.0, "direction": "up", "impact": 1800.0, "event_id": "e2", "event_rank": 2, "reported": True},
        {**base, "anomaly_id": "third", "metric": "orders", "date": "2026-03-08", "value": 10.0, "expected": 50.0,
         "direction": "down", "impact": 1500.0, "event_id": "e3", "event_rank": 3, "reported": True},
    ])
    report = shop_report(anomalies=anomalies, drivers=pd.DataFrame(columns=["anomaly_id", "rank", "dimension",
                                                                              "value", "share", "phrase"]))
    shown = report.facts["anomalies"]
    assert [item["id"] for item in shown] == ["big", "mid", "third"]
    assert [item["related"][0]["id"] for item in shown[:1]] == ["big-units"]
    assert report.facts["counts"]["anomalies"] == 3 and report.facts["counts"]["anomalies_found"] == 5
    assert shown[0]["display"]["impact"] == "$5,000.00" and "$5,000.00 at stake" in report.text
    assert shown[2]["display"]["direction"] == "below expected, bad news"
    assert "also Units sold 400 against 150 expected" in report.text
    assert "1 smaller findings this week are kept in insights.anomalies" in report.text


# --- wording and formats (issue 18: reports an owner reads) -------------------------------------


def test_changes_a_percentage_would_mislead_are_said_in_words():
    days = ecommerce_days()
    days.loc[LAST_WEEK, "discounts"] = 0.0
    days.loc["2026-03-01", "discounts"] = 0.01  # last week: one cent of discounts
    days.loc[LAST_WEEK, "refunds"] = 0.0  # last week: no refunds at all
    days.loc[THIS_WEEK, "net_sales"] = -50.0  # this week: more refunded than sold
    days.loc[LAST_WEEK, "returning_customers"] = 0.0
    days.loc[THIS_WEEK, "returning_customers"] = 0.0
    report = build_report(workspace_id="s", pack=ECOMMERCE, daily=days, week="2026-W10", timezone="UTC",
                          currency="USD")
    discounts, refunds = metric(report, "discounts"), metric(report, "refunds")
    assert discounts["current"] / discounts["previous"] > 10_000  # a "+9,999,900%" change
    assert discounts["display"]["change"] == "from near zero" and discounts["change_pct"] is None
    assert refunds["display"]["change"] == "from zero" and refunds["change_pct"] is None
    assert metric(report, "net_sales")["display"]["change"] == "turned negative"
    assert metric(report, "returning_customers")["display"]["change"] == "unchanged"
    assert not re.search(r"\d{4,}(\.\d)?%", report.text)  # no four-digit percentages anywhere
    # such moves are the biggest movers, and say so in words
    movers = {mover["metric"]: mover for mover in report.facts["movers"]}
    assert {"discounts", "refunds", "net_sales"} <= set(movers)
    assert "Refunds from zero (+$" in report.text and "returning_customers" not in movers
    assert check_numbers(report.text, report.facts) == []


def driver_rows(anomaly_id: str, rows: list[tuple]) -> pd.DataFrame:
    """Drivers as insights.anomaly_drivers stores them: (rank, dimension, value, expected, actual, share, usual)."""
    return pd.DataFrame([{"anomaly_id": anomaly_id, "rank": rank, "dimension": dimension, "value": value,
                          "expected": expected, "actual": actual, "share": share, "usual_share": usual,
                          "phrase": "the stored English phrase"}
                         for rank, dimension, value, expected, actual, share, usual in rows])


def net_sales_rise(**values) -> pd.DataFrame:
    return pd.DataFrame([{"anomaly_id": "a", "metric": "net_sales", "date": "2026-03-04", "value": 3000.0,
                          "expected": 1400.0, "lower": -120.0, "upper": 2100.0, "score": 9.0, "severity": "high",
                          "direction": "up", "rule": "band"} | values])


def test_driver_phrases_carry_the_currency_and_the_usual_share_that_ranks_them():
    # 1,600 above expected: returning customers made 39% of it though usually 10% of sales (the
    # driver), BR made 90% of it, as it usually makes 85% (carried along); the only currency is
    # no driver; the remainder is said as such.
    drivers = driver_rows("a", [
        (1, "customer_type", "returning", 140.0, 764.0, 0.39, 0.10),
        (2, "country", "BR", 1190.0, 2630.0, 0.90, 0.85),
        (3, "billing_currency", "USD", 1400.0, 3000.0, 1.0, 1.0),
        (4, "product", "Tent", 0.0, 160.0, 0.10, 0.0),
        (5, "product", "(unattributed)", None, None, 0.05, None),
    ])
    report = shop_report(anomalies=net_sales_rise(), drivers=drivers)
    phrases = [driver["phrase"] for driver in report.facts["anomalies"][0]["drivers"]]
    assert phrases == [
        "customer type returning: $764.00 against $140.00 on usual Wednesdays (+446%), 39% of the rise "
        "(usually 10%)",
        "country BR: $2,630.00 against $1,190.00 on usual Wednesdays (+121%), 90% of the rise (usually 85%)",
        "product Tent: $160.00 against none on usual Wednesdays, 10% of the rise (usually 0%)",
    ]
    assert [driver["rank"] for driver in report.facts["anomalies"][0]["drivers"]] == [1, 2, 3]
    assert all(phrase in report.text and phrase in report.html for phrase in phrases)
    assert "stored English phrase" not in report.text
    assert check_numbers(report.text, report.facts) == []


def test_a_rise_beyond_a_thousand_percent_is_a_multiple():
    days = ecommerce_days()
    days.loc[LAST_WEEK, "discounts"] = 1.0  # $7 last week ...
    days.loc[THIS_WEEK, "discounts"] = 16.0  # ... $112 this week: "+1,500.0%" reads better as ×16
    report = build_report(workspace_id="s", pack=ECOMMERCE, daily=days, week="2026-W10", timezone="UTC",
                          currency="USD")
    assert metric(report, "discounts")["display"]["change"] == "×16"
    drivers = driver_rows("a", [(1, "product", "Tent", 166.45, 2629.91, 0.93, 0.73)])
    phrase = shop_report(anomalies=net_sales_rise(), drivers=drivers).facts["anomalies"][0]["drivers"][0]["phrase"]
    assert phrase == "product Tent: $2,629.91 against $166.45 on usual Wednesdays (×16), 93% of the rise (usually 73%)"


def test_a_driver_from_next_to_nothing_is_no_five_digit_percentage():
    drivers = driver_rows("a", [(1, "country", "PT", -8.4, 514.5, 0.2, 0.01)])
    report = shop_report(anomalies=net_sales_rise(), drivers=drivers)
    assert report.facts["anomalies"][0]["drivers"][0]["phrase"] == (
        "country PT: $514.50 against −$8.40 on usual Wednesdays (turned positive), 20% of the rise (usually 1%)")


def test_bands_start_at_zero_unless_the_metric_can_be_negative():
    discounts = net_sales_rise(metric="discounts", value=400.0, expected=40.0, lower=-25.5, upper=105.0)
    report = shop_report(anomalies=discounts)
    assert report.facts["anomalies"][0]["display"]["band"] == "$0.00 to $105.00"
    assert report.facts["anomalies"][0]["lower"] == 0
    assert "−$" not in report.text.split("Anomalies")[1]
    # net sales can fall below zero (refunds): its band is shown as found
    assert shop_report(anomalies=net_sales_rise()).facts["anomalies"][0]["display"]["band"] == \
        "−$120.00 to $2,100.00"


def test_table_sparklines_and_chart_cover_the_same_weeks():
    report = shop_report()
    weeks = report.facts["counts"]["history_weeks"]
    assert weeks == len(report.facts["weeks"]) == 12
    header = report.text.splitlines()[3]
    assert header.endswith(f"Last {weeks} weeks")
    net_sales = next(line for line in report.text.splitlines() if line.startswith("Net sales"))
    assert len(net_sales.split()[-1]) == weeks  # one bar per week
    assert f"Last {weeks} weeks" in report.html and report.html.count('<td style="vertical-align:bottom') \
        == weeks * len(report.facts["metrics"])
    panels, titles = chart_panels(report.facts, ECOMMERCE)
    assert titles["title"] == f"Demo Store: last {weeks} weeks to 2026-W10"
    assert all(len(values) == weeks for _, values, _, _ in panels)


def test_chart_axis_ticks_are_whole_amounts_and_counts():
    report = shop_report()
    panels, titles = chart_panels(report.facts, ECOMMERCE)
    figure = charts.trend_figure(report.facts["weeks"], panels, **titles)
    labels = {panel[0]: [tick.get_text() for tick in axis.get_yticklabels()]
              for panel, axis in zip(panels, figure.axes)}
    assert set(labels) == {"Net sales", "Orders", "Average order value"}
    for label, ticks in labels.items():
        assert ticks and all(re.fullmatch(r"−?\$?\d{1,3}(,\d{3})*", tick) for tick in ticks), (label, ticks)
    assert all(tick.startswith("$") for tick in labels["Net sales"])


# --- recommended actions --------------------------------------------------------------------------


def test_every_anomaly_and_mover_says_what_to_do_from_its_drivers():
    anomalies, drivers = anomaly_frames()
    report = shop_report(anomalies=anomalies, drivers=drivers)
    refunds, orders = report.facts["anomalies"]
    assert refunds["action"] == ("Start with product Trail Tent, 81% of the rise: check its refunds of 2026-03-04 "
                                 "for a product fault, a delivery problem or a misleading listing.")
    assert orders["action"] == ("Start with country DE, 64% of the drop: check what changed there on 2026-03-06: "
                                "prices, stock, listings, checkout or campaigns.")
    movers = {mover["metric"]: mover["action"] for mover in report.facts["movers"]}
    assert len(movers) == 5
    # a mover with an anomaly this week follows it; the others are broken down by the pack's dimensions
    assert movers["refunds"] == f"See the anomaly of 2026-03-04. {refunds['action']}"
    assert movers["discounts"] == ("Break Discounts down by product, country or customer type for 2026-W10 "
                                   "against 2026-W09 to find where the rise came from.")
    assert movers["new_customers"] == ("Break New customers down by country for 2026-W10 against 2026-W09 "
                                       "to find what worked.")
    for action in [refunds["action"], orders["action"], *movers.values()]:
        assert f"→ {action}" in report.text and f"→ {html_escape(action)}" in report.html
    assert check_numbers(report.text, report.facts) == []


def test_without_a_driver_the_action_says_no_slice_explains_it():
    report = shop_report(anomalies=net_sales_rise(direction="down", value=300.0))
    assert report.facts["anomalies"][0]["action"] == (
        "No single product, country or customer type explains it: check what changed there on 2026-03-04: "
        "prices, stock, listings, checkout or campaigns.")


def test_a_partial_week_says_wait_before_acting_on_summed_metrics():
    days = ecommerce_days().loc[:"2026-03-04"]  # Monday to Wednesday of W10
    report = build_report(workspace_id="s", pack=ECOMMERCE, daily=days, week="2026-W10", timezone="UTC",
                          currency="USD")
    assert report.facts["week"]["days_with_data"] == 3
    for mover in report.facts["movers"]:
        assert mover["action"] == ("Wait for the full week before acting: this week has data for 3 of 7 days, so "
                                   f"{mover['label']} compares part of a week with a whole one.")


# --- languages and number formats ---------------------------------------------------------------


def br_report():
    anomalies = net_sales_rise(metric="refunds", value=912.5, expected=150.0, lower=-20.0, upper=280.0)
    drivers = driver_rows("a", [(1, "product", "Trail Tent", 150.0, 800.0, 0.81, 0.12)])
    return build_report(workspace_id="br", workspace_name="Loja Verde", pack=ECOMMERCE, daily=ecommerce_days(),
                        week="2026-W10", timezone="America/Sao_Paulo", currency="BRL", anomalies=anomalies,
                        drivers=drivers, locale="pt_BR")


def test_a_pt_br_workspace_reads_its_report_in_portuguese_with_brazilian_numbers():
    report = br_report()
    days = ecommerce_days()
    net_sales = days.loc[THIS_WEEK, "net_sales"].sum()
    lines = report.text.splitlines()
    assert lines[0] == "Relatório semanal: Loja Verde, 2026-W10"
    assert lines[1] == "Segunda-feira 2026-03-02 a domingo 2026-03-08, America/Sao_Paulo; comparado com 2026-W09"
    assert lines[3].split() == ["Métrica", "Esta", "semana", "Semana", "passada", "Variação", "Últimas", "12", "semanas"]
    whole, cents = f"{net_sales:,.2f}".split(".")
    assert metric(report, "net_sales")["display"]["current"] == f"R$\u00a0{whole.replace(',', '.')},{cents}"
    assert metric(report, "net_sales")["label"] == "Vendas líquidas" and metric(report, "aov")["label"] == "Ticket médio"
    change = days.loc[THIS_WEEK, "orders"].sum() / days.loc[LAST_WEEK, "orders"].sum() - 1
    assert metric(report, "orders")["display"]["change"] == f"{change:+.1%}".replace(".", ",")
    anomaly = report.facts["anomalies"][0]
    assert anomaly["weekday"] == "quarta-feira"
    assert anomaly["display"]["band"] == "R$\u00a00,00 a R$\u00a0280,00"
    assert anomaly["display"]["direction"] == "acima do esperado, notícia ruim"
    assert anomaly["drivers"][0]["phrase"] == ("produto Trail Tent: R$\u00a0800,00 contra R$\u00a0150,00 nas "
                                               "quartas-feiras habituais (+433%), 81% da alta (normalmente 12%)")
    assert anomaly["action"].startswith("Comece por produto Trail Tent, 81% da alta (normalmente 12%): verifique "
                                        "os reembolsos de 2026-03-04")
    assert '<html lang="pt">' in report.html and "Maiores variações" in report.html
    returning = driver_rows("a", [(1, "customer_type", "returning", 140.0, 764.0, 0.39, 0.10)])
    shop = build_report(workspace_id="br", pack=ECOMMERCE, daily=ecommerce_days(), week="2026-W10", timezone="UTC",
                        currency="BRL", anomalies=net_sales_rise(), drivers=returning, locale="pt_BR")
    assert shop.facts["anomalies"][0]["drivers"][0]["subject"] == "tipo de cliente recorrente"
    assert "Anomalias" in report.markdown
    # the numbers stay facts: the fact check reads them in the report's locale
    assert check_numbers(report.text, report.facts) == []


def test_english_is_the_default_and_a_language_without_a_table_keeps_its_number_formats():
    assert shop_report().facts["workspace"]["locale"] == "en"
    german = build_report(workspace_id="de", pack=ECOMMERCE, daily=ecommerce_days(), week="2026-W10",
                          timezone="Europe/Berlin", currency="EUR", locale="de_DE")
    net_sales = metric(german, "net_sales")["display"]["current"]
    assert net_sales.startswith("€") and "," in net_sales[-3:]  # German separators: €23.896,03
    assert german.text.splitlines()[0].startswith("Weekly report:")  # no German table: English words


def test_the_portuguese_table_has_every_message_with_the_same_placeholders():
    import string

    from pipelines.insights.wording import MESSAGES

    def fields(text: str) -> set[str]:
        return {name for _, name, _, _ in string.Formatter().parse(text) if name}

    english, portuguese = MESSAGES["en"], MESSAGES["pt"]
    shared = {"mover", "summary.move", "action.plain", "times"}  # the same words in both languages
    assert set(english) - set(portuguese) == shared
    for key, text in portuguese.items():
        if key in english:
            assert fields(text) == fields(english[key]), key
    for pack in (ECOMMERCE, SAAS):
        for item in pack.metrics:
            assert f"metric.{item.name}" in portuguese or item.label.isupper()  # MRR, ARR, ARPA stay
        assert {f"dimension.{dimension.name}" for dimension in pack.dimensions} <= set(portuguese)


def shop_cohorts(drop: float = 0.0) -> pd.DataFrame:
    """Eight monthly cohorts of a shop, each followed up to the last month (`cohort_month, age, rate,
    customers`, as the report asset reads them); `drop` lowers the newest cohorts' latest rates."""
    rows = []
    for month in range(1, 9):
        for age in range(1, 9 - month + 1):
            rate = 0.4 / age ** 0.5 - (drop if month + age == 9 else 0.0)
            rows.append({"cohort_month": pd.Timestamp(2025, month, 1), "age": age, "rate": rate, "customers": 100 + month})
    return pd.DataFrame(rows)


def test_a_rerun_reads_back_the_charts_drawn_from_the_same_inputs_and_draws_a_changed_one(tmp_path, monkeypatch):
    """A week's report built again from the same figures reads its PNGs back from the folder it was written
    to instead of drawing them; a changed series, a changed language or a changed file on disk draws again,
    and every chart, read back or drawn, has the bytes a report built from nothing has."""
    drawn = charts_drawn(monkeypatch)
    folder = tmp_path / "reports" / "demo-store" / "2026-W10"

    def build(**options):
        return build_report(**{"workspace_id": "demo-store", "workspace_name": "Demo Store", "pack": ECOMMERCE,
                               "daily": ecommerce_days(), "week": "2026-W10", "timezone": "America/New_York",
                               "currency": "USD", **options})

    def rerun(**options):
        drawn.clear()
        report = build(charts_from=folder, **options)
        fresh = build(**options)  # from nothing: the bytes every chart must have
        assert report.charts == fresh.charts and report.text == fresh.text and report.html == fresh.html
        write_report(report, folder)
        return report, drawn[:len(drawn) - len(fresh.charts)]  # the draws of the rerun, not of `fresh`

    first, draws = rerun(cohorts=shop_cohorts())
    assert sorted(first.charts) == ["chart.png", "retention.png"] and sorted(draws) == ["retention_chart", "trend_chart"]
    written = {path.name: path.read_bytes() for path in folder.iterdir()}

    _, draws = rerun(cohorts=shop_cohorts())
    assert draws == []  # nothing changed: both charts read back
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == written

    # a day of the reported week sells more: the trend chart's series changes, the cohorts do not
    days = ecommerce_days()
    days.loc["2026-03-04", ["gross_sales", "net_sales"]] += 5_000.0
    changed, draws = rerun(cohorts=shop_cohorts(), daily=days)
    assert draws == ["trend_chart"] and changed.charts["chart.png"] != first.charts["chart.png"]
    assert changed.charts["retention.png"] == first.charts["retention.png"]

    # the newest cohorts keep fewer customers: only the retention chart is drawn
    _, draws = rerun(cohorts=shop_cohorts(drop=0.05), daily=days)
    assert draws == ["retention_chart"]

    # the same figures in Portuguese: other tick labels and titles, both drawn
    _, draws = rerun(cohorts=shop_cohorts(drop=0.05), daily=days, locale="pt_BR")
    assert sorted(draws) == ["retention_chart", "trend_chart"]
    _, draws = rerun(cohorts=shop_cohorts(drop=0.05), daily=days, locale="pt_BR")
    assert draws == []

    # a PNG replaced on disk is not trusted: drawn again (its recorded bytes differ)
    (folder / "chart.png").write_bytes(first.charts["chart.png"])
    _, draws = rerun(cohorts=shop_cohorts(drop=0.05), daily=days, locale="pt_BR")
    assert draws == ["trend_chart"]

    # without cohorts the retention chart goes, and its key with it
    _, draws = rerun(daily=days, locale="pt_BR")
    assert draws == [] and not (folder / "retention.png").exists()
    assert sorted(json.loads((folder / charts.CHART_KEYS).read_text())) == ["chart.png"]
