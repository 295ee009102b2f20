"""Exchange rates end to end: the sandbox's ECB files and an operator rates file, loaded by dlt,
used by dbt, on DuckDB and Postgres.

One SaaS workspace bills one monthly subscription of 12.000 KWD (since 2026-03-01) and reports in
USD. The ECB does not quote KWD: the operator's file gives 0.33 KWD per euro from Friday
2026-02-27 and 0.34 from 2026-04-01. The sandbox's ECB file gives 1.206 USD per euro until it
lists 1.10 on Monday 2026-03-02 and 1.20 on Friday 2026-03-06. MRR in USD = 12 × USD/EUR ÷ KWD/EUR:

    2026-03-01 (Sunday: Friday's rates)  12 × 1.206 / 0.33 = 43.854545…
    2026-03-02                           12 × 1.10  / 0.33 = 40
    2026-03-07 (Saturday: Friday's)      12 × 1.20  / 0.33 = 43.636363…
    2026-04-01                           12 × 1.20  / 0.34 = 42.352941…

Converted exactly, multiplied first and divided last (the fx_convert macro), rounded once to 9
decimals (int_saas_currency_days), then to the metric table's 6.

Beside it, kwd-omr-in-usd bills the same KWD customer and a copy of it in OMR (cus_omr, 12.000
OMR from 2026-03-01), also reporting in USD. No source quotes OMR, so cus_omr's converted MRR is
unknown: null, never 0, and so is every sum it is part of (the cohort's); the KWD figures are exact,
kwd-in-usd's untouched.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

from tests.integration.test_ecommerce_models import with_password
from tests.scenario import ScenarioWarehouse, build_scenario

SHAPES = Path(__file__).resolve().parents[1] / "fixtures" / "deployment_shapes.json"
ECB = {"2026-03-02": {"USD": "1.10"}, "2026-03-06": {"USD": "1.20"}}
RATES_FILE = "date,currency,units_per_eur\n2026-02-27,KWD,0.33\n2026-04-01,KWD,0.34\n"
MODELS = ("--threads", "4", "-s", "+saas_daily_metrics", "+saas_customers", "+subscriptions", "+mrr_movements",
          "+saas_cohorts", "+saas_ltv")


def build(home: Path, warehouse_url: str | None) -> ScenarioWarehouse:
    doc = json.loads(SHAPES.read_text())
    kwd = {**doc["workspaces"]["saas-kwd"], "currency": "USD"}
    fixture = {"clock": doc["clock"], "ecb": ECB, "workspaces": {"kwd-in-usd": kwd, "kwd-omr-in-usd": with_omr_copy(kwd)}}
    home.mkdir(parents=True, exist_ok=True)
    (home / "fixture.json").write_text(json.dumps(fixture))
    (home / "rates.csv").write_text(RATES_FILE)
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("ABOS_FX_RATES_FILE", str(home / "rates.csv"))
        return build_scenario(home / "fixture.json", home / "home", warehouse_url, monkeypatch,
                              dbt_args=("build", *MODELS))


def with_omr_copy(workspace: dict) -> dict:
    """`workspace` with a copy of its Stripe objects billing in OMR, under ids of their own (the product shared)."""
    text = json.dumps(workspace["stripe"]).replace('"kwd"', '"omr"')
    for kwd_id, omr_id in (("_yen", "_omr"), ("YEN", "OMR"), ("_jpy", "_omr")):
        text = text.replace(kwd_id, omr_id)
    omr = json.loads(text)
    stripe = {kind: objects + [obj for obj in omr[kind] if obj["id"] not in {o["id"] for o in objects}]
              for kind, objects in workspace["stripe"].items()}
    return {**workspace, "stripe": stripe}


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def warehouse(request, tmp_path_factory) -> ScenarioWarehouse:
    url = with_password(request.getfixturevalue("new_pg_database")()) if request.param == "postgres" else None
    return build(tmp_path_factory.mktemp(f"fx-{request.param}"), url)


def expected(usd_per_eur: str, kwd_per_eur: str) -> Decimal:
    mrr = (12 * Decimal(usd_per_eur) / Decimal(kwd_per_eur)).quantize(Decimal("1e-9"), ROUND_HALF_UP)
    return mrr.quantize(Decimal("1e-6"), ROUND_HALF_UP)


def test_mrr_uses_each_days_rate_carried_over_weekends_and_crossed_through_the_euro(warehouse):
    days = {row["date"]: row["mrr"] for row in warehouse.query(
        "select date, mrr from metrics.saas_daily_metrics where workspace_id = 'kwd-in-usd'")}
    assert days[date(2026, 3, 1)] == expected("1.206", "0.33")
    assert days[date(2026, 3, 2)] == Decimal("40.000000")
    assert days[date(2026, 3, 7)] == expected("1.20", "0.33")
    assert days[date(2026, 4, 1)] == expected("1.20", "0.34")


def test_the_rates_say_where_they_came_from(warehouse):
    rows = warehouse.query(
        "select currency, rate_source, count(*) as n from intermediate.int_fx_rates_ranged "
        "where currency in ('KWD', 'USD', 'EUR') group by currency, rate_source order by currency")
    assert [(r["currency"], r["rate_source"], r["n"]) for r in rows][:2] == [
        ("EUR", "definition", 1), ("KWD", "ABOS_FX_RATES_FILE", 2)]
    assert rows[2]["currency"] == "USD" and rows[2]["rate_source"] == "ecb" and rows[2]["n"] > 1000
    # only the workspace with OMR lacks a rate
    assert warehouse.query("select workspace_id, missing_currency from intermediate.int_fx_rate_gaps_saas") == [
        {"workspace_id": "kwd-omr-in-usd", "missing_currency": "OMR"}]


def current_mrr(warehouse: ScenarioWarehouse, mart: str, *columns: str) -> list[dict]:
    selected = ", ".join(("workspace_id", "current_mrr", "current_mrr_in_billing_currency", *columns))
    return warehouse.query(f"select {selected} from marts.{mart} order by workspace_id, current_mrr")


# Today (every rate since 2026-04-01): 12 KWD × 1.20 USD/EUR ÷ 0.34 KWD/EUR = 42.352941176… USD
TODAY_USD = Decimal("42.352941")
# 2026-03-01, the subscriptions' first day: 12 × 1.206 / 0.33 = 43.854545454… USD
FIRST_DAY_USD = Decimal("43.854545")


def test_a_missing_rate_leaves_a_subscriptions_mrr_unknown_never_zero_and_the_rest_exact(warehouse):
    """The KWD subscriptions have TODAY_USD of MRR; the OMR one's 12.000 OMR has no rate, so its USD
    MRR is null, not 0. The movement that started it is 12.000 OMR, its USD delta null, and the
    daily metric tables leave its workspace out (has_fx_rates)."""
    assert (expected("1.20", "0.34"), expected("1.206", "0.33")) == (TODAY_USD, FIRST_DAY_USD)
    kwd = {"current_mrr": TODAY_USD, "current_mrr_in_billing_currency": Decimal(12)}
    assert current_mrr(warehouse, "subscriptions", "subscription_id") == [
        {"workspace_id": "kwd-in-usd", "subscription_id": "sub_yen", **kwd},
        {"workspace_id": "kwd-omr-in-usd", "subscription_id": "sub_yen", **kwd},
        {"workspace_id": "kwd-omr-in-usd", "subscription_id": "sub_omr", "current_mrr": None,
         "current_mrr_in_billing_currency": Decimal(12)}]
    assert warehouse.query("select customer_id, delta, delta_in_billing_currency from marts.mrr_movements"
                           " where workspace_id = 'kwd-omr-in-usd' order by customer_id") == [
        {"customer_id": "cus_omr", "delta": None, "delta_in_billing_currency": Decimal(12)},
        {"customer_id": "cus_yen", "delta": Decimal("43.854545455"), "delta_in_billing_currency": Decimal(12)}]
    assert warehouse.query("select count(*) as n from metrics.saas_daily_metrics where workspace_id = 'kwd-omr-in-usd'") \
        == [{"n": 0}]


def test_a_customer_without_a_rate_still_pays_active_with_an_unknown_reporting_mrr(warehouse):
    """cus_omr pays 12.000 OMR, so is active, their USD MRR unknown (null); the KWD customers:
    TODAY_USD."""
    kwd = {"customer_id": "cus_yen", "current_mrr": TODAY_USD, "current_mrr_in_billing_currency": Decimal(12),
           "is_active": True, "first_paying_date": date(2026, 3, 1)}
    assert current_mrr(warehouse, "saas_customers", "customer_id", "is_active", "first_paying_date") == [
        {"workspace_id": "kwd-in-usd", **kwd}, {"workspace_id": "kwd-omr-in-usd", **kwd},
        {"workspace_id": "kwd-omr-in-usd", "customer_id": "cus_omr", "current_mrr": None,
         "current_mrr_in_billing_currency": Decimal(12), "is_active": True, "first_paying_date": date(2026, 3, 1)}]


def test_a_sum_with_an_unknown_term_is_unknown(warehouse):
    """The March 2026 cohort, month 0: kwd-in-usd's one customer started at FIRST_DAY_USD (saas_cohorts
    converts each movement at its day's rate). kwd-omr-in-usd's two customers: cus_yen's
    FIRST_DAY_USD plus cus_omr's unknown is unknown, not FIRST_DAY_USD; the counts stand (2 active
    of 2). The LTV table's monthly MRR likewise."""
    cohorts = warehouse.query(
        "select workspace_id, cohort_customers, active_customers, starting_mrr, mrr, expansion_mrr,"
        " logo_retention, net_revenue_retention, cumulative_mrr_per_customer from metrics.saas_cohorts"
        " where cohort_month = '2026-03-01' and months_since_start = 0 order by workspace_id")
    assert cohorts == [
        {"workspace_id": "kwd-in-usd", "cohort_customers": 1, "active_customers": 1, "starting_mrr": FIRST_DAY_USD,
         "mrr": FIRST_DAY_USD, "expansion_mrr": 0, "logo_retention": 1, "net_revenue_retention": 1,
         "cumulative_mrr_per_customer": FIRST_DAY_USD},
        {"workspace_id": "kwd-omr-in-usd", "cohort_customers": 2, "active_customers": 2, "starting_mrr": None,
         "mrr": None, "expansion_mrr": None, "logo_retention": 1, "net_revenue_retention": None,
         "cumulative_mrr_per_customer": None}]
    assert warehouse.query("select workspace_id, active_customers, mrr from metrics.saas_ltv"
                           " where activity_month = '2026-03-01' order by workspace_id") == [
        {"workspace_id": "kwd-in-usd", "active_customers": 1, "mrr": FIRST_DAY_USD},
        {"workspace_id": "kwd-omr-in-usd", "active_customers": 2, "mrr": None}]


