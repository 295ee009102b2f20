"""Questions in plain language → a `Query`, without an LLM: the registry's words and a closed grammar.

`resolve` reads a question in this order: refusals first (another workspace, raw tables, SQL,
personal data, credentials), then the comparison ("vs last year"), the time phrase
(`periods.find_period`), filters on dimension values that exist ("in DE", "on the Team plan"),
metrics by their names, labels and synonyms (longest words first), dimensions ("by product",
"top 5 countries"), grain ("weekly") and order ("top", "worst"). A word that means several
metrics ("churn") asks which one; a question about something the registry does not hold says so
and lists the nearest metrics. docs/ask.md states every convention.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from datetime import date, timedelta

from babel import Locale
from pydantic import ValidationError

from pipelines.ask.periods import Period, default_period, find_period, next_days
from pipelines.ask.query import MAX_ROWS, Comparison, Filter, Query, QueryError, Range, check
from pipelines.insights.forecast_horizon import HORIZON_DAYS
from pipelines.packs import PACKS, Metric, Pack

MAX_QUESTION_CHARS = 500
REFUSAL = ("I can only answer questions about this workspace's own metrics, such as {examples}. I can't look at "
           "other workspaces, raw or internal tables, run SQL or show customers' personal details.")

# What is refused, whatever it names: the answer is the same whether the target exists or not.
HOSTILE = [
    ("sql", r"\bselect\b[^?]*\bfrom\b|\binsert\s+into\b|\bdelete\s+from\b|\bdrop\s+(table|schema|database|view)\b|"
            r"\bupdate\s+\w+\s+set\b|\balter\s+table\b|\btruncate\b|\bgrant\b|;|--|/\*|\bsql\b|"
            r"\bunion\s+(all\s+)?select\b|\bquery\s+the\s+(database|warehouse)\b"),
    ("tables", r"\braw\b|\binformation_schema\b|\bpg_\w+|\b_dlt\w*|\bstg_\w+|\bint_\w+|\bdbt\b|"
               r"\b(shopify|stripe|staging|intermediate|quarantine|webhooks|reference|insights|marts|metrics)\.\w+|"
               r"\b(list|show|dump|export|describe|which|what)\b[^.?!]*\b(tables|schemas?|databases?|columns)\b"),
    ("workspace", r"\b(workspaces?|tenants?)\b|\b(other|another|all|every|different|someone\s+else'?s?)\s+"
                  r"(stores?|shops?|business(es)?|compan(y|ies)|accounts?|clients?|merchants?|customers'\s+stores?)\b"
                  r"|\bcompetitors?'?\b"),
    ("personal", r"\be-?mails?\b|\bemail\s+address(es)?\b|\bphone(\s+numbers?)?\b|\b(home\s+|street\s+|postal\s+)?"
                 r"address(es)?\b|\b(names?|list)\s+of\s+(my\s+|the\s+|all\s+)?(customers|subscribers|buyers)\b|"
                 r"\bcustomer\s+(names?|list|details|records)\b|\bwho\s+(are|is|were|was)\b|\bwhich\s+customers\b|"
                 r"\bpersonal\s+(data|information|details)\b|\bcredit\s+cards?\b|\bcard\s+numbers?\b|\bssn\b|"
                 r"\bdate\s+of\s+birth\b|\bbirthdays?\b|\bip\s+address(es)?\b|\b(top|best|biggest)\s+\d*\s*"
                 r"(customers|subscribers|buyers|clients)\b|\bcustomer\s+ids?\b"),
    ("credentials", r"\b(passwords?|api\s+keys?|tokens?|secrets?|credentials?|access\s+keys?)\b|"
                    r"\bignore\s+(all\s+|the\s+|your\s+|previous\s+)*(instructions|rules)\b|\bsystem\s+prompt\b"),
]
# Ways to split that no pack has: a breakdown by them is said to be unsupported, never dropped.
NOT_SPLIT = (r"\b(?:by|per|and|across)\s+(?:the\s+)?(?P<what>(?:billing\s+)?intervals?|billing\s+periods?|"
             r"(?:sales\s+)?channels?|regions?|cities|city|states?|provinces?|categor(?:y|ies)|vendors?|"
             r"collections?|brands?|sources?|campaigns?|devices?|sizes?|colou?rs?|variants?)\b")
# Things owners ask about that no registry metric measures (unless a metric's words include them).
NOT_MEASURED = (r"\b(traffic|visitors?|visits|sessions?|page\s*views?|conversion\s+rate|inventory|stock\s+levels?|"
                r"profits?|margins?|costs?|cogs|ad\s+spend|roas|cac|shipping|tax(es)?|weather|nps|reviews?|"
                r"ratings?|employees?|payroll|bounce\s+rate|click[- ]through)\b")

COMPARISONS = [
    ("same_period_last_year", r"\b(?:compared\s+(?:to|with)|vs\.?|versus|against)\s+(?:the\s+)?same\s+(?:period|time|"
                              r"days?|week|month|quarter)\s+(?:a\s+year\s+ago|last\s+year|the\s+year\s+before)\b|"
                              r"\b(?:year[\s-]over[\s-]year|yoy|y/y)\b|\b(?:compared\s+(?:to|with)|vs\.?|versus|against)"
                              r"\s+(?:a\s+year\s+ago|last\s+year)\b"),
    ("previous_period", r"\b(?:compared\s+(?:to|with)|vs\.?|versus|against|than)\s+(?:the\s+)?(?:previous|prior|"
                        r"preceding|last)\s+(?:period|days|week|month|quarter|year)\b|\b(?:compared\s+(?:to|with)|"
                        r"vs\.?|versus|against|than)\s+the\s+(?:\d+\s+)?(?:period|weeks?|months?|quarters?|years?|"
                        r"days)\s+before\b|\b(?:growth|grew|grow|grown)\b|"
                        r"\b(?:week|month|quarter)[\s-]over[\s-](?:week|month|quarter)\b|\b(?:wow|mom|qoq)\b|"
                        r"\bhow\s+(?:did|has|have|does|do)\b(?P<middle>[^?]*)\b(?:change|changed|grow|grown|move|moved)\b|"
                        r"\b(?:change|growth)\s+(?:in|of)\b"),
    ("range", r"\b(?:compared\s+(?:to|with)|vs\.?|versus|against)\s+(?P<other>.+)$"),
]
GRAINS = [("day", r"\b(?:daily|by\s+day|per\s+day|each\s+day|day\s+by\s+day)\b"),
          ("week", r"\b(?:weekly|by\s+week|per\s+week|each\s+week|week\s+by\s+week)\b"),
          ("month", r"\b(?:monthly|by\s+month|per\s+month|each\s+month|month\s+by\s+month)\b"),
          ("quarter", r"\b(?:quarterly|by\s+quarter|per\s+quarter|each\s+quarter)\b"),
          ("year", r"\b(?:yearly|by\s+year|per\s+year|each\s+year)\b")]
TREND = r"\b(?:trend|over\s+time|chart|graph|plot|evolution)\b"
# Words asking for what is to come: the metrics named are their forecasts (docs/ask.md, "Forecasts").
FORECAST = r"\b(?:forecasts?|forecasted|projected|projections?|predicted|predictions?|expected|outlook|on\s+track)\b"
NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
                "ten": 10, "twenty": 20}
TOP = r"\b(?P<way>top|best|highest|most|biggest|largest|best[\s-]selling|top[\s-]selling|leading|bottom|worst|" \
      r"lowest|least|smallest|fewest|weakest)\b(?:\s+(?P<count>\d+|" + "|".join(NUMBER_WORDS) + r"))?"
ASCENDING = {"bottom", "worst", "lowest", "least", "smallest", "fewest", "weakest"}
COUNTRY_ALIASES = {"usa": "US", "u.s.": "US", "the us": "US", "america": "US", "uk": "GB", "britain": "GB",
                   "england": "GB"}
CUSTOMER_TYPES = {"new": "new", "first-time": "new", "first time": "new", "returning": "returning",
                  "repeat": "returning", "existing": "returning"}


@dataclass(frozen=True)
class Resolved:
    query: Query
    period: Period


@dataclass(frozen=True)
class Clarify:
    """A question with several meanings: which one? `options` are metric names."""

    message: str
    options: tuple[str, ...]


@dataclass(frozen=True)
class Unsupported:
    """Something no registry metric answers; `nearest` are metric names to offer instead."""

    message: str
    nearest: tuple[str, ...] = ()


@dataclass(frozen=True)
class Refused:
    """Outside what questions may reach. `reason` is for logs and tests, never shown."""

    message: str
    reason: str = field(repr=False, default="")


Resolution = Resolved | Clarify | Unsupported | Refused


@dataclass(frozen=True)
class Context:
    """What the caller knows: the workspace's pack, timezone, holiday country, today (its local
    date) and each dimension's values in its data."""

    pack: Pack
    timezone: str
    today: date
    country: str | None = None
    values: dict[str, set[str]] = field(default_factory=dict)


