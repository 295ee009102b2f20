"""Questions read by an LLM through tool calls over the same query object; the resolver stays the fallback.

The model (any OpenAI-compatible endpoint, `LlmSettings` as the report summaries use) gets five
tools with strict JSON schemas: `list_metrics`, `list_dimensions`, `search_dimension_values`,
`resolve_time_phrase` (the resolver's grammar) and `query_metrics`, which takes the query object's
fields (never SQL text, never a workspace: the caller's is the only one) and returns the table the
templated answer shows. Its reply is used only when every number in it appears in the tool
results (`summaries.check_numbers`); otherwise the answer is the templated one for the model's
query. Refusals are decided before the model is asked, by the resolver's screen. Without a key,
on any failed call, when no query ran, or when the model misuses a tool (arguments outside the
schema, SQL or personal data asked for, another workspace), the answer is the resolver's.
docs/ask.md, "With an LLM".
"""

from __future__ import annotations

import json
import re
import time
from datetime import date, datetime, timedelta
from typing import Any, Literal

import openai
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipelines.ask.answer import Answer, answer_query, answer_question, ask, context_for, definition
from pipelines.ask.periods import Period, PeriodError, find_period
from pipelines.ask.query import MAX_ROWS, TIMEOUT_SECONDS, Comparison, Filter, Query, QueryError, Range, Read, check
from pipelines.ask.resolve import HOSTILE, Context, period_of, screen
from pipelines.insights.forecast_horizon import HORIZON_DAYS
from pipelines.insights.summaries import INVISIBLE, MARKUP, OPENAI_BASE_URL, check_numbers
from pipelines.packs import pack_for
from pipelines.settings import LlmSettings
from pipelines.warehouse import Warehouse
from pipelines.workspaces import Workspace

MAX_ROUNDS = 6  # model turns: a few look-ups, one query, the reply
MAX_COMPLETION_TOKENS = 500
MAX_REPLY_CHARACTERS = 1_200
MAX_SEARCH_RESULTS = 20

SYSTEM_PROMPT = """\
You answer a business owner's question about their {vertical} business's metrics.
Today is {today} in the business's timezone ({timezone}); amounts are in {currency}.
Use the tools: list_metrics and list_dimensions to find what the question is about,
search_dimension_values for a product, country or plan it names, resolve_time_phrase for its dates,
then call query_metrics once with the query. Then answer in one to three plain sentences:
- copy every number exactly as the query's result shows it; never compute, convert or round one;
- no Markdown, no links.
Forecast metrics (their names end in _forecast...) cover the days to come, from today up to 13 weeks
ahead; query them alone, without a comparison.
If the question is ambiguous, or no metric measures it, say so in one sentence without calling
query_metrics. There is no tool for other businesses, raw tables, SQL or customers' personal data.
"""
FOLLOW_UP_PROMPT = """\
The question before was answered with this query; a follow-up ("and the month before?", "break that
down by country") keeps what it does not change: {query}
"""


class ToolMisuse(ValueError):
    """A tool call the model should never make: outside the schema, SQL text, personal data."""


