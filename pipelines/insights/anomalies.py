"""Anomaly detection on daily or hourly metric series, judged only on each point's past.

The method (see docs/anomalies.md): a point's *expected* value is a recent level times (for
positive series; plus, otherwise) a seasonal profile (day of week; hour of week for hourly data),
both medians, so spikes in the history barely move them. The band is `sensitivity` robust standard
deviations of recent forecast errors; low counts (a few churned subscriptions a day) are judged by
a negative binomial instead. Holidays are compared with the same holiday a year earlier (excused
when there is none), and an excursion that the same point of last year's calendar also had
(a yearly promotion, the Christmas dip) is "recurring", not news. Excursions that last are one
episode: only the first point is flagged (and any point twice as far out as the episode's last
flagged one), and the level re-anchors after half a cycle.

Everything runs on a (series × time) matrix at once, so scanning thousands of series costs a few
vectorized numpy passes, not a Python loop per point.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import pandas as pd
from scipy import special

from pipelines.countries import country_for_timezone
from pipelines.insights.calendar import Calendar, calendar_for

DAY = pd.Timedelta(days=1)
HOUR = pd.Timedelta(hours=1)

# The band's half-width in robust standard deviations. 4, not 3: on the detection benchmark
# (docs/anomalies.md) 3.5 finds 5% more of the daily events but raises twice as many false alerts.
SENSITIVITY = 4.0
PROFILE_CYCLES = 8  # the seasonal profile is the median of the last 8 periods (8 weeks)
MIN_PROFILE_CYCLES = 3
SCALE_CYCLES = 12  # the band's width comes from the forecast errors of the last 12 cycles
MIN_SCALE_CYCLES = 2
MIN_MOVING_CYCLES = 4  # a sparse series is judged once 4 of those cycles had errors at all
RELATIVE_SCALE_FLOOR = 0.01  # a dead-flat history still gets a band of ±sensitivity % of the level
# Median over 12 cycles of a cycle's mean |error| → standard deviation, for normal errors. The
# textbook mean-|error| factor is 1.2533; the median of the skewed per-cycle means sits a little
# lower, which a simulation of 200,000 × 12 cycles of 7 normal errors puts at 1.274.
CYCLE_MEAN_ABS_TO_SIGMA = 1.274
ADDITIVE_MARGIN = 0.8  # the additive baseline takes over where its typical error is 20% smaller
# Heavy tails: bursty series (refunds, churn, discounts) swing further than their robust standard
# deviation says. Each cycle's largest |score| is compared with what normal errors would give; the
# band widens by the ratio of the 75th percentile of the last 26 cycles' figures to its normal
# value. The 75th percentile, not a higher one: a business has several real events in half a
# year (a sale, an outage, a shift), and up to six such weeks must not widen the band.
TAIL_CYCLES = 26
MIN_TAIL_CYCLES = 8
TAIL_QUANTILE = 0.75
SCORE_CAP = 100.0  # a score off a dead-flat history is infinite; it counts as this much in the tail
ESCALATION = 2.0  # a point in an ongoing episode this many times further out is flagged again
CHUNK = 1024  # series per block of work: bounds memory (the profile stacks 8 copies of the block)
# Counts: below this many per point, a count series is judged by a negative binomial around the
# trimmed mean of its last 4 cycles, not by a normal band around a median (the median of a few
# churned subscriptions a day is mostly 0 or 1, and its errors are far from normal).
COUNT_LEVEL = 30.0
COUNT_WINDOW_CYCLES = 4
COUNT_PRIOR = 1.0  # pseudo-events in the count window: one event a month is never "infinitely" rare
PROFILE_PRIOR = 5.0  # pseudo-counts that pull a count series' seasonal profile towards flat
# Last year: a holiday is compared with the same holiday a year earlier; any other point outside
# the band is "recurring" when the same point of last year's calendar (same weekday 52 weeks
# earlier, or same date) was outside it the same way.
LAST_YEAR_NOISE = 2.0  # last year's single point is as noisy as this year's: variances add
MIN_LAST_YEAR_RATIO = 0.25  # below this ratio to its expected, last year's point sets no narrower band
COUNT_RATIO_PRIOR = 2.0  # pseudo-counts on both sides of a count's ratio to its expected a year ago

STATUSES = ["ok", "anomaly", "continuing", "insufficient_history", "missing", "holiday", "recurring"]
DIRECTIONS = ["up", "down"]


@dataclass(frozen=True)
class Cadence:
    """How a series' points relate to the calendar: its step, level cycle and seasonal period."""

    step: pd.Timedelta
    cycle: int  # points per natural cycle (the level's window, the scale's unit): 7 days, 24 hours
    period: int  # points per seasonal profile: 7 (day of week), 168 (hour of week), 24 (hour of day)
    seasonal: bool  # whether the expected value includes a per-phase seasonal profile

    @property
    def week(self) -> int:
        """Points in one week, the lag of the week-over-week rule."""
        return int(pd.Timedelta(weeks=1) / self.step)

    @property
    def per_day(self) -> int:
        return int(DAY / self.step)


