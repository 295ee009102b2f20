"""A merge table's first load written once into DuckDB (pipelines/duckdb_first_load.py): the direct
insert deduplicates by key, a load killed after it committed is exact when rerun, and a table whose
rows came in several files is staged as dlt does."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import dlt
import duckdb
import pyarrow as pa
import pytest

from pipelines.ingest.pipeline import merge_hints
from pipelines.warehouse import Warehouse

REPO = Path(__file__).resolve().parents[2]
EXPECTED_ORDERS = [("w", 1, 10), ("w", 2, 20), ("w", 3, 30)]
EXPECTED_LINES = [("w", 1, 1, 4), ("w", 1, 2, 6), ("w", 2, 1, 20), ("w", 3, 1, 30)]

# Orders by (workspace_id, id) and their lines replaced per order, as the raw tables are declared.
# Order 2 comes twice (as Stripe's discounts do, collected from every object embedding one): once loaded.
ORDERS = {"workspace_id": ["w"] * 4, "id": [1, 2, 2, 3], "total": [10, 20, 20, 30]}
LINES = {"workspace_id": ["w"] * 4, "order_id": [1, 1, 2, 3], "line": [1, 2, 1, 1], "amount": [4, 6, 20, 30]}


def resources(orders: list, lines: list) -> list:
    """The orders and their lines as dlt resources, declared as the raw tables are (`merge_hints`)."""
    return [dlt.resource(orders, name="orders", **merge_hints(("workspace_id", "id"), None)),
            dlt.resource(lines, name="lines",
                         **merge_hints(("workspace_id", "order_id", "line"), ("workspace_id", "order_id")))]


# Loads ORDERS and LINES into `argv[1]`'s warehouse. "park": after the direct insert of each file
# committed, before dlt marks its job done, it says so and waits to be killed. "finish": loads the
# package a killed run left. "other": loads them as workspace "v" (its own pipeline), to the end.
SCRIPT = f"ORDERS, LINES = {ORDERS!r}, {LINES!r}\n" + """
import sys, time
import dlt, pyarrow as pa
from pipelines.duckdb_first_load import FirstLoadCopyJob
from pipelines.warehouse import Warehouse
from tests.integration.test_duckdb_first_load import resources
home, mode = sys.argv[1], sys.argv[2]
pipeline = dlt.pipeline("first_load_" + mode.replace("finish", "park"), pipelines_dir=home + "/dlt", dataset_name="shop",
                        destination=Warehouse(url=f"duckdb:///{home}/w.duckdb", duckdb_threads=1).dlt_destination())
if mode == "finish":
    pipeline.load()
    sys.exit(0)
workspace = "v" if mode == "other" else "w"
if mode == "park":
    run = FirstLoadCopyJob.run
    def parked(self):
        run(self)
        print("PARKED " + self.load_table_name, flush=True)
        time.sleep(120)
    FirstLoadCopyJob.run = parked
def rows(columns):
    return [pa.table({**columns, "workspace_id": [workspace] * len(columns["workspace_id"])})]
