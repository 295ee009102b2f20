"""Currencies: which codes exist, how many decimals each has, and how Stripe writes amounts in them.

One place for both sources (docs/metrics.md, "Currency"):
- **ISO 4217 through CLDR**, via Babel (a maintained copy of the Unicode CLDR data, updated with each
  Babel release): every code CLDR knows (`KNOWN`, which the ingest contracts accept, historic ones
  included), the ones legal tender in some territory today (`ISO_4217`, which a workspace may report
  in), and each one's decimals (`minor_digits`, used to round and show reporting-currency amounts).
- **Stripe's own rules** for its integer API amounts (`stripe_digits`), which differ from ISO where
  Stripe says so: https://docs.stripe.com/currencies#zero-decimal lists the zero-decimal currencies,
  #three-decimal the three-decimal ones, and #special-cases keeps ISK, HUF and TWD two-decimal in
  the API (an ISK amount of 100 is 1 króna, although ISO and CLDR give ISK no decimals).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from babel.core import get_global
from babel.numbers import get_currency_precision, list_currencies

KNOWN = frozenset(code.upper() for code in list_currencies())


def _legal_tender_today() -> frozenset[str]:
    """Codes CLDR lists as legal tender in some territory with no end date (the active ISO 4217 codes)."""
    today = date.today()
    return frozenset(
        code
        for entries in get_global("territory_currencies").values()
        for code, start, end, tender in entries
        if tender and (end is None or date(*end) >= today)
    )


ISO_4217 = _legal_tender_today()

# https://docs.stripe.com/currencies#zero-decimal and #three-decimal; every other currency has two
# decimals in Stripe's API, ISK, HUF and TWD included (#special-cases).
STRIPE_ZERO_DECIMAL = frozenset("BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF".split())
STRIPE_THREE_DECIMAL = frozenset("BHD JOD KWD OMR TND".split())


def minor_digits(currency: str) -> int:
    """Decimals of `currency` by ISO 4217 as CLDR states them (JPY 0, USD 2, KWD 3, ISK 0)."""
    return get_currency_precision(currency.upper())


def stripe_digits(currency: str) -> int:
    """Decimals in Stripe's integer amounts of `currency` (0, 2 or 3), as Stripe states them."""
    code = currency.upper()
    if code in STRIPE_ZERO_DECIMAL:
        return 0
    if code in STRIPE_THREE_DECIMAL:
        return 3
    return 2


def to_major(amount_minor: int, currency: str) -> Decimal:
    """Stripe's integer amount to a major-unit Decimal."""
    return Decimal(amount_minor).scaleb(-stripe_digits(currency))


def to_minor(amount: Decimal, currency: str) -> int:
    """A major-unit amount to Stripe's integer amount, rounded half-even."""
    return int(Decimal(amount).scaleb(stripe_digits(currency)).quantize(Decimal(1)))
