"""Privacy requests through the real path: the sandbox's webhooks land in the inbox, the warehouse is
synced and built once, then Shopify's compliance webhooks (sent by the sandbox, through the gateway)
and `abos privacy redact` for a Stripe customer are carried out.

After redaction a search of every table, view and file under ABOS_HOME finds none of the
customers' personal values, which the same search found before; the metric tables are unchanged,
and the person ids agree with what a rebuild would compute.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow.parquet as pq
import pytest
import yaml

from pipelines import inbox, privacy
from pipelines.cli import main
from pipelines.privacy_jobs import privacy_definitions
from pipelines.sandbox.server import build_store
from pipelines.serve import create_app
from pipelines.workspaces import load_workspaces
from tests.gateway import running
from tests.scenario import run_dbt, serving, sync_all, write_workspaces_table

AS_OF = date(2026, 3, 31)
SPECS = {"demo-us-store": {"name": "Summit", "currency": "USD", "timezone": "America/New_York", "shopify": {}},
         "demo-saas": {"name": "Metricly", "currency": "USD", "timezone": "America/Los_Angeles", "stripe": {}}}
METRICS = ("metrics.ecommerce_daily_metrics", "metrics.ecommerce_daily_slices", "metrics.saas_daily_metrics",
           "metrics.saas_daily_slices", "metrics.metric_values")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A built warehouse whose inbox holds a day of the sandbox's webhooks, and the gateway and sandbox."""
    root = tmp_path_factory.mktemp("privacy")
    store = build_store(root / "tiny.sqlite", size="tiny", seed=5, as_of=AS_OF)
    with pytest.MonkeyPatch.context() as monkeypatch, \
            serving(store, SPECS, root / "abos", None, monkeypatch) as (settings, sandbox):
        info = sandbox.connection_info()
        config = yaml.safe_load(settings.workspaces_file.read_text())
        for item in config["workspaces"]:
            for connector in item["connectors"].values():
                connector["webhook_secret_env"] = f"PRIVACY_WEBHOOK_SECRET_{item['id'].replace('-', '_').upper()}"
        settings.workspaces_file.write_text(yaml.safe_dump(config))
        monkeypatch.setenv("PRIVACY_WEBHOOK_SECRET_DEMO_US_STORE",
                           info["shopify"]["workspaces"]["demo-us-store"]["client_secret"])
        monkeypatch.setenv("PRIVACY_WEBHOOK_SECRET_DEMO_SAAS",
                           info["stripe"]["workspaces"]["demo-saas"]["webhook_secret"])
        with running(create_app(settings, load_workspaces(settings.workspaces_file))) as url:
            sandbox.webhooks.subscribe(url)
            sandbox.advance(days=1)
            assert sandbox.webhooks.wait_idle(120)
            sync_all(settings)
            write_workspaces_table(settings)
            run_dbt(settings, "build", "--exclude-resource-type", "test", "unit_test")
            yield settings, sandbox


def query(settings, sql: str, params=()) -> list[tuple]:
    with duckdb.connect(str(settings.warehouse.duckdb_path), read_only=True) as conn:
        return conn.execute(sql.replace("%s", "?"), list(params)).fetchall()


def shopify_subject(settings) -> tuple[str, list[str]]:
    """A customer with an order among the webhooks, whose name no other customer has: id and needles."""
    rows = inbox.read_after(settings.warehouse, 0, limit=100_000)
    ordered = [row["payload"]["customer"]["admin_graphql_api_id"] for row in rows
               if row["topic"] == "orders/create" and row["payload"].get("customer")]
    for gid in ordered:
        ((name, email),) = query(settings, "select display_name, default_email_address_email_address "
                                           "from shopify.customers where id = %s", (gid,))
        if query(settings, "select count(*) from shopify.customers where display_name = %s", (name,))[0][0] == 1:
            return gid, [email.lower(), name.lower()]
    raise AssertionError("no customer with a unique name among the delivered orders")


def stripe_subject(settings) -> tuple[str, list[str]]:
    rows = inbox.read_after(settings.warehouse, 0, limit=100_000)
    for row in (row for row in rows if row["provider"] == "stripe"):
        data = row["payload"]["data"]["object"]
        customer = data.get("customer") if data.get("object") != "customer" else data.get("id")
        if not customer:
            continue
        ((name, email),) = query(settings, "select name, email from stripe.customers where id = %s", (customer,))
        if name and query(settings, "select count(*) from stripe.customers where name = %s", (name,))[0][0] == 1:
            return customer, [email.lower(), name.lower()]
    raise AssertionError("no Stripe customer with a unique name among the delivered events")


def found_in_tables(settings, needles: list[str]) -> set[str]:
    """Every table and view (schema.name) where any text of any row contains a needle."""
    hits = set()
    with duckdb.connect(str(settings.warehouse.duckdb_path), read_only=True) as conn:
        columns: dict[tuple[str, str], list[str]] = {}
        for schema, table, column in conn.execute(
                "select table_schema, table_name, column_name from information_schema.columns "
                "where table_schema not in ('information_schema', 'pg_catalog')").fetchall():
            columns.setdefault((schema, table), []).append(column)
        for (schema, table), names in columns.items():
            joined = "lower(concat_ws('|', " + ", ".join(f'cast("{n}" as varchar)' for n in names) + "))"
            condition = " or ".join(f"strpos({joined}, ?) > 0" for _ in needles)
            if conn.execute(f'select count(*) from "{schema}"."{table}" where {condition}', needles).fetchone()[0]:
                hits.add(f"{schema}.{table}")
    return hits


