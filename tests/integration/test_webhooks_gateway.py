"""The webhook gateway over real HTTP: signatures, windows, replays, duplicates, size, tenancy, outages.

Every delivery goes through uvicorn on a loopback port into a real warehouse (a DuckDB file; one
test on Postgres); what each answer must be, and what the inbox must then hold, is stated per test.
"""

from __future__ import annotations

import fcntl
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg2
import pytest
import requests
import yaml

from pipelines import inbox as inbox_table
from pipelines.serve import create_app
from pipelines.settings import load_settings
from pipelines.warehouse import Warehouse
from pipelines.workspaces import load_workspaces
from tests.gateway import running, shopify_headers, stripe_headers

SECRETS = {
    "GW_US_SHOPIFY_SECRET": "us-app-client-secret",
    "GW_CA_SHOPIFY_SECRET": "ca-app-client-secret",
    "GW_SAAS_STRIPE_WHSEC": "saas-current-endpoint-secret",
    "GW_SAAS_STRIPE_WHSEC_OLD": "saas-previous-endpoint-secret",
    "GW_OTHER_STRIPE_WHSEC": "other-endpoint-secret",
}
WORKSPACES = {"workspaces": [
    {"id": "gw-us", "name": "US", "vertical": "ecommerce", "timezone": "America/New_York", "currency": "USD",
     "connectors": {"shopify": {"base_url": "https://gw-us.myshopify.com", "access_token_env": "GW_US_TOKEN",
                                "webhook_secret_env": "GW_US_SHOPIFY_SECRET"}}},
    {"id": "gw-ca", "name": "CA", "vertical": "ecommerce", "timezone": "America/Toronto", "currency": "CAD",
     "connectors": {"shopify": {"base_url": "http://127.0.0.1:1/shops/gw-ca", "client_id_env": "GW_CA_ID",
                                "client_secret_env": "GW_CA_SHOPIFY_SECRET"}}},
    {"id": "gw-saas", "name": "SaaS", "vertical": "saas", "timezone": "UTC", "currency": "USD",
     "connectors": {"stripe": {"base_url": "https://api.stripe.com", "api_key_env": "GW_SAAS_KEY",
                               "webhook_secret_env": "GW_SAAS_STRIPE_WHSEC",
                               "webhook_previous_secret_env": "GW_SAAS_STRIPE_WHSEC_OLD"}}},
    {"id": "gw-other", "name": "Other", "vertical": "saas", "timezone": "UTC", "currency": "EUR",
     "connectors": {"stripe": {"base_url": "https://api.stripe.com", "api_key_env": "GW_OTHER_KEY",
                               "webhook_secret_env": "GW_OTHER_STRIPE_WHSEC"}}},
]}
MAX_BODY = 64 * 1024


def make_app(tmp: Path, warehouse_url: str | None = None, **limits):
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "workspaces.yaml").write_text(yaml.safe_dump(WORKSPACES))
    env = {"ABOS_HOME": str(tmp), "ABOS_WORKSPACES": str(tmp / "workspaces.yaml"),
           **({"ABOS_WAREHOUSE_URL": warehouse_url} if warehouse_url else {})}
    settings = load_settings(env)
    workspaces = load_workspaces(settings.workspaces_file, env=env)
    return create_app(settings, workspaces, env=SECRETS, max_body_bytes=MAX_BODY, **limits), settings.warehouse


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    app, warehouse = make_app(tmp_path_factory.mktemp("gateway"))
    with running(app) as url:
        yield url, warehouse


def inbox(warehouse: Warehouse, workspace: str | None = None) -> list[dict]:
    with warehouse.transaction() as statements:  # a test may run before anything was delivered
        inbox_table.create_table(statements)
    frame = warehouse.query("select * from webhooks.inbox order by inbox_id")
    rows = frame.to_dict("records")
    return [row for row in rows if workspace is None or row["workspace_id"] == workspace]


def order(order_id: int, **fields) -> bytes:
    return json.dumps({"id": order_id, "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
                       "updated_at": "2026-11-26T10:00:00-05:00", **fields}).encode()


def event(event_id: str, kind: str = "invoice.paid", **fields) -> bytes:
    return json.dumps({"id": event_id, "object": "event", "type": kind, "created": int(time.time()),
                       "data": {"object": {"id": "in_1", "object": "invoice", **fields}}}).encode()


