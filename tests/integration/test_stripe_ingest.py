"""The Stripe connector against the sandbox over real HTTP, into real DuckDB files and real Postgres.

Expected values come from the simulator (`truth()`, its own MRR walk) or from the fixture files,
never from what the connector loaded.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import duckdb
import psycopg2
import pytest

from pipelines.sandbox import ecb
from pipelines.currencies import to_major
from pipelines.ingest.pipeline import SyncStats, dlt_pipeline, run_steps
from pipelines.ingest.sync import sync
from pipelines.ingest.stripe import stripe_source
from pipelines.ingest.stripe.history import Version, merge_versions
from pipelines.ingest.stripe.shapes import flatten, to_pinned_shape
from pipelines.sandbox.stripe import versions as stripe_versions
from pipelines.sandbox.simulation.runner import truth as simulated_truth
from pipelines.sandbox.server import Sandbox, build_store
from pipelines.sandbox.simulation.simulator import SIZES, BusinessSpec
from pipelines.sandbox.core.store import SandboxStore
from pipelines.settings import Settings, load_settings
from pipelines.workspaces import Workspace, WorkspaceError, load_workspaces
from tests import pg

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
SMALL_FIXTURE = FIXTURES / "stripe_small.json"
SIZE = "stripe-ingest-test"  # a short simulation: ~150 customers over the usual two years
WORKSPACE = "demo-saas"
AS_OF = date(2026, 10, 1)
SEED = 11
DAY = 86400
KEY_VARIABLE = "ABOS_TEST_STRIPE_KEY"
LIST_PATHS = {"/v1/customers", "/v1/products", "/v1/prices", "/v1/coupons", "/v1/subscriptions", "/v1/invoices"}
NOT_DELETED = "deleted is not true"


# -- sandbox, settings and warehouse -------------------------------------------------------------


@pytest.fixture(scope="module")
def simulation(tmp_path_factory) -> Path:
    """A finished small simulation; tests copy the file, so each may advance its own clock."""
    SIZES[SIZE] = [BusinessSpec(WORKSPACE, "stripe", "Metricly Analytics", "USD", "America/Los_Angeles",
                                {"customers": 150, "currencies": ["usd", "eur", "jpy"]})]
    path = tmp_path_factory.mktemp("stripe-sim") / "sandbox.db"
    build_store(path, size=SIZE, seed=SEED, as_of=AS_OF).close()
    yield path
    SIZES.pop(SIZE, None)


def simulated_sandbox(simulation: Path, tmp_path: Path, faults: str | None = None) -> Sandbox:
    """A sandbox over a copy of the simulation (not started: use it as a context manager)."""
    path = tmp_path / "sandbox.db"
    shutil.copy(simulation, path)
    return Sandbox(build_store(path, size=SIZE, seed=SEED, as_of=AS_OF), faults=faults, seed=SEED)


def fixture_sandbox(tmp_path: Path, doc: dict[str, Any], name: str = "fixture") -> Sandbox:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(doc))
    return Sandbox(build_store(tmp_path / f"{name}.db", fixtures=path))


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse_url(request, tmp_path) -> str:
    if request.param == "duckdb":
        yield f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
        return
    admin = request.getfixturevalue("pg_admin_url")
    name = f"abos_stripe_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    yield with_password(pg.create_database(admin, name))
    pg.drop_database(admin, name)


def with_password(url: str) -> str:
    """dlt refuses Postgres credentials without a password; a trust-auth test server ignores it."""
    parts = urlsplit(url)
    if parts.password or not parts.username:
        return url
    return parts._replace(netloc=parts.netloc.replace(f"{parts.username}@", f"{parts.username}:unused@", 1)).geturl()


@pytest.fixture
def duckdb_url(tmp_path) -> str:
    return f"duckdb:///{tmp_path / 'warehouse.duckdb'}"


def configure(monkeypatch, tmp_path: Path, sandbox: Sandbox, warehouse_url: str, workspace: str = WORKSPACE,
              key: str | None = None, pace: float | None = None) -> tuple[Settings, Workspace]:
    """Point ABOS_* at tmp_path, the warehouse and a workspaces.yaml naming the sandbox (and `pace`:
    the connector's requests_per_second)."""
    accounts = sandbox.connection_info()["stripe"]["workspaces"]
    file = tmp_path / "workspaces.yaml"
    file.write_text(f"""workspaces:
  - id: {workspace}
    name: Test SaaS
    vertical: saas
    timezone: America/Los_Angeles
    currency: USD
    connectors:
      stripe:
        base_url: {sandbox.stripe_url}
        api_key_env: {KEY_VARIABLE}
""" + (f"        requests_per_second: {pace}\n" if pace else ""))
    monkeypatch.setenv("ABOS_HOME", str(tmp_path / "abos"))
    monkeypatch.setenv("ABOS_WAREHOUSE_URL", warehouse_url)
    monkeypatch.setenv("ABOS_WORKSPACES", str(file))
    monkeypatch.setenv(KEY_VARIABLE, key if key is not None else accounts[workspace]["api_key"])
    settings = load_settings()
    return settings, load_workspaces(settings.workspaces_file).get(workspace)


def query(settings: Settings, sql: str) -> list[tuple]:
    if settings.warehouse.kind == "duckdb":
        with duckdb.connect(str(settings.warehouse.duckdb_path), read_only=True) as con:
            return con.execute(sql).fetchall()
    with psycopg2.connect(settings.warehouse.url) as con, con.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def scalar(settings: Settings, sql: str) -> Any:
    return query(settings, sql)[0][0]


# -- checks against the simulator ------------------------------------------------------------------


def assert_equals_truth(settings: Settings, sandbox: Sandbox) -> None:
    """Every raw table holds what the sandbox serves now: counts, money sums per currency, no duplicates."""
    truth = simulated_truth(sandbox.store)["workspaces"][WORKSPACE]
    counts = {table: scalar(settings, f"select count(*) from stripe.{table} where {NOT_DELETED}")
              for table in ("customers", "products", "prices", "coupons", "subscriptions", "invoices")}
    counts["subscription_items"] = scalar(settings, "select count(*) from stripe.subscription_items")
    counts["invoice_lines"] = scalar(settings, "select count(*) from stripe.invoice_lines")
    window_start = sandbox.store.clock - 30 * DAY
    counts["events"] = scalar(settings, f"select count(*) from stripe.events where created >= {window_start}")
    assert counts == truth["counts"]
    sums = {
        currency: {"invoice_total": int(total), "invoice_subtotal": int(subtotal), "invoice_amount_paid": int(paid),
                   "invoice_amount_due": int(due)}
        for currency, total, subtotal, paid, due in query(settings, (
            "select currency, sum(total), sum(subtotal), sum(amount_paid), sum(amount_due) "
            f"from stripe.invoices where {NOT_DELETED} group by currency"))
    }
    line_sums = dict(query(settings, "select currency, sum(amount) from stripe.invoice_lines group by currency"))
    for currency, expected in truth["sums"].items():
        assert sums[currency] == {k: v for k, v in expected.items() if k in sums[currency]}, currency
        assert int(line_sums[currency]) == expected["line_amount"], currency
    for table in ("customers", "subscriptions", "invoices", "subscription_items", "invoice_lines", "events"):
        assert scalar(settings, f"select count(*) - count(distinct id) from stripe.{table}") == 0, table


def history_mrr(settings: Settings, at: int) -> dict[str, Decimal]:
    """MRR in minor units per currency at Unix time `at`, from the recorded history (DESIGN.md rules)."""
    coupons = {cid: (duration, percent, amount) for cid, duration, percent, amount in query(
        settings, "select id, duration, percent_off, amount_off from stripe.coupons")}
    discount_coupon = dict(query(settings, "select id, source__coupon from stripe.discounts"))
    versions = query(settings, f"""
        select h.id, h.status, h.cancel_at_period_end, h.currency, h.discounts, i.price__unit_amount, i.quantity,
               i.price__recurring__interval, i.price__recurring__interval_count, i.price__recurring__usage_type
        from stripe.subscription_history h
        join stripe.subscription_item_history i
          on i.workspace_id = h.workspace_id and i.subscription = h.id and i.valid_from = h.valid_from
        where h.valid_from <= {at} and (h.valid_to is null or h.valid_to > {at})
        order by h.id, i.id""")
    per_sub: dict[str, dict[str, Any]] = {}
    for sub_id, status, ending, currency, discounts, unit, quantity, interval, count, usage in versions:
        sub = per_sub.setdefault(sub_id, {"status": status, "ending": ending, "currency": currency,
                                          "total": Decimal(0), "months": None, "discounts": discounts})
        months = {"month": Decimal(1), "year": Decimal(12), "week": Decimal(12) / 52}[interval] * count
        sub["months"] = sub["months"] or months  # the plan item (first) sets the billing interval
        if usage != "metered":
            sub["total"] += Decimal(unit * quantity) / months
    mrr: dict[str, Decimal] = Counter()
    for sub in per_sub.values():
        if sub["status"] not in ("active", "past_due") or sub["ending"]:  # a requested cancellation ends MRR
            continue
        total = sub["total"]
        ids = json.loads(sub["discounts"]) if isinstance(sub["discounts"], str) else (sub["discounts"] or [])
        for discount_id in ids:
            duration, percent, amount = coupons[discount_coupon[discount_id]]
            if duration == "forever":
                total = total * (100 - Decimal(str(percent))) / 100 if percent is not None else \
                    total - Decimal(amount) / sub["months"]
        mrr[sub["currency"]] += max(total, Decimal(0))
    return mrr


def assert_history_reproduces_truth(settings: Settings, sandbox: Sandbox, since: int) -> int:
    """Daily MRR rebuilt from history equals the simulator's own daily MRR on every day after `since`."""
    tz = ZoneInfo("America/Los_Angeles")
    daily = simulated_truth(sandbox.store)["workspaces"][WORKSPACE]["mrr"]["daily"]
    checked = 0
    for day_text, expected in daily.items():
        day = date.fromisoformat(day_text)
        end = int(datetime.combine(day + timedelta(days=1), datetime.min.time(), tz).timestamp())
        if end <= since:
            continue
        at = min(end, sandbox.store.clock + 1) - 1  # the day's last second (or now, for today)
        total = sum((ecb.convert(sandbox.store, to_major(amount, currency), currency, "USD", day)
                     for currency, amount in history_mrr(settings, at).items() if amount), Decimal(0))
        assert str(total.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)) == expected["mrr"], day_text
        checked += 1
    return checked


