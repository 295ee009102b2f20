"""Two workspaces' syncs loading into one Postgres dataset at once (an ingestion step syncs several
workspaces side by side: `ABOS_SYNC_WORKERS`). dlt's loads of one dataset share its staging tables,
and each load empties the staging tables it loads before staging its rows; so `run_steps` loads one
sync at a time per dataset (`Warehouse.load_lock`), as the DuckDB file's lock already did."""

from __future__ import annotations

import threading
import time

import dlt
import psycopg2
import pytest

from pipelines.ingest.pipeline import SyncStats, merge_hints, run_steps
from pipelines.warehouse import Warehouse

pytestmark = pytest.mark.postgres


def shop(workspace_id: str, ids: list[int]):
    """One workspace's orders, declared as the raw tables are (merged by workspace and id)."""

    @dlt.source(name="shop")
    def source():
        rows = [{"workspace_id": workspace_id, "id": i, "total": 10 * i} for i in ids]
        return dlt.resource(rows, name="orders", **merge_hints(("workspace_id", "id"), None))

    return source()


def waiting(conn) -> int:
    """Sessions of this database waiting for a lock now."""
    with conn.cursor() as cur:
        cur.execute("select count(*) from pg_locks l join pg_stat_activity a using (pid) "
                    "where not l.granted and a.datname = current_database()")
        return cur.fetchone()[0]


def wait_for(condition, what: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_load_started_while_another_waits_to_merge_loses_neither_workspace(new_pg_database, tmp_path):
    warehouse = Warehouse(url=new_pg_database())

    def sync(workspace_id: str, ids: list[int]) -> None:
        pipeline = dlt.pipeline(f"shop__{workspace_id}", pipelines_dir=str(tmp_path / "dlt"),
                                destination=warehouse.dlt_destination(), dataset_name="shop")
        run_steps(pipeline, shop(workspace_id, ids), warehouse, SyncStats())

    sync("a", [1])  # the tables exist
    sync("b", [1])
    # An analyst's long query (here: a lock) holds `shop.orders`, so A's merge waits with A's rows
    # staged; meanwhile B's sync starts loading. Both must end with their rows.
    blocker = psycopg2.connect(warehouse.location)
    with blocker.cursor() as cur:
        cur.execute("lock table shop.orders in access exclusive mode")
    watcher = psycopg2.connect(warehouse.location)
    watcher.autocommit = True
    errors: list[BaseException] = []

    def run(workspace_id: str, ids: list[int]) -> threading.Thread:
        def target() -> None:
            try:
                sync(workspace_id, ids)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
        thread = threading.Thread(target=target)
        thread.start()
        return thread

    try:
        first = run("a", [2, 3])
        wait_for(lambda: waiting(watcher) >= 1, "A's merge to wait for the table")
        second = run("b", [2, 3, 4])
        wait_for(lambda: waiting(watcher) >= 2, "B's load to wait too")
    finally:
        blocker.commit()
        blocker.close()
    first.join(120)
    second.join(120)
    assert not errors
    with watcher.cursor() as cur:
        cur.execute("select workspace_id, id, total from shop.orders order by 1, 2")
        assert cur.fetchall() == [("a", 1, 10), ("a", 2, 20), ("a", 3, 30),
                                  ("b", 1, 10), ("b", 2, 20), ("b", 3, 30), ("b", 4, 40)]
    watcher.close()


def test_the_load_lock_holds_back_a_load_of_the_same_dataset_only(new_pg_database):
    # The lock every dlt load takes (the connectors' `run_steps` and the exchange rates' asset).
    warehouse = Warehouse(url=new_pg_database())
    watcher = psycopg2.connect(warehouse.location)
    watcher.autocommit = True
    entered: list[str] = []

    def load(dataset: str) -> threading.Thread:
        def target() -> None:
            with warehouse.load_lock(dataset):
                entered.append(dataset)
        thread = threading.Thread(target=target)
        thread.start()
        return thread

    with warehouse.load_lock("fx"):
        same = load("fx")
        wait_for(lambda: waiting(watcher) >= 1, "the second fx load to wait")
        other = load("shop")
        other.join(30)
        assert entered == ["shop"]  # another dataset's load went ahead
    same.join(30)
    assert entered == ["shop", "fx"]
    watcher.close()
