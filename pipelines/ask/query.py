"""The query object a question resolves to, and the parameterized SQL it compiles to.

A question never becomes SQL text. It becomes a `Query`: registry metrics (1–4), dimensions
(0–2), a time range in the workspace's timezone and a grain, filters on dimension values that
exist, a comparison, an order and a limit (≤ 50). `check` holds it to the workspace's pack and
dimension values; `compile_query` turns it into statements over the `metrics` tables only
(`metric_values` and the slice tables the registry names), every value a parameter, and the
workspace id always the caller's. docs/ask.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipelines.packs import Metric, Pack

GRAINS = ("total", "day", "week", "month", "quarter", "year")
TIMEOUT_SECONDS = 5.0  # a question's reads stop after this
LONG_TABLE = "metric_values"  # every registry metric, one row per workspace, day and metric
MAX_ROWS = 50
KEYS = ("dimension_value", "dimension_value_2")  # a result's columns for its first and second dimension


class QueryError(ValueError):
    """A query the workspace's registry or data cannot answer; the message says why, for people."""


class Filter(BaseModel):
    """Keep only these values of a dimension: `{"dimension": "country", "values": ["DE"]}`."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    dimension: str
    values: tuple[str, ...] = Field(min_length=1, max_length=20)


class Range(BaseModel):
    """Days from `start` to `end`, both included, in the workspace's timezone; `partial` when it
    runs to today (so its last day is still under way)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    start: date
    end: date
    partial: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.start > self.end:
            raise ValueError(f"the range ends ({self.end}) before it starts ({self.start})")
        if (self.end - self.start).days > 3 * 366:
            raise ValueError("the range is longer than three years")
        return self


class Comparison(BaseModel):
    """The period a result is compared with, and how it was chosen."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["previous_period", "same_period_last_year", "range"]
    range: Range


class Query(BaseModel):
    """What a question asks, validated; never SQL. The workspace is not part of it: the caller's."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    metrics: tuple[str, ...] = Field(min_length=1, max_length=4)
    dimensions: tuple[str, ...] = Field(default=(), max_length=2)
    range: Range
    timezone: str
    grain: Literal["total", "day", "week", "month", "quarter", "year"] = "total"
    filters: tuple[Filter, ...] = ()
    comparison: Comparison | None = None
    order: Literal["desc", "asc"] = "desc"
    limit: int = Field(default=MAX_ROWS, ge=1, le=MAX_ROWS)

    @model_validator(mode="after")
    def _distinct(self) -> Query:
        if len(set(self.metrics)) != len(self.metrics):
            raise ValueError("a metric is listed twice")
        if len(set(self.dimensions)) != len(self.dimensions):
            raise ValueError("a dimension is listed twice")
        if len({f.dimension for f in self.filters}) != len(self.filters):
            raise ValueError("a dimension is filtered twice")
        return self


def check(query: Query, pack: Pack, values: dict[str, set[str]]) -> None:
    """Hold `query` to the workspace's pack and its dimension values.

    Args:
        values: each dimension's values in the workspace's slice tables (`dimension_values`).

    Raises:
        QueryError: an unknown metric or dimension, a metric that does not split by a dimension
            (or by two together), more than two dimensions, a filter value that does not exist.
    """
    for name in query.metrics:
        if name not in pack.metric_names:
            raise QueryError(f"there is no metric {name!r} for {pack.vertical}")
    for name in [*query.dimensions, *(f.dimension for f in query.filters)]:
        if name not in {dimension.name for dimension in pack.dimensions}:
            raise QueryError(f"there is no dimension {name!r} for {pack.vertical}")
    split = set(split_by(query))
    if len(split) > 2:
        raise QueryError("metrics split by at most two dimensions at once (breakdowns and filters together), "
                         "not by " + ", ".join(sorted(split)))
    for name in query.metrics:
        metric = pack.metric(name)
        missing = split - set(metric.dimensions)
        if missing:
            raise QueryError(f"{metric.label} is not split by {', '.join(sorted(missing))}")
        if split and not pack.splits(metric, split):
            raise QueryError(f"{metric.label} is not split by {' and '.join(sorted(split))} together")
    for kept in query.filters:
        unknown = [value for value in kept.values if value not in values.get(kept.dimension, set())]
        if unknown:
            raise QueryError(f"no {kept.dimension} {', '.join(map(repr, unknown))} in this workspace's data")


@dataclass(frozen=True)
class Statement:
    """One parameterized read: `%s` placeholders, read-only, over the `metrics` schema."""

    sql: str
    params: tuple[object, ...]
    table: str  # the table it reads, e.g. "metrics.ecommerce_daily_slices"


def split_by(query: Query) -> list[str]:
    """The dimensions the query reads its metrics by: its breakdown's, then its filters' (0–2 once checked)."""
    return list(dict.fromkeys([*query.dimensions, *(f.dimension for f in query.filters)]))