def requests_since(sandbox: Sandbox, start: int) -> list[dict[str, Any]]:
    return [e for e in sandbox.requests.entries(start, "stripe") if e["path"].startswith("/v1/")]


# -- 1, 2 and 3. full sync, incremental sync, history ----------------------------------------------------


def test_full_then_incremental_sync_equal_truth_and_keep_history(simulation, tmp_path, monkeypatch, warehouse_url):
    # The full sync hands the subscriptions' history over every 20 versions, not all at its end.
    monkeypatch.setattr("pipelines.ingest.stripe.feed.BATCH_ROWS", 20)
    with simulated_sandbox(simulation, tmp_path) as sandbox:
        settings, workspace = configure(monkeypatch, tmp_path, sandbox, warehouse_url)
        first = sync("stripe", workspace, settings)
        assert first.stats.mode == "full"
        assert_equals_truth(settings, sandbox)
        newest = sandbox.store.query(WORKSPACE, "stripe", "event", descending=True, limit=1)[0]
        first_sync_at = first.cursor_after["event_cursor"]["created"]
        assert first.cursor_after["event_cursor"] == {"id": newest.id, "created": newest.created}
        # Subscriptions of every status, every row tagged with its workspace, every request pinned.
        statuses = {s for (s,) in query(settings, "select distinct status from stripe.subscriptions")}
        assert {"active", "canceled"} <= statuses
        assert scalar(settings, "select count(*) from stripe.invoices where workspace_id <> 'demo-saas'") == 0
        assert scalar(settings, "select count(*) from stripe.subscription_history where valid_to is null") == \
            scalar(settings, "select count(*) from stripe.subscriptions")
        entries = requests_since(sandbox, 0)
        assert all(e.get("stripe_version") == settings.stripe_api_version for e in entries if e["status"] == 200)
        subscription_lists = [e for e in entries if e["path"] == "/v1/subscriptions"]
        assert subscription_lists and all(e["filters"].get("status") == "all" for e in subscription_lists)
        assert all("created" in e["filters"] for e in entries if e["path"] in LIST_PATHS)
        # Stripe lists no deleted customer; those the retained events name are kept, flagged.
        deleted_by_events = {cus for (cus,) in query(
            settings, "select object_id from stripe.events where type = 'customer.deleted'")}
        kept = {cus: at for cus, at in query(settings, "select id, deleted_at from stripe.customers where deleted")}
        assert set(kept) == deleted_by_events and all(kept.values())

        changed: Counter[str] = Counter()
        for days in (8, 12):
            changed.update(sandbox.advance(days=days)["changed"][WORKSPACE])
            start = len(sandbox.requests)
            result = sync("stripe", workspace, settings)
            assert result.stats.mode == "incremental"
            assert_equals_truth(settings, sandbox)
            entries = requests_since(sandbox, start)
            assert not [e for e in entries if e["path"] in LIST_PATHS], "an incremental sync listed a whole table"
            event_lists = [e for e in entries if e["path"] == "/v1/events"]
            assert event_lists[0]["filters"]["ending_before"] == result.cursor_before["event_cursor"]["id"]
            assert result.cursor_after["event_cursor"]["created"] >= result.cursor_before["event_cursor"]["created"]
        assert changed["subscription"] and changed["invoice"]
        # Upgrades or downgrades and cancellations happened in the window, and each left a version.
        kinds = Counter(t for (t,) in query(settings, f"select type from stripe.events where created > {first_sync_at}"))
        assert kinds["customer.subscription.updated"] and kinds["customer.subscription.deleted"]
        assert scalar(settings, "select count(*) from stripe.subscription_history where valid_to is not null") > 0
        overlaps = scalar(settings, """
            select count(*) from stripe.subscription_history a join stripe.subscription_history b
              on a.workspace_id = b.workspace_id and a.id = b.id and a.valid_from < b.valid_from
             and (a.valid_to is null or a.valid_to > b.valid_from)""")
        assert overlaps == 0
        assert assert_history_reproduces_truth(settings, sandbox, since=first_sync_at) >= 20