def post(url: str, path: str, body: bytes, headers: dict[str, str]) -> requests.Response:
    return requests.post(url + path, data=body, headers=headers, timeout=30)


# -- Shopify --------------------------------------------------------------------------------------


def test_shopify_delivery_is_stored_once_however_often_it_is_retried(gateway):
    url, warehouse = gateway
    body = order(1001, email="ana@example.com")
    headers = shopify_headers(body, SECRETS["GW_US_SHOPIFY_SECRET"], shop="gw-us.myshopify.com",
                              topic="orders/create", webhook_id="wh-1001")
    answers = [post(url, "/webhooks/shopify/gw-us", body, headers) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    (row,) = inbox(warehouse, "gw-us")
    assert (row["provider"], row["delivery_id"], row["topic"]) == ("shopify", "wh-1001", "orders/create")
    assert row["payload"].encode() == body  # the raw body, byte for byte


def test_shopify_app_with_client_credentials_signs_with_its_client_secret(gateway):
    """gw-ca names no webhook secret: a Shopify app signs webhooks with its client secret, and gw-ca's
    domain comes from its base URL's last path segment (the sandbox's /shops/<shop>)."""
    url, warehouse = gateway
    body = order(7)
    headers = shopify_headers(body, SECRETS["GW_CA_SHOPIFY_SECRET"], shop="gw-ca.myshopify.com",
                              topic="orders/updated", webhook_id="wh-ca-7")
    assert post(url, "/webhooks/shopify/gw-ca", body, headers).status_code == 200
    assert [r["delivery_id"] for r in inbox(warehouse, "gw-ca")] == ["wh-ca-7"]


@pytest.mark.parametrize("topic", ["orders/create", "customers/data_request", "customers/redact", "shop/redact"])
def test_shopify_bad_signatures_are_401_and_store_nothing(gateway, topic):
    url, warehouse = gateway
    before = len(inbox(warehouse))
    body = json.dumps({"shop_domain": "gw-us.myshopify.com", "customer": {"id": 5}}).encode()
    good = shopify_headers(body, SECRETS["GW_US_SHOPIFY_SECRET"], shop="gw-us.myshopify.com", topic=topic,
                           webhook_id=f"bad-{topic}")
    tampered = body.replace(b"5", b"6")
    wrong_key = shopify_headers(body, "not-the-secret", shop="gw-us.myshopify.com", topic=topic,
                                webhook_id=f"bad-{topic}")
    no_signature = {k: v for k, v in good.items() if k != "X-Shopify-Hmac-Sha256"}
    not_base64 = {**good, "X-Shopify-Hmac-Sha256": "%%%not base64%%%"}
    for body_sent, headers in ((tampered, good), (body, wrong_key), (body, no_signature), (body, not_base64)):
        answer = post(url, "/webhooks/shopify/gw-us", body_sent, headers)
        assert (answer.status_code, answer.json()) == (401, {"error": "unauthorized"})
    assert len(inbox(warehouse)) == before


def test_shopify_compliance_topic_with_a_good_signature_is_accepted(gateway):
    url, warehouse = gateway
    body = json.dumps({"shop_id": 1, "shop_domain": "gw-us.myshopify.com",
                       "customer": {"id": 42, "email": "bo@example.com"}, "orders_to_redact": [1001]}).encode()
    headers = shopify_headers(body, SECRETS["GW_US_SHOPIFY_SECRET"], shop="gw-us.myshopify.com",
                              topic="customers/redact", webhook_id="wh-redact-42")
    assert post(url, "/webhooks/shopify/gw-us", body, headers).status_code == 200
    assert "wh-redact-42" in [r["delivery_id"] for r in inbox(warehouse, "gw-us")]


def test_a_shop_cannot_deliver_into_another_workspace(gateway):
    """gw-ca's delivery, validly signed by gw-ca's app, posted to gw-us's URL (either shop header): 401."""
    url, warehouse = gateway
    body = order(9)
    before = len(inbox(warehouse))
    for shop in ("gw-ca.myshopify.com", "gw-us.myshopify.com"):
        headers = shopify_headers(body, SECRETS["GW_CA_SHOPIFY_SECRET"], shop=shop, topic="orders/create",
                                  webhook_id="wh-cross")
        assert post(url, "/webhooks/shopify/gw-us", body, headers).status_code == 401
    # gw-us's own signature but another shop's domain header: refused as well.
    headers = shopify_headers(body, SECRETS["GW_US_SHOPIFY_SECRET"], shop="gw-ca.myshopify.com",
                              topic="orders/create", webhook_id="wh-cross")
    assert post(url, "/webhooks/shopify/gw-us", body, headers).status_code == 401
    assert len(inbox(warehouse)) == before


def test_answers_do_not_tell_which_workspaces_exist(gateway):
    """A bad signature for a real workspace, a workspace that does not exist, and a real workspace on
    the other provider's route get the same status, body and headers (apart from the date)."""
    url, _ = gateway
    body = order(1)
    headers = shopify_headers(body, "guess", shop="gw-us.myshopify.com", topic="orders/create", webhook_id="x")
    answers = [post(url, "/webhooks/shopify/gw-us", body, headers),
               post(url, "/webhooks/shopify/no-such-shop", body, headers),
               post(url, "/webhooks/stripe/gw-us", body, stripe_headers(body, "guess")),
               post(url, "/webhooks/stripe/no-such-account", body, stripe_headers(body, "guess")),
               post(url, "/webhooks/shopify/gw-saas", body, headers)]
    shapes = {(a.status_code, a.content, tuple(sorted((k, v) for k, v in a.headers.items() if k != "date")))
              for a in answers}
    assert len(shapes) == 1 and next(iter(shapes))[0] == 401


# -- Stripe ---------------------------------------------------------------------------------------


def test_stripe_event_signed_with_the_current_or_the_previous_secret_is_stored_once(gateway):
    url, warehouse = gateway
    current, previous = SECRETS["GW_SAAS_STRIPE_WHSEC"], SECRETS["GW_SAAS_STRIPE_WHSEC_OLD"]
    body = event("evt_rotating")
    # While a secret rotates Stripe signs with both; a header may carry several v1 signatures.
    for headers in (stripe_headers(body, current), stripe_headers(body, previous),
                    stripe_headers(body, "some-other-secret", current), stripe_headers(body, previous, "x")):
        assert post(url, "/webhooks/stripe/gw-saas", body, headers).status_code == 200
    rows = inbox(warehouse, "gw-saas")
    assert [(r["delivery_id"], r["topic"]) for r in rows if r["delivery_id"] == "evt_rotating"] == \
        [("evt_rotating", "invoice.paid")]


def test_stripe_timestamps_outside_five_minutes_are_refused(gateway):
    url, warehouse = gateway
    secret = SECRETS["GW_SAAS_STRIPE_WHSEC"]
    now = int(time.time())
    cases = {"evt_stale": (now - 301, 401), "evt_future": (now + 301, 401),
             "evt_late_but_fine": (now - 290, 200), "evt_early_but_fine": (now + 290, 200)}
    for event_id, (t, status) in cases.items():
        body = event(event_id)
        assert post(url, "/webhooks/stripe/gw-saas", body, stripe_headers(body, secret, t=t)).status_code == status
    stored = {r["delivery_id"] for r in inbox(warehouse, "gw-saas")}
    assert {"evt_late_but_fine", "evt_early_but_fine"} <= stored
    assert not {"evt_stale", "evt_future"} & stored


def test_stripe_replays_and_tampering(gateway):
    """A captured delivery replayed within the window is a duplicate (200, stored once); replayed
    with a fresh timestamp but the old signature, or with another body, it is refused."""
    url, warehouse = gateway
    secret = SECRETS["GW_SAAS_STRIPE_WHSEC"]
    body = event("evt_replayed", amount_paid=1000)
    headers = stripe_headers(body, secret, t=int(time.time()) - 60)
    assert [post(url, "/webhooks/stripe/gw-saas", body, headers).status_code for _ in range(3)] == [200, 200, 200]
    t_old = headers["Stripe-Signature"].split(",")[0]
    fresh_t = {"Stripe-Signature": headers["Stripe-Signature"].replace(t_old, f"t={int(time.time())}")}
    assert post(url, "/webhooks/stripe/gw-saas", body, fresh_t).status_code == 401
    other_body = event("evt_replayed", amount_paid=999999)
    assert post(url, "/webhooks/stripe/gw-saas", other_body, headers).status_code == 401
    rows = [r for r in inbox(warehouse, "gw-saas") if r["delivery_id"] == "evt_replayed"]
    assert len(rows) == 1 and json.loads(rows[0]["payload"])["data"]["object"]["amount_paid"] == 1000


def test_stripe_event_for_one_account_cannot_land_in_another(gateway):
    url, warehouse = gateway
    body = event("evt_cross")
    answer = post(url, "/webhooks/stripe/gw-other", body, stripe_headers(body, SECRETS["GW_SAAS_STRIPE_WHSEC"]))
    assert answer.status_code == 401
    assert "evt_cross" not in {r["delivery_id"] for r in inbox(warehouse)}


def test_stripe_signed_body_that_is_not_an_event_is_a_400(gateway):
    url, _ = gateway
    for body in (b"not json", b"[1, 2]", json.dumps({"type": "invoice.paid"}).encode()):
        headers = stripe_headers(body, SECRETS["GW_OTHER_STRIPE_WHSEC"])
        assert post(url, "/webhooks/stripe/gw-other", body, headers).status_code == 400


# -- both -----------------------------------------------------------------------------------------


def test_oversized_bodies_are_refused_before_anything_else(gateway):
    url, warehouse = gateway
    before = len(inbox(warehouse))
    body = event("evt_huge", note="x" * MAX_BODY)
    headers = stripe_headers(body, SECRETS["GW_SAAS_STRIPE_WHSEC"])
    assert post(url, "/webhooks/stripe/gw-saas", body, headers).status_code == 413
    # Without a Content-Length (chunked), the limit still holds on what actually arrives.
    chunks = iter([body[i:i + 8192] for i in range(0, len(body), 8192)])
    answer = requests.post(url + "/webhooks/stripe/gw-saas", data=chunks, headers=headers, timeout=30)
    assert answer.status_code == 413
    # Even for a workspace that does not exist: size is checked first, the same for everyone.
    assert post(url, "/webhooks/stripe/nobody", body, headers).status_code == 413
    assert len(inbox(warehouse)) == before


def test_concurrent_deliveries_with_duplicates_are_each_stored_exactly_once(gateway):
    url, warehouse = gateway
    secret = SECRETS["GW_OTHER_STRIPE_WHSEC"]
    bodies = [event(f"evt_burst_{i % 150}") for i in range(200)]  # 50 repeats among 200 deliveries

    def deliver(body: bytes) -> int:
        return post(url, "/webhooks/stripe/gw-other", body, stripe_headers(body, secret)).status_code

    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(deliver, bodies))
    assert statuses == [200] * 200
    burst = [r["delivery_id"] for r in inbox(warehouse, "gw-other") if r["delivery_id"].startswith("evt_burst_")]
    assert sorted(burst) == sorted({f"evt_burst_{i}" for i in range(150)})


