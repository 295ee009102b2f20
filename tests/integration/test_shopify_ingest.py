"""The Shopify connector end to end: the simulated store over real HTTP, real DuckDB files, real Postgres.

Two short-history shops (one with a static token, one with client credentials) are simulated once
per module and copied for each test, so tests can advance their own copy. Every check compares the
warehouse with the simulator's ground truth or with a second, independent sync.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from datetime import date, datetime, time as dtime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import duckdb
import psycopg2
import pytest
import yaml

from pipelines.ingest.pipeline import SyncStats, dlt_pipeline
from pipelines.ingest.sync import sync
import pipelines.ingest.shopify as shopify_connector
from pipelines.ingest.shopify import TABLES, queries, shopify_source
from pipelines.sandbox.core.http import Faults
from pipelines.sandbox.server import Sandbox, build_store
from pipelines.sandbox.simulation.shop.simulator import ShopSimulator
from pipelines.sandbox.simulation.simulator import BusinessSpec
from pipelines.sandbox.core.store import SandboxStore
from pipelines.settings import Settings, load_settings
from pipelines.workspaces import Connector, Workspace, WorkspaceError
from tests import pg

REPO = Path(__file__).resolve().parents[2]
PYCACHE = Path(os.environ.get("TMPDIR", "/tmp")) / "abos-test-pycache"
FIXTURES = REPO / "tests" / "fixtures"
AS_OF = date(2026, 11, 20)
HISTORY_DAYS = 40
SPECS = [
    BusinessSpec("shop-us", "shopify", "Test US Shop", "USD", "America/New_York",
                 {"orders_per_day": 16, "products": 10, "countries": ["US", "CA"], "history_days": HISTORY_DAYS}),
    BusinessSpec("shop-br", "shopify", "Test BR Shop", "BRL", "America/Sao_Paulo",
                 {"orders_per_day": 6, "products": 5, "countries": ["BR"], "history_days": HISTORY_DAYS}),
]
WORKSPACES = [spec.workspace for spec in SPECS]
ALL_TABLES = [table for tables in TABLES.values() for table in tables]
# Truth money sums -> (table, column) in the warehouse.
SUM_COLUMNS = {
    "orders.totalPriceSet": ("orders", "total_price_amount"),
    "orders.subtotalPriceSet": ("orders", "subtotal_price_amount"),
    "orders.totalTaxSet": ("orders", "total_tax_amount"),
    "orders.totalDiscountsSet": ("orders", "total_discounts_amount"),
    "orders.totalShippingPriceSet": ("orders", "total_shipping_price_amount"),
    "orders.totalRefundedSet": ("orders", "total_refunded_amount"),
    "line_items.originalTotalSet": ("order_line_items", "original_total_amount"),
    "refunds.totalRefundedSet": ("order_refunds", "total_refunded_amount"),
}
KEY_COLUMNS = {"order_discount_applications": "order_id, index"}
FAULTS_20 = "429=0.05,5xx=0.05,throttled=0.05,truncate=0.05"
# Tests run the shops on Shopify's largest plan (2000 points/s) so paging is quick; the pacing test
# shrinks the bucket until every page has to wait for it.
FAST_PLAN = {"maximum_available": 20000.0, "restore_rate": 2000.0}


# -- the simulated shops -----------------------------------------------------------------------------


def _simulators() -> list[ShopSimulator]:
    start = AS_OF - timedelta(days=HISTORY_DAYS)
    return [ShopSimulator(spec, seed=11, start=start, size="small") for spec in SPECS]


@pytest.fixture(scope="module")
def template_store(tmp_path_factory) -> Path:
    """Both shops simulated up to AS_OF, once per module; tests work on copies."""
    path = tmp_path_factory.mktemp("shopify-template") / "store.sqlite"
    store = SandboxStore(path)
    until = int(datetime.combine(AS_OF + timedelta(days=1), dtime(0), timezone.utc).timestamp()) - 1
    for sim in _simulators():
        store.put_account(sim.spec.workspace, "shopify", sim.account())
        sim.generate(store, until, lambda _: None)
    store.set_clock(until)
    store.conn.execute("pragma wal_checkpoint(truncate)")
    store.close()
    return path


class ShopSandbox:
    """The fake Shopify API over a private copy of the simulated shops."""

    def __init__(self, store_path: Path, monkeypatch, faults: str | None = None, throttle: dict = FAST_PLAN):
        self.store = SandboxStore(store_path)
        self.sims = {sim.spec.workspace: sim for sim in _simulators()}
        for workspace, account in self.store.accounts("shopify").items():
            self.store.put_account(workspace, "shopify", {**account, "throttle": throttle})
        self.server = Sandbox(self.store, faults=Faults.parse(faults, seed=5)).start()
        self.info = self.server.connection_info()["shopify"]["workspaces"]
        self.monkeypatch = monkeypatch
        for workspace, creds in self.info.items():
            prefix = workspace.upper().replace("-", "_")
            monkeypatch.setenv(f"{prefix}_TOKEN", creds["access_token"])
            monkeypatch.setenv(f"{prefix}_CLIENT_ID", creds["client_id"])
            monkeypatch.setenv(f"{prefix}_CLIENT_SECRET", creds["client_secret"])

    def secret_envs(self, workspace: str) -> dict[str, str]:
        """shop-us uses a static token, shop-br the client-credentials grant."""
        prefix = workspace.upper().replace("-", "_")
        if workspace == "shop-us":
            return {"access_token": f"{prefix}_TOKEN"}
        return {"client_id": f"{prefix}_CLIENT_ID", "client_secret": f"{prefix}_CLIENT_SECRET"}

    def workspace(self, workspace: str) -> Workspace:
        connector = Connector("shopify", self.info[workspace]["base_url"], self.secret_envs(workspace), {},
                              workspace, Path("workspaces.yaml"))
        spec = self.sims[workspace].spec
        return Workspace(workspace, spec.name, "ecommerce", spec.timezone, spec.currency, {"shopify": connector})

    def workspaces_yaml(self, path: Path) -> Path:
        """A tenants file for the CLI, naming the same variables."""
        entries = []
        for workspace in WORKSPACES:
            spec = self.sims[workspace].spec
            shopify = {"base_url": self.info[workspace]["base_url"],
                       **{f"{k}_env": v for k, v in self.secret_envs(workspace).items()}}
            entries.append({"id": workspace, "name": spec.name, "vertical": "ecommerce", "timezone": spec.timezone,
                            "currency": spec.currency, "connectors": {"shopify": shopify}})
        path.write_text(yaml.safe_dump({"workspaces": entries}))
        return path

    def advance(self, days: int) -> None:
        """New orders, fulfilments, tag edits and refunds on old orders, as `abos sandbox advance` does."""
        since = self.store.clock
        until = since + days * 86400
        for sim in self.sims.values():
            sim.advance(self.store, since, until)
        self.store.set_clock(until)

    def truth(self, workspace: str) -> dict:
        return self.sims[workspace].truth(self.store)

    def log(self, since: int = 0) -> list[dict]:
        return self.server.requests.entries(since, server="shopify")

    def stop(self) -> None:
        self.server.stop()
        self.store.close()


@pytest.fixture
def shop_store(template_store, tmp_path) -> Path:
    path = tmp_path / "store.sqlite"
    shutil.copy(template_store, path)
    return path


@pytest.fixture
def sandbox(shop_store, monkeypatch):
    box = ShopSandbox(shop_store, monkeypatch)
    yield box
    box.stop()


# -- the warehouse ---------------------------------------------------------------------------------


def _settings(monkeypatch, tmp_path: Path, url: str) -> Settings:
    monkeypatch.setenv("ABOS_HOME", str(tmp_path / "abos"))
    monkeypatch.setenv("ABOS_WAREHOUSE_URL", url)
    return load_settings()


@pytest.fixture
def pg_database(pg_admin_url):
    """A database of its own on the session's Postgres server, since every test starts from nothing."""
    name = f"abos_shopify_{uuid.uuid4().hex[:8]}"
    url = urlsplit(pg.create_database(pg_admin_url, name))
    if url.username and not url.password:
        # dlt insists on a password; a trust-auth test server ignores it.
        url = url._replace(netloc=url.netloc.replace(f"{url.username}@", f"{url.username}:unused@", 1))
    yield url.geturl()
    pg.drop_database(pg_admin_url, name)


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def settings(request, monkeypatch, tmp_path) -> Settings:
    if request.param == "duckdb":
        return _settings(monkeypatch, tmp_path, f"duckdb:///{tmp_path / 'warehouse.duckdb'}")
    return _settings(monkeypatch, tmp_path, request.getfixturevalue("pg_database"))


