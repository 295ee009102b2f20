"""Anomaly detection on daily or hourly metric series, judged only on each point's past.

The method (see docs/anomalies.md): a point's *expected* value is a recent level times (for
positive series; plus, otherwise) a seasonal profile, both medians, so spikes in the history barely
move them. The band is `sensitivity` robust standard deviations of recent forecast errors.
Excursions that last are one episode: only the first point is flagged (and any point twice as far
out as the episode's last flagged one), and the level (the median of the last cycle) re-anchors
after half a cycle.

Everything runs on a (series × time) matrix at once, so scanning thousands of series costs a few
vectorized numpy passes, not a Python loop per point.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from statistics import NormalDist
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd

DAY = pd.Timedelta(days=1)
HOUR = pd.Timedelta(hours=1)

PROFILE_CYCLES = 8  # the seasonal profile is the median of the last 8 cycles (8 weeks of daily data)
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
# band widens by the ratio of the 90th percentile of the last 26 cycles' figures to its normal value.
TAIL_CYCLES = 26
MIN_TAIL_CYCLES = 8
TAIL_QUANTILE = 0.9
SCORE_CAP = 100.0  # a score off a dead-flat history is infinite; it counts as this much in the tail
ESCALATION = 2.0  # a point in an ongoing episode this many times further out is flagged again
CHUNK = 1024  # series per block of work: bounds memory (the profile stacks 8 copies of the block)

STATUSES = ["ok", "anomaly", "continuing", "insufficient_history", "missing"]
DIRECTIONS = ["up", "down"]


@dataclass(frozen=True)
class Cadence:
    """How a series' points relate to the calendar: its step, natural cycle and seasonal period."""

    step: pd.Timedelta
    cycle: int  # points per natural cycle: 7 days, or 24 hours
    seasonal: bool  # whether the expected value includes a per-phase seasonal profile

    @property
    def week(self) -> int:
        """Points in one week, the lag of the week-over-week rule."""
        return int(pd.Timedelta(weeks=1) / self.step)


