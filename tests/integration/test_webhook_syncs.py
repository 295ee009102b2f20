"""Webhooks as notifications: the sandbox changes orders and subscriptions, its webhooks reach the real
gateway over HTTP (shuffled, duplicated, replayed), and the webhook sensor of the real Definitions
turns the inbox into a webhook_refresh run: targeted syncs, one dbt refresh and the anomaly checks.

The truth is the sandbox's store: every order and subscription the advanced window changed must show
its current state in the marts; the targeted syncs must have read those objects only; and a late
notification of an older state must not bring that state back. Afterwards the scheduled sync, the
reconciliation, finds the same rows and changes none of them.
"""

from __future__ import annotations

import importlib
import json
import uuid
from datetime import date, datetime, timezone

import dagster as dg
import pytest
import requests
import yaml
from dagster._core.definitions.reconstruct import ReconstructableRepository

from pipelines import inbox
from pipelines.ingest.sync import sync
from pipelines.sandbox.core.webhooks import rest_shape
from pipelines.serve import create_app
from pipelines.webhook_jobs import INBOX_TAG, PARTITION_TAG, STEP_TAG, SYNC_OP, WORKSPACES_TAG
from pipelines.workspaces import load_workspaces
from tests.gateway import running, shopify_headers
from tests.scenario import serving, sync_all, write_workspaces_table

AS_OF = date(2026, 3, 31)
SHOP, SAAS = "demo-us-store", "demo-saas"
SPECS = {SHOP: {"name": "Summit", "currency": "USD", "timezone": "America/New_York", "shopify": {}},
         SAAS: {"name": "Metricly", "currency": "USD", "timezone": "America/Los_Angeles", "stripe": {}}}


def secret_env(workspace_id: str) -> str:
    return f"SYNCS_WEBHOOK_SECRET_{workspace_id.replace('-', '_').upper()}"


def launch(instance: dg.DagsterInstance, request: dg.RunRequest,
           ops: list[str] | None = None) -> dict[tuple[str, str | None], dg.DagsterRun]:
    """Run what the sensor requested, as the daemon's run worker would (the job loaded from the code
    location, with its repository): its config and tags (`ops`: only these steps). The runs it
    executed, by kind and workspace: {("sync", workspace): run, ...}."""
    before = {run.run_id for run in instance.get_runs()}
    job = ReconstructableRepository.for_module("pipelines.definitions", "defs").get_reconstructable_job(
        request.job_name)
    result = dg.execute_job(job, instance, run_config=request.run_config, tags=request.tags, op_selection=ops,
                            raise_on_error=False)
    assert result.success, f"{request.job_name} {request.run_key} failed"
    runs = {(run.tags[STEP_TAG], run.tags.get(PARTITION_TAG)): run for run in instance.get_runs()
            if run.run_id not in before and run.run_id != result.run_id}
    assert all(run.status == dg.DagsterRunStatus.SUCCESS for run in runs.values()), runs
    return runs


def tick(defs: dg.Definitions, instance: dg.DagsterInstance, name: str, cursor: str | None):
    sensor = defs.get_sensor_def(name)
    return sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs))


def metadata(instance: dg.DagsterInstance, run: dg.DagsterRun, table: str) -> dict:
    (entry,) = [entry for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
                if entry.asset_materialization.asset_key.path[-1] == table]
    return {key: value.value for key, value in entry.asset_materialization.metadata.items()}


def syncs_of(request: dg.RunRequest) -> list[dict]:
    return request.run_config["ops"][SYNC_OP]["config"]["syncs"]


@pytest.fixture(scope="module", params=["duckdb", pytest.param("postgres", marks=[pytest.mark.slow,
                                                                                    pytest.mark.postgres])])