@pytest.fixture
def duck_settings(monkeypatch, tmp_path) -> Settings:
    return _settings(monkeypatch, tmp_path, f"duckdb:///{tmp_path / 'warehouse.duckdb'}")


def fetch(settings: Settings, sql: str, *params) -> list[tuple]:
    if settings.warehouse.kind == "duckdb":
        with duckdb.connect(str(settings.warehouse.duckdb_path), read_only=True) as db:
            return db.execute(sql, list(params)).fetchall()
    with psycopg2.connect(settings.warehouse.url) as conn, conn.cursor() as cur:
        cur.execute(sql.replace("?", "%s"), params)
        return cur.fetchall()


def assert_matches_truth(settings: Settings, sandbox: ShopSandbox, workspaces=WORKSPACES) -> None:
    """Counts and money sums per workspace equal the simulator's truth; no key appears twice."""
    json_length = "json_array_length" if settings.warehouse.kind == "duckdb" else "jsonb_array_length"
    for workspace in workspaces:
        truth = sandbox.truth(workspace)
        for table, expected in truth["counts"].items():
            if table == "order_tax_lines":  # tax lines stay JSON on their order
                sql = f"select coalesce(sum({json_length}(tax_lines)), 0) from shopify.orders where workspace_id = ?"
            else:
                sql = f"select count(*) from shopify.{table} where workspace_id = ?"
            assert fetch(settings, sql, workspace)[0][0] == expected, (workspace, table)
        for table in ALL_TABLES:
            key = KEY_COLUMNS.get(table, "id")
            total, distinct = fetch(
                settings,
                f"select count(*), count(distinct ({key})) from shopify.{table} where workspace_id = ?",
                workspace,
            )[0]
            assert total == distinct, f"{workspace}: duplicate keys in {table}"
        for name, expected in truth["sums"].items():
            table, column = SUM_COLUMNS[name]
            got = fetch(settings, f"select sum({column}) from shopify.{table} where workspace_id = ?", workspace)[0][0]
            assert Decimal(got or 0) == Decimal(expected), (workspace, name)


