"""The weekly report's plain-language summary: an LLM writes it, a fact check decides if it is used.

The LLM sees only the report's facts JSON. Every number in its reply must match a fact within the
precision the reply wrote it at, and every claim about a metric (which metric a number is, which
way it moved, by how many times) must agree with that metric's facts. A reply that fails, one that
is too long or holds a link or markup, any failed call, or no API key at all, and the summary is a
deterministic template built from the same facts. Nothing here raises on an
LLM problem: a report never fails because of its summary (see docs/reports.md).

Model, endpoint, key and bounds are `pipelines.settings.LlmSettings` (ABOS_LLM_* variables, see
docs/configuration.md).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import openai
from babel import Locale
from babel.numbers import get_decimal_symbol, get_group_symbol

from pipelines.currencies import ISO_4217
from pipelines.insights.wording import DEFAULT_LOCALE, Wording
from pipelines.settings import LlmSettings

OPENAI_BASE_URL = "https://api.openai.com/v1"
MAX_COMPLETION_TOKENS = 400
# A compliant API stops at MAX_COMPLETION_TOKENS (some 1,600 characters); anything much longer is not
# a summary (a 2.2 MB reply once reached report.html).
MAX_REPLY_CHARACTERS = 2_000
# A summary is plain text. Links, mentions and tags have no fact behind them; everything is escaped
# where it is shown anyway (Slack mrkdwn, HTML).
MARKUP = re.compile(r"<[!@#a-z/]|https?://|www\.|\]\(|&[a-z]+;|&#", re.IGNORECASE)
# Control and invisible formatting characters (bidi overrides, zero-width) are removed from a reply.
INVISIBLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")

# US$ per million tokens (input, output), from OpenAI's public price list as of 2025-06. A model
# not listed (e.g. a local one) gets cost None rather than a guess.
PRICES_PER_MILLION_TOKENS: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
}
DATED_SNAPSHOT = re.compile(r"-\d{4}-\d{2}-\d{2}$")  # "gpt-4o-mini-2024-07-18" is priced as gpt-4o-mini

SYSTEM_PROMPT = """\
You write the opening paragraph of a weekly business metrics report.
Use only the facts in the JSON you are given. Rules:
- 3 to 5 sentences of plain text, no Markdown, no lists.
- Copy every number exactly as it appears in a "display" field or a driver "phrase".
  Never compute, convert or re-round a number yourself: no sums, differences or averages.
- Write dates as YYYY-MM-DD and the week as its label (e.g. 2026-W10).
- Cover the headline metrics, the top movers (say if a move is good or bad for the business,
  using "outcome"), and each anomaly with its top driver. If there are no anomalies, say so.
- End with what to do: copy the "action" sentence of each anomaly (or, without anomalies, of the
  first mover) word for word. Recommend nothing else.
"""


LANGUAGE_RULE = """\
- Write in {language}, as the report is. Write numbers exactly as the facts' display strings do
  (their decimal and thousands separators), and dates still as YYYY-MM-DD.