# -- 4. kill -9 and rerun --------------------------------------------------------------------------

# Runs `abos ingest stripe <workspace>`, optionally parked in a stage for the test to kill it there:
# normalize (files written, package not committed) or load (jobs done, package not completed).
CLI = """
import sys, time
from dlt.common.storages.load_storage import LoadStorage
from dlt.load.load import Load

def park(stage, step):
    def parked(*args, **kwargs):
        print("PARKED " + stage, flush=True)
        time.sleep(120)
        return step(*args, **kwargs)
    return parked

if sys.argv[1] == "normalize":
    LoadStorage.commit_new_load_package = park("normalize", LoadStorage.commit_new_load_package)
elif sys.argv[1] == "load":
    Load.complete_package = park("load", Load.complete_package)
from pipelines.cli import main
sys.exit(main(["ingest", "stripe", sys.argv[2]]))
"""


def start_cli(stage: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CLI, stage, WORKSPACE], cwd=REPO, env=dict(os.environ),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def kill_in(stage: str, sandbox: Sandbox) -> None:
    """Start a sync and kill -9 it during `stage`."""
    process = start_cli(stage)
    try:
        if stage == "extract":
            start = len(sandbox.requests)
            deadline = time.monotonic() + 120
            while len(sandbox.requests) - start < 15:  # well into the listing
                assert process.poll() is None and time.monotonic() < deadline, "the sync ended before the kill"
                time.sleep(0.02)
        else:
            for line in process.stdout:
                if line.startswith(f"PARKED {stage}"):
                    break
            else:
                pytest.fail(f"the sync ended without reaching {stage}")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL


