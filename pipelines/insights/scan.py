"""One workspace's anomalies and drivers, from its daily metrics and slices (pure pandas).

The insights assets read the warehouse, call these, and write the results; the rows here are the
columns of `insights.anomalies` and `insights.anomaly_drivers` (docs/anomalies.md).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import sys
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import pandas as pd
import scipy

from pipelines.insights.anomalies import detect_many, week_over_week_changes
from pipelines.insights.calendar import Calendar
from pipelines.insights.drivers import explain
from pipelines.packs import Pack, signed_sum

ANOMALY_COLUMNS = ["anomaly_id", "workspace_id", "metric", "date", "value", "expected", "lower", "upper",
                   "score", "severity", "direction", "outcome", "rule", "holiday", "impact", "confidence",
                   "event_id", "event_rank", "reported"]
DRIVER_COLUMNS = ["anomaly_id", "workspace_id", "metric", "date", "rank", "dimension", "dimension_value",
                  "expected", "actual", "contribution", "share", "usual_share", "phrase"]
UNIT_VALUE_DAYS = 28  # a unit's money value is averaged over the 4 weeks before the anomaly
LINK_DAYS = 13  # a week-over-week finding is the same event as a band anomaly in its week or the week before
JUDGED = ["ok", "anomaly", "continuing", "recurring"]  # statuses whose score the week-over-week check weighs
FLOAT_COLUMNS = ("value", "expected", "lower", "upper", "score", "impact", "confidence")


def anomaly_id(workspace_id: str, metric: str, day: object, rule: str) -> str:
    """A stable id: the same finding on a rerun gets the same id, so it updates its row."""
    text = f"{workspace_id}|{metric}|{pd.Timestamp(day).date().isoformat()}|{rule}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def find_anomalies(daily: pd.DataFrame, pack: Pack, workspace_id: str, *,
                   calendar: Calendar | None = None) -> pd.DataFrame:
    """Every flagged day of every pack metric, by the band rule and the week-over-week rule, each
    with its impact, its event and whether it is among the week's few that reach the report.

    Args:
        daily: one row per local date (a `date` column), one column per pack metric.
        pack: the workspace's pack; each watched metric's (`Pack.watched`) sensitivity sets its band.
        workspace_id: stored on every row and hashed into its id.
        calendar: the workspace's holidays (`calendar.calendar_for`); None knows none.

    Returns:
        Rows with ANOMALY_COLUMNS. Band rows judge the day: `score` in robust standard deviations,
        `severity` from |score| against the metric's sensitivity. Week-over-week rows judge each
        Monday-to-Sunday week (summed; a stock's last day; a ratio of the summed parts) against the
        week before, dated on its Sunday: `value` and `expected` are those two figures, the band is
        ±the metric's `change_threshold` of `expected`, `score` is the relative change; a week is
        flagged only when the band agrees (its days, taken together, lie beyond the metric's
        sensitivity the same way), and only the first week of a run of weeks moving the same way.
        `impact` is the money at stake (|value − expected| in the reporting currency, counts valued
        by the pack's unit value), `confidence` how far beyond the band the finding lies (0.5 on
        its edge, → 1 far out). Findings of one day (several metrics moved by one cause), and a
        week-over-week finding with the band anomaly of the same metric it follows, share an
        `event_id`; each ISO week's events are ranked by impact × confidence (`event_rank`), and
        the headline row of the first `pack.alert_budget` events is `reported`.
    """
    if daily["date"].nunique() < 2:  # no frequency to tell, nothing to compare with
        return _empty(ANOMALY_COLUMNS)
    pack = pack.watched()  # metrics dated by week or cohort have no daily series to judge
    series = _daily_grid(daily, pack)
    sensitivity = {metric.name: metric.sensitivity for metric in pack.metrics}
    judged = detect_many(series, sensitivity=sensitivity, calendar=calendar,
                         counts={metric.name: metric.counts for metric in pack.metrics})
    flagged = judged[judged["is_anomaly"]].reset_index()
    flagged.columns = ["metric", "date", *flagged.columns[2:]]
    band = flagged.assign(
        rule="band",
        severity=[_band_severity(score, sensitivity[name]) for name, score in zip(flagged["metric"], flagged["score"])],
        confidence=[_confidence(score, sensitivity[name]) for name, score in zip(flagged["metric"], flagged["score"])],
        direction=flagged["direction"].astype(str),
        holiday=flagged["holiday"].astype(object).where(flagged["holiday"].notna(), None),
    )
    rows = pd.concat([band, _weekly_findings(series, judged, pack)], ignore_index=True)
    if rows.empty:
        return _empty(ANOMALY_COLUMNS)
    rows["date"] = pd.to_datetime(rows["date"])
    rows["impact"] = _impact(rows, series, pack)
    rows["outcome"] = [pack.metric(name).outcome(direction) for name, direction in zip(rows["metric"], rows["direction"])]
    rows["workspace_id"] = workspace_id
    rows["anomaly_id"] = [anomaly_id(workspace_id, *key) for key in zip(rows["metric"], rows["date"], rows["rule"])]
    rows = _events(rows, pack, workspace_id)
    rows["date"] = rows["date"].dt.date
    return rows[ANOMALY_COLUMNS].astype({column: "float64" for column in FLOAT_COLUMNS}).sort_values(
        ["date", "metric", "rule"], ignore_index=True)


def _weekly_findings(series: pd.DataFrame, judged: pd.DataFrame, pack: Pack) -> pd.DataFrame:
    """Week-over-week findings the band agrees with, each on the first week of its run.

    The band's verdict on a week is Stouffer's combination of its days' scores, Σz/√n: holidays
    excused for want of last year's and days explained by last year count as 0, so a week lifted by
    Black Friday, or a week after it, is no news; a week whose days all lean the same way (each
    inside the band) is.
    """
    status = judged["status"].unstack(level=0)
    scores = judged["score"].unstack(level=0).where(status.isin(JUDGED), np.nan)
    scores = scores.mask(status == "holiday", 0.0)
    days = scores.rolling(7, min_periods=4)
    with np.errstate(invalid="ignore", divide="ignore"):
        week_score = days.sum() / np.sqrt(days.count())
    trailing = _trailing_week(series, pack)
    names = [metric.name for metric in pack.metrics]
    threshold = np.array([metric.change_threshold for metric in pack.metrics])
    sensitivity = np.array([metric.sensitivity for metric in pack.metrics])
    # `anomalies.week_over_week` for every metric at once (one frame, not a frame per metric: the
    # per-metric pandas calls were most of a tiny workspace's anomaly scan; docs/performance.md,
    # 2026-12-06): each point against the same point a week earlier.
    value = trailing[names]
    previous, change = week_over_week_changes(value)
    value = value.to_numpy(dtype="float64")
    with np.errstate(invalid="ignore"):
        is_anomaly = np.abs(change) >= threshold  # NaN compares False
    up = change > 0
    has_direction = ~np.isnan(change) & (change != 0)
    # Whole weeks only, as the weekly report shows them: each Monday-to-Sunday week against the
    # one before, judged on its Sunday.
    sundays = np.flatnonzero(trailing.index.day_of_week == 6)
    agreement = week_score.reindex(columns=names).reindex(trailing.index).to_numpy(dtype="float64")[sundays]
    change, is_anomaly, up, has_direction = change[sundays], is_anomaly[sundays], up[sundays], has_direction[sundays]
    agrees = (np.sign(agreement) == np.sign(change)) & (np.abs(agreement) >= sensitivity)
    flagged = is_anomaly & agrees
    # A run of weeks moving the same way is flagged once.
    before = np.zeros_like(flagged)
    before[1:] = flagged[:-1]
    same_way = np.zeros_like(flagged)
    same_way[1:] = has_direction[1:] & has_direction[:-1] & (up[1:] == up[:-1])
    run_start = flagged & ~(before & same_way)
    columns, rows = np.nonzero(run_start.T)  # (metric, Sunday) of each finding: metric by metric, in date order
    at = sundays[rows]
    expected = previous[at, columns]
    score = change[rows, columns]
    spread = threshold[columns] * np.abs(expected)
    week_score_found = agreement[rows, columns]
    direction = np.where(~has_direction[rows, columns], "nan", np.where(up[rows, columns], "up", "down"))
    # The dtypes the per-metric frames concatenated to (severity: text, or float64 when nothing was found).
    return pd.DataFrame({
        "metric": pd.Series([names[column] for column in columns], dtype="str"),
        "date": trailing.index[at],
        "value": value[at, columns],
        "expected": expected,
        "lower": expected - spread,
        "upper": expected + spread,
        "score": score,
        "direction": pd.Series(direction, dtype="str"),
        "severity": pd.Series([_change_severity(one) for one in score], dtype=object if len(rows) else "float64"),
        "confidence": pd.Series([_confidence(z, sensitivity[column]) for z, column in zip(week_score_found, columns)],
                                dtype="float64"),
        "holiday": pd.Series([None] * len(rows), dtype=object),
        "rule": pd.Series(["week_over_week"] * len(rows), dtype="str"),
    })


def _impact(rows: pd.DataFrame, series: pd.DataFrame, pack: Pack) -> pd.Series:
    """Money at stake of each finding: |value − expected| in the reporting currency; a ratio's gap
    times its denominator (AOV: per order, times the day's or week's orders); a count's gap times
    the money one unit is worth over the 4 weeks before (the pack's `unit_value`)."""
    weekly = _trailing_week(series, pack, parts=True)
    before = series.rolling(UNIT_VALUE_DAYS, min_periods=1).sum().shift(1)
    impact = pd.Series(np.nan, index=rows.index)
    for name, found in rows.groupby("metric"):
        metric = pack.metric(name)
        dates = pd.DatetimeIndex(found["date"])
        gap = (found["value"] - found["expected"]).abs().to_numpy()
        if metric.ratio is not None:
            days = series.reindex(dates)
            weeks = weekly.reindex(dates)
            denominator = np.where(found["rule"] == "band", metric.ratio_parts(days)[1], metric.ratio_parts(weeks)[1])
            weight = np.abs(denominator)
        elif metric.unit == "currency":
            weight = np.ones(len(found))
        elif (parts := pack.unit_value(metric)) is not None:
            at = before.reindex(dates)
            with np.errstate(invalid="ignore", divide="ignore"):
                weight = np.abs((signed_sum(parts[0], at) / signed_sum(parts[1], at).where(lambda d: d != 0)).to_numpy())
        else:
            weight = np.full(len(found), np.nan)
        impact[found.index] = gap * weight
    return impact


def _events(rows: pd.DataFrame, pack: Pack, workspace_id: str) -> pd.DataFrame:
    """Group findings into events, rank each ISO week's events and mark what reaches the report."""
    rows = rows.copy()
    event_date = rows["date"].copy()
    band = rows[rows["rule"] == "band"]
    for at, row in rows[rows["rule"] != "band"].iterrows():
        same = band[(band["metric"] == row["metric"]) & (band["direction"] == row["direction"])
                    & band["date"].between(row["date"] - pd.Timedelta(days=LINK_DAYS), row["date"])]
        if len(same):
            event_date[at] = same["date"].max()
    rows["event_id"] = [anomaly_id(workspace_id, "(event)", day, "event") for day in event_date]
    priority = rows["impact"].fillna(0.0) * rows["confidence"].fillna(0.0)
    rows["_priority"] = priority
    rows["_band"] = rows["rule"] == "band"
    # The headline of an event: its band row with the most at stake (band rows have drivers).
    ordered = rows.sort_values(["event_id", "_band", "_priority", "confidence", "anomaly_id"],
                               ascending=[True, False, False, False, True])
    headline = ~ordered.duplicated("event_id")
    rows["_headline"] = headline.reindex(rows.index)
    events = rows.groupby("event_id").agg(priority=("_priority", "max"), confidence=("confidence", "max"))
    events["week"] = [_iso_week(day) for day in event_date.groupby(rows["event_id"]).first().reindex(events.index)]
    events = events.sort_values(["week", "priority", "confidence"], ascending=[True, False, False], kind="stable")
    events["event_rank"] = events.groupby("week").cumcount() + 1
    rows["event_rank"] = rows["event_id"].map(events["event_rank"]).astype("int64")
    rows["reported"] = rows["_headline"] & (rows["event_rank"] <= pack.alert_budget)
    return rows.drop(columns=["_priority", "_band", "_headline"])


def _iso_week(day: pd.Timestamp) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def _confidence(score: float, sensitivity: float) -> float:
    """How sure a finding is, from how far beyond the band it lies: Φ(|score| − sensitivity), 0.5
    on the band's edge, 0.84 one deviation beyond, → 1 far out."""
    if score is None or np.isnan(score):
        return np.nan
    return float(NormalDist().cdf(min(abs(score), 1e6) - sensitivity))


def _empty(columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({column: pd.Series(dtype=_dtype(column)) for column in columns})


def explain_anomalies(anomalies: pd.DataFrame, slices: pd.DataFrame, pack: Pack, *,
                      calendar: Calendar | None = None, known: pd.DataFrame | None = None) -> pd.DataFrame:
    """The ranked drivers of every band anomaly of a metric that has dimensions.

    Args:
        anomalies: rows of `find_anomalies`.
        slices: the workspace's `<vertical>_daily_slices` rows: `date, metric, dimension,
            dimension_value, value`.
        pack: the workspace's pack.
        calendar: the holidays the anomalies were found with.
        known: rows an earlier call returned (`insights.anomaly_drivers`, with `inputs_digest`): an
            anomaly whose inputs have the same digest now gets those rows back instead of being
            explained again (the result is the same; see `_inputs_digest`).

    Returns:
        Rows with DRIVER_COLUMNS, every dimension value of every explained anomaly, ranked per anomaly.
        Week-over-week findings are not explained: their "expected" (last week's value) is not the
        baseline the slices are judged on, so a split would not add up.
    """
    wide = slices.pivot_table(index=["date", "dimension", "dimension_value"], columns="metric", values="value",
                              aggfunc="sum").reset_index().rename(columns={"dimension_value": "value"})
    wide["date"] = pd.to_datetime(wide["date"])
    band = anomalies[anomalies["rule"] == "band"]
    reusable = _known_by_anomaly(known)
    histories: dict[str, tuple[pd.DataFrame, _Prefixes]] = {}
    parts = []
    for row in band.itertuples():
        metric = pack.metric(row.metric)
        if not metric.dimensions or not set(metric.measures) <= set(wide.columns):
            continue
        if metric.name not in histories:
            history = wide[["date", "dimension", "value", *metric.measures]].dropna(subset=list(metric.measures),
                                                                                    how="all")
            histories[metric.name] = history, _Prefixes.of(history[history["dimension"].isin(metric.dimensions)])
        history, prefixes = histories[metric.name]
        digest = _inputs_digest(metric, row.date, row.value, row.expected, prefixes, calendar)
        stored = reusable.get(row.anomaly_id)
        if stored is not None and stored[0] == digest:
            found = stored[1]
        else:
            found = explain(history, metric=metric, date=row.date, actual=row.value, expected=row.expected,
                            calendar=calendar).rename(columns={"value": "dimension_value"})
        parts.append(found.assign(
            anomaly_id=row.anomaly_id, workspace_id=row.workspace_id, metric=row.metric, date=row.date,
            inputs_digest=digest)[[*DRIVER_COLUMNS, "inputs_digest"]])
    if not parts:
        return _empty([*DRIVER_COLUMNS, "inputs_digest"])
    drivers = pd.concat(parts, ignore_index=True)[[*DRIVER_COLUMNS, "inputs_digest"]]
    drivers["dimension_value"] = drivers["dimension_value"].astype(str)
    return drivers.astype({"rank": "int64", "expected": "float64", "actual": "float64",
                           "contribution": "float64", "share": "float64", "usual_share": "float64"})


@dataclass(frozen=True)
class _Prefixes:
    """A multiset digest of a metric's slice rows up to each date: the wrapping sum of the rows' 64-bit
    hashes (date, dimension, value and measures), cumulated over the sorted dates, and the row counts."""

    dates: np.ndarray  # datetime64, sorted, distinct
    sums: np.ndarray  # uint64: digest of the rows up to and including dates[i]
    counts: np.ndarray

    @classmethod
    def of(cls, history: pd.DataFrame) -> _Prefixes:
        hashes = pd.util.hash_pandas_object(history, index=False).to_numpy(dtype=np.uint64)
        days = history["date"].to_numpy(dtype="datetime64[ns]")
        order = np.argsort(days, kind="stable")
        days, hashes = days[order], hashes[order]
        dates, first = np.unique(days, return_index=True)
        with np.errstate(over="ignore"):
            running = np.cumsum(hashes, dtype=np.uint64)  # wraps modulo 2**64, as a digest should
        last = np.append(first[1:], len(days)) - 1 if len(days) else np.array([], dtype=np.int64)
        return cls(dates, running[last], last + 1)

    def through(self, when: pd.Timestamp) -> tuple[int, int]:
        """(digest, rows) of the rows dated up to `when`."""
        at = int(np.searchsorted(self.dates, np.datetime64(when, "ns"), side="right"))
        return (int(self.sums[at - 1]), int(self.counts[at - 1])) if at else (0, 0)


def _inputs_digest(metric, day, actual: float, expected: float, prefixes: _Prefixes,
                   calendar: Calendar | None) -> str:
    """What one anomaly's drivers are computed from, as a digest: `explain` reads only the metric's
    slices along its dimensions up to the day, the day's actual and expected values, the metric's
    definition, the holidays, and this code (the modules it runs and the libraries' versions), so
    equal digests mean equal drivers."""
    when = pd.Timestamp(day)
    rows, count = prefixes.through(when)
    text = "|".join([_code_digest(), _calendar_digest(calendar), repr(metric), when.isoformat(), repr(float(actual)),
                     repr(float(expected)), str(rows), str(count)])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@functools.cache
def _code_digest() -> str:
    """The source of the modules the drivers run, and the numeric libraries' versions."""
    from pipelines.insights import anomalies, calendar, drivers
    from pipelines.packs import pack

    parts = [inspect.getsource(module) for module in (anomalies, calendar, drivers, pack, sys.modules[__name__])]
    parts += [np.__version__, pd.__version__, scipy.__version__]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _calendar_digest(calendar: Calendar | None) -> str:
    if calendar is None:
        return "none"
    return hashlib.sha256(repr((calendar.country, sorted(calendar.days.items()))).encode()).hexdigest()


def _known_by_anomaly(known: pd.DataFrame | None) -> dict[str, tuple[str, pd.DataFrame]]:
    """Stored driver rows by anomaly, with their inputs digest (rows without one are not reused)."""
    if known is None or known.empty or "inputs_digest" not in known.columns:
        return {}
    rows = known[known["inputs_digest"].notna()]
    rows = rows.sort_values(["anomaly_id", "rank"], ignore_index=True)[[*DRIVER_COLUMNS, "inputs_digest"]]
    found = {}
    for anomaly, group in rows.groupby("anomaly_id", sort=False):
        if group["inputs_digest"].nunique() == 1 and list(group["rank"]) == list(range(1, len(group) + 1)):
            found[anomaly] = (group["inputs_digest"].iloc[0], group.drop(
                columns=["anomaly_id", "workspace_id", "metric", "date", "inputs_digest"]).reset_index(drop=True))
    return found


def _daily_grid(daily: pd.DataFrame, pack: Pack) -> pd.DataFrame:
    """The pack's metrics as float columns on a complete daily index."""
    frame = daily.assign(date=pd.to_datetime(daily["date"])).set_index("date").sort_index()
    frame = frame[list(pack.metric_names)].astype("float64")
    return frame.reindex(pd.date_range(frame.index.min(), frame.index.max(), freq="D", name="date"))


def _trailing_week(series: pd.DataFrame, pack: Pack, *, parts: bool = False) -> pd.DataFrame:
    """Each metric over the 7 days to each date, as a weekly report would total it (with `parts`,
    the summed metrics themselves: a stock's last day, else the sum)."""
    summed = series.rolling(7, min_periods=7).sum()
    weekly = pd.DataFrame(index=series.index)
    for metric in pack.metrics:
        if metric.stock and (metric.ratio is None or parts):
            weekly[metric.name] = series[metric.name]
        elif metric.ratio is None or parts:
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


def _dtype(column: str) -> str:
    if column in ("rank", "event_rank"):
        return "int64"
    if column == "reported":
        return "bool"
    return "float64" if column in (*FLOAT_COLUMNS, "actual", "contribution", "share", "usual_share") else "object"


