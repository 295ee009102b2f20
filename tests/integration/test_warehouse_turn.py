"""A load's turn at the DuckDB warehouse (`warehouse_turn`, pipelines/ingest/pipeline.py): dlt's clients
of the load share one connection to the file, opened once, and the loads write what they wrote before."""

from __future__ import annotations

import dlt
import duckdb
import pytest

from pipelines.ingest.pipeline import merge_hints, warehouse_turn
from pipelines.warehouse import Warehouse


def _orders(rows: list[tuple[int, int]]) -> list:
    """Orders by (workspace_id, id) and their lines replaced per order, declared as the raw tables are."""
    orders = [{"workspace_id": "w", "id": order, "total": total} for order, total in rows]
    lines = [{"workspace_id": "w", "order_id": order, "line": n, "amount": total // 2}
             for order, total in rows for n in (1, 2)]
    return [dlt.resource(orders, name="orders", **merge_hints(("workspace_id", "id"), None)),
            dlt.resource(lines, name="lines", **merge_hints(("workspace_id", "order_id", "line"),
                                                            ("workspace_id", "order_id")))]


def _load(tmp_path, warehouse: Warehouse, batches: list[list[tuple[int, int]]], turn) -> tuple[list[int], list, list]:
    """Each batch extracted and normalized, then loaded inside `turn`: the files opened per load and the rows."""
    pipeline = dlt.pipeline("turn", pipelines_dir=str(tmp_path / "dlt"), dataset_name="shop",
                            destination=warehouse.dlt_destination())
    opened: list[int] = []
    connect = duckdb.connect
    for batch in batches:
        pipeline.extract(_orders(batch))
        pipeline.normalize()
        calls: list[object] = []

        def counting(*args, calls=calls, **kwargs):
            calls.append(args)
            return connect(*args, **kwargs)

        duckdb.connect = counting
        try:
            with turn(pipeline):
                pipeline.load().raise_on_failed_jobs()
        finally:
            duckdb.connect = connect
        opened.append(len(calls))
    with duckdb.connect(str(warehouse.duckdb_path), read_only=True) as conn:
        orders = conn.sql("select workspace_id, id, total from shop.orders order by all").fetchall()
        lines = conn.sql("select workspace_id, order_id, line, amount from shop.lines order by all").fetchall()
    return opened, orders, lines


BATCHES = [[(1, 10), (2, 20)], [(2, 40), (3, 30)], [(1, 12)]]  # a first load, then merges


@pytest.mark.parametrize("threads", [1, 2])
def test_a_load_opens_the_duckdb_file_once_and_writes_the_same_rows(tmp_path, threads):
    shared = Warehouse(url=f"duckdb:///{tmp_path / 'shared' / 'w.duckdb'}", duckdb_threads=threads)
    plain = Warehouse(url=f"duckdb:///{tmp_path / 'plain' / 'w.duckdb'}", duckdb_threads=threads)
    opened, orders, lines = _load(tmp_path / "shared", shared, BATCHES, lambda p: warehouse_turn(p, shared))
    opened_before, orders_before, lines_before = _load(tmp_path / "plain", plain, BATCHES,
                                                       lambda p: plain.write_lock())
    assert opened == [1, 1, 1]
    assert all(n > 1 for n in opened_before)  # dlt's own clients each open the file: what this saves
    assert orders == orders_before == [("w", 1, 12), ("w", 2, 40), ("w", 3, 30)]
    assert lines == lines_before == [("w", 1, 1, 6), ("w", 1, 2, 6), ("w", 2, 1, 20), ("w", 2, 2, 20),
                                     ("w", 3, 1, 15), ("w", 3, 2, 15)]


def test_the_turn_closes_its_connection_and_leaves_no_trace_on_the_destination(tmp_path):
    warehouse = Warehouse(url=f"duckdb:///{tmp_path / 'w.duckdb'}", duckdb_threads=1)
    pipeline = dlt.pipeline("turn", pipelines_dir=str(tmp_path / "dlt"), dataset_name="shop",
                            destination=warehouse.dlt_destination())
    pipeline.extract(_orders([(1, 10)]))
    pipeline.normalize()
    credentials = pipeline.destination.config_params["credentials"]
    with warehouse_turn(pipeline, warehouse):
        held = credentials.external_conn()
        assert held is not None
        pipeline.load().raise_on_failed_jobs()
    assert credentials.external_conn() is None
    with pytest.raises(duckdb.ConnectionException):
        held.sql("select 1")
    pipeline.extract(_orders([(2, 20)]))  # a later load outside a turn opens the file itself again
    pipeline.normalize()
    with warehouse.write_lock():
        pipeline.load().raise_on_failed_jobs()
    with duckdb.connect(str(warehouse.duckdb_path), read_only=True) as conn:
        assert conn.sql("select id from shop.orders order by id").fetchall() == [(1,), (2,)]
