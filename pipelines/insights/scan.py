"""One workspace's anomalies and drivers, from its daily metrics and slices (pure pandas).

The insights assets read the warehouse, call these, and write the results; the rows here are the
columns of `insights.anomalies` and `insights.anomaly_drivers` (docs/anomalies.md).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from pipelines.insights.anomalies import detect_many, week_over_week
from pipelines.insights.drivers import explain
from pipelines.packs import Pack

ANOMALY_COLUMNS = ["anomaly_id", "workspace_id", "metric", "date", "value", "expected", "lower", "upper",
                   "score", "severity", "direction", "rule"]
DRIVER_COLUMNS = ["anomaly_id", "workspace_id", "metric", "date", "rank", "dimension", "dimension_value",
                  "expected", "actual", "contribution", "share", "phrase"]


def anomaly_id(workspace_id: str, metric: str, day: object, rule: str) -> str:
    """A stable id: the same finding on a rerun gets the same id, so it updates its row."""
    text = f"{workspace_id}|{metric}|{pd.Timestamp(day).date().isoformat()}|{rule}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def find_anomalies(daily: pd.DataFrame, pack: Pack, workspace_id: str) -> pd.DataFrame:
    """Every flagged day of every pack metric, by the band rule and the week-over-week rule.

    Args:
        daily: one row per local date (a `date` column), one column per pack metric.
        pack: the workspace's pack; each metric's sensitivity sets its band.
        workspace_id: stored on every row and hashed into its id.

    Returns:
        Rows with ANOMALY_COLUMNS. Band rows judge the day: `score` in robust standard deviations,
        `severity` from |score| against the metric's sensitivity. Week-over-week rows judge each
        Monday-to-Sunday week (summed; a stock's last day; a ratio of the summed parts) against the
        week before, dated on its Sunday: `value` and `expected` are those two figures, the band is
        ±the metric's `change_threshold` (30% unless its pack says otherwise) of `expected`, `score` is the relative change, and only the first week of a run of
        weeks moving the same way is flagged.
    """
    if daily["date"].nunique() < 2:  # no frequency to tell, nothing to compare with
        return pd.DataFrame({column: pd.Series(dtype=_anomaly_dtype(column)) for column in ANOMALY_COLUMNS})
    series = _daily_grid(daily, pack)
    sensitivity = {metric.name: metric.sensitivity for metric in pack.metrics}
    flagged = detect_many(series, sensitivity=sensitivity, anomalies_only=True).reset_index()
    flagged.columns = ["metric", "date", *flagged.columns[2:]]
    band = flagged.assign(
        rule="band",
        severity=[_band_severity(score, sensitivity[name]) for name, score in zip(flagged["metric"], flagged["score"])],
    )

    weekly = []
    trailing = _trailing_week(series, pack)
    for metric in pack.metrics:
        threshold = metric.change_threshold
        found = week_over_week(trailing[metric.name], threshold=threshold)
        # Whole weeks only, as the weekly report shows them: each Monday-to-Sunday week against the
        # one before, judged on its Sunday; a run of weeks moving the same way is flagged once.
        found = found[found.index.day_of_week == 6]
        run_start = found["is_anomaly"] & ~(found["is_anomaly"].shift(fill_value=False)
                                             & found["direction"].eq(found["direction"].shift()))
        found = found[run_start]
        weekly.append(pd.DataFrame({
            "metric": metric.name,
            "date": found.index,
            "value": found["value"],
            "expected": found["previous"],
            "lower": found["previous"] - threshold * found["previous"].abs(),
            "upper": found["previous"] + threshold * found["previous"].abs(),
            "score": found["change"],
            "direction": found["direction"].astype(str),
            "severity": [_change_severity(change) for change in found["change"]],
            "rule": "week_over_week",
        }))
    rows = pd.concat([band.assign(direction=band["direction"].astype(str)), *weekly], ignore_index=True)
    rows["date"] = pd.to_datetime(rows["date"]).dt.date
    rows["workspace_id"] = workspace_id
    rows["anomaly_id"] = [anomaly_id(workspace_id, *key) for key in zip(rows["metric"], rows["date"], rows["rule"])]
    return rows[ANOMALY_COLUMNS].sort_values(["date", "metric", "rule"], ignore_index=True)


def explain_anomalies(anomalies: pd.DataFrame, slices: pd.DataFrame, pack: Pack) -> pd.DataFrame:
    """The ranked drivers of every band anomaly of a metric that has dimensions.

    Args:
        anomalies: rows of `find_anomalies`.
        slices: the workspace's `<vertical>_daily_slices` rows: `date, metric, dimension,
            dimension_value, value`.
        pack: the workspace's pack.

    Returns:
        Rows with DRIVER_COLUMNS, every dimension value of every explained anomaly, ranked per anomaly.
        Week-over-week findings are not explained: their "expected" (last week's value) is not the
        baseline the slices are judged on, so a split would not add up.
    """
    wide = slices.pivot_table(index=["date", "dimension", "dimension_value"], columns="metric", values="value",
                              aggfunc="sum").reset_index().rename(columns={"dimension_value": "value"})
    wide["date"] = pd.to_datetime(wide["date"])
    parts = []
    for row in anomalies[anomalies["rule"] == "band"].itertuples():
        metric = pack.metric(row.metric)
        if not metric.dimensions or not set(metric.measures) <= set(wide.columns):
            continue
        found = explain(wide[["date", "dimension", "value", *metric.measures]].dropna(subset=list(metric.measures),
                                                                                      how="all"),
                        metric=metric, date=row.date, actual=row.value, expected=row.expected)
        parts.append(found.rename(columns={"value": "dimension_value"}).assign(
            anomaly_id=row.anomaly_id, workspace_id=row.workspace_id, metric=row.metric, date=row.date))
    if not parts:
        return pd.DataFrame({column: pd.Series(dtype=_driver_dtype(column)) for column in DRIVER_COLUMNS})
    drivers = pd.concat(parts, ignore_index=True)[DRIVER_COLUMNS]
    drivers["dimension_value"] = drivers["dimension_value"].astype(str)
    return drivers.astype({"rank": "int64", "expected": "float64", "actual": "float64",
                           "contribution": "float64", "share": "float64"})


def _daily_grid(daily: pd.DataFrame, pack: Pack) -> pd.DataFrame:
    """The pack's metrics as float columns on a complete daily index."""
    frame = daily.assign(date=pd.to_datetime(daily["date"])).set_index("date").sort_index()
    frame = frame[list(pack.metric_names)].astype("float64")
    return frame.reindex(pd.date_range(frame.index.min(), frame.index.max(), freq="D", name="date"))


def _trailing_week(series: pd.DataFrame, pack: Pack) -> pd.DataFrame:
    """Each metric over the 7 days to each date, as a weekly report would total it."""
    summed = series.rolling(7, min_periods=7).sum()
    weekly = pd.DataFrame(index=series.index)
    for metric in pack.metrics:
        if metric.stock and metric.ratio is None:
            weekly[metric.name] = series[metric.name]
        elif metric.ratio is None:
            weekly[metric.name] = summed[metric.name]
        else:
            weekly[metric.name] = metric.value(series if metric.stock else summed)
    return weekly


def _band_severity(score: float, sensitivity: float) -> str:
    """"high" at twice the band's half-width, "medium" at 1.5 times, else "low"."""
    size = abs(score) / sensitivity
    return "high" if size >= 2 or np.isinf(size) else "medium" if size >= 1.5 else "low"


def _change_severity(change: float) -> str:
    """"high" for a doubling or a halving and more, "medium" beyond ±50%, else "low"."""
    return "high" if change >= 1 or change <= -0.5 else "medium" if abs(change) >= 0.5 else "low"


def _anomaly_dtype(column: str) -> str:
    return "float64" if column in ("value", "expected", "lower", "upper", "score") else "object"


def _driver_dtype(column: str) -> str:
    if column == "rank":
        return "int64"
    return "float64" if column in ("expected", "actual", "contribution", "share") else "object"
