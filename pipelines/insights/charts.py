"""Report pictures: the trend chart and the retention curves as PNGs, and Unicode sparklines for text.

Figures are drawn on matplotlib's Agg canvas directly (no pyplot), so drawing never touches a
global backend or figure registry and is safe in threaded Dagster executors.

A report's PNGs are kept where they were written with the key they were drawn from (`Kept`,
`CHART_KEYS`): a rerun whose chart has the same key reads the PNG back instead of drawing it again.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib import font_manager
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

SPARK_BLOCKS = "▁▂▃▄▅▆▇█"
GAP = " "  # a week with no value (e.g. a ratio whose denominator was 0)
CURRENT_WEEK_COLOUR = "#d9480f"
LINE_COLOUR = "#1c7ed6"
CHART_KEYS = ".charts.json"  # beside a report's PNGs: each one's key (`chart_key`) and its bytes' SHA-256
# The code a report chart's pixels come from besides its inputs: this module, the report's panels and
# titles, and the tick formats (`Wording`).
_DRAWING_CODE = ("charts.py", "reports.py", "wording.py")


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
        axis.yaxis.set_major_formatter(FuncFormatter(_remembered(formatter)))
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
    axis.yaxis.set_major_formatter(FuncFormatter(_remembered(percent)))
    axis.set_xlabel(x_label)
    axis.set_ylim(bottom=0)
    axis.grid(axis="y", alpha=0.3)
    axis.spines[["top", "right"]].set_visible(False)
    axis.legend(fontsize=8, frameon=False, ncols=2)
    figure.suptitle(title, fontsize=11)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _remembered(formatter: Callable[[float], str]) -> Callable[[float, int | None], str]:
    """`formatter` as a tick formatter that formats each value once: matplotlib formats every tick again
    at each of a figure's layout passes and draws (some 500 calls for a three-panel chart's few ticks)."""
    texts: dict[str, str] = {}

    def tick(value: float, _position: int | None = None) -> str:
        key = repr(value)  # not the value: -0.0 and 0.0 are one dict key
        if key not in texts:
            texts[key] = formatter(value)
        return texts[key]

    return tick


def _present(value: float | None) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def chart_key(kind: str, inputs: Any) -> str:
    """A digest of everything a chart's pixels depend on: its kind and inputs as drawn (JSON: labels,
    values, titles, the locale and currency its ticks are formatted in), the drawing code (`_DRAWING_CODE`),
    matplotlib's, Pillow's and Babel's versions, the default font and matplotlib's settings (rcParams)."""
    # rcParams as stored: reading them through the mapping validates each and resolves the backend
    # (importing pyplot), which drawing on an Agg canvas never needs; the backend is left out.
    settings = repr(sorted(((name, value) for name, value in dict.items(matplotlib.rcParams) if name != "backend"),
                           key=lambda item: item[0]))
    text = json.dumps([kind, inputs, _drawing_environment(), settings, font_manager.findfont(font_manager.FontProperties())],
                      ensure_ascii=False, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


@functools.cache
def _drawing_environment() -> list[str]:
    here = Path(__file__).parent
    code = hashlib.sha256(b"".join((here / name).read_bytes() for name in _DRAWING_CODE)).hexdigest()
    return [code, *(f"{package} {metadata.version(package)}" for package in ("matplotlib", "pillow", "babel"))]


class Kept:
    """The charts a report folder holds, read back when a chart's key is the one it was drawn from.

    `write_keys` (called after the PNGs are written) records each PNG's key and its bytes' SHA-256 in
    `CHART_KEYS`; `png` returns the file's bytes when the key matches and the file still has those bytes,
    and draws otherwise. A folder without the record (a report from before it, or none) draws everything.
    """

    def __init__(self, folder: str | os.PathLike[str] | None):
        self.folder = Path(folder) if folder is not None else None
        self._keys = self._read() if self.folder is not None else {}

    def png(self, name: str, key: str, draw: Callable[[], bytes]) -> bytes:
        """The PNG `name` drawn with `key`: the kept file's bytes if it was, else `draw()`."""
        entry = self._keys.get(name)
        if self.folder is not None and isinstance(entry, dict) and entry.get("key") == key:
            try:
                data = (self.folder / name).read_bytes()
            except OSError:
                data = None
            if data is not None and hashlib.sha256(data).hexdigest() == entry.get("sha256"):
                return data
        return draw()

    def _read(self) -> dict[str, Any]:
        try:
            found = json.loads((self.folder / CHART_KEYS).read_text())
        except (OSError, ValueError):
            return {}
        return found if isinstance(found, dict) else {}


def write_keys(folder: str | os.PathLike[str], pngs: Mapping[str, bytes], keys: Mapping[str, str]) -> None:
    """Record, in `folder`'s `CHART_KEYS`, the key and SHA-256 of each PNG just written there (the PNGs
    without a key are left out: drawn again next time). Written whole and renamed into place."""
    record = {name: {"key": keys[name], "sha256": hashlib.sha256(data).hexdigest()}
              for name, data in pngs.items() if name in keys}
    path = Path(folder) / CHART_KEYS
    partial = path.with_name(f"{CHART_KEYS}.partial")
    partial.write_text(json.dumps(record, indent=2, sort_keys=True))
    partial.replace(path)
