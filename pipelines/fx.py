"""Foreign-exchange rates: one table, shared by dbt (as a seed) and the sandbox's ground truth.

The table is `dbt_project/seeds/fx_rates.csv`: `currency, usd_per_unit, valid_from`. A rate applies
from its `valid_from` date until the next row of the same currency. See docs/metrics.md.
"""

from __future__ import annotations

import bisect
import csv
from datetime import date
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

FX_RATES_CSV = Path(__file__).resolve().parents[1] / "dbt_project" / "seeds" / "fx_rates.csv"


@lru_cache(maxsize=4)
def load_rates(path: Path = FX_RATES_CSV) -> dict[str, list[tuple[date, Decimal]]]:
    """Rates per currency, sorted by the date they take effect."""
    rates: dict[str, list[tuple[date, Decimal]]] = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            rates.setdefault(row["currency"].upper(), []).append(
                (date.fromisoformat(row["valid_from"]), Decimal(row["usd_per_unit"]))
            )
    for series in rates.values():
        series.sort()
    return rates


def usd_per_unit(currency: str, on: date, path: Path = FX_RATES_CSV) -> Decimal:
    """The USD value of one unit of `currency` on day `on`."""
    series = load_rates(path).get(currency.upper())
    if not series:
        raise KeyError(f"no FX rate for {currency.upper()} in {path}; add a row to that file")
    index = bisect.bisect_right([valid_from for valid_from, _ in series], on) - 1
    if index < 0:
        raise KeyError(f"no FX rate for {currency.upper()} on {on} in {path} (first is {series[0][0]})")
    return series[index][1]


def convert(amount: Decimal, from_currency: str, to_currency: str, on: date) -> Decimal:
    """Convert a major-unit amount between currencies at the rates valid on `on`."""
    if from_currency.upper() == to_currency.upper():
        return amount
    return amount * usd_per_unit(from_currency, on) / usd_per_unit(to_currency, on)
