"""Holiday calendars: the days a business's metrics move for the calendar, not for news.

A workspace's country (its `country` in workspaces.yaml, else the country of its timezone) picks
the public and observed holidays of the `holidays` package, with the categories that move shopping
(public, optional, unofficial, half-day: Easter Sunday, Mother's Day, Christmas Eve, Carnival...).
Black Friday, its weekend and Cyber Monday are added for every country: they follow US
Thanksgiving and are shopping days far beyond the US.

The detector (`anomalies.detect`) compares a holiday with the same holiday a year earlier, found
by name, so moving holidays (Easter, Thanksgiving, Carnival) line up; see docs/anomalies.md.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

import holidays as holiday_data

# Categories of the holidays package that change how people shop; bank or school holidays do not.
SHOPPING_CATEGORIES = ("public", "optional", "unofficial", "half_day")


@dataclass(frozen=True)
class Calendar:
    """Named holidays of one country over some years.

    Attributes:
        country: ISO 3166 alpha-2 code, or None for a calendar with the commercial days only.
        days: holiday date → its names (several holidays can share a date).
    """

    country: str | None
    days: dict[date, tuple[str, ...]]

    def name(self, day: date) -> str | None:
        """The holiday names of `day` joined by "; ", or None on an ordinary day."""
        names = self.days.get(day)
        return "; ".join(names) if names else None

    def last_year(self, day: date) -> date | None:
        """The date of the same holiday a year earlier (by name), or None.

        Thanksgiving 2026 (Nov 26) maps to Thanksgiving 2025 (Nov 27); Easter to last Easter.
        """
        for name in self.days.get(day, ()):
            # A holiday of several days (Carnival) maps day by day: the k-th to last year's k-th.
            this_year = self._dates_of(name, day.year)
            before = self._dates_of(name, day.year - 1)
            if before:
                return before[min(this_year.index(day), len(before) - 1)]
        return None

    def _dates_of(self, name: str, year: int) -> list[date]:
        return [day for day, names in self.days.items() if day.year == year and name in names]


@functools.cache
def holiday_calendar(country: str | None, years: tuple[int, ...]) -> Calendar:
    """The holidays of `country` in `years` (with the year before each, for comparisons).

    A country the holidays package does not know gets the commercial days only.
    """
    wanted = sorted({year for each in years for year in (each - 1, each)})
    days: dict[date, list[str]] = {}
    supported = holiday_data.list_supported_countries(include_aliases=False)
    if country and country in supported:
        country_class = holiday_data.country_holidays(country, years=wanted[0]).__class__
        categories = tuple(c for c in SHOPPING_CATEGORIES if c in country_class.supported_categories)
        found = holiday_data.country_holidays(country, years=wanted, categories=categories)
        for day, names in found.items():
            days.setdefault(day, []).extend(name.strip() for name in names.split(";"))
    for year in wanted:
        for day, name in _commercial_days(year):
            days.setdefault(day, []).append(name)
    return Calendar(country=country, days={day: tuple(dict.fromkeys(names)) for day, names in sorted(days.items())})


def calendar_for(country: str | None, dates: Iterable[date]) -> Calendar:
    """The calendar of `country` covering `dates` (and the year before them)."""
    years = tuple(sorted({day.year for day in dates}))
    return holiday_calendar(country, years)


def _commercial_days(year: int) -> list[tuple[date, str]]:
    """Black Friday (the day after US Thanksgiving, the 4th Thursday of November), its weekend and
    Cyber Monday."""
    first = date(year, 11, 1)
    thanksgiving = first + timedelta(days=(3 - first.weekday()) % 7 + 21)
    friday = thanksgiving + timedelta(days=1)
    return [(friday, "Black Friday"), (friday + timedelta(days=1), "Black Friday Saturday"),
            (friday + timedelta(days=2), "Black Friday Sunday"), (friday + timedelta(days=3), "Cyber Monday")]
