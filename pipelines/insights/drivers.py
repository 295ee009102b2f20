"""Drivers: which slices of a metric (a product, a country, a plan...) made an anomaly.

For one anomalous point, each slice's usual value comes from the same baseline that judged the
metric (`anomalies.detect_many` run on the slice's own history), so "usual" means the same thing
for the whole and its parts. The gap between actual and expected is split per slice:

- summed metrics: a slice contributes its own actual − expected;
- ratio metrics (AOV, ARPA): the gap in the ratio is split into a *rate* effect (the slice's own
  ratio moved) and a *mix* effect (the slice's weight in the denominator moved), which add up
  exactly to the ratio's gap.

Slices are ranked by how much more of the gap they explain than their usual size would: a slice
that is 10% of sales and explains 80% of a drop is the one that moved, while a country that is
90% of sales and explains 90% of it merely carries the drop along.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines.insights.anomalies import DAY, HOUR, Cadence, cadence, detect_many
from pipelines.insights.calendar import Calendar
from pipelines.packs import Metric

UNATTRIBUTED = "(unattributed)"
SPARSE_EXPECTED = 0.5  # slices expecting less than half their average size are sized by that average
FALLBACK_CYCLES = 8  # with too little history for the detector, a slice's usual value is its phase median

COLUMNS = ["rank", "dimension", "value", "expected", "actual", "change", "contribution", "share",
           "usual_share", "rate_effect", "mix_effect", "phrase"]


def explain(
    slices: pd.DataFrame,
    *,
    metric: Metric,
    date: object,
    actual: float,
    expected: float,
    seasonality: str | None = "auto",
    calendar: Calendar | str | None = None,
) -> pd.DataFrame:
    """Split one anomaly's gap (actual − expected) into contributions of each dimension value.

    Args:
        slices: long frame with columns `date`, `dimension`, `value` (the dimension value, e.g.
            "Trail Tent") and the metric's measure: the metric's own column for a summed metric,
            or the summed metrics its ratio is made of (`metric.measures`) for a ratio metric. A slice
            missing on a day counts as 0 that day. Rows after `date` are ignored.
        metric: the pack metric that was flagged; only its dimensions are explained.
        date: the anomalous day (or hour).
        actual: the metric's value at `date`.
        expected: the value the detector expected at `date`.
        seasonality: as in `anomalies.detect`; use the one that flagged the anomaly.
        calendar: as in `anomalies.detect`; use the one that flagged the anomaly, so a holiday's
            slices are also judged against the same holiday a year earlier.

    Returns:
        One row per dimension value, best explanation first, with columns `rank, dimension, value,
        expected, actual, change, contribution, share, usual_share, rate_effect, mix_effect,
        phrase`. For a ratio metric, `expected`/`actual` are the slice's own ratio. Within each
        dimension, contributions add up to the gap; when slice baselines do not add up to the
        metric's, an `(unattributed)` row carries the difference.
    """
    measures = list(metric.measures)
    missing = {"date", "dimension", "value", *measures} - set(slices.columns)
    if missing:
        raise ValueError(f"slices for {metric.name!r} lack columns {sorted(missing)}")
    when = pd.Timestamp(date)
    history = slices.assign(date=pd.to_datetime(slices["date"]))
    history = history[history["date"].le(when) & history["dimension"].isin(metric.dimensions)]
    if history.empty:
        raise ValueError(f"no slices of {metric.name!r} along {list(metric.dimensions)} up to {when}")

    rhythm = _sparse_cadence(pd.DatetimeIndex(history["date"].unique()).union([when]), seasonality)
    usual, now, typical = _usual_and_actual(history, measures, when, rhythm, seasonality, calendar,
                                            metric.counts)
    gap = actual - expected
    parts = []
    for dimension in usual.index.unique("dimension"):
        parts.append(_split(usual.loc[dimension], now.loc[dimension], typical.loc[dimension], dimension, metric,
                            expected, gap))
    drivers = pd.concat(parts, ignore_index=True)

    drivers["share"] = drivers["contribution"] / gap if gap else np.nan
    # A slice that moved explains more of the gap than its usual size; one that moved with the
    # rest explains about its size. Remainder rows are never the driver.
    surprise = (drivers["share"] - drivers["usual_share"].fillna(0.0)).where(drivers["value"] != UNATTRIBUTED)
    drivers = drivers.assign(surprise=surprise).sort_values("surprise", ascending=False, na_position="last")
    drivers["rank"] = np.arange(1, len(drivers) + 1)
    usual_period = _usual_period(when, rhythm.step, seasonality)
    drivers["phrase"] = [_phrase(row, gap, usual_period, metric) for row in drivers.itertuples()]
    return drivers[COLUMNS].reset_index(drop=True)


def _sparse_cadence(dates: pd.DatetimeIndex, seasonality: str | None) -> Cadence:
    """The cadence of slice dates that may skip steps: slices with nothing on a day are left out
    of the slice tables, so a rarely moving metric (churn) has days, not one day, between rows."""
    if len(dates) < 2:  # a slice's first day (e.g. the first reactivation ever): midnight means daily
        grid_step = DAY if dates[0] == dates[0].normalize() else HOUR
    else:
        step = pd.Series(dates.sort_values()).diff().min()
        grid_step = DAY if step % DAY == pd.Timedelta(0) else HOUR
    return cadence(pd.date_range(dates.min(), periods=2, freq=grid_step), seasonality)


def _usual_and_actual(
    history: pd.DataFrame, measures: list[str], when: pd.Timestamp, rhythm: Cadence, seasonality: str | None,
    calendar: Calendar | str | None, counts: bool,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Each slice's expected and actual measures at `when`, and its mean absolute size before
    `when`, indexed by (dimension, value)."""
    wide = history.pivot_table(index="date", columns=["dimension", "value"], values=measures, aggfunc="sum")
    # at least two points, so the detector can tell the frequency (a day before counts as nothing)
    grid = pd.date_range(min(wide.index.min(), when - rhythm.step), when, freq=rhythm.step)
    wide = wide.reindex(grid).fillna(0.0)  # a slice absent on a day sold nothing that day

    judged = detect_many(wide, seasonality=seasonality, calendar=calendar, counts=counts, at=[when])
    expected = judged.xs(when, level=-1)["expected"].reindex(wide.columns)
    # Too little history for the detector: the median of the same phase in earlier periods, else 0.
    period = rhythm.period if seasonality is not None else 1
    earlier = wide.iloc[-1 - period :: -period].iloc[:FALLBACK_CYCLES]
    fallback = earlier.median() if len(earlier) else pd.Series(0.0, index=wide.columns)
    expected = expected.fillna(fallback)

    def by_slice(values: pd.Series) -> pd.DataFrame:
        return values.unstack(level=0)[measures]

    return by_slice(expected), by_slice(wide.loc[when]), by_slice(wide.iloc[:-1].abs().mean())


