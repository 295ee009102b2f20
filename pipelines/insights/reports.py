"""The weekly report of one workspace: every pack metric week over week, movers, anomalies, a chart.

Pure logic on plain pandas inputs (no warehouse access), so the Dagster asset only reads, calls
`build_report` and `write_report`. Weeks are ISO weeks (Monday to Sunday) of the workspace's local
calendar: the daily metric tables are already dated in the workspace's timezone, and
`last_complete_week` turns "now" into the last week that has ended there.

Every number shown in any rendering comes from `Report.facts`, built once; the text, HTML and
Markdown renderings only format those facts, so they cannot disagree with each other or with the
facts the LLM summary is checked against (see docs/reports.md).
"""

from __future__ import annotations

import dataclasses
import html
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

from pipelines.currencies import minor_digits
from pipelines.insights import charts
from pipelines.insights.drivers import UNATTRIBUTED
from pipelines.insights.forecasts import month_outlook
from pipelines.insights.wording import DEFAULT_LOCALE, Wording
from pipelines.packs import Metric, Pack

HISTORY_WEEKS = 12  # weeks in the trend chart, the sparklines and each metric's `weekly` facts
TOP_MOVERS = 5
DRIVERS_PER_ANOMALY = 3
# A rise beyond +1,000% says more as "from near zero" than as "+142,659%"; so does a driver's
# change from a slice that usually sells next to nothing.
CHANGE_CAP = 10.0
MAX_MULTIPLE = 100  # up to ×100 such a rise is said as a multiple ("×16"), beyond it "from near zero"
WHOLE_DIMENSION = 0.995  # a slice usually this big is its whole dimension (the only currency): no driver
CHART_FILE = "chart.png"
RETENTION_FILE = "retention.png"  # the retention curves: written next to the report, sent with it when present
TOP_OPPORTUNITIES = 5
RETENTION_COHORTS = 6  # the latest cohorts drawn, next to the all-cohort curve
CHART_CID = "trend-chart"  # Content-ID of the chart when the HTML is sent as an email
# Inline styles only: email clients drop <style> blocks and external CSS.
FONT = "font-family:Helvetica,Arial,sans-serif;color:#212529"
CELL = "padding:4px 10px;border-bottom:1px solid #dee2e6;text-align:right;white-space:nowrap"
OUTCOME_COLOURS = {"good": "#2b8a3e", "bad": "#c92a2a"}


@dataclass(frozen=True, order=True)
class Week:
    """An ISO week, e.g. 2026-W47 (Monday to Sunday)."""

    year: int
    number: int

    @classmethod
    def parse(cls, label: str) -> Week:
        """The week of a label such as "2026-W47"."""
        year, _, number = label.partition("-W")
        week = cls(int(year), int(number))
        week.start  # noqa: B018  (validates: raises ValueError for a week the year does not have)
        return week

    @classmethod
    def containing(cls, day: date) -> Week:
        year, number, _ = day.isocalendar()
        return cls(year, number)

    @property
    def label(self) -> str:
        return f"{self.year}-W{self.number:02d}"

    @property
    def start(self) -> date:
        """The Monday."""
        return date.fromisocalendar(self.year, self.number, 1)

    @property
    def end(self) -> date:
        """The Sunday (inclusive)."""
        return self.start + timedelta(days=6)

    def shifted(self, weeks: int) -> Week:
        return Week.containing(self.start + timedelta(weeks=weeks))

    def bounds(self, timezone: str) -> tuple[datetime, datetime]:
        """The week's first and next week's first local midnight, in `timezone`.

        Across a DST change they are 167 or 169 hours apart; Python subtracts same-zone datetimes as
        wall clocks, so convert to UTC to measure that.
        """
        zone = ZoneInfo(timezone)
        return (datetime.combine(self.start, datetime.min.time(), zone),
                datetime.combine(self.end + timedelta(days=1), datetime.min.time(), zone))

    def __str__(self) -> str:
        return self.label


