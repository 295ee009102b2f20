"""Views, and the calendar `int_days`, are deployed only when what they are created from changed
(dbt_project/macros/deploy_when_changed.sql; docs/performance.md, "Views and the calendar deployed
only when they change").

Three `dbt run`s over a warehouse that starts empty:
1. every relation is created: `stg_reference__workspaces` and `stg_shopify__customers` as empty
   stand-ins (their raw tables do not exist yet), `int_days` in full;
2. the raw `reference.workspaces` table now exists (so the workspaces view compiles to another
   statement) and the customers view was dropped behind dbt's back (as a Postgres `drop ... cascade`
   of a parent does): both are deployed again, and the new view reads the new rows; `int_days`,
   whose SQL did not change, is kept, as is `stg_shopify__orders`;
3. `--full-refresh` deploys what is unchanged.
The default suite runs DuckDB; Postgres is behind `slow` (its builds also go through the
materialization in the model tests' incremental runs).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.settings import Settings, load_settings
from tests.scenario import run_dbt

MODELS = ("stg_reference__workspaces", "stg_shopify__customers", "stg_shopify__orders", "int_days")
DAYS_1970_TO_2099 = 47482  # 130 years, 32 of them leap years (1972 ... 2096): 130 * 365 + 32


def messages(settings: Settings) -> dict[str, str]:
    """Each model's result message in the last dbt run ('unchanged': kept as deployed)."""
    results = json.loads((settings.home / "dbt-target" / "run_results.json").read_text())["results"]
    return {r["unique_id"].rsplit(".", 1)[-1]: r["adapter_response"].get("_message") for r in results
            if r["unique_id"].startswith("model.")}


def deploy_cycle(settings: Settings) -> None:
    warehouse = settings.warehouse
    run_dbt(settings, "run", "-s", *MODELS)
    first = messages(settings)
    assert set(first) == set(MODELS)
    assert "unchanged" not in first.values(), first
    assert warehouse.rows("select count(*) as n from staging.stg_reference__workspaces") == [{"n": 0}]

    with warehouse.transaction() as db:
        db.execute("create schema if not exists reference")
        db.execute("create table reference.workspaces (workspace_id varchar, name varchar, vertical varchar, "
                   "timezone varchar, currency varchar)")
        db.execute("insert into reference.workspaces values ('shop', 'Shop', 'ecommerce', 'UTC', 'brl')")
        db.execute("drop view staging.stg_shopify__customers")
    run_dbt(settings, "run", "-s", *MODELS)
    second = messages(settings)
    assert second["stg_reference__workspaces"] != "unchanged"  # compiled to the raw table now
    assert second["stg_shopify__customers"] != "unchanged"  # it was gone
    assert second["stg_shopify__orders"] == "unchanged"
    assert second["int_days"] == "unchanged"
    assert warehouse.rows("select workspace_id, reporting_currency from staging.stg_reference__workspaces") == [
        {"workspace_id": "shop", "reporting_currency": "BRL"}]
    assert warehouse.rows("select count(*) as n from staging.stg_shopify__customers") == [{"n": 0}]
    assert warehouse.rows("select count(*) as n, min(date_day) as first, max(date_day) as last from "
                          "intermediate.int_days")[0]["n"] == DAYS_1970_TO_2099

    run_dbt(settings, "run", "-s", "stg_shopify__orders", "int_days", "--full-refresh")
    third = messages(settings)
    assert third["stg_shopify__orders"] != "unchanged"
    assert third["int_days"] != "unchanged"
    assert warehouse.rows("select count(*) as n from intermediate.int_days") == [{"n": DAYS_1970_TO_2099}]


def test_views_and_the_calendar_are_deployed_only_when_changed_duckdb(tmp_path: Path):
    deploy_cycle(load_settings({"ABOS_HOME": str(tmp_path),
                                "ABOS_WAREHOUSE_URL": f"duckdb:///{tmp_path / 'warehouse.duckdb'}"}))


@pytest.mark.slow
def test_views_and_the_calendar_are_deployed_only_when_changed_postgres(tmp_path: Path, new_pg_database):
    deploy_cycle(load_settings({"ABOS_HOME": str(tmp_path), "ABOS_WAREHOUSE_URL": new_pg_database()}))