def _split(usual: pd.DataFrame, now: pd.DataFrame, typical: pd.DataFrame, dimension: str, metric: Metric,
           expected_total: float, gap: float) -> pd.DataFrame:
    """Contributions of one dimension's values to the gap, plus the unattributed remainder."""
    if metric.ratio is None:
        expected, actual = usual[metric.name], now[metric.name]
        # Sparse metrics (churn, refunds) usually expect 0, or next to it, in every slice: then each
        # slice's usual size is its average size in the history, so a currency that carries all
        # churn every day does not outrank the plan that moved.
        usual_total = typical[metric.name].abs().sum()
        size = expected.abs() if expected.abs().sum() >= SPARSE_EXPECTED * usual_total else typical[metric.name]
        rows = pd.DataFrame({
            "expected": expected,
            "actual": actual,
            "contribution": actual - expected,
            "usual_share": size / size.sum() if size.sum() else np.nan,
            "rate_effect": np.nan,
            "mix_effect": np.nan,
        })
    else:
        rows = _rate_and_mix(*metric.ratio_parts(usual), *metric.ratio_parts(now), expected_total)
    with np.errstate(divide="ignore", invalid="ignore"):
        rows["change"] = np.where(rows["expected"] != 0, rows["actual"] / rows["expected"] - 1, np.nan)
    rows = rows.rename_axis("value").reset_index().assign(dimension=dimension)

    remainder = gap - rows["contribution"].sum()
    if abs(remainder) > 1e-9 * max(1.0, abs(gap)):
        rows.loc[len(rows)] = {"dimension": dimension, "value": UNATTRIBUTED, "contribution": remainder}
    return rows


