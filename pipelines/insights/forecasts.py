"""Daily forecasts of a workspace's headline metrics, 13 weeks ahead, with 80% and 95% intervals.

Flows (net sales, orders): a regression with ARMA errors (statsforecast's ARIMA) on the log of the
daily values, whose regressors carry the calendar: six weekday dummies (weekly seasonality), yearly
Fourier terms once a year of history exists (yearly seasonality), and one dummy per holiday of the
workspace's country that the history has seen (pipelines.insights.calendar: public holidays, Black
Friday to Cyber Monday). Stocks (MRR): exponential smoothing (statsforecast's AutoETS) of the last
year. Why this library, this model, and how well it did on the small sandbox: docs/metrics.md,
"Forecasts".
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import math
import os
import sys
from collections.abc import Sequence
from datetime import date, timedelta

import numpy as np
import pandas as pd

from pipelines.insights.calendar import Calendar
from pipelines.insights.fits import Fit
from pipelines.insights.forecast_horizon import HORIZON_DAYS

# numba compiles statsforecast's models on first use (about 10 s); keep the compiled code on disk.
os.environ.setdefault("NIXTLA_NUMBA_CACHE", "1")

# The forecast metrics of each vertical: a column of its daily metric table.
FORECAST_METRICS = {"ecommerce": ("net_sales", "orders"), "saas": ("mrr",)}
LEVELS = (80, 95)
YEARLY_TERMS = 3  # Fourier pairs of the yearly cycle: smooth seasons, not single days (holidays do those)
MIN_HISTORY_DAYS = 56  # eight weeks: fewer, and the weekday pattern alone is barely estimated
FOURIER_HISTORY_DAYS = 365  # a yearly cycle is estimated only once a whole year has been seen
DAYS_PER_YEAR = 365.25
ORDER = (2, 0, 1)  # AR(2), MA(1) errors around the calendar and a linear trend (docs/metrics.md)
CLEAN_OUTLIERS = True
OUTLIER_SPREADS = 2.5  # robust deviations off the first fit beyond which a day is cleaned
STOCK_HISTORY_DAYS = 365


def daily_series(daily: pd.DataFrame, metric: str) -> pd.Series:
    """The metric's values by day from a daily metric frame (`date` column), missing days as NaN."""
    frame = daily.assign(date=pd.to_datetime(daily["date"]).dt.normalize()).set_index("date").sort_index()
    values = frame[metric].astype("float64")
    return values.reindex(pd.date_range(values.index.min(), values.index.max(), freq="D"))


def regressors(days: pd.DatetimeIndex, calendar: Calendar, holidays: Sequence[str], yearly: bool,
               weekly: bool = True) -> pd.DataFrame:
    """The calendar regressors of `days`: weekday dummies, yearly Fourier terms, holiday dummies."""
    columns: dict[str, np.ndarray] = {}
    for weekday in range(1, 7) if weekly else ():  # Monday is the baseline
        columns[f"weekday_{weekday}"] = (days.day_of_week == weekday).astype(float)
    if yearly:
        angle = 2 * math.pi * days.day_of_year.to_numpy() / DAYS_PER_YEAR
        for k in range(1, YEARLY_TERMS + 1):
            columns[f"year_sin_{k}"] = np.sin(k * angle)
            columns[f"year_cos_{k}"] = np.cos(k * angle)
    names = [calendar.days.get(day.date(), ()) for day in days]
    for holiday in holidays:
        columns[f"holiday_{holiday}"] = np.array([holiday in found for found in names], dtype=float)
    return pd.DataFrame(columns, index=days)


def seen_holidays(days: pd.DatetimeIndex, calendar: Calendar) -> list[str]:
    """The holiday names that fall in `days` (a holiday never seen has no effect to estimate)."""
    seen = {name for day in days for name in calendar.days.get(day.date(), ())}
    return sorted(seen)


def forecast_series(values: pd.Series, calendar: Calendar, horizon: int = HORIZON_DAYS,
                    levels: Sequence[int] = LEVELS, *, stock: bool = False) -> pd.DataFrame:
    """Forecast a daily series `horizon` days past its last day, estimating the model afresh.

    Args:
        values: daily values by date (gap-free index); leading and trailing missing days are
            dropped, missing days inside are carried forward (a stock) or 0 (a flow).
        calendar: the workspace's holidays over the history and the horizon.
        horizon: days ahead.
        levels: interval coverages in percent.
        stock: a level (MRR) rather than a daily flow: exponential smoothing of its last
            STOCK_HISTORY_DAYS, without calendar regressors (a level does not dip on Sundays).

    Returns:
        One row per day ahead: `date`, `forecast`, and `lower_<level>` / `upper_<level>` per level.

    Raises:
        ValueError: fewer than MIN_HISTORY_DAYS days of history.
    """
    return forecast_fitted(values, calendar, horizon, levels, stock=stock)[0]