def table_contents(settings: Settings, table: str) -> set:
    """A table's rows without dlt's bookkeeping columns, for comparing two syncs."""
    if settings.warehouse.kind != "duckdb":
        raise NotImplementedError
    with duckdb.connect(str(settings.warehouse.duckdb_path), read_only=True) as db:
        frame = db.execute(f"select * exclude (_dlt_load_id, _dlt_id) from shopify.{table}").fetchall()
        names = [d[0] for d in db.description]
    return {frozenset((n, str(v)) for n, v in zip(names, row) if v is not None) for row in frame}


def sync_all(sandbox: ShopSandbox, settings: Settings) -> dict[str, SyncStats]:
    return {ws: sync("shopify", sandbox.workspace(ws), settings).stats for ws in WORKSPACES}


def operations(entries: list[dict]) -> list[str]:
    return [e.get("operation") for e in entries if e.get("operation")]


# -- 1. full sync ----------------------------------------------------------------------------------


def test_full_sync_equals_truth(sandbox, settings, capsys):
    started = time.monotonic()
    stats = sync_all(sandbox, settings)
    elapsed = time.monotonic() - started
    assert_matches_truth(settings, sandbox)
    assert all(s.mode == "full" for s in stats.values())
    assert operations(sandbox.log()).count("BulkRun") == 3 * len(WORKSPACES)  # orders, products, customers
    assert not any(e.get("operation", "").endswith("Page") for e in sandbox.log())
    rows = sum(fetch(settings, f"select count(*) from shopify.{t}")[0][0] for t in ALL_TABLES)
    orders = fetch(settings, "select count(*) from shopify.orders")[0][0]
    with capsys.disabled():
        print(f"\n[throughput] shopify full sync on {settings.warehouse.kind}: {rows} rows ({orders} orders) "
              f"in {elapsed:.1f}s = {rows / elapsed:.0f} rows/s, {orders / elapsed:.0f} orders/s")


# -- 2. incremental --------------------------------------------------------------------------------


def _changed_since(store: SandboxStore, workspace: str, kind: str, since: str) -> int:
    moment = int(datetime.fromisoformat(since.replace("Z", "+00:00")).timestamp())
    return store.conn.execute(
        "select count(*) from objects where workspace = ? and source = 'shopify' and kind = ? and updated >= ?",
        (workspace, kind, moment),
    ).fetchone()[0]