def last_complete_week(now: datetime, timezone: str) -> Week:
    """The last ISO week that has ended in `timezone` at the instant `now` (timezone-aware).

    On Monday 00:30 in Tokyo it is still Sunday in UTC: the Tokyo workspace's report is already due
    for the week that just ended there, a UTC calendar would wait a day.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware: a naive time has no week in a workspace's timezone")
    local_today = now.astimezone(ZoneInfo(timezone)).date()
    return Week.containing(local_today).shifted(-1)


@dataclass(frozen=True)
class Report:
    """One workspace's weekly report, with every rendering and the facts they show.

    Attributes:
        workspace_id: the workspace.
        week: ISO week label, e.g. "2026-W47".
        period_start: the week's Monday, in the workspace's calendar.
        period_end: the week's Sunday (inclusive).
        facts: every number shown, JSON-ready (see docs/reports.md); the LLM summary's only input.
        text: plain-text rendering (email text part, report.txt).
        html: HTML rendering for a saved file; the chart is `<img src="chart.png">`.
        markdown: a short preview for Dagster asset metadata.
        charts: PNG bytes by file name (CHART_FILE).
        chart_cids: Content-ID by file name, as `render_html(cid=True)` references them.
        summary: the summary shown at the top, once `with_summary` has added it.
        chart_keys: each chart's key (`charts.chart_key`), which `write_report` records beside it.
    """

    workspace_id: str
    week: str
    period_start: date
    period_end: date
    facts: dict[str, Any]
    text: str
    html: str
    markdown: str
    charts: dict[str, bytes] = field(repr=False)
    chart_cids: dict[str, str]
    summary: str | None = None
    chart_keys: dict[str, str] = field(default_factory=dict, repr=False)

    def render_html(self, *, cid: bool = False) -> str:
        """The HTML, with the chart referenced by Content-ID for an email (`cid=True`) or by file name."""
        source = f"cid:{self.chart_cids[CHART_FILE]}" if cid else CHART_FILE
        return render_html(self.facts, summary=self.summary, chart_src=source)

    def with_summary(self, summary: str) -> Report:
        """This report with `summary` shown at the top of every rendering."""
        return dataclasses.replace(
            self,
            summary=summary,
            text=render_text(self.facts, summary=summary),
            html=render_html(self.facts, summary=summary, chart_src=CHART_FILE),
            markdown=render_markdown(self.facts, summary=summary),
        )


def build_report(
    *,
    workspace_id: str,
    pack: Pack,
    daily: pd.DataFrame,
    week: Week | str,
    timezone: str,
    currency: str,
    workspace_name: str | None = None,
    anomalies: pd.DataFrame | None = None,
    drivers: pd.DataFrame | None = None,
    locale: str = DEFAULT_LOCALE,
    history_weeks: int = HISTORY_WEEKS,
    top_movers: int = TOP_MOVERS,
    drivers_per_anomaly: int = DRIVERS_PER_ANOMALY,
    headline: Sequence[str] | None = None,
    forecast: pd.DataFrame | None = None,
    opportunities: pd.DataFrame | None = None,
    cohorts: pd.DataFrame | None = None,
    top_opportunities: int = TOP_OPPORTUNITIES,
    charts_from: str | os.PathLike[str] | None = None,
) -> Report:
    """Build one workspace's report for one ISO week.

    Args:
        workspace_id: the workspace.
        pack: the workspace's vertical pack; its watched metrics (`Pack.watched`), in order, are the
            report's rows.
        daily: the workspace's daily metric frame, one row per local date (a date index, or a
            `date` column) and one column per pack metric, as in `metrics.<vertical>_daily_metrics`.
        week: the ISO week to report, a `Week` or a label such as "2026-W47" (see
            `last_complete_week`).
        timezone: the workspace's IANA timezone; the week's bounds are its local midnights.
        currency: the workspace's reporting currency (ISO 4217), for amounts.
        workspace_name: shown in titles; defaults to the id.
        anomalies: flagged points with columns `anomaly_id, metric, date, value, expected, lower,
            upper, score, severity, direction, rule`; rows outside the week are ignored.
        drivers: driver rows with columns `anomaly_id, rank, dimension, value, share, phrase`, and
            `expected, actual, usual_share` (as `insights.anomaly_drivers` stores them) to phrase
            them in the report's words and currency; without those, the stored phrase is shown.
        locale: the workspace's locale (e.g. "en", "pt_BR"): the report's language and number formats.
        history_weeks: weeks of history in the chart and the metric facts.
        top_movers: how many movers to list.
        drivers_per_anomaly: how many top drivers to show per anomaly.
        headline: metrics to chart; by default the pack's first currency, count and ratio metrics.
        forecast: `insights.forecasts` rows of the workspace (`metric, origin, date, forecast`): the
            month's outlook ("on track for X this month") of each forecast metric.
        opportunities: `insights.opportunities` rows of the workspace; the top ones are shown.
        cohorts: retention by cohort (`cohort_month, age, rate, customers`) for the retention chart.
        top_opportunities: how many risks and opportunities to show.
        charts_from: the folder `write_report` wrote this week's report to before, if any: a chart
            drawn there from the same inputs (its key, `charts.chart_key`) is read back, not drawn again.

    Returns:
        The report, without a summary (see `Report.with_summary`).

    Raises:
        ValueError: `daily` lacks a pack metric, or an anomaly names a metric the pack does not have.
    """
    week = Week.parse(week) if isinstance(week, str) else week
    pack = pack.watched()  # metrics dated by week or cohort have no value every day to report
    wording = Wording(locale, currency)
    daily = _daily_by_date(daily, pack)
    weeks = [week.shifted(-back) for back in range(history_weeks - 1, -1, -1)]
    weekly = _weekly_values(daily, pack, weeks)
    in_week = daily.index[(daily.index >= pd.Timestamp(week.start)) & (daily.index <= pd.Timestamp(week.end))]
    starts_at, ends_at = week.bounds(timezone)

    metrics = [_metric_facts(metric, weekly[metric.name], wording) for metric in pack.metrics]
    facts = {
        "workspace": {"id": workspace_id, "name": workspace_name or workspace_id, "vertical": pack.vertical,
                      "timezone": timezone, "currency": currency, "locale": locale},
        "week": {"label": week.label, "number": week.number, "year": week.year,
                 "start": week.start.isoformat(), "end": week.end.isoformat(),
                 "starts_at": starts_at.isoformat(), "ends_at": ends_at.isoformat(),
                 "days_with_data": len(in_week)},
        "previous_week": {"label": week.shifted(-1).label, "start": week.shifted(-1).start.isoformat(),
                          "end": week.shifted(-1).end.isoformat()},
        "weeks": [each.label for each in weeks],
        "metrics": metrics,
        "movers": _movers(metrics, top_movers, wording),
        "anomalies": _anomaly_facts(anomalies, drivers, pack, week, wording, drivers_per_anomaly),
        "headline": list(headline or _default_headline(pack)),
        "outlook": _outlook_facts(daily, forecast, pack, week, wording),
        "opportunities": _opportunity_facts(opportunities, top_opportunities, wording),
    }
    # Every anomaly and mover says what to look at or do: one sentence from its drivers and the pack.
    for anomaly in facts["anomalies"]:
        anomaly["action"] = _anomaly_action(anomaly, pack, wording)
    for mover in facts["movers"]:
        mover["action"] = _mover_action(mover, facts, pack, wording)
    # Counts a summary may cite ("2 anomalies", "the last 12 weeks") are facts too.
    facts["counts"] = {"anomalies": len(facts["anomalies"]), "anomalies_found": _found_in_week(anomalies, week),
                       "movers": len(facts["movers"]), "history_weeks": len(weeks)}
    facts = _json_ready(facts)
    kept = charts.Kept(charts_from)
    panels, titles = chart_panels(facts, pack)
    keys = {CHART_FILE: _chart_key(facts, pack, panels, titles)}
    pictures = {CHART_FILE: kept.png(CHART_FILE, keys[CHART_FILE],
                                     lambda: charts.trend_chart(facts["weeks"], panels, **titles))}
    retention = _retention_curves(cohorts, facts, pack)
    if retention is not None:
        keys[RETENTION_FILE] = charts.chart_key("retention", retention)
        pictures[RETENTION_FILE] = kept.png(RETENTION_FILE, keys[RETENTION_FILE],
                                            lambda: _retention_chart(retention, facts))
    return Report(
        workspace_id=workspace_id,
        week=week.label,
        period_start=week.start,
        period_end=week.end,
        facts=facts,
        text=render_text(facts),
        html=render_html(facts, chart_src=CHART_FILE),
        markdown=render_markdown(facts),
        charts=pictures,
        chart_cids={CHART_FILE: CHART_CID},
        chart_keys=keys,
    )


def write_report(report: Report, directory: str | os.PathLike[str]) -> dict[str, Path]:
    """Write report.html, report.txt, the chart PNG(s) and facts.json under `directory`.

    Each file is written whole and then renamed into place, so a rerun replaces files and a crash
    never leaves a half-written one. The charts' keys are recorded last (`charts.CHART_KEYS`), so a
    rerun of the week can read back a chart drawn from the same inputs (`build_report(charts_from=...)`).

    Returns:
        The written paths by file name.
    """
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    contents: dict[str, bytes] = {
        "report.html": report.html.encode(),
        "report.txt": report.text.encode(),
        "facts.json": json.dumps(report.facts, indent=2, ensure_ascii=False).encode(),
        **report.charts,
    }
    written = {}
    for name, data in contents.items():
        path = folder / name
        partial = path.with_name(f".{name}.partial")
        partial.write_bytes(data)
        partial.replace(path)
        written[name] = path
    # A rerun without cohorts must not leave last run's retention chart to be sent with this report.
    if RETENTION_FILE not in report.charts:
        (folder / RETENTION_FILE).unlink(missing_ok=True)
    charts.write_keys(folder, report.charts, report.chart_keys)
    return written


# --- numbers ---------------------------------------------------------------------------------


def format_money(value: float | None, currency: str, *, signed: bool = False, locale: str = DEFAULT_LOCALE) -> str:
    """An amount with its symbol (or ISO code) and the currency's minor digits: "$1,234.50", "¥1,235"."""
    return Wording(locale, currency).money(value, signed=signed)


