"""Redaction, export and shop erasure on a Postgres warehouse (jsonb columns, row ids, VACUUM FULL).

The tables are small and written here, shaped like the raw tables, marts and inbox the pipeline
makes (test_privacy.py runs the whole path on DuckDB): redaction finds tables and columns from the
catalogue, so their shape is what matters, not how they were filled.
"""

from __future__ import annotations

import hashlib
import json

import psycopg2
import pytest

from pipelines import privacy
from pipelines.settings import load_settings

pytestmark = pytest.mark.postgres

ANA = "gid://shopify/Customer/7"
TABLES = """
create schema shopify; create schema marts; create schema metrics; create schema webhooks;
create table shopify.customers (workspace_id text, id text, first_name text, last_name text,
    default_email_address_email_address text, default_address_city text, default_address_country_code_v2 text);
create table shopify.orders (workspace_id text, id text, customer_id text, email text, billing_address_zip text,
    line_items jsonb, note text);
create table marts.customers (workspace_id text, person_id text, customer_id text, email text, order_count int);
create table metrics.daily (workspace_id text, date date, orders int, new_customers int);
create table webhooks.inbox (inbox_id bigint generated always as identity primary key, workspace_id text,
    provider text, delivery_id text, topic text, received_at timestamptz, payload text);
"""


def person(email: str) -> str:
    return hashlib.md5(f"email:{email}".encode()).hexdigest()


@pytest.fixture
def warehouse(tmp_path, new_pg_database):
    url = new_pg_database()
    with psycopg2.connect(url) as conn, conn.cursor() as cursor:
        cursor.execute(TABLES)
        for workspace in ("shop", "other-shop"):
            cursor.execute("insert into shopify.customers values (%s, %s, 'Ana', 'Lima', 'Ana@Example.com', "
                           "'Porto Alegre', 'BR'), (%s, 'gid://shopify/Customer/8', 'Bo', 'Berg', 'bo@example.com', "
                           "'Porto Alegre', 'BR')", (workspace, ANA, workspace))
            cursor.execute(
                "insert into shopify.orders values (%s, 'gid://shopify/Order/1', %s, ' ana@example.com ', '90000', "
                "%s, 'Gift for Ana Lima'), (%s, 'gid://shopify/Order/2', null, 'ANA@example.com', '90000', '[]', null),"
                " (%s, 'gid://shopify/Order/3', 'gid://shopify/Customer/8', 'bo@example.com', '90000', '[]', null)",
                (workspace, ANA, json.dumps([{"title": "Tent", "buyer": {"first_name": "Ana", "email": "ana@example.com"}}]),
                 workspace, workspace))
            cursor.execute("insert into marts.customers values (%s, %s, %s, 'ana@example.com', 2), "
                           "(%s, %s, 'gid://shopify/Customer/8', 'bo@example.com', 1)",
                           (workspace, person("ana@example.com"), ANA, workspace, person("bo@example.com")))
            cursor.execute("insert into metrics.daily values (%s, '2026-03-01', 3, 2)", (workspace,))
            cursor.execute("insert into webhooks.inbox (workspace_id, provider, delivery_id, topic, received_at, payload)"
                           " values (%s, 'shopify', 'w1', 'orders/create', now(), %s)",
                           (workspace, json.dumps({"id": 1, "email": "ana@example.com",
                                                   "customer": {"admin_graphql_api_id": ANA, "first_name": "Ana"}})))
    return load_settings({"ABOS_HOME": str(tmp_path), "ABOS_WAREHOUSE_URL": url})


def rows(settings, sql: str) -> list[tuple]:
    with psycopg2.connect(settings.warehouse.url) as conn, conn.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall()


def test_redaction_on_postgres(warehouse):
    exported = json.loads(privacy.export(warehouse, "shop", ANA).read_text())
    assert len(exported["tables"]["shopify.orders"]) == 2  # her account's order and her guest order
    entry = privacy.redact(warehouse, "shop", "7")
    assert entry["found"] and entry["tables_changed"] == 4

    everything = json.dumps(rows(warehouse, "select * from shopify.customers where workspace_id = 'shop'")
                            + rows(warehouse, "select * from shopify.orders where workspace_id = 'shop'")
                            + rows(warehouse, "select * from marts.customers where workspace_id = 'shop'")
                            + rows(warehouse, "select * from webhooks.inbox where workspace_id = 'shop'"), default=str)
    for value in ("ana@example.com", "ana lima", "lima", "porto alegre\", \"br\"], [\"shop\", \"" + ANA):
        assert value not in everything.lower()
    ((first, last, email, city, country),) = rows(
        warehouse, f"select first_name, last_name, default_email_address_email_address, default_address_city, "
                   f"default_address_country_code_v2 from shopify.customers where workspace_id = 'shop' and id = '{ANA}'")
    assert (first, last, city, country) == (None, None, None, "BR") and email.endswith("@redacted.invalid")
    # One pseudonym for all her spellings, so her guest order is still hers; the note loses her name.
    orders = rows(warehouse, "select id, email, billing_address_zip, line_items, note from shopify.orders "
                             "where workspace_id = 'shop' order by id")
    assert orders[0][1] == orders[1][1] == email and orders[0][2] is None and orders[1][2] is None
    assert orders[0][3] == [{"title": "Tent", "buyer": {"first_name": None, "email": email}}]
    assert orders[0][4] == "Gift for [redacted]"
    assert orders[2][1:3] == ("bo@example.com", "90000")  # Bo is untouched
    assert rows(warehouse, "select person_id from marts.customers where workspace_id = 'shop' order by customer_id") \
        == [(person(email),), (person("bo@example.com"),)]
    # The other workspace, where the same address shops too, and the metrics are untouched.
    assert rows(warehouse, "select count(*) from shopify.orders where workspace_id = 'other-shop' "
                           "and lower(trim(email)) = 'ana@example.com'") == [(2,)]
    assert rows(warehouse, "select * from metrics.daily order by workspace_id") == \
        [("other-shop", *rows(warehouse, "select date from metrics.daily limit 1")[0], 3, 2),
         ("shop", *rows(warehouse, "select date from metrics.daily limit 1")[0], 3, 2)]
    assert not list(privacy.exports_dir(warehouse, "shop").iterdir())  # her export is gone
    audit = rows(warehouse, "select action, request, subject, found from privacy.audit_log order by requested_at")
    assert audit == [("export", "cli", ANA, True), ("redact", "cli", ANA, True)]


def test_shop_erasure_on_postgres(warehouse):
    charts = {ws: warehouse.home / "ask" / "charts" / ws for ws in ("shop", "other-shop")}  # answers' charts
    for folder in charts.values():
        folder.mkdir(parents=True)
        (folder / "0123456789abcdef0123456789abcdef.png").write_bytes(b"\x89PNG")
    entry = privacy.erase_workspace(warehouse, "shop", delivery_id="w9")
    assert not charts["shop"].exists() and list(charts["other-shop"].iterdir())
    assert entry["tables_changed"] == 5
    for table in ("shopify.customers", "shopify.orders", "marts.customers", "metrics.daily", "webhooks.inbox"):
        assert rows(warehouse, f"select count(*) from {table} where workspace_id = 'shop'") == [(0,)]
        assert rows(warehouse, f"select count(*) from {table} where workspace_id = 'other-shop'") != [(0,)]
