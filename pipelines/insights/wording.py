"""How a report says things: its words in the workspace's language, its numbers by its locale.

Words come from a small message table per language (`MESSAGES`); numbers, money and weekday names
come from Babel's CLDR data for the locale (docs/reports.md, "Languages and number formats"). A
message missing from a language falls back to English, so a partial table never breaks a report.
Dates stay ISO 8601 (2026-03-04) in every language: they read the same everywhere, and the LLM
summary's fact check reads them without a calendar per language.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import format_decimal

from pipelines.currencies import minor_digits

DEFAULT_LOCALE = "en"
MINUS = "−"  # a true minus sign, as the drivers' phrases use
# Symbols that are unambiguous on their own, per language; every other currency is written with
# its ISO code ("CHF 1,234.50").
SYMBOLS = {
    "en": {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "INR": "₹", "KRW": "₩"},
}

MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "title": "Weekly report: {name}, {week}",
        "period": "Monday {start} to Sunday {end}, {timezone}; compared with {previous}",
        "partial": " (data for {days} of 7 days)",
        "metric": "Metric",
        "this_week": "This week",
        "last_week": "Last week",
        "change": "Change",
        "history": "Last {weeks} weeks",
        "movers": "Top movers",
        "anomalies": "Anomalies",
        "none": "none",
        "none_this_week": "none this week",
        "held_back": "{count} smaller findings this week are kept in insights.anomalies",
        "mover": "{label} {change} ({delta}), {outcome}",
        "good": "good",
        "bad": "bad",
        "flat": "flat",
        "n/a": "n/a",
        "unchanged": "unchanged",
        "from_zero": "from zero",
        "from_near_zero": "from near zero",
        "turned_negative": "turned negative",
        "turned_positive": "turned positive",
        "anomaly": ("{date} ({weekday}): {label} {value}, expected {expected} (band {band}); {direction}, "
                    "severity {severity}, score {score}, rule {rule}{stake}{holiday}"),
        "band": "{lower} to {upper}",
        "stake": "; {impact} at stake",
        "holiday": "; on {holiday}, against the same holiday last year",
        "above": "above", "below": "below",
        "expected": "expected", "last_week_base": "last week",
        "direction": "{where} {base}, {outcome} news",
        "severity.high": "high", "severity.medium": "medium", "severity.low": "low",
        "related": "also {label} {value} against {expected} {base} ({date}, {rule})",
        "chart_title": "{name}: last {weeks} weeks to {week}",
        "chart_alt": "Trend of the headline metrics, {weeks} weeks",
        # driver phrases: "country DE: $1,201.20 against $300.00 on usual Wednesdays (+300%), 75% of
        # the rise (usually 20%)"
        "driver": "{what}: {actual} against {expected} on usual {weekdays} ({change}), {share}",
        "driver_new": "{what}: {actual} against none on usual {weekdays}, {share}",
        "driver_unattributed": "not attributed to one {dimension}: {share}",
        "share": "{share} of the {movement} (usually {usual})",
        "share_plain": "{share} of the {movement}",
        "offsetting": "offsetting {share}",
        "rise": "rise", "drop": "drop",
        "or": "{first} or {last}",
        # recommended actions: one sentence per anomaly and mover (docs/reports.md)
        "action.driver.bad": "Start with {subject}{share}: {hint}.",
        "action.driver.good": "Led by {subject}{share}: {hint}.",
        "action.everywhere": "No single {dimensions} explains it: {hint}.",
        "action.plain": "{hint}.",
        "action.partial_week": ("Wait for the full week before acting: this week has data for {days} of 7 days, "
                                "so {label} compares part of a week with a whole one."),
        "action.see_anomaly": "See the anomaly of {date}. {action}",
        "action.breakdown.bad": ("Break {label} down by {dimensions} for {week} against {previous} to find "
                                 "where the {movement} came from."),
        "action.breakdown.good": ("Break {label} down by {dimensions} for {week} against {previous} to find "
                                  "what worked."),
        "hint.bad": "check what changed there on {date}: prices, stock, listings, checkout or campaigns",
        "hint.good": "find out what worked there and whether it can be repeated",
        "hint.refunds.bad": "check its refunds of {date} for a product fault, a delivery problem or a misleading listing",
        "hint.discounts.bad": ("check which discount codes were used on {date} and whether a promotion ran wider "
                               "than planned"),
        "hint.churned_mrr.bad": "contact the customers who cancelled on {date} and ask why",
        "hint.churned_subscriptions.bad": "contact the customers who cancelled on {date} and ask why",
        "hint.contraction_mrr.bad": "contact the customers who downgraded on {date} and ask why",
        "hint.new_mrr.bad": "check sign-ups, trials and the pricing page for {date}",
        "hint.new_subscriptions.bad": "check sign-ups, trials and the pricing page for {date}",
        "hint.expansion_mrr.bad": "check upgrade prompts and seat limits for {date}",
        "hint.mrr.bad": "check the cancellations and downgrades of {date}",
        "hint.arr.bad": "check the cancellations and downgrades of {date}",
        "hint.net_new_mrr.bad": "check the cancellations and downgrades of {date}",
    },
}


def supported(locale: str) -> bool:
    """Whether Babel knows `locale` (e.g. "en", "pt_BR")."""
    try:
        Locale.parse(locale)
    except (UnknownLocaleError, ValueError, TypeError):
        return False
    return True


@dataclass(frozen=True)
class Wording:
    """The words and number formats of one report: a locale and a reporting currency."""

    locale: str = DEFAULT_LOCALE
    currency: str = "USD"

    @property
    def language(self) -> str:
        return Locale.parse(self.locale).language

    def say(self, key: str, **values: object) -> str:
        """The message `key` in the report's language (English when that language lacks it)."""
        template = MESSAGES.get(self.language, {}).get(key) or MESSAGES[DEFAULT_LOCALE][key]  # KeyError: unknown
        return template.format(**values)

    def number(self, value: float, digits: int = 0) -> str:
        """|value| with the locale's separators and `digits` decimals: "1,234.5", "1.234,5"."""
        pattern = "#,##0" + ("." + "0" * digits if digits else "")
        return format_decimal(abs(value), format=pattern, locale=self.locale, decimal_quantization=True)

    def decimal(self, value: float, digits: int = 1) -> str:
        """A signed plain number: "−4.4", "6.2"."""
        return self._signed(self.number(value, digits), round(value, digits), False)

    def money(self, value: float | None, *, signed: bool = False, whole: bool = False) -> str:
        """An amount with its symbol (or ISO code) and the currency's minor digits: "$1,234.50", "¥1,235".

        `whole` drops the minor digits (chart axes).
        """
        if value is None:
            return self.say("n/a")
        digits = 0 if whole else minor_digits(self.currency)
        body = self.number(value, digits)
        code = self.currency.upper()
        symbol = SYMBOLS.get(self.language, SYMBOLS[DEFAULT_LOCALE]).get(code)
        prefix, _, _ = Locale.parse(self.locale).currency_formats["standard"].pattern.partition("#")
        space = prefix.replace("¤", "")  # the locale's gap between symbol and digits, often none
        amount = f"{symbol}{space}{body}" if symbol else f"{code}{space or ' '}{body}"
        return self._signed(amount, round(value, digits), signed)

    def count(self, value: float | None, *, signed: bool = False) -> str:
        if value is None:
            return self.say("n/a")
        return self._signed(self.number(value), round(value), signed)

    def percent(self, fraction: float | None, *, digits: int = 1, signed: bool = False) -> str:
        """A fraction as a percentage: 0.123 → "12.3%" ("+12.3%" signed)."""
        if fraction is None:
            return self.say("n/a")
        return self._signed(self.number(fraction * 100, digits) + "%", round(fraction * 100, digits), signed)

    def value(self, unit: str, value: float | None, *, signed: bool = False, whole: bool = False) -> str:
        """A metric value as the report shows it: money, a whole count, or a ratio as a percentage."""
        if unit == "currency":
            return self.money(value, signed=signed, whole=whole)
        if unit == "ratio":
            return self.percent(value, digits=0 if whole else 1, signed=signed)
        return self.count(value, signed=signed)

    def weekday(self, day: date) -> str:
        """"Wednesday", "quarta-feira"."""
        return format_date(day, "EEEE", locale=self.locale)

    def weekdays(self, day: date) -> str:
        """The plural used in "usual Wednesdays": the language's own table, else English's rule."""
        plural = MESSAGES.get(self.language, {}).get(f"weekdays.{day.weekday()}")
        return plural or self.weekday(day) + "s"

    @staticmethod
    def _signed(text: str, rounded: float, signed: bool) -> str:
        # Signs follow the rounded value, so a tiny negative never shows as "−$0.00".
        if rounded < 0:
            return MINUS + text
        return "+" + text if signed and rounded > 0 else text