def resolve(question: str, context: Context, previous: Query | None = None) -> Resolution:
    """The query, clarifying question, unsupported notice or refusal for `question`.

    A follow-up (`previous`: the query of the question before) keeps what it does not change: "and
    the month before?" keeps the metrics and breakdown, "break that down by country" the metrics
    and range.
    """
    pack = context.pack
    turned_away = screen(question, pack)
    if turned_away is not None:
        return turned_away
    text = _words(question)
    comparison, other_words, text = _comparison(text)
    try:
        period, text = _follow_up_period(text, previous) if previous is not None else (None, text)
        if period is None:
            period, text = _period(text, context, previous)
        other = None
        if other_words is not None:
            other = find_period(other_words, context.today, context.country)
            if other is None:
                return Unsupported(f"I could not tell which period to compare with in {other_words.strip()!r}.")
    except ValueError as exc:  # PeriodError, or a date Python has no room for ("in 0000")
        return Unsupported(f"I could not read the dates: {exc}.")
    filters, text, problem = _filters(question, text, context)
    if problem:
        return problem
    # the breakdown first, from the words metric phrases would take ("customers per segment")
    dimensions, singular = _dimensions(text, pack)
    found, text = _metrics(text, pack, {*dimensions, *(kept.dimension for kept in filters)})
    if isinstance(found, Clarify):
        return found
    not_measured = re.search(NOT_MEASURED, text)
    if not found and previous is not None and not not_measured:
        found = list(previous.metrics)
    if not_measured or not found:
        return _unsupported(question, pack, not_measured.group(0) if not_measured else None)
    if len(found) > 4:
        return Unsupported("Ask about at most 4 metrics at a time.", tuple(found[:4]))
    not_split = re.search(NOT_SPLIT, text)
    if not_split:
        listed = ", ".join(dimension.label for dimension in pack.dimensions)
        return Unsupported(f"I can't split by {not_split.group('what')}: these metrics split by {listed}.",
                           tuple(found))
    if period.ahead or re.search(FORECAST, _words(question)) or any(pack.metric(name).forecast_of for name in found):
        forecasts = _forecasts(found, pack, period, context, comparison, previous)
        if isinstance(forecasts, Unsupported):
            return forecasts
        found, period = forecasts
    grain = _grain(text, period)
    order, limit = _order(text, dimensions, singular)
    if previous is not None and set(found) == set(previous.metrics):  # the same question, moved
        if not dimensions and not filters:
            dimensions, filters = list(previous.dimensions), list(previous.filters)
            order, limit = previous.order, previous.limit
        elif re.search(ADDED, text):  # "break that down by country too": a second dimension
            dimensions = list(dict.fromkeys([*previous.dimensions, *dimensions]))
            filters = [*previous.filters, *(f for f in filters if f.dimension not in
                                             {kept.dimension for kept in previous.filters})]
        grain = grain if grain != "total" else previous.grain
    if len(dimensions) > 2:
        labels = " and ".join(pack.dimension(name).label for name in dimensions)
        return Unsupported(f"I can break a metric down by at most two things at once, not by {labels}.",
                           tuple(found))
    compared = None
    if comparison == "previous_period":
        compared = Comparison(kind="previous_period", range=_range(period.previous()))
    elif comparison == "same_period_last_year":
        compared = Comparison(kind="same_period_last_year", range=_range(period.year_before()))
    elif other is not None:
        compared = Comparison(kind="range", range=_range(other[0]))
    try:
        query = Query(metrics=tuple(found), dimensions=tuple(dimensions), range=_range(period),
                      timezone=context.timezone, grain=grain, filters=tuple(filters), comparison=compared,
                      order=order, limit=limit)
        check(query, pack, context.values)
    except (QueryError, ValidationError) as exc:
        message = str(exc) if isinstance(exc, QueryError) else exc.errors()[0]["msg"]
        return Unsupported(f"I can't answer that as asked: {message}.", tuple(found))
    return Resolved(query, period)


