"""The ECB's euro foreign exchange reference rates, as the sandbox serves them (docs/sandbox.md, "FX").

The ECB publishes, on each TARGET business day (no weekends, 1 January, Good Friday, Easter
Monday, 1 May, 25 and 26 December), how many units of each of about thirty currencies one euro
buys. Its files are served here in their real formats, at the ECB's own paths:

- `/stats/eurofxref/eurofxref-hist.zip`: `eurofxref-hist.csv`, newest day first, one column per
  currency the ECB ever quoted (`N/A` where it did not), every line ending in a comma;
- `/stats/eurofxref/eurofxref-hist.xml`: the gesmes envelope with one `<Cube time=...>` per day.

Rates come from the store: a fixture may list its own (`"ecb": {"2026-03-02": {"USD": "1.2060"}}`,
carried forward to the clock), otherwise a fixture gets `FIXTURE_RATES` on every day, and the
simulation a seeded wobble around 2025 levels. `convert` is the ground truth's conversion: the
day's rate, carried forward over days without one, crossed through the euro.
"""

from __future__ import annotations

import bisect
import csv
import hashlib
import io
import math
import zipfile
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from functools import lru_cache

from dateutil.easter import easter

from pipelines.sandbox.core.http import ApiHandler, Response

# Currencies quoted today, with their level in units per euro (rounded 2025 levels).
LEVELS = {
    "USD": 1.08, "JPY": 162.0, "CZK": 25.0, "DKK": 7.46, "GBP": 0.85, "HUF": 395.0, "PLN": 4.3, "RON": 4.97,
    "SEK": 11.35, "CHF": 0.96, "ISK": 148.0, "NOK": 11.4, "TRY": 35.0, "AUD": 1.61, "BRL": 5.9, "CAD": 1.47,
    "CNY": 7.77, "HKD": 8.35, "IDR": 17500.0, "ILS": 4.03, "INR": 89.2, "KRW": 1475.0, "MXN": 19.6,
    "MYR": 5.05, "NZD": 1.75, "PHP": 62.8, "SGD": 1.45, "THB": 39.4, "ZAR": 19.5,
}
# Columns of the real file for currencies the ECB no longer quotes: always N/A here.
DISCONTINUED = ["CYP", "EEK", "LTL", "LVL", "MTL", "ROL", "SIT", "SKK", "TRL", "HRK", "RUB", "BGN"]
# A fixture's rates unless it lists its own: JPY→USD 1.206 / 180 = 0.0067 and BRL→USD 1.206 / 6.7
# = 0.18 exactly, so hand-worked figures stay round.
FIXTURE_RATES = {"USD": Decimal("1.206"), "JPY": Decimal("180"), "BRL": Decimal("6.7"), "GBP": Decimal("0.9"),
                 "CAD": Decimal("1.675")}
FIRST_DAY = date(2024, 1, 2)  # the simulation's rates start here, or a month before its data (the real file: 1999-01-04)
FIXTURE_FIRST_DAY = date(2020, 1, 2)


def target_day(day: date) -> bool:
    """Whether the ECB publishes rates on `day` (a TARGET business day)."""
    if day.weekday() >= 5 or (day.month, day.day) in {(1, 1), (5, 1), (12, 25), (12, 26)}:
        return False
    return day not in {easter(day.year) - timedelta(days=2), easter(day.year) + timedelta(days=1)}


def _simulated(currency: str, day: date) -> Decimal:
    """A seeded wobble of a few percent around the currency's level, rounded as the ECB rounds (5 figures)."""
    phase = int(hashlib.sha256(currency.encode()).hexdigest()[:8], 16) / 2**32 * 2 * math.pi
    t = (day - FIRST_DAY).days
    value = LEVELS[currency] * (1 + 0.04 * math.sin(2 * math.pi * t / 365 + phase) + 0.01 * math.sin(t / 4.3 + phase))
    decimals = max(2, 4 - int(math.floor(math.log10(value))))
    return Decimal(str(round(value, decimals)))


def published(store) -> dict[date, dict[str, Decimal]]:
    """Every TARGET day's rates up to the store's clock, oldest first."""
    return _published(*_spec(store))


def _spec(store) -> tuple[str, date, date, tuple]:
    """What `_published` needs, hashable: the kind of store, its first and last day, a fixture's own rates."""
    last = datetime.fromtimestamp(store.clock, timezone.utc).date() if store.clock else date.today()
    fixture = store.get_meta("fixture")
    if fixture is None:
        params = store.get_meta("params") or {}
        start = date.fromisoformat(params["start"]) - timedelta(days=30) if "start" in params else FIRST_DAY
        return "simulated", min(start, FIRST_DAY), last, ()
    listed = tuple(sorted((day, tuple(sorted(rates.items()))) for day, rates in fixture.get("ecb", {}).items()))
    return "fixture", FIXTURE_FIRST_DAY, last, listed


