"""What a pack is: its `Metric`s and `Dimension`s, validated when declared (the packs are in
`ecommerce.py` and `saas.py`; `pipelines.packs` gathers them into the registry)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

import pandas as pd

UNITS = ("currency", "count", "ratio")
# Months since acquisition whose retention the cohort metric tables hold (ecommerce_cohort_metrics,
# saas_cohort_metrics: one column set per month, the same list in their SQL).
COHORT_MONTHS = (1, 3, 6, 12)
TERM = re.compile(r"([+-]?)\s*([a-z_][a-z0-9_]*)")
SIGNED_SUM = re.compile(r"\s*[a-z_][a-z0-9_]*(\s*[+-]\s*[a-z_][a-z0-9_]*)*\s*")


@dataclass(frozen=True)
class Dimension:
    """A way to slice a metric, e.g. by product.

    Attributes:
        name: the `dimension` in the slice table (its values in `dimension_value`).
        label: how reports name it in English.
        table: the slice table it comes from, e.g. "ecommerce_daily_slices" (docs/packs.md).
        synonyms: other words people use for it ("products", "item").
    """

    name: str
    label: str
    table: str
    synonyms: tuple[str, ...] = ()


@dataclass(frozen=True)
class Pair:
    """Two dimensions a pair slice table splits metrics by at once, e.g. product × country.

    Attributes:
        dimensions: (first, second): the table's `dimension` and `second_dimension` (each pair is
            stored once, in this order).
        table: the pair slice table, e.g. "ecommerce_daily_pair_slices" (docs/packs.md).
    """

    dimensions: tuple[str, str]
    table: str


@dataclass(frozen=True)
class Metric:
    """One metric of a pack, as stored in the vertical's daily metric table.

    Attributes:
        name: its column in its table and `metric` in `metric_values`.
        label: how reports name it.
        unit: "currency", "count" or "ratio" (how values are formatted).
        up_is_good: whether a rise is good news (refunds and churn: no).
        can_be_negative: a net figure that can fall below zero (net sales, net new MRR); for every
            other metric a band below zero means nothing and reports show it from 0.
        sensitivity: the anomaly band's half-width in robust standard deviations.
        change_threshold: the week-over-week rule's relative change (0.3 = ±30%, the seed's rule);
            bursty metrics, whose weekly totals swing widely, set a larger one.
        dimensions: the pack dimensions that split this metric into parts adding up to the whole;
            drivers explain anomalies along them.
        pairs: the pairs of those dimensions that split it at once (questions "by country and
            product"), each one of the pack's `pairs`, in either order.
        ratio: for a ratio metric, its (numerator, denominator), each a signed sum of summed metrics
            written as text, e.g. ("gross_sales - discounts", "orders"); slices are then combined
            as sum(numerator) / sum(denominator), never by adding the ratios.
        stock: a level read at the end of the day (MRR, active customers), so a week's figure is
            its last day's, not a sum of days (a ratio of stocks, ARPA, sets it too).
        unit_value: what one unit of the metric is worth in money, for an anomaly's impact:
            (numerator, denominator) signed sums of the pack's summed metrics, each summed over
            the 28 days before the anomaly, e.g. ("net_sales", "units") for a unit sold. Counts
            without one take the pack's first currency ratio (AOV: an order, a customer; ARPA: a
            customer); currency metrics are money already.
        synonyms: other words people use for it, lower case ("revenue", "sales"); a word several
            metrics share ("churn") makes a question ask which one is meant.
        table: its dbt table in the `metrics` schema; empty for the pack's table (filled by `Pack`).
            Its definition is that column's description in the model's YAML (the manifest).
        watched: whether it has a value every day, so the anomaly scan, drivers and the weekly report
            follow it; False for metrics dated by a week's snapshot day or a cohort's month (RFM
            segments, cohort retention), which questions and `metric_values` still read.
        forecast_of: for a forecast, the pack metric whose coming days it forecasts (its rows of
            `insights.forecasts`, read through the view `metrics.forecast_metrics`); never watched,
            and read by questions from its own table, not `metric_values`: dbt builds that table
            before the insights stage writes the forecasts (docs/metrics.md, "Forecasts").
    """

    name: str
    label: str
    unit: str
    up_is_good: bool = True
    can_be_negative: bool = False
    sensitivity: float = 4.0  # anomalies.SENSITIVITY (the packs do not import the detector)
    change_threshold: float = 0.3
    dimensions: tuple[str, ...] = ()
    pairs: tuple[tuple[str, str], ...] = ()
    ratio: tuple[str, str] | None = None
    stock: bool = False
    unit_value: tuple[str, str] | None = None
    synonyms: tuple[str, ...] = ()
    table: str = ""
    watched: bool = True
    forecast_of: str = ""

    def __post_init__(self) -> None:
        if self.forecast_of and self.watched:
            raise ValueError(f"metric {self.name!r}: a forecast has no value every day to watch (watched=False)")
        if self.unit not in UNITS:
            raise ValueError(f"metric {self.name!r}: unit {self.unit!r} is not one of {', '.join(UNITS)}")
        if self.sensitivity <= 0:
            raise ValueError(f"metric {self.name!r}: sensitivity must be positive, not {self.sensitivity}")
        if self.change_threshold <= 0:
            raise ValueError(f"metric {self.name!r}: change_threshold must be positive, not {self.change_threshold}")
        if any(synonym != synonym.strip().lower() or not synonym for synonym in self.synonyms):
            raise ValueError(f"metric {self.name!r}: synonyms are lower case words, not {self.synonyms}")
        self.terms  # noqa: B018  (validates: raises ValueError for a ratio part that does not parse)
        if self.unit_value is not None:
            _terms(self.unit_value[0]), _terms(self.unit_value[1])

    @property
    def counts(self) -> bool:
        """Whether the metric counts events of a day (orders, churned subscriptions): the anomaly
        detector judges low counts with a count model. Levels (active customers) are not counts."""
        return self.unit == "count" and not self.stock and self.ratio is None

    def outcome(self, direction: str | None) -> str | None:
        """"good" or "bad" news for a move "up" or "down", from `up_is_good`: never from a value's sign."""
        if direction not in ("up", "down"):
            return None
        return "good" if (direction == "up") == self.up_is_good else "bad"

    @property
    def aggregation(self) -> str:
        """How days (and slices) add up: "sum" (flows), "last" (a stock's last day), or "ratio"
        (Σnumerator / Σdenominator, each part added up by its own aggregation)."""
        return "ratio" if self.ratio is not None else "last" if self.stock else "sum"

    @property
    def column(self) -> str:
        """Its column in `table`: its name."""
        return self.name

    @property
    def terms(self) -> tuple[tuple[tuple[str, int], ...], tuple[tuple[str, int], ...]] | None:
        """A ratio metric's numerator and denominator as (metric, sign) terms; None for a summed one."""
        return None if self.ratio is None else (_terms(self.ratio[0]), _terms(self.ratio[1]))

    @property
    def measures(self) -> tuple[str, ...]:
        """The summed metrics this metric is computed from: itself, or its ratio's parts."""
        if self.terms is None:
            return (self.name,)
        return tuple(dict.fromkeys(name for side in self.terms for name, _ in side))

    def ratio_parts(self, frame: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
        """A ratio metric's numerator and denominator, row by row, from a frame of its `measures`."""
        if self.ratio is None:
            raise ValueError(f"metric {self.name!r} is not a ratio")
        return signed_sum(self.ratio[0], frame), signed_sum(self.ratio[1], frame)

    def value(self, frame: pd.DataFrame) -> pd.Series:
        """The metric, row by row, from a frame of its `measures` (a ratio is NaN where its denominator is 0)."""
        if self.terms is None:
            return frame[self.name]
        numerator, denominator = self.ratio_parts(frame)
        return numerator / denominator.where(denominator != 0)


def signed_sum(side: str, frame: pd.DataFrame) -> pd.Series:
    """A signed sum of metrics written as text ("gross_sales - discounts"), row by row of `frame`."""
    return sum(sign * frame[name] for name, sign in _terms(side))


def _terms(side: str) -> tuple[tuple[str, int], ...]:
    """(("gross_sales", 1), ("discounts", -1)) from "gross_sales - discounts"."""
    if not SIGNED_SUM.fullmatch(side):
        raise ValueError(f"ratio part {side!r} is not a signed sum of metric names, e.g. 'a - b'")
    return tuple((name, -1 if sign == "-" else 1) for sign, name in TERM.findall(side))


@dataclass(frozen=True)
class Pack:
    """The metrics and dimensions of one vertical, e.g. ecommerce.

    Attributes:
        vertical: the `vertical` of workspaces that use this pack.
        table: the dbt metric table holding one row per workspace and day, the `table` of every
            metric that names none.
        dimensions: every dimension any metric can be sliced by.
        metrics: in the order reports show them.
        pairs: the pairs of dimensions a pair slice table splits metrics by at once.
        alert_budget: how many anomalies (events) per week reach the report and Slack, the most
            money at stake (times confidence) first; every anomaly stays in insights.anomalies.
    """

    vertical: str
    table: str
    dimensions: tuple[Dimension, ...]
    metrics: tuple[Metric, ...] = field(default=())
    alert_budget: int = 3
    pairs: tuple[Pair, ...] = ()

    def __post_init__(self) -> None:
        # Frozen, so the default table is filled in the one way a frozen dataclass allows.
        object.__setattr__(self, "metrics", tuple(
            metric if metric.table else replace(metric, table=self.table) for metric in self.metrics))
        known = {dimension.name for dimension in self.dimensions}
        names = [metric.name for metric in self.metrics]
        if len(set(names)) != len(names):
            raise ValueError(f"pack {self.vertical!r} lists a metric twice")
        for metric in self.metrics:
            unknown = set(metric.dimensions) - known
            if unknown:
                raise ValueError(f"pack {self.vertical!r}, metric {metric.name!r}: unknown dimensions {sorted(unknown)}")
            for pair in metric.pairs:
                if self.pair(*pair) is None or not set(pair) <= set(metric.dimensions):
                    raise ValueError(f"pack {self.vertical!r}, metric {metric.name!r}: pair {pair} must be one of "
                                     "the pack's pairs, of the metric's own dimensions")
            for part in metric.measures if metric.ratio else ():
                if part not in names or self.metric(part).ratio is not None:
                    raise ValueError(f"pack {self.vertical!r}, metric {metric.name!r}: ratio part {part!r} "
                                     "must be a summed metric of the pack")
            for side in metric.unit_value or ():
                for part, _ in _terms(side):
                    if part not in names or self.metric(part).ratio is not None:
                        raise ValueError(f"pack {self.vertical!r}, metric {metric.name!r}: unit_value part "
                                         f"{part!r} must be a metric of the pack that is not a ratio")
        for pair in self.pairs:
            if not set(pair.dimensions) <= known or pair.dimensions[0] == pair.dimensions[1]:
                raise ValueError(f"pack {self.vertical!r}: pair {pair.dimensions} must be two of its dimensions")
        for metric in self.metrics:
            for part in metric.measures if metric.ratio else ():
                for pair in metric.pairs:
                    if not self.splits(self.metric(part), set(pair)):
                        raise ValueError(f"pack {self.vertical!r}, metric {metric.name!r}: its part {part!r} "
                                         f"is not split by the pair {pair}")
        for metric in self.metrics:
            if metric.forecast_of and (metric.forecast_of not in names or self.metric(metric.forecast_of).forecast_of):
                raise ValueError(f"pack {self.vertical!r}, metric {metric.name!r}: forecast_of "
                                 f"{metric.forecast_of!r} must be a metric of the pack that is not a forecast")
        if self.alert_budget < 1:
            raise ValueError(f"pack {self.vertical!r}: alert_budget must be at least 1, not {self.alert_budget}")

    def metric(self, name: str) -> Metric:
        """The metric called `name`.

        Raises:
            LookupError: the pack has no such metric; the message lists those it has.
        """
        for metric in self.metrics:
            if metric.name == name:
                return metric
        raise LookupError(f"pack {self.vertical!r} has no metric {name!r}; it has {', '.join(self.metric_names)}")

    def dimension(self, name: str) -> Dimension:
        """The dimension called `name` (LookupError if the pack has none)."""
        for dimension in self.dimensions:
            if dimension.name == name:
                return dimension
        raise LookupError(f"pack {self.vertical!r} has no dimension {name!r}")

    def watched(self) -> Pack:
        """The pack as the anomaly scan, drivers and weekly reports see it: only its `watched`
        metrics, those with a value every day."""
        metrics = tuple(metric for metric in self.metrics if metric.watched)
        used = {name for metric in metrics for name in metric.dimensions}
        return replace(self, metrics=metrics, dimensions=tuple(d for d in self.dimensions if d.name in used),
                       pairs=tuple(pair for pair in self.pairs if set(pair.dimensions) <= used))

    def pair(self, first: str, second: str) -> Pair | None:
        """The pair slice table's declaration for these two dimensions, in either order (None: no table splits by both)."""
        return next((pair for pair in self.pairs if set(pair.dimensions) == {first, second} and first != second), None)

    def splits(self, metric: Metric, dimensions: set[str]) -> bool:
        """Whether `metric` splits by these dimensions at once (one of its dimensions, or one of its pairs)."""
        if len(dimensions) == 1:
            return dimensions <= set(metric.dimensions)
        return len(dimensions) == 2 and any(set(pair) == dimensions for pair in metric.pairs)

    def forecast(self, name: str) -> Metric | None:
        """The metric forecasting `name`'s coming days, None when none does (the first one the pack
        lists: the point forecast, before its interval's ends)."""
        return next((metric for metric in self.metrics if metric.forecast_of == name), None)

    @property
    def metric_names(self) -> tuple[str, ...]:
        return tuple(metric.name for metric in self.metrics)

    @property
    def tables(self) -> tuple[str, ...]:
        """The metric tables its metrics are stored in, the pack's own first."""
        return tuple(dict.fromkeys(metric.table for metric in self.metrics))

    @property
    def slice_tables(self) -> tuple[str, ...]:
        """The slice tables its dimensions come from."""
        return tuple(dict.fromkeys(dimension.table for dimension in self.dimensions))

    @property
    def pair_tables(self) -> tuple[str, ...]:
        """The pair slice tables its pairs come from."""
        return tuple(dict.fromkeys(pair.table for pair in self.pairs))

    def unit_value(self, metric: Metric) -> tuple[str, str] | None:
        """The (numerator, denominator) that value one unit of `metric` in money (see
        `Metric.unit_value`); None for currency metrics and for those with no way to value them."""
        if metric.unit_value is not None or metric.unit == "currency" or metric.ratio is not None:
            return metric.unit_value
        return next((m.ratio for m in self.metrics if m.ratio is not None and m.unit == "currency"), None)