def _change(current: float | None, previous: float | None) -> tuple[float | None, str | None]:
    """The relative change, or the message that says it better than a percentage would.

    "from zero" (nothing last week), "from near zero" (a rise beyond CHANGE_CAP), "turned
    negative/positive" (a sign change, e.g. net new MRR), "unchanged" (0 both weeks), "n/a".
    """
    if current is None or previous is None:
        return None, "n/a"
    if previous == 0:
        return None, "unchanged" if current == 0 else "from_zero"
    if current * previous < 0:
        return None, "turned_negative" if current < 0 else "turned_positive"
    change = (current - previous) / abs(previous)
    return (None, "from_near_zero") if change > CHANGE_CAP else (change, None)


def _change_shown(current: float | None, previous: float | None, wording: Wording, *,
                  digits: int = 1) -> tuple[float | None, str]:
    """The relative change and how the report writes it: "+12.3%", "×16", "from near zero", ..."""
    change, words = _change(current, previous)
    if words == "from_near_zero" and current / previous <= MAX_MULTIPLE:
        return None, wording.say("times", times=wording.number(current / previous))
    return change, wording.say(words) if words else wording.percent(change, digits=digits, signed=True)


# --- facts -----------------------------------------------------------------------------------


def _daily_by_date(daily: pd.DataFrame, pack: Pack) -> pd.DataFrame:
    """The daily frame indexed by midnight timestamps, sorted, with the pack's metrics as floats."""
    frame = daily.set_index("date") if "date" in daily.columns else daily
    missing = [name for name in pack.metric_names if name not in frame.columns]
    if missing:
        raise ValueError(f"daily metrics lack pack {pack.vertical!r} metrics {missing}")
    frame = frame[list(pack.metric_names)].astype("float64")
    frame.index = pd.DatetimeIndex(pd.to_datetime(frame.index)).normalize()
    return frame.sort_index()


def _weekly_values(daily: pd.DataFrame, pack: Pack, weeks: list[Week]) -> pd.DataFrame:
    """Each metric's value per week: summed, the week's last day (stock), or a ratio of the parts."""
    first, last = pd.Timestamp(weeks[0].start), pd.Timestamp(weeks[-1].end)
    window = daily[(daily.index >= first) & (daily.index <= last)]
    labels = [Week.containing(day.date()).label for day in window.index]
    grouped = window.groupby(labels, sort=True)
    result = {}
    for metric in pack.metrics:
        if metric.ratio is None:
            result[metric.name] = _aggregate(grouped[metric.name], metric)
    summed = pd.DataFrame(result)
    for metric in pack.metrics:
        if metric.ratio is not None:
            result[metric.name] = metric.value(summed)
    return pd.DataFrame(result).reindex([week.label for week in weeks])


def _aggregate(values: pd.core.groupby.SeriesGroupBy, metric: Metric) -> pd.Series:
    # A stock's week is its last day with a value; a week without any value stays missing, not 0.
    return values.last() if metric.stock else values.sum(min_count=1)


def _metric_facts(metric: Metric, weekly: pd.Series, wording: Wording) -> dict[str, Any]:
    current, previous = _number(weekly.iloc[-1]), _number(weekly.iloc[-2]) if len(weekly) > 1 else None
    delta = None if current is None or previous is None else current - previous
    change, shown_change = _change_shown(current, previous, wording)
    digits = minor_digits(wording.currency) if metric.unit == "currency" else 6
    return {
        "name": metric.name,
        "label": wording.label("metric", metric.name, metric.label),
        "unit": metric.unit,
        "aggregation": "ratio" if metric.ratio else "last_day" if metric.stock else "sum",
        "up_is_good": metric.up_is_good,
        "current": _rounded(current, digits),
        "previous": _rounded(previous, digits),
        "delta": _rounded(delta, digits),
        "change_pct": _rounded(None if change is None else change * 100, 4),
        "outcome": _outcome(delta, metric.up_is_good),
        "display": {
            "current": wording.value(metric.unit, current),
            "previous": wording.value(metric.unit, previous),
            "delta": wording.value(metric.unit, delta, signed=True),
            "change": shown_change,
        },
        "weekly": [_rounded(_number(value), digits) for value in weekly],
    }


def _outcome(delta: float | None, up_is_good: bool) -> str | None:
    if delta is None:
        return None
    if delta == 0:
        return "flat"
    return "good" if (delta > 0) == up_is_good else "bad"


