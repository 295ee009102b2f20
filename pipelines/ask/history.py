"""Questions asked, per workspace (`insights.questions`), and the questions suggested next.

`record` stores a question with its resolved query object and its answer under a conversation
(the CLI's, an API caller's, a Slack user's, a web session's); `recent` reads them back, newest
first; `previous_query` is the query a follow-up ("and the month before?") builds on: the last
answered question of the same conversation, not older than FOLLOW_UP_WINDOW. `suggestions`
offers questions from the pack (its headline metrics and their breakdowns) and from the
workspace's recent anomalies (insights.anomalies, with their top driver's dimension); every
suggestion is resolved first, so none of them fails when asked. docs/ask.md.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import openai
import pandas as pd
import psycopg2

from pipelines.ask import chart
from pipelines.ask.answer import Answer, today_in
from pipelines.ask.llm import ask_llm
from pipelines.ask.query import TIMEOUT_SECONDS, Query, Read, dimension_values
from pipelines.ask.resolve import Context, Resolved, is_follow_up, resolve, screen
from pipelines.packs import Pack, pack_for
from pipelines.settings import LlmSettings
from pipelines.warehouse import Warehouse
from pipelines.workspaces import Workspace

TABLE = "insights.questions"
# Created up front (not from the first row's types), so every column has its type from the start.
COLUMNS = {"question_id": "text primary key", "workspace_id": "text not null", "conversation": "text not null",
           "via": "text not null", "asked_at": "timestamp with time zone not null", "question": "text not null",
           "status": "text not null", "source": "text", "query": "text", "answer": "text", "chart": "text",
           "answer_json": "text"}
FOLLOW_UP_WINDOW = timedelta(hours=1)
ANOMALY_DAYS = 14  # anomalies suggested: those of the last two weeks
MAX_SUGGESTIONS = 8


@dataclass(frozen=True)
class Asked:
    """One stored question: what was asked, what it resolved to, what was answered."""

    question_id: str
    workspace_id: str
    conversation: str
    via: str
    asked_at: datetime
    question: str
    status: str
    source: str | None
    query: dict[str, Any] | None
    answer: str
    chart: str | None  # the series' PNG, when it has one

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"asked_at": self.asked_at.isoformat()}


@dataclass(frozen=True)
class Suggestion:
    """A question to offer: `source` is "pack" or "anomaly", `why` says why it is offered."""

    question: str
    source: str
    why: str


def converse(question: str, workspace: Workspace, warehouse: Warehouse, *, conversation: str, via: str,
             previous: Query | None = None, now: datetime | None = None, llm: LlmSettings | None = None,
             client: openai.OpenAI | None = None, charts: Path | None = None) -> Answer:
    """Answer `question` (with the LLM when `llm` has a key or `client` is given, else the resolver)
    and store it under `conversation`. A follow-up ("and the month before?") builds on `previous`
    when given, else on the conversation's last answered question. With `charts` (a folder), a
    series gets its PNG there (`answer.chart`: its path)."""
    if previous is None and screen(question, pack_for(workspace.vertical)) is None and is_follow_up(question):
        with warehouse.reader(timeout=TIMEOUT_SECONDS) as read:
            previous = previous_query(read, workspace.id, conversation, now=now)
    answer = ask_llm(question, workspace, warehouse, llm or LlmSettings(), client=client, now=now, previous=previous)
    answer.question_id = uuid.uuid4().hex
    if charts is not None and (path := chart.save(answer, workspace, charts)) is not None:
        answer.chart = str(path)
    record(warehouse, answer, conversation=conversation, via=via, asked_at=now)
    return answer


def create(warehouse: Warehouse) -> None:
    """Create insights.questions where it is missing."""
    columns = ", ".join(f'"{name}" {kind}' for name, kind in COLUMNS.items())
    statements = ["create schema if not exists insights", f"create table if not exists {TABLE} ({columns})"]
    if warehouse.kind == "postgres":  # concurrent "create ... if not exists" can collide there
        statements.insert(0, f"select pg_advisory_xact_lock(hashtext('{TABLE}'))")
    warehouse.query("; ".join([*statements, "select 1 as created"]))


def record(warehouse: Warehouse, answer: Answer, *, conversation: str, via: str,
           asked_at: datetime | None = None) -> str:
    """Store `answer` (its question, query and text) in insights.questions; returns its question_id."""
    create(warehouse)
    question_id = answer.question_id or uuid.uuid4().hex
    row = (question_id, answer.workspace_id, conversation, via, asked_at or datetime.now(timezone.utc),
           answer.question, answer.status, getattr(answer, "source", None),
           json.dumps(answer.query) if answer.query is not None else None, answer.text, answer.chart,
           answer.to_json())
    with warehouse.transaction() as sql:
        sql.execute(f"insert into {TABLE} ({', '.join(COLUMNS)}) values ({', '.join(['%s'] * len(COLUMNS))})", row)
    return question_id


def recent(warehouse: Warehouse, workspace_id: str, *, conversation: str | None = None,
           limit: int = 20) -> list[Asked]:
    """The workspace's stored questions, newest first (of one conversation, if given)."""
    if not warehouse.table_exists(TABLE):
        return []
    sql, params = f"select * from {TABLE} where workspace_id = %s", [workspace_id]
    if conversation is not None:
        sql += " and conversation = %s"
        params.append(conversation)
    sql += " order by asked_at desc, question_id limit %s"
    return [_asked(row) for row in warehouse.rows(sql, [*params, int(limit)])]