def screen(question: str, pack: Pack) -> Refused | Unsupported | None:
    """What is turned away before anything is read: refusals (the same message whatever they
    name) and questions too long to read."""
    if len(question) > MAX_QUESTION_CHARS:
        return Unsupported(f"That question is too long; ask in under {MAX_QUESTION_CHARS} characters.")
    text = _words(question)
    for reason, pattern in HOSTILE:
        if re.search(pattern, text):
            return Refused(REFUSAL.format(examples=_examples(pack)), reason)
    if _identifiers(text):
        return Refused(REFUSAL.format(examples=_examples(pack)), "workspace")
    return None


def _words(question: str) -> str:
    """The question in lower case, single spaces, padded, without question marks or parentheses
    (labels such as "Churned MRR (30 days)" are matched without them)."""
    text = question.replace("’", "'").replace("?", " ").replace("(", " ").replace(")", " ")
    return " " + " ".join(text.split()).lower() + " "


def _identifiers(text: str) -> list[str]:
    """Words shaped like ids ("acme-store", "shop_42"), which name workspaces or tables, not metrics:
    every hyphenated or underscored word but dates and the hyphenated words of the grammar."""
    allowed = {"year-over-year", "month-over-month", "week-over-week", "quarter-over-quarter", "month-to-date",
               "year-to-date", "quarter-to-date", "week-to-date", "first-time", "best-selling", "top-selling",
               "sign-ups", "win-backs", "trial-to-paid", "e-mail", "day-by-day", "break-down", "follow-up",
               "new-vs-returning", "co-founder"}
    return [word for word in re.findall(r"\b[a-z0-9]+(?:[-_][a-z0-9]+)+\b", text)
            if word not in allowed and not re.fullmatch(r"\d{4}-\d{2}-\d{2}|\d{1,2}-months?|month-\d{1,2}", word)]