def test_a_locked_duckdb_warehouse_answers_503_then_the_retry_lands(tmp_path):
    """Another writer (a dbt run, say) holds the DuckDB file longer than the gateway waits: 503, so
    the provider retries; once it is free the same delivery is stored."""
    app, warehouse = make_app(tmp_path, lock_timeout=0.3)
    body = event("evt_while_locked")
    with running(app) as url:
        lock = open(warehouse.lock_path, "w")
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            headers = stripe_headers(body, SECRETS["GW_SAAS_STRIPE_WHSEC"])
            answer = post(url, "/webhooks/stripe/gw-saas", body, headers)
            assert (answer.status_code, answer.json()) == (503, {"error": "unavailable, retry later"})
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            lock.close()
        assert post(url, "/webhooks/stripe/gw-saas", body, stripe_headers(body, SECRETS["GW_SAAS_STRIPE_WHSEC"])) \
            .status_code == 200
    assert [r["delivery_id"] for r in inbox(warehouse)] == ["evt_while_locked"]


@pytest.mark.postgres
def test_postgres_inbox_and_an_unreachable_postgres(tmp_path, new_pg_database):
    app, warehouse = make_app(tmp_path / "up", new_pg_database())
    body = order(55)
    headers = shopify_headers(body, SECRETS["GW_US_SHOPIFY_SECRET"], shop="gw-us.myshopify.com",
                              topic="orders/create", webhook_id="wh-pg-55")
    with running(app) as url:
        assert [post(url, "/webhooks/shopify/gw-us", body, headers).status_code for _ in range(2)] == [200, 200]
    assert [(r["workspace_id"], r["delivery_id"]) for r in inbox(warehouse)] == [("gw-us", "wh-pg-55")]

    down, _ = make_app(tmp_path / "down", "postgresql://postgres@127.0.0.1:1/nothing")
    with running(down) as url:
        assert post(url, "/webhooks/shopify/gw-us", body, headers).status_code == 503