def _movers(metrics: list[dict[str, Any]], top: int, wording: Wording) -> list[dict[str, Any]]:
    """The metrics with the largest relative change, largest first (ties keep the pack's order).

    A move from zero, from near zero or across zero counts as CHANGE_CAP (+1,000%).
    """
    def size(metric: dict[str, Any]) -> float:
        if metric["change_pct"] is not None:
            return abs(metric["change_pct"])
        return 100 * CHANGE_CAP if metric["delta"] and metric["previous"] is not None else 0.0

    moved = sorted((metric for metric in metrics if size(metric) > 0), key=lambda metric: -size(metric))
    return [
        {"rank": rank, "metric": metric["name"], "label": metric["label"], "change_pct": metric["change_pct"],
         "outcome": metric["outcome"], "display": {"change": metric["display"]["change"],
                                                   "delta": metric["display"]["delta"],
                                                   "outcome": wording.say(metric["outcome"])}}
        for rank, metric in enumerate(moved[:top], start=1)
    ]


def _anomaly_facts(
    anomalies: pd.DataFrame | None,
    drivers: pd.DataFrame | None,
    pack: Pack,
    week: Week,
    wording: Wording,
    per_anomaly: int,
) -> list[dict[str, Any]]:
    """The week's reported anomalies, most at stake first, each with its top drivers and the other
    findings of its event.

    Rows of `find_anomalies` carry `reported` (the first `pack.alert_budget` events of their week,
    ranked by impact × confidence) and `event_rank`; rows without them (older tables, hand-made
    frames) are all shown, by date then |score|.
    """
    if anomalies is None or anomalies.empty:
        return []
    rows = anomalies.assign(date=pd.to_datetime(anomalies["date"]).dt.normalize())
    in_week = (rows["date"] >= pd.Timestamp(week.start)) & (rows["date"] <= pd.Timestamp(week.end))
    if "reported" in rows.columns:
        shown = rows[in_week & rows["reported"].fillna(False).astype(bool)].sort_values(["event_rank", "date"])
    else:
        shown = rows[in_week].assign(_order=-rows["score"].abs()).sort_values(["date", "_order"])
    found = []
    for row in shown.to_dict("records"):
        fact = _anomaly_fact(row, pack, wording)
        fact["drivers"] = _driver_facts(drivers, fact, pack, wording, per_anomaly)
        related = rows[(rows["event_id"] == row["event_id"]) & (rows["anomaly_id"] != row["anomaly_id"])] \
            if "event_id" in rows.columns else rows.iloc[:0]
        fact["related"] = [_anomaly_fact(other, pack, wording) for other in
                           related.sort_values(["date", "metric"]).to_dict("records")]
        found.append(fact)
    return found


def _anomaly_fact(row: dict[str, Any], pack: Pack, wording: Wording) -> dict[str, Any]:
    """One finding as facts: its numbers, the pack's words for its direction, its money at stake."""
    metric = pack.metric(row["metric"])
    value, expected = _number(row.get("value")), _number(row.get("expected"))
    lower, upper = _number(row.get("lower")), _number(row.get("upper"))
    if lower is not None and not metric.can_be_negative:
        lower = max(lower, 0.0)  # a band below zero means nothing for sales or counts
    score, impact = _number(row.get("score")), _number(row.get("impact"))
    band = wording.say("n/a") if lower is None or upper is None else \
        wording.say("band", lower=wording.value(metric.unit, lower), upper=wording.value(metric.unit, upper))
    direction = row.get("direction")
    outcome = metric.outcome(direction)
    rule = row.get("rule")
    holiday = row.get("holiday") if isinstance(row.get("holiday"), str) else None
    return {
        "id": str(row["anomaly_id"]),
        "metric": metric.name,
        "label": wording.label("metric", metric.name, metric.label),
        "unit": metric.unit,
        "date": row["date"].date().isoformat(),
        "weekday": wording.weekday(row["date"].date()),
        "value": value,
        "expected": expected,
        "lower": lower,
        "upper": upper,
        "score": _rounded(score, 1),
        "severity": row.get("severity"),
        "direction": direction,
        "outcome": outcome,
        "rule": rule,
        "holiday": holiday,
        "impact": _rounded(impact, minor_digits(wording.currency)),
        "confidence": _rounded(_number(row.get("confidence")), 2),
        "event_rank": None if _number(row.get("event_rank")) is None else int(row["event_rank"]),
        "display": {"value": wording.value(metric.unit, value),
                    "expected": wording.value(metric.unit, expected),
                    "band": band,
                    "score": wording.say("n/a") if score is None else wording.decimal(score, 1),
                    "direction": _direction_words(direction, outcome, rule, wording),
                    "severity": wording.say(f"severity.{row.get('severity')}") if row.get("severity") in
                    ("high", "medium", "low") else str(row.get("severity")),
                    "impact": wording.say("n/a") if impact is None else wording.money(impact)},
    }


def _direction_words(direction: str | None, outcome: str | None, rule: str | None, wording: Wording) -> str:
    """"above expected, good news" / "below last week, bad news": the pack decides good or bad."""
    if direction not in ("up", "down"):
        return wording.say("n/a")
    base = "last_week" if rule == "week_over_week" else "expected"
    return wording.say("direction", where=wording.say(f"where.{direction}.{base}"), outcome=wording.say(outcome))


def _base(rule: str | None, wording: Wording) -> str:
    return wording.say("base.last_week" if rule == "week_over_week" else "base.expected")


def _hint(metric: str, outcome: str | None, day: str, wording: Wording) -> str:
    """What to check for a move of `metric` that is `outcome` news: the metric's own advice, else the generic."""
    outcome = outcome or "bad"
    try:
        return wording.say(f"hint.{metric}.{outcome}", date=day)
    except KeyError:
        return wording.say(f"hint.{outcome}", date=day)


def _dimensions(metric: Metric, pack: Pack, wording: Wording) -> str:
    """"product, country or customer type": the slices a metric can be broken down by."""
    labels = [_dimension_label(pack, name, wording) for name in metric.dimensions]
    return labels[0] if len(labels) == 1 else wording.say("or", first=", ".join(labels[:-1]), last=labels[-1])