def forecast_fitted(values: pd.Series, calendar: Calendar, horizon: int = HORIZON_DAYS,
                    levels: Sequence[int] = LEVELS, *, stock: bool = False,
                    start: Fit | None = None) -> tuple[pd.DataFrame, Fit | None]:
    """`forecast_series`, and the fit it used (a flow's ARIMA coefficients; None for a stock or a flat
    series). With `start`, a fit of this metric usable on the history's last day (`Fit.usable_on`)
    and of the same shape (the same regressors and first day), the stored coefficients are run over
    the new history instead of being estimated again (forwarded: the fitted values, the outlier
    cleaning and the error variance come from the new history; docs/metrics.md, "Forecasts")."""
    from statsforecast import StatsForecast  # numba compiles on import: only the forecasting runs pay it
    from statsforecast.models import AutoETS

    history = values.loc[values.first_valid_index():values.last_valid_index()]
    # a level carries over a day without a row; a flow had nothing that day
    history = history.ffill().iloc[-STOCK_HISTORY_DAYS:] if stock else history.fillna(0.0)
    if len(history) < MIN_HISTORY_DAYS:
        raise ValueError(f"{len(history)} days of history; forecasts need at least {MIN_HISTORY_DAYS}")
    future_days = pd.date_range(history.index[-1] + timedelta(days=1), periods=horizon, freq="D")
    if history.nunique() == 1:  # nothing moves (one subscription, no sales): nothing to fit
        flat = pd.DataFrame({"date": future_days, "forecast": float(history.iloc[-1])})
        return flat.assign(**{f"{side}_{level}": flat["forecast"]
                              for level in levels for side in ("lower", "upper")}), None
    positive = not stock and bool((history > 0).all())
    target = pd.Series(np.log(history) if positive else history, index=history.index, dtype="float64")
    fit = None
    if stock:
        engine = StatsForecast(models=[AutoETS(model="ZZN", alias="model")], freq="D", n_jobs=1)
        found = engine.forecast(df=pd.DataFrame({"unique_id": "series", "ds": history.index, "y": target.to_numpy()}),
                                h=horizon, level=list(levels))
        found = {key: found[f"model-{key}" if key != "mean" else "model"].to_numpy()
                 for key in ["mean", *[f"{side}-{level}" for level in levels for side in ("lo", "hi")]]}
    else:
        yearly = len(history) >= FOURIER_HISTORY_DAYS
        features = regressors(history.index.append(future_days), calendar, seen_holidays(history.index, calendar),
                              yearly)
        # A column constant over the history (a weekday never seen) cannot be estimated.
        features = features.loc[:, features.loc[history.index].std() > 0]
        shape = {"columns": list(features.columns), "first_day": history.index[0].date().isoformat(),
                 "positive": positive}
        forward = (start is not None and start.usable_on(history.index[-1].date())
                   and all(start.params.get(key) == value for key, value in shape.items()))
        found, fit = _arima_cleaned(target.to_numpy(), features.loc[history.index].to_numpy(),
                                    features.loc[future_days].to_numpy(), horizon, levels,
                                    start.params if forward else None)
        if fit is None:  # the stored fit cleaned no outliers and this history has some: estimate afresh
            found, fit = _arima_cleaned(target.to_numpy(), features.loc[history.index].to_numpy(),
                                        features.loc[future_days].to_numpy(), horizon, levels, None)
            forward = False
        fit = Fit(start.estimated_on if forward else history.index[-1].date(), {**shape, **fit})
    result = pd.DataFrame({"date": future_days, "forecast": found["mean"]})
    for level in levels:
        result[f"lower_{level}"] = found[f"lo-{level}"]
        result[f"upper_{level}"] = found[f"hi-{level}"]
    numbers = [column for column in result.columns if column != "date"]
    if positive:
        result[numbers] = np.exp(result[numbers])
    return result, fit


def _arima_cleaned(target: np.ndarray, past: np.ndarray, future: np.ndarray, horizon: int, levels: Sequence[int],
                   fixed: dict | None) -> tuple[dict, dict | None]:
    """The regression with ARMA errors on `target`, cleaned of outliers: the forecast (`mean`,
    `lo-<level>`, `hi-<level>`) and the coefficients of both fits ({"first", "second"}; "second" None
    when nothing was cleaned). With `fixed` (such coefficients), they are used instead of estimated;
    None is returned for the coefficients when `fixed` has no second fit and this target needs one."""
    past, future = (past, future) if past.shape[1] else (None, None)
    found, fitted, first = _arima(target, past, future, horizon, levels, fixed and fixed["first"])
    second = None
    if CLEAN_OUTLIERS:
        # Days far off the fitted calendar (an unlisted promotion, a one-off refund) would widen every
        # interval: replace them by their fitted value and fit again (like R's tsclean).
        residuals = target - fitted
        spread = 1.4826 * np.nanmedian(np.abs(residuals - np.nanmedian(residuals)))
        outliers = np.abs(residuals) > OUTLIER_SPREADS * spread
        if outliers.any():
            if fixed and fixed["second"] is None:
                return found, None
            cleaned = np.where(outliers, fitted, target)
            found, _, second = _arima(cleaned, past, future, horizon, levels, fixed and fixed["second"])
    return found, {"first": first, "second": second}