def finish_cli() -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "pipelines.cli", "ingest", "stripe", WORKSPACE], cwd=REPO,
                          env=dict(os.environ), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def loaded_tables(settings: Settings) -> dict[str, tuple[dict[str, str], list[tuple]]]:
    """Per raw Stripe table: its columns' types and its sorted rows (dlt's own columns left out)."""
    tables = {}
    for (table,) in query(settings, "select table_name from information_schema.tables where table_schema = 'stripe' "
                                    "and table_name not like '\\_dlt%' escape '\\'"):
        columns = dict(query(settings, "select column_name, data_type from information_schema.columns where "
                                       f"table_schema = 'stripe' and table_name = '{table}' "
                                       "and column_name not like '\\_dlt%' escape '\\'"))
        names = sorted(columns)
        rows = query(settings, "select " + ", ".join(f'"{name}"' for name in names) + f" from stripe.{table}")
        tables[table] = (columns, sorted(rows, key=repr))
    return tables


def test_arrow_tables_load_the_same_rows_as_dlts_dict_normalizer(simulation, tmp_path, monkeypatch):
    """Full and incremental syncs through Arrow tables and through dlt's dict rows, into two warehouses:
    the same tables, column types and rows (children and history included)."""
    with simulated_sandbox(simulation, tmp_path) as sandbox:
        loaded = {}
        for as_arrow in (True, False):
            home = tmp_path / f"arrow-{as_arrow}"
            home.mkdir()
            settings, workspace = configure(monkeypatch, home, sandbox, f"duckdb:///{home / 'warehouse.duckdb'}")
            loaded[as_arrow] = (settings, workspace)
        for step in ("full", "incremental"):
            if step == "incremental":
                sandbox.advance(days=8)
            for as_arrow, (settings, workspace) in loaded.items():
                stats = SyncStats()
                source = stripe_source(workspace, settings=settings, stats=stats, as_arrow=as_arrow)
                run_steps(dlt_pipeline("stripe", workspace.id, settings), source, settings.warehouse, stats)
                assert stats.mode == step
                assert (stats.arrow_rows > 0) if as_arrow else (stats.arrow_rows == 0)
            arrow, dicts = loaded_tables(loaded[True][0]), loaded_tables(loaded[False][0])
            assert set(arrow) == set(dicts)
            for table in dicts:
                assert arrow[table][0] == dicts[table][0], table  # same columns, same types
                assert arrow[table][1] == dicts[table][1], table  # same rows
            assert arrow["invoice_lines"][1] and arrow["subscription_items"][1] and arrow["discounts"][1]