def _anomaly_action(anomaly: dict[str, Any], pack: Pack, wording: Wording) -> str:
    """One sentence on what to look at or do, from the anomaly's top driver and the pack's advice for
    its metric: "Start with product Trail Tent, 81% of the rise (usually 12%): check its refunded
    orders of 2026-03-04 for a product fault or a delivery problem."."""
    metric = pack.metric(anomaly["metric"])
    hint = _hint(metric.name, anomaly["outcome"], anomaly["date"], wording)
    if anomaly["drivers"]:
        top = anomaly["drivers"][0]
        fractions = [None if top[key] is None else top[key] / 100 for key in ("share_pct", "usual_share_pct")]
        share = _share_words(*fractions, anomaly, wording)
        return wording.say(f"action.driver.{anomaly['outcome'] or 'bad'}", subject=top["subject"],
                           share=f", {share}" if share else "", hint=hint)
    if metric.dimensions and anomaly["rule"] != "week_over_week":
        return wording.say("action.everywhere", dimensions=_dimensions(metric, pack, wording), hint=hint)
    return wording.say("action.plain", hint=hint[0].upper() + hint[1:])


def _mover_action(mover: dict[str, Any], facts: dict[str, Any], pack: Pack, wording: Wording) -> str:
    """One sentence per mover: wait for a full week, follow the week's anomaly of the same metric,
    or break the metric down by its dimensions against the week before."""
    metric = pack.metric(mover["metric"])
    days = facts["week"]["days_with_data"]
    if days < 7 and not metric.stock:
        return wording.say("action.partial_week", days=days, label=mover["label"])
    anomaly = next((a for a in facts["anomalies"] if a["metric"] == metric.name), None)
    if anomaly is not None:
        return wording.say("action.see_anomaly", date=anomaly["date"], action=anomaly["action"])
    if metric.dimensions:
        delta = next(m["delta"] for m in facts["metrics"] if m["name"] == metric.name) or 0
        return wording.say(f"action.breakdown.{mover['outcome'] or 'bad'}", label=mover["label"],
                           movement=wording.say("drop" if delta < 0 else "rise"),
                           dimensions=_dimensions(metric, pack, wording), week=facts["week"]["label"],
                           previous=facts["previous_week"]["label"])
    return wording.say("action.plain", hint=wording.say(f"hint.{mover['outcome'] or 'bad'}",
                                                         date=facts["week"]["label"]).capitalize())


def _outlook_facts(daily: pd.DataFrame, forecast: pd.DataFrame | None, pack: Pack, week: Week,
                   wording: Wording) -> list[dict[str, Any]]:
    """Each forecast metric's month: actual days so far plus the forecast of the rest, against last month.

    The month is the one the reader is in: the month of the Monday after the report's week.
    """
    if forecast is None or forecast.empty:
        return []
    month_start = (week.end + timedelta(days=1)).replace(day=1)
    found = []
    for name in dict.fromkeys(forecast["metric"]):
        if name not in pack.metric_names:
            continue
        metric = pack.metric(name)
        outlook = month_outlook(daily[name], forecast[forecast["metric"] == name], month_start, metric.stock)
        if outlook is None:
            continue
        label = wording.label("metric", name, metric.label)
        projected, previous = outlook["projected"], outlook["previous"]
        change, shown = _change_shown(projected, previous, wording)
        value = wording.value(metric.unit, projected)
        digits = minor_digits(wording.currency) if metric.unit == "currency" else 0
        found.append({
            "metric": name, "label": label, "month": month_start.strftime("%Y-%m"),
            "projected": _rounded(projected, digits), "previous_month": _rounded(previous, digits),
            "change_pct": _rounded(None if change is None else change * 100, 4),
            "display": {"projected": value, "previous_month": wording.value(metric.unit, previous), "change": shown,
                        "line": wording.say("outlook.no_previous" if previous is None else "outlook.line",
                                            label=label, value=value, change=shown)},
        })
    return found


def _opportunity_facts(opportunities: pd.DataFrame | None, top: int, wording: Wording) -> list[dict[str, Any]]:
    """The risks and opportunities with the most money at stake, in their rank order."""
    if opportunities is None or opportunities.empty:
        return []
    found = []
    for row in opportunities.sort_values("rank").head(top).to_dict("records"):
        stake = _number(row["money_at_stake"])
        found.append({
            "rank": len(found) + 1, "kind": row["kind"], "direction": row["direction"], "subject": row["subject"],
            "money_at_stake": _rounded(stake, minor_digits(wording.currency)), "evidence": row["evidence"],
            "action": row["action"],
            "display": {"kind": wording.say(f"opp.kind.{row['kind']}"), "stake": wording.money(stake)},
        })
    return found


def _found_in_week(anomalies: pd.DataFrame | None, week: Week) -> int:
    """How many findings (every rule, every event) are dated in the week, shown or not."""
    if anomalies is None or anomalies.empty:
        return 0
    dates = pd.to_datetime(anomalies["date"]).dt.normalize()
    return int(((dates >= pd.Timestamp(week.start)) & (dates <= pd.Timestamp(week.end))).sum())


def _driver_facts(drivers: pd.DataFrame | None, anomaly: dict[str, Any], pack: Pack, wording: Wording,
                  top: int) -> list[dict[str, Any]]:
    """The anomaly's top drivers, phrased in the report's words and currency.

    A slice that is usually its whole dimension (the only billing currency) explains nothing, and
    a slice with no part in the gap is no driver: both are left out.
    """
    if drivers is None or drivers.empty:
        return []
    mine = drivers[drivers["anomaly_id"].astype(str) == anomaly["id"]].sort_values("rank")
    found = []
    for row in mine.to_dict("records"):
        share, usual = _number(row.get("share")), _number(row.get("usual_share"))
        if (usual is not None and usual >= WHOLE_DIMENSION) or (share is not None and round(share, 2) == 0):
            continue
        found.append({
            "rank": len(found) + 1, "dimension": row["dimension"], "value": str(row["value"]),
            "share_pct": _rounded(None if share is None else share * 100, 1),
            "usual_share_pct": _rounded(None if usual is None else usual * 100, 1),
            "subject": _driver_subject(row, pack, wording),
            "phrase": _driver_phrase(row, anomaly, pack, wording),
        })
    return found[:top]