def cadence(index: pd.Index, seasonality: str | None = "auto") -> Cadence:
    """Infer the cadence of a daily or hourly index and check the seasonality asked for.

    Args:
        index: the series' timestamps.
        seasonality: "auto" (weekly for daily data, daily for hourly data), "weekly", "daily" or None.

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
    cycle = 7 if step == DAY else 24
    natural = "weekly" if step == DAY else "daily"
    if seasonality not in ("auto", natural, None):
        frequency = "daily" if step == DAY else "hourly"
        raise ValueError(f"seasonality {seasonality!r} does not fit {frequency} data; use 'auto', "
                         f"{natural!r} or None")
    return Cadence(step=step, cycle=cycle, seasonal=seasonality is not None)


def detect(series: pd.Series, *, sensitivity: float = 3.0, seasonality: str | None = "auto") -> pd.DataFrame:
    """Judge every point of one daily or hourly series against its own past.

    Args:
        series: metric values indexed by timestamp; gaps in the grid are treated as missing points.
        sensitivity: how many robust standard deviations from expected count as an anomaly.
        seasonality: "auto" (weekly for daily data, daily for hourly data), the explicit name, or None.

    Returns:
        One row per input point, on the input's index, with columns `value, expected, lower, upper,
        score, is_anomaly, direction, status`. `status` is one of `ok`, `anomaly`, `continuing`
        (a lasting excursion already flagged on its first point), `insufficient_history` or
        `missing` (the value is NaN).
    """
    found = detect_many(series.to_frame("series"), sensitivity=sensitivity, seasonality=seasonality)
    return found.droplevel(0).reindex(series.index)


def detect_many(
    frame: pd.DataFrame,
    *,
    sensitivity: float | Mapping[object, float] | pd.Series = 3.0,
    seasonality: str | None = "auto",
    anomalies_only: bool = False,
    workers: int = 2,
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
    thresholds = _per_column(sensitivity, frame.columns)

    chunks = [slice(start, start + CHUNK) for start in range(0, values.shape[0], CHUNK)]
    with ThreadPoolExecutor(max(1, workers)) as pool:
        parts = list(pool.map(lambda rows: _judge(values[rows], thresholds[rows], rhythm), chunks))
    judged = {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}

    on_input = grid.isin(frame.index)  # drop grid points the caller did not ask about
    keep = np.broadcast_to(on_input, values.shape)
    if anomalies_only:
        keep = keep & judged["is_anomaly"]
    series_at, time_at = np.nonzero(keep)
    index = _long_index(frame.columns, grid, series_at, time_at)
    return pd.DataFrame(
        {
            "value": values[series_at, time_at],
            **{name: judged[name][series_at, time_at] for name in ("expected", "lower", "upper", "score")},
            "is_anomaly": judged["is_anomaly"][series_at, time_at],
            "direction": pd.Categorical.from_codes(judged["direction"][series_at, time_at], DIRECTIONS),
            "status": pd.Categorical.from_codes(judged["status"][series_at, time_at], STATUSES),
        },
        index=index,
    )


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
    rhythm = cadence(series.index)
    previous = series.shift(freq=rhythm.step * rhythm.week).reindex(series.index)
    with np.errstate(divide="ignore", invalid="ignore"):
        change = (series - previous) / previous.abs()
    change = change.where(previous.ne(0) & previous.notna() & series.notna())
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


def _judge(values: np.ndarray, thresholds: np.ndarray, rhythm: Cadence) -> dict[str, np.ndarray]:
    """The verdict on every point of a (series, time) block."""
    length = values.shape[1]
    padded = _pad(values, rhythm.cycle)
    expected, scale = _forecast(padded, rhythm)
    error = padded - expected
    scale = scale * _tail_factor(_score(error, scale), rhythm.cycle)
    expected, error, scale = (a[:, :length] for a in (expected, error, scale))

    score = _score(error, scale)
    judged = ~np.isnan(score) & ~np.isnan(values)
    outside = judged & (np.abs(score) > thresholds[:, None])
    up = score > 0
    # A point outside the band right after one outside on the same side continues that episode.
    continuing = outside.copy()
    continuing[:, 1:] &= outside[:, :-1] & (up[:, 1:] == up[:, :-1])
    continuing[:, 0] = False
    _flag_escalations(continuing, np.abs(np.where(judged, score, 0.0)))

    status = np.full(values.shape, STATUSES.index("insufficient_history"), dtype=np.int8)
    status[judged] = STATUSES.index("ok")
    status[outside] = STATUSES.index("anomaly")
    status[continuing] = STATUSES.index("continuing")
    status[np.isnan(values)] = STATUSES.index("missing")
    band = thresholds[:, None] * scale
    return {
        "expected": expected,
        "lower": expected - band,
        "upper": expected + band,
        "score": np.where(judged, score, np.nan),
        "is_anomaly": outside & ~continuing,
        "direction": np.where(judged & (score != 0), np.where(up, 0, 1), -1).astype(np.int8),
        "status": status,
    }


def _score(error: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Errors in units of the scale; a change off a dead-flat history (zero scale) scores ±inf,
    no change at all scores 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((error == 0) & ~np.isnan(scale), 0.0, error / scale)


def _tail_factor(score: np.ndarray, cycle: int) -> np.ndarray:
    """How much wider than normal errors need the band is, from the tails of earlier cycles (≥ 1).

    Each completed cycle's largest |score| is one figure; the TAIL_QUANTILE of the last TAIL_CYCLES
    figures, divided by the value normal errors would give, widens the band of a heavy-tailed
    series. Normal series keep a factor near 1; a few extreme cycles (outliers, a level shift) do not
    move a 90th percentile of 26 figures (the 3rd largest).
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

    The scale of the multiplicative baseline is measured on errors divided by √level, the variance
    of counts and of sums of orders growing with their level (Poisson-like): after a lasting shift
    the band widens or narrows at once instead of waiting for a dozen cycles of new errors.
    """
    additive, multiplicative, level = _baselines(padded, rhythm)
    cycle = rhythm.cycle
    root = np.sqrt(level)
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

    The profile is each phase's median deviation from (or ratio to) its cycle's median over the
    last cycles; the level is the median deseasonalized value of the last cycle. Both only look at
    points before t. The multiplicative values are NaN where a cycle median or level was not positive.
    """
    n_series, length = padded.shape
    cycle = rhythm.cycle
    cycles = padded.reshape(n_series, length // cycle, cycle)
    if rhythm.seasonal:
        # Cycle medians use the whole cycle, so a cycle's shape is only known once it ends:
        # cycle c's profile comes from cycles c-1, c-2, ... (no look-ahead).
        middle = _median([cycles[..., phase] for phase in range(cycle)], min_count=cycle // 2 + 1)[..., None]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = _profile(np.where(middle > 0, cycles / middle, np.nan))
        # Ratios only make sense if none of the cycles they come from had a median of 0 or less.
        not_positive = np.sum(_lagged(middle[..., 0] <= 0, range(1, PROFILE_CYCLES + 1), axis=1, fill=False), axis=0)
        ratio = np.where(np.repeat(not_positive > 0, cycle, axis=1), np.nan, ratio)
        deviation = _profile(cycles - middle)
    else:
        ratio = np.ones_like(padded)
        deviation = np.zeros_like(padded)
    with np.errstate(divide="ignore", invalid="ignore"):
        level = _recent_median(np.where(ratio > 0, padded / ratio, np.nan), cycle)
    level = np.where(level > 0, level, np.nan)
    additive = _recent_median(padded - deviation, cycle) + deviation
    return additive, level * ratio, level


def _profile(per_cycle: np.ndarray) -> np.ndarray:
    """Each phase's median over the previous cycles, from (series, cycle, phase) to (series, time)."""
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


def _per_column(sensitivity: float | Mapping[object, float] | pd.Series, columns: pd.Index) -> np.ndarray:
    """One threshold per column, from a scalar or a per-column mapping."""
    if np.isscalar(sensitivity):
        return np.full(len(columns), float(sensitivity))
    by_column = pd.Series(sensitivity, dtype="float64")
    missing = columns.difference(by_column.index)
    if len(missing):
        raise ValueError(f"no sensitivity for series {list(missing[:3])}")
    return by_column.reindex(columns).to_numpy()


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