@pytest.mark.postgres
def test_postgres_inbox_keeps_one_connection_and_replaces_it_when_postgres_drops_it(tmp_path, new_pg_database):
    url_pg = new_pg_database()
    app, warehouse = make_app(tmp_path / "kept", url_pg)
    admin = psycopg2.connect(url_pg)
    admin.autocommit = True
    database = admin.get_dsn_parameters()["dbname"]

    def gateway_backends() -> set[int]:
        with admin.cursor() as cursor:
            cursor.execute("select pid from pg_stat_activity where datname = %s and pid <> pg_backend_pid()",
                           (database,))
            return {pid for (pid,) in cursor.fetchall()}

    def deliver(url: str, n: int) -> int:
        body = order(n)
        headers = shopify_headers(body, SECRETS["GW_US_SHOPIFY_SECRET"], shop="gw-us.myshopify.com",
                                  topic="orders/create", webhook_id=f"wh-kept-{n}")
        return post(url, "/webhooks/shopify/gw-us", body, headers).status_code

    with running(app) as url:
        assert [deliver(url, n) for n in range(3)] == [200, 200, 200]
        (kept,) = gateway_backends()  # one connection served all three, and is still open
        with admin.cursor() as cursor:  # Postgres restarted, say: the kept connection is cut
            cursor.execute("select pg_terminate_backend(%s)", (kept,))
        assert deliver(url, 3) == 200  # answered on a new connection, not a 503
        (replacement,) = gateway_backends()
        assert replacement != kept
    admin.close()
    assert [r["delivery_id"] for r in inbox(warehouse)] == [f"wh-kept-{n}" for n in range(4)]


