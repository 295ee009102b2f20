"""`abos bench` end to end on a small fraction of the large sandbox: the report's structure, never its speed.

The benchmark runs as users run it (the CLI, a sandbox process, DuckDB and the real Postgres); the
test then checks that every figure is in the JSON report and the Markdown table, that both runs of
both warehouses loaded rows, and that the three baselines ran over the same input.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.bench import report
from pipelines.sandbox.simulation.simulator import specs

# One benchmark run (four dbt builds over two warehouses, and two refreshes of 3 tenants through Dagster):
# many minutes, so `make test-slow` runs it.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]
SCALE = "0.002"  # the large sandbox's 760 days at a few orders a day: CI time, every code path
STAGES = {"extract", "normalize", "load", "dbt", "insights"}
TARGETS = {"P1_full_seconds_duckdb", "P1_own_seconds_duckdb", "P1_dbt_seconds_duckdb",
           "P1_full_seconds_live_pace_duckdb", "P1_vs_dict_path", "P1_read_json_bound_over_sync",
           "P2_incremental_share_duckdb", "P2_dbt_seconds_duckdb", "P2_incremental_share_postgres", "P3_postgres_over_duckdb",
           "memory_peak_gib", "P5_scan_seconds", "detection_event_f1", "detection_false_alerts_per_series_month",
           "tenants_overhead_per_workspace_after_a_day", "tenants_overhead_per_workspace_first"}
TENANTS = 3


@pytest.fixture(scope="module")
def bench(tmp_path_factory, new_pg_database) -> dict:
    home = tmp_path_factory.mktemp("bench") / "abos"
    env = {**os.environ, "ABOS_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
    env.pop("ABOS_WAREHOUSE_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "bench", "--scale", SCALE, "--postgres", new_pg_database(),
         "--baseline-orders", "0", "--p5-workspaces", "10", "--tenants", str(TENANTS)],
        env=env, capture_output=True, text=True, timeout=3300,
    )
    assert done.returncode == 0, f"abos bench failed:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    reports = sorted((home / "bench").glob("bench-*.json"))
    assert len(reports) == 1, f"expected one JSON report in {home / 'bench'}, found {reports}"
    result = json.loads(reports[0].read_text())
    result["_markdown"] = reports[0].with_suffix(".md").read_text()
    return result


def test_every_run_has_every_stage_and_source(bench):
    assert set(bench["runs"]) == {"duckdb", "postgres"}
    for kind, runs in bench["runs"].items():
        assert set(runs) == {"full", "incremental"}, kind
        for name, run in runs.items():
            assert set(run["stages"]) == STAGES, (kind, name)
            assert all(seconds >= 0 for seconds in run["stages"].values()), (kind, name)
            assert run["total_seconds"] > 0 and run["peak_rss_mib"] > 0
            # Our own time leaves the API's waits out of ingestion, never dbt's or the insights' time.
            assert run["stages"]["dbt"] + run["stages"]["insights"] <= run["own_seconds"] <= run["total_seconds"]
            for source in ("shopify", "stripe"):
                found = run["sources"][source]
                assert found["modes"] == [name], (kind, name, source)
                assert found["rows"] > 0 and found["objects"] > 0 and found["rows_per_s"] > 0, (kind, name, source)
                assert found["requests"] > 0 and found["bulk_wait_seconds"] >= 0


def test_both_warehouses_loaded_the_same_full_sync(bench):
    duck, pg = (bench["runs"][kind]["full"]["sources"] for kind in ("duckdb", "postgres"))
    for source in ("shopify", "stripe"):
        assert duck[source]["rows"] == pg[source]["rows"], source


def test_incremental_reads_the_change_not_the_history(bench):
    change = bench["change"]
    assert change["changed_objects"] > 0 and 0 < change["changed_share"] < 1
    full, incremental = (bench["runs"]["duckdb"][name]["sources"]["shopify"] for name in ("full", "incremental"))
    assert incremental["objects"] < full["objects"]


def test_baselines_ran_over_the_same_input(bench):
    base = bench["baselines"]
    # Every order of the biggest shop (--baseline-orders 0), out of both shops' orders synced.
    assert 0 < base["input"]["orders"] < bench["runs"]["duckdb"]["full"]["sources"]["shopify"]["objects"]
    # The dict path and the fast path turn the same lines into the same rows; the bound reads them all.
    assert base["dict_path"]["rows"] == base["fast_path"]["rows"] == base["read_json_bound"]["rows"] > 0
    for name in ("dict_path", "fast_path", "read_json_bound"):
        assert base[name]["seconds"] > 0 and base[name]["orders_per_s"] > 0
    assert set(base["ratios"]) == {"sync_vs_dict_path", "read_json_bound_vs_sync", "fast_path_vs_dict_path",
                                   "read_json_bound_vs_fast_path"}
    assert all(value > 0 for value in base["ratios"].values())


def test_p5_and_targets_are_reported(bench):
    assert bench["p5"]["series"] == 10 * 20 and bench["p5"]["scan_s"] >= 0 and 0 <= bench["p5"]["recall"] <= 1
    assert set(bench["targets"]) == TARGETS
    for name, target in bench["targets"].items():
        assert target["value"] is not None and isinstance(target["met"], bool), name
        assert f"| {name} |" in bench["_markdown"]
    assert bench["peak_rss_mib"] > 0 and bench["machine"]["cpus"] >= 1
    assert len(bench["load_average"]["start"]) == len(bench["load_average"]["end"]) == 3


def test_tenants_refresh_through_dagster(bench):
    tenants = bench["tenants"]
    assert tenants["tenants"] == TENANTS and tenants["definitions_load"]["cpu_seconds"] > 0
    for name in ("first", "after_a_day"):
        found = tenants[name]
        # Per refresh: the exchange rates, the ingestion of every tenant of a source in one run (2 shops, 1
        # SaaS), dbt, and the insights of every tenant in one run.
        assert found["by_kind"]["ingest_shopify"]["runs"] == 1 and found["by_kind"]["ingest_stripe"]["runs"] == 1
        assert found["by_kind"]["dbt"]["runs"] == 1 and found["by_kind"]["insights"]["runs"] == 1
        assert found["per_workspace_seconds"] == pytest.approx(found["seconds"] / TENANTS, abs=1e-3)
        assert 0 < found["per_workspace_overhead_seconds"] <= found["per_workspace_seconds"]
        # each kind's CPU (dbt's process included) is part of the refresh's
        assert all(kind["cpu_seconds"] > 0 for kind in found["by_kind"].values())
        assert sum(kind["cpu_seconds"] for kind in found["by_kind"].values()) <= found["cpu_seconds"] + 0.01
    assert tenants["first"]["rows_loaded"] > tenants["after_a_day"]["rows_loaded"] > 0


def test_targets_are_judged_from_the_figures(bench):
    """The report's verdicts follow from its own numbers (recomputed here from the runs)."""
    runs = bench["runs"]
    assert bench["targets"]["P3_postgres_over_duckdb"]["value"] == round(
        runs["postgres"]["full"]["total_seconds"] / runs["duckdb"]["full"]["total_seconds"], 2)
    assert bench["targets"]["P1_full_seconds_duckdb"]["met"] == (
        runs["duckdb"]["full"]["total_seconds"] <= report.P1_SECONDS)


def test_scaled_sizes_scale_volume_and_leave_named_sizes_alone():
    large, scaled = specs("large"), specs(f"large@{SCALE}")
    for full, small in zip(large, scaled):
        for knob in ("orders_per_day", "customers"):
            if knob in full.scale:
                assert small.scale[knob] == pytest.approx(full.scale[knob] * float(SCALE))
        assert {k: v for k, v in small.scale.items() if k not in ("orders_per_day", "customers")} == {
            k: v for k, v in full.scale.items() if k not in ("orders_per_day", "customers")}
    assert specs("large") is specs("large")  # named sizes are the table itself, never copies
    with pytest.raises(ValueError, match="fraction"):
        specs("large@2")
