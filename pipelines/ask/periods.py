"""Time phrases of questions: a closed grammar, resolved to dates in the workspace's timezone.

`find_period` finds the one time phrase of a question and says which days it means, given the
workspace's `today` (its local date) and its holiday country. Conventions (docs/ask.md):

- "last 7 days" is the 7 complete days ending yesterday; "last N weeks/months" the N complete
  ISO weeks (Monday to Sunday) or calendar months before the current one.
- "this week/month/quarter/year", MTD/QTD/YTD and "since <date>" run to today: partial, and marked so.
- "last week/month/quarter/year" is the complete one before the current one.
- A named month, quarter, weekday, holiday or date without a year is its latest occurrence that
  has begun: "in March" in December is this year's March, in February last year's.
- "between X and Y" and "from X to Y" include both days.
- No time phrase: the last 7 complete days.
- Days to come (questions about forecasts): "next N days" are the N days after today, "next N
  weeks/months/quarters" the N whole ISO weeks, months or quarters after the current one, "next
  week/month/quarter/year" and "tomorrow" the one after today's. `ahead` marks them.

Comparisons of a partial period use the same number of elapsed days (`previous`, `year_before`).
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, replace
from datetime import date, timedelta

from pipelines.insights.calendar import holiday_calendar

MONTHS = {name.lower(): number for number, name in enumerate(calendar.month_name) if name}
MONTHS |= {name.lower(): number for number, name in enumerate(calendar.month_abbr) if name and name != "May"}
MONTHS["sept"] = 9
WEEKDAYS = {name.lower(): number for number, name in enumerate(calendar.day_name)}
UNITS = {"day": "day", "days": "day", "week": "week", "weeks": "week", "month": "month", "months": "month",
         "quarter": "quarter", "quarters": "quarter", "year": "year", "years": "year"}
NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
           "ten": 10, "eleven": 11, "twelve": 12, "fourteen": 14, "thirty": 30, "ninety": 90}
DEFAULT_DAYS = 7

_MONTH = r"(?:january|february|march|april|may|june|july|august|september|october|november|december|" \
         r"jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec)"
_DAY = r"(\d{1,2})(?:st|nd|rd|th)?\b"
# A date: 2026-03-01, "march 1", "march 1st, 2026", "1 march 2026".
DATE = rf"(?:\d{{4}}-\d{{2}}-\d{{2}}|{_MONTH}\s+{_DAY}(?:,?\s+\d{{4}})?|{_DAY}\s+(?:of\s+)?{_MONTH}(?:,?\s+\d{{4}})?)"
_COUNT = r"(\d+|" + "|".join(NUMBERS) + r")"


class PeriodError(ValueError):
    """A time phrase that names no real day: "February 30", "week 54", "between May 5 and May 1"."""


@dataclass(frozen=True)
class Period:
    """Days from `start` to `end`, both included, in the workspace's timezone.

    Attributes:
        kind: what the phrase named ("day", "week", "month", "quarter", "year", "days", "range"),
            which decides the period before it.
        partial: it runs to today, so its last day is still under way.
        phrase: the words of the question it came from ("" for the default).
        ahead: it names days to come ("next month"), which only forecasts know.
    """

    start: date
    end: date
    kind: str
    partial: bool = False
    phrase: str = ""
    ahead: bool = False

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def whole(self) -> Period:
        """A partial week, month, quarter or year as a whole, to its last day (its days to come
        are forecast); any other period as it is."""
        if not self.partial or self.kind not in ("week", "month", "quarter", "year"):
            return self
        end = self.start + timedelta(days=6) if self.kind == "week" else \
            _add_months(self.start, {"month": 1, "quarter": 3, "year": 12}[self.kind]) - timedelta(days=1)
        return replace(self, end=end, partial=False, ahead=True)

    def previous(self) -> Period:
        """The period before, of the same kind: the month before a month, the 7 days before 7 days.
        A partial period compares with as many days of the one before: Dec 1–3 with Nov 1–3."""
        if self.kind in ("month", "quarter", "year"):
            months = {"month": 1, "quarter": 3, "year": 12}[self.kind]
            start = _add_months(self.start, -months)
            end = _add_months(start, months) - timedelta(days=1)
            if self.partial:
                end = min(end, start + timedelta(days=self.days - 1))
            return Period(start, end, self.kind)
        return Period(self.start - timedelta(days=self.days), self.start - timedelta(days=1), self.kind)

    def year_before(self) -> Period:
        """The same period a year earlier: 52 weeks earlier for days and weeks (same weekdays),
        the same calendar dates for months, quarters, years and ranges."""
        if self.kind in ("day", "days", "week"):
            shift = timedelta(days=364)
            return Period(self.start - shift, self.end - shift, self.kind)
        return Period(_add_months(self.start, -12), _add_months(self.end, -12), self.kind)


def find_period(text: str, today: date, country: str | None = None) -> tuple[Period, tuple[int, int]] | None:
    """The time phrase of `text` (lower case) and the span it covers, or None when there is none.

    Raises:
        PeriodError: the phrase names no real day, or a period that starts after today.
    """
    for pattern, build in _GRAMMAR:
        if pattern is None:  # holidays go after dates and months, before weekdays and bare years
            found = _holiday(text, today, country)
            if found is not None:
                return _checked(found[0], today), found[1]
            continue
        match = re.search(pattern, text)
        if match:
            return _checked(replace(build(match, today), phrase=match.group(0).strip()), today), match.span()
    return None


def default_period(today: date) -> Period:
    """The period of a question without a time phrase: the last 7 complete days."""
    return Period(today - timedelta(days=DEFAULT_DAYS), today - timedelta(days=1), "days")


def next_days(today: date, days: int = DEFAULT_DAYS) -> Period:
    """The days after today: a forecast question's period without a time phrase."""
    return Period(today + timedelta(days=1), today + timedelta(days=days), "days", ahead=True)


