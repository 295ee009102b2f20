"""Seeded synthetic metric series with known anomalies: the detection benchmark and the P5 scan.

**The detection benchmark** (`business_series`, `detection_benchmark`): realistic business series
(trend, weekly and yearly seasonality, holidays of four countries including moving ones, a
pre-Christmas season, yearly one-day promotions, missing days, low counts, hourly data) with
labeled events (spikes, dips, outages, lasting level shifts), scored event by event: precision,
recall and F1, where an event counts once however many points it spans, and false alerts per
series-month. A rolling z-score > 4 baseline is scored on the same series. `abos bench` runs it.

**P5** (`metric_frame`, `benchmark`): a scan of 1,000 workspaces × 20 metrics × 730 days in
≤ 30 s on 2 cores, scored against its injected anomalies.

    .venv/bin/python -m pipelines.insights.synthetic --workspaces 1000 --metrics 20 --days 730
    .venv/bin/python -m pipelines.insights.synthetic --detection
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipelines.insights.anomalies import SENSITIVITY, detect_many
from pipelines.insights.calendar import calendar_for

WARM_UP_DAYS = 60  # no anomaly is injected before the detector has history to judge it


@dataclass(frozen=True)
class Synthetic:
    """A wide frame of daily metrics (columns: workspace, metric) and the anomalies injected in it."""

    frame: pd.DataFrame
    truth: pd.DataFrame  # workspace, metric, date, kind ("spike", "dip", "shift"), factor


def metric_frame(workspaces: int = 1000, metrics: int = 20, days: int = 730, *, seed: int = 0,
                 anomalies_per_series: float = 2.0) -> Synthetic:
    """Daily series shaped like business metrics, with spikes, dips and level shifts injected.

    Each series has its own level (from tens to tens of thousands), yearly growth, weekly shape,
    a yearly wave and noise. Even-numbered metrics are amounts with noise proportional to their
    level; odd-numbered ones are Poisson counts. Anomalies are multiplicative: a one-day spike
    (×1.6 to ×2.5), a one-day dip (×0.1 to ×0.5) or a lasting shift (×0.6 or ×1.5 onwards).

    Args:
        workspaces: number of businesses.
        metrics: metrics per business.
        days: length of every series, ending on 2025-12-31.
        seed: everything drawn depends only on it.
        anomalies_per_series: mean number of injected anomalies per series (Poisson).
    """
    rng = np.random.default_rng(seed)
    n_series = workspaces * metrics
    t = np.arange(days)
    dates = pd.date_range(end="2025-12-31", periods=days, freq="D", name="date")

    level = np.exp(rng.uniform(np.log(20), np.log(20_000), n_series))[:, None]
    growth = 1 + rng.uniform(-0.1, 0.6, n_series)[:, None] * t / 365
    weekly = 1 + rng.uniform(0, 0.4, (n_series, 7)) - 0.2
    weekday = weekly[:, dates.day_of_week.to_numpy()]
    yearly = 1 + rng.uniform(0, 0.15, n_series)[:, None] * np.sin(2 * np.pi * (t / 365.25 + rng.uniform(0, 1, (n_series, 1))))
    mean = level * growth * weekday * yearly

    # Anomalies as log-factors: one-day ones at their day, shifts as steps summed over time.
    total = rng.poisson(anomalies_per_series * n_series)
    where = pd.DataFrame({"series": rng.integers(0, n_series, total),
                          "day": rng.integers(WARM_UP_DAYS, days, total)}).drop_duplicates()
    series, day = where["series"].to_numpy(), where["day"].to_numpy()
    kind = rng.choice(np.array(["spike", "dip", "shift"]), len(where))
    size = np.select(
        [kind == "spike", kind == "dip"],
        [rng.uniform(1.6, 2.5, len(where)), rng.uniform(0.1, 0.5, len(where))],
        rng.choice([0.6, 1.5], len(where)),
    )
    one_day, steps = np.zeros((n_series, days)), np.zeros((n_series, days))
    np.add.at(one_day, (series[kind != "shift"], day[kind != "shift"]), np.log(size[kind != "shift"]))
    np.add.at(steps, (series[kind == "shift"], day[kind == "shift"]), np.log(size[kind == "shift"]))
    mean = mean * np.exp(one_day + np.cumsum(steps, axis=1))

    amounts = np.arange(n_series) % metrics % 2 == 0
    values = np.empty_like(mean)
    values[amounts] = mean[amounts] * rng.normal(1, 0.05, (amounts.sum(), days)).clip(0)
    values[~amounts] = rng.poisson(mean[~amounts])

    columns = pd.MultiIndex.from_product(
        [[f"ws-{i:04d}" for i in range(workspaces)], [f"metric_{j:02d}" for j in range(metrics)]],
        names=["workspace", "metric"],
    )
    frame = pd.DataFrame(values.T, index=dates, columns=columns)
    injected = pd.DataFrame({
        "workspace": columns.get_level_values("workspace")[series],
        "metric": columns.get_level_values("metric")[series],
        "date": dates[day],
        "kind": kind,
        "factor": size,
    }).sort_values(["workspace", "metric", "date"], ignore_index=True)
    return Synthetic(frame, injected)


def benchmark(workspaces: int = 1000, metrics: int = 20, days: int = 730, *, seed: int = 0,
              workers: int = 2) -> dict[str, float]:
    """Time the anomaly scan on synthetic input and score it against the injected anomalies.

    Returns:
        Seconds to generate and to scan (wall and CPU), points per second, the share of injected anomalies
        flagged on their day, and alerts on other days per series per 90 judged days. The
        latter includes days just after an injected shift, so it overstates false alerts.
    """
    started = time.perf_counter()
    synthetic = metric_frame(workspaces, metrics, days, seed=seed)
    generated = time.perf_counter()
    cpu = time.process_time()
    found = detect_many(synthetic.frame, anomalies_only=True, workers=workers)
    scanned = time.perf_counter()
    cpu = time.process_time() - cpu

    flagged = found.index.to_frame(index=False)
    hits = synthetic.truth.merge(flagged, on=["workspace", "metric", "date"], how="inner")
    injected_keys = pd.MultiIndex.from_frame(synthetic.truth[["workspace", "metric", "date"]])
    others = (~found.index.isin(injected_keys)).sum()
    series = workspaces * metrics
    return {
        "series": series,
        "points": series * days,
        "generate_s": round(generated - started, 2),
        "scan_s": round(scanned - generated, 2),
        "scan_cpu_s": round(cpu, 2),  # all threads; tells a busy machine from a slow scan
        "points_per_s": round(series * days / (scanned - generated)),
        "injected": len(synthetic.truth),
        "recall": round(len(hits) / max(1, len(synthetic.truth)), 3),
        "other_alerts_per_series_per_90_days": round(others / series / (days - 42) * 90, 3),
    }


# --- the detection benchmark -------------------------------------------------------------------

BENCH_COUNTRIES = ("US", "BR", "DE", "GB")
BENCH_END = "2025-12-31"
# Each series draws its own effect per holiday (in this range) once and keeps it every year, so a
# moving holiday (Easter, Carnival, Thanksgiving, Black Friday) moves its effect with it.
HOLIDAY_EFFECTS = {
    "Black Friday": (1.6, 3.0), "Black Friday Saturday": (1.2, 1.9), "Black Friday Sunday": (1.1, 1.7),
    "Cyber Monday": (1.4, 2.5), "Christmas Day": (0.2, 0.6), "Christmas Eve": (0.55, 0.9),
    "New Year's Day": (0.4, 0.8), "New Year's Eve": (0.6, 0.95), "Thanksgiving": (0.45, 0.8),
    "Easter": (0.6, 0.9), "Good Friday": (0.65, 0.95), "Carnival": (0.5, 0.85), "Mother's Day": (1.1, 1.5),
}
OTHER_HOLIDAY = (0.85, 1.1)
FAMILIES = {"amounts": 0.35, "counts": 0.35, "low_counts": 0.3}  # shares of the daily series
EVENTS_PER_YEAR = 4.0
MIN_EVENT_GAP_DAYS = 10
DAILY_WARM_UP, DAILY_FIRST_EVENT = 56, 70  # days judged for false alerts / where events may start
HOURLY_WARM_UP, HOURLY_FIRST_EVENT = 28, 35
Z_BASELINE = 4.0  # the rolling z-score baseline: |value − mean| > 4 standard deviations of the trailing window


@dataclass(frozen=True)
class Labeled:
    """Benchmark series with their labels.

    Attributes:
        frames: one wide frame per (country, cadence), columns are series names.
        labels: one row per event: series, family, kind, start, end (inclusive: alerts in
            [start, end] detect it and are not false), and "ignore" rows (a yearly promotion's
            first occurrence: neither detected nor false).
    """

    frames: dict[tuple[str, str], pd.DataFrame]
    labels: pd.DataFrame


def business_series(*, seed: int = 0, daily: int = 320, hourly: int = 40, years: int = 3,
                    hourly_years: int = 2) -> Labeled:
    """Seeded business series with labeled events, daily (amounts, counts, low counts) and hourly.

    Every series has a country (US, BR, DE or GB: its holidays), a level, growth, a weekly shape,
    a yearly wave, a pre-Christmas season and a January lull, its own effect for each holiday,
    0-2 one-day promotions on fixed dates every year, and missing days. Events: one-day spikes
    (×1.5-3) and dips (×0.1-0.55), outages of 2-4 days (×0-0.3), lasting shifts (×0.55-0.75 or
    ×1.35-1.8); low counts get bursts (+3-6 × their mean, at least +3) and upward shifts; hourly
    series get spikes and outages of a few hours and shifts.
    """
    rng = np.random.default_rng(seed)
    frames: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    labels: list[dict] = []
    indexes = {"daily": pd.date_range(end=BENCH_END, periods=365 * years + years // 4, freq="D"),
               "hourly": pd.date_range(end=f"{BENCH_END} 23:00", periods=24 * (365 * hourly_years + 1), freq="h")}
    calendars = {country: calendar_for(country, [indexes["daily"][0].date(), indexes["daily"][-1].date()])
                 for country in BENCH_COUNTRIES}
    families = list(FAMILIES)
    for number in range(daily + hourly):
        cadence_name = "daily" if number < daily else "hourly"
        family = rng.choice(families, p=list(FAMILIES.values())) if cadence_name == "daily" else "hourly"
        country = BENCH_COUNTRIES[number % len(BENCH_COUNTRIES)]
        name = f"{cadence_name}-{family}-{number:04d}"
        values, events = _one_series(rng, indexes[cadence_name], family, calendars[country])
        frames.setdefault((country, cadence_name), {})[name] = values
        labels += [{"series": name, "family": family, "cadence": cadence_name, **event} for event in events]
    return Labeled(
        frames={key: pd.DataFrame(columns, index=indexes[key[1]]) for key, columns in frames.items()},
        labels=pd.DataFrame(labels, columns=["series", "family", "cadence", "kind", "start", "end"]),
    )


def _one_series(rng: np.random.Generator, index: pd.DatetimeIndex, family: str, calendar) -> tuple[np.ndarray, list]:
    """One series' values and its events (see `business_series`)."""
    hourly = family == "hourly"
    per_day = 24 if hourly else 1
    calendar_days = pd.date_range(index[0].normalize(), index[-1].normalize(), freq="D")
    day_at = np.asarray((index.normalize() - calendar_days[0]).days)  # each point's day number
    t_years = day_at / 365.25
    weekday, hour = index.day_of_week.to_numpy(), index.hour.to_numpy()
    mean = {"amounts": np.exp(rng.uniform(np.log(300), np.log(30_000))), "counts": rng.uniform(15, 400),
            "low_counts": rng.uniform(0.3, 6), "hourly": rng.uniform(4, 120)}[family]
    mean = mean * (1 + rng.uniform(-0.1, 0.8) * t_years)  # growth
    mean = mean * (1 + rng.uniform(-0.35, 0.25, 7))[weekday]
    if hourly:  # a day's curve, later at weekends (hour of week, not hour of day alone)
        peak = rng.uniform(11, 20) + np.where(weekday >= 5, rng.uniform(1, 3), 0.0)
        mean = mean * (0.08 + np.exp(-0.5 * ((hour - peak) / rng.uniform(3, 5)) ** 2))
    yearly = 1 + rng.uniform(0, 0.2) * np.sin(2 * np.pi * (t_years + rng.uniform(0, 1)))
    day_of_year = index.day_of_year.to_numpy()
    season = 1 + rng.uniform(0, 0.35) * np.clip((day_of_year - 318) / 14, 0, 1) * (day_of_year <= 354)
    lull = 1 - rng.uniform(0, 0.2) * (day_of_year <= 12)
    mean = mean * yearly * season * lull

    by_day = np.ones(len(calendar_days))  # holiday and promotion factors of each day
    effects: dict[str, float] = {}
    busy: set[int] = set()
    for number, day in enumerate(calendar_days):
        for holiday in calendar.days.get(day.date(), ()):
            low, high = next((span for key, span in HOLIDAY_EFFECTS.items() if key in holiday), OTHER_HOLIDAY)
            by_day[number] *= effects.setdefault(holiday, rng.uniform(low, high))
            busy |= set(range(number - 3, number + 4))
    events: list[dict] = []
    for _ in range(rng.integers(0, 3)):  # yearly promotions on a fixed date, never near a holiday
        month, day_of_month, lift = int(rng.integers(2, 11)), int(rng.integers(1, 29)), rng.uniform(1.5, 2.5)
        numbers = [number for number, day in enumerate(calendar_days)
                   if (day.month, day.day) == (month, day_of_month) and number not in busy]
        for order, number in enumerate(numbers):
            by_day[number] *= lift
            busy |= set(range(number - 3, number + 4))
            if order == 0:  # the first one is news to any detector: neither a hit nor a false alert
                start = calendar_days[number]
                events.append({"kind": "ignore", "start": start, "end": start + pd.Timedelta(hours=47)
                               if hourly else start + pd.Timedelta(days=1)})
    mean = mean * by_day[day_at]

    first = (HOURLY_FIRST_EVENT if hourly else DAILY_FIRST_EVENT) * per_day
    taken: list[int] = []
    for _ in range(rng.poisson(EVENTS_PER_YEAR * len(index) / per_day / 365)):
        at = int(rng.integers(first, len(index) - 2 * per_day))
        if day_at[at] in busy or any(abs(at - other) < MIN_EVENT_GAP_DAYS * per_day for other in taken):
            continue
        if hourly and mean[at] < 0.4 * np.median(mean[max(0, at - 168):at]):
            continue  # a quiet night hour: an outage there is not measurable
        kind, length, factor, extra = _event(rng, family)
        if kind == "shift" and family == "low_counts" and any(event["kind"] == "shift" for event in events):
            continue  # one lasting rise per low-count series: they would compound to hundreds a day
        taken.append(at)
        until = min(at + length, len(index))
        if kind == "shift":
            mean[at:] = mean[at:] * factor
            window_end = at + (48 if hourly else 6)
        else:
            mean[at:until] = mean[at:until] * factor + extra
            window_end = until - 1 + (2 if hourly else 1)
        events.append({"kind": kind, "start": index[at], "end": index[min(window_end, len(index) - 1)]})

    if family == "amounts":
        values = mean * rng.lognormal(0, rng.uniform(0.04, 0.12), len(index))
    elif family == "low_counts":
        values = rng.poisson(mean).astype(float)
    else:  # counts, over-dispersed: a gamma-Poisson (negative binomial) with variance d × mean
        extra_dispersion = rng.uniform(0.0, 1.0)
        rate = rng.gamma(mean / extra_dispersion, extra_dispersion) if extra_dispersion > 0.01 else mean
        values = rng.poisson(rate).astype(float)
    values = values.round(2)
    labeled = np.zeros(len(index), dtype=bool)
    for event in events:
        labeled |= (index >= event["start"]) & (index <= event["end"])
    gaps = rng.random(len(index)) < 0.01  # scattered missing days (or hours)
    if rng.random() < 0.25:  # and sometimes a feed that stopped for a few days
        start = int(rng.integers(first, len(index) - 8 * per_day))
        gaps[start:start + int(rng.integers(3, 8)) * per_day] = True
    values[gaps & ~labeled] = np.nan
    return values, events