@lru_cache(maxsize=8)
def _published(kind: str, first: date, last: date, listed: tuple) -> dict[date, dict[str, Decimal]]:
    days: dict[date, dict[str, Decimal]] = {}
    listed_rates = {date.fromisoformat(day): {c: Decimal(r) for c, r in rates} for day, rates in listed}
    current = dict(FIXTURE_RATES)
    day = first
    while day <= last:
        if kind == "fixture" and day in listed_rates:
            current = {**current, **listed_rates[day]}
        if target_day(day):
            days[day] = dict(current) if kind == "fixture" else {c: _simulated(c, day) for c in LEVELS}
        day += timedelta(days=1)
    return days


def units_per_eur(store, currency: str, on: date) -> Decimal:
    """The rate in force on `on`: the last one published on or before it."""
    if currency.upper() == "EUR":
        return Decimal(1)
    spec = _spec(store)
    rates, days = _published(*spec), _days(*spec)
    for index in range(bisect.bisect_right(days, on) - 1, -1, -1):
        if currency.upper() in rates[days[index]]:
            return rates[days[index]][currency.upper()]
    raise KeyError(f"the sandbox's ECB rates have no {currency.upper()} on or before {on}")


@lru_cache(maxsize=8)
def _days(*spec) -> list[date]:
    return sorted(_published(*spec))


def convert(store, amount: Decimal, from_currency: str, to_currency: str, on: date) -> Decimal:
    """`amount` from one currency into another at `on`'s reference rates, crossed through the euro."""
    if from_currency.upper() == to_currency.upper():
        return amount
    return amount * units_per_eur(store, to_currency, on) / units_per_eur(store, from_currency, on)


def hist_csv(store) -> bytes:
    """eurofxref-hist.csv: newest day first, every column the ECB has, N/A where it had no rate."""
    columns = [*LEVELS, *DISCONTINUED]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["Date", *columns, ""])
    for day, rates in sorted(published(store).items(), reverse=True):
        writer.writerow([day.isoformat(), *(str(rates[c]) if c in rates else "N/A" for c in columns), ""])
    return out.getvalue().encode()


def hist_zip(store) -> bytes:
    """eurofxref-hist.zip, the archive the ECB links to, holding eurofxref-hist.csv."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("eurofxref-hist.csv", hist_csv(store))
    return buffer.getvalue()


def hist_xml(store) -> bytes:
    """eurofxref-hist.xml: the gesmes envelope, one Cube per day (newest first), one per quoted currency."""
    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             '<gesmes:Envelope xmlns:gesmes="http://www.gesmes.org/xml/2002-08-01" '
             'xmlns="http://www.ecb.int/vocabulary/2002-08-01/eurofxref">',
             "\t<gesmes:subject>Reference rates</gesmes:subject>",
             "\t<gesmes:Sender>", "\t\t<gesmes:name>European Central Bank</gesmes:name>", "\t</gesmes:Sender>",
             "\t<Cube>"]
    for day, rates in sorted(published(store).items(), reverse=True):
        lines.append(f"\t\t<Cube time='{day.isoformat()}'>")
        lines.extend(f"\t\t\t<Cube currency='{currency}' rate='{rate}'/>" for currency, rate in rates.items())
        lines.append("\t\t</Cube>")
    lines += ["\t</Cube>", "</gesmes:Envelope>", ""]
    return "\n".join(lines).encode()


class EcbHandler(ApiHandler):
    """The ECB's file paths over HTTP (no auth: the real files are public)."""

    server_name = "ecb"
    FILES = {"/stats/eurofxref/eurofxref-hist.zip": (hist_zip, "application/zip"),
             "/stats/eurofxref/eurofxref-hist.xml": (hist_xml, "text/xml"),
             "/stats/eurofxref/eurofxref-hist.csv": (hist_csv, "text/csv")}

    def route(self, method: str, path: str, query: list[tuple[str, str]], body: bytes) -> Response:
        if method != "GET" or path not in self.FILES:
            return Response(404, b"Not Found", content_type="text/plain")
        render, content_type = self.FILES[path]
        return Response(200, render(self.server.store), content_type=content_type)

    def fault_response(self, kind: str) -> Response:
        return Response(503, b"Service Unavailable", content_type="text/plain")