def _arima(target: np.ndarray, past: np.ndarray | None, future: np.ndarray | None, horizon: int,
           levels: Sequence[int], fixed: dict | None) -> tuple[dict, np.ndarray, dict]:
    """One ARIMA fit (or, with `fixed` coefficients, a run of them over `target`): the forecast, the
    fitted values and the coefficients."""
    from statsforecast.models import ARIMA

    model = ARIMA(order=ORDER, include_drift=True, include_mean=True, fixed=dict(fixed) if fixed else None)
    model.fit(target, past)
    found = model.predict(horizon, X=future, level=list(levels))
    coefficients = {name: float(value) for name, value in model.model_["coef"].items()}
    return found, model.predict_in_sample()["fitted"], coefficients


def backtest(values: pd.Series, calendar: Calendar, origins: Sequence[date], horizon: int = HORIZON_DAYS,
             levels: Sequence[int] = LEVELS, *, stock: bool = False) -> pd.DataFrame:
    """Forecast from each origin (the last day of history used) and line the forecasts up with what
    happened: one row per origin and held-out day with `actual`, `forecast`, the bounds, and
    `ape` (absolute percentage error) and `inside_<level>`."""
    rows = []
    for origin in origins:
        history = values.loc[:pd.Timestamp(origin)]
        found = forecast_series(history, calendar, horizon, levels, stock=stock)
        found["actual"] = values.reindex(found["date"]).to_numpy()
        found["origin"] = pd.Timestamp(origin)
        rows.append(found.dropna(subset=["actual"]))
    result = pd.concat(rows, ignore_index=True)
    result["days_ahead"] = (result["date"] - result["origin"]).dt.days
    result["ape"] = (result["forecast"] - result["actual"]).abs() / result["actual"].abs()
    for level in levels:
        result[f"inside_{level}"] = result["actual"].between(result[f"lower_{level}"], result[f"upper_{level}"])
    return result


def backtest_scores(results: pd.DataFrame, levels: Sequence[int] = LEVELS) -> dict[str, float]:
    """MAPE (on days with a non-zero actual) and each interval's share of held-out days inside it."""
    finite = results["ape"].replace([np.inf, -np.inf], np.nan).dropna()
    scores = {"days": int(len(results)), "mape": float(finite.mean())}
    for level in levels:
        scores[f"coverage_{level}"] = float(results[f"inside_{level}"].mean())
    return scores


def forecast_workspace(daily: pd.DataFrame, metrics: Sequence[tuple[str, bool, bool]], calendar: Calendar,
                       workspace_id: str, through: date | None = None, known: pd.DataFrame | None = None,
                       fits: dict[str, Fit] | None = None) -> pd.DataFrame:
    """The forecast rows of one workspace (`insights.forecasts`) for `metrics`.

    Args:
        daily: the workspace's daily metric table (`date` and one column per metric).
        metrics: (name, stock, can_be_negative) of each metric to forecast: whether it is a level
            (MRR), and whether it can fall below zero (net sales; orders and MRR are floored at 0).
        calendar: the workspace's holidays.
        workspace_id: the workspace.
        through: the last complete day to learn from (today, still running, is left out); None
            means the table's last day.
        known: rows an earlier call returned (`insights.forecasts`, with `inputs_digest`): a metric
            whose inputs have the same digest gets those rows back instead of being fitted again
            (the same rows; see `_inputs_digest`).
        fits: the workspace's stored fits (`insights.model_fits`, by `fit_name(metric)`): a metric
            whose fit is still usable is forwarded rather than estimated (`forecast_fitted`). Updated
            in place with the fits this call used.

    Returns:
        One row per metric and day ahead, with the `inputs_digest` they were made from; a metric
        with too short a history has none.
    """
    rows = []
    for metric, stock, can_be_negative in metrics:
        values = daily_series(daily, metric)
        if through is not None:
            values = values.loc[:pd.Timestamp(through)]
        if values.notna().sum() < MIN_HISTORY_DAYS:
            continue
        values = values.astype("float64")
        digest = _inputs_digest(values, calendar, stock, can_be_negative)
        stored = _stored(known, metric, digest)
        if stored is not None:
            rows.append(stored)
            continue
        found, fit = forecast_fitted(values, calendar, stock=stock, start=(fits or {}).get(fit_name(metric)))
        if fits is not None and fit is not None:
            fits[fit_name(metric)] = fit
        if not can_be_negative:
            numbers = [column for column in found.columns if column != "date"]
            found[numbers] = found[numbers].clip(lower=0.0)
        origin = values.last_valid_index()
        found = found.assign(workspace_id=workspace_id, metric=metric, origin=origin.date(),
                             days_ahead=(found["date"] - origin).dt.days, inputs_digest=digest)
        found["date"] = found["date"].dt.date
        rows.append(found[FORECAST_COLUMNS])
    if not rows:
        return pd.DataFrame(columns=FORECAST_COLUMNS)
    return pd.concat(rows, ignore_index=True)[FORECAST_COLUMNS]