def world(request, tmp_path_factory):
    """A warehouse synced once (the scheduled way), then a half day of sandbox changes delivered to
    the gateway with misbehaviour, plus a late notification of an older order state and an order
    deleted; the targeted syncs of the sensor's runs executed through the real Definitions. On DuckDB in
    `make test`; the same chain on Postgres behind `slow` (minutes: a second warehouse)."""
    from pipelines.sandbox.server import build_store

    root = tmp_path_factory.mktemp("webhook_syncs")
    store = build_store(root / "tiny.sqlite", size="tiny", seed=7, as_of=AS_OF)
    url = request.getfixturevalue("new_pg_database")() if request.param == "postgres" else None
    with pytest.MonkeyPatch.context() as monkeypatch, \
            serving(store, SPECS, root / "abos", url, monkeypatch) as (settings, sandbox):
        info = sandbox.connection_info()
        config = yaml.safe_load(settings.workspaces_file.read_text())
        for item in config["workspaces"]:
            for connector in item["connectors"].values():
                connector["webhook_secret_env"] = secret_env(item["id"])
        settings.workspaces_file.write_text(yaml.safe_dump(config))
        shop_secret = info["shopify"]["workspaces"][SHOP]["client_secret"]
        monkeypatch.setenv(secret_env(SHOP), shop_secret)
        monkeypatch.setenv(secret_env(SAAS), info["stripe"]["workspaces"][SAAS]["webhook_secret"])
        sync_all(settings)
        write_workspaces_table(settings)
        stored_before = {row["id"]: row["updated_at"] for row in settings.warehouse.rows(
            "select id, updated_at from shopify.orders where workspace_id = %s", (SHOP,))}
        import pipelines.definitions

        defs = importlib.reload(pipelines.definitions).defs
        instance = dg.DagsterInstance.ephemeral()
        with running(create_app(settings, load_workspaces(settings.workspaces_file))) as url:
            sandbox.webhooks.subscribe(url)
            sandbox.webhooks.retry_delays = (0.2, 0.4, 0.8)
            sandbox.webhooks.misbehave("duplicate=0.3,replay=0.3,out_of_order=1")
            since = store.clock
            sandbox.advance(days=0.5)
            assert sandbox.webhooks.wait_idle(120)
            until = store.clock
            sandbox.webhooks.misbehave(None)

            first = tick(defs, instance, "webhook_syncs", None)
            again = tick(defs, instance, "webhook_syncs", None)
            (request,) = first.run_requests
            syncs = {workspace: run for (_, workspace), run in launch(instance, request, [SYNC_OP]).items()}

            # A notification of an order's older state arrives late (another webhook id, correctly
            # signed): the order is read again by id, and its newer state stays.
            changed = store.query(SHOP, "shopify", "order", order_by="updated", updated={"gt": since, "lte": until})
            stale_order = next(o for o in changed if o.id in stored_before)
            old_body = rest_shape({**stale_order.body, "updatedAt": stored_before[stale_order.id].isoformat()})
            body = json.dumps(old_body).encode()
            shop_domain = f"{store.accounts('shopify')[SHOP]['shop']}.myshopify.com"
            answer = requests.post(f"{url}/webhooks/shopify/{SHOP}", data=body, timeout=30, headers=shopify_headers(
                body, shop_secret, shop=shop_domain, topic="orders/updated", webhook_id=str(uuid.uuid4())))
            assert answer.status_code == 200
            late = tick(defs, instance, "webhook_syncs", first.cursor)
            (late_request,) = late.run_requests
            (late_sync,) = launch(instance, late_request, [SYNC_OP]).values()

            # The merchant deletes an order (one with refunds), a product (with variants) and a customer
            # that the window did not change (Shopify refuses to delete a customer with orders; the
            # sandbox does not, and the sync's handling is the same): the sandbox sends
            # `orders/delete`, `products/delete` and `customers/delete` (each body only the id), and
            # the targeted sync finds them gone.
            refunded = {row["order_id"] for row in settings.warehouse.rows(
                "select distinct order_id from shopify.order_refunds where workspace_id = %s", (SHOP,))}
            deleted_order = next(o for o in sorted(refunded) if o in stored_before
                                 and o not in {c.id for c in changed})
            touched = {o.id for kind in ("product", "customer") for o in store.query(
                SHOP, "shopify", kind, order_by="updated", updated={"gt": since, "lte": until})}
            deleted_product = next(row["product_id"] for row in settings.warehouse.rows(
                "select product_id from shopify.product_variants where workspace_id = %s order by product_id",
                (SHOP,)) if row["product_id"] not in touched)
            deleted_customer = next(row["id"] for row in settings.warehouse.rows(  # the tiny shop's all have orders
                "select id from shopify.customers where workspace_id = %s order by id", (SHOP,)) if row["id"] not in touched)
            deleted = {"orders": deleted_order, "products": deleted_product, "customers": deleted_customer}
            counts_before = object_rows(settings, deleted)
            for object_id in deleted.values():
                answer = requests.post(f"{sandbox.shopify_url}/_sandbox/webhooks/delete", timeout=30,
                                       json={"workspace": SHOP, "object": object_id})
                assert answer.status_code == 200 and answer.json()["delivery_id"]
            assert sandbox.webhooks.wait_idle(60)
            deletion = tick(defs, instance, "webhook_syncs", late.cursor)
            (deletion_request,) = deletion.run_requests
            (deletion_sync,) = launch(instance, deletion_request, [SYNC_OP]).values()

            yield {"settings": settings, "store": store, "since": since, "until": until, "defs": defs,
                   "instance": instance, "first": first, "again": again, "syncs": syncs, "late": late,
                   "late_sync": late_sync, "stale_order": stale_order, "deleted": deleted,
                   "deletion": deletion, "deletion_sync": deletion_sync, "counts_before": counts_before}