def _range(period: Period) -> Range:
    return Range(start=period.start, end=period.end, partial=period.partial)


def _cut(text: str, span: tuple[int, int]) -> str:
    """`text` with `span` blanked, so later steps do not read those words again."""
    return text[:span[0]] + " " * (span[1] - span[0]) + text[span[1]:]


def _comparison(text: str) -> tuple[str | None, str | None, str]:
    """The comparison asked for ("previous_period", "same_period_last_year" or "range", with the
    words of the period to compare with), and `text` without it."""
    for kind, pattern in COMPARISONS:
        match = re.search(pattern, text)
        if match:
            if kind == "range":
                return kind, match.group("other"), _cut(text, match.span())
            kept = match.groupdict().get("middle")  # "how did X change" keeps X
            text = _cut(text, match.span())
            if kept:
                text = text[:match.start("middle")] + kept + text[match.end("middle"):]
            return kind, None, text
    return None, None, text


def _period(text: str, context: Context, previous: Query | None = None) -> tuple[Period, str]:
    found = find_period(text, context.today, context.country)
    if found is None:
        return (default_period(context.today) if previous is None else period_of(previous.range)), text
    return found[0], _cut(text, found[1])


# A question that builds on the one before: "and orders?", "what about Q3?", "break that down by
# country", "the week before", "same for Germany" (docs/ask.md, "Follow-ups").
FOLLOW_UP = (r"^\s*(?:and|what\s+about|how\s+about|same|also|now|then|ok|okay|but)\b|"
             r"\b(?:that|those|it|them)\b|\bsame\b(?!\s+(?:period|time|days?|weeks?|months?|quarters?|years?))|"
             r"\binstead\b|\bthe\s+(?:previous|prior)\s+one\b|"
             r"\bthe\s+(?:day|week|month|quarter|year|period|days|weeks|months)\s+before\s*$")