@pytest.mark.slow  # 75 s; Shopify's kill tests and the chaos test (slow) cover the same path
def test_kill_during_extract_normalize_and_load_then_rerun_is_exact(simulation, tmp_path, monkeypatch, duckdb_url):
    # Slow answers stretch the extract so the kill lands inside it.
    with simulated_sandbox(simulation, tmp_path, faults="stripe:slow=0.5:0.2") as sandbox:
        settings, _ = configure(monkeypatch, tmp_path, sandbox, duckdb_url)
        kill_in("extract", sandbox)
        sandbox.faults.rates = {}
        kill_in("normalize", sandbox)
        kill_in("load", sandbox)
        finish_cli()
        assert_equals_truth(settings, sandbox)
        sandbox.advance(days=7)
        kill_in("load", sandbox)  # this time an incremental sync
        report = finish_cli()
        assert report["stats"]["sync_mode"] == "incremental"
        assert_equals_truth(settings, sandbox)


# -- 5. faults ---------------------------------------------------------------------------------------


def test_faults_are_retried_and_result_is_exact(simulation, tmp_path, monkeypatch, duckdb_url):
    faults = "stripe:429=0.07,stripe:5xx=0.07,stripe:truncate=0.06"
    with simulated_sandbox(simulation, tmp_path, faults=faults) as sandbox:
        settings, workspace = configure(monkeypatch, tmp_path, sandbox, duckdb_url)
        full = sync("stripe", workspace, settings)
        sandbox.advance(days=8)
        incremental = sync("stripe", workspace, settings)
        assert incremental.stats.mode == "incremental"
        assert_equals_truth(settings, sandbox)
        injected = Counter(e["fault"] for e in requests_since(sandbox, 0) if e["fault"])
        assert {"429", "5xx", "truncate"} <= set(injected)
        assert full.stats.retries + incremental.stats.retries >= sum(injected.values())
        assert full.stats.requests == full.stats.retries + sum(  # every attempt is counted
            1 for e in requests_since(sandbox, 0)[:full.stats.requests] if not e["fault"])


def test_a_first_sync_reads_the_retained_events_in_several_windows_at_once(simulation, tmp_path, monkeypatch,
                                                                          duckdb_url):
    """One walk of a large account's events (≈ 400,000 at the benchmark's scale 1) took minutes, one round
    trip after the other: a first sync reads them by `created` windows side by side, every retained
    event once."""
    with simulated_sandbox(simulation, tmp_path, faults="stripe:slow=1.0:0.05") as sandbox:
        settings, workspace = configure(monkeypatch, tmp_path, sandbox, duckdb_url)
        sync("stripe", workspace, settings)
        walked = [(entry["time"], entry["time"] + entry["ms"] / 1000) for entry in requests_since(sandbox, 0)
                  if entry["path"] == "/v1/events" and "created" in entry["query"]]
        # The retained events among the rest, each once; a subscription canceled within them is listed
        # (`status=all`), so its `customer.subscription.deleted` event leaves it a live row.
        assert_equals_truth(settings, sandbox)
        assert scalar(settings, "select count(*) from stripe.events where type = 'customer.subscription.deleted'")
    walked.sort()
    overlapping = sum(1 for (start, _), (_, end) in zip(walked[1:], walked) if start < end)
    assert len(walked) > 4 and overlapping > 0


# -- 6. expired cursor -------------------------------------------------------------------------------


