"""Countries from the tz database: the country of a timezone, and whether a code names a country.

Tenants (workspaces.yaml) and holiday calendars both need these, so they sit below every stage.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

SYSTEM_ZONE_TAB = Path("/usr/share/zoneinfo/zone.tab")


def country_for_timezone(timezone: str) -> str | None:
    """The ISO 3166 alpha-2 country of an IANA timezone (zone.tab of the tz database), or None for
    zones of no single country (UTC, Etc/GMT+3)."""
    return _zone_countries().get(timezone)


def known_country(code: str) -> bool:
    """Whether `code` is an ISO 3166 alpha-2 country code (iso3166.tab of the tz database)."""
    return code in _iso3166()


@functools.cache
def _zone_countries() -> dict[str, str]:
    return {fields[2]: fields[0] for fields in _tab("zone.tab") if len(fields) >= 3}


@functools.cache
def _iso3166() -> frozenset[str]:
    return frozenset(fields[0] for fields in _tab("iso3166.tab") if fields)


def _tab(name: str) -> list[list[str]]:
    """Rows of a tab-separated table of the tz database: the tzdata package's copy, else the system's."""
    try:
        text = resources.files("tzdata.zoneinfo").joinpath(name).read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError):
        text = (SYSTEM_ZONE_TAB.parent / name).read_text(encoding="utf-8")
    return [line.split("\t") for line in text.splitlines() if line and not line.startswith("#")]
