"""Vertical packs: the metrics each kind of business is watched on, and how to explain them.

A pack is the single list that detection, drivers and reports read; nothing else hard-codes a
metric. Adding a vertical means adding one module here that defines `PACK`, and listing it in
`PACKS` (see docs/packs.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pandas as pd

UNITS = ("currency", "count", "ratio")
TERM = re.compile(r"([+-]?)\s*([a-z_][a-z0-9_]*)")
SIGNED_SUM = re.compile(r"\s*[a-z_][a-z0-9_]*(\s*[+-]\s*[a-z_][a-z0-9_]*)*\s*")


@dataclass(frozen=True)
class Dimension:
    """A way to slice a metric, e.g. by product; `name` is the column in the slice tables."""

    name: str
    label: str


@dataclass(frozen=True)
class Metric:
    """One metric of a pack, as stored in the vertical's daily metric table.

    Attributes:
        name: column in `<vertical>_daily_metrics` and `metric` in `metric_values`.
        label: how reports name it.
        unit: "currency", "count" or "ratio" (how values are formatted).
        up_is_good: whether a rise is good news (refunds and churn: no).
        sensitivity: the anomaly band's half-width in robust standard deviations.
        change_threshold: the week-over-week rule's relative change (0.3 = ±30%, the seed's rule);
            bursty metrics, whose weekly totals swing widely, set a larger one.
        dimensions: the pack dimensions that split this metric into parts adding up to the whole;
            drivers explain anomalies along them.
        ratio: for a ratio metric, its (numerator, denominator), each a signed sum of summed metrics
            written as text, e.g. ("gross_sales - discounts", "orders"); slices are then combined
            as sum(numerator) / sum(denominator), never by adding the ratios.
        stock: a level read at the end of the day (MRR, active customers), so a week's figure is
            its last day's, not a sum of days.
    """

    name: str
    label: str
    unit: str
    up_is_good: bool = True
    sensitivity: float = 3.0
    change_threshold: float = 0.3
    dimensions: tuple[str, ...] = ()
    ratio: tuple[str, str] | None = None
    stock: bool = False

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise ValueError(f"metric {self.name!r}: unit {self.unit!r} is not one of {', '.join(UNITS)}")
        if self.sensitivity <= 0:
            raise ValueError(f"metric {self.name!r}: sensitivity must be positive, not {self.sensitivity}")
        if self.change_threshold <= 0:
            raise ValueError(f"metric {self.name!r}: change_threshold must be positive, not {self.change_threshold}")
        self.terms  # noqa: B018  (validates: raises ValueError for a ratio part that does not parse)

    @property
    def aggregation(self) -> str:
        """How slices combine into the whole: "sum", or "ratio" of two sums."""
        return "sum" if self.ratio is None else "ratio"

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
        if self.terms is None:
            raise ValueError(f"metric {self.name!r} is not a ratio")
        numerator, denominator = (sum(sign * frame[name] for name, sign in side) for side in self.terms)
        return numerator, denominator

    def value(self, frame: pd.DataFrame) -> pd.Series:
        """The metric, row by row, from a frame of its `measures` (a ratio is NaN where its denominator is 0)."""
        if self.terms is None:
            return frame[self.name]
        numerator, denominator = self.ratio_parts(frame)
        return numerator / denominator.where(denominator != 0)


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
        table: the dbt metric table holding one row per workspace and day.
        dimensions: every dimension any metric can be sliced by.
        metrics: in the order reports show them.
    """

    vertical: str
    table: str
    dimensions: tuple[Dimension, ...]
    metrics: tuple[Metric, ...] = field(default=())

    def __post_init__(self) -> None:
        known = {dimension.name for dimension in self.dimensions}
        names = [metric.name for metric in self.metrics]
        if len(set(names)) != len(names):
            raise ValueError(f"pack {self.vertical!r} lists a metric twice")
        for metric in self.metrics:
            unknown = set(metric.dimensions) - known
            if unknown:
                raise ValueError(f"pack {self.vertical!r}, metric {metric.name!r}: unknown dimensions {sorted(unknown)}")
            for part in metric.measures if metric.ratio else ():
                if part not in names or self.metric(part).ratio is not None:
                    raise ValueError(f"pack {self.vertical!r}, metric {metric.name!r}: ratio part {part!r} "
                                     "must be a summed metric of the pack")

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

    @property
    def metric_names(self) -> tuple[str, ...]:
        return tuple(metric.name for metric in self.metrics)


from pipelines.packs import ecommerce, saas  # noqa: E402  (the pack modules build on the classes above)

PACKS: dict[str, Pack] = {pack.vertical: pack for pack in (ecommerce.PACK, saas.PACK)}


def pack_for(vertical: str) -> Pack:
    """The pack of a vertical.

    Raises:
        LookupError: no pack for that vertical; the message names it and the verticals that exist.
    """
    if vertical not in PACKS:
        raise LookupError(f"no pack for vertical {vertical!r}; known verticals: {', '.join(sorted(PACKS))}")
    return PACKS[vertical]