def is_follow_up(question: str) -> bool:
    """Whether `question` reads as building on the question before (it keeps that context)."""
    return re.search(FOLLOW_UP, _words(question).strip()) is not None


ADDED = r"\b(?:too|as\s+well|also|in\s+addition)\b"  # a follow-up's breakdown added to the one before
FOLLOW_UP_BEFORE = r"\bthe\s+(?:day|week|month|quarter|year|period|days|weeks|months)\s+before\b|\bthe\s+(?:previous|prior)\s+one\b"


def _follow_up_period(text: str, previous: Query) -> tuple[Period | None, str]:
    """"and the month before?": the period before the previous question's."""
    match = re.search(FOLLOW_UP_BEFORE, text)
    if not match:
        return None, text
    return period_of(previous.range).previous(), _cut(text, match.span())


def period_of(span: Range) -> Period:
    """The Period a range is, its kind read from its days (a calendar month, an ISO week...)."""
    start, end = span.start, span.end
    after = end + timedelta(days=1)
    if start == end:
        kind = "day"
    elif start.weekday() == 0 and (end - start).days == 6:
        kind = "week"
    elif start.day == 1 and after.day == 1 and (after.month - start.month) % 12 == 1:
        kind = "month"
    elif start.day == 1 and after.day == 1 and start.month % 3 == 1 and (after.month - start.month) % 12 == 3:
        kind = "quarter"
    elif start == date(start.year, 1, 1) and end == date(start.year, 12, 31):
        kind = "year"
    else:
        kind = "days"
    return Period(start, end, kind, span.partial)


def _phrases(pack: Pack) -> dict[str, list[str]]:
    """Every phrase that names a metric of `pack` → the metrics it names, in pack order."""
    phrases: dict[str, list[str]] = {}
    for metric in pack.metrics:
        label = " ".join(re.sub(r"[()]", " ", metric.label.lower()).split())  # "churned mrr 30 days"
        for phrase in {metric.name.replace("_", " "), label, *metric.synonyms}:
            if metric.name not in phrases.setdefault(phrase, []):
                phrases[phrase].append(metric.name)
    return phrases


def _metrics(text: str, pack: Pack, split: set[str] = frozenset()) -> tuple[list[str] | Clarify, str]:
    """The metrics `text` names, in the order it names them (longest phrases matched first), and
    `text` without them; a phrase that names several metrics gives a clarifying question instead.
    Of the metrics a phrase names, those split by the asked dimensions (`split`) are meant, or,
    with none asked, the watched ones: "net sales by segment" is the segments' net sales."""
    found: dict[str, int] = {}
    phrases = _phrases(pack)
    text = _movement_of_mrr(_distributed(text, phrases), pack, phrases)
    for phrase in sorted(phrases, key=len, reverse=True):
        pattern = rf"\b{re.escape(phrase)}(?:s|es)?\b"
        while match := re.search(pattern, text):
            names = phrases[phrase]
            meant = [name for name in names if split <= set(pack.metric(name).dimensions)
                     and (split or pack.metric(name).watched)]
            names = meant if len(names) > 1 and meant else names
            if len(names) > 1 and not set(names) & set(found):
                labels = [pack.metric(name).label for name in names]
                listed = ", ".join(labels[:-1]) + (", or " if len(labels) > 2 else " or ") + labels[-1]
                return Clarify(f"{phrase.capitalize()}: {listed}?", tuple(names)), text
            if len(names) == 1:
                found.setdefault(names[0], match.start())
            text = _cut(text, match.span())
    return sorted(found, key=found.get), text