def test_duckdb_file_is_kept_between_batches_and_let_go_when_another_process_waits(tmp_path):
    """The gateway keeps the DuckDB file (and the write lock) open while deliveries keep coming, and
    lets go after its next commit once another writer waits for the lock (here a query, as the
    webhook sensor's inbox read or a dbt run would)."""
    app, warehouse = make_app(tmp_path)
    app.state.gateway.writer.LINGER_SECONDS = 30.0  # only a waiting writer can make it let go

    def deliver(url: str, n: int) -> int:
        body = event(f"evt_kept_{n}")
        return post(url, "/webhooks/stripe/gw-saas", body, stripe_headers(body, SECRETS["GW_SAAS_STRIPE_WHSEC"])).status_code

    def lock_is_free() -> bool:
        with open(warehouse.lock_path, "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            fcntl.flock(handle, fcntl.LOCK_UN)
            return True

    with running(app) as url, ThreadPoolExecutor(1) as pool:
        assert deliver(url, 0) == 200
        assert not lock_is_free()  # held after the commit, for the next batch
        waited = time.monotonic()
        counted = pool.submit(lambda: int(warehouse.query("select count(*) as n from webhooks.inbox")["n"][0]))
        time.sleep(0.5)
        assert not counted.done()  # the reader waits: no batch since
        assert deliver(url, 1) == 200  # this commit sees the reader waiting and lets go
        assert counted.result(timeout=20) == 2  # it read after that commit
        assert time.monotonic() - waited < 20  # well before the 30 s linger
        assert deliver(url, 2) == 200  # the gateway takes the file again
    assert [r["delivery_id"] for r in inbox(warehouse)] == [f"evt_kept_{n}" for n in range(3)]


@pytest.mark.slow  # the benchmark harness: a gateway process of its own
def test_the_webhook_bench_counts_every_delivery_it_sent_and_stored(tmp_path, monkeypatch):
    """`abos bench --webhooks`, briefly: `abos serve` in its own process on a fresh DuckDB warehouse;
    every event sent is answered and stored, and both processes' CPU per webhook is reported."""
    from pipelines.bench.webhooks import run_webhook_bench

    monkeypatch.setenv("ABOS_HOME", str(tmp_path))
    result = run_webhook_bench(rate=50, seconds=2, progress=lambda _: None)
    assert (result["sent"], result["statuses"], result["stored"], result["lost"]) == (100, {"200": 100}, 100, 0)
    assert result["gateway_cpu_ms_per_webhook"] > 0 and result["load_generator_cpu_ms_per_webhook"] > 0
