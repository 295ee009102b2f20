"""Report pictures: the trend chart and the retention curves as PNGs, and Unicode sparklines for text.

Figures are drawn on matplotlib's Agg canvas directly (no pyplot), so drawing never touches a
global backend or figure registry and is safe in threaded Dagster executors.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

SPARK_BLOCKS = "▁▂▃▄▅▆▇█"
GAP = " "  # a week with no value (e.g. a ratio whose denominator was 0)
CURRENT_WEEK_COLOUR = "#d9480f"
LINE_COLOUR = "#1c7ed6"


def sparkline(values: Sequence[float | None]) -> str:
    """Unicode bars, lowest value ▁ to highest █; missing values are spaces, a flat series sits mid-height."""
    present = [value for value in values if _present(value)]
    if not present:
        return GAP * len(values)
    low, high = min(present), max(present)
    bars = []
    for value in values:
        if not _present(value):
            bars.append(GAP)
        elif high == low:
            bars.append(SPARK_BLOCKS[len(SPARK_BLOCKS) // 2])
        else:
            bars.append(SPARK_BLOCKS[round((value - low) / (high - low) * (len(SPARK_BLOCKS) - 1))])
    return "".join(bars)


def spark_heights(values: Sequence[float | None], *, tallest: int = 16, lowest: int = 2) -> list[int | None]:
    """Bar heights in pixels for an HTML sparkline, on the same scale as `sparkline`."""
    present = [value for value in values if _present(value)]
    if not present:
        return [None] * len(values)
    low, high = min(present), max(present)
    span = high - low
    return [
        None if not _present(value) else
        (tallest + lowest) // 2 if span == 0 else
        round(lowest + (value - low) / span * (tallest - lowest))
        for value in values
    ]


def trend_chart(
    weeks: Sequence[str],
    panels: Sequence[tuple[str, Sequence[float | None], Callable[[float], str], bool]],
    *,
    title: str,
    ticks: Sequence[str] | None = None,
) -> bytes:
    """A PNG with one small line panel per headline metric over the given weeks.

    Args:
        weeks: ISO week labels, oldest first; the last is the report's week and is highlighted.
        panels: (label, weekly values aligned with `weeks`, tick formatter, whole) per metric; with
            `whole`, ticks fall on whole numbers (money and counts: no cents, no half orders).
        title: the figure's title.
        ticks: the x axis's labels (default: the week numbers, "W47"); periods other than weeks
            (an answer's days or months, docs/ask.md) pass their own.

    Returns:
        PNG bytes.
    """
    buffer = io.BytesIO()
    trend_figure(weeks, panels, title=title, ticks=ticks).savefig(buffer, format="png")
    return buffer.getvalue()


def trend_figure(
    weeks: Sequence[str],
    panels: Sequence[tuple[str, Sequence[float | None], Callable[[float], str], bool]],
    *,
    title: str,
    ticks: Sequence[str] | None = None,
) -> Figure:
    """The figure `trend_chart` draws (its ticks already placed and labelled)."""
    figure = Figure(figsize=(8, 2.3 * len(panels)), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(panels), 1, squeeze=False, sharex=True)[:, 0]
    positions = list(range(len(weeks)))
    for axis, (label, values, formatter, whole) in zip(axes, panels):
        points = [math.nan if not _present(value) else value for value in values]
        axis.plot(positions, points, color=LINE_COLOUR, marker="o", markersize=3, linewidth=1.5)
        if _present(points[-1]):
            axis.plot(positions[-1], points[-1], color=CURRENT_WEEK_COLOUR, marker="o", markersize=7)
        axis.set_title(label, loc="left", fontsize=10)
        if whole:
            axis.yaxis.set_major_locator(MaxNLocator(integer=True))
        axis.yaxis.set_major_formatter(FuncFormatter(lambda value, _position, fmt=formatter: fmt(value)))
        axis.grid(axis="y", alpha=0.3)
        axis.spines[["top", "right"]].set_visible(False)
    # Week numbers only ("W47") keep twelve ticks readable; the title carries the year.
    labels = list(ticks) if ticks is not None else [week.split("-")[-1] for week in weeks]
    if len(labels) > 16:  # at most some 16 labels, the last one always shown
        every = math.ceil(len(labels) / 16)
        labels = [label if (len(labels) - 1 - i) % every == 0 else "" for i, label in enumerate(labels)]
    axes[-1].set_xticks(positions, labels, fontsize=8)
    figure.suptitle(title, fontsize=11)
    # Places the ticks, so their labels can be read (and tested), without rasterizing: saving draws
    # the figure again anyway (the same pixels as after a full draw).
    figure.draw_without_rendering()
    return figure


def retention_chart(
    cohorts: dict[str, tuple[Sequence[int], Sequence[float]]],
    usual: tuple[Sequence[int], Sequence[float]],
    *,
    title: str,
    usual_label: str,
    x_label: str,
    percent: Callable[[float], str],
) -> bytes:
    """A PNG of retention curves: one thin line per cohort and a thick one for all cohorts together.

    Args:
        cohorts: cohort label → (months since joining, retention rate 0-1) of that cohort.
        usual: (months, rate) of all cohorts pooled.
        title: the figure's title.
        usual_label: the legend's name for the pooled curve.
        x_label: the x axis's name.
        percent: tick formatter for rates.
    """
    figure = Figure(figsize=(8, 4), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axis = figure.subplots()
    for label, (months, rates) in cohorts.items():
        axis.plot(months, rates, marker="o", markersize=2.5, linewidth=1, alpha=0.8, label=label)
    axis.plot(*usual, color="#212529", linewidth=2.5, label=usual_label)
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.yaxis.set_major_formatter(FuncFormatter(lambda value, _position: percent(value)))
    axis.set_xlabel(x_label)
    axis.set_ylim(bottom=0)
    axis.grid(axis="y", alpha=0.3)
    axis.spines[["top", "right"]].set_visible(False)
    axis.legend(fontsize=8, frameon=False, ncols=2)
    figure.suptitle(title, fontsize=11)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _present(value: float | None) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))