# "mrr lost to", "revenue did we lose to", "mrr gained from", "mrr won back through": MRR as the noun
# of the movement that follows, not a metric of its own
MRR_OF = (r"\b(?:mrr|revenue)\s+(?:(?:did|do|have|has|had)\s+(?:we|i|you|they)\s+)?"
          r"(?:(?:lost|lose|losing|gained|gain|gaining|won|win|got|get|added|add)\s+)?(?:back\s+)?"
          r"(?:to|from|through|via|by|due\s+to)\s+")


def _movement_of_mrr(text: str, pack: Pack, phrases: dict[str, list[str]]) -> str:
    """"mrr lost to downgrades" → "contraction mrr": the movement a phrase names (the one MRR
    movement among its metrics: "churn" also names churned subscriptions), not MRR and it."""
    movements = {}
    for phrase, names in phrases.items():
        moving = [name for name in names if name.endswith("_mrr") and name != "net_new_mrr"]
        if len(moving) == 1 and not {"mrr", "revenue"} & set(phrase.split()):
            movements[phrase] = moving[0]
    if not movements:
        return text
    named = "|".join(re.escape(phrase) for phrase in sorted(movements, key=len, reverse=True))
    return re.sub(rf"{MRR_OF}(?P<movement>{named})(?:s|es)?\b",
                  lambda match: pack.metric(movements[match.group("movement")]).label.lower(), text)


def _distributed(text: str, phrases: dict[str, list[str]]) -> str:
    """"new, expansion and churned mrr" → "new mrr, expansion mrr and churned mrr", when each of
    those is a metric's phrase."""
    def spread(match: re.Match) -> str:
        heads, noun = re.split(r"\s*,\s*|\s+and\s+", match.group("heads")), match.group("noun")
        if not all(f"{head} {noun}" in phrases for head in heads):
            return match.group(0)
        return ", ".join(f"{head} {noun}" for head in heads[:-1]) + f" and {heads[-1]} {noun}"
    return re.sub(r"\b(?P<heads>\w+(?:\s*,\s*\w+)*,?\s+and\s+\w+)\s+(?P<noun>mrr|sales|customers|subscriptions)\b",
                  spread, text)


def _dimensions(text: str, pack: Pack) -> tuple[list[str], bool]:
    """The dimensions to break down by, in the order asked ("by product", "per country", "top 5
    plans", "which country"; a second one: "by country and product", "by plan and currency"), and
    whether the first was named in the singular ("the best product": one row)."""
    def first_match(dimension, templates) -> re.Match | None:
        words = {dimension.name.replace("_", " "), dimension.label.lower(), *dimension.synonyms}
        found = [match for phrase in sorted(words, key=len, reverse=True) for template in templates
                 if (match := re.search(template.format(word=rf"(?P<word>{re.escape(phrase)}(?:s|es)?)"), text))]
        return min(found, key=lambda match: match.start(), default=None)

    named = {dimension.name: match for dimension in pack.dimensions if (match := first_match(dimension, BREAKDOWNS))}
    if named:  # "by country and product", "by product and by country": the second after "and"
        named |= {dimension.name: match for dimension in pack.dimensions if dimension.name not in named
                  and (match := first_match(dimension, [r"(?:\band|,)\s+(?:by\s+)?(?:the\s+)?{word}\b"]))}
    found = sorted(named, key=lambda name: named[name].start())
    first = named[found[0]] if found else None
    # "the best product", "which country": one row; "by product", "top products": all
    singular = first is not None and not first.group("word").endswith("s") and not first.re.pattern.startswith(r"\b(?:by")
    return found, singular


BREAKDOWNS = [r"\b(?:by|per|for\s+each|for\s+every|across|split\s+by|broken\s+down\s+by|break\s*down\s+by|"
              r"grouped\s+by|in\s+each|each)\s+(?:the\s+)?{word}\b",
              TOP.replace("{", "{{").replace("}", "}}") + r"\s+{word}\b", r"\b(?:which|what)\s+{word}\b",
              r"\b{word}\s+(?:with|by)\s+the\s+(?:most|highest|lowest|least|biggest)\b"]