def _share_words(share: float | None, usual: float | None, anomaly: dict[str, Any], wording: Wording) -> str:
    """"75% of the rise (usually 20%)", "offsetting 5% of the drop": a driver's part of the gap."""
    if share is None:
        return ""
    gap = (anomaly["value"] or 0) - (anomaly["expected"] or 0)
    part = wording.say("share_plain" if usual is None else "share", movement=wording.say("drop" if gap < 0 else "rise"),
                       share=wording.percent(abs(share), digits=0),
                       usual=None if usual is None else wording.percent(usual, digits=0))
    return wording.say("offsetting", share=part) if round(share, 2) < 0 else part


def _dimension_label(pack: Pack, name: str, wording: Wording) -> str:
    label = next((d.label for d in pack.dimensions if d.name == name), str(name).replace("_", " "))
    return wording.label("dimension", name, label)


def _driver_subject(row: dict[str, Any], pack: Pack, wording: Wording) -> str:
    """"country DE", "product Trail Tent": the slice a driver is."""
    value = wording.label("value", f"{row['dimension']}.{row['value']}", str(row["value"]))
    return f"{_dimension_label(pack, row['dimension'], wording)} {value}"


def _driver_phrase(row: dict[str, Any], anomaly: dict[str, Any], pack: Pack, wording: Wording) -> str:
    """"country DE: $1,201.20 against $300.00 on usual Wednesdays (+300%), 75% of the rise (usually
    20%)": the slice's amounts in the report's currency, its part of the gap and its usual size."""
    if "actual" not in row:  # a hand-made or older frame: its own phrase
        return str(row["phrase"])
    metric = pack.metric(anomaly["metric"])
    dimension = _dimension_label(pack, row["dimension"], wording)
    part = _share_words(_number(row.get("share")), _number(row.get("usual_share")), anomaly, wording)
    if str(row["value"]) == UNATTRIBUTED:
        return wording.say("driver_unattributed", dimension=dimension, share=part)
    # A ratio metric's slices carry their own ratio (a slice's AOV): say which.
    what = _driver_subject(row, pack, wording) + (f" {anomaly['label']}" if metric.ratio else "")
    actual, expected = _number(row.get("actual")) or 0.0, _number(row.get("expected"))
    weekdays = wording.weekdays(date.fromisoformat(anomaly["date"]))
    if not expected:
        return wording.say("driver_new", what=what, actual=wording.value(metric.unit, actual),
                           weekdays=weekdays, share=part)
    _, change = _change_shown(actual, expected, wording, digits=0)
    return wording.say("driver", what=what, actual=wording.value(metric.unit, actual),
                       expected=wording.value(metric.unit, expected), weekdays=weekdays, share=part,
                       change=change)


def _default_headline(pack: Pack) -> list[str]:
    """The pack's first currency metric, first count metric and first ratio metric, in that order."""
    picks = [
        next((m.name for m in pack.metrics if m.unit == "currency" and m.ratio is None), None),
        next((m.name for m in pack.metrics if m.unit == "count"), None),
        next((m.name for m in pack.metrics if m.ratio is not None), None),
    ]
    return [name for name in picks if name is not None]