pipeline.extract(resources(rows(ORDERS), rows(LINES)))
pipeline.normalize()
pipeline.load(workers=1)
"""


def rows(database: Path, table: str) -> list[tuple]:
    with duckdb.connect(str(database), read_only=True) as connection:
        return connection.sql(f"select * exclude (_dlt_load_id, _dlt_id) from {table} order by all").fetchall()


@pytest.mark.parametrize("before", ["nothing", "another workspace"])
def test_a_first_load_killed_after_its_direct_insert_committed_is_exact_when_rerun(tmp_path, before):
    if before == "another workspace":  # the tables hold rows, none of this workspace: a first load too
        other = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path), "other"], cwd=REPO, check=False,
                               capture_output=True, text=True, timeout=300)
        assert other.returncode == 0, other.stdout + other.stderr
    process = subprocess.Popen([sys.executable, "-c", SCRIPT, str(tmp_path), "park"], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in process.stdout:
            if line.startswith("PARKED"):
                parked = line.split()[1]
                break
        else:
            raise AssertionError("the load ended before a direct insert")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL
    database = tmp_path / "w.duckdb"
    # The killed job's file went straight into its table, deduplicated, and nothing was staged.
    assert [row for row in rows(database, f"shop.{parked}") if row[0] == "w"]
    assert not rows(database, f"shop_staging.{parked}")
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path), "finish"], cwd=REPO, check=False,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    workspaces = ["w"] + (["v"] if before == "another workspace" else [])
    assert rows(database, "shop.orders") == sorted((w, *row[1:]) for w in workspaces for row in EXPECTED_ORDERS)
    assert rows(database, "shop.lines") == sorted((w, *row[1:]) for w in workspaces for row in EXPECTED_LINES)
    # The rerun found the table no longer empty: it staged the file, and the merge replaced the rows.
    assert rows(database, f"shop_staging.{parked}")


def load(tmp_path: Path, orders: list[pa.Table], lines: list[pa.Table]) -> Path:
    warehouse = Warehouse(url=f"duckdb:///{tmp_path / 'w.duckdb'}", duckdb_threads=1)
    pipeline = dlt.pipeline("first_load", pipelines_dir=str(tmp_path / "dlt"), dataset_name="shop",
                            destination=warehouse.dlt_destination())
    pipeline.run(resources(orders, lines))
    return tmp_path / "w.duckdb"


def test_a_first_load_goes_straight_in_once_and_later_loads_merge(tmp_path):
    database = load(tmp_path, [pa.table(ORDERS)], [pa.table(LINES)])
    assert rows(database, "shop.orders") == EXPECTED_ORDERS
    assert rows(database, "shop.lines") == EXPECTED_LINES
    assert not rows(database, "shop_staging.orders") and not rows(database, "shop_staging.lines")
    # A later load into the tables, no longer empty: staged and merged (order 1 now has one line).
    database = load(tmp_path, [pa.table({"workspace_id": ["w"] * 2, "id": [2, 4], "total": [21, 40]})],
                    [pa.table({"workspace_id": ["w"], "order_id": [1], "line": [1], "amount": [9]})])
    assert rows(database, "shop.orders") == [("w", 1, 10), ("w", 2, 21), ("w", 3, 30), ("w", 4, 40)]
    assert rows(database, "shop.lines") == [("w", 1, 1, 9), ("w", 2, 1, 20), ("w", 3, 1, 30)]
    assert len(rows(database, "shop_staging.orders")) == 2
    # Another workspace's first load: the tables hold none of its rows, so it goes straight in too.
    database = load(tmp_path, [pa.table({"workspace_id": ["v"] * 2, "id": [2, 2], "total": [5, 5]})],
                    [pa.table({"workspace_id": ["v"], "order_id": [2], "line": [1], "amount": [5]})])
    assert rows(database, "shop.orders") == [("v", 2, 5), ("w", 1, 10), ("w", 2, 21), ("w", 3, 30), ("w", 4, 40)]
    assert rows(database, "shop.lines") == [("v", 2, 1, 5), ("w", 1, 1, 9), ("w", 2, 1, 20), ("w", 3, 1, 30)]
    assert not rows(database, "shop_staging.orders") and not rows(database, "shop_staging.lines")


def test_a_first_load_in_several_files_of_a_table_keeps_every_line(tmp_path):
    """Order 1's lines in two files (one batch as Arrow, one as dict rows, as a Stripe batch the contract
    hands to dlt's normalizer): were the Arrow file inserted directly, the other file's merge (which
    replaces every line of the orders it stages) would delete its line."""
    first, second = pa.table(LINES).slice(0, 1), pa.table(LINES).slice(1).to_pylist()
    database = load(tmp_path, [pa.table(ORDERS)], [first, second])
    assert rows(database, "shop.lines") == EXPECTED_LINES
    assert len(rows(database, "shop_staging.lines")) == 4  # both files staged