def _checked(period: Period, today: date) -> Period:
    if period.start > period.end:
        raise PeriodError(f"{period.phrase!r} ends before it starts")
    if period.ahead:
        return period
    if period.start > today:
        raise PeriodError(f"{period.phrase!r} has not begun yet (today is {today.isoformat()})")
    if period.end >= today:  # runs into today or beyond: to date
        return replace(period, end=today, partial=True)
    return period


def _add_months(day: date, months: int) -> date:
    """`day` moved by whole months, clipped to the month's last day (Mar 31 − 1 month = Feb 28)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def _month_start(day: date) -> date:
    return day.replace(day=1)


def _quarter_start(day: date) -> date:
    return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)


def _week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _count(word: str) -> int:
    return int(word) if word.isdigit() else NUMBERS[word]


def _latest(candidates: list[date], today: date) -> date:
    """The latest of `candidates` that is not after today."""
    begun = [day for day in candidates if day <= today]
    return max(begun) if begun else min(candidates)


def parse_date(words: str, today: date) -> date:
    """A date phrase: ISO, "march 1", "1 march", "march 1st, 2026"; without a year, its latest past occurrence."""
    words = words.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", words):
            return date.fromisoformat(words)
        match = re.fullmatch(rf"({_MONTH})\s+{_DAY}(?:,?\s+(\d{{4}}))?", words) or None
        if match:
            month, day, year = MONTHS[match.group(1)], int(match.group(2)), match.group(3)
        else:
            match = re.fullmatch(rf"{_DAY}\s+(?:of\s+)?({_MONTH})(?:,?\s+(\d{{4}}))?", words)
            day, month, year = int(match.group(1)), MONTHS[match.group(2)], match.group(3)
        if year:
            return date(int(year), month, day)
        return _latest([date(today.year + shift, month, day) for shift in (-1, 0)], today)
    except ValueError as exc:
        raise PeriodError(f"{words!r} is not a date") from exc


def _between(match: re.Match, today: date) -> Period:
    first, last = parse_date(match.group("a"), today), parse_date(match.group("b"), today)
    if first > last and not re.search(r"\d{4}", match.group("a")):  # "between Dec 20 and Jan 5"
        first = date(first.year - 1, first.month, first.day)
    return Period(first, last, "range")


def _since(match: re.Match, today: date) -> Period:
    return Period(parse_date(match.group("a"), today), today, "range")


def _on_date(match: re.Match, today: date) -> Period:
    day = parse_date(match.group("a"), today)
    return Period(day, day, "day")


def _last_n(match: re.Match, today: date) -> Period:
    count, unit = _count(match.group(1)), UNITS[match.group(2)]
    if count < 1:
        raise PeriodError(f"{match.group(0)!r} counts no days")
    if unit == "day":
        return Period(today - timedelta(days=count), today - timedelta(days=1), "days")
    if unit == "week":
        end = _week_start(today) - timedelta(days=1)
        return Period(end - timedelta(days=7 * count - 1), end, "days")
    if unit == "month":
        end = _month_start(today)
        return Period(_add_months(end, -count), end - timedelta(days=1), "range")
    if unit == "quarter":
        end = _quarter_start(today)
        return Period(_add_months(end, -3 * count), end - timedelta(days=1), "range")
    return Period(date(today.year - count, 1, 1), date(today.year - 1, 12, 31), "range")


def _current(unit: str, today: date) -> Period:
    start = {"day": today, "week": _week_start(today), "month": _month_start(today),
             "quarter": _quarter_start(today), "year": date(today.year, 1, 1)}[unit]
    return Period(start, today, unit, partial=True)


def _this(match: re.Match, today: date) -> Period:
    return _current(UNITS[match.group(1)], today)


def _to_date(match: re.Match, today: date) -> Period:
    return _current({"m": "month", "q": "quarter", "y": "year", "w": "week"}[match.group(1)[0]], today)


def _last(match: re.Match, today: date) -> Period:
    unit = UNITS[match.group(1)]
    if unit == "day":
        return Period(today - timedelta(days=1), today - timedelta(days=1), "day")
    current = _current(unit, today).start
    if unit == "week":
        return Period(current - timedelta(days=7), current - timedelta(days=1), "week")
    months = {"month": 1, "quarter": 3, "year": 12}[unit]
    return Period(_add_months(current, -months), current - timedelta(days=1), unit)


def _next_n(match: re.Match, today: date) -> Period:
    count, unit = _count(match.group(1)), UNITS[match.group(2)]
    if count < 1:
        raise PeriodError(f"{match.group(0)!r} counts no days")
    if unit == "day":
        return Period(today + timedelta(days=1), today + timedelta(days=count), "days", ahead=True)
    if unit == "week":
        start = _week_start(today) + timedelta(days=7)
        return Period(start, start + timedelta(days=7 * count - 1), "days", ahead=True)
    months = {"month": 1, "quarter": 3, "year": 12}[unit] * count
    start = _add_months(_current(unit, today).start, {"month": 1, "quarter": 3, "year": 12}[unit])
    return Period(start, _add_months(start, months) - timedelta(days=1), "range", ahead=True)


def _next(match: re.Match, today: date) -> Period:
    unit = UNITS[match.group(1)]
    if unit == "day":
        return _next_day(today)
    start = _current(unit, today).start
    if unit == "week":
        return Period(start + timedelta(days=7), start + timedelta(days=13), "week", ahead=True)
    months = {"month": 1, "quarter": 3, "year": 12}[unit]
    start = _add_months(start, months)
    return Period(start, _add_months(start, months) - timedelta(days=1), unit, ahead=True)


def _next_day(today: date) -> Period:
    return Period(today + timedelta(days=1), today + timedelta(days=1), "day", ahead=True)


def _day(offset: int):
    def build(match: re.Match, today: date) -> Period:
        day = today - timedelta(days=offset)
        return Period(day, day, "day")
    return build


def _weekend(match: re.Match, today: date) -> Period:
    saturday = _week_start(today) - timedelta(days=2)
    return Period(saturday, saturday + timedelta(days=1), "days")


def _weekday(match: re.Match, today: date) -> Period:
    """The latest such weekday before today ("last monday" on a Monday is a week ago)."""
    back = (today.weekday() - WEEKDAYS[match.group(1)]) % 7 or 7
    day = today - timedelta(days=back)
    return Period(day, day, "day")


def _quarter(match: re.Match, today: date) -> Period:
    number, year = int(match.group(1)), match.group(2)
    starts = [date(int(year), 3 * number - 2, 1)] if year else \
        [date(today.year + shift, 3 * number - 2, 1) for shift in (-1, 0)]
    start = _latest(starts, today)
    return Period(start, _add_months(start, 3) - timedelta(days=1), "quarter")


def _iso_week(match: re.Match, today: date) -> Period:
    number, year = int(match.group(1)), match.group(2)
    try:
        if year:
            start = date.fromisocalendar(int(year), number, 1)
        else:
            starts = []
            for shift in (-1, 0):
                try:
                    starts.append(date.fromisocalendar(today.isocalendar().year + shift, number, 1))
                except ValueError:
                    continue
            if not starts:
                raise ValueError(number)
            start = _latest(starts, today)
    except ValueError as exc:
        raise PeriodError(f"{match.group(0)!r} is not an ISO week") from exc
    return Period(start, start + timedelta(days=6), "week")


def _month(match: re.Match, today: date) -> Period:
    month, year, last = MONTHS[match.group("m")], match.group("y"), match.group("last")
    if year:
        start = date(int(year), month, 1)
    else:
        starts = [date(today.year + shift, month, 1) for shift in (-1, 0)]
        start = _latest(starts, today)
        if last and start == _month_start(today):  # "last march" in March: a year ago
            start = date(start.year - 1, month, 1)
    return Period(start, _add_months(start, 1) - timedelta(days=1), "month")


def _year(match: re.Match, today: date) -> Period:
    year = int(match.group(1))
    return Period(date(year, 1, 1), date(year, 12, 31), "year")


# Longest phrases first: "between march 1 and march 5" before "march 1", "last 7 days" before "last week".
_GRAMMAR = [
    (rf"\bbetween\s+(?P<a>{DATE})\s+and\s+(?P<b>{DATE})", _between),
    (rf"\bfrom\s+(?P<a>{DATE})\s+(?:to|until|through|till)\s+(?P<b>{DATE})", _between),
    (rf"\bsince\s+(?P<a>{DATE})", _since),
    (rf"\b(?:in\s+the\s+|over\s+the\s+|during\s+the\s+|for\s+the\s+)?(?:last|past|previous|trailing)\s+{_COUNT}\s+"
     r"(days?|weeks?|months?|quarters?|years?)\b", _last_n),
    (rf"\b(?:in\s+the\s+|over\s+the\s+|during\s+the\s+|for\s+the\s+)?(?:next|coming)\s+{_COUNT}\s+"
     r"(days?|weeks?|months?|quarters?|years?)\b", _next_n),
    (r"\b(?:in\s+the\s+|over\s+the\s+|during\s+the\s+|for\s+the\s+)?(?:next|coming)\s+(day|week|month|quarter|year)\b",
     _next),
    (r"\btomorrow\b", lambda match, today: _next_day(today)),
    (r"\b(?:so\s+far\s+)?this\s+(week|month|quarter|year)(?:\s+so\s+far|\s+to\s+date)?\b", _this),
    (r"\b(mtd|qtd|ytd|wtd|month[\s-]to[\s-]date|quarter[\s-]to[\s-]date|year[\s-]to[\s-]date|week[\s-]to[\s-]date)\b",
     _to_date),
    (r"\b(?:in\s+|during\s+|over\s+)?(?:the\s+)?last\s+weekend\b", _weekend),
    (r"\b(?:last|previous|past)\s+(week|month|quarter|year)\b", _last),
    (r"\bq([1-4])(?:\s+(\d{4}))?\b", _quarter),
    (r"\b(?:iso\s+)?week\s+(\d{1,2})(?:(?:\s+of|,)?\s+(\d{4}))?\b", _iso_week),
    (rf"\b(?:on\s+)?(?P<a>{DATE})", _on_date),
    (rf"\b(?:(?P<last>last)\s+|in\s+|during\s+|for\s+|of\s+)(?P<m>{_MONTH}|may)(?:\s+(?P<y>\d{{4}}))?\b", _month),
    (rf"\b(?P<m>{_MONTH}|may)\s+(?P<y>\d{{4}})\b", _month),
    (rf"\b(?P<last>)(?P<m>{_MONTH})(?P<y>)\b", _month),
    (None, None),
    (r"\byesterday\b", _day(1)),
    (r"\btoday\b", _day(0)),
    (r"\b(?:last\s+|on\s+|previous\s+)?(monday|tuesday|wednesday|thursday|friday|saturday|sunday)\b", _weekday),
    (r"\b(?:in|during|for)\s+(\d{4})\b", _year),
    (r"\b(20\d{2})\b", _year),
]

# Words people use for holidays, beyond the names the holidays package gives them.
HOLIDAY_ALIASES = {"christmas": "christmas day", "xmas": "christmas day", "new year's day": "new year's day",
                   "new year": "new year's day", "thanksgiving": "thanksgiving", "easter": "easter sunday",
                   "independence day": "independence day", "july 4th": "independence day",
                   "fourth of july": "independence day"}


def _holiday(text: str, today: date, country: str | None) -> tuple[Period, tuple[int, int]] | None:
    """A holiday named in `text` ("black friday", "christmas 2025", "last thanksgiving"): its latest
    occurrence that has begun, or the given year's."""
    names = _holiday_dates(country, (today.year - 1, today.year))
    for name in sorted(names, key=len, reverse=True):
        match = re.search(rf"\b(?:on\s+|over\s+|during\s+|for\s+|at\s+)?(?:(last|this)\s+)?{re.escape(name)}"
                          r"(?:\s+(\d{4}))?\b", text)
        if not match:
            continue
        if match.group(2):
            dates = _holiday_dates(country, (int(match.group(2)),)).get(name)
            if not dates:
                raise PeriodError(f"no {name} in {match.group(2)}")
            day = min(dates)
        else:
            begun = [day for day in names[name] if day < today or (day == today and match.group(1) != "last")]
            if not begun:
                raise PeriodError(f"{match.group(0)!r} has not happened yet")
            day = max(begun)
        return Period(day, day, "day", phrase=match.group(0).strip()), match.span()
    return None


def _holiday_dates(country: str | None, years: tuple[int, ...]) -> dict[str, list[date]]:
    """Holiday names (lower case, with HOLIDAY_ALIASES) → their dates in `years`."""
    names: dict[str, list[date]] = {}
    for day, labels in holiday_calendar(country, years).days.items():
        if day.year in years:
            for label in labels:
                names.setdefault(_plain(label), []).append(day)
    for alias, name in HOLIDAY_ALIASES.items():
        known = next((known for known in names if known == name or known.startswith(name)), None)
        if known is not None:
            names.setdefault(alias, names[known])
    return names


def _plain(name: str) -> str:
    return " ".join(name.lower().replace("’", "'").split())