def test_expired_cursor_falls_back_to_a_full_resync(simulation, tmp_path, monkeypatch, duckdb_url, caplog):
    with simulated_sandbox(simulation, tmp_path) as sandbox:
        settings, workspace = configure(monkeypatch, tmp_path, sandbox, duckdb_url)
        first = sync("stripe", workspace, settings)
        sandbox.advance(days=35)
        with caplog.at_level(logging.WARNING, logger="pipelines.ingest.stripe"):
            resync = sync("stripe", workspace, settings)
        assert resync.stats.mode == "full"
        assert any("30-day" in note and "full resync" in note for note in resync.stats.notes)
        assert any("full resync" in record.getMessage() for record in caplog.records)
        assert resync.cursor_after["event_cursor"]["created"] > first.cursor_after["event_cursor"]["created"]
        assert_equals_truth(settings, sandbox)
        # History stays one version at a time, and is exact again from the resync on.
        resynced_at = resync.cursor_after["event_cursor"]["created"]
        sandbox.advance(days=4)
        assert sync("stripe", workspace, settings).stats.mode == "incremental"
        assert_equals_truth(settings, sandbox)
        assert assert_history_reproduces_truth(settings, sandbox, since=resynced_at) >= 4


# -- 7. drift and old API versions (fixture mode) ----------------------------------------------------


def changed_fixture() -> dict[str, Any]:
    """stripe_small.json with tests/fixtures/ingest_stripe_changes.json applied."""
    doc = json.loads(SMALL_FIXTURE.read_text())
    changes = json.loads((FIXTURES / "ingest_stripe_changes.json").read_text())
    stripe = doc["workspaces"]["test-saas"]["stripe"]
    for key, objects in changes["replace"].items():
        by_id = {obj["id"]: obj for obj in objects}
        stripe[key] = [by_id.get(obj["id"], obj) for obj in stripe[key]]
    for key, objects in changes["add"].items():
        stripe[key] = stripe[key] + objects
    doc["clock"] = changes["clock"]
    return doc


def test_drift_and_old_version_events_load_without_loss(tmp_path, monkeypatch, duckdb_url):
    base = json.loads(SMALL_FIXTURE.read_text())
    with fixture_sandbox(tmp_path, base, "base") as sandbox:
        settings, workspace = configure(monkeypatch, tmp_path, sandbox, duckdb_url, workspace="test-saas")
        first = sync("stripe", workspace, settings)
    changes = json.loads((FIXTURES / "ingest_stripe_changes.json").read_text())
    with fixture_sandbox(tmp_path, changed_fixture(), "changed") as sandbox:
        settings, workspace = configure(monkeypatch, tmp_path, sandbox, duckdb_url, workspace="test-saas")
        second = sync("stripe", workspace, settings)
        lines_paged = [e for e in requests_since(sandbox, 0) if e["path"] == "/v1/invoices/in_Tmanylines/lines"]
        items_paged = [e for e in requests_since(sandbox, 0) if e["path"] == "/v1/subscription_items"]
    assert second.stats.mode == "incremental"
    assert second.cursor_after["event_cursor"]["id"] == changes["add"]["events"][-1]["id"]
    # Drift: the new fields and the text balance are kept; the other customers' balances stay integers.
    columns = {c for (c,) in query(settings, "select column_name from information_schema.columns "
                                             "where table_schema = 'stripe' and table_name = 'customers'")}
    assert {"loyalty_tier", "preferences__newsletter", "balance__v_text"} <= columns
    drifted = query(settings, "select loyalty_tier, preferences__seats_hint, balance__v_text, balance "
                              "from stripe.customers where id = 'cus_T02sandbox'")
    assert drifted == [("gold", 4, "12.50 EUR", None)]
    # 12 listed customers with a zero balance (not cus_T02sandbox, now text), and cus_T13sandbox,
    # deleted: Stripe lists it no more,
    # its customer.deleted event (still retained) brought it in.
    assert scalar(settings, "select count(*) from stripe.customers where balance = 0") == 13
    package = second.load_info.load_packages[-1]
    assert {"loyalty_tier", "balance__v_text"} <= set(package.schema_update["customers"]["columns"])
    # 2023-08-16 events are stored in the pinned shape: periods on items, prices under `pricing`.
    items = query(settings, "select id, quantity, current_period_start from stripe.subscription_items "
                            "where subscription = 'sub_Tactive01'")
    assert items == [("si_Tactive0101", 3, 1774051200)]
    assert scalar(settings, "select count(*) from stripe.subscription_items where subscription = 'sub_Tmanyitem'") == 12
    assert scalar(settings, "select quantity from stripe.subscription_items where id = 'si_Tmanyitem12'") == 20
    sub_columns = {c for (c,) in query(settings, "select column_name from information_schema.columns "
                                                 "where table_schema = 'stripe' and table_name = 'subscriptions'")}
    assert "current_period_start" not in sub_columns and "discount__id" not in sub_columns
    line_columns = {c for (c,) in query(settings, "select column_name from information_schema.columns "
                                                  "where table_schema = 'stripe' and table_name = 'invoice_lines'")}
    assert not {"price__id", "type", "proration"} & line_columns
    lines = query(settings, "select count(*), count(pricing__price_details__price), sum(amount) "
                            "from stripe.invoice_lines where invoice = 'in_Tmanylines'")
    expected_lines = [o for o in base["workspaces"]["test-saas"]["stripe"]["invoices"] if o["id"] == "in_Tmanylines"]
    assert lines == [(13, 13, sum(line["amount"] for line in expected_lines[0]["lines"]["data"]))]
    assert lines_paged and items_paged
    # History: the upgrade is a new version dated by its event, closing the first-sync version.
    versions = query(settings, "select h.valid_from, h.valid_to, i.quantity from stripe.subscription_history h "
                               "join stripe.subscription_item_history i on i.subscription = h.id "
                               "and i.valid_from = h.valid_from where h.id = 'sub_Tactive01' order by 1")
    upgraded_at = changes["add"]["events"][1]["created"]
    first_at = first.cursor_after["event_cursor"]["created"]
    assert versions == [(first_at, upgraded_at, 1), (upgraded_at, None, 3)]


