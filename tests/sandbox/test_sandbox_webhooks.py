"""The sandbox delivers signed webhooks for what its clock changes, to the real gateway over HTTP.

The demo workspaces.yaml, pointed at the sandbox (as `abos demo` does), configures the gateway; the
expected deliveries are read from the sandbox's store: every order, customer and product whose
update time falls in the advanced window (Shopify) and every event created in it (Stripe).
"""

from __future__ import annotations

import fcntl
import json
import threading
from datetime import date

import pytest

from pipelines.sandbox.core.connection import sandbox_env
from pipelines.sandbox.server import Sandbox, build_store
from pipelines.sandbox.core.webhooks import SHOPIFY_KINDS
from pipelines.serve import create_app
from pipelines.settings import PROJECT_ROOT, load_settings
from pipelines.warehouse import Warehouse
from pipelines.workspaces import load_workspaces
from tests.gateway import running

AS_OF = date(2026, 3, 31)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    store = build_store(tmp_path_factory.mktemp("sandbox") / "tiny.sqlite", size="tiny", seed=11, as_of=AS_OF)
    with Sandbox(store, seed=11) as running_sandbox:
        running_sandbox.webhooks.retry_delays = (0.2, 0.4, 0.8, 1.6, 3.2)
        yield running_sandbox


@pytest.fixture
def gateway(sandbox, tmp_path):
    """The gateway for the demo workspaces on a fresh DuckDB warehouse, subscribed to the sandbox."""
    env = {**sandbox_env(sandbox.connection_info()), "ABOS_HOME": str(tmp_path)}
    settings = load_settings(env)
    workspaces = load_workspaces(PROJECT_ROOT / "workspaces.yaml", env=env)
    app = create_app(settings, workspaces, env=env, lock_timeout=0.2)
    with running(app) as url:
        sandbox.webhooks.subscribe(url)
        sandbox.webhooks.log.clear()
        yield settings.warehouse
    sandbox.webhooks.misbehave(None)


def expected(sandbox: Sandbox, since: int, until: int) -> dict[tuple[str, str], set[str]]:
    """The objects (Shopify global ids) and events (Stripe ids) changed in (since, until], per workspace."""
    store, found = sandbox.store, {}
    for workspace in store.accounts("shopify"):
        found[("shopify", workspace)] = {
            o.id for kind in SHOPIFY_KINDS
            for o in store.query(workspace, "shopify", kind, order_by="updated", updated={"gt": since, "lte": until})}
    for workspace in store.accounts("stripe"):
        found[("stripe", workspace)] = {e.id for e in store.query(workspace, "stripe", "event",
                                                                  created={"gt": since, "lte": until})}
    return found


def received(warehouse: Warehouse) -> dict[tuple[str, str], list[str]]:
    """What the inbox holds: the Shopify objects' global ids and the Stripe event ids, repeats kept."""
    found: dict[tuple[str, str], list[str]] = {}
    for row in warehouse.query("select provider, workspace_id, payload from webhooks.inbox").to_dict("records"):
        payload = json.loads(row["payload"])
        key = payload["admin_graphql_api_id"] if row["provider"] == "shopify" else payload["id"]
        found.setdefault((row["provider"], row["workspace_id"]), []).append(key)
    return found


def advance(sandbox: Sandbox, days: float) -> tuple[int, int]:
    since = sandbox.store.clock
    sandbox.advance(days=days)
    assert sandbox.webhooks.wait_idle(120)
    return since, sandbox.store.clock


def test_every_change_of_an_advance_arrives_once(sandbox, gateway):
    since, until = advance(sandbox, 1)
    want = expected(sandbox, since, until)
    assert all(want.values()), f"the day changed nothing somewhere: {want}"
    got = received(gateway)
    assert {key: sorted(ids) for key, ids in got.items()} == {key: sorted(ids) for key, ids in want.items()}
    topics = {entry["topic"] for entry in sandbox.webhooks.log}
    assert {"orders/create", "orders/updated"} <= topics
    assert all(entry["status"] == 200 for entry in sandbox.webhooks.log)


def test_forged_stale_duplicated_replayed_and_shuffled_deliveries(sandbox, gateway):
    """Forgeries and stale signatures are refused (401), duplicates and replays accepted (200) but
    stored once, and the shuffled order loses nothing: the inbox holds exactly the changes."""
    sandbox.webhooks.misbehave("bad_signature=0.3,stale=0.3,duplicate=0.3,replay=0.3,out_of_order=1")
    since, until = advance(sandbox, 1)
    log = sandbox.webhooks.log
    kinds = {entry["kind"] for entry in log}
    assert {"genuine", "bad_signature", "stale", "duplicate", "replay"} <= kinds
    assert {e["status"] for e in log if e["kind"] in ("bad_signature", "stale")} == {401}
    assert {e["status"] for e in log if e["kind"] in ("genuine", "duplicate", "replay")} == {200}
    got = received(gateway)
    want = expected(sandbox, since, until)
    assert {key: sorted(ids) for key, ids in got.items()} == {key: sorted(ids) for key, ids in want.items()}


def test_deliveries_refused_while_the_warehouse_is_busy_are_retried_until_they_land(sandbox, gateway):
    lock = open(gateway.lock_path, "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    release = threading.Timer(1.5, lambda: (fcntl.flock(lock, fcntl.LOCK_UN), lock.close()))
    release.start()
    since, until = advance(sandbox, 1)
    release.join()
    log = sandbox.webhooks.log
    assert any(entry["status"] == 503 for entry in log)
    refused = {e["delivery_id"] for e in log if e["status"] == 503}
    delivered = {e["delivery_id"] for e in log if e["status"] == 200}
    assert refused <= delivered  # every refused delivery was retried and then accepted
    assert max(e["attempt"] for e in log) > 1
    got = received(gateway)
    want = expected(sandbox, since, until)
    assert {key: sorted(ids) for key, ids in got.items()} == {key: sorted(ids) for key, ids in want.items()}
