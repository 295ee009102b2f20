"""Currencies: the active ISO 4217 list and its decimals from CLDR (Babel), Stripe's own amount rules."""

import re
from decimal import Decimal

import pytest

from pipelines.currencies import ISO_4217, KNOWN, STRIPE_THREE_DECIMAL, STRIPE_ZERO_DECIMAL, minor_digits, \
    stripe_digits, to_major, to_minor
from pipelines.workspaces import load_workspaces
from tests.conftest import REPO


def test_every_currency_in_use_today_is_a_valid_reporting_currency_and_historic_ones_are_not(tmp_path):
    assert {"USD", "EUR", "KWD", "ARS", "CLP", "COP", "JPY", "BHD", "XCG", "ZWG", "SLE", "VES"} <= ISO_4217
    assert not {"DEM", "HRK", "ZWL", "SLL", "VEF"} & ISO_4217  # replaced; still known to the ingest contracts
    assert ISO_4217 < KNOWN
    path = tmp_path / "workspaces.yaml"
    path.write_text("workspaces:\n" + "".join(
        f"  - {{id: ws-{code.lower()}, name: {code}, vertical: saas, timezone: UTC, currency: {code}, "
        f"connectors: {{stripe: {{base_url: 'http://127.0.0.1:9', api_key_env: KEY_{code}}}}}}}\n"
        for code in sorted(ISO_4217)))
    assert len(load_workspaces(path)) == len(ISO_4217)


@pytest.mark.parametrize(("code", "iso", "stripe"), [
    ("USD", 2, 2), ("JPY", 0, 0), ("KWD", 3, 3), ("CLP", 0, 0), ("BHD", 3, 3), ("UGX", 0, 0),
    # Stripe's special cases: zero-decimal by ISO or in practice, two-decimal in Stripe's API.
    ("ISK", 0, 2), ("HUF", 2, 2), ("TWD", 2, 2),
])
def test_decimals_follow_iso_for_reports_and_stripe_for_its_amounts(code, iso, stripe):
    assert (minor_digits(code), stripe_digits(code.lower())) == (iso, stripe)


def test_stripe_amounts_to_major_units():
    assert to_major(12000, "jpy") == Decimal("12000")
    assert to_major(12345, "kwd") == Decimal("12.345")
    assert to_major(50000, "isk") == Decimal("500.00")  # 100 is 1 króna in Stripe's API
    assert to_minor(Decimal("12.345"), "KWD") == 12345


def test_the_dbt_macro_uses_stripes_lists():
    """minor_to_major.sql writes the same two lists in SQL; they must not drift apart."""
    macro = (REPO / "dbt_project" / "macros" / "minor_to_major.sql").read_text()
    zero, three = re.findall(r"in \(([^)]*)\) then (?:1|1000)", macro)
    assert set(re.findall(r"'(\w+)'", zero)) == STRIPE_ZERO_DECIMAL
    assert set(re.findall(r"'(\w+)'", three)) == STRIPE_THREE_DECIMAL