def test_incremental_sync_reads_only_changes(sandbox, settings, tmp_path, monkeypatch):
    monkeypatch.setattr(shopify_connector, "BULK_ABOVE", 10_000)  # the paging path, whatever the change's size
    monkeypatch.setattr(shopify_connector, "BULK_ABOVE_PAGES", 10_000)
    sync_all(sandbox, settings)
    cursors = {ws: dict(dlt_pipeline("shopify", ws, settings).state["sources"]["shopify"]["cursors"])
               for ws in WORKSPACES}
    before_truth = sandbox.truth("shop-us")
    sandbox.advance(days=6)
    after_truth = sandbox.truth("shop-us")
    assert after_truth["counts"]["order_refunds"] > before_truth["counts"]["order_refunds"]  # refunds on old orders
    assert after_truth["counts"]["orders"] > before_truth["counts"]["orders"]
    mark = len(sandbox.server.requests)

    stats = sync_all(sandbox, settings)

    assert_matches_truth(settings, sandbox)
    assert all(s.mode == "incremental" for s in stats.values())
    entries = sandbox.log(mark)
    assert "BulkRun" not in operations(entries)
    for workspace in WORKSPACES:
        for root, kind in (("orders", "order"), ("products", "product"), ("customers", "customer")):
            pages = [e for e in entries if e.get("operation") == f"{root.capitalize()}Page" and e["shop"] == workspace]
            read_from = shopify_connector._iso(shopify_connector._parse(cursors[workspace][root])
                                               - shopify_connector.OVERLAP[root])
            if _changed_since(sandbox.store, workspace, kind, read_from) == 0:
                assert pages == [], (workspace, root)  # the count said none changed: no page asked
                continue
            assert pages and all(f.startswith("updated_at:>=") for e in pages for f in e["query_filters"])
            assert all(e["sort_keys"] == ["UPDATED_AT"] for e in pages)
            since = pages[0]["query_filters"][0].split("'")[1]
            assert since < cursors[workspace][root]  # the read overlaps the previous cursor
            read = sum(e["nodes"] for e in pages if e["status"] == 200)
            assert read == _changed_since(sandbox.store, workspace, kind, since), (workspace, root)
            assert read < sandbox.truth(workspace)["counts"][root]  # not a full re-read

    if settings.warehouse.kind == "duckdb":
        # The merged result of bulk + paged syncs equals a fresh bulk sync of the same shop, row for row.
        fresh = _settings(monkeypatch, tmp_path / "fresh", f"duckdb:///{tmp_path / 'fresh.duckdb'}")
        sync_all(sandbox, fresh)
        for table in ALL_TABLES:
            assert table_contents(settings, table) == table_contents(fresh, table), table


# -- 3. kill -9 and rerun --------------------------------------------------------------------------