def keys(query: Query) -> list[str]:
    """A result's columns for the query's breakdown: `dimension_value` (and `dimension_value_2`)."""
    return list(KEYS[:len(query.dimensions)])


def long_form(names: Sequence[str], pack: Pack) -> tuple[str, tuple[str, ...]]:
    """Where these metrics are read one row per workspace, day and metric, and the tables that is:
    `metrics.metric_values`, or, when a forecast is among them, each metric's own table unpivoted
    (forecasts are not in metric_values: dbt builds that table before the insights stage writes
    them, and their view `forecast_metrics` reads the forecasts as they are now). The names come
    from the registry, never from the question."""
    metrics = [pack.metric(name) for name in names]
    if not any(metric.forecast_of for metric in metrics):
        return f"metrics.{LONG_TABLE}", (f"metrics.{LONG_TABLE}",)
    selects = [f"select workspace_id, date, '{metric.name}' as metric, {metric.column} as value "
               f"from metrics.{metric.table} where {metric.column} is not null" for metric in metrics]
    return f"({' union all '.join(selects)})", tuple(dict.fromkeys(f"metrics.{metric.table}" for metric in metrics))


def _source(query: Query, pack: Pack) -> tuple[str, str, dict[str, str], str, list[object]]:
    """Where the query's dimensions are read: the relation (as SQL), the table it cites, each
    dimension's column in it, and the condition (with its parameters) that picks the rows of those
    dimensions. No dimension: the long form; one: its slice table; two: their pair slice table,
    each pair stored in one order."""
    split = split_by(query)
    if not split:
        relation, tables = long_form(list(measures(query, pack)), pack)
        return relation, ", ".join(tables), {}, "", []
    if len(split) == 1:
        table = f"metrics.{pack.dimension(split[0]).table}"
        return table, table, {split[0]: "src.dimension_value"}, " and src.dimension = %s", split
    pair = pack.pair(*split)
    if pair is None:
        raise QueryError(f"no table splits metrics by {' and '.join(split)} together")
    first, second = pair.dimensions
    return (f"metrics.{pair.table}", f"metrics.{pair.table}", {first: "src.dimension_value",
                                                               second: "src.second_dimension_value"},
            " and src.dimension = %s and src.second_dimension = %s", [first, second])


def measures(query: Query, pack: Pack) -> dict[str, Metric]:
    """The stored metrics the query adds up: its metrics, or their ratios' parts, by name."""
    return {name: pack.metric(name) for metric in query.metrics for name in pack.metric(metric).measures}


def compile_query(query: Query, pack: Pack, workspace_id: str, range_: Range | None = None) -> list[Statement]:
    """The statements that add up the query's measures over `range_` (default: its range), by
    grain and dimension value: one for the summed measures, one for the stocks (their last day
    with data in each period). `workspace_id` comes from the caller, never from the question.

    Each statement returns (period, [dimension_value, [dimension_value_2,]] metric, value): period
    is the first day of its day, week (Monday), month, quarter or year, or null for the total.
    """
    span = range_ or query.range
    by_kind: dict[str, list[str]] = {"sum": [], "last": []}
    for name, metric in measures(query, pack).items():
        by_kind["last" if metric.stock else "sum"].append(name)
    relation, table, columns, where, where_params = _source(query, pack)
    days, _ = long_form(list(measures(query, pack)), pack)
    split = "".join(f", {columns[name]} as {key}" for name, key in zip(query.dimensions, KEYS))
    grouped = "".join(f", {columns[name]}" for name in query.dimensions)
    for kept in query.filters:
        where += f" and {columns[kept.dimension]} in ({', '.join(['%s'] * len(kept.values))})"
        where_params.extend(kept.values)
    statements = []
    if by_kind["sum"]:
        names = by_kind["sum"]
        period = _period(query.grain, "src.date")
        sql = (f"select {period or 'cast(null as date)'} as period{split}, src.metric, sum(src.value) as value "
               f"from {relation} as src "
               f"where src.workspace_id = %s and src.date between %s and %s "
               f"and src.metric in ({', '.join(['%s'] * len(names))}){where} "
               f"group by {period + ', ' if period else ''}src.metric{grouped}")
        statements.append(Statement(sql, (workspace_id, span.start, span.end, *names, *where_params), table))
    if by_kind["last"]:
        names = by_kind["last"]
        marks = ", ".join(["%s"] * len(names))
        period = _period(query.grain, "date")
        # A stock's period is its last day with data: the long form has a row for every day with
        # data, while slices leave zero values out, so the day comes from the long form.
        sql = (f"with last_days as (select {period or 'cast(null as date)'} as period, max(date) as last_day "
               f"from {days} as days where workspace_id = %s and date between %s and %s "
               f"and metric in ({marks}){' group by ' + period if period else ''}) "
               f"select last_days.period{split}, src.metric, sum(src.value) as value "
               f"from {relation} as src inner join last_days on src.date = last_days.last_day "
               f"where src.workspace_id = %s and src.metric in ({marks}){where} "
               f"group by last_days.period, src.metric{grouped}")
        statements.append(Statement(sql, (workspace_id, span.start, span.end, *names, workspace_id, *names,
                                          *where_params), table))
    return statements