def _event(rng: np.random.Generator, family: str) -> tuple[str, int, float, float]:
    """An event's kind, length in points, factor and additive extra."""
    if family == "low_counts":  # bursts; a lasting rise is rarer (a price change), see _one_series
        if rng.random() < 0.85:
            return "spike", 1, rng.uniform(3, 6), 3.0
        return "shift", 0, rng.uniform(2.5, 4), 0.0
    if family == "hourly":
        kind = rng.choice(["spike", "outage", "shift"], p=[0.35, 0.4, 0.25])
        if kind == "spike":
            return "spike", int(rng.integers(1, 4)), rng.uniform(1.8, 3.0), 0.0
        if kind == "outage":
            return "outage", int(rng.integers(1, 7)), rng.uniform(0, 0.2), 0.0
        return "shift", 0, rng.choice([rng.uniform(0.55, 0.75), rng.uniform(1.35, 1.8)]), 0.0
    kind = rng.choice(["spike", "dip", "outage", "shift"], p=[0.35, 0.25, 0.15, 0.25])
    if kind == "spike":
        return "spike", 1, rng.uniform(1.5, 3.0), 0.0
    if kind == "dip":
        return "dip", 1, rng.uniform(0.1, 0.55), 0.0
    if kind == "outage":
        return "outage", int(rng.integers(2, 5)), rng.uniform(0, 0.3), 0.0
    return "shift", 0, rng.choice([rng.uniform(0.55, 0.75), rng.uniform(1.35, 1.8)]), 0.0