def _rate_and_mix(n0: pd.Series, d0: pd.Series, n1: pd.Series, d1: pd.Series, expected: float) -> pd.DataFrame:
    """Split a ratio's gap, Σn₁/Σd₁ − Σn₀/Σd₀, into per-slice rate and mix effects.

    With slice rates r = n/d and weights w = d/Σd, the ratio is Σ w·r, and exactly
    w₁r₁ − w₀r₀ = (r₁ − r₀)(w₀ + w₁)/2 + (w₁ − w₀)(r₀ + r₁)/2. The weights' changes add up to
    zero, so the mix term may measure rates from the old overall ratio R₀: a slice gaining weight
    raises the ratio only if its rate is above average.

    Where no slice has a usual denominator (orders on a day that usually has none), there is no
    usual ratio or weight: every weight w₀ is 0, R₀ is the metric's `expected` ratio, and each slice
    contributes w₁·(r₁ − R₀), all mix, which add up to Σn₁/Σd₁ − expected. Likewise a day without
    any denominator weighs every slice 0.

    Args:
        n0, d0: each slice's usual numerator and denominator.
        n1, d1: each slice's actual numerator and denominator.
        expected: the metric's expected ratio, R₀ where the slices have no usual denominator.
    """
    total0, total1 = d0.sum(), d1.sum()
    ratio_before = n0.sum() / total0 if total0 else expected
    w0, w1 = (d0 / total0 if total0 else d0 * 0.0), (d1 / total1 if total1 else d1 * 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r0, r1 = n0 / d0.where(d0 != 0), n1 / d1.where(d1 != 0)
    # A slice absent on one side has weight 0 there, so any rate works; its other rate keeps it a
    # pure mix effect.
    r0, r1 = r0.fillna(r1).fillna(0.0), r1.fillna(r0).fillna(0.0)
    rate = (r1 - r0) * (w0 + w1) / 2
    mix = (w1 - w0) * ((r0 + r1) / 2 - ratio_before)
    return pd.DataFrame({
        "expected": r0.where(d0 != 0),
        "actual": r1.where(d1 != 0),
        "contribution": rate + mix,
        "usual_share": w0,
        "rate_effect": rate,
        "mix_effect": mix,
    })


def _phrase(row, gap: float, usual: str, metric: Metric) -> str:
    """A sentence fragment such as "product Trail Tent −82% vs usual Tuesdays, 71% of the drop"."""
    movement = "drop" if gap < 0 else "rise"
    share = "" if pd.isna(row.share) else f"{_percent(abs(row.share), sign=False)} of the {movement}"
    if row.share < 0:
        share = f"offsetting {share}"
    subject = row.dimension.replace("_", " ")
    if row.value == UNATTRIBUTED:
        return f"not attributed to one {subject}: {share}"
    what = f"{subject} {row.value}" + (f" {metric.label}" if metric.ratio else "")
    if pd.isna(row.change):
        amount = "none" if pd.isna(row.actual) or row.actual == 0 else f"{row.actual:,.2f}"
        change = f"{amount} vs none on {usual}"
    else:
        change = f"{_percent(row.change)} vs {usual}"
    return f"{what} {change}, {share}" if share else f"{what} {change}"


def _usual_period(when: pd.Timestamp, step: pd.Timedelta, seasonality: str | None) -> str:
    """"usual Tuesdays" for daily data, "usual Tuesdays 14:00" for hourly data ("usual 14:00 hours"
    with an hour-of-day profile)."""
    hourly = step < pd.Timedelta(days=1)
    if seasonality is None:
        return "usual hours" if hourly else "usual days"
    if hourly:
        return f"usual {when:%H}:00 hours" if seasonality == "daily" else f"usual {when.day_name()}s {when:%H}:00"
    return f"usual {when.day_name()}s"


def _percent(fraction: float, *, sign: bool = True) -> str:
    """A percentage with a true minus sign, e.g. −82% or +15%."""
    text = f"{fraction:+.0%}" if sign else f"{fraction:.0%}"
    return text.replace("-", "−")