class ComparisonArguments(BaseModel):
    """`range` compares with `start`..`end`; the other kinds compute their period (leave them null)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["previous_period", "same_period_last_year", "range"]
    start: date | None
    end: date | None


class FilterArguments(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dimension: str
    values: list[str] = Field(min_length=1, max_length=20)


class QueryArguments(BaseModel):
    """query_metrics' arguments: the query object without the workspace and the timezone (the caller's)."""

    model_config = ConfigDict(extra="forbid")
    metrics: list[str] = Field(min_length=1, max_length=4)
    dimensions: list[str] = Field(max_length=2)
    start: date
    end: date
    grain: Literal["total", "day", "week", "month", "quarter", "year"]
    filters: list[FilterArguments]
    comparison: ComparisonArguments | None
    order: Literal["desc", "asc"]
    limit: int = Field(ge=1, le=MAX_ROWS)


class SearchArguments(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dimension: str
    text: str = Field(max_length=100)


class PhraseArguments(BaseModel):
    model_config = ConfigDict(extra="forbid")
    phrase: str = Field(max_length=100)


class NoArguments(BaseModel):
    model_config = ConfigDict(extra="forbid")


ARGUMENTS: dict[str, type[BaseModel]] = {
    "list_metrics": NoArguments, "list_dimensions": NoArguments, "search_dimension_values": SearchArguments,
    "resolve_time_phrase": PhraseArguments, "query_metrics": QueryArguments}
DESCRIPTIONS = {
    "list_metrics": "The metrics of this business: name, label, unit, how days add up, the dimensions "
                    "each splits by, synonyms and definition.",
    "list_dimensions": "The dimensions metrics split by, with the metrics each applies to.",
    "search_dimension_values": "The values of a dimension (products, countries, plans...) containing the "
                               "text, case-insensitive; empty text lists them.",
    "resolve_time_phrase": "The days a time phrase covers (e.g. 'last week', 'Q3 2026', 'Black Friday'), "
                           "both included, and whether the period is still under way.",
    "query_metrics": "Run a query over the metric tables: 1-4 metrics, 0-2 dimensions to break down by, "
                     "the days from start to end (both included), the grain, filters on dimension values, "
                     "an optional comparison, order and limit (at most 50 rows). Returns the answer's table.",
}


def tool_schemas(context: Context) -> list[dict[str, Any]]:
    """The tools as the chat API takes them, strict: every property required, nothing else allowed,
    metrics and dimensions named from the workspace's pack."""
    pack = context.pack
    enums = {"metrics": list(pack.metric_names), "dimensions": [d.name for d in pack.dimensions],
             "dimension": [d.name for d in pack.dimensions]}
    tools = []
    for name, model in ARGUMENTS.items():
        schema = _strict(model.model_json_schema(), enums)
        tools.append({"type": "function", "function": {"name": name, "description": DESCRIPTIONS[name],
                                                       "strict": True, "parameters": schema}})
    return tools


# Left out of the schemas sent: titles, defaults and descriptions add nothing; numeric and length
# bounds are outside the subset every strict-schema API accepts. The pydantic models still enforce them.
DROPPED_KEYWORDS = {"title", "default", "description", "minItems", "maxItems", "minimum", "maximum", "minLength",
                    "maxLength"}