def file_text(path: Path) -> bytes:
    """A file's content as searchable bytes: parquet decoded, gzip opened."""
    if path.suffix == ".parquet":
        return json.dumps(pq.read_table(path).to_pylist(), default=str).lower().encode()
    data = path.read_bytes()
    return (gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data).lower()


def found_in_files(settings, needles: list[str]) -> set[str]:
    """Every file under ABOS_HOME holding a needle (the sandbox's store is the provider's, not ours)."""
    return {str(path.relative_to(settings.home)) for path in settings.home.rglob("*")
            if path.is_file() and "sandbox" not in path.name
            and any(needle.encode() in file_text(path) for needle in needles)}


def snapshot(settings) -> dict[str, list[tuple]]:
    return {table: query(settings, f"select * from {table} order by all") for table in METRICS}


def test_redaction_leaves_no_personal_value_and_the_metrics_as_they_were(world):
    settings, sandbox = world
    shop_customer, shop_needles = shopify_subject(settings)
    saas_customer, saas_needles = stripe_subject(settings)
    needles = shop_needles + saas_needles
    tables_before, files_before = found_in_tables(settings, needles), found_in_files(settings, needles)
    # The search sees them where they are: raw tables, marts, the inbox. dlt's load packages keep no
    # copy of the rows once loaded (their files are deleted: ingest/pipeline.py).
    assert {"shopify.customers", "shopify.orders", "marts.customers", "webhooks.inbox", "stripe.customers",
            "stripe.events", "marts.saas_customers"} <= tables_before
    assert not any(path.endswith((".parquet", ".csv", ".insert_values", ".gz")) for path in files_before)
    metrics_before = snapshot(settings)
    rows_before = query(settings, "select count(*), count(distinct person_id), sum(order_count) from marts.customers")
    (other,) = query(settings, "select default_email_address_email_address from shopify.customers "
                               "where id <> %s and default_email_address_email_address is not null limit 1",
                     (shop_customer,))

    # Shopify: a data request, then the redaction, as compliance webhooks through the gateway.
    sandbox.webhooks.send_compliance("demo-us-store", "customers/data_request", shop_customer)
    assert sandbox.webhooks.wait_idle(60)
    (exported,) = privacy.handle_compliance(settings)
    held_until = privacy.pending_compliance(settings)  # the data request's inbox id
    held = json.loads(Path(exported["export"]).read_text())
    assert shop_needles[0] in json.dumps(held).lower()
    assert {"shopify.customers", "shopify.orders", "marts.customers", "webhooks.inbox"} <= set(held["tables"])
    assert len(held["tables"]["shopify.orders"]) == query(
        settings, "select count(*) from shopify.orders where customer_id = %s", (shop_customer,))[0][0]

    # The redaction through Dagster: the sensor sees the webhook in the inbox and starts the job.
    sandbox.webhooks.send_compliance("demo-us-store", "customers/redact", shop_customer)
    assert sandbox.webhooks.wait_idle(60)
    defs = privacy_definitions(settings)
    sensor = defs.get_sensor_def("compliance_webhooks")
    context = dg.build_sensor_context(cursor=str(held_until))
    request = sensor.evaluate_tick(context).run_requests
    assert len(request) == 1 and request[0].run_key.startswith("compliance:")
    assert defs.get_job_def("privacy_requests").execute_in_process().success
    assert privacy.handle_compliance(settings) == []  # carried out once
    next_tick = sensor.evaluate_tick(dg.build_sensor_context(cursor=request[0].run_key.split(":")[1]))
    assert next_tick.run_requests == [] and next_tick.skip_message

    # Stripe: the command line.
    assert main(["privacy", "redact", "--workspace", "demo-saas", "--customer", saas_customer]) == 0

    assert found_in_tables(settings, needles) == set()
    assert found_in_files(settings, needles) == set()
    # The rows are still there, without names or addresses; ids and metrics are kept.
    (row,) = query(settings, "select first_name, last_name, display_name, default_email_address_email_address, "
                             "default_address_city, default_address_zip from shopify.customers where id = %s",
                   (shop_customer,))
    assert row[:3] == (None, None, None) and row[3].endswith("@redacted.invalid") and row[4:] == (None, None)
    (row,) = query(settings, "select name, email, address__line1, address__city from stripe.customers where id = %s",
                   (saas_customer,))
    assert row[0] is None and row[1].endswith("@redacted.invalid") and row[2:] == (None, None)
    assert snapshot(settings) == metrics_before
    assert query(settings, "select count(*), count(distinct person_id), sum(order_count) from marts.customers") \
        == rows_before
    # Person ids follow the pseudonym as dbt derives them, so the next build groups the same orders.
    for person_id, email in query(settings, "select person_id, email from marts.customers where customer_id = %s",
                                  (shop_customer,)):
        assert person_id == hashlib.md5(f"email:{email}".encode()).hexdigest()
    # Everyone else is untouched.
    assert query(settings, "select count(*) from marts.customers where email = %s", (other[0].strip().lower(),)) \
        == [(1,)]
    audit = query(settings, "select request, subject, found, action from privacy.audit_log order by requested_at")
    assert [(a[0], a[3]) for a in audit] == [("customers/data_request", "export"), ("customers/redact", "redact"),
                                             ("cli", "redact")]
    assert audit[2][1] == saas_customer and audit[1][2] is True
    assert shop_customer in audit[1][1].split(",")  # with the orders the request named
    assert not any(needle in json.dumps(audit).lower() for needle in needles)