def fit_name(metric: str) -> str:
    """The metric's model in `insights.model_fits`."""
    return f"forecast:{metric}"


FORECAST_COLUMNS = ["workspace_id", "metric", "origin", "date", "days_ahead", "forecast",
                    *[f"{side}_{level}" for level in LEVELS for side in ("lower", "upper")], "inputs_digest"]


def _inputs_digest(values: pd.Series, calendar: Calendar, stock: bool, can_be_negative: bool) -> str:
    """What one metric's forecast is computed from, as a digest: its daily values (dates and the
    exact floats), the holidays, the model's settings, and this code (this module and the calendar's
    source, the libraries' versions), so equal digests mean equal forecasts."""
    holidays = repr((calendar.country, sorted(calendar.days.items())))
    text = "|".join([_code_digest(), holidays, repr((stock, can_be_negative)), values.index[0].isoformat(),
                     str(len(values)), hashlib.sha256(values.to_numpy(dtype="float64").tobytes()).hexdigest()])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@functools.cache
def _code_digest() -> str:
    from importlib.metadata import version

    from pipelines.insights import calendar

    parts = [inspect.getsource(module) for module in (calendar, sys.modules[__name__])]
    parts += [version(name) for name in ("statsforecast", "numpy", "pandas", "scipy", "statsmodels", "numba")]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _stored(known: pd.DataFrame | None, metric: str, digest: str) -> pd.DataFrame | None:
    """The stored rows of `metric` when they were made from `digest`, as `forecast_workspace` returns them."""
    if known is None or "inputs_digest" not in known.columns:
        return None
    rows = known[known["metric"] == metric]
    if rows.empty or not rows["inputs_digest"].eq(digest).all() or len(rows) != HORIZON_DAYS:
        return None
    rows = rows.sort_values("date")[FORECAST_COLUMNS].reset_index(drop=True)
    return rows.assign(origin=pd.to_datetime(rows["origin"]).dt.date, date=pd.to_datetime(rows["date"]).dt.date,
                       days_ahead=rows["days_ahead"].astype("int64"))


def month_outlook(daily: pd.Series, forecast: pd.DataFrame, month_start: date, stock: bool) -> dict | None:
    """Where a metric is heading this month: actual days so far plus the forecast of the rest.

    Args:
        daily: the metric's actual values by day.
        forecast: its forecast rows (`date`, `forecast`, and `origin`: the last actual day it learnt from).
        month_start: the month's first day.
        stock: a level (the month's figure is its last day's) rather than a flow (summed).

    Returns:
        {"projected", "previous"} (the previous month's actual figure, None when that month is not
        wholly in `daily`), or None when actuals and forecast do not cover the whole month.
    """
    month = pd.date_range(month_start, (pd.Timestamp(month_start) + pd.offsets.MonthEnd(0)), freq="D")
    # Actual days up to the forecast's origin (a later, still running day is left to the forecast).
    actual = daily.dropna()
    if len(forecast) and "origin" in forecast:
        actual = actual.loc[:pd.Timestamp(forecast["origin"].iloc[0])]
    ahead = pd.Series(forecast["forecast"].to_numpy(dtype=float), index=pd.to_datetime(forecast["date"]))
    ahead = ahead[ahead.index > actual.index.max()] if len(actual) else ahead
    values = pd.concat([actual, ahead]).reindex(month)
    if values.isna().any():
        return None
    previous_days = pd.date_range(month[0] - pd.offsets.MonthBegin(1), month[0] - timedelta(days=1), freq="D")
    before = actual.reindex(previous_days)
    previous = None if before.isna().any() else float(before.iloc[-1] if stock else before.sum())
    return {"projected": float(values.iloc[-1] if stock else values.sum()), "previous": previous}
