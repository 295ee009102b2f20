"""An answer's chart: a PNG of a series (a metric by day, week, month...), drawn like the weekly
report's trend chart (`pipelines.insights.charts`), one panel per metric, the latest period marked.

Only series get one: an answer by day, week, month, quarter or year with at least two periods and
no breakdown. `save` writes it as `<question_id>.png` in the workspace's chart folder; the CLI
shows that path and the API a URL (docs/ask.md, "Charts").
"""

from __future__ import annotations

import io
import re
from datetime import date
from pathlib import Path

from matplotlib.figure import Figure

from pipelines.ask.answer import GRAIN_LABELS, Answer
from pipelines.insights import charts
from pipelines.insights.wording import Wording
from pipelines.packs import pack_for
from pipelines.workspaces import Workspace

NAME = re.compile(r"[0-9a-f]{32}\.png")  # a chart's file name: its question's id
TICK_FORMATS = {"day": "%m-%d", "week": "%m-%d", "month": "%Y-%m", "quarter": "%Y-%m", "year": "%Y"}


def is_series(answer: Answer) -> bool:
    """Whether the answer is a series a chart shows: by a grain, no breakdown, two periods or more."""
    query = answer.query
    return (answer.status == "answered" and query is not None and query["grain"] != "total"
            and not query["dimensions"] and len(answer.values) >= 2)


def draw(answer: Answer, workspace: Workspace) -> bytes | None:
    """The answer's chart as PNG bytes, or None when it is no series."""
    drawn = figure(answer, workspace)
    if drawn is None:
        return None
    buffer = io.BytesIO()
    drawn.savefig(buffer, format="png")
    return buffer.getvalue()


def figure(answer: Answer, workspace: Workspace) -> Figure | None:
    """The answer's chart (the report's trend figure over its periods), or None when it is no series."""
    if not is_series(answer):
        return None
    pack = pack_for(workspace.vertical)
    wording = Wording(workspace.locale, workspace.currency)
    query = answer.query
    periods = [date.fromisoformat(row["period"]) for row in answer.values]
    panels = []
    for name in query["metrics"]:
        metric = pack.metric(name)
        panels.append((metric.label, [row.get(name) for row in answer.values],
                       lambda value, unit=metric.unit: wording.value(unit, value, whole=True), metric.unit != "ratio"))
    title = f"{workspace.name}: by {GRAIN_LABELS[query['grain']]}, {answer.citations.get('range', '')}"
    return charts.trend_figure([period.isoformat() for period in periods], panels, title=title,
                               ticks=[period.strftime(TICK_FORMATS[query["grain"]]) for period in periods])


def folder_of(home: Path) -> Path:
    """Where answers' charts are kept: one folder per workspace under it."""
    return home / "ask" / "charts"


def find(folder: Path, workspace_id: str, name: str) -> Path | None:
    """The chart file `name` of the workspace, if it exists (names are question ids, never paths)."""
    if not NAME.fullmatch(name) or not re.fullmatch(r"[A-Za-z0-9_.-]+", workspace_id) or workspace_id in (".", ".."):
        return None
    path = folder / workspace_id / name
    return path if path.is_file() else None


def save(answer: Answer, workspace: Workspace, folder: Path) -> Path | None:
    """Write the answer's chart to `folder/<workspace>/<question_id>.png`; None when it is no series."""
    png = draw(answer, workspace)
    if png is None or answer.question_id is None:
        return None
    path = folder / workspace.id / f"{answer.question_id}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)
    return path
