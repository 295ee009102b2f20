"""Analyst roles on Postgres: only marts and metrics, only their workspace's rows, read-only."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg2
import pytest

from pipelines.settings import SettingsError, load_settings
from pipelines.transform import access
from tests import pg


@pytest.fixture
def warehouse(new_pg_database, monkeypatch, tmp_path):
    url = new_pg_database()
    monkeypatch.setenv("ABOS_WAREHOUSE_URL", url)
    monkeypatch.setenv("ABOS_HOME", str(tmp_path))
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("""
            create schema marts; create schema metrics; create schema shopify;
            create table marts.orders (workspace_id text, order_id text, total numeric);
            insert into marts.orders values ('shop-a', 'a1', 10), ('shop-a', 'a2', 20), ('shop-b', 'b1', 99);
            create table metrics.ecommerce_daily_metrics (workspace_id text, date date, net_sales numeric);
            insert into metrics.ecommerce_daily_metrics values ('shop-a', '2026-03-01', 30), ('shop-b', '2026-03-01', 99);
            create view metrics.shop_totals as select workspace_id, sum(net_sales) as net_sales
                from metrics.ecommerce_daily_metrics group by workspace_id;
            create table shopify.orders (workspace_id text, id text);
            insert into shopify.orders values ('shop-a', 'raw');
        """)
    yield url
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("select rolname from pg_roles where rolname like 'abos_test_analyst%'")
        for (role,) in cur.fetchall():
            cur.execute(f'drop owned by "{role}"; drop role "{role}"')


def as_role(url: str, role: str, query: str):
    conn = psycopg2.connect(pg.with_database(url, url.rsplit("/", 1)[1].split("?")[0]).replace("postgres@", f"{role}@", 1))
    try:
        with conn.cursor() as cur:
            cur.execute(query)
            return cur.fetchall()
    finally:
        conn.close()


def test_granted_role_sees_only_its_workspace(warehouse):
    role = "abos_test_analyst_a"
    result = access.grant(load_settings(), "shop-a", role)
    assert result["created"] and result["workspaces"] == ["shop-a"] and result["password"]
    assert as_role(warehouse, role, "select workspace_id, count(*) from marts.orders group by 1") == [("shop-a", 2)]
    assert as_role(warehouse, role, "select count(*) from metrics.ecommerce_daily_metrics where workspace_id <> 'shop-a'") == [(0,)]
    # A view reads with the analyst's rights, so the table's policy filters it too.
    assert as_role(warehouse, role, "select workspace_id from metrics.shop_totals") == [("shop-a",)]
    # The pipeline's own role still reads everything.
    with psycopg2.connect(warehouse) as conn, conn.cursor() as cur:
        cur.execute("select count(*) from marts.orders")
        assert cur.fetchone() == (3,)


def test_granted_role_cannot_write_or_read_raw_schemas(warehouse):
    role = "abos_test_analyst_b"
    access.grant(load_settings(), "shop-b", role)
    for statement in ("select * from shopify.orders", "insert into marts.orders values ('shop-b', 'x', 1)",
                      "update marts.orders set total = 0", "select * from reference.analyst_grants"):
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            as_role(warehouse, role, statement)


def test_tables_rebuilt_later_stay_isolated(warehouse):
    role = "abos_test_analyst_c"
    access.grant(load_settings(), "shop-a", role)
    with psycopg2.connect(warehouse) as conn, conn.cursor() as cur:
        # What dbt does on a rebuild: a new table replaces the old one, then the post-hook runs.
        cur.execute("""
            drop table marts.orders;
            create table marts.orders (workspace_id text, order_id text);
            insert into marts.orders values ('shop-a', 'a9'), ('shop-b', 'b9');
            select reference.apply_workspace_policy('marts.orders'::regclass);
        """)
    assert as_role(warehouse, role, "select order_id from marts.orders") == [("a9",)]


def test_revoke_removes_access_and_the_role(warehouse):
    role = "abos_test_analyst_d"
    settings = load_settings()
    access.grant(settings, "shop-a", role)
    access.grant(settings, "shop-b", role)
    assert sorted(as_role(warehouse, role, "select distinct workspace_id from marts.orders")) == [("shop-a",), ("shop-b",)]
    assert access.revoke(settings, "shop-a", role) == {"role": role, "workspaces": ["shop-b"], "dropped": False}
    assert as_role(warehouse, role, "select distinct workspace_id from marts.orders") == [("shop-b",)]
    assert access.revoke(settings, "shop-b", role)["dropped"] is True
    with pytest.raises(psycopg2.OperationalError):
        as_role(warehouse, role, "select 1")


def test_duckdb_warehouse_is_refused_with_the_setting(monkeypatch, tmp_path):
    monkeypatch.setenv("ABOS_HOME", str(tmp_path))
    monkeypatch.delenv("ABOS_WAREHOUSE_URL", raising=False)
    with pytest.raises(SettingsError, match="ABOS_WAREHOUSE_URL"):
        access.grant(load_settings(), "shop-a", "someone")


def test_isolation_holds_on_every_dbt_built_table_and_after_a_rebuild(new_pg_database, monkeypatch, tmp_path):
    from tests.scenario import build_scenario, run_dbt

    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "scenarios_ecommerce.json"
    url = new_pg_database()
    warehouse = build_scenario(fixture, tmp_path / "home", url, monkeypatch)
    workspaces = sorted(json.loads(fixture.read_text())["workspaces"])
    mine, role = workspaces[0], "abos_test_analyst_e"
    access.grant(warehouse.settings, mine, role)

    def check() -> int:
        tables = warehouse.query(
            "select table_schema, table_name from information_schema.columns"
            " where table_schema in ('marts', 'metrics') and column_name = 'workspace_id'")
        assert {t["table_schema"] for t in tables} == {"marts", "metrics"}
        for table in tables:
            name = f'{table["table_schema"]}.{table["table_name"]}'
            theirs = as_role(url, role, f"select count(*) from {name} where workspace_id <> '{mine}'")
            ours = as_role(url, role, f"select count(*) from {name}")
            everything = warehouse.query(f"select count(*) as n from {name} where workspace_id = %s", (mine,))
            assert theirs == [(0,)], name
            assert ours == [(everything[0]["n"],)], name  # the analyst sees all of its own rows
        return len(tables)

    assert check() > 5
    run_dbt(warehouse.settings, "run", "--select", "marts", "metrics")  # rebuilt tables keep the policy
    check()
    with pytest.raises(psycopg2.errors.InsufficientPrivilege):
        as_role(url, role, "select count(*) from staging.stg_shopify__orders")
    access.revoke(warehouse.settings, mine, role)