OWN_ROWS = {"orders": {"orders": "id = %s", "order_line_items": "order_id = %s", "order_refunds": "order_id = %s",
                       "order_refund_line_items": ("refund_id in (select id from shopify.order_refunds "
                                                   "where order_id = %s)")},
            "products": {"products": "id = %s", "product_variants": "product_id = %s"},
            "customers": {"customers": "id = %s"}}


def object_rows(settings, objects: dict[str, str]) -> dict[str, tuple[int, int]]:
    """Per raw table: (the rows of the object of its type in `objects`, every other row of the workspace)."""
    counts = {}
    for kind, object_id in objects.items():
        for table, where in OWN_ROWS[kind].items():
            (row,) = settings.warehouse.rows(
                f"select count(*) filter (where {where}) as mine, count(*) filter (where not ({where})) as others "
                f"from shopify.{table} where workspace_id = %s", (object_id, object_id, SHOP))
            counts[table] = (row["mine"], row["others"])
    return counts


@pytest.fixture(scope="module")
def refreshed(world):
    """The whole webhook_refresh run of the first tick: its syncs again (the objects read anew, as they
    are now), the dbt refresh, then the anomaly checks (the expensive part: a `dbt build`)."""
    (request,) = world["first"].run_requests
    return {**world, "refresh_runs": launch(world["instance"], request)}


def _utc(value) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def test_each_workspace_gets_one_targeted_sync_of_what_changed(world):
    store, settings = world["store"], world["settings"]
    first = world["first"]
    (request,) = first.run_requests  # one refresh, one targeted sync per workspace
    assert [(sync["provider"], sync["workspace"]) for sync in syncs_of(request)] == [("shopify", SHOP),
                                                                                   ("stripe", SAAS)]
    assert request.tags[STEP_TAG] == "refresh"
    assert {run.tags[STEP_TAG] for run in world["syncs"].values()} == {"sync"}
    rows = inbox.read_after(settings.warehouse, 0, limit=100_000)
    assert int(first.cursor) == rows[-5]["inbox_id"]  # all but the late notification and the 3 deletions,
    assert int(world["late"].cursor) == rows[-4]["inbox_id"]  # which the next ticks read
    assert int(world["deletion"].cursor) == rows[-1]["inbox_id"]
    # Run keys name the inbox ids, so evaluating the same tick again starts nothing new.
    again = world["again"]
    assert [r.run_key for r in again.run_requests] == [r.run_key for r in first.run_requests]
    assert all(r.tags[INBOX_TAG] in r.run_key for r in first.run_requests)

    changed_orders = {o.id for o in store.query(SHOP, "shopify", "order", order_by="updated",
                                                updated={"gt": world["since"], "lte": world["until"]})}
    changed_customers = {o.id for o in store.query(SHOP, "shopify", "customer", order_by="updated",
                                                   updated={"gt": world["since"], "lte": world["until"]})}
    assert changed_orders, "the half day changed no order"
    instance = world["instance"]
    orders = metadata(instance, world["syncs"][SHOP], "orders")
    assert orders["sync_mode"] == "targeted"
    assert orders["rows_loaded"] == len(changed_orders)  # the named orders, none else
    assert metadata(instance, world["syncs"][SHOP], "customers")["rows_loaded"] == len(changed_customers)
    events = store.query(SAAS, "stripe", "event", created={"gt": world["since"], "lte": world["until"]})
    assert metadata(instance, world["syncs"][SAAS], "events")["rows_loaded"] == len(events)