def score_events(alerts: pd.DataFrame, labels: pd.DataFrame, judged_points: pd.Series,
                 points_per_day: pd.Series) -> dict[str, float]:
    """Event-level precision, recall, F1 and false alerts per series-month.

    Args:
        alerts: flagged points, columns `series`, `timestamp`.
        labels: as in `Labeled.labels`.
        judged_points: per series, the points past the warm-up (what false alerts are counted over).
        points_per_day: per series, 1 (daily) or 24 (hourly).

    An event is detected by any alert in [start, end]; alerts there (and in "ignore" windows) are
    not false. Other alerts are false; consecutive ones less than a day apart are one false event.
    """
    labels = labels[labels["series"].isin(judged_points.index)]
    events = labels[labels["kind"] != "ignore"]
    detected = 0
    covered = np.zeros(len(alerts), dtype=bool)
    for series, own in labels.groupby("series"):
        mine = (alerts["series"] == series).to_numpy()
        times = alerts["timestamp"].to_numpy()
        for event in own.itertuples():
            inside = mine & (times >= np.datetime64(event.start)) & (times <= np.datetime64(event.end))
            covered |= inside
            detected += bool(inside.any()) and event.kind != "ignore"
    false = alerts[~covered].sort_values(["series", "timestamp"])
    new_episode = (false["series"] != false["series"].shift()) | (
        false["timestamp"].diff() >= pd.Timedelta(days=1))
    false_events = int(new_episode.sum())
    precision = detected / max(detected + false_events, 1)
    recall = detected / max(len(events), 1)
    series_months = float((judged_points / points_per_day.reindex(judged_points.index)).sum() / 30.44)
    return {
        "series": int(len(judged_points)),
        "events": int(len(events)),
        "detected": int(detected),
        "false_alerts": false_events,
        "precision": round(precision, 3),
        "recall": round(recall, 3),
        "f1": round(2 * precision * recall / max(precision + recall, 1e-9), 3),
        "false_alerts_per_series_month": round(false_events / max(series_months, 1e-9), 3),
    }