# Runs `abos ingest shopify <workspace>` with dlt paused right inside one stage, so the test can
# kill it there: normalize after its files are written but before the package is committed, load
# after the first job finished. Extract is caught by watching the sandbox's request log.
CLI_WITH_PAUSE = textwrap.dedent(
    """
    import os, sys, time
    stage = os.environ.get("ABOS_TEST_PAUSE_AT")

    def pause():
        print(f"ABOS-TEST-PAUSED {stage}", file=sys.stderr, flush=True)
        time.sleep(600)

    if stage == "normalize":
        from dlt.normalize.normalize import Normalize
        for name in ("map_single", "map_parallel"):
            def paused(self, *args, _original=getattr(Normalize, name), **kwargs):
                result = _original(self, *args, **kwargs)
                pause()
                return result
            setattr(Normalize, name, paused)
    elif stage == "load":
        from dlt.load.load import Load
        original = Load.complete_jobs
        def complete_jobs(self, *args, **kwargs):
            remaining, finalized, pending = original(self, *args, **kwargs)
            if finalized:
                pause()
            return remaining, finalized, pending
        Load.complete_jobs = complete_jobs
    from pipelines.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


def _cli(settings: Settings, workspaces_file: Path, workspace: str, log: Path, stage: str | None = None):
    """`abos ingest shopify <workspace>` in a child process, its output going to `log`."""
    env = {**os.environ, "ABOS_HOME": str(settings.home), "ABOS_WAREHOUSE_URL": settings.warehouse.url,
           "ABOS_WORKSPACES": str(workspaces_file), "ABOS_TEST_PAUSE_AT": stage or "",
           # Children start faster when they can reuse compiled modules; keep those out of the venv.
           "PYTHONDONTWRITEBYTECODE": "", "PYTHONPYCACHEPREFIX": str(PYCACHE)}
    with log.open("w") as out:
        return subprocess.Popen([sys.executable, "-c", CLI_WITH_PAUSE, "ingest", "shopify", workspace], cwd=REPO,
                                env=env, stdout=out, stderr=subprocess.STDOUT)


def _kill_when(process: subprocess.Popen, ready, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert process.poll() is None, f"finished before it could be killed:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, "stage never reached"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL




@pytest.mark.parametrize("stage", ["extract", "normalize", "load"])
def test_kill_during_stage_then_rerun_is_exact(sandbox, duck_settings, tmp_path, stage):
    workspace = "shop-us"
    workspaces_file = sandbox.workspaces_yaml(tmp_path / "workspaces.yaml")
    log = tmp_path / "cli.log"
    if stage != "extract":  # extract is killed during the first (bulk) sync, the others during a later one
        sync("shopify", sandbox.workspace(workspace), duck_settings)
        sandbox.advance(days=5)
    if stage == "extract":
        sandbox.server.faults.rates = Faults.parse("shopify:slow=1.0:0.2").rates
        sandbox.server.faults.slow_seconds = 0.2
        mark = len(sandbox.server.requests)
        process = _cli(duck_settings, workspaces_file, workspace, log)
        _kill_when(process, lambda: len(sandbox.log(mark)) >= 4, log)
        sandbox.server.faults.rates = {}
    else:
        process = _cli(duck_settings, workspaces_file, workspace, log, stage)
        _kill_when(process, lambda: "ABOS-TEST-PAUSED" in log.read_text(), log)

    rerun = _cli(duck_settings, workspaces_file, workspace, log)
    assert rerun.wait(timeout=120) == 0, log.read_text()[-3000:]
    assert_matches_truth(duck_settings, sandbox, [workspace])


@pytest.mark.postgres
def test_a_load_the_warehouse_refuses_keeps_the_cursor_and_the_next_sync_is_exact(sandbox, pg_database, monkeypatch,
                                                                                  tmp_path):
    """The probe's case: Postgres refuses order lines for good (SQLSTATE 22021, as for a NUL
    character) after `orders` was written. The cursor must stay where it was, locally and in the
    warehouse, no package may be left to block later syncs, and the next sync must be exact."""
    settings = _settings(monkeypatch, tmp_path, pg_database)
    workspace = sandbox.workspace("shop-us")
    sync("shopify", workspace, settings)
    before = dict(dlt_pipeline("shopify", "shop-us", settings).state["sources"]["shopify"]["cursors"])
    sandbox.advance(days=3)
    refuse = """
        create function shopify.refuse_lines() returns trigger language plpgsql as $$
        begin raise exception 'invalid byte sequence for encoding "UTF8": 0x00' using errcode = '22021'; end $$;
        create trigger refuse_lines before insert on shopify.order_line_items
        for each row execute function shopify.refuse_lines();
    """
    with psycopg2.connect(pg_database) as conn, conn.cursor() as cur:
        cur.execute(refuse)

    with pytest.raises(Exception, match="22021|0x00"):
        sync("shopify", workspace, settings)

    pipeline = dlt_pipeline("shopify", "shop-us", settings)
    assert not pipeline.has_pending_data  # the refused package was aborted, not left to block every sync
    assert pipeline.state["sources"]["shopify"]["cursors"] == before
    shutil.rmtree(settings.home / "dlt")  # what the warehouse holds: a fresh pipeline restores from it
    restored = dlt_pipeline("shopify", "shop-us", settings)
    restored.sync_destination()
    assert restored.state["sources"]["shopify"]["cursors"] == before
    with psycopg2.connect(pg_database) as conn, conn.cursor() as cur:
        cur.execute("drop trigger refuse_lines on shopify.order_line_items")
    stats = sync("shopify", workspace, settings).stats
    assert stats.mode == "incremental"  # from the old cursor: the refused changes are read again
    assert_matches_truth(settings, sandbox, ["shop-us"])


# -- 4. faults -------------------------------------------------------------------------------------


def test_sync_with_20_percent_faults_is_exact(shop_store, monkeypatch, duck_settings):
    # The client-credentials shop, so the token grant meets faults too. Faults are random: the shop
    # moves on a day and syncs again until every kind of fault has hit at least once.
    sandbox = ShopSandbox(shop_store, monkeypatch, faults=FAULTS_20)
    kinds = {"429", "5xx", "throttled", "truncate"}
    try:
        runs = [sync("shopify", sandbox.workspace("shop-br"), duck_settings).stats]
        while not kinds <= {e.get("fault") for e in sandbox.log()} and len(runs) < 12:
            sandbox.advance(days=1)
            runs.append(sync("shopify", sandbox.workspace("shop-br"), duck_settings).stats)
        assert_matches_truth(duck_settings, sandbox, ["shop-br"])
        faults = [e["fault"] for e in sandbox.log() if e.get("fault")]
        assert kinds <= set(faults)
        assert sum(r.retries for r in runs) == len(faults)  # each faulty answer retried, none taken as data
        assert sum(r.throttle_wait_seconds for r in runs) > 0
    finally:
        sandbox.stop()


def test_paces_to_the_restore_rate_instead_of_being_throttled(shop_store, monkeypatch, duck_settings):
    # A bucket that holds about one page: every page must wait for the bucket to refill.
    tight = {"maximum_available": 900.0, "restore_rate": 1000.0}
    monkeypatch.setattr(shopify_connector, "BULK_ABOVE", 10_000)  # the paging path, whatever the change's size
    monkeypatch.setattr(shopify_connector, "BULK_ABOVE_PAGES", 10_000)
    sandbox = ShopSandbox(shop_store, monkeypatch, throttle=tight)
    try:
        sync("shopify", sandbox.workspace("shop-us"), duck_settings)
        sandbox.advance(days=2)
        mark = len(sandbox.server.requests)
        stats = sync("shopify", sandbox.workspace("shop-us"), duck_settings).stats
        pages = [e for e in sandbox.log(mark) if e.get("operation", "").endswith("Page")]
        assert len(pages) > 3
        assert not any(e.get("throttled") for e in sandbox.log(mark))
        assert stats.throttle_wait_seconds > 0
        assert_matches_truth(duck_settings, sandbox, ["shop-us"])
    finally:
        sandbox.stop()


# -- 5. drift --------------------------------------------------------------------------------------


def _fixture_sandbox(tmp_path: Path, name: str, monkeypatch) -> tuple[Sandbox, Workspace]:
    store = build_store(tmp_path / f"{name}.sqlite", fixtures=FIXTURES / name)
    server = Sandbox(store).start()
    creds = server.connection_info()["shopify"]["workspaces"]["fixture-store"]
    monkeypatch.setenv("FIXTURE_STORE_TOKEN", creds["access_token"])
    connector = Connector("shopify", creds["base_url"], {"access_token": "FIXTURE_STORE_TOKEN"}, {},
                          "fixture-store", Path("workspaces.yaml"))
    return server, Workspace("fixture-store", "Fixture Store", "ecommerce", "America/New_York", "USD",
                             {"shopify": connector})


def _new_columns(load_info) -> set[str]:
    return {
        f"{table}.{column}"
        for package in load_info.load_packages
        for table, schema in (package.schema_update or {}).items()
        for column in schema.get("columns", {})
        if not column.startswith("_dlt")
    }


def test_drift_new_field_and_changed_type_load_and_are_reported(tmp_path, monkeypatch, duck_settings):
    server, workspace = _fixture_sandbox(tmp_path, "ingest_shopify_basic.json", monkeypatch)
    try:
        sync("shopify", workspace, duck_settings)
    finally:
        server.stop()
    server, workspace = _fixture_sandbox(tmp_path, "ingest_shopify_drift.json", monkeypatch)
    try:
        result = sync("shopify", workspace, duck_settings)
    finally:
        server.stop()

    changes = _new_columns(result.load_info)
    # A Money scalar that now arrives as a MoneyV2 object: flattened into new amount/currency columns.
    assert {"product_variants.compare_at_price_amount", "product_variants.compare_at_price_currency"} <= changes
    # A count that now arrives as text: dlt keeps it in a variant column instead of failing.
    assert "customers.number_of_orders__v_text" in changes
    variants = dict(fetch(duck_settings, "select id, compare_at_price_amount from shopify.product_variants "
                                         "where compare_at_price_amount is not null"))
    assert variants == {"gid://shopify/ProductVariant/11": Decimal("65.00")}
    customers = fetch(duck_settings, "select id, number_of_orders, number_of_orders__v_text from shopify.customers "
                                     "order by id")
    assert customers == [("gid://shopify/Customer/7", None, "1000+"), ("gid://shopify/Customer/8", 1, None)]
    assert fetch(duck_settings, "select count(*), sum(total_price_amount) from shopify.orders") == [(3, Decimal("330"))]


# -- 6. lost local state ---------------------------------------------------------------------------


def test_lost_pipeline_dir_still_syncs_incrementally(sandbox, settings, monkeypatch):
    monkeypatch.setattr(shopify_connector, "BULK_ABOVE_PAGES", 10_000)  # paged: a bulk run would be a full sync's
    workspace = sandbox.workspace("shop-us")
    sync("shopify", workspace, settings)
    shutil.rmtree(settings.home / "dlt")
    sandbox.advance(days=3)
    mark = len(sandbox.server.requests)
    stats = sync("shopify", workspace, settings).stats
    assert "BulkRun" not in operations(sandbox.log(mark))
    assert "OrdersPage" in operations(sandbox.log(mark))
    assert stats.mode == "incremental"
    assert_matches_truth(settings, sandbox, ["shop-us"])


# -- Dagster subsets, auth, queries ----------------------------------------------------------------


def test_partial_selection_does_not_advance_the_shared_cursor(sandbox, duck_settings):
    workspace = sandbox.workspace("shop-us")
    sync("shopify", workspace, duck_settings)
    sandbox.advance(days=3)
    pipeline = dlt_pipeline("shopify", "shop-us", duck_settings)
    before = dict(pipeline.state["sources"]["shopify"]["cursors"])
    stats = SyncStats()
    source = shopify_source(workspace, settings=duck_settings, stats=stats).with_resources("order_line_items")
    pipeline.run(source)
    assert pipeline.state["sources"]["shopify"]["cursors"] == before
    assert any("cursor kept" in note for note in stats.notes)
    sync("shopify", workspace, duck_settings)  # the full selection catches up on every table
    assert_matches_truth(duck_settings, sandbox, ["shop-us"])


def test_building_the_source_reads_no_secret_and_calls_nothing(sandbox, duck_settings, monkeypatch):
    monkeypatch.delenv("SHOP_US_TOKEN")
    source = shopify_source(sandbox.workspace("shop-us"), settings=duck_settings, stats=SyncStats())
    assert set(source.selected_resources) == set(ALL_TABLES) | {f"quarantine_{root}" for root in TABLES}
    assert len(sandbox.server.requests) == 0


def test_bad_or_missing_credentials_name_the_workspace_and_setting(sandbox, duck_settings, monkeypatch):
    # sync() unwraps dlt's PipelineStepFailed to the configuration error behind it.
    monkeypatch.setenv("SHOP_US_TOKEN", "shpat_wrong")
    with pytest.raises(WorkspaceError, match=r"workspace 'shop-us'.*connectors\.shopify\.access_token_env") as bad:
        sync("shopify", sandbox.workspace("shop-us"), duck_settings)
    assert "shpat_wrong" not in str(bad.value)
    monkeypatch.setenv("SHOP_BR_CLIENT_SECRET", "shpss_wrong")
    with pytest.raises(WorkspaceError, match=r"workspace 'shop-br'.*connectors\.shopify\.client_id_env"):
        sync("shopify", sandbox.workspace("shop-br"), duck_settings)
    monkeypatch.delenv("SHOP_US_TOKEN")
    with pytest.raises(WorkspaceError) as missing:
        sync("shopify", sandbox.workspace("shop-us"), duck_settings)
    assert "connectors.shopify.access_token_env names environment variable SHOP_US_TOKEN" in str(missing.value)


def test_every_query_validates_against_the_real_admin_schema(reference):
    from graphql import build_schema, parse, validate

    schema = build_schema((reference / "shopify" / "admin-2026-10.graphql").read_text(), assume_valid=True)
    for name, document in queries.all_documents().items():
        assert validate(schema, parse(document)) == [], name