def _shopify_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_each_changed_object_is_loaded_as_the_api_has_it_now(world):
    """Raw tables: every order the window changed with its current state (the late, older
    notification included), and every subscription the window updated with its current status."""
    store, settings = world["store"], world["settings"]
    changed = store.query(SHOP, "shopify", "order", order_by="updated",
                          updated={"gt": world["since"], "lte": world["until"]})
    found = {row["id"]: row for row in settings.warehouse.rows(
        "select id, updated_at, display_financial_status, cancelled_at from shopify.orders where workspace_id = %s",
        (SHOP,))}
    for order in changed:
        row = found[order.id]
        assert _utc(row["updated_at"]) == _shopify_time(order.body["updatedAt"])
        assert row["display_financial_status"] == order.body["displayFinancialStatus"]
        assert (row["cancelled_at"] is None) == (order.body["cancelledAt"] is None)
    stale = world["stale_order"]
    (late_sync,) = syncs_of(world["late"].run_requests[0])
    assert late_sync["objects"] == [stale.id]
    assert metadata(world["instance"], world["late_sync"], "orders")["rows_loaded"] == 1  # read again by id: the newer state
    assert _utc(found[stale.id]["updated_at"]) == _shopify_time(stale.body["updatedAt"])

    events = store.query(SAAS, "stripe", "event", created={"gt": world["since"], "lte": world["until"]})
    updated = {e.body["data"]["object"]["id"] for e in events if e.body["type"] == "customer.subscription.updated"}
    assert updated, "the half day updated no subscription"
    rows = {row["id"]: row for row in settings.warehouse.rows(
        "select id, status, cancel_at_period_end from stripe.subscriptions where workspace_id = %s", (SAAS,))}
    for subscription_id in updated:
        now = store.get(SAAS, "stripe", "subscription", subscription_id).body
        assert (rows[subscription_id]["status"], rows[subscription_id]["cancel_at_period_end"]) == \
            (now["status"], now["cancel_at_period_end"])


def test_deleted_orders_products_and_customers_leave_the_raw_tables_with_their_rows(world):
    """`orders/delete`, `products/delete` and `customers/delete` over real HTTP: the targeted sync asks
    the API for each, finds it gone, and removes it and its child rows (an order's lines and
    refunds, a product's variants); every other row stays."""
    settings, deleted = world["settings"], world["deleted"]
    (request,) = world["deletion"].run_requests
    (sync,) = syncs_of(request)
    assert sorted(sync["objects"]) == sorted(deleted.values())
    found = metadata(world["instance"], world["deletion_sync"], "orders")
    assert (found["orders_deleted"], found["products_deleted"], found["customers_deleted"]) == (1, 1, 1)
    before, after = world["counts_before"], object_rows(settings, deleted)
    assert before["orders"][0] == 1 and before["order_refunds"][0] >= 1 and before["order_line_items"][0] >= 1
    assert before["products"][0] == 1 and before["product_variants"][0] >= 1 and before["customers"][0] == 1
    assert after == {table: (0, others) for table, (_, others) in before.items()}