def _period(grain: str, column: str) -> str:
    """The SQL of a row's period: its day, or the first day of its week (Monday), month, quarter or
    year; "" for the total."""
    if grain == "total":
        return ""
    return column if grain == "day" else f"cast(date_trunc('{grain}', {column}) as date)"


def dimension_values_sql(pack: Pack, workspace_id: str) -> list[Statement]:
    """The statements listing each dimension's values in the workspace's slice tables."""
    return [Statement("select distinct dimension, dimension_value from metrics." + table
                      + " where workspace_id = %s", (workspace_id,), f"metrics.{table}")
            for table in pack.slice_tables]


Read = Callable[[str, Sequence[object]], pd.DataFrame]  # Warehouse.reader's `read`


def dimension_values(read: Read, pack: Pack, workspace_id: str) -> dict[str, set[str]]:
    """Each dimension's values in the workspace's slice tables (filters are checked against them)."""
    found: dict[str, set[str]] = {}
    for statement in dimension_values_sql(pack, workspace_id):
        for dimension, value in read(statement.sql, statement.params).itertuples(index=False):
            found.setdefault(dimension, set()).add(str(value))
    return found


def evaluate(query: Query, pack: Pack, read: Read, workspace_id: str,
             range_: Range | None = None, grain: str | None = None) -> pd.DataFrame:
    """The query's metrics per period (and dimension values): one row each, a column per metric,
    `period` (the first day of the period; the range's start for the total), `dimension_value`
    (and `dimension_value_2` for a second dimension)."""
    query = query if grain is None else query.model_copy(update={"grain": grain})
    span = range_ or query.range
    frames = [frame for statement in compile_query(query, pack, workspace_id, span)
              if len(frame := read(statement.sql, statement.params))]
    keyed = ["period", *keys(query)]
    series = query.grain != "total" and not query.dimensions
    if not frames and not series:
        return pd.DataFrame(columns=[*keyed, *query.metrics])
    if frames:
        long = pd.concat(frames, ignore_index=True)
        long["period"] = pd.to_datetime(long["period"].fillna(pd.Timestamp(span.start))).dt.date
        wide = long.groupby([*keyed, "metric"])["value"].sum().unstack("metric").reset_index()
    else:
        wide = pd.DataFrame(columns=keyed)
    if series:
        wide = _every_period(wide, query, pack, read, workspace_id, span)
        if wide.empty:
            return pd.DataFrame(columns=[*keyed, *query.metrics])
    for name in measures(query, pack):  # a slice left out (zero) or a part absent in the range is 0
        wide[name] = wide[name].astype("float64").fillna(0.0) if name in wide else 0.0
    result = wide[keyed].copy()
    for name in query.metrics:
        result[name] = pack.metric(name).value(wide).astype("float64")
    return result


def _every_period(wide: pd.DataFrame, query: Query, pack: Pack, read: Read, workspace_id: str,
                  span: Range) -> pd.DataFrame:
    """A series with every period of `span` up to the last day with data (none after it): a period
    without rows is 0 for a flow and the period before's level for a stock (0 before the first)."""
    names = list(measures(query, pack))
    through = read(f"select max(date) as through from {long_form(names, pack)[0]} as days where workspace_id = %s "
                   f"and date <= %s and metric in ({', '.join(['%s'] * len(names))})",
                   (workspace_id, span.end, *names))["through"].iloc[0]
    if through is None or pd.isna(through):
        return wide
    through = pd.Timestamp(through).date()
    every = pd.DataFrame({"period": [day for day in period_starts(query.grain, span.start, span.end)
                                     if day <= through]})
    full = every.merge(wide, on="period", how="outer").sort_values("period", ignore_index=True)
    for name in names:
        if name in full and pack.metric(name).stock:
            full[name] = full[name].astype("float64").ffill()
    return full


FREQUENCIES = {"day": "D", "week": "W-MON", "month": "MS", "quarter": "QS", "year": "YS"}


def period_starts(grain: str, start: date, end: date) -> list[date]:
    """The first day of each period of `grain` that overlaps start–end (a week's Monday, a month's 1st...)."""
    first = pd.Timestamp(start)
    first = {"day": first, "week": first - pd.Timedelta(days=first.weekday()), "month": first.replace(day=1),
             "quarter": first.replace(day=1, month=3 * ((first.month - 1) // 3) + 1),
             "year": first.replace(day=1, month=1)}[grain]
    return [stamp.date() for stamp in pd.date_range(first, pd.Timestamp(end), freq=FREQUENCIES[grain])]