def _strict(schema: dict[str, Any], enums: dict[str, list[str]]) -> dict[str, Any]:
    """Pydantic's JSON schema made strict (OpenAI's structured outputs): definitions inlined,
    objects closed with every property required, no titles, defaults or bounds; the pack's names
    as enums."""
    definitions = schema.pop("$defs", {})

    def walk(node: Any, key: str | None = None) -> Any:
        if isinstance(node, list):
            return [walk(item, key) for item in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            return walk(definitions[node["$ref"].rsplit("/", 1)[-1]], key)
        node = {name: ({prop: walk(sub, prop) for prop, sub in value.items()} if name == "properties"
                       else walk(value, key))
                for name, value in node.items() if name not in DROPPED_KEYWORDS}
        if node.get("type") == "object":
            node["additionalProperties"] = False
            node["required"] = list(node.get("properties", {}))
            node.setdefault("properties", {})
        if key in enums:
            target = node.get("items", node) if node.get("type") == "array" else node
            if target.get("type") == "string":
                target["enum"] = enums[key]
        return node

    return walk(schema)


class Tools:
    """Runs the model's tool calls for one question of one workspace; keeps what they returned."""

    def __init__(self, context: Context, workspace: Workspace, read: Read, question: str):
        self.context, self.workspace, self.read, self.question = context, workspace, read, question
        self.results: list[dict[str, Any]] = []  # every result the model saw: what its numbers must match
        self.misuse: list[str] = []
        self.answer: Answer | None = None  # the templated answer of the last query that ran
        self.calls: list[str] = []

    def run(self, name: str, arguments: str) -> dict[str, Any]:
        """The result of one call, or {"error": ...}; a misuse is remembered and its call not run."""
        self.calls.append(name[:64])
        try:
            if name not in ARGUMENTS:
                raise ToolMisuse(f"there is no tool {name!r}")
            try:
                raw = json.loads(arguments or "{}")
            except json.JSONDecodeError:
                raise ToolMisuse(f"{name}: the arguments are not JSON") from None
            _no_sql(raw)
            try:
                parsed = ARGUMENTS[name].model_validate(raw)
            except ValidationError as exc:
                raise ToolMisuse(f"{name}: {exc.errors()[0]['msg']} at "
                                 f"{'.'.join(map(str, exc.errors()[0]['loc'])) or 'the top'}") from None
            result = getattr(self, name)(parsed)
        except ToolMisuse as exc:
            self.misuse.append(str(exc))
            return {"error": f"refused: {exc}"}
        except (QueryError, PeriodError, ValueError) as exc:  # a fair question the data cannot answer
            result = {"error": str(exc)}
        self.results.append(result)
        return result

    def list_metrics(self, _: NoArguments) -> dict[str, Any]:
        pack = self.context.pack
        return {"metrics": [{"name": m.name, "label": m.label, "unit": m.unit, "aggregation": m.aggregation,
                             "dimensions": list(m.dimensions), "dimension_pairs": [list(pair) for pair in m.pairs],
                             "synonyms": list(m.synonyms), "definition": definition(pack, m.name)}
                            for m in pack.metrics]}

    def list_dimensions(self, _: NoArguments) -> dict[str, Any]:
        pack = self.context.pack
        return {"dimensions": [{"name": d.name, "label": d.label, "synonyms": list(d.synonyms),
                                "metrics": [m.name for m in pack.metrics if d.name in m.dimensions]}
                               for d in pack.dimensions]}

    def search_dimension_values(self, asked: SearchArguments) -> dict[str, Any]:
        if asked.dimension not in {d.name for d in self.context.pack.dimensions}:
            raise ToolMisuse(f"there is no dimension {asked.dimension!r}")
        text = asked.text.strip().lower()
        found = sorted(v for v in self.context.values.get(asked.dimension, set()) if text in v.lower())
        return {"dimension": asked.dimension, "values": found[:MAX_SEARCH_RESULTS],
                "more": len(found) > MAX_SEARCH_RESULTS}

    def resolve_time_phrase(self, asked: PhraseArguments) -> dict[str, Any]:
        found = find_period(" " + asked.phrase.lower() + " ", self.context.today, self.context.country)
        if found is None:
            return {"error": f"no time phrase I know in {asked.phrase!r}"}
        period = found[0]
        return {"phrase": asked.phrase, "start": period.start.isoformat(), "end": period.end.isoformat(),
                "partial": period.partial, "kind": period.kind}

    def query_metrics(self, asked: QueryArguments) -> dict[str, Any]:
        pack = self.context.pack
        dimensions = {d.name for d in pack.dimensions}
        outside = [name for name in asked.metrics if name not in pack.metric_names] + [
            name for name in [*asked.dimensions, *(f.dimension for f in asked.filters)] if name not in dimensions]
        if outside:  # the strict schema names every metric and dimension there is
            raise ToolMisuse(f"query_metrics: {', '.join(map(repr, outside))} outside the schema")
        query = to_query(asked, self.context)
        check(query, self.context.pack, self.context.values)
        answer = answer_query(query, self.context.pack, self.workspace, self.read, question=self.question)
        self.answer = answer
        found = {"query": answer.query, "answer": answer.text, "columns": answer.columns,
                 "rows": answer.rows[-MAX_ROWS:], "values": answer.values[-MAX_ROWS:],
                 "data_through": answer.citations.get("data_through")}
        if len(answer.rows) > MAX_ROWS:  # a long series: the sentence covers every period, the rows its last
            found["rows_shown"] = f"the last {MAX_ROWS} of {len(answer.rows)} rows"
        return found


def _no_sql(node: Any) -> None:
    """Arguments are names, dates and words: any string that reads as SQL, or as a request the
    resolver refuses (other workspaces, raw tables, personal data), is a misuse."""
    if isinstance(node, dict):
        for key, value in node.items():
            _no_sql(key)
            _no_sql(value)
    elif isinstance(node, list):
        for value in node:
            _no_sql(value)
    elif isinstance(node, str):
        text = " " + " ".join(node.lower().split()) + " "
        for reason, pattern in HOSTILE:
            if reason != "workspace" and re.search(pattern, text):
                raise ToolMisuse(f"an argument asks for {reason}: {node[:60]!r}")


def to_query(asked: QueryArguments, context: Context) -> Query:
    """The query object of query_metrics' arguments: the workspace's timezone; a range that runs to
    today or past it ends today, partial; a comparison's period follows the resolver's conventions
    (the period before is of the same kind; a partial one compares with as many days). A query of
    forecasts takes its days as asked, within the forecasts' horizon, and no comparison, as the
    resolver does."""
    compared = None
    if any(context.pack.metric(name).forecast_of for name in asked.metrics):
        range_ = _forecast_range(asked, context)
    else:
        if asked.start > context.today:
            raise PeriodError(f"the range starts after today ({context.today.isoformat()})")
        period = _period(asked.start, asked.end, context.today)
        range_ = Range(start=period.start, end=period.end, partial=period.partial)
        if asked.comparison is not None:
            kind = asked.comparison.kind
            if kind == "range":
                if asked.comparison.start is None or asked.comparison.end is None:
                    raise QueryError("a comparison with a range needs its start and end")
                other = _period(asked.comparison.start, asked.comparison.end, context.today)
            else:
                other = period.previous() if kind == "previous_period" else period.year_before()
            compared = Comparison(kind=kind, range=Range(start=other.start, end=other.end, partial=other.partial))
    return Query(metrics=tuple(asked.metrics), dimensions=tuple(asked.dimensions), range=range_,
                 timezone=context.timezone, grain=asked.grain,
                 filters=tuple(Filter(dimension=f.dimension, values=tuple(f.values)) for f in asked.filters),
                 comparison=compared, order=asked.order, limit=asked.limit)


def _forecast_range(asked: QueryArguments, context: Context) -> Range:
    """The days of query_metrics' arguments naming a forecast: as asked, ending from today to the
    last day forecast (a month under way as a whole: its actual days and the forecast of the rest)."""
    if asked.comparison is not None:
        raise QueryError("a forecast is not compared with another period: query the forecast alone")
    if any(not context.pack.metric(name).forecast_of for name in asked.metrics):
        raise QueryError("a query of forecasts names forecasts only (query the actual figures on their own)")
    last = context.today + timedelta(days=HORIZON_DAYS - 1)
    if asked.start > asked.end or not context.today <= asked.end <= last:
        raise PeriodError(f"forecasts cover the days to come, to {last.isoformat()}: the range must end between "
                          f"{context.today.isoformat()} and then")
    return Range(start=asked.start, end=asked.end, partial=False)


def _period(start: date, end: date, today: date) -> Period:
    """The Period of `start`..`end`, its kind read from its days; one that runs to today is partial,
    its kind read from its start (the 1st of a month: a month so far; a Monday: a week so far)."""
    if end < today:
        return period_of(Range(start=start, end=end))
    span = (today - start).days + 1
    if start == date(start.year, 1, 1) and span > 92:
        kind = "year"
    elif start.day == 1 and start.month % 3 == 1 and span > 31:
        kind = "quarter"
    elif start.day == 1:
        kind = "month"
    elif start.weekday() == 0 and span <= 7:
        kind = "week"
    else:
        kind = "days"
    return Period(start, today, kind, partial=True)


def ask_llm(question: str, workspace: Workspace, warehouse: Warehouse, settings: LlmSettings, *,
            client: openai.OpenAI | None = None, now: datetime | None = None,
            previous: Query | None = None) -> Answer:
    """Answer `question` with the LLM when one is configured (a key, or `client`), else, and
    whenever its answer cannot be trusted, with the resolver."""
    pack = pack_for(workspace.vertical)
    if (settings.api_key is None and client is None) or screen(question, pack) is not None:
        return ask(question, workspace, warehouse, now=now, previous=previous)
    client = client or openai.OpenAI(api_key=settings.api_key, base_url=settings.base_url or OPENAI_BASE_URL,
                                     timeout=settings.timeout_seconds, max_retries=settings.max_retries)
    with warehouse.reader(timeout=TIMEOUT_SECONDS) as read:
        context = context_for(workspace, pack, read, now)
        return answer_with_llm(question, context, workspace, read, settings.model, client, previous)


def answer_with_llm(question: str, context: Context, workspace: Workspace, read: Read, model: str,
                    client: openai.OpenAI, previous: Query | None = None) -> Answer:
    """The model's answer through the tools, or the templated / resolver's answer (see the module)."""
    if screen(question, context.pack) is not None:  # refusals never reach the model
        return answer_question(question, context, workspace, read, previous)
    tools = Tools(context, workspace, read, question)
    started = time.monotonic()
    reply, reason, usage = None, None, {"prompt_tokens": 0, "completion_tokens": 0}
    messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM_PROMPT.format(
        vertical=context.pack.vertical, today=context.today.isoformat(), timezone=context.timezone,
        currency=workspace.currency) + (FOLLOW_UP_PROMPT.format(query=previous.model_dump_json())
                                        if previous is not None else "")},
        {"role": "user", "content": question}]
    try:
        for _ in range(MAX_ROUNDS):
            response = client.chat.completions.create(
                model=model, messages=messages, tools=tool_schemas(context), temperature=0,
                max_tokens=MAX_COMPLETION_TOKENS)
            for key in usage:
                usage[key] += getattr(response.usage, key, 0) or 0
            message = response.choices[0].message
            if not message.tool_calls:
                reply = message.content or ""
                break
            messages.append({"role": "assistant", "content": message.content, "tool_calls": [
                {"id": call.id, "type": "function",
                 "function": {"name": call.function.name, "arguments": call.function.arguments}}
                for call in message.tool_calls]})
            for call in message.tool_calls:
                result = tools.run(call.function.name, call.function.arguments)
                messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps(result, default=str)})
        else:
            reason = f"no reply after {MAX_ROUNDS} rounds"
    except Exception as exc:  # noqa: BLE001  any failed call means the resolver's answer
        status = getattr(exc, "status_code", None)
        reason = f"LLM call failed: {type(exc).__name__}" + (f" (HTTP {status})" if status else "")
    trace = {"model": model, "tool_calls": tools.calls, "latency_seconds": round(time.monotonic() - started, 3),
             **usage}
    if reason is None and tools.misuse:
        reason = "the model misused a tool: " + "; ".join(tools.misuse)
    if reason is None and tools.answer is None:
        reason = "the model ran no query"
    if reason is not None:  # nothing of the model's is trusted: the resolver answers
        answer = answer_question(question, context, workspace, read, previous)
        answer.llm = trace | {"used": False, "reason": reason}
        return answer
    answer = tools.answer
    reply = INVISIBLE.sub("", reply or "").strip()
    facts = {"workspace": {"locale": workspace.locale}, "results": tools.results}
    unmatched = check_numbers(reply, facts) if reply else []
    if not reply or len(reply) > MAX_REPLY_CHARACTERS or MARKUP.search(reply) or unmatched:
        why = ("the reply was empty" if not reply else "the reply was too long" if len(reply) > MAX_REPLY_CHARACTERS
               else "the reply holds a link or markup" if MARKUP.search(reply)
               else "numbers match no tool result: " + ", ".join(unmatched))
        answer.llm = trace | {"used": False, "reason": why, "rejected_reply": reply[:MAX_REPLY_CHARACTERS]}
        return answer  # the templated sentence of the model's query
    answer.text, answer.source = reply, "llm"
    answer.llm = trace | {"used": True}
    return answer