def _forecasts(found: list[str], pack: Pack, period: Period, context: Context, comparison: str | None,
               previous: Query | None) -> tuple[list[str], Period] | Unsupported:
    """A question about what is to come: each metric named as its forecast, over the days asked
    (this month as a whole: its actual days and the forecast of the rest; no time phrase: the next
    7 days), within the forecasts' 13 weeks."""
    offered = tuple(metric.name for metric in pack.metrics if metric.forecast_of and pack.forecast(metric.forecast_of) == metric)
    meant = []
    for name in found:
        forecast = name if pack.metric(name).forecast_of else getattr(pack.forecast(name), "name", None)
        if forecast is None:
            listed = ", ".join(pack.metric(name).label for name in offered)
            return Unsupported(f"I have no forecast of {pack.metric(name).label}; forecasts: {listed}.", offered)
        meant.append(forecast)
    if comparison is not None:
        return Unsupported("I can't compare a forecast with another period; ask for the forecast and the "
                           "actual figures one at a time.", tuple(meant))
    if not period.phrase and previous is None:
        period = next_days(context.today)
    period = period.whole()
    if period.end < context.today:
        return Unsupported(f"Forecasts are of the days to come; {period.phrase or 'that period'} is over. Ask "
                           "about this month, next month or the next 4 weeks.", tuple(meant))
    last = context.today + timedelta(days=HORIZON_DAYS - 1)  # from yesterday, the last complete day
    if period.end > last:
        return Unsupported(f"Forecasts reach {HORIZON_DAYS // 7} weeks ahead, to {last.isoformat()}; ask about "
                           "a nearer period.", tuple(meant))
    return list(dict.fromkeys(meant)), period


def _grain(text: str, period: Period) -> str:
    for grain, pattern in GRAINS:
        if re.search(pattern, text):
            return grain
    if re.search(TREND, text):
        return "day" if period.days <= 31 else "week" if period.days <= 190 else "month"
    return "total"


def _order(text: str, dimensions: list[str], singular: bool) -> tuple[str, int]:
    """Largest first unless asked for the bottom; the top N, one for "the best product", five
    for "the best products", else every row up to the limit."""
    match = re.search(TOP, text)
    way = match.group("way").replace("-", " ").split()[0] if match else "top"
    order = "asc" if way in ASCENDING else "desc"
    if not dimensions:
        return order, MAX_ROWS
    if match and match.group("count"):
        count = match.group("count")
        return order, min(int(count) if count.isdigit() else NUMBER_WORDS[count], MAX_ROWS)
    if singular:
        return order, 1
    return order, 5 if match else MAX_ROWS


