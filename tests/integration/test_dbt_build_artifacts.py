"""The refresh's `dbt build` writes no JSON artifacts (`BUILD`'s `--no-write-json`): dbt serialized its
whole manifest twice per build for nobody (docs/performance.md, "dbt's fixed cost per build"). What the
build did is read from dbt's events instead: the bench's node timings from its log, the dbt asset's
row counts from dagster-dbt's materializations."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd

from pipelines.bench.stages import node_seconds
from pipelines.transform import BUILD, DBT_PROJECT_DIR
from pipelines.transform.assets import row_counts


def test_the_build_writes_no_manifest_or_run_results_and_its_log_times_every_node(tmp_path: Path):
    target, logs = tmp_path / "target", tmp_path / "logs"
    env = {**os.environ, "ABOS_DBT_TARGET": "duckdb", "ABOS_DBT_DUCKDB_PATH": str(tmp_path / "warehouse.duckdb"),
           "DBT_PROFILES_DIR": str(DBT_PROJECT_DIR), "DBT_TARGET_PATH": str(target), "DBT_LOG_PATH": str(logs),
           "DBT_LOG_FORMAT_FILE": "debug"}
    dbt = Path(sys.executable).parent / "dbt"
    done = subprocess.run([str(dbt), *BUILD, "--select", "int_days"], check=False, cwd=DBT_PROJECT_DIR, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:]
    assert not (target / "manifest.json").exists()
    assert not (target / "run_results.json").exists()
    timed = {node["unique_id"]: node for node in node_seconds((logs / "dbt.log").read_text())}
    assert any(node.startswith("test.abos.unique_combination_int_days") for node in timed), sorted(timed)
    assert timed["model.abos.int_days"]["execution_time"] > 0
    assert 0 < timed["model.abos.int_days"]["compiling"] < timed["model.abos.int_days"]["execution_time"]


class Recorded:
    """A warehouse that records the count it is asked for and answers it."""

    def __init__(self) -> None:
        self.sql: list[str] = []

    def query(self, sql: str) -> pd.DataFrame:
        self.sql.append(sql)
        models = [part.split("'")[1] for part in sql.split(" union all ")]
        return pd.DataFrame({"model": models, "n": range(1, len(models) + 1)})


def test_row_counts_count_the_tables_dagster_dbt_saw_built():
    """dagster-dbt's materializations carry the dbt node (`unique_id`) and its status: the tables and
    incremental tables that succeeded are counted; views, failed nodes and checks are not."""
    nodes = {f"model.abos.{name}": {"name": name, "schema": schema, "alias": name, "config": {"materialized": kind}}
             for name, schema, kind in (("orders", "marts", "incremental"), ("int_days", "intermediate", "table"),
                                        ("stg_shopify__orders", "staging", "view"), ("broken", "marts", "table"))}

    def built(name: str, status: str) -> dg.Output:
        return dg.Output(None, output_name=name, metadata={"unique_id": f"model.abos.{name}", "status": status})

    events = [built("orders", "success"), built("int_days", "success"), built("stg_shopify__orders", "success"),
              built("broken", "error"), dg.AssetCheckResult(passed=True, asset_key=dg.AssetKey(["orders"]))]
    warehouse = Recorded()
    observed = {event.asset_key.path[-1]: event.metadata["dagster/row_count"].value
                for event in row_counts({"nodes": nodes}, events, warehouse)}
    assert observed == {"int_days": 1, "orders": 2}
    assert warehouse.sql == [("select 'int_days' as model, count(*) as n from intermediate.int_days union all "
                              "select 'orders' as model, count(*) as n from marts.orders")]