def previous_query(read: Read, workspace_id: str, conversation: str, *,
                   now: datetime | None = None) -> Query | None:
    """The query of the conversation's last answered question, if asked within FOLLOW_UP_WINDOW."""
    since = (now or datetime.now(timezone.utc)) - FOLLOW_UP_WINDOW
    try:
        found = read(f"select query from {TABLE} where workspace_id = %s and conversation = %s "
                     "and status = 'answered' and asked_at >= %s order by asked_at desc limit 1",
                     (workspace_id, conversation, since))
    except (duckdb.Error, psycopg2.Error):  # nothing stored yet: the table does not exist
        return None
    if found.empty or found["query"].iloc[0] is None:
        return None
    return Query.model_validate_json(found["query"].iloc[0])


def suggestions(warehouse: Warehouse, workspace: Workspace, *, now: datetime | None = None,
                limit: int = MAX_SUGGESTIONS) -> list[Suggestion]:
    """Questions to offer: the recent anomalies' first, then the pack's; each one resolves."""
    pack = pack_for(workspace.vertical)
    today = today_in(workspace, now)
    with warehouse.reader() as read:
        context = Context(pack=pack, timezone=workspace.timezone, today=today,
                          country=workspace.holiday_country, values=dimension_values(read, pack, workspace.id))
        offered = _from_anomalies(read, pack, workspace.id, today) + [(s, None) for s in _from_pack(pack)]
    kept, seen = [], set()
    for suggestion, metric in offered:
        resolved = resolve(suggestion.question, context)
        if (suggestion.question.lower() not in seen and isinstance(resolved, Resolved)
                and (metric is None or resolved.query.metrics == (metric,))):
            seen.add(suggestion.question.lower())
            kept.append(suggestion)
    return kept[:limit]


def _from_pack(pack: Pack) -> list[Suggestion]:
    """The pack's first metrics: last week against the week before, the top values of their first
    dimension, the trend, the month against last year."""
    first, second = pack.metrics[0], pack.metrics[1 if pack.vertical == "ecommerce" else 2]
    dimension = pack.dimension(first.dimensions[0]) if first.dimensions else None
    questions = [f"{first.label} last week vs the week before"]
    if dimension is not None:
        questions.append(f"Top 5 {dimension.label}s by {first.label} last month")
    questions += [f"{second.label} by week over the last 3 months",
                  f"{first.label} this month vs the same period last year"]
    for metric in pack.metrics[1:]:
        if metric.dimensions and metric.dimensions[0] != (dimension.name if dimension else None):
            questions.append(f"{metric.label} by {pack.dimension(metric.dimensions[0]).label} last month")
            break
    return [Suggestion(question, "pack", "a headline metric of " + pack.vertical) for question in questions]


def _from_anomalies(read: Read, pack: Pack, workspace_id: str, today: date) -> list[tuple[Suggestion, str]]:
    """One question per metric and day of the recent reported anomalies: the metric that day
    against the same weekday a week before, broken down by its top driver's dimension; with the
    metric it must resolve to."""
    try:
        found = read("select a.metric, a.date, a.direction, d.dimension from insights.anomalies as a "
                     "left join insights.anomaly_drivers as d on d.anomaly_id = a.anomaly_id and d.rank = 1 "
                     "where a.workspace_id = %s and a.reported and a.date >= %s "
                     "order by a.date desc, a.event_rank, a.metric",
                     (workspace_id, today - timedelta(days=ANOMALY_DAYS)))
    except (duckdb.Error, psycopg2.Error):  # no anomaly scan yet
        return []
    chosen: dict[tuple[str, date], tuple[str, str | None]] = {}  # one per metric and day, with a driver if any
    for metric, day, direction, dimension in found.itertuples(index=False):
        if metric not in pack.metric_names:
            continue
        key = (metric, pd.Timestamp(day).date())
        driver = dimension if isinstance(dimension, str) and dimension in pack.metric(metric).dimensions else None
        if key not in chosen or (chosen[key][1] is None and driver is not None):
            chosen[key] = (direction, driver)
    offered = []
    for (metric, day), (direction, driver) in chosen.items():
        label = pack.metric(metric).label
        split = f" by {pack.dimension(driver).label}" if driver else ""
        offered.append((Suggestion(f"{label}{split} on {day.isoformat()} vs {(day - timedelta(days=7)).isoformat()}",
                                   "anomaly", f"{label} went {direction} unusually on {day.isoformat()}"), metric))
    return offered


def _asked(row: dict[str, Any]) -> Asked:
    asked_at = pd.Timestamp(row["asked_at"])
    asked_at = asked_at.tz_localize("UTC") if asked_at.tzinfo is None else asked_at.tz_convert("UTC")
    return Asked(question_id=row["question_id"], workspace_id=row["workspace_id"], conversation=row["conversation"],
                 via=row["via"], asked_at=asked_at.to_pydatetime(), question=row["question"], status=row["status"],
                 source=row["source"], query=json.loads(row["query"]) if row["query"] else None,
                 answer=row["answer"] or "", chart=row["chart"])
