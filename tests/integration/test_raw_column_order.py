"""The raw tables' column order: the same Stripe data, synced over real HTTP into fresh warehouses, gives
every table the same columns in the same order, whatever order the API's pages arrived in
(pipelines/own_load_jobs.py, `DeclaredColumnOrder`; docs/performance.md, "The raw tables' column order").

On main the order was the order dlt met the columns in: that of the first rows holding a value in each,
so it followed the order the Stripe readers' threads handed their pages over (a trial's `trial_end`,
a voided invoice's `status_transitions__voided_at`).
"""

from __future__ import annotations

import uuid

from pipelines.ingest.stripe import TABLES
from pipelines.ingest.sync import sync
from pipelines.settings import Settings
from tests import pg
from tests.integration.test_stripe_ingest import (  # noqa: F401  (the simulation is a fixture)
    configure,
    query,
    simulated_sandbox,
    simulation,
    with_password,
)

DLT_COLUMNS = ["_dlt_load_id", "_dlt_id"]
# Many small windows read by many threads, a third of the answers 50 ms late: pages arrive shuffled.
SHUFFLED = {"workers": 16, "first_window": 7 * 86400, "faults": "stripe:slow=0.33:0.05"}
IN_ORDER = {"workers": 1, "first_window": 90 * 86400, "faults": None}  # one reader: newest page first


def column_orders(settings: Settings) -> dict[str, list[str]]:
    """Every `stripe` table's columns in the warehouse's order (`ordinal_position`)."""
    orders: dict[str, list[str]] = {}
    for table, column in query(settings, "select table_name, column_name from information_schema.columns "
                                         "where table_schema = 'stripe' order by table_name, ordinal_position"):
        orders.setdefault(table, []).append(column)
    return orders


def test_stripe_tables_get_one_column_order_whatever_order_the_pages_arrive_in(simulation, tmp_path,  # noqa: F811
                                                                              monkeypatch, pg_admin_url):
    runs = [("duckdb", IN_ORDER), ("duckdb", SHUFFLED), ("duckdb", SHUFFLED), ("postgres", SHUFFLED)]
    database = f"abos_column_order_{uuid.uuid4().hex[:8]}"
    orders, counts = [], []
    try:
        for number, (warehouse, condition) in enumerate(runs):
            monkeypatch.setattr("pipelines.ingest.stripe.feed.WINDOW_WORKERS", condition["workers"])
            monkeypatch.setattr("pipelines.ingest.stripe.feed.FIRST_WINDOW", condition["first_window"])
            home = tmp_path / f"run-{number}"
            home.mkdir()
            url = (f"duckdb:///{home / 'warehouse.duckdb'}" if warehouse == "duckdb"
                   else with_password(pg.create_database(pg_admin_url, database)))
            with simulated_sandbox(simulation, home, faults=condition["faults"]) as sandbox:
                settings, workspace = configure(monkeypatch, home, sandbox, url)
                assert sync("stripe", workspace, settings).stats.mode == "full"
            orders.append(column_orders(settings))
            counts.append({table: query(settings, f"select count(*) from stripe.{table}")[0][0]
                           for table in TABLES if not table.startswith("quarantine")})
    finally:
        pg.drop_database(pg_admin_url, database)

    assert all(count == counts[0] for count in counts)  # the same data each time
    assert counts[0]["invoices"] > 100 and counts[0]["subscriptions"] > 100
    # DuckDB's runs: the same order. (Postgres shortens names beyond 63 characters, so its own names.)
    for number, ((warehouse, condition), order) in enumerate(zip(runs, orders)):
        if warehouse == "duckdb":
            differing = [table for table in orders[0] if order[table] != orders[0][table]]
            assert not differing, (differing, number, condition)
    # The order itself, on both warehouses: the declared columns, the others by name, dlt's own last.
    for order in orders:
        for table, columns in order.items():
            if table.startswith("_dlt"):
                continue
            _, _, hints, _ = TABLES[table]
            declared = [name for name in dict.fromkeys(["workspace_id", "id", *hints]) if name in columns]
            others = sorted(set(columns) - set(declared) - set(DLT_COLUMNS))
            assert columns == declared + others + DLT_COLUMNS, table