def rolling_z_alerts(frame: pd.DataFrame, window: int, limit: float = Z_BASELINE) -> pd.DataFrame:
    """The baseline: points more than `limit` standard deviations from the mean of the `window`
    points before them (no seasonality, no holidays)."""
    past = frame.shift(1).rolling(window, min_periods=window // 2)
    z = (frame - past.mean()) / past.std()
    flagged = z.abs().gt(limit) & z.notna()
    stacked = flagged.stack()
    found = stacked[stacked].index.to_frame(index=False)
    found.columns = ["timestamp", "series"]
    return found


def detection_benchmark(*, seed: int = 0, daily: int = 320, hourly: int = 40, years: int = 3,
                        hourly_years: int = 2, sensitivity: float = SENSITIVITY) -> dict:
    """Score the detector (default settings, each country's calendar) and the z > 4 baseline on
    `business_series`, per family and overall."""
    started = time.perf_counter()
    labeled = business_series(seed=seed, daily=daily, hourly=hourly, years=years, hourly_years=hourly_years)
    generated = time.perf_counter()
    detector, baseline, judged, per_day = [], [], {}, {}
    scan_seconds = 0.0
    for (country, cadence_name), frame in labeled.frames.items():
        points_per_day = 24 if cadence_name == "hourly" else 1
        warm_up = (HOURLY_WARM_UP if cadence_name == "hourly" else DAILY_WARM_UP) * points_per_day
        since = frame.index[warm_up]
        begun = time.perf_counter()
        found = detect_many(frame, sensitivity=sensitivity, anomalies_only=True,
                            calendar=calendar_for(country, [frame.index[0].date(), frame.index[-1].date()]))
        scan_seconds += time.perf_counter() - begun
        found = found.index.to_frame(index=False)
        found.columns = ["series", "timestamp"]
        detector.append(found[found["timestamp"] >= since])
        window = 7 * 24 if cadence_name == "hourly" else 28
        found = rolling_z_alerts(frame, window)
        baseline.append(found[found["timestamp"] >= since])
        for name in frame.columns:
            judged[name] = int(frame.loc[since:, name].notna().sum())
            per_day[name] = points_per_day
    judged, per_day = pd.Series(judged), pd.Series(per_day)
    detector, baseline = pd.concat(detector, ignore_index=True), pd.concat(baseline, ignore_index=True)
    family_of = labeled.labels.drop_duplicates("series").set_index("series")["family"]
    family_of = pd.Series({name: family_of.get(name, name.split("-")[1]) for name in judged.index})
    result: dict = {"seed": seed, "series": int(len(judged)), "sensitivity": sensitivity,
                    "generate_s": round(generated - started, 2), "scan_s": round(scan_seconds, 2)}
    for method, alerts in (("detector", detector), ("rolling_z4", baseline)):
        figures = {"all": score_events(alerts, labeled.labels, judged, per_day)}
        for family in sorted(family_of.unique()):
            names = family_of.index[family_of == family]
            figures[family] = score_events(alerts[alerts["series"].isin(names)], labeled.labels, judged[names],
                                           per_day[names])
        result[method] = figures
    return result



def main() -> None:
    """Command line: run `benchmark` and print its figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspaces", type=int, default=1000)
    parser.add_argument("--metrics", type=int, default=20)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--detection", action="store_true", help="run the labeled detection benchmark instead")
    args = parser.parse_args()
    if args.detection:
        print(json.dumps(detection_benchmark(seed=args.seed), indent=2))
        return
    print(json.dumps(benchmark(args.workspaces, args.metrics, args.days, seed=args.seed, workers=args.workers)))


if __name__ == "__main__":
    main()
