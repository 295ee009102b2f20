"""Answers: a resolved question run against the metric tables, as a sentence, a table and citations.

`ask` is the one entry point the CLI (and the HTTP API) call: the workspace comes from the caller,
the question resolves without an LLM (`resolve`), the query compiles to parameterized SQL over the
`metrics` tables and runs read-only with a timeout. Every answer cites the metrics' definitions
(their column descriptions in the dbt models), the resolved range and timezone, the tables read,
the last day with data and the last successful sync of each source. docs/ask.md.
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timezone
from typing import Any

import duckdb
import pandas as pd
import psycopg2

from pipelines.ask.query import (TIMEOUT_SECONDS, Query, Range, Read, compile_query, dimension_values, evaluate,
                                 keys, long_form)
from pipelines.ask.resolve import Clarify, Context, Refused, Resolved, Unsupported, resolve, screen
from pipelines.insights.wording import Wording
from pipelines.packs import Pack, pack_for
from pipelines.warehouse import Warehouse
from pipelines.workspaces import Workspace

GRAIN_LABELS = {"day": "day", "week": "week starting", "month": "month", "quarter": "quarter", "year": "year"}


@dataclass
class Answer:
    """What a question gets back. `status`: "answered", "clarify", "unsupported" or "refused"."""

    question: str
    workspace_id: str
    status: str
    text: str
    query: dict[str, Any] | None = None
    columns: list[str] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)  # display strings, as the table shows them
    values: list[dict[str, Any]] = field(default_factory=list)  # the numbers behind the rows
    options: list[str] = field(default_factory=list)  # metrics to choose from (clarify) or offered instead
    citations: dict[str, Any] = field(default_factory=dict)
    source: str = "resolver"  # who read the question: "resolver" (the grammar) or "llm" (tool calls)
    chart: str | None = None  # a series' PNG: a file path (CLI) or a URL (API)
    question_id: str | None = None  # its row in insights.questions, once stored
    llm: dict[str, Any] | None = None  # the LLM's part: model, tool calls, why its reply was not used

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=str, indent=2)

    def to_text(self) -> str:
        """The sentence, the table and the citations, for a terminal."""
        lines = [self.text]
        if self.columns:
            widths = [max(len(str(cell)) for cell in column) for column in zip(self.columns, *self.rows)]
            lines += ["", "  ".join(str(c).ljust(w) for c, w in zip(self.columns, widths)),
                      "  ".join("-" * w for w in widths)]
            lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in self.rows]
        if self.options and self.status == "clarify":
            lines += ["", "Options: " + ", ".join(self.options)]
        if self.chart:
            lines += ["", f"Chart: {self.chart}"]
        cited = self.citations
        if cited:
            lines += [""]
            lines += [f"{name}: {text}" for name, text in cited.get("definitions", {}).items()]
            lines += [f"Range: {cited['range']} ({cited['timezone']})"]
            if cited.get("comparison"):
                lines += [f"Compared with: {cited['comparison']}"]
            lines += [f"Tables read: {', '.join(cited['tables'])}",
                      f"Data through: {cited.get('data_through') or 'no data'}",
                      "Last sync: " + (", ".join(f"{source} {when or 'never'}"
                                                 for source, when in cited["last_sync"].items()) or "none")]
        return "\n".join(lines)


def ask(question: str, workspace: Workspace, warehouse: Warehouse, *, now: datetime | None = None,
        previous: Query | None = None) -> Answer:
    """Answer `question` for `workspace` (the caller's, never one the question names); `previous`
    is the query of the question before, for a follow-up ("and the month before?")."""
    pack = pack_for(workspace.vertical)
    base = {"question": question, "workspace_id": workspace.id}
    resolution = screen(question, pack)  # refusals read nothing
    if resolution is not None:
        return Answer(**base, status="refused" if isinstance(resolution, Refused) else "unsupported",
                      text=resolution.message)
    with warehouse.reader(timeout=TIMEOUT_SECONDS) as read:
        return answer_question(question, context_for(workspace, pack, read, now), workspace, read, previous)


def context_for(workspace: Workspace, pack: Pack, read: Read, now: datetime | None = None) -> Context:
    """What questions of `workspace` resolve against: its pack, timezone, today, dimension values."""
    return Context(pack=pack, timezone=workspace.timezone, today=today_in(workspace, now),
                   country=workspace.holiday_country, values=dimension_values(read, pack, workspace.id))


def answer_question(question: str, context: Context, workspace: Workspace, read: Read,
                    previous: Query | None = None) -> Answer:
    """The resolver's answer: the query's, a clarifying question, an unsupported notice or a refusal."""
    base = {"question": question, "workspace_id": workspace.id}
    resolution = resolve(question, context, previous)
    if isinstance(resolution, Refused):
        return Answer(**base, status="refused", text=resolution.message)
    if isinstance(resolution, Clarify):
        return Answer(**base, status="clarify", text=resolution.message, options=list(resolution.options))
    if isinstance(resolution, Unsupported):
        return Answer(**base, status="unsupported", text=resolution.message, options=list(resolution.nearest))
    assert isinstance(resolution, Resolved)
    return answer_query(resolution.query, context.pack, workspace, read, question=question)


def answer_query(query: Query, pack: Pack, workspace: Workspace, read: Read, *, question: str = "") -> Answer:
    """Run a validated query and say what it found (the sentence, the table, the citations)."""
    wording = Wording(workspace.locale, workspace.currency)
    rows = evaluate(query, pack, read, workspace.id)
    before = None
    if query.comparison is not None:
        before = evaluate(query, pack, read, workspace.id, query.comparison.range, grain="total")
    if query.dimensions and before is not None and query.grain == "total":
        rows = _with_compared_values(rows, before, query, pack)
    if query.dimensions:
        rows = rows.sort_values(query.metrics[0], ascending=query.order == "asc", na_position="last",
                                kind="stable").head(query.limit)
    else:  # a series keeps every period of its range (three years of days at most): `limit` is a breakdown's
        rows = rows.sort_values("period", kind="stable").head(len(rows) if query.grain != "total" else 1)
    citations = _citations(query, pack, workspace, read)
    answer = Answer(question=question, workspace_id=workspace.id, status="answered",
                    text=_sentence(query, pack, rows, before, wording, citations),
                    query=query.model_dump(mode="json"), citations=citations)
    answer.columns, answer.rows, answer.values = _table(query, pack, rows, before, wording)
    return answer


def _with_compared_values(rows: pd.DataFrame, before: pd.DataFrame, query: Query, pack: Pack) -> pd.DataFrame:
    """A breakdown's rows plus the values only the compared period has: there, a summed metric or a
    level is 0 (the slice tables leave zero slices out), a ratio has nothing to divide."""
    keyed = keys(query)
    missing = sorted(set(before[keyed].itertuples(index=False, name=None))
                     - set(rows[keyed].itertuples(index=False, name=None)))
    if not missing:
        return rows
    added = pd.DataFrame(missing, columns=keyed)
    added.insert(0, "period", query.range.start)
    for name in query.metrics:
        added[name] = float("nan") if pack.metric(name).ratio is not None else 0.0
    return pd.concat([rows, added], ignore_index=True) if len(rows) else added


def _range_text(span: Range) -> str:
    if span.start == span.end:
        text = f"on {span.start.isoformat()}"
    else:
        text = f"from {span.start.isoformat()} to {span.end.isoformat()}"
    return text + (" (to date: today is still under way)" if span.partial else "")


def _sentence(query: Query, pack: Pack, rows: pd.DataFrame, before: pd.DataFrame | None, wording: Wording,
              citations: dict[str, Any]) -> str:
    where = _range_text(query.range)
    if query.filters:
        where += " for " + " and ".join(f"{pack.dimension(f.dimension).label} {', '.join(f.values)}"
                                        for f in query.filters)
    if rows.empty:
        return f"There is no data {where} (data through {citations.get('data_through') or 'no day yet'})."
    parts = []
    for name in query.metrics:
        metric = pack.metric(name)
        values = rows[name]
        if query.dimensions:
            dimension = " and ".join(pack.dimension(d).label for d in query.dimensions)
            listed = ", ".join(f"{_key_text(row, query)} {wording.value(metric.unit, row[name])}"
                               for _, row in rows.head(3).iterrows())
            way = "lowest" if query.order == "asc" else "highest"
            against = f" (the table compares each with {_range_text(query.comparison.range)})" \
                if before is not None else ""
            parts.append(f"{metric.label} by {dimension} {where}, {way} first: {listed}{against}")
        elif query.grain != "total":
            peak = rows.loc[values.idxmax()] if values.notna().any() else None
            latest = wording.value(metric.unit, values.iloc[-1])
            summary = f"{metric.label} by {query.grain} {where}: {len(rows)} {query.grain}s, latest {latest}"
            if peak is not None:
                summary += f", highest {wording.value(metric.unit, peak[name])} ({GRAIN_LABELS[query.grain]} " \
                           f"{peak['period'].isoformat()})"
            whole = values.sum() if metric.aggregation == "sum" else values.iloc[-1]
            if metric.aggregation == "sum":
                summary += f", in all {wording.value(metric.unit, whole)}"
            if before is not None and len(before):  # the whole period against the one compared with
                summary += f" ({_change(whole, before[name].iloc[0], metric.unit, wording)} " \
                           f"{_range_text(query.comparison.range)})"
            parts.append(summary)
        else:
            value = values.iloc[0]
            stock = ", at the end of the period" if _level(metric, pack) else ""
            text = f"{metric.label} {where}{stock}: {wording.value(metric.unit, value)}"
            if before is not None and len(before):
                previous = before[name].iloc[0]
                text += f", {_change(value, previous, metric.unit, wording)} {_range_text(query.comparison.range)}"
            parts.append(text)
    through = citations.get("data_through")
    late = f" Data runs through {through} only." if through and through < query.range.end.isoformat() else ""
    return "; ".join(parts) + "." + late


def _level(metric, pack: Pack) -> bool:
    """Whether a period's figure is its last day's: a stock, or a ratio of stocks (ARPA, churn rates)."""
    return metric.stock or metric.ratio is not None and all(pack.metric(part).stock for part in metric.measures)


def _change(value: float, previous: float, unit: str, wording: Wording) -> str:
    """"up 4.2% against $1,000.00"; ratios move in percentage points."""
    if pd.isna(previous) or pd.isna(value):
        return "with nothing to compare with"
    shown = wording.value(unit, previous)
    if value == previous:
        return f"unchanged against {shown}"
    way = "up" if value > previous else "down"
    if unit == "ratio":
        return f"{way} {wording.number(abs(value - previous) * 100, 1)} points against {shown}"
    if previous == 0:
        return f"{way} from {shown}"
    return f"{way} {wording.percent(abs(value - previous) / abs(previous))} against {shown}"


def _table(query: Query, pack: Pack, rows: pd.DataFrame, before: pd.DataFrame | None,
           wording: Wording) -> tuple[list[str], list[list[Any]], list[dict[str, Any]]]:
    columns: list[str] = []
    if query.grain != "total":
        columns.append(GRAIN_LABELS[query.grain])
    columns += [pack.dimension(name).label for name in query.dimensions]
    columns += [pack.metric(name).label for name in query.metrics]
    # the comparison period's figures beside each row: the total's, or each dimension value's
    compared = before is not None and query.grain == "total"
    earlier = {} if not compared else (
        {_key(row, query): row for _, row in before.iterrows()} if query.dimensions else
        {None: before.iloc[0]} if len(before) else {})
    if compared:
        columns += [f"{pack.metric(name).label} ({_range_text(query.comparison.range)})" for name in query.metrics]
    shown, values = [], []
    for _, row in rows.iterrows():
        cells: list[Any] = []
        if query.grain != "total":
            cells.append(row["period"].isoformat())
        cells += list(_key(row, query) or ())
        cells += [wording.value(pack.metric(name).unit, None if pd.isna(row[name]) else row[name])
                  for name in query.metrics]
        record = {key: (row[key].isoformat() if key == "period" else row[key]) for key in rows.columns}
        if compared:
            then = earlier.get(_key(row, query))
            figures = {name: None if then is None or pd.isna(then[name]) else float(then[name])
                       for name in query.metrics}
            cells += [wording.value(pack.metric(name).unit, figures[name]) for name in query.metrics]
            record["compared"] = figures
        shown.append(cells)
        values.append({key: (None if isinstance(value, float) and pd.isna(value) else value)
                       for key, value in record.items()})
    return columns, shown, values


def _key(row: pd.Series, query: Query) -> tuple[str, ...] | None:
    """A breakdown row's dimension values, in the query's order (None without a breakdown)."""
    return tuple(row[key] for key in keys(query)) or None


def _key_text(row: pd.Series, query: Query) -> str:
    """"DE" for one dimension, "DE · Tee" for two."""
    return " · ".join(str(value) for value in _key(row, query) or ())


def _citations(query: Query, pack: Pack, workspace: Workspace, read: Read) -> dict[str, Any]:
    """Definitions, range, timezone, tables read, last day with data and last sync per source."""
    days, read_from = long_form(query.metrics, pack)  # a forecast's data runs through its last day forecast
    tables = {s.table for s in compile_query(query, pack, workspace.id)} | set(read_from)
    through = read(f"select max(date) as data_through from {days} as days where workspace_id = %s "
                   f"and metric in ({', '.join(['%s'] * len(query.metrics))})",
                   (workspace.id, *query.metrics))["data_through"].iloc[0]
    return {
        "definitions": {pack.metric(name).label: definition(pack, name) for name in query.metrics},
        "range": _range_text(query.range),
        "comparison": _range_text(query.comparison.range) if query.comparison else None,
        "timezone": workspace.timezone,
        "tables": sorted(tables),
        "data_through": None if pd.isna(through) else pd.Timestamp(through).date().isoformat(),
        "last_sync": last_syncs(read, workspace),
    }


def definition(pack: Pack, name: str) -> str:
    """A metric's definition: its column's description in the dbt model's YAML (the manifest)."""
    metric = pack.metric(name)
    described = _descriptions().get((metric.table, metric.column), "")
    return " ".join(described.split()) or f"{metric.label} (docs/metrics.md)"


@functools.cache
def _descriptions() -> dict[tuple[str, str], str]:
    from pipelines.transform import manifest_path

    path = manifest_path()
    if not path.exists():
        return {}
    manifest = json.loads(path.read_text())
    return {(node["name"], column["name"]): column.get("description") or ""
            for node in manifest["nodes"].values() if node["resource_type"] == "model"
            for column in node["columns"].values()}


def last_syncs(read: Read, workspace: Workspace) -> dict[str, str | None]:
    """Each connector's last successful load for the workspace (dlt's `_dlt_loads`, by pipeline)."""
    from pipelines.ingest.pipeline import pipeline_name

    found: dict[str, str | None] = {}
    for source in workspace.connectors:
        try:
            synced = read(f"select max(loads.inserted_at) as synced from {source}._dlt_loads as loads "
                          f"inner join {source}._dlt_pipeline_state as state on state._dlt_load_id = loads.load_id "
                          "where loads.status = 0 and state.pipeline_name = %s",
                          (pipeline_name(source, workspace.id),))["synced"].iloc[0]
        except (duckdb.Error, psycopg2.Error):  # no load yet: the tables do not exist
            synced = None
        found[source] = None if synced is None or pd.isna(synced) else pd.Timestamp(synced).isoformat()
    return found


def today_in(workspace: Workspace, now: datetime | None = None) -> date:
    """The workspace's local date."""
    return (now or datetime.now(timezone.utc)).astimezone(workspace.tz).date()