@pytest.mark.slow
def test_every_changed_order_and_subscription_shows_its_current_state_in_the_marts(refreshed):
    store, settings = refreshed["store"], refreshed["settings"]
    changed = store.query(SHOP, "shopify", "order", order_by="updated",
                          updated={"gt": refreshed["since"], "lte": refreshed["until"]})
    found = {row["order_id"]: row for row in settings.warehouse.rows(
        "select order_id, updated_at, financial_status, fulfillment_status, is_cancelled from marts.orders "
        "where workspace_id = %s", (SHOP,))}
    assert refreshed["deleted"]["orders"] not in found  # the deleted order left the marts, and the product
    assert not settings.warehouse.rows("select 1 from marts.products where workspace_id = %s and product_id = %s",
                                       (SHOP, refreshed["deleted"]["products"]))
    for order in changed:  # the late notification's order among them
        row = found[order.id]
        assert _utc(row["updated_at"]) == _shopify_time(order.body["updatedAt"])
        assert row["financial_status"] == order.body["displayFinancialStatus"]
        assert row["fulfillment_status"] == order.body["displayFulfillmentStatus"]
        assert row["is_cancelled"] == (order.body["cancelledAt"] is not None)
    events = store.query(SAAS, "stripe", "event", created={"gt": refreshed["since"], "lte": refreshed["until"]})
    updated = {e.body["data"]["object"]["id"] for e in events if e.body["type"] == "customer.subscription.updated"}
    subscriptions = {row["subscription_id"]: row for row in settings.warehouse.rows(
        "select subscription_id, status, cancel_at_period_end from marts.subscriptions where workspace_id = %s",
        (SAAS,))}
    for subscription_id in updated:
        now = store.get(SAAS, "stripe", "subscription", subscription_id).body
        assert (subscriptions[subscription_id]["status"], subscriptions[subscription_id]["cancel_at_period_end"]) \
            == (now["status"], now["cancel_at_period_end"])


@pytest.mark.slow
def test_one_dbt_refresh_for_both_workspaces_then_their_anomaly_checks(refreshed):
    runs, instance = refreshed["refresh_runs"], refreshed["instance"]
    assert sorted(runs) == [("anomalies", SAAS), ("anomalies", SHOP), ("sync", SAAS), ("sync", SHOP),
                            ("transform", None)]
    transform = runs[("transform", None)]
    assert transform.tags[WORKSPACES_TAG] == f"{SAAS},{SHOP}"
    # Nothing was built in this Dagster instance yet: the first webhook refresh builds every model
    # (later ones only those downstream of the synced connectors: test_webhook_jobs, the freshness bench).
    assert transform.asset_selection is None
    order = sorted(runs.values(), key=lambda run: instance.get_run_record_by_id(run.run_id).start_time)
    assert [run.tags[STEP_TAG] for run in order] == ["sync", "sync", "transform", "anomalies", "anomalies"]
    for workspace_id in (SAAS, SHOP):
        (entry,) = instance.all_logs(runs[("anomalies", workspace_id)].run_id,
                                     of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
        assert entry.asset_materialization.asset_key.path == ["insights", "anomalies"]
        assert entry.asset_materialization.partition == workspace_id


def test_the_scheduled_sync_afterwards_changes_none_of_those_rows(world):
    """The reconciliation reads the same changes in order and finds them already as they should be:
    the targeted syncs (from shuffled, duplicated webhooks) left what an in-order sync leaves."""
    settings = world["settings"]
    queries = {"shopify": "select * from shopify.orders where workspace_id = %s order by id",
               "stripe": "select * from stripe.subscription_history where workspace_id = %s order by id, valid_from"}
    drop = ("_dlt_load_id", "_dlt_id")
    before = {source: [{k: v for k, v in row.items() if k not in drop}
                       for row in settings.warehouse.rows(sql, (SHOP if source == "shopify" else SAAS,))]
              for source, sql in queries.items()}
    for workspace in load_workspaces(settings.workspaces_file):
        for source in workspace.connectors:
            result = sync(source, workspace, settings)
            assert result.stats.mode == "incremental"
    after = {source: [{k: v for k, v in row.items() if k not in drop}
                      for row in settings.warehouse.rows(sql, (SHOP if source == "shopify" else SAAS,))]
             for source, sql in queries.items()}
    assert after == before