def test_running_some_tables_leaves_the_cursor_for_the_others(tmp_path, monkeypatch, duckdb_url):
    with fixture_sandbox(tmp_path, json.loads(SMALL_FIXTURE.read_text())) as sandbox:
        settings, workspace = configure(monkeypatch, tmp_path, sandbox, duckdb_url, workspace="test-saas")
        stats = SyncStats()
        pipeline = dlt_pipeline("stripe", workspace.id, settings)
        pipeline.run(stripe_source(workspace, settings=settings, stats=stats).with_resources("customers"))
        assert "event_cursor" not in pipeline.state.get("sources", {}).get("stripe", {})
        assert any("cursor left" in note for note in stats.notes)
        # 13 listed, and cus_T13sandbox from its customer.deleted event (Stripe lists no deleted customer)
        assert scalar(settings, "select count(*) from stripe.customers") == 14
        assert query(settings, "select id, deleted, deleted_at from stripe.customers where deleted") == [
            ("cus_T13sandbox", True, 1774828800)]
        # The next complete run is still a full sync, so no table misses anything.
        assert sync("stripe", workspace, settings).stats.mode == "full"


def test_reads_are_paced_at_the_connectors_requests_per_second(tmp_path, monkeypatch, duckdb_url):
    """`connectors.stripe.requests_per_second: 10` spaces the requests' starts 0.1 s apart; ignored,
    the test-mode key's default pace (20/s) would start them twice as often."""
    with fixture_sandbox(tmp_path, json.loads(SMALL_FIXTURE.read_text())) as sandbox:
        settings, workspace = configure(monkeypatch, tmp_path, sandbox, duckdb_url, workspace="test-saas", pace=10)
        assert workspace.connectors["stripe"].options == {"requests_per_second": 10.0}
        started = time.monotonic()
        stats = sync("stripe", workspace, settings).stats
        elapsed = time.monotonic() - started
        starts = sorted(entry["time"] for entry in requests_since(sandbox, 0))
    assert len(starts) > 20
    # The sandbox stamps a request when its handler starts, so a busy machine can stamp the first
    # ones late and shorten the span by a scheduling delay or two. Paced at 10/s the span is
    # (n − 1) × 0.1 s; at the test key's 20/s it would be half that: three quarters tells them apart.
    assert starts[-1] - starts[0] >= 0.75 * (len(starts) - 1) / 10
    # The pacing wait is wall time: the list's readers wait side by side and count once, so it
    # cannot exceed the sync's own duration (the benchmark's own time subtracts it).
    assert 0 < stats.throttle_wait_seconds <= elapsed


# -- 8. bad credentials ------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["sk_test_not_the_right_key_4242", ""])
def test_bad_or_missing_key_names_workspace_and_setting(tmp_path, monkeypatch, duckdb_url, key):
    with fixture_sandbox(tmp_path, json.loads(SMALL_FIXTURE.read_text())) as sandbox:
        settings, workspace = configure(monkeypatch, tmp_path, sandbox, duckdb_url, workspace="test-saas", key=key)
        with pytest.raises(WorkspaceError) as failure:
            sync("stripe", workspace, settings)
    message = str(failure.value)
    assert "'test-saas'" in message and "connectors.stripe.api_key_env" in message and KEY_VARIABLE in message
    if key:
        assert "401" in message
        assert key not in message and key[-4:] not in message


# -- building blocks -----------------------------------------------------------------------------------