def test_a_second_rates_sync_loads_only_the_new_days_and_the_table_equals_the_file(tmp_path, monkeypatch):
    """A refresh parses the ECB file from its last loaded day on (`ecb_rows(since=...)`): after the
    clock moved nine days, the second sync loads the new days' rates once, and the table holds every
    rate of the file exactly once."""
    from pipelines.ingest.fx import ecb_rows, sync_fx
    from pipelines.sandbox import ecb
    from pipelines.sandbox.server import build_store
    from tests.scenario import serving

    doc = json.loads(SHAPES.read_text())
    fixture = {"clock": doc["clock"], "ecb": ECB, "workspaces": {"kwd-in-usd": doc["workspaces"]["saas-kwd"]}}
    (tmp_path / "fixture.json").write_text(json.dumps(fixture))
    store = build_store(tmp_path / "store.sqlite", fixtures=tmp_path / "fixture.json")
    with serving(store, fixture["workspaces"], tmp_path / "home", None, monkeypatch) as (settings, _):
        sync_fx(settings)
        last = settings.warehouse.query("select max(day) as last from fx.ecb_rates")["last"][0].date()
        store.set_clock(store.clock + 9 * 86400)
        loaded = sync_fx(settings)
        table = settings.warehouse.query("select day, currency, units_per_eur from fx.ecb_rates")
    rows = [(day.date(), currency, Decimal(str(rate))) for day, currency, rate in table.itertuples(index=False)]
    file = [(row["day"], row["currency"], row["units_per_eur"]) for row in
            ecb_rows(ecb.hist_zip(store), "eurofxref-hist.zip")]
    assert sorted(rows) == sorted(file)  # every rate once
    new = [row for row in file if row[0] > last]
    assert new and loaded == {"ecb_rates": len(new)}