def cadence(index: pd.Index, seasonality: str | None = "auto") -> Cadence:
    """Infer the cadence of a daily or hourly index and check the seasonality asked for.

    Args:
        index: the series' timestamps.
        seasonality: "auto" (day of week for daily data, hour of week for hourly data), "weekly"
            (the same), "daily" (hour of day, hourly data only) or None.

    Raises:
        ValueError: the index is not a daily or hourly DatetimeIndex, or the seasonality does not fit it.
    """
    if not isinstance(index, pd.DatetimeIndex):
        raise ValueError(f"series must be indexed by timestamps, not {type(index).__name__}")
    if len(index) < 2:
        raise ValueError("a series needs at least two points to tell its frequency")
    if index.has_duplicates:
        raise ValueError(f"series has duplicate timestamps, e.g. {index[index.duplicated()][0]}")
    step = pd.Series(index.sort_values()).diff().min()
    if step not in (DAY, HOUR):
        raise ValueError(f"series must be daily or hourly; its smallest step is {step}")
    if step == DAY:
        periods = {"auto": 7, "weekly": 7, None: 7}
    else:
        periods = {"auto": 168, "weekly": 168, "daily": 24, None: 24}
    if seasonality not in periods:
        frequency = "daily" if step == DAY else "hourly"
        fits = ", ".join(repr(name) for name in periods)
        raise ValueError(f"seasonality {seasonality!r} does not fit {frequency} data; use one of {fits}")
    cycle = 7 if step == DAY else 24
    return Cadence(step=step, cycle=cycle, period=periods[seasonality], seasonal=seasonality is not None)


def detect(
    series: pd.Series,
    *,
    sensitivity: float = SENSITIVITY,
    seasonality: str | None = "auto",
    calendar: Calendar | str | None = "auto",
    counts: bool | None = None,
) -> pd.DataFrame:
    """Judge every point of one daily or hourly series against its own past.

    Args:
        series: metric values indexed by timestamp; gaps in the grid are treated as missing points.
        sensitivity: how many robust standard deviations from expected count as an anomaly.
        seasonality: "auto" (day of week for daily data, hour of week for hourly data), "weekly",
            "daily" (hour of day, hourly data) or None.
        calendar: the holidays to know: a `calendar.Calendar`, an ISO 3166 country code, None for
            none, or "auto": the country of a timezone-aware index's timezone (none for naive).
        counts: whether the values are counts of events (a negative binomial judges low counts);
            None decides from the data: counts while every value so far is a whole number ≥ 0.
            Pass False for levels such as active customers.

    Returns:
        One row per input point, on the input's index, with columns `value, expected, lower, upper,
        score, is_anomaly, direction, status, holiday`. `status` is one of `ok`, `anomaly`,
        `continuing` (a lasting excursion already flagged on its first point),
        `insufficient_history`, `missing` (the value is NaN), `holiday` (a holiday with no
        judged same holiday a year earlier: excused) or `recurring` (outside the usual band, as
        the same point of last year's calendar was). `holiday` names the point's holiday.
    """
    found = detect_many(series.to_frame("series"), sensitivity=sensitivity, seasonality=seasonality,
                        calendar=calendar, counts=counts)
    return found.droplevel(0).reindex(series.index)


def detect_many(
    frame: pd.DataFrame,
    *,
    sensitivity: float | Mapping[object, float] | pd.Series = SENSITIVITY,
    seasonality: str | None = "auto",
    anomalies_only: bool = False,
    workers: int = 2,
    calendar: Calendar | str | None = "auto",
    counts: bool | None | Mapping[object, bool | None] = None,
    at: Sequence[object] | None = None,
) -> pd.DataFrame:
    """Judge many series that share one daily or hourly time index, all at once.

    Args:
        frame: wide frame, one column per series (any column labels, MultiIndex allowed), indexed by
            timestamp.
        sensitivity: one value for all series, or one per column label (a mapping or a Series).
        seasonality: as in `detect`.
        anomalies_only: return only the flagged points (what a scan stores), which skips building
            the full long frame.
        workers: threads working on blocks of series; numpy releases the GIL in the heavy parts.
        calendar: as in `detect`; one calendar for all series (one workspace's).
        counts: as in `detect`, for all series or per column label.
        at: return only the points at these timestamps (each is judged on the whole history all
            the same; the band's edges, costly for counts, are computed for these points only).

    Returns:
        A long frame indexed by (column label..., timestamp), with the columns of `detect`.
    """
    if frame.shape[1] == 0:
        raise ValueError("detect_many needs at least one series (column)")
    rhythm = cadence(frame.index, seasonality)
    grid = pd.date_range(frame.index.min(), frame.index.max(), freq=rhythm.step, name=frame.index.name)
    if not frame.index.isin(grid).all():
        raise ValueError(f"timestamps are not on a regular {rhythm.step} grid")
    values = frame.reindex(grid).to_numpy(dtype="float64", na_value=np.nan).T  # (series, time)
    thresholds = _per_column(sensitivity, frame.columns, "sensitivity", float)
    counting = _per_column(counts, frame.columns, "counts", lambda flag: np.nan if flag is None else float(flag))
    days = _Days.of(grid, rhythm, _calendar(calendar, grid))

    chunks = [slice(start, start + CHUNK) for start in range(0, values.shape[0], CHUNK)]
    with ThreadPoolExecutor(max(1, workers)) as pool:
        parts = list(pool.map(lambda rows: _judge(values[rows], thresholds[rows], counting[rows], rhythm, days),
                              chunks))
    judged = {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}

    on_input = grid.isin(frame.index)  # drop grid points the caller did not ask about
    if at is not None:
        on_input &= grid.isin(pd.DatetimeIndex(at))
    keep = np.broadcast_to(on_input, values.shape)
    if anomalies_only:
        keep = keep & judged["is_anomaly"]
    series_at, time_at = np.nonzero(keep)
    index = _long_index(frame.columns, grid, series_at, time_at)
    expected = judged["expected"][series_at, time_at]
    lower, upper = _band(expected, judged["scale"][series_at, time_at], judged["dispersion"][series_at, time_at],
                         thresholds[series_at])
    lower = np.where(judged["non_negative"][series_at, time_at], np.fmax(lower, 0.0), lower)
    return pd.DataFrame(
        {
            "value": values[series_at, time_at],
            "expected": expected,
            "lower": lower,
            "upper": upper,
            "score": judged["score"][series_at, time_at],
            "is_anomaly": judged["is_anomaly"][series_at, time_at],
            "direction": pd.Categorical.from_codes(judged["direction"][series_at, time_at], DIRECTIONS),
            "status": pd.Categorical.from_codes(judged["status"][series_at, time_at], STATUSES),
            "holiday": pd.Categorical.from_codes(days.name_codes[time_at], days.names),
        },
        index=index,
    )