def _filters(question: str, text: str, context: Context) -> tuple[list[Filter], str, Unsupported | None]:
    """Filters on dimension values the question names ("in DE", "from Germany", "on the Team plan",
    "from returning customers"), checked against the workspace's values; `text` without them."""
    pack, values = context.pack, context.values
    names = {dimension.name for dimension in pack.dimensions}
    chosen: dict[str, list[str]] = {}

    def keep(dimension: str, value: str, span: tuple[int, int]) -> None:
        nonlocal text
        chosen.setdefault(dimension, [])
        if value not in chosen[dimension]:
            chosen[dimension].append(value)
        text = _cut(text, span)

    if "customer_type" in names:
        kinds = "|".join(sorted(CUSTOMER_TYPES, key=len, reverse=True))
        for match in re.finditer(rf"\b(?:from|by|of|among|for)\s+(?P<kind>{kinds})\s+(?:customers|buyers)\b", text):
            keep("customer_type", CUSTOMER_TYPES[match.group("kind")], match.span())
    if "country" in names:
        territories = Locale("en").territories
        countries = {territories[code].lower(): code for code in values.get("country", set()) if code in territories}
        countries |= {alias: code for alias, code in COUNTRY_ALIASES.items() if code in values.get("country", set())}
        for name in sorted(countries, key=len, reverse=True):
            match = re.search(rf"\b(?:in|from|to|for)\s+(?:the\s+)?{re.escape(name)}\b", text)
            if match:
                keep("country", countries[name], match.span())
        for match in re.finditer(r"\b(?:in|from|to|for)\s+([A-Z]{2})\b", question):
            if match.group(1) in values.get("country", set()):
                inner = re.search(rf"\b(?:in|from|to|for)\s+{match.group(1).lower()}\b", text)
                if inner:
                    keep("country", match.group(1), inner.span())
    if "billing_currency" in names:
        for match in re.finditer(r"\b(?:in|billed\s+in|paying\s+in|for)\s+([A-Z]{3})\b", question):
            if match.group(1) in values.get("billing_currency", set()):
                inner = re.search(rf"\b(?:in|billed\s+in|paying\s+in|for)\s+{match.group(1).lower()}\b", text)
                if inner:
                    keep("billing_currency", match.group(1), inner.span())
    if "segment" in names:  # "champions", "the at risk segment"; "new" only as "the new segment"
        for value in sorted(values.get("segment", set()), key=len, reverse=True):
            words = re.escape(value.replace("_", " "))
            tail = r"\s+segment\b" if value == "new" else r"(?:\s+segment)?\b"
            match = re.search(rf"\b(?:(?:in|from|of|for)\s+)?(?:the\s+)?{words}{tail}", text)
            if match:
                keep("segment", value, match.span())
    for dimension in ("plan", "product"):
        if dimension not in names:
            continue
        for value in sorted(values.get(dimension, set()), key=len, reverse=True):
            if value.startswith("(") or len(value) < 3:
                continue
            match = re.search(rf"(?:\b(?:the|for|on|of)\s+)?\b{re.escape(value.lower())}\b(?:\s+{dimension}s?\b)?", text)
            if match:
                keep(dimension, value, match.span())
        named = re.search(rf"\b(?:the|on|for)\s+['\"]?([A-Z][\w&'-]*(?:\s+[A-Z][\w&'-]*)*)['\"]?\s+{dimension}\b",
                          question)
        if named and named.group(1) not in chosen.get(dimension, []):
            known = sorted(values.get(dimension, set()))
            return [], text, Unsupported(f"There is no {dimension} {named.group(1)!r} in this workspace's data; "
                                         f"its {dimension}s: {', '.join(known[:10])}.")
    return [Filter(dimension=name, values=tuple(kept)) for name, kept in chosen.items()], text, None


def _unsupported(question: str, pack: Pack, topic: str | None) -> Unsupported:
    """No registry metric answers this: say so, naming a metric of another vertical when that is
    what was asked, and list the nearest metrics of this one."""
    text = question.lower()
    for vertical, other in PACKS.items():
        if vertical == pack.vertical:
            continue
        names, _ = _metrics(" " + text + " ", other)
        names = list(names.options) if isinstance(names, Clarify) else names
        if names:
            label = other.metric(names[0]).label
            return Unsupported(f"{label} is a metric of {vertical} workspaces; this one is {pack.vertical}. "
                               f"It has, for example: {_examples(pack)}.", nearest(text, pack))
    about = f"I don't have {topic.strip()} data" if topic else "I don't have a metric for that"
    return Unsupported(f"{about}. The nearest metrics I have: "
                       f"{', '.join(pack.metric(name).label for name in nearest(text, pack))}.", nearest(text, pack))


def nearest(text: str, pack: Pack, count: int = 3) -> tuple[str, ...]:
    """The metrics whose words are closest to `text`'s (difflib ratios over words and word pairs)."""
    words = re.findall(r"[a-z]+", text.lower())
    grams = words + [" ".join(pair) for pair in zip(words, words[1:])]
    scores: dict[str, float] = {}
    for phrase, names in _phrases(pack).items():
        best = max((difflib.SequenceMatcher(None, phrase, gram).ratio() for gram in grams), default=0.0)
        for name in names:
            scores[name] = max(scores.get(name, 0.0), best)
    ranked = sorted(pack.metric_names, key=lambda name: -scores.get(name, 0.0))
    return tuple(ranked[:count])


def _examples(pack: Pack) -> str:
    metrics: list[Metric] = [metric for metric in pack.metrics if metric.synonyms][:3]
    return ", ".join(metric.label.lower() if not metric.label.isupper() else metric.label for metric in metrics)