"""


@dataclass(frozen=True)
class Summary:
    """A report's summary and how it was made.

    Attributes:
        text: the summary shown in the report.
        source: "llm" (the model's reply passed the fact check) or "template".
        reason: why the template was used (None when the LLM's reply was used).
        model: the model asked, None when none was.
        prompt_tokens: input tokens the API reported, None without a call or usage.
        completion_tokens: output tokens the API reported.
        cost_usd: estimated from PRICES_PER_MILLION_TOKENS; None for an unpriced model or no usage.
        latency_seconds: wall time of the LLM call including retries, None without a call.
        rejected_numbers: the reply's numbers that matched no fact.
        rejected_claims: the reply's claims about a metric that its facts contradict.
        rejected_reply: the reply that failed the fact check, kept for review (at most
            MAX_REPLY_CHARACTERS).
    """

    text: str
    source: str
    reason: str | None = None
    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_usd: float | None = None
    latency_seconds: float | None = None
    rejected_numbers: tuple[str, ...] = ()
    rejected_claims: tuple[str, ...] = ()
    rejected_reply: str | None = None

    def metadata(self) -> dict[str, Any]:
        """Plain values for asset metadata and the reports table."""
        return {key: value for key, value in self.__dict__.items() if key != "text"} | {
            "rejected_numbers": list(self.rejected_numbers), "rejected_claims": list(self.rejected_claims)}


def summarize(
    facts: Mapping[str, Any], settings: LlmSettings, *, client: openai.OpenAI | None = None
) -> Summary:
    """The report's summary: the LLM's, when it answers and passes the fact check, else the template.

    Args:
        facts: the report's facts (`Report.facts`).
        settings: model, endpoint, key and bounds.
        client: an OpenAI client to use instead of one built from `settings`.

    Returns:
        The summary; never raises for LLM failures.
    """
    template = template_summary(facts)
    if settings.api_key is None and client is None:
        return Summary(template, "template", reason="no LLM API key configured")
    client = client or openai.OpenAI(
        api_key=settings.api_key,
        base_url=settings.base_url or OPENAI_BASE_URL,
        timeout=settings.timeout_seconds,
        max_retries=settings.max_retries,
    )
    started = time.monotonic()
    try:
        response = client.chat.completions.create(
            model=settings.model,
            messages=build_messages(facts),
            temperature=0,
            max_tokens=MAX_COMPLETION_TOKENS,
        )
        reply = response.choices[0].message.content or ""
        usage = response.usage
    # Any failure (timeout, connection, HTTP status, a body the client cannot parse) means the
    # template; the exception's type and status say why without echoing request details.
    except Exception as exc:  # noqa: BLE001
        status = getattr(exc, "status_code", None)
        return Summary(template, "template", reason=f"LLM call failed: {type(exc).__name__}"
                       + (f" (HTTP {status})" if status else ""), model=settings.model,
                       latency_seconds=time.monotonic() - started)
    latency = time.monotonic() - started
    prompt_tokens = getattr(usage, "prompt_tokens", None)
    completion_tokens = getattr(usage, "completion_tokens", None)
    accounting = dict(model=settings.model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                      cost_usd=estimate_cost(settings.model, prompt_tokens, completion_tokens),
                      latency_seconds=latency)
    if len(reply) > MAX_REPLY_CHARACTERS:
        return Summary(template, "template", reason=f"LLM reply too long ({len(reply):,} characters; at most "
                       f"{MAX_REPLY_CHARACTERS:,})", rejected_reply=reply[:MAX_REPLY_CHARACTERS], **accounting)
    reply = INVISIBLE.sub("", reply).strip()
    if not reply:
        return Summary(template, "template", reason="LLM reply was empty", **accounting)
    if MARKUP.search(reply):
        return Summary(template, "template", reason="LLM reply holds a link or markup", rejected_reply=reply,
                       **accounting)
    unmatched = check_numbers(reply, facts)
    contradicted = check_claims(reply, facts) + [
        (advice, f"{advice!r} is no recommended action of the report") for advice in check_actions(reply, facts)]
    if unmatched or contradicted:
        return Summary(template, "template", reason="fact check failed: " + "; ".join(
            [f"{number!r} matches no fact" for number in unmatched] + [why for _, why in contradicted]),
            rejected_numbers=tuple(unmatched), rejected_claims=tuple(claim for claim, _ in contradicted),
            rejected_reply=reply, **accounting)
    return Summary(reply, "llm", **accounting)


def estimate_cost(model: str, prompt_tokens: int | None, completion_tokens: int | None) -> float | None:
    """US$ for one call, from PRICES_PER_MILLION_TOKENS; None for an unpriced model or missing usage."""
    prices = PRICES_PER_MILLION_TOKENS.get(DATED_SNAPSHOT.sub("", model))
    if prices is None or prompt_tokens is None or completion_tokens is None:
        return None
    return (prompt_tokens * prices[0] + completion_tokens * prices[1]) / 1_000_000


def build_messages(facts: Mapping[str, Any]) -> list[dict[str, str]]:
    """The chat messages: the writing rules (in the report's language), then the facts JSON (without
    weekly series, to save tokens)."""
    locale = Locale.parse((facts.get("workspace") or {}).get("locale") or DEFAULT_LOCALE)
    system = SYSTEM_PROMPT if locale.language == "en" else SYSTEM_PROMPT + LANGUAGE_RULE.format(
        language=locale.get_display_name("en"))
    shown = dict(facts)
    shown["metrics"] = [{key: value for key, value in metric.items() if key != "weekly"}
                        for metric in facts.get("metrics", [])]
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": json.dumps(shown, ensure_ascii=False, separators=(",", ":"))},
    ]


def template_summary(facts: Mapping[str, Any]) -> str:
    """A deterministic summary, in the report's language, that uses only the facts' display strings,
    driver phrases and actions."""
    workspace, week = facts["workspace"], facts["week"]
    wording = Wording.of(facts)
    by_name = {metric["name"]: metric for metric in facts["metrics"]}
    sentences = [wording.say("summary.week", name=workspace["name"], week=week["label"], start=week["start"],
                             end=week["end"])]
    headline = []
    for name in facts.get("headline", []):
        metric = by_name[name]
        shown = metric["display"]
        key = "summary.no_comparison" if metric["change_pct"] is None else "summary.headline"
        headline.append(wording.say(key, label=metric["label"], current=shown["current"], change=shown["change"]))
    if headline:
        sentences.append("; ".join(headline) + ".")
    movers = facts.get("movers", [])[:3]
    if movers:
        sentences.append(wording.say("summary.moves", moves="; ".join(
            wording.say("summary.move", label=mover["label"], change=mover["display"]["change"],
                        outcome=mover["display"].get("outcome") or mover["outcome"]) for mover in movers)))
    anomalies = facts.get("anomalies", [])
    actions = [anomaly["action"] for anomaly in anomalies[:3] if anomaly.get("action")]
    if not anomalies and movers and movers[0].get("action"):
        actions.append(movers[0]["action"])
    for anomaly in anomalies[:3]:
        shown = anomaly["display"]
        # "led by", not "mostly": the first driver is the slice that moved most against its usual
        # share, which need not be most of the gap
        driver = wording.say("summary.led_by", phrase=anomaly["drivers"][0]["phrase"]) if anomaly["drivers"] else ""
        sentences.append(wording.say("summary.anomaly", date=anomaly["date"], label=anomaly["label"],
                                     value=shown["value"], expected=shown["expected"], driver=driver))
    if len(anomalies) > 3:
        sentences.append(wording.say("summary.more", count=len(anomalies) - 3))
    if not anomalies:
        sentences.append(wording.say("summary.none"))
    return " ".join(sentences + actions)


# --- the fact check ----------------------------------------------------------------------------
#
# A reply's dates (ISO dates, ISO week labels, "week 10", "March 4") are checked against the dates
# and weeks in the facts, then blanked out. Every other number is parsed with its precision and
# kind (money, percentage, plain) and must match a fact of a compatible kind within half a unit of
# its last written digit: "12%" matches 12.34%, "$1.2k" matches $1,234.56, "12.4%" does not match
# 12.34%. Numbers written next to a sign ("−4%", "+$3") or a direction word ("down 4%", "fell by
# $3") must match a fact of that sign; bare numbers match either sign. Numbers glued to letters
# ("Q4", "B2B", "gpt-4o") are not checked, nor spelled-out numbers without a unit ("two"); with
# one ("twelve percent", "two thousand") they are. Multiples ("doubled", "3 times") are left to the
# claims check below.

MONTHS = {name: number for number, names in enumerate(
    [("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"), ("may",),
     ("jun", "june"), ("jul", "july"), ("aug", "august"), ("sep", "sept", "september"),
     ("oct", "october"), ("nov", "november"), ("dec", "december")], start=1) for name in names}
_MONTH = r"(?P<month>" + "|".join(sorted(MONTHS, key=len, reverse=True)) + r")\.?"
_DAY = r"(?P<day>\d{1,2})(?:st|nd|rd|th)?"
DATE_PATTERNS = [
    re.compile(r"\b(?P<iso>\d{4}-\d{2}-\d{2})(?:T[\d:.]+(?:Z|[+\-−]\d{2}:?\d{2})?)?\b"),
    re.compile(r"\b(?P<year>\d{4})-?W(?P<week>\d{1,2})\b"),
    re.compile(r"\b(?:week|wk|W)\s?(?P<week>\d{1,2})\b", re.IGNORECASE),
    re.compile(rf"\b{_MONTH}\s+{_DAY}(?:\s*(?:–|-|to)\s*(?P<until>\d{{1,2}})(?!\d))?"
               r"(?:,?\s+(?P<year>\d{4}))?\b", re.IGNORECASE),
    re.compile(rf"\b{_DAY}\s+{_MONTH}(?:,?\s+(?P<year>\d{{4}}))?\b", re.IGNORECASE),
]
_CODES = "|".join(sorted(ISO_4217))  # only real currency codes make an amount ("ARR 12" is a plain 12)
NUMBER = re.compile(
    r"(?<![\w.])(?P<sign>[+\-−])?"
    rf"(?P<symbol>(?:R\$|US\$|[$€£¥₹₩])\s?|(?:{_CODES})\s)?(?P<sign2>[+\-−])?"
    r"(?P<digits>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"
    r"(?:(?P<ordinal>st|nd|rd|th)|\s?(?P<suffix>k|K|M|bn|B|thousand|million|billion)(?![\w]))?"
    r"(?P<percent>\s?%|\s(?:percent|per cent)\b)?"
    rf"(?:\s(?P<code_after>{_CODES})\b)?(?![\w])"
)
SCALES = {"k": 1e3, "K": 1e3, "thousand": 1e3, "M": 1e6, "million": 1e6, "bn": 1e9, "B": 1e9, "billion": 1e9}
# English, then Portuguese (a report in pt_BR is summarized in Portuguese)
DOWN_WORDS = (r"down|fell|fall|fallen|dropped|drop|declined|decline|decreased|decrease|lower|shrank|slipped"
              r"|lost|caiu|caíram|queda de|recuou|recuaram|diminuiu|diminuíram|perdeu|perderam")
UP_WORDS = (r"up|rose|risen|rise|grew|grown|increased|increase|gained|gain|higher|jumped|climbed"
            r"|subiu|subiram|alta de|cresceu|cresceram|aumentou|aumentaram|avançou|avançaram")
DIRECTION = re.compile(rf"\b(?:(?P<down>{DOWN_WORDS})|(?P<up>{UP_WORDS}))\s+(?:by\s+)?$", re.IGNORECASE)
SPELLED = {word: value for value, word in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen".split())} | {word: 10 * tens for tens, word in enumerate(
        "twenty thirty forty fifty sixty seventy eighty ninety".split(), start=2)}
_UNITS = "|".join(sorted(SPELLED, key=len, reverse=True))
SPELLED_NUMBER = re.compile(
    rf"\b(?P<words>(?:{_UNITS})(?:[\s-](?:{_UNITS}))?)\s+(?P<unit>percent|per cent|thousand|million|billion)\b",
    re.IGNORECASE)
Day = tuple[int, int, int]  # (year, month, day)
IsoWeek = tuple[int, int]  # (ISO year, week number)
MONEY_KEYS = {"current", "previous", "delta", "weekly", "value", "expected", "lower", "upper"}


@dataclass(frozen=True)
class _Number:
    """A number as written: its value (sign applied when one was written), kind and half-unit tolerance."""

    value: float
    kind: str  # "money", "percent" or "plain"
    signed: bool
    tolerance: float


def check_numbers(text: str, facts: Mapping[str, Any]) -> list[str]:
    """The numbers and dates in `text` that match no fact, as written; empty when all match.

    See the comment above for the rules.
    """
    text = _english_numbers(text, facts)
    known_numbers, known_dates, known_weeks = _facts_index(facts)
    unmatched, blanked = _check_dates(text, known_dates, known_weeks)
    for _, _, written, number in _numbers_at(_blank(blanked, MULTIPLE)):
        if not any(_matches(number, fact) for fact in known_numbers):
            unmatched.append(written)
    return unmatched


def _matches(number: _Number, fact: _Number) -> bool:
    if number.kind != "plain" and fact.kind != number.kind:
        return False
    # Half a unit of the reply's last digit, or of the fact's when the fact itself was shown rounded.
    tolerance = max(number.tolerance, fact.tolerance) * (1 + 1e-9) + 1e-12
    if number.signed:
        return abs(number.value - fact.value) <= tolerance
    return abs(abs(number.value) - abs(fact.value)) <= tolerance


def _numbers(text: str) -> Iterator[tuple[str, _Number]]:
    """Each number written in `text` (dates already blanked), as written and as parsed."""
    for _, _, written, number in _numbers_at(text):
        yield written, number


def _numbers_at(text: str) -> Iterator[tuple[int, int, str, _Number]]:
    """Each number written in `text` (dates already blanked): where, as written and as parsed."""
    found = []
    for match in NUMBER.finditer(text):
        digits = match["digits"].replace(",", "")
        scale = SCALES.get(match["suffix"] or "", 1.0)
        money = match["symbol"] or match["code_after"]
        kind = "percent" if match["percent"] else "money" if money else "plain"
        tolerance = 0.5 * 10 ** -len(digits.partition(".")[2]) * scale
        found.append((match, float(digits) * scale, match["sign"] or match["sign2"], kind, tolerance))
    for match in SPELLED_NUMBER.finditer(text):
        scale = SCALES.get(match["unit"].lower(), 1.0)
        kind = "plain" if match["unit"].lower() in SCALES else "percent"
        found.append((match, _spelled_value(match["words"]) * scale, None, kind, 0.5 * scale))
    for match, value, sign, kind, tolerance in sorted(found, key=lambda item: item[0].start()):
        direction = DIRECTION.search(text[max(0, match.start() - 20):match.start()])
        if sign in ("-", "−") or (sign is None and direction and direction["down"]):
            value = -value
        signed = sign is not None or direction is not None
        yield match.start(), match.end(), match[0].strip(), _Number(value, kind, signed, tolerance)


def _spelled_value(words: str) -> int:
    """"twenty-five" → 25."""
    return sum(SPELLED[word] for word in re.split(r"[\s-]+", words.lower()) if word in SPELLED)


def _blank(text: str, pattern: re.Pattern[str]) -> str:
    """`text` with every match of `pattern` replaced by spaces (positions kept)."""
    return pattern.sub(lambda match: " " * len(match[0]), text)


def _check_dates(text: str, dates: set[Day], weeks: set[IsoWeek]) -> tuple[list[str], str]:
    """Date mentions that are not dates of the facts, and `text` with every date mention blanked."""
    unmatched = []
    years = {year for year, _, _ in dates}
    for pattern in DATE_PATTERNS:
        for match in pattern.finditer(text):
            groups = match.groupdict()
            if groups.get("iso"):
                year, month, day = (int(part) for part in groups["iso"].split("-"))
                ok = (year, month, day) in dates
            elif groups.get("week"):
                number = int(groups["week"])
                ok = (int(groups["year"]), number) in weeks if groups.get("year") else \
                    any(week == number for _, week in weeks)
            else:
                month = MONTHS[groups["month"].lower().rstrip(".")]
                days = [int(groups["day"])] + ([int(groups["until"])] if groups.get("until") else [])
                year = int(groups["year"]) if groups.get("year") else None
                ok = all(any((y, m, d) == (y if year is None else year, month, day) for y, m, d in dates)
                         for day in days) and (year is None or year in years)
            if not ok:
                unmatched.append(match[0])
            text = text[:match.start()] + " " * (match.end() - match.start()) + text[match.end():]
    return unmatched, text


def _english_numbers(text: str, facts: Mapping[str, Any]) -> str:
    """`text` with numbers written in the report's locale ("R$ 1.234,56", "12,3%") rewritten the
    English way ("R$ 1,234.56", "12.3%"), so one parser reads every language."""
    locale = (facts.get("workspace") or {}).get("locale") or DEFAULT_LOCALE
    decimal, group = get_decimal_symbol(locale), get_group_symbol(locale)
    if decimal == ".":
        return text
    grouped = re.escape(group) if group.strip() else r"[\s\u202f\u00a0]"
    pattern = re.compile(rf"\d{{1,3}}(?:{grouped}\d{{3}})+(?:{re.escape(decimal)}\d+)?(?!\d)"
                         rf"|\d+{re.escape(decimal)}\d+")
    def english(match: re.Match[str]) -> str:  # both separators swapped at once: "1.234,5" → "1,234.5"
        return "".join("." if char == decimal else "," if not char.isdigit() else char for char in match[0])

    return pattern.sub(english, text)


def _facts_index(facts: Mapping[str, Any], *, locale_of: Mapping[str, Any] | None = None
                 ) -> tuple[list[_Number], set[Day], set[IsoWeek]]:
    """Every number in the facts with its kind, every date, and every ISO week (year, number).

    Strings are read in the locale of `locale_of` (default: the facts' own workspace)."""
    locale_of = facts if locale_of is None else locale_of
    numbers: list[_Number] = []
    dates: set[Day] = set()
    weeks: set[IsoWeek] = set()

    def visit(node: Any, unit: str | None, key: str | None) -> None:
        if isinstance(node, Mapping):
            unit = node.get("unit", unit)
            for child_key, child in node.items():
                visit(child, unit, child_key)
        elif isinstance(node, list):
            for child in node:
                visit(child, unit, key)
        elif isinstance(node, str):
            dates.update(tuple(int(part) for part in match["iso"].split("-"))
                         for match in DATE_PATTERNS[0].finditer(node))
            weeks.update((int(match["year"]), int(match["week"]))
                         for match in DATE_PATTERNS[1].finditer(node))
            # Numbers inside shown strings (display values, driver phrases, names) are facts at
            # the precision they were shown with.
            numbers.extend(_shown_numbers(_english_numbers(node, locale_of)))
        elif isinstance(node, (int, float)) and not isinstance(node, bool) and math.isfinite(node):
            numbers.append(_fact_number(float(node), unit, key))

    visit(facts, None, None)
    return numbers, dates, weeks


def _shown_numbers(text: str) -> list[_Number]:
    _, blanked = _check_dates(text, set(), set())
    return [number for _, number in _numbers(blanked)]


def _fact_number(value: float, unit: str | None, key: str | None) -> _Number:
    """A numeric fact field, exact (tolerance 0), of the kind its key and its record's unit give it."""
    if key is not None and key.endswith("_pct"):
        return _Number(value, "percent", True, 0.0)
    if key in MONEY_KEYS and unit == "currency":
        return _Number(value, "money", True, 0.0)
    if key in MONEY_KEYS and unit == "ratio":
        return _Number(value * 100, "percent", True, 0.0)
    return _Number(value, "plain", True, 0.0)


# --- claims about a metric -----------------------------------------------------------------------
#
# A metric is named by its label or its name ("Net sales", "net sales", "AOV"), singular or plural.
# A number belongs to the metric named right after it ("977 orders"), else to the last one named
# before it in the same sentence (or clause after a semicolon), at most ATTRIBUTION_WORDS words
# earlier; a direction word or a multiple belongs to the last one named at most CLAIM_WORDS words
# earlier (or right after it: "lower net sales"). A metric's facts are its own record, its mover and
# its anomalies with their drivers, and any driver phrase that names it. Three claims are checked:
# - a number that belongs to one metric but is only another metric's figure ("net sales were
#   $102.88" when $102.88 is the AOV);
# - a direction word ("fell", "rose", "higher", ...) against the sign of the metric's change on the
#   week before and the directions of its anomalies ("net sales fell sharply" at +12.1% fails);
# - a multiple ("doubled", "roughly tripled", "halved", "3 times", "threefold") against the metric's
#   ratio to the week before or an anomaly's ratio to its expected value, within a factor of
#   MULTIPLE_TOLERANCE ("more than doubled" accepts any ratio from 2 up). A multiple that belongs
#   to no metric must match some metric's or anomaly's ratio.

ATTRIBUTION_WORDS = 8
CLAIM_WORDS = 5
MULTIPLE_TOLERANCE = 1.25
# English, then Portuguese
RISE_WORDS = (r"rose|risen|grew|grown|increased|gained|jumped|climbed|surged|soared|spiked|rebounded|climbing"
              r"|rising|growing|increasing|higher"
              r"|subiu|subiram|cresceu|cresceram|aumentou|aumentaram|avançou|avançaram|saltou|saltaram|disparou"
              r"|dispararam|maior|maiores")
FALL_WORDS = (r"fell|fallen|dropped|declined|decreased|shrank|shrunk|slipped|slid|plunged|plummeted|sank|tumbled"
              r"|dipped|falling|dropping|declining|decreasing|lower"
              r"|caiu|caíram|recuou|recuaram|diminuiu|diminuíram|despencou|despencaram|encolheu|encolheram"
              r"|menor|menores")
CLAIM_DIRECTION = re.compile(rf"\b(?:(?P<down>{FALL_WORDS})|(?P<up>{RISE_WORDS}))\b", re.IGNORECASE)
MULTIPLE_WORDS = {"doubled": 2.0, "tripled": 3.0, "trebled": 3.0, "quadrupled": 4.0, "halved": 0.5, "twice": 2.0,
                  "cut in half": 0.5, "twofold": 2.0, "two-fold": 2.0, "threefold": 3.0, "three-fold": 3.0,
                  "fourfold": 4.0, "four-fold": 4.0, "tenfold": 10.0, "ten-fold": 10.0}
MULTIPLE = re.compile(
    r"\b(?P<qualifier>more than |over |nearly |almost )?"
    r"(?:(?P<word>" + "|".join(sorted(map(re.escape, MULTIPLE_WORDS), key=len, reverse=True)) + r")"
    rf"|(?P<times>\d+(?:\.\d+)?|{_UNITS})(?:\s*-?\s*times|x)(?=\W|$))\b", re.IGNORECASE)
CLAUSE_END = re.compile(r"[.!?;](?=\s|$)|\n")


@dataclass(frozen=True)
class _Metric:
    """What the claims check knows of one metric."""

    name: str
    label: str
    numbers: list[_Number]
    directions: set[str]  # "up", "down": of its change on the week before and of its anomalies
    ratios: list[float]  # this week to the week before, and each anomaly's value to its expected
    change: str  # as shown, for messages


def check_claims(text: str, facts: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Claims in `text` about a metric that its facts contradict: (as written, why); empty when none.

    See the comment above for the rules.
    """
    metrics = _metric_claims(facts)
    if not metrics:
        return []
    mention = _mention_pattern(metrics)
    _, text = _check_dates(_english_numbers(text, facts), set(), set())  # dates are the number check's
    ends = [0, *sorted(m.end() for m in CLAUSE_END.finditer(text)), len(text) + 1]
    mentions = [(m.start(), m.end(), _metric_named(m[0], metrics)) for m in mention.finditer(text)]
    found: list[tuple[str, str]] = []
    multiples = list(MULTIPLE.finditer(text))
    for start, end, written, number in _numbers_at(_blank(text, MULTIPLE)):
        metric = _owner(text, mentions, ends, start, end, ATTRIBUTION_WORDS, number=True)
        if metric is None or any(_matches(number, fact) for fact in metric.numbers):
            continue
        others = [other.label for other in metrics.values() if other is not metric
                  and any(_matches(number, fact) for fact in other.numbers)]
        if others:
            found.append((written, f"{written!r} is written as {metric.label}, but it is the figure of "
                                   f"{' or '.join(others)}"))
    for match in CLAIM_DIRECTION.finditer(text):
        metric = _owner(text, mentions, ends, match.start(), match.end(), CLAIM_WORDS)
        direction = "down" if match["down"] else "up"
        if metric is not None and metric.directions and direction not in metric.directions:
            claim = _claim(text, mentions, match)
            found.append((claim, f"{claim!r} contradicts {metric.label} {metric.change} on the week before"))
    for match in multiples:
        metric = _owner(text, mentions, ends, match.start(), match.end(), CLAIM_WORDS)
        ratio = MULTIPLE_WORDS.get((match["word"] or "").lower()) or \
            (float(match["times"]) if match["times"][0].isdigit() else SPELLED[match["times"].lower()])
        candidates = metric.ratios if metric else [r for m in metrics.values() for r in m.ratios]
        if not any(_ratio_matches(ratio, actual, (match["qualifier"] or "").strip().lower())
                   for actual in candidates):
            claim = _claim(text, mentions, match)
            whose = f"{metric.label} changed {metric.change}" if metric else "no metric or anomaly moved that much"
            found.append((claim, f"{claim!r} does not match the facts: {whose}"))
    return found


# --- recommended actions -------------------------------------------------------------------------
#
# The report gives every anomaly and mover one recommended action (facts `action`), grounded in its
# drivers. A reply may repeat those sentences but must not advise anything else: any sentence that
# recommends (it starts with an imperative such as "Check", "Contact", "Start with", or says
# "recommend", "should", "suggest") must be one of the facts' action sentences, as written.

RECOMMENDING = re.compile(
    r"^(?:check|look|start|contact|investigate|review|wait|break|compare|consider|ask|find|focus|reach|call"
    r"|email|see|audit|fix|pause|stop|raise|lower|cut|offer|run|launch|talk|follow|monitor|watch|keep"
    # Portuguese imperatives
    r"|verifique|comece|fale|veja|divida|espere|descubra|confira|revise|analise|investigue|pause|corte|ofere[çc]a"
    r"|aumente|reduza|contate|pergunte|acompanhe|mantenha)\b"
    r"|\b(?:recommend\w*|should|suggest\w*|advise\w*|next step|recomend\w*|suger\w*|sugir\w*|dev(?:e|eria|em)"
    r"|próximo passo)\b", re.IGNORECASE)
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def check_actions(text: str, facts: Mapping[str, Any]) -> list[str]:
    """Sentences of `text` that recommend something the report's actions do not; empty when none."""
    known = {_plain(sentence) for item in [*facts.get("anomalies", []), *facts.get("movers", []),
                                           *facts.get("opportunities", [])]
             for sentence in SENTENCE_END.split(str(item.get("action") or "")) if sentence}
    return [sentence.strip() for sentence in SENTENCE_END.split(text)
            if RECOMMENDING.search(sentence.strip()) and _plain(sentence) not in known]


def _plain(sentence: str) -> str:
    return " ".join(sentence.split()).rstrip(".!").lower()


def _metric_claims(facts: Mapping[str, Any]) -> dict[str, _Metric]:
    """Each metric of the facts with its numbers, directions and ratios."""
    records: dict[str, list[Any]] = {}
    for metric in facts.get("metrics", []):
        records.setdefault(metric["name"], []).append(metric)
    for item in [*facts.get("movers", []), *facts.get("anomalies", [])]:
        if item.get("metric") in records:
            records[item["metric"]].append(item)
    found = {}
    for name, rows in records.items():
        metric, anomalies = rows[0], [row for row in rows if "expected" in row]
        directions = {"up" if delta > 0 else "down" for delta in [metric.get("delta")] if delta}
        directions |= {row["direction"] for row in anomalies if row.get("direction") in ("up", "down")}
        pairs = [(metric.get("current"), metric.get("previous"))] + [(a.get("value"), a.get("expected"))
                                                                     for a in anomalies]
        ratios = [now / then for now, then in pairs if now is not None and then and now / then > 0]
        label = str(metric.get("label") or name.replace("_", " "))
        change = (metric.get("display") or {}).get("change") or "n/a"
        found[name] = _Metric(name, label, _facts_index({"records": rows}, locale_of=facts)[0], directions, ratios,
                              change)
    # A driver phrase that names another metric ("Online store: −31 orders") holds that metric's figures too.
    pattern = _mention_pattern(found)
    for anomaly in facts.get("anomalies", []):
        for driver in anomaly.get("drivers", []):
            phrase = str(driver.get("phrase", ""))
            for named in {_metric_named(m[0], found).name for m in pattern.finditer(phrase)}:
                found[named].numbers.extend(_shown_numbers(_english_numbers(phrase, facts)))
    return found


def _mention_pattern(metrics: Mapping[str, _Metric]) -> re.Pattern[str]:
    names = {alias for metric in metrics.values() for alias in _aliases(metric)}
    alternatives = [re.escape(alias.removesuffix("s")) + "s?" for alias in sorted(names, key=len, reverse=True)]
    return re.compile(r"\b(?:" + "|".join(alternatives) + r")\b", re.IGNORECASE)


def _aliases(metric: _Metric) -> set[str]:
    return {metric.label.lower(), metric.name.replace("_", " ").lower()}


def _metric_named(written: str, metrics: Mapping[str, _Metric]) -> _Metric:
    key = written.lower()
    return next(metric for metric in metrics.values()
                if any(key.removesuffix("s") == alias.removesuffix("s") for alias in _aliases(metric)))


def _owner(text: str, mentions: list[tuple[int, int, _Metric]], ends: list[int], start: int, end: int,
           words: int, *, number: bool = False) -> _Metric | None:
    """The metric a number or word at text[start:end] is about, or None (see the comment above)."""
    clause = next(i for i, bound in enumerate(ends) if bound > start)
    low, high = ends[clause - 1], ends[clause]
    following = [m for m in mentions if end <= m[0] < high]
    if number and following and not text[end:following[0][0]].strip(" ()"):  # "977 orders"
        return following[0][2]
    before = [m for m in mentions if low <= m[1] <= start and len(text[m[1]:start].split()) <= words]
    if before:
        return before[-1][2]
    if not number and following and not text[end:following[0][0]].strip():  # "lower net sales"
        return following[0][2]
    return None


def _claim(text: str, mentions: list[tuple[int, int, _Metric]], match: re.Match[str]) -> str:
    """The claim as written: from the metric's name before it, if close, to the word."""
    before = [m for m in mentions if m[1] <= match.start() and len(text[m[1]:match.start()].split()) <= CLAIM_WORDS]
    start = before[-1][0] if before else match.start()
    return " ".join(text[start:match.end()].split())


def _ratio_matches(claimed: float, actual: float, qualifier: str) -> bool:
    if qualifier in ("more than", "over"):
        return actual >= claimed / 1.05
    if qualifier in ("nearly", "almost"):
        return claimed / MULTIPLE_TOLERANCE <= actual <= claimed * 1.02
    return claimed / MULTIPLE_TOLERANCE <= actual <= claimed * MULTIPLE_TOLERANCE
