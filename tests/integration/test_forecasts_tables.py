"""insights.forecasts on DuckDB and on Postgres: the asset's rows (`forecast_workspace`, written with
the asset's upsert) read back the same on both databases, and the weekly report's month outlook
from the stored rows is the hand-worked sum of actual days and forecast days.

No dbt: a hand-made daily series of 70 days is all a forecast needs (at least 56). The model itself
is tested in tests/unit/test_forecasts.py and backtested on the small sandbox (docs/metrics.md).
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from pipelines.insights.calendar import holiday_calendar
from pipelines.insights.forecasts import forecast_workspace, month_outlook
from pipelines.settings import load_settings
from pipelines.warehouse import Warehouse

ORIGIN = date(2026, 3, 20)  # the last actual day: March has 20 actual days and 11 forecast ones
DAYS = pd.date_range(ORIGIN - timedelta(days=69), ORIGIN)


def daily() -> pd.DataFrame:
    """Orders with a weekly pattern and a little noise (fixed seed), 70 days to ORIGIN."""
    rng = np.random.default_rng(5)
    weekly = np.array([10, 9, 9, 10, 12, 14, 11])[DAYS.day_of_week]
    return pd.DataFrame({"date": DAYS.date, "orders": np.round(weekly * np.exp(rng.normal(0, 0.05, len(DAYS))))})


@pytest.fixture(scope="module")
def made() -> pd.DataFrame:
    calendar = holiday_calendar("US", (2026,))
    return forecast_workspace(daily(), [("orders", False, False)], calendar, "shop-f", through=ORIGIN)


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def warehouse(request, tmp_path_factory, made) -> Warehouse:
    url = (f"duckdb:///{tmp_path_factory.mktemp('forecasts')}/warehouse.duckdb" if request.param == "duckdb"
           else request.getfixturevalue("new_pg_database")())
    warehouse = load_settings({"ABOS_WAREHOUSE_URL": url, "ABOS_HOME": str(tmp_path_factory.mktemp("home"))}).warehouse
    # as the asset writes them, twice: a rerun replaces the workspace's rows
    for _ in range(2):
        warehouse.upsert("insights.forecasts", made.assign(made_at=pd.Timestamp("2026-03-21 06:00", tz="UTC")),
                         key=["workspace_id", "metric", "date"], replace={"workspace_id": "shop-f"})
    return warehouse


def test_stored_forecasts_read_back_as_made(warehouse, made):
    stored = warehouse.query("select * from insights.forecasts where workspace_id = 'shop-f' order by date")
    assert len(stored) == len(made) == 91
    assert [pd.Timestamp(d).date() for d in stored["date"]] == list(made["date"])
    assert {pd.Timestamp(d).date() for d in stored["origin"]} == {ORIGIN}
    assert stored["days_ahead"].tolist() == list(range(1, 92))
    for column in ("forecast", "lower_80", "upper_80", "lower_95", "upper_95"):
        assert np.allclose(stored[column].astype(float), made[column].astype(float), rtol=1e-12), column
    # nested intervals, and a forecast that learnt the week: Saturdays above Tuesdays
    assert (stored["lower_95"] <= stored["lower_80"]).all() and (stored["upper_80"] <= stored["upper_95"]).all()
    weekday = pd.to_datetime(stored["date"]).dt.day_of_week
    assert stored["forecast"][weekday == 5].mean() > 1.3 * stored["forecast"][weekday == 1].mean()


def test_the_month_outlook_from_stored_rows_is_actual_days_plus_forecast_days(warehouse):
    """March: the 20 actual days (to ORIGIN) plus the forecast of March 21-31; February's actual days
    are wholly in the series (it starts on 2026-01-10), so the previous month is their sum."""
    stored = warehouse.query("select date, origin, forecast from insights.forecasts where workspace_id = 'shop-f'")
    actual = daily().set_index(pd.to_datetime(daily()["date"]))["orders"].astype(float)
    outlook = month_outlook(actual, stored, date(2026, 3, 1), stock=False)
    rest = stored[pd.to_datetime(stored["date"]) <= pd.Timestamp("2026-03-31")]["forecast"].astype(float)
    assert len(rest) == 11
    march = actual[actual.index >= pd.Timestamp("2026-03-01")].sum()
    assert outlook["projected"] == pytest.approx(march + rest.sum(), rel=1e-12)
    assert outlook["previous"] == actual[(actual.index >= pd.Timestamp("2026-02-01"))
                                         & (actual.index < pd.Timestamp("2026-03-01"))].sum()


def test_a_rerun_on_the_same_history_returns_the_stored_rows_with_the_types_of_a_fit(warehouse, made):
    stored = warehouse.query("select * from insights.forecasts where workspace_id = 'shop-f'")
    # marked, to tell stored rows from a new fit (which would give `made` again)
    known = stored.assign(forecast=stored["forecast"] + 1.0)
    again = forecast_workspace(daily(), [("orders", False, False)], holiday_calendar("US", (2026,)), "shop-f",
                               through=ORIGIN, known=known)
    pd.testing.assert_series_equal(again["forecast"], made["forecast"] + 1.0)
    pd.testing.assert_frame_equal(again.drop(columns="forecast"), made.drop(columns="forecast"))


def test_stored_fits_read_back_exactly_and_a_forward_from_them_is_the_same(warehouse):
    """insights.model_fits as the forecasts asset writes and reads it: the coefficients come back to the
    last bit on both databases, so forwarding from the table gives what forwarding from memory gives."""
    from pipelines.insights.fits import TABLE, fit_rows, read_fits
    from pipelines.insights.forecasts import daily_series, forecast_fitted

    calendar = holiday_calendar("US", (2026,))
    values = daily_series(daily(), "orders")
    _, fit = forecast_fitted(values.iloc[:-2], calendar)
    for _ in range(2):  # a rerun replaces the model's row
        warehouse.upsert(TABLE, fit_rows("shop-f", {"forecast:orders": fit}), key=["workspace_id", "model"])
    stored = read_fits(warehouse.query(f"select * from {TABLE} where workspace_id = 'shop-f' order by model"))
    assert stored == {"forecast:orders": fit}
    from_table, used = forecast_fitted(values, calendar, start=stored["forecast:orders"])
    pd.testing.assert_frame_equal(from_table, forecast_fitted(values, calendar, start=fit)[0])
    assert used.estimated_on == ORIGIN - timedelta(days=2)