def _number(value: object) -> float | None:
    """A float, or None for missing and non-finite values (JSON has no NaN)."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _rounded(value: float | None, digits: int) -> float | int | None:
    if value is None:
        return None
    value = round(value, digits)
    return int(value) if float(value).is_integer() and abs(value) < 2**53 else value


def _json_ready(value: Any) -> Any:
    """Facts with numpy scalars and pandas missing values turned into plain JSON values."""
    if isinstance(value, dict):
        return {key: _json_ready(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_ready(item) for item in value]
    if isinstance(value, (bool, str)) or value is None:
        return value
    if isinstance(value, (int, float)) or hasattr(value, "item"):
        number = value.item() if hasattr(value, "item") else value
        return number if isinstance(number, (bool, str)) else _rounded(_number(number), 6)
    if pd.isna(value):
        return None
    return value


# --- renderings ------------------------------------------------------------------------------


def _title(facts: dict[str, Any]) -> str:
    return Wording.of(facts).say("title", name=facts["workspace"]["name"], week=facts["week"]["label"])


def _period(facts: dict[str, Any]) -> str:
    week, wording = facts["week"], Wording.of(facts)
    partial = "" if week["days_with_data"] == 7 else wording.say("partial", days=week["days_with_data"])
    return wording.say("period", start=week["start"], end=week["end"], timezone=facts["workspace"]["timezone"],
                       previous=facts["previous_week"]["label"]) + partial


def _headers(facts: dict[str, Any]) -> list[str]:
    wording = Wording.of(facts)
    return [wording.say("metric"), wording.say("this_week"), wording.say("last_week"), wording.say("change"), "",
            wording.say("history", weeks=len(facts["weeks"]))]


def _anomaly_line(anomaly: dict[str, Any], wording: Wording) -> str:
    shown = anomaly["display"]
    stake = "" if anomaly.get("impact") is None else wording.say("stake", impact=shown["impact"])
    holiday = wording.say("holiday", holiday=anomaly["holiday"]) if anomaly.get("holiday") else ""
    return wording.say("anomaly", date=anomaly["date"], weekday=anomaly["weekday"], label=anomaly["label"],
                       value=shown["value"], expected=shown["expected"], band=shown["band"],
                       direction=shown.get("direction", anomaly["direction"]),
                       severity=shown.get("severity", anomaly["severity"]), score=shown["score"],
                       rule=wording.label("rule", anomaly["rule"], anomaly["rule"]), stake=stake, holiday=holiday)


def _related_line(related: dict[str, Any], wording: Wording) -> str:
    shown = related["display"]
    return wording.say("related", label=related["label"], value=shown["value"], expected=shown["expected"],
                       base=_base(related["rule"], wording), date=related["date"],
                       rule=wording.label("rule", related["rule"], related["rule"]))


def _held_back(facts: dict[str, Any]) -> str | None:
    """The note on findings of the week that are stored but not shown."""
    more = facts["counts"].get("anomalies_found", 0) - len(facts["anomalies"]) \
        - sum(len(anomaly.get("related", [])) for anomaly in facts["anomalies"])
    return Wording.of(facts).say("held_back", count=more) if more > 0 else None


def _mover_line(mover: dict[str, Any], wording: Wording) -> str:
    shown = mover["display"]
    return wording.say("mover", label=mover["label"], change=shown["change"], delta=shown["delta"],
                       outcome=shown.get("outcome") or wording.say(mover["outcome"] or "n/a"))


def render_text(facts: dict[str, Any], *, summary: str | None = None) -> str:
    """The plain-text report: header, summary, metric table with sparklines, movers, anomalies."""
    wording = Wording.of(facts)
    lines = [_title(facts), _period(facts), ""]
    if summary:
        lines += [summary, ""]
    rows = [tuple(_headers(facts))]
    for metric in facts["metrics"]:
        shown = metric["display"]
        rows.append((metric["label"], shown["current"], shown["previous"], shown["change"], shown["delta"],
                     charts.sparkline(metric["weekly"])))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(row[1:5], widths[1:5])]
        lines.append("  ".join(cells + [row[5]]).rstrip())
    lines += ["", wording.say("movers")]
    for mover in facts["movers"]:
        lines += [f"  {mover['rank']}. {_mover_line(mover, wording)}", f"     → {mover['action']}"]
    if not facts["movers"]:
        lines.append(f"  {wording.say('none')}")
    lines += ["", wording.say("anomalies")]
    for anomaly in facts["anomalies"]:
        lines.append(f"  - {_anomaly_line(anomaly, wording)}")
        lines += [f"      {driver['rank']}. {driver['phrase']}" for driver in anomaly["drivers"]]
        lines += [f"      {_related_line(related, wording)}" for related in anomaly.get("related", [])]
        lines.append(f"    → {anomaly['action']}")
    if not facts["anomalies"]:
        lines.append(f"  {wording.say('none_this_week')}")
    if _held_back(facts):
        lines.append(f"  ({_held_back(facts)})")
    if facts.get("outlook"):
        lines += ["", wording.say("outlook")] + [f"  {item['display']['line']}" for item in facts["outlook"]]
    if facts.get("opportunities"):
        lines += ["", wording.say("opportunities")]
        for item in facts["opportunities"]:
            lines += [f"  {item['rank']}. {opportunity_line(item, wording)}", f"     → {item['action']}"]
    return "\n".join(lines) + "\n"


def opportunity_line(item: dict[str, Any], wording: Wording) -> str:
    """"churn risk, Acme Inc.: past due in the last 30 days, $300.00 MRR; $3,600.00 at stake"."""
    return wording.say("opportunity", subject=f"{item['display']['kind']}, {item['subject']}",
                       evidence=item["evidence"], stake=item["display"]["stake"])


def render_html(facts: dict[str, Any], *, summary: str | None = None, chart_src: str = CHART_FILE) -> str:
    """Email-safe HTML: tables and inline styles only; the chart is `<img src=chart_src>`."""
    escape = html.escape
    wording = Wording.of(facts)
    header = "".join(f'<th style="{CELL};text-align:{align}">{escape(name)}</th>' for name, align in
                     zip(_headers(facts), ["left", "right", "right", "right", "right", "left"]))
    rows = []
    for metric in facts["metrics"]:
        shown = metric["display"]
        colour = OUTCOME_COLOURS.get(metric["outcome"], "#495057")
        rows.append(
            f'<tr><td style="{CELL};text-align:left">{escape(metric["label"])}</td>'
            f'<td style="{CELL}"><b>{escape(shown["current"])}</b></td>'
            f'<td style="{CELL}">{escape(shown["previous"])}</td>'
            f'<td style="{CELL};color:{colour}">{escape(shown["change"])}</td>'
            f'<td style="{CELL};color:{colour}">{escape(shown["delta"])}</td>'
            f'<td style="{CELL};text-align:left">{_html_sparkline(metric["weekly"])}</td></tr>'
        )
    movers = "".join(f"<li>{escape(_mover_line(mover, wording))}{_html_action(mover['action'])}</li>"
                     for mover in facts["movers"]) or f"<li>{escape(wording.say('none'))}</li>"
    anomalies = "".join(
        f"<li>{escape(_anomaly_line(anomaly, wording))}"
        + ("<ol>" + "".join(f"<li>{escape(driver['phrase'])}</li>" for driver in anomaly["drivers"]) + "</ol>"
           if anomaly["drivers"] else "")
        + "".join(f"<div>{escape(_related_line(related, wording))}</div>" for related in anomaly.get("related", []))
        + _html_action(anomaly["action"])
        + "</li>"
        for anomaly in facts["anomalies"]
    ) or f"<li>{escape(wording.say('none_this_week'))}</li>"
    if _held_back(facts):
        anomalies += f"<li>({escape(_held_back(facts))})</li>"
    outlook = "".join(f"<li>{escape(item['display']['line'])}</li>" for item in facts.get("outlook", []))
    outlook_html = (f'<h2 style="font-size:16px">{escape(wording.say("outlook"))}</h2><ul>{outlook}</ul>'
                    if outlook else "")
    chances = "".join(f"<li>{escape(opportunity_line(item, wording))}{_html_action(item['action'])}</li>"
                      for item in facts.get("opportunities", []))
    chances_html = (f'<h2 style="font-size:16px">{escape(wording.say("opportunities"))}</h2><ol>{chances}</ol>'
                    if chances else "")
    summary_html = f'<p style="font-size:15px;line-height:1.5">{escape(summary)}</p>' if summary else ""
    alt = wording.say("chart_alt", weeks=len(facts["weeks"]))
    return (
        f'<!DOCTYPE html><html lang="{escape(wording.language)}"><head><meta charset="utf-8">'
        f"<title>{escape(_title(facts))}</title></head>"
        f'<body style="margin:0;padding:16px;{FONT}">'
        f'<h1 style="font-size:20px;margin:0 0 4px">{escape(_title(facts))}</h1>'
        f'<p style="margin:0 0 12px;color:#495057">{escape(_period(facts))}</p>'
        f"{summary_html}"
        f'<table cellpadding="0" cellspacing="0" style="border-collapse:collapse;font-size:14px">'
        f"<tr>{header}</tr>{''.join(rows)}</table>"
        f'<p><img src="{escape(chart_src)}" alt="{escape(alt)}" '
        f'width="800" style="display:block;max-width:100%;height:auto;border:0"></p>'
        f'<h2 style="font-size:16px">{escape(wording.say("movers"))}</h2><ol>{movers}</ol>'
        f'<h2 style="font-size:16px">{escape(wording.say("anomalies"))}</h2><ul>{anomalies}</ul>'
        f"{outlook_html}{chances_html}"
        "</body></html>"
    )


def _html_action(action: str) -> str:
    return f'<div style="margin:2px 0 6px;color:#1864ab">→ {html.escape(action)}</div>'


def _html_sparkline(values: list[float | None]) -> str:
    """A sparkline as a one-row table of bars: unlike SVG or data: images, every email client shows it."""
    cells = []
    for height in charts.spark_heights(values):
        style = f"width:5px;height:{height}px;background:{charts.LINE_COLOUR};font-size:0;line-height:0"
        bar = "" if height is None else f'<div style="{style}"></div>'
        cells.append(f'<td style="vertical-align:bottom;padding:0 1px">{bar}</td>')
    return (f'<table cellpadding="0" cellspacing="0" style="border-collapse:collapse">'
            f'<tr>{"".join(cells)}</tr></table>')


def render_markdown(facts: dict[str, Any], *, summary: str | None = None) -> str:
    """A compact preview for Dagster metadata: the metric table, movers and anomalies."""
    wording = Wording.of(facts)
    lines = [f"**{_title(facts)}**", "", _period(facts), ""]
    if summary:
        lines += [summary, ""]
    lines += ["| " + " | ".join(_headers(facts)[:4]) + " |", "|---|---:|---:|---:|"]
    for metric in facts["metrics"]:
        shown = metric["display"]
        lines.append(f"| {metric['label']} | {shown['current']} | {shown['previous']} | {shown['change']} |")
    lines += ["", f"**{wording.say('movers')}:** "
              + ("; ".join(_mover_line(m, wording) for m in facts["movers"]) or wording.say("none"))]
    lines += ["", f"**{wording.say('anomalies')}:** {len(facts['anomalies']) or wording.say('none')}"]
    lines += [f"- {_anomaly_line(anomaly, wording)} → {anomaly['action']}" for anomaly in facts["anomalies"]]
    if facts.get("outlook"):
        lines += ["", f"**{wording.say('outlook')}:** " + "; ".join(item["display"]["line"] for item in facts["outlook"])]
    if facts.get("opportunities"):
        lines += ["", f"**{wording.say('opportunities')}:**"]
        lines += [f"{item['rank']}. {opportunity_line(item, wording)} → {item['action']}"
                  for item in facts["opportunities"]]
    return "\n".join(lines) + "\n"


def _chart_key(facts: dict[str, Any], pack: Pack, panels: list[tuple], titles: dict[str, str]) -> str:
    """The trend chart's key: what `chart_panels` draws (each panel's label, weekly values, unit and whole
    ticks), its title and weeks, and the locale and currency its ticks are formatted in."""
    units = [pack.metric(name).unit for name in facts["headline"]]
    wording = Wording.of(facts)
    return charts.chart_key("trend", {
        "weeks": facts["weeks"], "titles": titles, "locale": wording.locale, "currency": wording.currency,
        "panels": [[label, list(values), unit, whole] for (label, values, _, whole), unit in zip(panels, units)]})


def chart_panels(facts: dict[str, Any], pack: Pack) -> tuple[list[tuple], dict[str, str]]:
    """The trend chart's panels (the headline metrics over the report's weeks, axis ticks in whole
    units: no cents) and its title, as `charts.trend_chart` takes them."""
    wording = Wording.of(facts)
    by_name = {metric["name"]: metric for metric in facts["metrics"]}
    panels = []
    for name in facts["headline"]:
        metric = pack.metric(name)
        panels.append((by_name[name]["label"], by_name[name]["weekly"],
                       lambda value, unit=metric.unit: wording.value(unit, value, whole=True), metric.unit != "ratio"))
    title = wording.say("chart_title", name=facts["workspace"]["name"], weeks=len(facts["weeks"]),
                        week=facts["week"]["label"])
    return panels, {"title": title}


def _retention_curves(cohorts: pd.DataFrame | None, facts: dict[str, Any], pack: Pack) -> dict[str, Any] | None:
    """What the retention chart draws: the latest RETENTION_COHORTS cohorts and all cohorts together, by
    months since joining, its titles, and the locale and currency its ticks are formatted in; None
    without two months of any cohort."""
    if cohorts is None or cohorts.empty:
        return None
    frame = cohorts.astype({"age": "int64", "rate": "float64", "customers": "float64"}).dropna()
    if frame["age"].max() < 1:
        return None
    wording = Wording.of(facts)
    frame = frame.assign(cohort_month=pd.to_datetime(frame["cohort_month"]).dt.strftime("%Y-%m"))
    weighted = frame.assign(active=frame["rate"] * frame["customers"]).groupby("age")[["active", "customers"]].sum()
    usual = (weighted["active"] / weighted["customers"]).sort_index()
    latest = sorted(frame["cohort_month"].unique())[-RETENTION_COHORTS:]
    curves = {month: frame[frame["cohort_month"] == month].sort_values("age") for month in latest}
    title = wording.say("retention.title", name=facts["workspace"]["name"], what=wording.say(f"retention.{pack.vertical}"))
    return {"cohorts": {month: [curve["age"].tolist(), curve["rate"].tolist()] for month, curve in curves.items()},
            "usual": [usual.index.tolist(), usual.tolist()], "title": title,
            "usual_label": wording.say("retention.usual"), "x_label": wording.say("retention.months"),
            "locale": wording.locale, "currency": wording.currency}


def _retention_chart(curves: dict[str, Any], facts: dict[str, Any]) -> bytes:
    """The retention curves PNG of `_retention_curves`."""
    wording = Wording.of(facts)
    return charts.retention_chart(
        {month: (ages, rates) for month, (ages, rates) in curves["cohorts"].items()}, tuple(curves["usual"]),
        title=curves["title"], usual_label=curves["usual_label"], x_label=curves["x_label"],
        percent=lambda value: wording.percent(value, digits=0))