def assert_restored(restored: dict[str, Any], original: dict[str, Any]) -> None:
    """Every column the normalized old shape has, the stored object has too, with the same value."""
    restored, original = flatten(restored), flatten(original)
    assert not set(restored) - set(original), set(restored) - set(original)
    assert restored == {k: original[k] for k in restored}


def test_old_shape_objects_normalize_to_the_pinned_shape(simulation):
    """Subscriptions and invoices rendered in 2023-08-16 by the sandbox come back as stored."""
    store = SandboxStore(simulation)
    lookup = lambda kind, id: (found.body if (found := store.get(WORKSPACE, "stripe", kind, id)) else None)  # noqa: E731
    checked = Counter()
    for kind, embedded in (("subscription", "items"), ("invoice", "lines")):
        for stored in store.iter_objects(WORKSPACE, "stripe", kind):
            assert to_pinned_shape(stored.body) == stored.body  # the pinned shape passes through
            restored = to_pinned_shape(stripe_versions.render(stored.body, stripe_versions.LEGACY, lookup))
            assert_restored({k: v for k, v in restored.items() if k != embedded},
                            {k: v for k, v in stored.body.items() if k != embedded})
            children = restored[embedded]["data"]
            assert [c["id"] for c in children] == [c["id"] for c in stored.body[embedded]["data"]]
            for child, stored_child in zip(children, stored.body[embedded]["data"]):
                assert_restored(child, stored_child)
            # What MRR and revenue need came back, not just "nothing wrong".
            if kind == "subscription":
                assert all(c["current_period_start"] == s["current_period_start"]
                           for c, s in zip(children, stored.body["items"]["data"]))
                assert restored["discounts"] == stored.body["discounts"]
            else:
                assert restored["parent"] == stored.body["parent"]
                assert all(c["pricing"]["price_details"]["price"] == s["pricing"]["price_details"]["price"]
                           and c["parent"] == s["parent"] for c, s in zip(children, stored.body["lines"]["data"]))
            checked[kind] += 1
    assert checked["subscription"] > 100 and checked["invoice"] > 500


def test_versions_are_dated_by_their_events_and_chained():
    row = {"workspace_id": "w", "id": "sub_1", "status": "active"}
    first = merge_versions([], [Version(100, dict(row), [{"id": "si_1", "quantity": 1}])])
    stored = [first[1][0].row]
    assert stored[0]["valid_to"] is None
    # Two changes in one sync, one of them a no-op: two closed ranges and one open one.
    changed, added = merge_versions(stored, [
        Version(200, {**row, "status": "past_due"}, [{"id": "si_1", "quantity": 1}]),
        Version(250, {**row, "status": "past_due"}, [{"id": "si_1", "quantity": 1}]),
        Version(300, {**row, "status": "active"}, [{"id": "si_1", "quantity": 2}]),
    ])
    assert [(r["valid_from"], r["valid_to"]) for r in changed] == [(100, 200)]
    assert [(v.valid_from, v.row["valid_to"], v.row["status"]) for v in added] == [
        (200, 300, "past_due"), (300, None, "active")]
    assert added[1].items == [{"id": "si_1", "quantity": 2, "valid_from": 300}]
    # Replaying the same events (a rerun) changes nothing that is stored.
    stored = [changed[0]] + [v.row for v in added]
    again = merge_versions(stored, [Version(300, {**row, "status": "active"}, [{"id": "si_1", "quantity": 2}])])
    assert again[0] == [] and [v.row["valid_to"] for v in again[1]] == [None]


def test_nul_characters_are_removed_from_listed_objects(tmp_path, monkeypatch, duckdb_url):
    """A NUL inside a string (JSON sends it as the escape \\u0000) is dropped before loading, and
    counted; a customer without one loads as served."""
    doc = json.loads(SMALL_FIXTURE.read_text())
    customers = doc["workspaces"]["test-saas"]["stripe"]["customers"]
    customers[0]["name"] = "Ana\u0000 Lima"
    customers[0]["metadata"] = {"note": "a\u0000b"}
    plain = customers[1]["id"], customers[1]["name"]
    with fixture_sandbox(tmp_path, doc) as sandbox:
        settings, workspace = configure(monkeypatch, tmp_path, sandbox, duckdb_url, workspace="test-saas")
        stats = sync("stripe", workspace, settings).stats
    assert stats.nul_removed == 2
    assert query(settings, f"select name, metadata from stripe.customers where id = '{customers[0]['id']}'") == [
        ("Ana Lima", '{"note":"ab"}')]
    assert query(settings, f"select name from stripe.customers where id = '{plain[0]}'") == [(plain[1],)]
