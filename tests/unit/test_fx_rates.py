"""The ECB's rate files (as the sandbox serves them) and the operator's rates file, parsed for dlt."""

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from pipelines.ingest.fx import RatesFileError, ecb_rows, operator_rows
from pipelines.sandbox import ecb
from pipelines.sandbox.server import build_store

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "deployment_shapes.json"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return build_store(tmp_path_factory.mktemp("ecb") / "store.sqlite", fixtures=FIXTURE)


def test_the_csv_in_the_zip_and_the_xml_give_the_same_rates_without_the_na_columns(store):
    from_zip = list(ecb_rows(ecb.hist_zip(store), "/stats/eurofxref/eurofxref-hist.zip"))
    from_xml = list(ecb_rows(ecb.hist_xml(store), "eurofxref-hist.xml"))
    key = lambda row: (row["day"], row["currency"])  # noqa: E731
    assert sorted(from_zip, key=key) == sorted(from_xml, key=key)
    assert {row["currency"] for row in from_zip} == set(ecb.FIXTURE_RATES)  # no N/A column became a rate
    assert {"day": date(2026, 3, 2), "currency": "JPY", "units_per_eur": Decimal("180")} in from_zip


def test_rates_are_published_on_target_days_only():
    assert ecb.target_day(date(2026, 3, 2))  # a Monday
    assert not ecb.target_day(date(2026, 3, 1))  # a Sunday
    assert not ecb.target_day(date(2026, 4, 3)) and not ecb.target_day(date(2026, 4, 6))  # Good Friday, Easter Monday
    assert not ecb.target_day(date(2026, 12, 25)) and not ecb.target_day(date(2026, 5, 1))


def test_the_truth_carries_rates_forward_and_crosses_through_the_euro(store):
    # Sunday 2026-03-01 has no rate: Friday's holds. JPY→USD = 1.206 / 180 = 0.0067.
    assert ecb.convert(store, Decimal(12000), "JPY", "USD", date(2026, 3, 1)) == Decimal("80.4")
    assert ecb.convert(store, Decimal(100), "KWD", "KWD", date(2026, 3, 1)) == Decimal(100)
    with pytest.raises(KeyError, match="KWD"):
        ecb.convert(store, Decimal(100), "KWD", "USD", date(2026, 3, 1))


def test_the_operator_file_is_checked_line_by_line(tmp_path):
    good = tmp_path / "rates.csv"
    good.write_text("date,currency,units_per_eur\n2026-01-02,kwd,0.3295\n2026-02-02,KWD,0.3312\n")
    assert operator_rows(good) == [
        {"day": date(2026, 1, 2), "currency": "KWD", "units_per_eur": Decimal("0.3295")},
        {"day": date(2026, 2, 2), "currency": "KWD", "units_per_eur": Decimal("0.3312")},
    ]
    bad = tmp_path / "bad.csv"
    bad.write_text("date,currency,units_per_eur\n2026-01-02,KWD,0.3295\n2026-02-30,KWD,0.33\n")
    with pytest.raises(RatesFileError, match=r"ABOS_FX_RATES_FILE=.*bad.csv, line 3: expected YYYY-MM-DD"):
        operator_rows(bad)
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("day,code,rate\n")
    with pytest.raises(RatesFileError, match="first line must be date,currency,units_per_eur"):
        operator_rows(wrong)
    with pytest.raises(RatesFileError, match="cannot read it"):
        operator_rows(tmp_path / "missing.csv")


def test_a_refresh_parses_the_days_from_the_last_one_loaded_on(store):
    """Both formats give the days from `since` on, the same rows as the whole file has for them."""
    for content, name in ((ecb.hist_zip(store), "/stats/eurofxref/eurofxref-hist.zip"),
                          (ecb.hist_xml(store), "eurofxref-hist.xml")):
        every = list(ecb_rows(content, name))
        days = sorted({row["day"] for row in every})
        since = days[len(days) // 2]
        assert list(ecb_rows(content, name, since=since)) == [row for row in every if row["day"] >= since]
        assert list(ecb_rows(content, name, since=None)) == every