def week_over_week_changes(values: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """`week_over_week`'s comparison for every column of `values` at once: each point's value a week
    earlier and its relative change from it (NaN where that value is missing or zero, or the point
    is), as float arrays shaped like `values`."""
    rhythm = cadence(values.index)
    previous = values.shift(freq=rhythm.step * rhythm.week).reindex(values.index).to_numpy(dtype="float64")
    value = values.to_numpy(dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        change = (value - previous) / np.abs(previous)
    return previous, np.where((previous != 0) & ~np.isnan(previous) & ~np.isnan(value), change, np.nan)


def week_over_week(series: pd.Series, *, threshold: float = 0.3) -> pd.DataFrame:
    """The period-over-period rule: a point that moved more than `threshold` from a week earlier.

    This is a separate rule from `detect`: simple and easy to explain, but blind to noise and
    seasonality beyond the weekly cycle, so reports label its findings as `week_over_week`.

    Args:
        series: daily or hourly values indexed by timestamp.
        threshold: relative change, as a fraction (0.3 = ±30%), at which a point is flagged.

    Returns:
        One row per input point with `value, previous, change, is_anomaly, direction`; `change` is
        NaN when the week-earlier value is missing or zero (no base to compare with).
    """
    previous, change = week_over_week_changes(series.to_frame())
    previous = pd.Series(previous[:, 0], index=series.index)
    change = pd.Series(change[:, 0], index=series.index)
    flagged = change.abs().ge(threshold).fillna(False).astype(bool)
    direction = pd.Series(pd.Categorical(np.where(change > 0, "up", "down"), DIRECTIONS), index=series.index)
    return pd.DataFrame(
        {
            "value": series,
            "previous": previous,
            "change": change,
            "is_anomaly": flagged,
            "direction": direction.where(change.notna() & change.ne(0)),
        }
    )


@dataclass(frozen=True)
class _Days:
    """What the calendar says about each grid point (arrays along the time axis).

    `holiday` marks points on a holiday; `holiday_ref` is the grid position of the same point on
    the same holiday a year earlier; `weekday_ref` (52 weeks earlier) and `date_ref` (same date a
    year earlier) are where last year's calendar had the same point; -1 where there is none.
    """

    holiday: np.ndarray
    holiday_ref: np.ndarray
    weekday_ref: np.ndarray
    date_ref: np.ndarray
    name_codes: np.ndarray
    names: list[str]

    @classmethod
    def of(cls, grid: pd.DatetimeIndex, rhythm: Cadence, calendar: Calendar | None) -> _Days:
        length = len(grid)
        weekday_ref = np.arange(length) - 52 * 7 * rhythm.per_day
        weekday_ref[weekday_ref < 0] = -1
        date_ref = grid.get_indexer(grid - pd.DateOffset(years=1))
        date_ref[grid.month * 100 + grid.day == 229] = -1  # 29 February has no same date a year earlier
        holiday = np.zeros(length, dtype=bool)
        holiday_ref = np.full(length, -1)
        name_codes = np.full(length, -1)
        names: list[str] = []
        if calendar is not None and length:
            local = grid.tz_localize(None) if grid.tz is not None else grid
            days = local.normalize()
            for day in days.unique():
                name = calendar.name(day.date())
                if name is None:
                    continue
                at = days == day
                holiday[at] = True
                if name not in names:
                    names.append(name)
                name_codes[at] = names.index(name)
                earlier = calendar.last_year(day.date())
                if earlier is not None:
                    wanted = grid[at] - (day - pd.Timestamp(earlier))
                    holiday_ref[at] = grid.get_indexer(wanted)
        return cls(holiday, holiday_ref, weekday_ref, date_ref, name_codes, names)

    def padded(self, length: int) -> _Days:
        """The same arrays padded to `length` points (the padding has no holiday and no reference)."""
        extra = length - len(self.holiday)
        pad = functools.partial(np.pad, pad_width=(0, extra))
        return _Days(pad(self.holiday, constant_values=False), pad(self.holiday_ref, constant_values=-1),
                     pad(self.weekday_ref, constant_values=-1), pad(self.date_ref, constant_values=-1),
                     pad(self.name_codes, constant_values=-1), self.names)


def _calendar(calendar: Calendar | str | None, grid: pd.DatetimeIndex) -> Calendar | None:
    """The calendar asked for: "auto" takes a timezone-aware index's country."""
    if calendar is None or isinstance(calendar, Calendar):
        return calendar
    country = calendar
    if calendar == "auto":
        country = country_for_timezone(str(grid.tz)) if grid.tz is not None else None
        if country is None:
            return None
    local = grid.tz_localize(None) if grid.tz is not None else grid
    return calendar_for(country, [local.min().date(), local.max().date()])


def _judge(values: np.ndarray, thresholds: np.ndarray, counting: np.ndarray, rhythm: Cadence,
           days: _Days) -> dict[str, np.ndarray]:
    """The verdict on every point of a (series, time) block."""
    length = values.shape[1]
    padded = _pad(values, rhythm.period)
    days = days.padded(padded.shape[1])
    # Holidays do not shape the baseline: Black Friday must not lift the next week's level.
    basis = np.where(days.holiday, np.nan, padded)
    expected, scale = _forecast(basis, rhythm)
    scale = scale * _tail_factor(_score(basis - expected, scale), rhythm.cycle)
    non_negative = np.logical_and.accumulate(np.isnan(padded) | (padded >= 0), axis=1)
    expected = np.where(non_negative, np.fmax(expected, 0.0), expected)
    score = _score(padded - expected, scale)
    judged = ~np.isnan(score) & ~np.isnan(padded)

    dispersion = np.full(padded.shape, np.nan)  # set where the count model judges the point
    counted = _count_series(padded, counting, expected)
    if counted.any():
        rows = np.flatnonzero(counted)
        mean, spread = _count_forecast(basis[rows], rhythm)
        use = judged[rows] & _whole_so_far(padded[rows]) & (mean < COUNT_LEVEL)
        expected[rows] = np.where(use, mean, expected[rows])
        dispersion[rows] = np.where(use, spread, np.nan)
        scale[rows] = np.where(use, np.sqrt(spread * mean), scale[rows])
        block = score[rows]
        block[use] = _count_score(padded[rows][use], mean[use], spread[use])
        score[rows] = block

    expected, scale, score, dispersion, holiday_excused, recurring = _last_year(
        padded, expected, scale, score, dispersion, judged, days, thresholds)
    outside = judged & (np.abs(score) > thresholds[:, None]) & ~holiday_excused
    outside &= ~((padded == 0) & _usual_zero(basis, outside, rhythm.cycle))
    recurring &= ~outside

    expected, scale, score, dispersion, outside, judged, padded = (
        a[:, :length] for a in (expected, scale, score, dispersion, outside, judged, padded))
    holiday_excused, recurring, non_negative = (a[:, :length] for a in (holiday_excused, recurring, non_negative))
    up = score > 0
    # A point outside the band right after one outside on the same side continues that episode.
    continuing = outside.copy()
    continuing[:, 1:] &= outside[:, :-1] & (up[:, 1:] == up[:, :-1])
    continuing[:, 0] = False
    _flag_escalations(continuing, np.abs(np.where(judged, score, 0.0)))

    status = np.full(values.shape, STATUSES.index("insufficient_history"), dtype=np.int8)
    status[judged] = STATUSES.index("ok")
    status[judged & recurring] = STATUSES.index("recurring")
    status[judged & holiday_excused] = STATUSES.index("holiday")
    status[outside] = STATUSES.index("anomaly")
    status[continuing] = STATUSES.index("continuing")
    status[np.isnan(values)] = STATUSES.index("missing")
    return {
        "expected": expected,
        "scale": scale,
        "dispersion": dispersion,
        "non_negative": non_negative,
        "score": np.where(judged, score, np.nan),
        "is_anomaly": outside & ~continuing,
        "direction": np.where(judged & (score != 0), np.where(up, 0, 1), -1).astype(np.int8),
        "status": status,
    }


def _count_series(values: np.ndarray, counting: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Series the count model may judge: counts (as told, or whole numbers ≥ 0 when not told)
    that are low somewhere."""
    told = ~np.isnan(counting)
    whole = np.all(np.isnan(values) | ((values >= 0) & (values == np.floor(values))), axis=1)
    may = np.where(told, counting == 1, whole)
    with np.errstate(invalid="ignore"):
        low = np.any(expected < 2 * COUNT_LEVEL, axis=1) | np.all(np.isnan(expected), axis=1)
    return may & low


def _whole_so_far(values: np.ndarray) -> np.ndarray:
    """Whether every value up to each point is a whole number ≥ 0 (a count), with no look-ahead."""
    return np.logical_and.accumulate(np.isnan(values) | ((values >= 0) & (values == np.floor(values))), axis=1)


def _count_forecast(basis: np.ndarray, rhythm: Cadence) -> tuple[np.ndarray, np.ndarray]:
    """Expected counts and their dispersion (variance over mean, ≥ 1) from each point's past.

    The level is the mean of the last COUNT_WINDOW_CYCLES cycles without their largest value
    (plus one pseudo-event), so one burst does not lift it, or the same over the last cycle when
    that is higher; the seasonal profile is each phase's
    sum over the last periods against the flat share, pulled towards flat by PROFILE_PRIOR
    pseudo-counts, so a phase seen a handful of times does not swing it.
    """
    n_series, length = basis.shape
    period = rhythm.period
    profile = np.ones_like(basis)
    if rhythm.seasonal:
        per_period = basis.reshape(n_series, length // period, period)
        lagged = np.stack(_lagged(per_period, range(1, PROFILE_CYCLES + 1), axis=1))
        seen = np.sum(~np.isnan(lagged), axis=0)
        total = np.nansum(lagged, axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            flat = np.sum(total, axis=2, keepdims=True) / np.sum(seen, axis=2, keepdims=True)
            shaped = (total + PROFILE_PRIOR) / (seen * flat + PROFILE_PRIOR)
        profile = np.where(seen >= MIN_PROFILE_CYCLES, shaped, 1.0).reshape(n_series, length)
    # The last cycle's level takes over when it is higher: after a lasting rise of churn the
    # four-week mean would keep flagging the new normal for weeks.
    deseasonalized = basis / profile
    level = np.fmax(_trimmed_mean_before(deseasonalized, COUNT_WINDOW_CYCLES * rhythm.cycle),
                    _trimmed_mean_before(deseasonalized, rhythm.cycle))
    mean = level * profile
    # Variance over mean, from errors over √mean point by point (night hours and evening peaks alike).
    with np.errstate(invalid="ignore", divide="ignore"):
        spread = CYCLE_MEAN_ABS_TO_SIGMA * _typical((basis - mean) / np.sqrt(mean), rhythm.cycle)
        dispersion = np.fmax(spread ** 2, 1.0)
    return mean, np.where(np.isnan(spread), 1.0, dispersion)


def _trimmed_mean_before(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of the `window` points before each point without their largest one, plus COUNT_PRIOR
    pseudo-events; NaN with fewer than half the window present."""
    present = ~np.isnan(values)
    filled = np.where(present, values, 0.0)
    zeros = np.zeros((values.shape[0], 1))
    total = np.concatenate([zeros, np.cumsum(filled, axis=1)], axis=1)
    count = np.concatenate([zeros, np.cumsum(present, axis=1)], axis=1)
    at = np.arange(values.shape[1])
    since = np.maximum(at - window, 0)
    summed, seen = total[:, at] - total[:, since], count[:, at] - count[:, since]
    largest = _max_before(np.where(present, values, -np.inf), window)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (summed - np.fmax(largest, 0.0) + COUNT_PRIOR) / seen
    return np.where(seen >= window // 2, mean, np.nan)


def _max_before(values: np.ndarray, window: int) -> np.ndarray:
    """The largest of the `window` points before each point (-inf where none), by doubling."""
    spans = {1: _later(values, 1)}  # spans[k][t] = max of the k points before t
    size = 1
    while size * 2 <= window:
        spans[size * 2] = np.maximum(spans[size], _later(spans[size], size))
        size *= 2
    result = np.full(values.shape, -np.inf)
    offset = 0
    for span in sorted(spans, reverse=True):
        if window - offset >= span:
            result = np.maximum(result, _later(spans[span], offset))
            offset += span
    return result


def _later(values: np.ndarray, by: int) -> np.ndarray:
    """`values` moved `by` columns later, -inf where nothing moved in (all of it when `by` reaches
    past the last column: a short history)."""
    moved = np.full(values.shape, -np.inf)
    if by < values.shape[1]:
        moved[:, by:] = values[:, :values.shape[1] - by]
    return moved


def _count_score(values: np.ndarray, mean: np.ndarray, dispersion: np.ndarray) -> np.ndarray:
    """A count's surprise in standard-normal units: the mid-p tail probability of a negative
    binomial with that mean and variance `dispersion` × mean (Poisson at dispersion 1), as a z-score.

    Mid-p (half the probability of the value itself) keeps a count at its usual value near 0: with
    0.3 churned subscriptions expected, a day with none scores about -0.4, one with 3 scores +3.2.
    Arrays of any equal shape; NaN where the value or the mean is missing.
    """
    score = np.full(values.shape, np.nan)
    known = ~np.isnan(values) & ~np.isnan(mean)
    k, mu = np.round(values[known]), np.fmax(mean[known], 1e-9)
    d = np.fmax(np.where(np.isnan(dispersion[known]), 1.0, dispersion[known]), 1.0)
    at_most, above, log_pmf = np.empty_like(k), np.empty_like(k), np.empty_like(k)
    poisson = d < 1.0 + 1e-6
    kp, mp = k[poisson], mu[poisson]
    at_most[poisson], above[poisson] = special.gammaincc(kp + 1, mp), special.gammainc(kp + 1, mp)
    log_pmf[poisson] = special.xlogy(kp, mp) - mp - special.gammaln(kp + 1)
    kn, mn, dn = k[~poisson], mu[~poisson], d[~poisson]
    r, p = mn / (dn - 1.0), 1.0 / dn
    at_most[~poisson], above[~poisson] = special.betainc(r, kn + 1, p), special.betainc(kn + 1, r, 1 - p)
    log_pmf[~poisson] = (special.gammaln(kn + r) - special.gammaln(r) - special.gammaln(kn + 1)
                         + r * np.log(p) + kn * np.log1p(-p))
    half = 0.5 * np.exp(log_pmf)
    below_mid, above_mid = np.fmax(at_most - half, 0.0), np.fmax(above + half, 0.0)
    score[known] = np.where(below_mid < 0.5, special.ndtri(below_mid), -special.ndtri(above_mid))
    return score


def _band(expected: np.ndarray, scale: np.ndarray, dispersion: np.ndarray,
          sensitivity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The band's edges at some points (equal-shaped arrays): `expected ∓ sensitivity × scale`, or
    for counts (a dispersion) the negative binomial's quantiles at the normal tail probabilities of
    ±sensitivity."""
    lower, upper = expected - sensitivity * scale, expected + sensitivity * scale
    counted = ~np.isnan(dispersion) & ~np.isnan(expected)
    if counted.any():
        mu, d, sigmas = np.fmax(expected[counted], 1e-9), np.fmax(dispersion[counted], 1.0), sensitivity[counted]
        edges = []
        for tail in (special.ndtr(-sigmas), special.ndtr(sigmas)):
            poisson = special.pdtrik(tail, mu)
            negative_binomial = special.nbdtrik(tail, mu / np.fmax(d - 1.0, 1e-9), 1.0 / d)
            edges.append(np.fmax(np.where(d < 1.0 + 1e-6, poisson, negative_binomial), 0.0))
        lower[counted], upper[counted] = edges
    return lower, upper


def _last_year(values, expected, scale, score, dispersion, judged, days: _Days, thresholds):
    """Judge holidays against the same holiday a year earlier, and excuse what last year also had.

    Returns the expected values, scales, scores and dispersions with last year's points applied,
    the holiday points excused for having no judged same holiday a year earlier, and the points
    outside the usual band that last year's calendar explains ("recurring").
    """
    sensitivity = thresholds[:, None]
    outside = judged & (np.abs(score) > sensitivity)
    expected, scale, score, dispersion = expected.copy(), scale.copy(), score.copy(), dispersion.copy()
    excused = np.zeros(values.shape, dtype=bool)
    recurring = np.zeros(values.shape, dtype=bool)

    on_holiday = np.flatnonzero(days.holiday)
    if on_holiday.size:
        at = (slice(None), on_holiday)
        found = _against(values[at], expected[at], scale[at], score[at], dispersion[at], judged,
                         days.holiday_ref[on_holiday], values, expected, score)
        use = found["available"]
        excused[at] = ~use
        recurring[at] = use & outside[at] & (np.abs(found["score"]) <= sensitivity)
        for name, array in (("expected", expected), ("scale", scale), ("score", score), ("dispersion", dispersion)):
            array[at] = np.where(use, found[name], array[at])

    # Elsewhere only excuse: a point outside the band whose same calendar point last year was
    # outside it the same way, and that is inside last year's band now (a yearly promotion).
    rows, times = np.nonzero(outside & ~days.holiday)
    if rows.size:
        best = np.abs(score[rows, times])
        for references in (days.weekday_ref, days.date_ref):
            found = _against(values[rows, times], expected[rows, times], scale[rows, times], score[rows, times],
                             dispersion[rows, times], judged, references[times], values, expected, score, rows)
            limit = thresholds[rows]
            same_way = np.sign(found["last_score"]) == np.sign(score[rows, times])
            better = (found["available"] & same_way & (np.abs(found["last_score"]) > limit)
                      & (np.abs(found["score"]) <= limit) & (np.abs(found["score"]) < best))
            for name, array in (("expected", expected), ("scale", scale), ("score", score),
                                ("dispersion", dispersion)):
                array[rows[better], times[better]] = found[name][better]
            recurring[rows[better], times[better]] = True
            best = np.where(better, np.abs(found["score"]), best)
    return expected, scale, score, dispersion, excused, recurring


def _against(value, expected, scale, score, dispersion, judged, references, all_values, all_expected,
             all_scores, rows=None) -> dict[str, np.ndarray]:
    """Points judged against their reference a year earlier: expected × last year's ratio to its
    expected (its difference, where the expected values are not positive), on a band widened for
    last year's own noise.

    `value`, `expected`... hold the points (a (series, k) block, or flat arrays of points at `rows`);
    `references` their reference positions (-1: none).
    """
    valid = references >= 0
    at = np.where(valid, references, 0)
    if rows is None:
        last_value, last_expected = all_values[:, at], all_expected[:, at]
        last_score, last_judged = all_scores[:, at], judged[:, at]
    else:
        last_value, last_expected = all_values[rows, at], all_expected[rows, at]
        last_score, last_judged = all_scores[rows, at], judged[rows, at]
    available = valid & last_judged & np.isfinite(last_score)
    counted = ~np.isnan(dispersion)
    # One count a year ago is a noisy ratio: pseudo-counts pull it towards 1 (0 churned
    # subscriptions last Christmas against 3 expected says 0.4, not 0).
    prior = np.where(counted, COUNT_RATIO_PRIOR, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = (last_expected > 0) & (expected > 0) & (last_value >= 0)
        factor = np.where(ratio, (last_value + prior) / (last_expected + prior), np.nan)
        shifted = np.where(ratio, expected * factor, expected + (last_value - last_expected))
        widened = np.where(ratio, scale * np.sqrt(LAST_YEAR_NOISE * np.fmax(factor, MIN_LAST_YEAR_RATIO)),
                           scale * np.sqrt(LAST_YEAR_NOISE))
        spread = dispersion * LAST_YEAR_NOISE
        new_score = _score(value - shifted, widened)
    new_score[counted] = _count_score(value[counted], shifted[counted], spread[counted])
    return {"expected": shifted, "scale": widened, "score": new_score, "dispersion": spread,
            "available": available, "last_score": np.where(available, last_score, np.nan)}


def _usual_zero(basis: np.ndarray, where: np.ndarray, cycle: int) -> np.ndarray:
    """Whether the median of the last cycle before each point in `where` is 0 (elsewhere False):
    a metric at its usual value of 0 is never an anomaly."""
    rows, times = np.nonzero(where)
    usual = np.zeros(where.shape, dtype=bool)
    if rows.size:
        before = [np.where(times - lag >= 0, basis[rows, np.maximum(times - lag, 0)], np.nan)
                  for lag in range(1, cycle + 1)]
        usual[rows, times] = _median(before, min_count=(cycle + 1) // 2) == 0
    return usual


def _score(error: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Errors in units of the scale; a change off a dead-flat history (zero scale) scores ±inf,
    no change at all scores 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((error == 0) & ~np.isnan(scale), 0.0, error / scale)


def _tail_factor(score: np.ndarray, cycle: int) -> np.ndarray:
    """How much wider than normal errors need the band is, from the tails of earlier cycles (≥ 1).

    Each completed cycle's largest |score| is one figure; the TAIL_QUANTILE of the last TAIL_CYCLES
    figures, divided by the value normal errors would give, widens the band of a heavy-tailed
    series. Normal series keep a factor near 1; up to six extreme cycles (outliers, a level shift,
    a promotion) do not move a 75th percentile of 26 figures.
    """
    n_series, length = score.shape
    size = np.minimum(np.abs(score), SCORE_CAP).reshape(n_series, length // cycle, cycle)
    enough = np.sum(~np.isnan(size), axis=2) > cycle // 2
    with np.errstate(invalid="ignore"):
        largest = np.where(enough, np.nanmax(np.where(np.isnan(size), -np.inf, size), axis=2), np.nan)
    lagged = _lagged(largest, range(1, TAIL_CYCLES + 1), axis=1)
    tail = _quantile(lagged, TAIL_QUANTILE, min_count=MIN_TAIL_CYCLES)
    factor = np.fmax(tail / _normal_largest(cycle), 1.0)  # NaN (too few cycles) → 1
    return np.repeat(factor, cycle, axis=1)


@functools.cache
def _normal_largest(cycle: int) -> float:
    """The TAIL_QUANTILE of the largest |error| among `cycle` standard normal errors."""
    return NormalDist().inv_cdf((1 + TAIL_QUANTILE ** (1 / cycle)) / 2)


def _flag_escalations(continuing: np.ndarray, size: np.ndarray) -> None:
    """Turn continuing points ESCALATION times further out than the episode's last flagged point
    back into anomalies (in place): a spike on top of an ongoing excursion is news, while a level
    shift, whose score only shrinks as the level re-anchors, stays flagged once."""
    last_flagged = np.zeros(continuing.shape[0])
    for t in range(continuing.shape[1]):
        escalated = continuing[:, t] & (size[:, t] >= ESCALATION * last_flagged)
        continuing[:, t] &= ~escalated
        last_flagged = np.where(~continuing[:, t], size[:, t], last_flagged)


def _forecast(padded: np.ndarray, rhythm: Cadence) -> tuple[np.ndarray, np.ndarray]:
    """Expected values and error scale of a (series, time) block of whole cycles.

    Two baselines compete: the multiplicative one (level × profile), whose seasonal swing grows with
    the level, so after a lasting shift the weekly shape is still right; and the additive one
    (level + profile), which stays sane on bursty series with zeros, where ratios to a small
    cycle median explode. Each point uses the multiplicative one unless the additive one's errors
    over the last cycles were clearly smaller (ADDITIVE_MARGIN), or the multiplicative one is
    undefined (a level or cycle median ≤ 0).

    The scale of the multiplicative baseline is measured on errors divided by √expected, the
    variance of counts and of sums of orders growing with their expected value (Poisson-like):
    after a lasting shift the band widens or narrows at once instead of waiting for a dozen cycles
    of new errors, and a quiet night hour gets a narrower band than the evening peak.
    """
    additive, multiplicative, level = _baselines(padded, rhythm)
    cycle = rhythm.cycle
    root = np.sqrt(np.fmax(multiplicative, RELATIVE_SCALE_FLOOR * level))  # a phase that is always 0
    with np.errstate(invalid="ignore"):
        worse = ADDITIVE_MARGIN * _typical(padded - multiplicative, cycle) > _typical(padded - additive, cycle)
        use_ratio = ~np.isnan(multiplicative) & ~worse
        expected = np.where(use_ratio, multiplicative, additive)
        scale = CYCLE_MEAN_ABS_TO_SIGMA * np.where(use_ratio, _typical((padded - multiplicative) / root, cycle) * root,
                                                   _typical(padded - additive, cycle))
    # A flat history would give a zero-width band; a small share of the level keeps it meaningful.
    return expected, np.maximum(scale, RELATIVE_SCALE_FLOOR * np.abs(expected))


def _baselines(padded: np.ndarray, rhythm: Cadence) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The additive and multiplicative expected values, and the multiplicative model's level.

    The profile is each phase's median deviation from (or ratio to) its period's median over the
    last periods (a week: days of week, or hours of week); the level is the median deseasonalized
    value of the last cycle (7 days, 24 hours). Both only look at points before t. The
    multiplicative values are NaN where a period median or level was not positive.
    """
    n_series, length = padded.shape
    cycle, period = rhythm.cycle, rhythm.period
    if rhythm.seasonal:
        periods = padded.reshape(n_series, length // period, period)
        # Period medians use the whole period, so its shape is only known once it ends:
        # period c's profile comes from periods c-1, c-2, ... (no look-ahead).
        middle = _median([periods[..., phase] for phase in range(period)], min_count=period // 2 + 1)[..., None]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = _profile(np.where(middle > 0, periods / middle, np.nan))
        # Ratios only make sense if none of the periods they come from had a median of 0 or less.
        not_positive = np.sum(_lagged(middle[..., 0] <= 0, range(1, PROFILE_CYCLES + 1), axis=1, fill=False), axis=0)
        ratio = np.where(np.repeat(not_positive > 0, period, axis=1), np.nan, ratio)
        deviation = _profile(periods - middle)
    else:
        ratio = np.ones_like(padded)
        deviation = np.zeros_like(padded)
    with np.errstate(divide="ignore", invalid="ignore"):
        level = _recent_median(np.where(ratio > 0, padded / ratio, np.nan), cycle)
    level = np.where(level > 0, level, np.nan)
    additive = _recent_median(padded - deviation, cycle) + deviation
    return additive, level * ratio, level


def _profile(per_cycle: np.ndarray) -> np.ndarray:
    """Each phase's median over the previous periods, from (series, period, phase) to (series, time)."""
    n_series, n_cycles, cycle = per_cycle.shape
    lagged = _lagged(per_cycle, range(1, PROFILE_CYCLES + 1), axis=1)
    return _median(lagged, min_count=MIN_PROFILE_CYCLES).reshape(n_series, n_cycles * cycle)


def _recent_median(values: np.ndarray, cycle: int) -> np.ndarray:
    """The median of the last `cycle` points before each point (at least half of them present)."""
    return _median(_lagged(values, range(1, cycle + 1), axis=1), min_count=(cycle + 1) // 2)


def _typical(error: np.ndarray, cycle: int) -> np.ndarray:
    """Typical absolute forecast error of the cycles before each point's cycle.

    Each cycle's mean absolute error is efficient; the median of the last SCALE_CYCLES cycles'
    figures ignores the few cycles spoiled by an outlier or a level shift. Working per cycle, not
    per point, keeps the scan cheap; the figure then moves once per cycle.
    """
    n_series, length = error.shape
    absolute = np.abs(error).reshape(n_series, length // cycle, cycle)
    per_cycle = _nanmean(absolute, axis=2)
    per_cycle[np.sum(~np.isnan(absolute), axis=2) <= cycle // 2] = np.nan  # too few points to say
    lagged = _lagged(per_cycle, range(1, SCALE_CYCLES + 1), axis=1)
    typical = _median(lagged, min_count=MIN_SCALE_CYCLES)
    # Sparse series (mostly exact zeros) have a zero median: the mean keeps the band finite, once
    # enough cycles moved at all to tell how far. A dead-flat history keeps its zero.
    moved = np.sum(np.stack(lagged) > 0, axis=0)
    sparse = np.where((moved > 0) & (moved < MIN_MOVING_CYCLES), np.nan, _nanmean(np.stack(lagged), axis=0))
    typical = np.where(typical == 0, sparse, typical)
    return np.repeat(typical, cycle, axis=1)


def _median(columns: list[np.ndarray], *, min_count: int) -> np.ndarray:
    """Element-wise median of equally shaped arrays, ignoring NaN; NaN where fewer than
    `min_count` values are present."""
    return _quantile(columns, 0.5, min_count=min_count)


def _quantile(columns: list[np.ndarray], fraction: float, *, min_count: int) -> np.ndarray:
    """Element-wise `fraction` quantile of equally shaped arrays (interpolating between the two
    nearest order statistics), ignoring NaN; NaN where fewer than `min_count` values are present.

    A sorting network of element-wise min/max passes runs over whole arrays at once, an order of
    magnitude faster than sorting millions of short rows (np.sort or np.nanmedian along an axis).
    Missing values become +inf, so they sort last and the quantile is read in the present part.
    """
    count = np.zeros(columns[0].shape, dtype=np.int16)
    keys = []
    for column in columns:
        present = ~np.isnan(column)
        count += present
        keys.append(np.where(present, column, np.inf))
    spare = np.empty_like(keys[0])  # in-place passes: fresh multi-MB arrays cost page faults
    for i, j in _sorting_network(len(keys)):
        np.minimum(keys[i], keys[j], out=spare)
        np.maximum(keys[i], keys[j], out=keys[j])
        keys[i], spare = spare, keys[i]

    def between(present: int) -> tuple[int, int, float]:
        position = (present - 1) * fraction
        return int(np.floor(position)), int(np.ceil(position)), position - np.floor(position)

    # Read each element's present values; the common full count needs no selection.
    low_at, high_at, weight = between(len(keys))
    low, high = keys[low_at].copy(), keys[high_at].copy()
    weights = np.full(low.shape, weight)
    for present in range(max(min_count, 1), len(keys)):
        short = count == present
        low_at, high_at, weight = between(present)
        low[short], high[short], weights[short] = keys[low_at][short], keys[high_at][short], weight
    with np.errstate(invalid="ignore"):  # inf - inf where both order statistics are infinite
        value = np.where(weights == 0, low, low + weights * (high - low))
    return np.where(count >= min_count, value, np.nan)


@functools.cache
def _sorting_network(size: int) -> tuple[tuple[int, int], ...]:
    """Comparator pairs (i < j) of Batcher's odd-even merge sort for `size` inputs.

    Built for the next power of two; comparators touching the extra inputs are dropped, which is
    exact because those inputs would be +inf and never move.
    """
    pairs: list[tuple[int, int]] = []

    def merge(low: int, high: int, stride: int) -> None:  # `high` inclusive
        step = stride * 2
        if step < high - low:
            merge(low, high, step)
            merge(low + stride, high, step)
            pairs.extend((i, i + stride) for i in range(low + stride, high - stride, step))
        else:
            pairs.append((low, low + stride))

    def sort(low: int, high: int) -> None:
        if high - low >= 1:
            middle = low + (high - low) // 2
            sort(low, middle)
            sort(middle + 1, high)
            merge(low, high, 1)

    sort(0, (1 << max(size - 1, 0).bit_length()) - 1)
    return tuple((i, j) for i, j in pairs if j < size)


def _nanmean(values: np.ndarray, *, axis: int) -> np.ndarray:
    """Mean along `axis` ignoring NaN; NaN (without a warning) where all are NaN."""
    count = np.sum(~np.isnan(values), axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nansum(values, axis=axis) / count


def _lagged(values: np.ndarray, lags: range, *, axis: int, fill: float = np.nan) -> list[np.ndarray]:
    """Views of `values` moved each of `lags` steps later along `axis`, `fill` where nothing came before."""
    widths = [(0, 0)] * values.ndim
    widths[axis] = (max(lags), 0)
    padded = np.pad(values, widths, constant_values=fill)
    views = []
    for lag in lags:
        index = [slice(None)] * values.ndim
        index[axis] = slice(max(lags) - lag, max(lags) - lag + values.shape[axis])
        views.append(padded[tuple(index)])
    return views


def _pad(values: np.ndarray, cycle: int) -> np.ndarray:
    """Pad the time axis with NaN to a whole number of cycles (the tail's verdicts are dropped)."""
    missing = -values.shape[1] % cycle
    return np.pad(values, ((0, 0), (0, missing)), constant_values=np.nan)


def _per_column(setting, columns: pd.Index, name: str, convert) -> np.ndarray:
    """One value per column, from a scalar (or None) or a per-column mapping, through `convert`."""
    if setting is None or np.isscalar(setting):
        return np.full(len(columns), convert(setting), dtype="float64")
    by_column = pd.Series(setting, dtype="object")
    missing = columns.difference(by_column.index)
    if len(missing):
        raise ValueError(f"no {name} for series {list(missing[:3])}")
    return np.array([convert(value) for value in by_column.reindex(columns)], dtype="float64")


def _long_index(columns: pd.Index, grid: pd.DatetimeIndex, series_at: np.ndarray, time_at: np.ndarray) -> pd.MultiIndex:
    """The (column label..., timestamp) index of the long result, built from codes, without copies."""
    time_name = grid.name or "timestamp"
    if isinstance(columns, pd.MultiIndex):
        levels = list(columns.levels) + [grid]
        codes = [level_codes[series_at] for level_codes in columns.codes] + [time_at]
        names = list(columns.names) + [time_name]
    else:
        series_codes, uniques = pd.factorize(columns)
        levels = [pd.Index(uniques), grid]
        codes = [series_codes[series_at], time_at]
        names = [columns.name or "series", time_name]
    return pd.MultiIndex(levels=levels, codes=codes, names=names, verify_integrity=False)
